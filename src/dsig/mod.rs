//! XML-Signature: verify and sign, over the crate's one XML tree, ring and x509-parser.
//!
//! # Architecture
//! ```text
//! c14n      pure canonicalization (C14N 1.0 / 1.1 / Exclusive, ± comments) of a node-set
//! crypto    the allow-list of algorithm URIs, public keys, ring verification
//! verify    core validation of one ds:Signature: structure → policy → key → SignedInfo
//!           signature → every Reference digest → trust; returns a Verdict
//! package   the edXML package policy on top, and VerifiedPackage
//! sign      enveloped signatures over a whole document (packages, receipts)
//! ```
//! Certificates and path validation live in [`crate::pki`].
//!
//! # Invariants
//! - One parse, one tree: the bytes verified are the bytes the caller reads
//!   ([`crate::xml::Document`]); nothing is re-serialized.
//! - Fail closed: an algorithm, transform, URI form or key outside the allow-lists is a
//!   [`Verdict::Refused`], never skipped. No XPath, XSLT, base64 or decryption transforms; no
//!   external, Manifest or (outside the legacy policy) `#xpointer` references; no HMAC or DSA.
//! - No DOCTYPE is ever read (the parser refuses it), so no entities, no external fetches.
//! - Id attributes (`Id`, `ID`, `id`, `xml:id`, `wsu:Id`) must be unique in the whole document;
//!   a duplicate makes every reference ambiguous and the signature invalid.
//! - Legacy features (SHA-1, RSA under 2048 bits, `#xpointer`) are used only when the policy
//!   allows them, and every use is listed in the [`Report`].
//! - Verification takes `now` as an argument; nothing here reads the clock.
//!
//! # What a verdict means
//! [`Verdict::Valid`] is core validation (SignedInfo signature and every Reference digest)
//! under the active [`Policy`], with a key that is trusted: a path to an anchor, a pinned key,
//! or — only when the caller said so — whatever KeyInfo carries. The strict policy
//! ([`Policy::strict`]) adds the document-level shape the hub demands of a package: exactly
//! one Signature, exactly one Reference covering the whole document with the enveloped
//! transform and one canonicalization, no `ds:Object`.

pub mod c14n;
pub mod crypto;
pub mod package;
pub mod sign;
pub mod verify;

use std::fmt;

use serde::Serialize;

pub use crypto::{Hash, Legacy, PublicKey, SignatureAlg};
pub use package::{PackageError, VerifiedPackage, verify_package, verify_parsed};
pub use sign::{SelfCheck, SignError, Signer};
pub use verify::{Keys, Policy, verify, verify_signature};

/// The XML-Signature namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// The XML-Signature 1.1 namespace (ECKeyValue, DEREncodedKeyValue).
pub const DSIG11_NS: &str = "http://www.w3.org/2009/xmldsig11#";
/// The enveloped-signature transform.
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The outcome of verifying a signature. A value, not an error: every outcome is expected.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Core validation passed with a trusted key.
    Valid(Box<Report>),
    /// The signature or a digest does not match, or the Signature is malformed.
    Invalid(Failure),
    /// An algorithm, transform, reference form, key or shape outside the policy.
    Refused(Failure),
    /// The cryptography holds but the key is not trusted.
    Untrusted(Failure),
}

impl Verdict {
    /// The `truc dsig verify` exit code: 0 valid, 1 invalid, 2 refused, 3 untrusted.
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Valid(_) => 0,
            Verdict::Invalid(_) => 1,
            Verdict::Refused(_) => 2,
            Verdict::Untrusted(_) => 3,
        }
    }

    /// The report, when valid.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Verdict::Valid(r) => Some(r),
            _ => None,
        }
    }

    /// The failure, when not valid.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Verdict::Valid(_) => None,
            Verdict::Invalid(f) | Verdict::Refused(f) | Verdict::Untrusted(f) => Some(f),
        }
    }

    pub(crate) fn invalid(code: &'static str, reason: impl Into<String>) -> Self {
        Verdict::Invalid(Failure::new(code, reason))
    }

    pub(crate) fn refused(code: &'static str, reason: impl Into<String>) -> Self {
        Verdict::Refused(Failure::new(code, reason))
    }

    pub(crate) fn untrusted(code: &'static str, reason: impl Into<String>) -> Self {
        Verdict::Untrusted(Failure::new(code, reason))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Valid(r) => write!(f, "valid: {r}"),
            Verdict::Invalid(x) => write!(f, "invalid: {x}"),
            Verdict::Refused(x) => write!(f, "refused: {x}"),
            Verdict::Untrusted(x) => write!(f, "untrusted: {x}"),
        }
    }
}

