//! The agency directory: which agencies exist, who may sign for each, and how each one's
//! systems authenticate.
//!
//! # Role
//! A signature that verifies to a trusted anchor proves *a* certificate signed; the directory
//! says whether that certificate may speak for the agency named in the package
//! (`MessageHeader/From/OrganId`, or `From/OrganId` of a status package). The same rules map
//! a TLS client certificate, or a bearer token, to the agency it authenticates.
//!
//! # Rules
//! For each agency, `signers` and `clients` are each a [`Rule`]: a certificate matches if
//! its SHA-256 fingerprint is pinned, or if a listed subject attribute (`serialNumber`,
//! `OU`, `CN`, `UID`) equals the agency identifier exactly, or if a subjectAltName URI equals
//! the `san_uri` template with `{id}` replaced by the identifier. An agency without its own
//! table uses `[defaults.signers]` / `[defaults.clients]`; defaults cannot pin fingerprints
//! (one certificate for every agency is never what anyone means). Subject rules are only as
//! good as the CA that issued the certificate, so they are applied after path validation,
//! never instead of it.
//!
//! # Delivery and policy
//! Each agency says how packages reach it ([`Delivery`]): `pull` (the default: its system
//! polls its inbox on the hub, as on today's national axis) or `push` (the hub POSTs each
//! package to `push_url`, trusting for that endpoint the certificates in `push_ca`, or the
//! hub's own trust anchors when it is absent). Its [`AgencyPolicy`] says what the hub
//! accepts from it: a signature is required (default yes), legacy algorithms are refused
//! (default) and packages are parsed strictly (default).
//!
//! # File format (TOML)
//! ```toml
//! [defaults.signers]
//! subject = ["serialNumber", "OU"]      # attributes that may carry the agency id
//! san_uri = "urn:truc:agency:{id}"      # optional
//!
//! [[agency]]
//! id = "000.00.00.G12"
//! name = "Bộ Tài chính"
//! token_sha256 = "…"                    # optional: SHA-256 (hex) of its bearer token
//! delivery = "push"                     # optional: "pull" (default) or "push"
//! push_url = "https://docs.example.vn/inbox"  # required with push, refused with pull
//! push_ca = "certs/btc-ca.pem"          # optional, push only: PEM to trust for push_url
//!                                       # (relative to this file; default: the hub's anchors)
//! [agency.signers]                      # optional: replaces defaults.signers
//! fingerprints = ["ab:cd:…"]            # SHA-256 of the DER certificate, hex
//! subject = ["serialNumber"]
//! [agency.policy]                       # optional; every key has a default
//! signature_required = true             # refuse unsigned packages from this agency
//! allow_legacy = false                  # accept RSA-SHA1, SHA-1 digests, short RSA keys
//! lenient = false                       # parse its packages in lenient mode
//! ```
//! Unknown keys, duplicate identifiers, malformed fingerprints and hashes, unknown attribute
//! names, a `san_uri` without `{id}`, a push agency without an `https://` `push_url` and
//! push settings on a pull agency are errors when the file loads. The `push_ca` file is not
//! read here (the hub's configuration check reads it).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Deserialize;

use crate::edxml::AgencyId;
use crate::pki::{CertId, Certificate, Purpose, TrustStore, ValidPath};

/// Subject attributes a rule may name, with their OIDs.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("serialNumber", "2.5.4.5"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("UID", "0.9.2342.19200300.100.1.1"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    agency: Vec<RawAgency>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    signers: Option<RawRule>,
    clients: Option<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgency {
    id: String,
    name: String,
    token_sha256: Option<String>,
    #[serde(default)]
    delivery: RawDelivery,
    push_url: Option<String>,
    push_ca: Option<PathBuf>,
    signers: Option<RawRule>,
    clients: Option<RawRule>,
    #[serde(default)]
    policy: AgencyPolicy,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawDelivery {
    #[default]
    Pull,
    Push,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    fingerprints: Vec<String>,
    #[serde(default)]
    subject: Vec<String>,
    san_uri: Option<String>,
}

/// A directory file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("agency directory: {0}")]
pub struct DirectoryError(String);

/// Which certificates a rule admits for an agency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    fingerprints: Vec<String>,
    attributes: Vec<(&'static str, &'static str)>,
    san_uri: Option<String>,
}

