//! X.509 certificates and the trust decision for signers.
//!
//! This is the first cut the XML-Signature core needs: certificates parsed once with
//! x509-parser into an owned [`Certificate`], and [`TrustStore::validate`], which builds a path
//! from a signer certificate to a configured anchor. Each link is checked for its signature
//! (ring, through [`crate::dsig::crypto`]), its validity at an injected `now` (never the
//! clock), and for issuers the basicConstraints CA flag. Revocation, key usage, path length
//! and agency binding belong to the trust issue and build on this module.
//!
//! Legacy certificate features (`sha1WithRSA` signatures, RSA keys under 2048 bits) are
//! accepted only under the legacy policy and reported.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dsig::crypto::{self, EcdsaEncoding, KeyError, Legacy, PublicKey, SignatureAlg};

const MD5_WITH_RSA: &str = "1.2.840.113549.1.1.4";

/// A parsed certificate that owns its bytes.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    /// Subject distinguished name (RFC 4514 style).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// SHA-256 of the DER encoding, hex.
    pub fingerprint: String,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    tbs: std::ops::Range<usize>,
    signature_oid: String,
    signature: Vec<u8>,
    is_ca: bool,
    key: Result<PublicKey, KeyError>,
}

/// A certificate that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertError(pub String);

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Self, CertError> {
        let (rest, cert) = X509Certificate::from_der(&der)
            .map_err(|e| CertError(format!("not an X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(CertError("trailing bytes after the certificate".into()));
        }
        let time = |t: x509_parser::time::ASN1Time| {
            Timestamp::from_second(t.timestamp())
                .map_err(|e| CertError(format!("certificate time out of range: {e}")))
        };
        let tbs_raw: &[u8] = cert.tbs_certificate.as_ref();
        let tbs_start = tbs_raw.as_ptr() as usize - der.as_ptr() as usize;
        let out = Certificate {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string(),
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
            fingerprint: hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref()),
            subject_raw: cert.subject().as_raw().to_vec(),
            issuer_raw: cert.issuer().as_raw().to_vec(),
            tbs: tbs_start..tbs_start + tbs_raw.len(),
            signature_oid: cert.signature_algorithm.algorithm.to_id_string(),
            signature: cert.signature_value.data.to_vec(),
            is_ca: cert.is_ca(),
            key: PublicKey::from_spki(cert.public_key()),
            der: Vec::new(),
        };
        Ok(Certificate { der, ..out })
    }

    /// Every certificate in a PEM buffer (other PEM blocks are skipped).
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, CertError> {
        let mut out = Vec::new();
        for block in Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| CertError(format!("bad PEM: {e}")))?;
            if block.label == "CERTIFICATE" {
                out.push(Self::from_der(block.contents)?);
            }
        }
        if out.is_empty() {
            return Err(CertError("no CERTIFICATE block in PEM input".into()));
        }
        Ok(out)
    }

    /// Reads certificates from a PEM file, or a DER file when it is not PEM.
    pub fn load(path: &Path) -> Result<Vec<Self>, CertError> {
        let bytes = std::fs::read(path)
            .map_err(|e| CertError(format!("cannot read {}: {e}", path.display())))?;
        let result =
            if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
                Self::from_pem(&bytes)
            } else {
                Self::from_der(bytes).map(|c| vec![c])
            };
        result.map_err(|e| CertError(format!("{}: {e}", path.display())))
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject public key.
    pub fn key(&self) -> Result<&PublicKey, KeyError> {
        self.key.as_ref().map_err(Clone::clone)
    }

    /// Legacy features of this certificate on its own: a SHA-1 signature, an RSA key under
    /// 2048 bits.
    pub fn legacy_features(&self) -> Vec<Legacy> {
        let mut out = Vec::new();
        if SignatureAlg::from_x509_oid(&self.signature_oid)
            .is_some_and(|a| a.hash == crypto::Hash::Sha1)
        {
            out.push(Legacy::Sha1Certificate);
        }
        if self.signature_oid == MD5_WITH_RSA {
            out.push(Legacy::Md5Certificate);
        }
        if self
            .key
            .as_ref()
            .is_ok_and(|k| k.rsa_bits() > 0 && k.rsa_bits() < 2048)
        {
            out.push(Legacy::ShortRsaKey);
        }
        out
    }

    /// Whether `self` names `other` as its issuer.
    fn issued_by(&self, other: &Certificate) -> bool {
        self.issuer_raw == other.subject_raw
    }

    /// Whether `now` lies within the validity period.
    pub fn valid_at(&self, now: Timestamp) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Verifies this certificate's signature with `issuer`'s key, under the legacy policy
    /// `allow_legacy`; returns the legacy features used.
    fn check_signed_by(
        &self,
        issuer: &Certificate,
        allow_legacy: bool,
    ) -> Result<Vec<Legacy>, String> {
        let mut legacy = Vec::new();
        if self.signature_oid == MD5_WITH_RSA {
            if !allow_legacy {
                return Err("signed with MD5 (legacy policy not enabled)".into());
            }
            let key = issuer.key().map_err(|e| e.to_string())?;
            if !crypto::verify_rsa_md5(key, &self.der[self.tbs.clone()], &self.signature) {
                return Err(format!("signature by {} does not verify", issuer.subject));
            }
            return Ok(vec![Legacy::Md5Certificate]);
        }
        let alg = SignatureAlg::from_x509_oid(&self.signature_oid)
            .ok_or_else(|| format!("unsupported signature algorithm {}", self.signature_oid))?;
        if alg.hash == crypto::Hash::Sha1 {
            if !allow_legacy {
                return Err("signed with SHA-1 (legacy policy not enabled)".into());
            }
            legacy.push(Legacy::Sha1Certificate);
        }
        let key = issuer.key().map_err(|e| e.to_string())?;
        if let Some(l) = key
            .check_policy(allow_legacy)
            .map_err(|e| format!("issuer key: {e}"))?
        {
            legacy.push(l);
        }
        crypto::verify(
            key,
            alg,
            EcdsaEncoding::Der,
            &self.der[self.tbs.clone()],
            &self.signature,
        )
        .map_err(|_| format!("signature by {} does not verify", issuer.subject))?;
        Ok(legacy)
    }
}

