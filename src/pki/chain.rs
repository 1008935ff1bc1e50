//! Path validation: [`TrustStore::validate`] builds a path from an end-entity certificate to a
//! configured anchor and checks every link (RFC 5280 §6, the parts truc implements).
//!
//! # What is checked
//! - The end entity, before any path is built: validity at `now`, keyUsage and
//!   extendedKeyUsage for the [`Purpose`], no unknown critical extension, no malformed one.
//! - Every issuer candidate: its name is the child's issuer name (compared after RFC 5280
//!   §7.1 normalisation: any string type, case and inner spaces folded) and, when both
//!   carry them, its subjectKeyIdentifier is the child's authorityKeyIdentifier; its signature over the
//!   child verifies (RSA PKCS#1 v1.5 with SHA-256/384/512, ECDSA P-256/P-384; SHA-1 and MD5
//!   only under the legacy policy); it is valid at `now`; it is a CA (basicConstraints, for
//!   anchors only when the extension is present) whose keyUsage, when present, has
//!   keyCertSign and whose extendedKeyUsage, when present, allows the purpose; its pathLen
//!   is not exceeded by the non-self-issued CAs below it; no unknown critical extension.
//! - A complete path: every certificate below the anchor against the revocation source, under
//!   the [`RevocationPolicy`].
//!
//! Every candidate issuer is tried (depth-first, anchors first), so cross-certificates and
//! rollovers work; the search is bounded by [`MAX_DEPTH`] and a budget of
//! [`MAX_SIGNATURE_CHECKS`] so hostile KeyInfo cannot make it expensive. When no path
//! exists, the failure reported is the one from the path that got furthest.
//!
//! # What is not checked
//! Name constraints, policy constraints, policy mappings and inhibit-any-policy are not
//! implemented: certificates carrying them as critical extensions are refused, non-critical
//! ones are ignored. No particular certificate policy is required. No network fetch of
//! intermediates (AIA) or revocation data happens here. The trust anchor's own signature is
//! not checked (it is trusted by configuration) but its validity period is.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde::Serialize;

use super::cert::{CertId, Certificate, LinkError};
use super::crl::{RevocationSource, Status};
use crate::dsig::crypto::Legacy;

/// Longest path considered, anchor included.
pub const MAX_DEPTH: usize = 8;
/// Most signature checks one validation may spend (cached links count too).
pub const MAX_SIGNATURE_CHECKS: usize = 64;
/// Most cached links before the cache starts over.
const LINK_CACHE: usize = 10_000;

const DOCUMENT_SIGNING: &[&str] = &[
    "1.3.6.1.5.5.7.3.36",      // id-kp-documentSigning (RFC 9336)
    "1.3.6.1.4.1.311.10.3.12", // Microsoft document signing
    "1.2.840.113583.1.1.5",    // Adobe authentic documents trust
];

/// What the end-entity certificate is to be trusted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Signing documents: keyUsage digitalSignature or nonRepudiation; extendedKeyUsage, if
    /// present, any, emailProtection or a document-signing purpose (RFC 9336, Microsoft,
    /// Adobe).
    Signer,
    /// TLS client authentication: keyUsage digitalSignature; extendedKeyUsage, if present,
    /// clientAuth or any.
    TlsClient,
    /// TLS server authentication: keyUsage digitalSignature or keyEncipherment;
    /// extendedKeyUsage, if present, serverAuth or any.
    TlsServer,
}

impl Purpose {
    fn key_usage_ok(self, cert: &Certificate) -> Result<(), &'static str> {
        let Some(ku) = cert.key_usage else {
            return Ok(());
        };
        let (ok, needed) = match self {
            Purpose::Signer => (
                ku.digital_signature() || ku.non_repudiation(),
                "digitalSignature or nonRepudiation",
            ),
            Purpose::TlsClient => (ku.digital_signature(), "digitalSignature"),
            Purpose::TlsServer => (
                ku.digital_signature() || ku.key_encipherment(),
                "digitalSignature or keyEncipherment",
            ),
        };
        if ok { Ok(()) } else { Err(needed) }
    }

    fn ext_key_usage_ok(self, cert: &Certificate) -> Result<(), &'static str> {
        let Some(eku) = &cert.ext_key_usage else {
            return Ok(());
        };
        let (ok, needed) = match self {
            Purpose::Signer => (
                eku.email_protection
                    || eku
                        .other
                        .iter()
                        .any(|o| DOCUMENT_SIGNING.contains(&o.as_str())),
                "emailProtection or documentSigning",
            ),
            Purpose::TlsClient => (eku.client_auth, "clientAuth"),
            Purpose::TlsServer => (eku.server_auth, "serverAuth"),
        };
        if ok || eku.any { Ok(()) } else { Err(needed) }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::Signer => "document signing",
            Purpose::TlsClient => "TLS client authentication",
            Purpose::TlsServer => "TLS server authentication",
        })
    }
}

