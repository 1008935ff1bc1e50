//! [`Certificate`]: an X.509 certificate parsed once with x509-parser into owned values.
//!
//! Parsing never judges: a certificate with an unknown critical extension, a malformed
//! extension or an unsupported key still parses, and the problem is recorded for path
//! validation ([`super::chain`]) to refuse with context. Only bytes that are not a
//! certificate at all are an error here.

use std::fmt;
use std::path::Path;

use jiff::Timestamp;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dsig::crypto::{self, EcdsaEncoding, KeyError, Legacy, PublicKey, SignatureAlg};

const MD5_WITH_RSA: &str = "1.2.840.113549.1.1.4";

/// Extensions path validation understands. A critical extension outside this list makes
/// the certificate unusable ([`super::Problem::CriticalExtension`]).
///
/// `certificatePolicies` is understood in the sense that truc requires no particular
/// policy (the initial policy set is any-policy and no explicit policy is demanded), so a
/// critical one is satisfied; name constraints, policy constraints and mappings and
/// inhibit-any-policy are not implemented and therefore refused when critical.
const UNDERSTOOD: &[&str] = &[
    "2.5.29.14",         // subjectKeyIdentifier
    "2.5.29.15",         // keyUsage
    "2.5.29.17",         // subjectAltName
    "2.5.29.18",         // issuerAltName
    "2.5.29.19",         // basicConstraints
    "2.5.29.31",         // cRLDistributionPoints
    "2.5.29.32",         // certificatePolicies
    "2.5.29.35",         // authorityKeyIdentifier
    "2.5.29.37",         // extendedKeyUsage
    "1.3.6.1.5.5.7.1.1", // authorityInfoAccess
];

/// keyUsage bits (RFC 5280 §4.2.1.3), as x509-parser numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUsage(u16);

impl KeyUsage {
    /// digitalSignature.
    pub fn digital_signature(self) -> bool {
        self.0 & 1 != 0
    }
    /// nonRepudiation (contentCommitment).
    pub fn non_repudiation(self) -> bool {
        self.0 & 2 != 0
    }
    /// keyEncipherment.
    pub fn key_encipherment(self) -> bool {
        self.0 & 4 != 0
    }
    /// keyCertSign.
    pub fn key_cert_sign(self) -> bool {
        self.0 & 32 != 0
    }
    /// cRLSign.
    pub fn crl_sign(self) -> bool {
        self.0 & 64 != 0
    }
}

/// extendedKeyUsage purposes (RFC 5280 §4.2.1.12) truc distinguishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtKeyUsage {
    /// anyExtendedKeyUsage.
    pub any: bool,
    /// id-kp-serverAuth.
    pub server_auth: bool,
    /// id-kp-clientAuth.
    pub client_auth: bool,
    /// id-kp-emailProtection.
    pub email_protection: bool,
    /// Other purposes, dotted OIDs (documentSigning 1.3.6.1.5.5.7.3.36, ...).
    pub other: Vec<String>,
}

/// Entries of the cache of [`Certificate::from_text_cached`].
pub const CERT_CACHE_SIZE: usize = 512;

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
    /// Subject and issuer in the comparison form of [`normalized_name`].
    pub(super) subject_norm: String,
    pub(super) issuer_norm: String,
    /// Serial bytes without leading zeros, as CRL entries are matched.
    pub(super) serial_raw: Vec<u8>,
    tbs: std::ops::Range<usize>,
    signature_oid: String,
    signature: Vec<u8>,
    pub(super) basic_constraints: Option<(bool, Option<u32>)>,
    pub(super) key_usage: Option<KeyUsage>,
    pub(super) ext_key_usage: Option<ExtKeyUsage>,
    pub(super) subject_key_id: Option<Vec<u8>>,
    pub(super) authority_key_id: Option<Vec<u8>>,
    /// Critical extensions outside [`UNDERSTOOD`], dotted OIDs.
    pub(super) unknown_critical: Vec<String>,
    /// Extensions that did not parse or appear twice.
    pub(super) malformed: Option<String>,
    attributes: Vec<(String, String)>,
    san_uris: Vec<String>,
    key: Result<PublicKey, KeyError>,
}

/// A certificate that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertError(pub String);