/// What went wrong, for a verdict other than valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// A stable kebab-case code (`digest-mismatch`, `unsupported-transform`, ...).
    pub code: &'static str,
    /// A sentence for people.
    pub reason: String,
    /// For digest mismatches: which Reference (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<usize>,
    /// For digest mismatches: the DigestValue in the signature (base64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// For digest mismatches: the digest of what the Reference resolved to (base64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

impl Failure {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Failure {
            code,
            reason: reason.into(),
            reference: None,
            expected: None,
            actual: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)?;
        if let (Some(e), Some(a)) = (&self.expected, &self.actual) {
            write!(f, " (expected {e}, computed {a})")?;
        }
        Ok(())
    }
}

/// What a valid signature covered and how it was checked.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The SignatureMethod.
    pub signature_method: String,
    /// The SignedInfo CanonicalizationMethod.
    pub canonicalization: String,
    /// The signer key ("RSA-2048", "EC-P256").
    pub key: String,
    /// Where the key came from and why it is trusted.
    pub key_source: KeySource,
    /// The signer certificate, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<CertInfo>,
    /// The certificate path to the anchor, signer first (empty unless a path was validated).
    pub chain: Vec<CertInfo>,
    /// Every Reference and what it resolved to.
    pub references: Vec<ReferenceReport>,
    /// Legacy features used (empty under the default policy).
    pub legacy: Vec<Legacy>,
    /// What did not stop the decision but should be seen (a revocation check soft-failed,
    /// the signer was revoked after the time judged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// For a package checked against the agency directory: why the signer may sign for
    /// the sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<crate::directory::Authorization>,
    /// How long each part of the verification took (for metrics; never part of a verdict).
    #[serde(skip)]
    pub timings: Timings,
}

/// Where a verification spent its time, from the monotonic clock
/// ([`crate::clock::monotonic`]). Measurement only: nothing decides by it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Canonicalizing and digesting what the References select.
    pub digest: std::time::Duration,
    /// Canonicalizing SignedInfo, reading the key and checking the signature value.
    pub signature: std::time::Duration,
    /// The signer's certificate path to an anchor with revocation, and (for packages) its
    /// authorization for the sender.
    pub chain: std::time::Duration,
}

/// A certificate, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial, hex.
    pub serial: String,
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
}

impl From<&crate::pki::Certificate> for CertInfo {
    fn from(c: &crate::pki::Certificate) -> Self {
        CertInfo {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            serial: c.serial.clone(),
            fingerprint: c.fingerprint.clone(),
        }
    }
}

/// Why the key was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySource {
    /// A certificate path to a configured anchor.
    TrustedChain,
    /// A pinned certificate or public key.
    Pinned,
    /// The key in KeyInfo, unchecked (explicit insecure mode).
    Insecure,
}

/// One verified Reference.
#[derive(Clone, Debug, Serialize)]
pub struct ReferenceReport {
    /// The URI attribute.
    pub uri: String,
    /// What it resolved to.
    pub resolved: String,
    /// Transform URIs in order.
    pub transforms: Vec<String>,
    /// The DigestMethod.
    pub digest_method: String,
    /// The digest (base64).
    pub digest: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} with {}", self.signature_method, self.key)?;
        match (&self.signer, self.key_source) {
            (Some(s), KeySource::TrustedChain) => {
                write!(f, ", signer {} (trusted chain)", s.subject)?
            }
            (Some(s), KeySource::Pinned) => write!(f, ", signer {} (pinned)", s.subject)?,
            (Some(s), KeySource::Insecure) => {
                write!(f, ", signer {} (NOT checked: --insecure)", s.subject)?
            }
            (None, KeySource::Pinned) => write!(f, ", pinned key")?,
            (None, _) => write!(f, ", key from KeyInfo (NOT checked: --insecure)")?,
        }
        for r in &self.references {
            write!(f, "; reference {:?} covers {}", r.uri, r.resolved)?;
        }
        if let Some(a) = &self.authorization {
            write!(f, "; may sign for {} ({})", a.agency, a.by)?;
        }
        if !self.legacy.is_empty() {
            let l: Vec<String> = self.legacy.iter().map(|l| l.to_string()).collect();
            write!(f, "; LEGACY: {}", l.join(", "))?;
        }
        for w in &self.warnings {
            write!(f, "; WARNING: {w}")?;
        }
        Ok(())
    }
}