/// What to do when revocation status cannot be established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// An issuer has a CRL configured but it is stale (past nextUpdate), has gone missing
    /// or does not verify: refuse (`true`, the default) or accept with a warning.
    pub hard_fail: bool,
    /// Issuers with no CRL configured at all: refuse (`true`) or accept with a warning when
    /// any revocation source is configured (`false`, the default).
    pub require_for_every_issuer: bool,
}

impl Default for RevocationPolicy {
    fn default() -> Self {
        RevocationPolicy {
            hard_fail: true,
            require_for_every_issuer: false,
        }
    }
}

/// Why no trusted path exists: which certificate, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct Untrusted {
    /// The certificate the problem is about (none for [`Problem::NoAnchors`]).
    pub cert: Option<CertId>,
    /// What failed.
    pub problem: Problem,
}

impl Untrusted {
    /// A stable kebab-case code.
    pub fn code(&self) -> &'static str {
        self.problem.code()
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cert {
            Some(c) => write!(f, "certificate {c}: {}", self.problem),
            None => self.problem.fmt(f),
        }
    }
}

/// One reason a certificate cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// No trust anchor is configured.
    NoAnchors,
    /// `now` is after notAfter.
    Expired {
        /// The time of the decision.
        now: Timestamp,
        /// The end of validity.
        not_after: Timestamp,
    },
    /// `now` is before notBefore.
    NotYetValid {
        /// The time of the decision.
        now: Timestamp,
        /// The start of validity.
        not_before: Timestamp,
    },
    /// A trust anchor on the path is outside its validity period.
    AnchorNotValid {
        /// The time of the decision.
        now: Timestamp,
        /// The anchor.
        anchor: Box<CertId>,
    },
    /// No anchor or known intermediate has the issuer's name (and key identifier).
    UnknownIssuer {
        /// The issuer name sought.
        issuer: String,
        /// A known certificate has that name but another key identifier.
        other_key: bool,
    },
    /// A self-issued certificate that is not a configured anchor.
    UntrustedRoot {
        /// Set when an anchor has the same name but a different key.
        impersonates: Option<Box<CertId>>,
    },
    /// The issuer's signature over the certificate does not verify.
    BadSignature {
        /// The issuer whose key was tried.
        issuer: Box<CertId>,
    },
    /// The signature algorithm or issuer key is unsupported or outside the policy.
    Algorithm {
        /// What.
        detail: String,
    },
    /// An issuer is not a CA (basicConstraints).
    NotCa,
    /// The CA's pathLen allows fewer CAs below it than the path has.
    PathLength {
        /// pathLenConstraint.
        limit: u32,
        /// Non-self-issued CAs below it.
        below: usize,
    },
    /// keyUsage does not allow the use.
    KeyUsage {
        /// What keyUsage must contain.
        needed: &'static str,
    },
    /// extendedKeyUsage does not allow the purpose.
    ExtKeyUsage {
        /// The purpose.
        purpose: Purpose,
        /// What it must contain.
        needed: &'static str,
    },
    /// A critical extension truc does not process.
    CriticalExtension {
        /// Its OID.
        oid: String,
    },
    /// An extension that does not parse, or appears twice.
    Malformed {
        /// What.
        detail: String,
    },
    /// Revoked by its issuer's CRL at or before `now`.
    Revoked {
        /// Revocation time (the earlier of revocationDate and invalidityDate).
        at: Timestamp,
        /// CRL reason code, when given.
        reason: Option<String>,
    },
    /// Revocation status cannot be established and the policy is hard fail.
    RevocationUnavailable {
        /// Why (stale CRL, missing CRL, CRL signature).
        detail: String,
    },
    /// The path would be longer than [`MAX_DEPTH`].
    PathTooLong,
    /// The search spent [`MAX_SIGNATURE_CHECKS`] without finding a path.
    SearchBudget,
}