impl Certificate {
    /// A certificate from its encoded text (base64 in a KeyInfo, say; `decode` turns it into
    /// DER), through a process-wide cache keyed by the text itself: the certificates in
    /// KeyInfo repeat from package to package (an agency signs with the same certificate all
    /// year, the hub's receipts carry the hub's chain), so a hit costs neither the decoding
    /// nor the parse. Entries are found by the text's length and last 64 bytes (the end of
    /// the certificate's signature, which differs between any two certificates) and the whole
    /// text is compared, so a hit is exactly the certificate a parse would give. Failures are
    /// not cached (`decode`'s error, or `parse_error` of the parse's). At most
    /// [`CERT_CACHE_SIZE`] entries: a full cache is emptied and refilled.
    pub fn from_text_cached<E>(
        text: &str,
        decode: impl FnOnce(&str) -> Result<Vec<u8>, E>,
        parse_error: impl FnOnce(CertError) -> E,
    ) -> Result<Self, E> {
        use std::collections::HashMap;
        use std::hash::{BuildHasher, Hash, Hasher};
        use std::sync::{Mutex, OnceLock};
        type Cache = (
            std::collections::hash_map::RandomState,
            HashMap<u64, Vec<(Box<str>, Certificate)>>,
        );
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(Default::default()));
        let key = {
            let c = cache.lock().unwrap_or_else(|p| p.into_inner());
            let mut h = c.0.build_hasher();
            let b = text.as_bytes();
            b.len().hash(&mut h);
            b[b.len().saturating_sub(64)..].hash(&mut h);
            let key = h.finish();
            let hit =
                c.1.get(&key)
                    .and_then(|b| b.iter().find(|(t, _)| **t == *text));
            if let Some((_, cert)) = hit {
                return Ok(cert.clone());
            }
            key
        };
        let cert = Certificate::from_der(decode(text)?).map_err(parse_error)?;
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.1.values().map(Vec::len).sum::<usize>() >= CERT_CACHE_SIZE {
            c.1.clear();
        }
        let bucket = c.1.entry(key).or_default();
        // Another thread may have parsed the same text meanwhile.
        if !bucket.iter().any(|(t, _)| **t == *text) {
            bucket.push((text.into(), cert.clone()));
        }
        Ok(cert)
    }

    /// Parses one DER certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Self, CertError> {
        let (rest, cert) = X509Certificate::from_der(&der)
            .map_err(|e| CertError(format!("not an X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(CertError("trailing bytes after the certificate".into()));
        }
        let tbs_raw: &[u8] = cert.tbs_certificate.as_ref();
        let tbs_start = tbs_raw.as_ptr() as usize - der.as_ptr() as usize;
        let mut out = Certificate {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before: asn1_time(cert.validity().not_before)?,
            not_after: asn1_time(cert.validity().not_after)?,
            fingerprint: super::sha256_hex(&der),
            subject_norm: normalized_name(cert.subject()),
            issuer_norm: normalized_name(cert.issuer()),
            serial_raw: strip_zeros(cert.raw_serial()).to_vec(),
            tbs: tbs_start..tbs_start + tbs_raw.len(),
            signature_oid: cert.signature_algorithm.algorithm.to_id_string(),
            signature: cert.signature_value.data.to_vec(),
            basic_constraints: None,
            key_usage: None,
            ext_key_usage: None,
            subject_key_id: None,
            authority_key_id: None,
            unknown_critical: Vec::new(),
            malformed: None,
            attributes: cert
                .subject()
                .iter_attributes()
                .filter_map(|a| {
                    let value = a.as_str().ok()?;
                    Some((a.attr_type().to_id_string(), value.to_owned()))
                })
                .collect(),
            san_uris: Vec::new(),
            key: PublicKey::from_spki(cert.public_key()),
            der: Vec::new(),
        };
        out.read_extensions(&cert);
        out.der = der;
        Ok(out)
    }

    fn read_extensions(&mut self, cert: &X509Certificate<'_>) {
        let mut seen = std::collections::HashSet::new();
        for ext in cert.extensions() {
            let oid = ext.oid.to_id_string();
            if !seen.insert(oid.clone()) {
                self.malformed = Some(format!("extension {oid} appears twice"));
            }
            if ext.critical && !UNDERSTOOD.contains(&oid.as_str()) {
                self.unknown_critical.push(oid.clone());
            }
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    self.basic_constraints = Some((bc.ca, bc.path_len_constraint));
                }
                ParsedExtension::KeyUsage(ku) => self.key_usage = Some(KeyUsage(ku.flags)),
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    self.ext_key_usage = Some(ExtKeyUsage {
                        any: eku.any,
                        server_auth: eku.server_auth,
                        client_auth: eku.client_auth,
                        email_protection: eku.email_protection,
                        other: [
                            (eku.code_signing, "1.3.6.1.5.5.7.3.3"),
                            (eku.time_stamping, "1.3.6.1.5.5.7.3.8"),
                            (eku.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
                        ]
                        .into_iter()
                        .filter(|(set, _)| *set)
                        .map(|(_, oid)| oid.to_owned())
                        .chain(eku.other.iter().map(|o| o.to_id_string()))
                        .collect(),
                    });
                }
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    self.subject_key_id = Some(id.0.to_vec());
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    self.authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        if let GeneralName::URI(u) = name {
                            self.san_uris.push((*u).to_owned());
                        }
                    }
                }
                ParsedExtension::ParseError { error } => {
                    self.malformed = Some(format!("extension {oid} does not parse: {error}"));
                }
                _ => {}
            }
        }
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
        let result = if is_pem(&bytes) {
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

    /// Whether basicConstraints says CA.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.is_some_and(|(ca, _)| ca)
    }

    /// Whether subject and issuer are the same name (a root, or a CA's key rollover).
    pub fn is_self_issued(&self) -> bool {
        self.subject_norm == self.issuer_norm
    }

    /// Values of the subject attribute with this dotted OID, in order.
    pub fn subject_attribute<'a>(&'a self, oid: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |(o, _)| o == oid)
            .map(|(_, v)| v.as_str())
    }

    /// URIs in subjectAltName.
    pub fn san_uris(&self) -> &[String] {
        &self.san_uris
    }

    /// Legacy features of this certificate on its own: a SHA-1 or MD5 signature, an RSA key
    /// under 2048 bits.
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

    /// Whether `other` may have issued `self`: its subject is our issuer name and, when both
    /// carry key identifiers, they agree.
    pub(super) fn names_issuer(&self, other: &Certificate) -> bool {
        self.issuer_norm == other.subject_norm
            && match (&self.authority_key_id, &other.subject_key_id) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
    }

    /// Whether `now` lies within the validity period.
    pub fn valid_at(&self, now: Timestamp) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Verifies this certificate's signature with `issuer`'s key, under the legacy policy
    /// `allow_legacy`; returns the legacy features used.
    pub(super) fn check_signed_by(
        &self,
        issuer: &Certificate,
        allow_legacy: bool,
    ) -> Result<Vec<Legacy>, LinkError> {
        check_signature(
            &self.signature_oid,
            &self.der[self.tbs.clone()],
            &self.signature,
            issuer,
            allow_legacy,
        )
    }

    /// A short identification for messages: subject, serial and fingerprint.
    pub fn id(&self) -> CertId {
        CertId {
            subject: self.subject.clone(),
            serial: self.serial.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Why a signature by an issuer over a certificate or CRL does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LinkError {
    /// The algorithm is unknown, or legacy and the policy does not allow it.
    Algorithm(String),
    /// The signature does not verify with the issuer's key.
    Signature,
}

/// Verifies `signature` (algorithm `oid`) over `tbs` with `issuer`'s key.
pub(super) fn check_signature(
    oid: &str,
    tbs: &[u8],
    signature: &[u8],
    issuer: &Certificate,
    allow_legacy: bool,
) -> Result<Vec<Legacy>, LinkError> {
    let key = issuer
        .key()
        .map_err(|e| LinkError::Algorithm(format!("issuer key: {e}")))?;
    if oid == MD5_WITH_RSA {
        if !allow_legacy {
            return Err(LinkError::Algorithm(
                "signed with md5WithRSA (legacy policy not enabled)".into(),
            ));
        }
        return if crypto::verify_rsa_md5(key, tbs, signature) {
            Ok(vec![Legacy::Md5Certificate])
        } else {
            Err(LinkError::Signature)
        };
    }
    let alg = SignatureAlg::from_x509_oid(oid)
        .ok_or_else(|| LinkError::Algorithm(format!("unsupported signature algorithm {oid}")))?;
    let mut legacy = Vec::new();
    if alg.hash == crypto::Hash::Sha1 {
        if !allow_legacy {
            return Err(LinkError::Algorithm(
                "signed with sha1WithRSA (legacy policy not enabled)".into(),
            ));
        }
        legacy.push(Legacy::Sha1Certificate);
    }
    if let Some(l) = key
        .check_policy(allow_legacy)
        .map_err(|e| LinkError::Algorithm(format!("issuer key: {e}")))?
    {
        legacy.push(l);
    }
    crypto::verify(key, alg, EcdsaEncoding::Der, tbs, signature)
        .map_err(|_| LinkError::Signature)?;
    Ok(legacy)
}

/// Which certificate, for messages and reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertId {
    /// Subject DN.
    pub subject: String,
    /// Serial, hex.
    pub serial: String,
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} (serial {}, SHA-256 {})",
            self.subject, self.serial, self.fingerprint
        )
    }
}