impl Rule {
    fn from_raw(raw: RawRule, allow_pins: bool, what: &str) -> Result<Self, DirectoryError> {
        if !allow_pins && !raw.fingerprints.is_empty() {
            return Err(DirectoryError(format!(
                "{what}: fingerprints cannot be set in [defaults]"
            )));
        }
        let fingerprints = raw
            .fingerprints
            .iter()
            .map(|f| {
                parse_hex32(f).ok_or_else(|| {
                    DirectoryError(format!(
                        "{what}: {f:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let attributes = raw
            .subject
            .iter()
            .map(|name| {
                ATTRIBUTES
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .copied()
                    .ok_or_else(|| {
                        DirectoryError(format!(
                            "{what}: unknown subject attribute {name:?} (serialNumber, OU, CN or UID)"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        if let Some(t) = raw.san_uri.as_ref().filter(|t| !t.contains("{id}")) {
            return Err(DirectoryError(format!(
                "{what}: san_uri {t:?} must contain {{id}}"
            )));
        }
        Ok(Rule {
            fingerprints,
            attributes,
            san_uri: raw.san_uri,
        })
    }

    /// Why `cert` may act for agency `id` under this rule, if it may.
    pub fn admits(&self, id: &str, cert: &Certificate) -> Option<String> {
        if self.fingerprints.contains(&cert.fingerprint) {
            return Some("pinned certificate fingerprint".into());
        }
        for (name, oid) in &self.attributes {
            if cert.subject_attribute(oid).any(|v| v == id) {
                return Some(format!("subject {name}={id}"));
            }
        }
        if let Some(t) = &self.san_uri {
            let want = t.replace("{id}", id);
            if cert.san_uris().contains(&want) {
                return Some(format!("subjectAltName URI {want}"));
            }
        }
        None
    }

    /// Whether the rule admits nothing.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty() && self.attributes.is_empty() && self.san_uri.is_none()
    }
}

/// How packages (and receipts and status packages) addressed to an agency reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Its system polls its inbox on the hub (`GET /api/v1/inbox`). The default.
    #[default]
    Pull,
    /// The hub POSTs each package to its endpoint.
    Push {
        /// The endpoint: an absolute `https://` URL.
        url: http::Uri,
        /// PEM file of the certificates to trust for the endpoint's TLS server certificate;
        /// `None`: the hub's own trust anchors. Relative paths in a directory file read with
        /// [`Directory::load`] are resolved against the file's directory.
        ca: Option<PathBuf>,
    },
}

/// What the hub accepts from an agency (`[agency.policy]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgencyPolicy {
    /// Refuse packages without a signature (`signature-required`). Default `true`.
    pub signature_required: bool,
    /// Accept the legacy algorithms of the national CAs (RSA-SHA1, SHA-1 digests, RSA keys
    /// of 1024 to 2047 bits, sha1WithRSA certificates), each use reported. Default `false`.
    pub allow_legacy: bool,
    /// Parse its packages in lenient mode (the quirks of field traffic become warnings).
    /// Default `false`.
    pub lenient: bool,
}

impl Default for AgencyPolicy {
    fn default() -> Self {
        AgencyPolicy {
            signature_required: true,
            allow_legacy: false,
            lenient: false,
        }
    }
}

/// One agency.
#[derive(Clone, Debug)]
pub struct Agency {
    /// Its identifier.
    pub id: AgencyId,
    /// Its name.
    pub name: String,
    /// Who may sign packages it sends.
    pub signers: Rule,
    /// Which TLS client certificates authenticate it.
    pub clients: Rule,
    /// How packages addressed to it are delivered.
    pub delivery: Delivery,
    /// What the hub accepts from it.
    pub policy: AgencyPolicy,
}

/// The agency directory.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    agencies: BTreeMap<String, Agency>,
    tokens: HashMap<String, String>,
}

/// A signer allowed to sign for a sender, and by which rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Authorization {
    /// The sender.
    pub agency: String,
    /// The rule that admitted the signer.
    pub by: String,
}

/// A signer not allowed to sign for the package's sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct NotAuthorized {
    /// `From/OrganId`.
    pub sender: String,
    /// The signer certificate, when the key came with one.
    pub signer: Option<CertId>,
    /// Why.
    pub reason: String,
}

impl NotAuthorized {
    /// The stable code.
    pub const CODE: &'static str = "signer-not-authorized-for-sender";
}

impl fmt::Display for NotAuthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.signer {
            Some(s) => write!(
                f,
                "signer {s} may not sign for {}: {}",
                self.sender, self.reason
            ),
            None => write!(
                f,
                "the signer may not sign for {}: {}",
                self.sender, self.reason
            ),
        }
    }
}

/// A TLS client that does not authenticate as an agency.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The certificate path is not trusted for TLS client authentication.
    #[error("client certificate not trusted: {0}")]
    Untrusted(String),
    /// No agency's `clients` rule admits the certificate.
    #[error("client certificate {0} belongs to no agency in the directory")]
    NoAgency(CertId),
    /// Several agencies' rules admit it: configuration error, refused.
    #[error("client certificate {cert} matches several agencies ({})", agencies.join(", "))]
    Ambiguous {
        /// The certificate.
        cert: CertId,
        /// The agencies.
        agencies: Vec<String>,
    },
}

impl Directory {
    /// Parses a directory file's text; relative `push_ca` paths are kept as written.
    pub fn from_toml(text: &str) -> Result<Self, DirectoryError> {
        Self::parse(text, None)
    }

    fn parse(text: &str, base: Option<&Path>) -> Result<Self, DirectoryError> {
        let raw: RawDirectory = toml::from_str(text).map_err(|e| DirectoryError(e.to_string()))?;
        let default_signers = raw
            .defaults
            .signers
            .map(|r| Rule::from_raw(r, false, "defaults.signers"))
            .transpose()?
            .unwrap_or_default();
        let default_clients = raw
            .defaults
            .clients
            .map(|r| Rule::from_raw(r, false, "defaults.clients"))
            .transpose()?
            .unwrap_or_default();
        let mut dir = Directory::default();
        for a in raw.agency {
            let id = AgencyId::parse(&a.id)
                .map_err(|e| DirectoryError(format!("agency {:?}: {e}", a.id)))?;
            let what = |part: &str| format!("agency {id} {part}");
            let signers = match a.signers {
                Some(r) => Rule::from_raw(r, true, &what("signers"))?,
                None => default_signers.clone(),
            };
            let clients = match a.clients {
                Some(r) => Rule::from_raw(r, true, &what("clients"))?,
                None => default_clients.clone(),
            };
            let token_sha256 = a
                .token_sha256
                .map(|t| {
                    parse_hex32(&t).ok_or_else(|| {
                        DirectoryError(format!("{}: not a SHA-256 hash", what("token_sha256")))
                    })
                })
                .transpose()?;
            if let Some(t) = &token_sha256 {
                if let Some(other) = dir.tokens.insert(t.clone(), id.to_string()) {
                    return Err(DirectoryError(format!(
                        "agencies {other} and {id} have the same token"
                    )));
                }
            }
            let delivery = match (a.delivery, a.push_url, a.push_ca) {
                (RawDelivery::Pull, None, None) => Delivery::Pull,
                (RawDelivery::Pull, _, _) => {
                    return Err(DirectoryError(format!(
                        "{}: push_url and push_ca need delivery = \"push\"",
                        what("delivery")
                    )));
                }
                (RawDelivery::Push, None, _) => {
                    return Err(DirectoryError(format!(
                        "{}: delivery = \"push\" needs a push_url",
                        what("delivery")
                    )));
                }
                (RawDelivery::Push, Some(url), ca) => Delivery::Push {
                    url: push_url(&url).map_err(|e| {
                        DirectoryError(format!("{}: {url:?}: {e}", what("push_url")))
                    })?,
                    ca: ca.map(|p| match base {
                        Some(b) if p.is_relative() => b.join(p),
                        _ => p,
                    }),
                },
            };
            let key = id.to_string();
            let agency = Agency {
                id,
                name: a.name,
                signers,
                clients,
                delivery,
                policy: a.policy,
            };
            if dir.agencies.insert(key.clone(), agency).is_some() {
                return Err(DirectoryError(format!("agency {key} is listed twice")));
            }
        }
        Ok(dir)
    }

    /// Reads a directory file.
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DirectoryError(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        Self::parse(&text, Some(base.unwrap_or(Path::new("."))))
            .map_err(|e| DirectoryError(format!("{}: {}", path.display(), e.0)))
    }

    /// The agency with this identifier.
    pub fn agency(&self, id: &str) -> Option<&Agency> {
        self.agencies.get(id)
    }

    /// Every agency, by identifier.
    pub fn agencies(&self) -> impl Iterator<Item = &Agency> {
        self.agencies.values()
    }

    /// Whether `signer` (the certificate a verified signature was made with, if any) may
    /// sign packages sent by `sender`.
    pub fn authorize_signer(
        &self,
        sender: &str,
        signer: Option<&Certificate>,
    ) -> Result<Authorization, NotAuthorized> {
        let refuse = |reason: String| NotAuthorized {
            sender: sender.to_owned(),
            signer: signer.map(Certificate::id),
            reason,
        };
        let Some(agency) = self.agency(sender) else {
            return Err(refuse("the sender is not in the agency directory".into()));
        };
        let Some(cert) = signer else {
            return Err(refuse(
                "the key came without a certificate, and the directory admits certificates".into(),
            ));
        };
        if agency.signers.is_empty() {
            return Err(refuse(
                "the directory lists no signer for this agency".into(),
            ));
        }
        match agency.signers.admits(sender, cert) {
            Some(by) => Ok(Authorization {
                agency: sender.to_owned(),
                by,
            }),
            None => Err(refuse(format!(
                "no signer rule of {sender} ({}) admits it",
                agency.name
            ))),
        }
    }

    /// The agency a TLS client certificate authenticates: its path (`chain[0]` the client,
    /// the rest as sent) must be trusted for TLS client authentication at `now`, and exactly
    /// one agency's `clients` rule must admit it.
    pub fn authenticate_client(
        &self,
        trust: &TrustStore,
        chain: &[Certificate],
        now: Timestamp,
    ) -> Result<(&Agency, ValidPath), ClientError> {
        let Some(leaf) = chain.first() else {
            return Err(ClientError::Untrusted("no certificate presented".into()));
        };
        let path = trust
            .validate(leaf, &chain[1..], Purpose::TlsClient, false, now)
            .map_err(|e| ClientError::Untrusted(e.to_string()))?;
        let matches: Vec<&Agency> = self
            .agencies
            .values()
            .filter(|a| a.clients.admits(a.id.as_str(), leaf).is_some())
            .collect();
        match matches.as_slice() {
            [one] => Ok((one, path)),
            [] => Err(ClientError::NoAgency(leaf.id())),
            many => Err(ClientError::Ambiguous {
                cert: leaf.id(),
                agencies: many.iter().map(|a| a.id.to_string()).collect(),
            }),
        }
    }

    /// The agency whose bearer token this is.
    pub fn token_agency(&self, token: &str) -> Option<&Agency> {
        let hash = crate::pki::sha256_hex(token.as_bytes());
        self.tokens.get(&hash).and_then(|id| self.agencies.get(id))
    }
}

/// A push endpoint: an absolute `https://` URL with a host.
fn push_url(text: &str) -> Result<http::Uri, &'static str> {
    let uri: http::Uri = text.parse().map_err(|_| "not a URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("must be an https:// URL");
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    Ok(uri)
}

/// 64 hex digits (colons and case ignored) as lower-case hex.
fn parse_hex32(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests;