impl Problem {
    /// A stable kebab-case code.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::NoAnchors => "no-trust-anchor",
            Problem::Expired { .. } => "certificate-expired",
            Problem::NotYetValid { .. } => "certificate-not-yet-valid",
            Problem::AnchorNotValid { .. } => "anchor-not-valid",
            Problem::UnknownIssuer { .. } => "unknown-issuer",
            Problem::UntrustedRoot { .. } => "untrusted-root",
            Problem::BadSignature { .. } => "certificate-signature-invalid",
            Problem::Algorithm { .. } => "certificate-algorithm",
            Problem::NotCa => "issuer-not-ca",
            Problem::PathLength { .. } => "path-length-exceeded",
            Problem::KeyUsage { .. } => "key-usage",
            Problem::ExtKeyUsage { .. } => "extended-key-usage",
            Problem::CriticalExtension { .. } => "unknown-critical-extension",
            Problem::Malformed { .. } => "malformed-certificate",
            Problem::Revoked { .. } => "certificate-revoked",
            Problem::RevocationUnavailable { .. } => "revocation-unavailable",
            Problem::PathTooLong => "path-too-long",
            Problem::SearchBudget => "path-search-budget",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoAnchors => f.write_str("no trust anchor configured"),
            Problem::Expired { now, not_after } => {
                write!(f, "expired: notAfter {not_after} is before now ({now})")
            }
            Problem::NotYetValid { now, not_before } => {
                write!(
                    f,
                    "not yet valid: notBefore {not_before} is after now ({now})"
                )
            }
            Problem::AnchorNotValid { now, anchor } => write!(
                f,
                "its trust anchor {anchor} is outside its validity period at {now}"
            ),
            Problem::UnknownIssuer {
                issuer,
                other_key: false,
            } => write!(
                f,
                "unknown issuer: no trust anchor or intermediate named {issuer:?}"
            ),
            Problem::UnknownIssuer {
                issuer,
                other_key: true,
            } => write!(
                f,
                "unknown issuer: the trust anchor or intermediate named {issuer:?} has another \
                 key identifier than the certificate's authorityKeyIdentifier"
            ),
            Problem::UntrustedRoot { impersonates: None } => {
                f.write_str("self-issued and not a configured trust anchor")
            }
            Problem::UntrustedRoot {
                impersonates: Some(a),
            } => write!(
                f,
                "self-issued with the name of trust anchor {a} but a different key: not trusted"
            ),
            Problem::BadSignature { issuer } => {
                write!(f, "signature does not verify with the key of {issuer}")
            }
            Problem::Algorithm { detail } => f.write_str(detail),
            Problem::NotCa => f.write_str("issues certificates but is not a CA (basicConstraints)"),
            Problem::PathLength { limit, below } => write!(
                f,
                "path length constraint exceeded: pathLen {limit}, but {below} CA certificate(s) below it"
            ),
            Problem::KeyUsage { needed } => write!(f, "keyUsage lacks {needed}"),
            Problem::ExtKeyUsage { purpose, needed } => {
                write!(
                    f,
                    "extendedKeyUsage does not allow {purpose} (needs {needed})"
                )
            }
            Problem::CriticalExtension { oid } => {
                write!(f, "unknown critical extension {oid}")
            }
            Problem::Malformed { detail } => write!(f, "malformed: {detail}"),
            Problem::Revoked { at, reason } => {
                write!(f, "revoked at {at}")?;
                if let Some(r) = reason {
                    write!(f, " ({r})")?;
                }
                Ok(())
            }
            Problem::RevocationUnavailable { detail } => {
                write!(f, "revocation status unavailable: {detail}")
            }
            Problem::PathTooLong => write!(f, "no path within {MAX_DEPTH} certificates"),
            Problem::SearchBudget => write!(
                f,
                "no path found within {MAX_SIGNATURE_CHECKS} signature checks"
            ),
        }
    }
}