impl fmt::Display for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (serial {}, SHA-256 {})",
            self.subject, self.serial, self.fingerprint
        )
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Trust anchors and known intermediates.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    /// Certificates trusted without further checks of their issuer.
    pub anchors: Vec<Certificate>,
    /// Certificates that may complete a path but are not trusted by themselves.
    pub intermediates: Vec<Certificate>,
    /// Links (certificate, issuer) whose signature has been verified, with the legacy
    /// features they use. A signature over fixed bytes either verifies or not, so caching
    /// is safe; validity periods are still checked on every path.
    verified: Arc<Mutex<LinkCache>>,
}

/// Verified (certificate, issuer) fingerprint pairs and their legacy features.
type LinkCache = HashMap<(String, String), Vec<Legacy>>;

/// Most cached links before the cache starts over.
const LINK_CACHE: usize = 10_000;

/// A validated path, signer first, anchor last.
#[derive(Clone, Debug)]
pub struct ValidPath {
    /// The certificates.
    pub chain: Vec<Certificate>,
    /// Legacy features the path uses.
    pub legacy: Vec<Legacy>,
}

/// Why no trusted path exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Untrusted(pub String);

/// Longest path considered, anchor included.
const MAX_DEPTH: usize = 8;

impl TrustStore {
    /// A store with these anchors and intermediates.
    pub fn new(anchors: Vec<Certificate>, intermediates: Vec<Certificate>) -> Self {
        TrustStore {
            anchors,
            intermediates,
            verified: Arc::default(),
        }
    }