impl fmt::Display for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.id().fmt(f)
    }
}

/// A distinguished name in a form where names that RFC 5280 §7.1 calls equal are equal
/// strings: string values trimmed, inner whitespace collapsed and case folded, whatever the
/// ASN.1 string type (PrintableString in one certificate, UTF8String in the other is common
/// in the field); attributes of a multi-valued RDN sorted; every value length-prefixed so no
/// two different names collide. Names only choose candidate issuers and CRLs: signatures
/// decide.
pub(super) fn normalized_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for rdn in name.iter() {
        let mut attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let value = match a.as_str() {
                    Ok(v) => v
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .to_lowercase(),
                    Err(_) => format!("#{}", super::hex(a.attr_value().data)),
                };
                format!("{}={}:{value}", a.attr_type().to_id_string(), value.len())
            })
            .collect();
        attrs.sort();
        let _ = write!(out, "{}:[{}]", attrs.len(), attrs.join("+"));
    }
    out
}

/// An x509-parser time as a timestamp.
pub(super) fn asn1_time(t: x509_parser::time::ASN1Time) -> Result<Timestamp, CertError> {
    Timestamp::from_second(t.timestamp()).map_err(|e| CertError(format!("time out of range: {e}")))
}

/// Whether a file looks like PEM rather than DER.
pub(super) fn is_pem(bytes: &[u8]) -> bool {
    bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// A serial number without its leading zero bytes.
pub(super) fn strip_zeros(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}