/// A validated path, end entity first, anchor last.
#[derive(Clone, Debug)]
pub struct ValidPath {
    /// The certificates.
    pub chain: Vec<Certificate>,
    /// Legacy features the path uses.
    pub legacy: Vec<Legacy>,
    /// Things that did not stop the decision but should be seen: soft-failed revocation
    /// checks, a revocation after `now`.
    pub warnings: Vec<String>,
}

/// Trust anchors, known intermediates, and where revocation status comes from.
#[derive(Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    revocation: Option<Arc<dyn RevocationSource>>,
    revocation_policy: RevocationPolicy,
    /// Links (certificate, issuer) whose signature has been verified, with the legacy
    /// features they use. A signature over fixed bytes either verifies or not, so caching
    /// is safe; validity, constraints and revocation are still checked on every path.
    verified: Arc<Mutex<LinkCache>>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.anchors.len())
            .field("intermediates", &self.intermediates.len())
            .field("revocation", &self.revocation.is_some())
            .field("revocation_policy", &self.revocation_policy)
            .finish()
    }
}

/// Verified (certificate, issuer) fingerprint pairs and their legacy features.
type LinkCache = HashMap<(String, String), Vec<Legacy>>;

/// The best failure seen so far: the one from the path that got furthest.
struct Best(Option<(usize, Untrusted)>);

impl Best {
    fn record(&mut self, depth: usize, cert: &Certificate, problem: Problem) {
        if self.0.as_ref().is_none_or(|(d, _)| depth >= *d) {
            self.0 = Some((
                depth,
                Untrusted {
                    cert: Some(cert.id()),
                    problem,
                },
            ));
        }
    }
}

/// State of one search.
struct Search<'a> {
    extra: &'a [Certificate],
    purpose: Purpose,
    allow_legacy: bool,
    now: Timestamp,
    checks: usize,
    best: Best,
}

impl TrustStore {
    /// A store with these anchors and intermediates and no revocation source.
    pub fn new(anchors: Vec<Certificate>, intermediates: Vec<Certificate>) -> Self {
        TrustStore {
            anchors,
            intermediates,
            ..TrustStore::default()
        }
    }

    /// Checks revocation against `source` under `policy`.
    pub fn with_revocation(
        mut self,
        source: Arc<dyn RevocationSource>,
        policy: RevocationPolicy,
    ) -> Self {
        self.revocation = Some(source);
        self.revocation_policy = policy;
        self
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }

    /// The configured intermediates.
    pub fn intermediates(&self) -> &[Certificate] {
        &self.intermediates
    }

    /// Builds and checks a path from `leaf` to an anchor for `purpose`, using `extra` (for
    /// example the certificates in KeyInfo or a TLS peer's chain) and the store's
    /// intermediates, judged at `now`, with legacy algorithms only if `allow_legacy`.
    pub fn validate(
        &self,
        leaf: &Certificate,
        extra: &[Certificate],
        purpose: Purpose,
        allow_legacy: bool,
        now: Timestamp,
    ) -> Result<ValidPath, Untrusted> {
        if self.anchors.is_empty() {
            return Err(Untrusted {
                cert: None,
                problem: Problem::NoAnchors,
            });
        }
        let fail = |problem| {
            Err(Untrusted {
                cert: Some(leaf.id()),
                problem,
            })
        };
        if let Err(p) = validity(leaf, now) {
            return fail(p);
        }
        if let Err(p) = extensions_ok(leaf) {
            return fail(p);
        }
        // The path first: for a self-issued certificate (a rogue root, an unrelated CA)
        // "not a trust anchor" says more than its keyUsage does.
        let path = self.search(leaf, extra, purpose, allow_legacy, now)?;
        if let Err(needed) = purpose.key_usage_ok(leaf) {
            return fail(Problem::KeyUsage { needed });
        }
        if let Err(needed) = purpose.ext_key_usage_ok(leaf) {
            return fail(Problem::ExtKeyUsage { purpose, needed });
        }
        Ok(path)
    }