    /// Builds and checks a path from `leaf` to an anchor, using `extra` (for example the
    /// certificates in KeyInfo) and the store's intermediates. Every candidate issuer is
    /// tried; the first complete valid path wins, otherwise the most specific reason is
    /// returned.
    pub fn validate(
        &self,
        leaf: &Certificate,
        extra: &[Certificate],
        now: Timestamp,
        allow_legacy: bool,
    ) -> Result<ValidPath, Untrusted> {
        if self.anchors.is_empty() {
            return Err(Untrusted("no trust anchors configured".into()));
        }
        let mut chain = vec![leaf.clone()];
        let mut best = None;
        self.extend(&mut chain, extra, now, allow_legacy, &mut best)
            .ok_or_else(|| {
                Untrusted(best.unwrap_or_else(|| {
                    format!(
                        "no path from {} to a trust anchor (issuer {} not found)",
                        leaf.subject, leaf.issuer
                    )
                }))
            })
    }

    /// Checks that `issuer` signed `cert`, through the cache. Legacy features are checked
    /// against the policy on every call, cached or not.
    fn link(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        allow_legacy: bool,
    ) -> Result<Vec<Legacy>, String> {
        let key = (cert.fingerprint.clone(), issuer.fingerprint.clone());
        let cached = self.verified.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(legacy) = cached {
            if !legacy.is_empty() && !allow_legacy {
                return Err(format!("uses {} (legacy policy not enabled)", legacy[0]));
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

    fn extend(
        &self,
        chain: &mut Vec<Certificate>,
        extra: &[Certificate],
        now: Timestamp,
        allow_legacy: bool,
        best: &mut Option<String>,
    ) -> Option<ValidPath> {
        let cur = chain.last().cloned()?;
        if !cur.valid_at(now) {
            let when = if now < cur.not_before {
                "not yet valid"
            } else {
                "expired"
            };
            *best = Some(format!(
                "certificate {cur} is {when} at {now} (valid {} to {})",
                cur.not_before, cur.not_after
            ));
            return None;
        }
        // The current certificate is itself an anchor.
        if self.anchors.iter().any(|a| a.der == cur.der) {
            return Some(ValidPath {
                chain: chain.clone(),
                legacy: Vec::new(),
            });
        }
        if chain.len() >= MAX_DEPTH {
            *best = Some(format!("path longer than {MAX_DEPTH} certificates"));
            return None;
        }
        let candidates = self
            .anchors
            .iter()
            .map(|c| (c, true))
            .chain(extra.iter().chain(&self.intermediates).map(|c| (c, false)));
        for (issuer, is_anchor) in candidates {
            if !cur.issued_by(issuer) || chain.iter().any(|c| c.der == issuer.der) {
                continue;
            }
            if !is_anchor && !issuer.is_ca {
                *best = Some(format!("issuer {issuer} is not a CA (basicConstraints)"));
                continue;
            }
            let legacy = match self.link(&cur, issuer, allow_legacy) {
                Ok(l) => l,
                Err(e) => {
                    *best = Some(format!("certificate {cur}: {e}"));
                    continue;
                }
            };
            if is_anchor {
                if !issuer.valid_at(now) {
                    *best = Some(format!(
                        "trust anchor {issuer} is not valid at {now} (valid {} to {})",
                        issuer.not_before, issuer.not_after
                    ));
                    continue;
                }
                chain.push(issuer.clone());
                let path = ValidPath {
                    chain: chain.clone(),
                    legacy,
                };
                return Some(path);
            }
            chain.push(issuer.clone());
            if let Some(mut path) = self.extend(chain, extra, now, allow_legacy, best) {
                path.legacy.extend(legacy);
                return Some(path);
            }
            chain.pop();
        }
        None
    }
}

/// Reads every certificate in the given files.
pub fn load_all<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Certificate>, CertError> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(Certificate::load(p.as_ref())?);
    }
    Ok(out)
}