    fn search(
        &self,
        leaf: &Certificate,
        extra: &[Certificate],
        purpose: Purpose,
        allow_legacy: bool,
        now: Timestamp,
    ) -> Result<ValidPath, Untrusted> {
        let mut search = Search {
            extra,
            purpose,
            allow_legacy,
            now,
            checks: 0,
            best: Best(None),
        };
        let mut chain = vec![leaf.clone()];
        if self.anchors.iter().any(|a| a.der() == leaf.der()) {
            // The end entity is itself configured as an anchor.
            return Ok(ValidPath {
                chain,
                legacy: Vec::new(),
                warnings: Vec::new(),
            });
        }
        if let Some(path) = self.extend(&mut chain, &mut search) {
            return Ok(path);
        }
        Err(search.best.0.map(|(_, u)| u).unwrap_or_else(|| Untrusted {
            cert: Some(leaf.id()),
            problem: Problem::UnknownIssuer {
                issuer: leaf.issuer.clone(),
                other_key: false,
            },
        }))
    }

    /// Depth-first: tries every issuer of the last certificate in `chain`.
    fn extend(&self, chain: &mut Vec<Certificate>, s: &mut Search<'_>) -> Option<ValidPath> {
        let cur = chain.last()?.clone();
        let depth = chain.len();
        let extra = s
            .extra
            .iter()
            .chain(&self.intermediates)
            .filter(|c| !self.anchors.iter().any(|a| a.der() == c.der()));
        let candidates = self
            .anchors
            .iter()
            .map(|c| (c, true))
            .chain(extra.map(|c| (c, false)));
        let mut considered = false;
        let mut impersonated = None;
        for (issuer, is_anchor) in candidates {
            if !cur.names_issuer(issuer) || chain.iter().any(|c| c.der() == issuer.der()) {
                continue;
            }
            considered = true;
            if !is_anchor && depth + 1 >= MAX_DEPTH {
                s.best.record(depth, &cur, Problem::PathTooLong);
                continue;
            }
            if s.checks >= MAX_SIGNATURE_CHECKS {
                s.best.record(depth, &cur, Problem::SearchBudget);
                return None;
            }
            s.checks += 1;
            let legacy = match self.link(&cur, issuer, s.allow_legacy) {
                Ok(l) => l,
                Err(e) => {
                    let problem = match e {
                        LinkError::Algorithm(detail) => Problem::Algorithm { detail },
                        LinkError::Signature if is_anchor && cur.is_self_issued() => {
                            impersonated = Some(Box::new(issuer.id()));
                            continue;
                        }
                        LinkError::Signature => Problem::BadSignature {
                            issuer: Box::new(issuer.id()),
                        },
                    };
                    s.best.record(depth, &cur, problem);
                    continue;
                }
            };
            if let Err(p) = self.issuer_ok(issuer, is_anchor, chain, s) {
                s.best.record(depth + 1, issuer, p);
                continue;
            }
            chain.push(issuer.clone());
            let found = if is_anchor {
                self.complete(chain, s)
            } else {
                self.extend(chain, s)
            };
            chain.pop();
            if let Some(mut path) = found {
                path.legacy.extend(legacy);
                return Some(path);
            }
        }
        if !considered || impersonated.is_some() {
            let problem = if cur.is_self_issued() {
                Problem::UntrustedRoot {
                    impersonates: impersonated,
                }
            } else {
                Problem::UnknownIssuer {
                    issuer: cur.issuer.clone(),
                    other_key: self
                        .anchors
                        .iter()
                        .chain(&self.intermediates)
                        .chain(s.extra)
                        .any(|c| c.subject_norm == cur.issuer_norm),
                }
            };
            s.best.record(depth, &cur, problem);
        }
        None
    }

    /// Checks `issuer` as the CA above `chain`.
    fn issuer_ok(
        &self,
        issuer: &Certificate,
        is_anchor: bool,
        chain: &[Certificate],
        s: &Search<'_>,
    ) -> Result<(), Problem> {
        if is_anchor {
            if !issuer.valid_at(s.now) {
                return Err(Problem::AnchorNotValid {
                    now: s.now,
                    anchor: Box::new(issuer.id()),
                });
            }
        } else {
            validity(issuer, s.now)?;
        }
        extensions_ok(issuer)?;
        match issuer.basic_constraints {
            Some((true, _)) => {}
            // An anchor without basicConstraints is a v1 root, trusted by configuration.
            None if is_anchor => {}
            _ => return Err(Problem::NotCa),
        }
        if issuer.key_usage.is_some_and(|ku| !ku.key_cert_sign()) {
            return Err(Problem::KeyUsage {
                needed: "keyCertSign",
            });
        }
        if let Err(needed) = s.purpose.ext_key_usage_ok(issuer) {
            return Err(Problem::ExtKeyUsage {
                purpose: s.purpose,
                needed,
            });
        }
        if let Some((_, Some(limit))) = issuer.basic_constraints {
            let below = chain[1..].iter().filter(|c| !c.is_self_issued()).count();
            if below > limit as usize {
                return Err(Problem::PathLength { limit, below });
            }
        }
        Ok(())
    }

    /// A path reached an anchor: checks revocation of every certificate below it.
    fn complete(&self, chain: &[Certificate], s: &mut Search<'_>) -> Option<ValidPath> {
        let mut warnings = Vec::new();
        if let Some(source) = &self.revocation {
            let policy = self.revocation_policy;
            for pair in chain.windows(2) {
                let (cert, issuer) = (&pair[0], &pair[1]);
                let problem = match source.status(cert, issuer, s.now, s.allow_legacy) {
                    Status::Good => continue,
                    Status::Revoked { at, reason } if at <= s.now => {
                        Problem::Revoked { at, reason }
                    }
                    Status::Revoked { at, reason } => {
                        warnings.push(format!(
                            "certificate {cert} was revoked later, at {at}{}",
                            reason.map(|r| format!(" ({r})")).unwrap_or_default()
                        ));
                        continue;
                    }
                    Status::Unavailable(detail) if policy.hard_fail => {
                        Problem::RevocationUnavailable { detail }
                    }
                    Status::NotCovered if policy.require_for_every_issuer => {
                        Problem::RevocationUnavailable {
                            detail: format!("no CRL of {:?} is configured", issuer.subject),
                        }
                    }
                    Status::Unavailable(detail) => {
                        warnings.push(format!(
                            "revocation of {cert} not checked (soft fail): {detail}"
                        ));
                        continue;
                    }
                    // Issuers without revocation data are not checked under the default
                    // policy; saying so on every path would only be noise.
                    Status::NotCovered => continue,
                };
                s.best.record(usize::MAX, cert, problem);
                return None;
            }
        }
        Some(ValidPath {
            chain: chain.to_vec(),
            legacy: Vec::new(),
            warnings,
        })
    }

    /// Checks that `issuer` signed `cert`, through the cache. Legacy features are checked
    /// against the policy on every call, cached or not.
    fn link(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        allow_legacy: bool,
    ) -> Result<Vec<Legacy>, LinkError> {
        let key = (cert.fingerprint.clone(), issuer.fingerprint.clone());
        let cached = self.verified.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(legacy) = cached {
            if let Some(l) = legacy.first().filter(|_| !allow_legacy) {
                return Err(LinkError::Algorithm(format!(
                    "uses {l} (legacy policy not enabled)"
                )));
            }
            return Ok(legacy);
        }
        let legacy = cert.check_signed_by(issuer, allow_legacy)?;
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= LINK_CACHE {
                m.clear();
            }
            m.insert(key, legacy.clone());
        }
        Ok(legacy)
    }
}

fn validity(cert: &Certificate, now: Timestamp) -> Result<(), Problem> {
    if now < cert.not_before {
        Err(Problem::NotYetValid {
            now,
            not_before: cert.not_before,
        })
    } else if now > cert.not_after {
        Err(Problem::Expired {
            now,
            not_after: cert.not_after,
        })
    } else {
        Ok(())
    }
}

fn extensions_ok(cert: &Certificate) -> Result<(), Problem> {
    if let Some(detail) = &cert.malformed {
        return Err(Problem::Malformed {
            detail: detail.clone(),
        });
    }
    if let Some(oid) = cert.unknown_critical.first() {
        return Err(Problem::CriticalExtension { oid: oid.clone() });
    }
    Ok(())
}
