//! Signed receipts: what the hub hands an agency as proof of what happened to a package.
//!
//! A receipt is a small XML document, signed by the hub, that anyone can check with standard
//! tools (`xmlsec1 verify --trusted-pem root-ca.pem receipt.xml`). It says which package (by
//! message id, DocumentId and the SHA-256 of the exact bytes received), from whom to whom,
//! how the package's own signature was judged, which hub said so and when.
//!
//! # Kinds
//! - [`Kind::Acceptance`]: issued synchronously when a package is accepted; names every
//!   recipient.
//! - [`Kind::Delivery`]: one per recipient, when the package was pushed with a 2xx answer or
//!   the recipient acknowledged it.
//! - [`Kind::Failure`]: one per recipient, when the delivery is dead (retries exhausted) or the
//!   recipient rejected it; carries the reason.
//! - [`Kind::Cancellation`]: one per recipient, when the sender revoked the package before it
//!   was delivered; carries the reason.
//!
//! Delivery, failure and cancellation receipts name the one recipient concerned and may carry
//! the delivery id and the number of attempts made. Receipt ids are chosen by the caller;
//! [`receipt_id`] derives them deterministically (`<message id>-acceptance`,
//! `<delivery id>-delivery`, ...), so a receipt issued again after a crash has the same id.
//!
//! # Format
//! Namespace `urn:truc:receipt:1` ([`NS`]), root element `Receipt`, defined by
//! `schemas/receipt.xsd`. Elements, in this order, each at most once unless marked:
//! ```text
//! Receipt
//!   ReceiptId  Kind  IssuedAt (RFC 3339, UTC, `Z`)  Hub
//!   MessageId  DocumentId?  Sender  Recipient+ (acceptance: all; otherwise exactly one)
//!   PackageSha256 (64 lower-case hex digits)
//!   Verdict
//!     Valid
//!       Signer? (Subject, Fingerprint)  Key  KeySource  SignatureMethod  DigestMethod
//!       CanonicalizationMethod  TrustAnchor?  Revocation  Legacy*
//!     | Unsigned (the sender's policy does not require a signature)
//!     | NotVerified (Outcome: invalid | refused | untrusted, Code, Reason: a signature was
//!       present but did not verify, and the sender's policy does not require one)
//!   DeliveryId?  Attempts?  Reason? (failure and cancellation: required)
//!   ds:Signature (enveloped, added by [`sign`])
//! ```
//! No attributes, no mixed content. Text is UTF-8, escaped by [`crate::xml::write`], so every
//! string reads back exactly as given (`<`, `&`, quotes, CR, tabs, Vietnamese text).
//!
//! # Invariants
//! - Pure: a receipt is built only from the explicit [`Receipt`] value, `now` included
//!   ([`Receipt::issued_at`]). Nothing here reads the clock, the store or the network.
//! - [`build`] is deterministic: the same [`Receipt`] gives the same bytes.
//! - [`sign`] refuses a receipt that breaks the rules of its kind ([`Receipt::check`]), so
//!   the hub never signs something [`parse`] would refuse. It signs through
//!   [`dsig::Signer::sign_document`] (one enveloped Signature under the root, `URI=""`,
//!   X509Data with the hub's chain) and insists on Exclusive C14N, a SHA-256 digest and
//!   `ecdsa-sha256` or `rsa-sha256`, which every standard verifier supports.
//! - [`verify`] judges the signature under the strict document policy (exactly one
//!   Signature, one `URI=""` Reference with the enveloped transform) on the same tree it then
//!   reads, and returns the content only when the signature is valid.
//! - [`parse`] never panics, whatever the bytes; it reads through [`crate::xml::Document`]
//!   (no DOCTYPE, limits) and matches elements by namespace and local name.
//! - The XML emitted validates against `schemas/receipt.xsd` (checked by the integration
//!   tests with `xmllint`), and the signed form verifies with `xmlsec1`.
//!
//! # Non-guarantees
//! [`parse`] does not check the signature: use [`verify`] for anything received. [`verify`]
//! trusts whatever [`dsig::Keys`] trusts; to accept only the hub's own receipts, pin its
//! certificate ([`dsig::Keys::pinned_certs`]). The revocation text of a
//! [`VerdictSummary::from_report`] says what the [`Report`] knows: a [`Report`] does not say
//! whether a revocation source was configured, so "no revocation known" is all it can claim
//! for a clean path; a caller that knows more may replace the text.

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::dsig::{self, DSIG_NS, KeySource, Legacy, Policy, Report, Signer, Verdict};
use crate::edxml::model::Sha256;
use crate::xml::write::Writer;
use crate::xml::{Document, Element, Limits, NodeId, NodeKind};

/// The receipt namespace.
pub const NS: &str = "urn:truc:receipt:1";

/// The only canonicalization a receipt signature may use (Exclusive C14N, no comments).
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The only reference digest a receipt signature may use.
const SHA256_DIGEST: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// The signature methods a receipt signature may use.
const SIGNATURE_METHODS: [&str; 2] = [
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
];

/// What a receipt attests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The hub accepted the package (issued synchronously, names every recipient).
    Acceptance,
    /// The package reached one recipient (pushed with a 2xx answer, or acknowledged).
    Delivery,
    /// The package will not reach one recipient (dead or rejected), with the reason.
    Failure,
    /// The sender revoked the package before it reached one recipient, with the reason.
    Cancellation,
}

impl Kind {
    /// Every kind, in lifecycle order.
    pub const ALL: [Kind; 4] = [
        Kind::Acceptance,
        Kind::Delivery,
        Kind::Failure,
        Kind::Cancellation,
    ];

    /// The name used in the XML (`Kind` element) and in receipt ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Acceptance => "acceptance",
            Kind::Delivery => "delivery",
            Kind::Failure => "failure",
            Kind::Cancellation => "cancellation",
        }
    }

    /// Whether the receipt concerns one recipient (every kind but acceptance).
    pub fn is_per_recipient(self) -> bool {
        self != Kind::Acceptance
    }

    /// Whether the receipt must carry a reason (failure and cancellation).
    pub fn needs_reason(self) -> bool {
        matches!(self, Kind::Failure | Kind::Cancellation)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ReceiptError;

    fn from_str(s: &str) -> Result<Self, ReceiptError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ReceiptError::Invalid {
                element: "Receipt/Kind",
                value: s.to_owned(),
                expected: "acceptance, delivery, failure or cancellation",
            })
    }
}

/// The receipt id for `kind`: `<subject>-<kind>`, where `subject` is the message id for an
/// acceptance receipt and the delivery id for the others. Deterministic, so issuing a
/// receipt again yields the same id.
pub fn receipt_id(kind: Kind, subject: &str) -> String {
    format!("{subject}-{kind}")
}

/// One receipt, as plain data. [`build`] writes it, [`parse`] reads it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The receipt's id (see [`receipt_id`]).
    pub id: String,
    /// What the receipt attests.
    pub kind: Kind,
    /// When the hub issued it: the caller's `now`. Written in RFC 3339 UTC (`Z`), with
    /// fractional seconds only when not zero.
    pub issued_at: Timestamp,
    /// The hub's configured name or identifier.
    pub hub: String,
    /// The hub's id of the message (the accepted package).
    pub message_id: String,
    /// The package's DocumentId, when it has one.
    pub document_id: Option<String>,
    /// The sender's agency identifier (`From/OrganId`), as written in the package.
    pub sender: String,
    /// Acceptance: every recipient of the package. Other kinds: the one recipient concerned.
    pub recipients: Vec<String>,
    /// SHA-256 of the exact package bytes received.
    pub package_sha256: Sha256,
    /// How the package's signature was judged.
    pub verdict: VerdictSummary,
    /// The delivery concerned (not on acceptance receipts).
    pub delivery_id: Option<String>,
    /// Delivery attempts made so far (not on acceptance receipts).
    pub attempts: Option<u32>,
    /// Why: required on failure and cancellation receipts, absent otherwise.
    pub reason: Option<String>,
}

/// How the package's signature was judged when the hub accepted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
#[allow(clippy::large_enum_variant)] // nearly every receipt records a valid signature: boxing
// would only add an allocation
pub enum VerdictSummary {
    /// The package signature was valid; what the verifier reported.
    Valid(SignatureSummary),
    /// The package was not signed and the sender's policy does not require a signature.
    Unsigned,
    /// The package carried a signature that did not verify, and the sender's policy does not
    /// require a signature (field packages whose signature the sending software broke). The
    /// hub vouches for nothing the signature claims.
    NotVerified(NotVerified),
}

/// Why a present signature was not verified ([`VerdictSummary::NotVerified`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotVerified {
    /// The verifier's verdict: `invalid`, `refused` or `untrusted`.
    pub outcome: NotVerifiedOutcome,
    /// Its stable code (`digest-mismatch`, `untrusted-chain`, ...).
    pub code: String,
    /// Its sentence for people.
    pub reason: String,
}

/// The verdicts a [`NotVerified`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotVerifiedOutcome {
    /// The signature or a digest does not match, or the Signature is malformed.
    Invalid,
    /// An algorithm, transform, reference form, key or shape outside the policy.
    Refused,
    /// The cryptography holds but the key is not trusted (or not authorized for the sender).
    Untrusted,
}

impl NotVerifiedOutcome {
    const ALL: [NotVerifiedOutcome; 3] = [
        NotVerifiedOutcome::Invalid,
        NotVerifiedOutcome::Refused,
        NotVerifiedOutcome::Untrusted,
    ];

    /// Its code in receipts: `invalid`, `refused`, `untrusted`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotVerifiedOutcome::Invalid => "invalid",
            NotVerifiedOutcome::Refused => "refused",
            NotVerifiedOutcome::Untrusted => "untrusted",
        }
    }
}

/// The parts of a [`Report`] a receipt records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureSummary {
    /// The signer certificate (absent only for a pinned bare public key).
    pub signer: Option<CertSummary>,
    /// The signer key ("RSA-2048", "EC-P256").
    pub key: String,
    /// Why the key was trusted.
    pub key_source: KeySource,
    /// The SignatureMethod URI.
    pub signature_method: String,
    /// The DigestMethod URI of the (first, under the package policy only) Reference.
    pub digest_method: String,
    /// The SignedInfo CanonicalizationMethod URI.
    pub canonicalization: String,
    /// Subject of the trust anchor the path ended at (trusted chains only).
    pub trust_anchor: Option<String>,
    /// What is known of the revocation status of the signer's path, for people.
    pub revocation: String,
    /// Legacy features the signature used (empty under the default policy).
    pub legacy: Vec<Legacy>,
}

/// A certificate, as a receipt names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// SHA-256 of the DER, 64 lower-case hex digits.
    pub fingerprint: String,
}

impl VerdictSummary {
    /// The summary of a signature that did not verify; `None` for a valid verdict.
    pub fn not_verified(verdict: &crate::dsig::Verdict) -> Option<Self> {
        use crate::dsig::Verdict;
        let (outcome, f) = match verdict {
            Verdict::Valid(_) => return None,
            Verdict::Invalid(f) => (NotVerifiedOutcome::Invalid, f),
            Verdict::Refused(f) => (NotVerifiedOutcome::Refused, f),
            Verdict::Untrusted(f) => (NotVerifiedOutcome::Untrusted, f),
        };
        Some(VerdictSummary::NotVerified(NotVerified {
            outcome,
            code: f.code.to_owned(),
            reason: f.reason.clone(),
        }))
    }

    /// The summary of a valid package signature.
    pub fn from_report(report: &Report) -> Self {
        let revocation = match report.key_source {
            KeySource::Pinned => "not checked: pinned key".to_owned(),
            KeySource::Insecure => "not checked: the key was not verified (insecure)".to_owned(),
            KeySource::TrustedChain if report.warnings.is_empty() => {
                "no revocation known: no configured revocation source lists a certificate of \
                 the path"
                    .to_owned()
            }
            KeySource::TrustedChain => report.warnings.join("; "),
        };
        let trust_anchor = match report.key_source {
            KeySource::TrustedChain => report.chain.last().map(|c| c.subject.clone()),
            _ => None,
        };
        VerdictSummary::Valid(SignatureSummary {
            signer: report.signer.as_ref().map(|c| CertSummary {
                subject: c.subject.clone(),
                fingerprint: c.fingerprint.clone(),
            }),
            key: report.key.clone(),
            key_source: report.key_source,
            signature_method: report.signature_method.clone(),
            digest_method: report
                .references
                .first()
                .map(|r| r.digest_method.clone())
                .unwrap_or_default(),
            canonicalization: report.canonicalization.clone(),
            trust_anchor,
            revocation,
            legacy: report.legacy.clone(),
        })
    }
}

/// Why a receipt could not be read, checked or signed.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The bytes are not well-formed XML (or break the reader's limits).
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// The root element is not `Receipt` in [`NS`].
    #[error("the root element is {found}, not Receipt in namespace {NS}")]
    NotAReceipt {
        /// The root found, `{namespace}local` (or `local` when in no namespace).
        found: String,
    },
    /// A required element is absent.
    #[error("{parent}: missing {element}")]
    Missing {
        /// Path of the parent element.
        parent: &'static str,
        /// The element expected.
        element: &'static str,
    },
    /// An element that is unknown, repeated or out of order.
    #[error("{parent}: unexpected element {found}")]
    Unexpected {
        /// Path of the parent element.
        parent: &'static str,
        /// The element found, `{namespace}local` (or `local` when in no namespace).
        found: String,
    },
    /// Text where only elements may be.
    #[error("{element}: unexpected text {text:?}")]
    UnexpectedText {
        /// Path of the element.
        element: &'static str,
        /// The text (trimmed, at most 40 characters).
        text: String,
    },
    /// An attribute: receipt elements have none.
    #[error("{element}: unexpected attribute {attribute}")]
    UnexpectedAttribute {
        /// Path of the element.
        element: &'static str,
        /// The attribute as written.
        attribute: String,
    },
    /// A value of the wrong form.
    #[error("{element}: {value:?} is not {expected}")]
    Invalid {
        /// Path of the element (or field).
        element: &'static str,
        /// The value found (at most 80 characters).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Well-formed values that break the rules of the receipt's kind.
    #[error("{kind} receipt: {problem}")]
    Inconsistent {
        /// The receipt's kind.
        kind: Kind,
        /// What rule is broken.
        problem: String,
    },
    /// The signer failed.
    #[error("signing: {0}")]
    Sign(#[from] dsig::SignError),
    /// The signature produced is outside the receipt profile.
    #[error("signing: the receipt signature uses {what} {found:?}; receipts use {expected}")]
    Profile {
        /// Which algorithm.
        what: &'static str,
        /// The URI produced.
        found: String,
        /// What receipts use.
        expected: &'static str,
    },
}

// ---------------------------------------------------------------------------------------
// Checking

/// Whether `c` is in the XML 1.0 `Char` production (surrogates cannot occur in a `char`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// A string XML can carry; non-empty.
fn check_text(element: &'static str, value: &str) -> Result<(), ReceiptError> {
    if value.is_empty() {
        return Err(ReceiptError::Invalid {
            element,
            value: String::new(),
            expected: "a non-empty string",
        });
    }
    if let Some(c) = value.chars().find(|&c| !is_xml_char(c)) {
        return Err(ReceiptError::Invalid {
            element,
            value: format!("{} (U+{:04X})", clip(value, 80), c as u32),
            expected: "text XML 1.0 can carry (no control characters but TAB, LF and CR)",
        });
    }
    Ok(())
}

fn is_lower_hex_64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, year 0001 to 9999: the lexical form both jiff and
/// `xs:dateTime` (XSD 1.0, which has no year 0000) read the same way.
fn is_utc_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && &b[0..4] != b"0000";
    if !fixed || b[b.len() - 1] != b'Z' {
        return false;
    }
    match &b[19..b.len() - 1] {
        [] => true,
        [b'.', frac @ ..] => (1..=9).contains(&frac.len()) && frac.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

impl Receipt {
    /// Checks the rules every receipt keeps, as [`parse`] does after reading one and
    /// [`sign`] before signing: ids and names non-empty and representable in XML; the
    /// recipients (acceptance: at least one, no duplicates; other kinds: exactly one); a
    /// reason exactly on failure and cancellation receipts; no delivery id or attempts on
    /// acceptance receipts; a timestamp in years 0001 to 9999; a well-formed verdict.
    pub fn check(&self) -> Result<(), ReceiptError> {
        let inconsistent = |problem: String| ReceiptError::Inconsistent {
            kind: self.kind,
            problem,
        };
        check_text("Receipt/ReceiptId", &self.id)?;
        check_text("Receipt/Hub", &self.hub)?;
        check_text("Receipt/MessageId", &self.message_id)?;
        if let Some(d) = &self.document_id {
            check_text("Receipt/DocumentId", d)?;
        }
        check_text("Receipt/Sender", &self.sender)?;
        for r in &self.recipients {
            check_text("Receipt/Recipient", r)?;
        }
        if let Some(d) = &self.delivery_id {
            check_text("Receipt/DeliveryId", d)?;
        }
        if let Some(r) = &self.reason {
            check_text("Receipt/Reason", r)?;
        }
        let time = self.issued_at.to_string();
        if !is_utc_time(&time) {
            return Err(ReceiptError::Invalid {
                element: "Receipt/IssuedAt",
                value: time,
                expected: "a time in the years 0001 to 9999",
            });
        }
        match (self.kind.is_per_recipient(), self.recipients.as_slice()) {
            (false, []) => return Err(inconsistent("no recipient".into())),
            (false, all) => {
                for (i, r) in all.iter().enumerate() {
                    if all[..i].contains(r) {
                        return Err(inconsistent(format!("recipient {r:?} listed twice")));
                    }
                }
            }
            (true, [_]) => {}
            (true, other) => {
                return Err(inconsistent(format!(
                    "names {} recipients; exactly one is required",
                    other.len()
                )));
            }
        }
        match (self.kind.needs_reason(), &self.reason) {
            (true, None) => return Err(inconsistent("no reason".into())),
            (false, Some(_)) => return Err(inconsistent("a reason is not allowed".into())),
            _ => {}
        }
        if !self.kind.is_per_recipient() {
            if self.delivery_id.is_some() {
                return Err(inconsistent("a delivery id is not allowed".into()));
            }
            if self.attempts.is_some() {
                return Err(inconsistent("an attempt count is not allowed".into()));
            }
        }
        match &self.verdict {
            VerdictSummary::Valid(s) => s.check()?,
            VerdictSummary::NotVerified(n) => {
                check_text("Receipt/Verdict/NotVerified/Code", &n.code)?;
                check_text("Receipt/Verdict/NotVerified/Reason", &n.reason)?;
            }
            VerdictSummary::Unsigned => {}
        }
        Ok(())
    }
}

impl SignatureSummary {
    fn check(&self) -> Result<(), ReceiptError> {
        if let Some(c) = &self.signer {
            check_text("Receipt/Verdict/Valid/Signer/Subject", &c.subject)?;
            if !is_lower_hex_64(&c.fingerprint) {
                return Err(ReceiptError::Invalid {
                    element: "Receipt/Verdict/Valid/Signer/Fingerprint",
                    value: clip(&c.fingerprint, 80),
                    expected: "64 lower-case hex digits (SHA-256)",
                });
            }
        }
        check_text("Receipt/Verdict/Valid/Key", &self.key)?;
        check_text(
            "Receipt/Verdict/Valid/SignatureMethod",
            &self.signature_method,
        )?;
        check_text("Receipt/Verdict/Valid/DigestMethod", &self.digest_method)?;
        check_text(
            "Receipt/Verdict/Valid/CanonicalizationMethod",
            &self.canonicalization,
        )?;
        if let Some(a) = &self.trust_anchor {
            check_text("Receipt/Verdict/Valid/TrustAnchor", a)?;
        }
        check_text("Receipt/Verdict/Valid/Revocation", &self.revocation)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Writing

fn key_source_code(k: KeySource) -> &'static str {
    match k {
        KeySource::TrustedChain => "trusted-chain",
        KeySource::Pinned => "pinned",
        KeySource::Insecure => "insecure",
    }
}

const KEY_SOURCES: [KeySource; 3] = [
    KeySource::TrustedChain,
    KeySource::Pinned,
    KeySource::Insecure,
];

/// The code of a legacy feature, as `dsig::Report` serializes it.
fn legacy_code(l: Legacy) -> &'static str {
    match l {
        Legacy::Sha1Digest => "sha1-digest",
        Legacy::RsaSha1 => "rsa-sha1",
        Legacy::ShortRsaKey => "short-rsa-key",
        Legacy::Sha1Certificate => "sha1-certificate",
        Legacy::Md5Certificate => "md5-certificate",
        Legacy::XpointerUri => "xpointer-uri",
    }
}

const LEGACY: [Legacy; 6] = [
    Legacy::Sha1Digest,
    Legacy::RsaSha1,
    Legacy::ShortRsaKey,
    Legacy::Sha1Certificate,
    Legacy::Md5Certificate,
    Legacy::XpointerUri,
];

/// The unsigned receipt: UTF-8 XML with a declaration, elements in the fixed order, every
/// string escaped. Deterministic. It does not check the receipt ([`Receipt::check`]): a
/// receipt that breaks its kind's rules is written as it is, and [`parse`] refuses it.
pub fn build(r: &Receipt) -> Vec<u8> {
    let mut w = Writer::with_declaration();
    w.open_with("Receipt", &[("xmlns", NS)]);
    w.leaf("ReceiptId", &r.id);
    w.leaf("Kind", r.kind.as_str());
    w.leaf("IssuedAt", &r.issued_at.to_string());
    w.leaf("Hub", &r.hub);
    w.leaf("MessageId", &r.message_id);
    if let Some(d) = &r.document_id {
        w.leaf("DocumentId", d);
    }
    w.leaf("Sender", &r.sender);
    for to in &r.recipients {
        w.leaf("Recipient", to);
    }
    w.leaf("PackageSha256", &r.package_sha256.hex());
    w.open("Verdict");
    match &r.verdict {
        VerdictSummary::Unsigned => w.empty_with("Unsigned", &[]),
        VerdictSummary::NotVerified(n) => {
            w.open("NotVerified");
            w.leaf("Outcome", n.outcome.as_str());
            w.leaf("Code", &n.code);
            w.leaf("Reason", &n.reason);
            w.close("NotVerified");
        }
        VerdictSummary::Valid(s) => {
            w.open("Valid");
            if let Some(c) = &s.signer {
                w.open("Signer");
                w.leaf("Subject", &c.subject);
                w.leaf("Fingerprint", &c.fingerprint);
                w.close("Signer");
            }
            w.leaf("Key", &s.key);
            w.leaf("KeySource", key_source_code(s.key_source));
            w.leaf("SignatureMethod", &s.signature_method);
            w.leaf("DigestMethod", &s.digest_method);
            w.leaf("CanonicalizationMethod", &s.canonicalization);
            if let Some(a) = &s.trust_anchor {
                w.leaf("TrustAnchor", a);
            }
            w.leaf("Revocation", &s.revocation);
            for l in &s.legacy {
                w.leaf("Legacy", legacy_code(*l));
            }
            w.close("Valid");
        }
    }
    w.close("Verdict");
    if let Some(d) = &r.delivery_id {
        w.leaf("DeliveryId", d);
    }
    if let Some(n) = r.attempts {
        w.leaf("Attempts", &n.to_string());
    }
    if let Some(reason) = &r.reason {
        w.leaf("Reason", reason);
    }
    w.close("Receipt");
    w.finish().into_bytes()
}

/// Checks, builds and signs a receipt: an enveloped signature under the root, made by
/// `signer` ([`Signer::sign_document`], which also verifies its own output). The signer must
/// produce the receipt profile: Exclusive C14N, SHA-256, `ecdsa-sha256` or `rsa-sha256` (a
/// P-256 or RSA key with the [`Signer`] defaults).
pub fn sign(r: &Receipt, signer: &Signer) -> Result<Vec<u8>, ReceiptError> {
    r.check()?;
    // The profile first: it depends only on the signer, and a receipt it cannot make is
    // never signed.
    check_signer(signer)?;
    Ok(signer.sign_document(&build(r))?)
}

/// The algorithms `signer` writes ([`Signer::algorithm_uris`]) against the receipt profile:
/// what the hub's configuration checks once, so that no receipt fails for it later.
pub fn check_signer(signer: &Signer) -> Result<(), ReceiptError> {
    let (method, digest, c14n) = signer.algorithm_uris();
    if c14n != EXC_C14N {
        return Err(ReceiptError::Profile {
            what: "CanonicalizationMethod",
            found: c14n.to_owned(),
            expected: "Exclusive C14N",
        });
    }
    if !SIGNATURE_METHODS.contains(&method) {
        return Err(ReceiptError::Profile {
            what: "SignatureMethod",
            found: method.to_owned(),
            expected: "ecdsa-sha256 or rsa-sha256",
        });
    }
    if digest != SHA256_DIGEST {
        return Err(ReceiptError::Profile {
            what: "DigestMethod",
            found: digest.to_owned(),
            expected: "SHA-256",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading

/// Limits for reading receipts: a receipt is small, but an acceptance receipt names every
/// recipient and a signed one carries the hub's chain.
fn limits() -> Limits {
    Limits {
        max_bytes: 4 * 1024 * 1024,
        max_depth: 16,
        ..Limits::default()
    }
}

/// Reads a receipt (signed or not) without checking its signature: the structure, every
/// value and the rules of its kind ([`Receipt::check`]). A trailing `ds:Signature` under the
/// root is skipped. Never panics.
pub fn parse(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
    let doc = Document::parse(bytes, &limits()).map_err(|e| ReceiptError::Xml(e.located(bytes)))?;
    from_document(&doc)
}

/// Verifies a signed receipt and reads it. The signature must be the only one in the
/// document and pass the strict document policy (one Reference `URI=""` with the enveloped
/// transform, no legacy features) with a key from `keys`, trust judged at `now`. The content
/// is read from the same tree and returned only when the verdict is valid; a valid signature
/// over something that is not a receipt is `Invalid` with the code `not-a-receipt`.
pub fn verify(bytes: &[u8], keys: &dsig::Keys, now: Timestamp) -> (Verdict, Option<Receipt>) {
    let doc = match Document::parse(bytes, &limits()) {
        Ok(d) => d,
        Err(e) => return (Verdict::invalid("not-xml", e.located(bytes)), None),
    };
    let signatures = dsig::verify::signatures(&doc);
    let verdict = match signatures.as_slice() {
        [] => Verdict::invalid("no-signature", "no ds:Signature element in the receipt"),
        [one] => dsig::verify_signature(&doc, *one, keys, &Policy::strict(), now),
        more => Verdict::refused(
            "multiple-signatures",
            format!(
                "{} ds:Signature elements; a receipt carries exactly one",
                more.len()
            ),
        ),
    };
    if !matches!(verdict, Verdict::Valid(_)) {
        return (verdict, None);
    }
    match from_document(&doc) {
        Ok(r) => (verdict, Some(r)),
        Err(e) => (Verdict::invalid("not-a-receipt", e.to_string()), None),
    }
}

/// `{namespace}local`, or `local` in no namespace.
fn clark(e: &Element<'_>) -> String {
    match &e.namespace {
        Some(ns) => format!("{{{ns}}}{}", e.local),
        None => e.local.to_owned(),
    }
}

/// The child elements of one element, consumed in schema order.
struct Children<'d, 'a> {
    doc: &'d Document<'a>,
    path: &'static str,
    kids: Vec<(NodeId, &'d Element<'a>)>,
    at: usize,
}

impl<'d, 'a> Children<'d, 'a> {
    /// The children of `id` (at `path`): no attributes on it, no text but whitespace.
    fn of(doc: &'d Document<'a>, id: NodeId, path: &'static str) -> Result<Self, ReceiptError> {
        let e = element(doc, id, path)?;
        let mut kids = Vec::new();
        for &c in &e.children {
            match &doc.node(c).kind {
                NodeKind::Element(ce) => kids.push((c, ce)),
                NodeKind::Text(t) if !t.trim_matches([' ', '\t', '\r', '\n']).is_empty() => {
                    return Err(ReceiptError::UnexpectedText {
                        element: path,
                        text: clip(t.trim(), 40),
                    });
                }
                _ => {}
            }
        }
        Ok(Children {
            doc,
            path,
            kids,
            at: 0,
        })
    }

    fn peek_is(&self, ns: &str, local: &str) -> bool {
        self.kids.get(self.at).is_some_and(|(_, e)| e.is(ns, local))
    }

    /// The next child if it is `local` in [`NS`].
    fn optional(&mut self, local: &str) -> Option<NodeId> {
        if self.peek_is(NS, local) {
            self.at += 1;
            Some(self.kids[self.at - 1].0)
        } else {
            None
        }
    }

    /// The next child, which must be `local` in [`NS`]. When it is absent the error says
    /// so; when it comes later, the element in its way is the unexpected one.
    fn required(&mut self, local: &'static str) -> Result<NodeId, ReceiptError> {
        if let Some(id) = self.optional(local) {
            return Ok(id);
        }
        let later = self.kids[self.at..].iter().any(|(_, e)| e.is(NS, local));
        match self.kids.get(self.at) {
            Some((_, e)) if later => Err(ReceiptError::Unexpected {
                parent: self.path,
                found: clark(e),
            }),
            _ => Err(ReceiptError::Missing {
                parent: self.path,
                element: local,
            }),
        }
    }

    /// The text of the required leaf `local` at `path`.
    fn text(&mut self, local: &'static str, path: &'static str) -> Result<String, ReceiptError> {
        let id = self.required(local)?;
        leaf(self.doc, id, path)
    }

    /// The text of the optional leaf `local` at `path`.
    fn optional_text(
        &mut self,
        local: &'static str,
        path: &'static str,
    ) -> Result<Option<String>, ReceiptError> {
        self.optional(local)
            .map(|id| leaf(self.doc, id, path))
            .transpose()
    }

    /// Every further leaf `local` at `path`.
    fn repeated_text(
        &mut self,
        local: &'static str,
        path: &'static str,
    ) -> Result<Vec<String>, ReceiptError> {
        let mut out = Vec::new();
        while let Some(id) = self.optional(local) {
            out.push(leaf(self.doc, id, path)?);
        }
        Ok(out)
    }

    /// Nothing may follow.
    fn finish(self) -> Result<(), ReceiptError> {
        match self.kids.get(self.at) {
            None => Ok(()),
            Some((_, e)) => Err(ReceiptError::Unexpected {
                parent: self.path,
                found: clark(e),
            }),
        }
    }
}

/// The element `id`, with no attributes.
fn element<'d, 'a>(
    doc: &'d Document<'a>,
    id: NodeId,
    path: &'static str,
) -> Result<&'d Element<'a>, ReceiptError> {
    let e = doc.element(id).ok_or(ReceiptError::Missing {
        parent: path,
        element: "an element",
    })?;
    if let Some(a) = e.attributes.first() {
        return Err(ReceiptError::UnexpectedAttribute {
            element: path,
            attribute: match a.prefix {
                Some(p) => format!("{p}:{}", a.local),
                None => a.local.to_owned(),
            },
        });
    }
    Ok(e)
}

/// The text of a leaf element: no attributes, no child elements; comments are skipped and
/// the text around them joined.
fn leaf(doc: &Document<'_>, id: NodeId, path: &'static str) -> Result<String, ReceiptError> {
    element(doc, id, path)?;
    if let Some((_, e)) = doc.child_elements(id).next() {
        return Err(ReceiptError::Unexpected {
            parent: path,
            found: clark(e),
        });
    }
    Ok(doc.text(id).into_owned())
}

fn invalid(element: &'static str, value: &str, expected: &'static str) -> ReceiptError {
    ReceiptError::Invalid {
        element,
        value: clip(value, 80),
        expected,
    }
}

fn from_document(doc: &Document<'_>) -> Result<Receipt, ReceiptError> {
    let root = doc.root();
    let Some(e) = doc.element(root) else {
        return Err(ReceiptError::NotAReceipt {
            found: "no element".into(),
        });
    };
    if !e.is(NS, "Receipt") {
        return Err(ReceiptError::NotAReceipt { found: clark(e) });
    }
    let mut c = Children::of(doc, root, "Receipt")?;
    let id = c.text("ReceiptId", "Receipt/ReceiptId")?;
    let kind_text = c.text("Kind", "Receipt/Kind")?;
    let kind: Kind = kind_text.parse()?;
    let time = c.text("IssuedAt", "Receipt/IssuedAt")?;
    let issued_at = if is_utc_time(&time) {
        time.parse::<Timestamp>().ok()
    } else {
        None
    }
    .ok_or_else(|| invalid("Receipt/IssuedAt", &time, "an RFC 3339 time in UTC (…Z)"))?;
    let hub = c.text("Hub", "Receipt/Hub")?;
    let message_id = c.text("MessageId", "Receipt/MessageId")?;
    let document_id = c.optional_text("DocumentId", "Receipt/DocumentId")?;
    let sender = c.text("Sender", "Receipt/Sender")?;
    let mut recipients = vec![c.text("Recipient", "Receipt/Recipient")?];
    recipients.extend(c.repeated_text("Recipient", "Receipt/Recipient")?);
    let digest = c.text("PackageSha256", "Receipt/PackageSha256")?;
    let package_sha256 = Sha256::from_hex(&digest).ok_or_else(|| {
        invalid(
            "Receipt/PackageSha256",
            &digest,
            "64 lower-case hex digits (SHA-256)",
        )
    })?;
    let verdict = verdict(doc, c.required("Verdict")?)?;
    let delivery_id = c.optional_text("DeliveryId", "Receipt/DeliveryId")?;
    let attempts = match c.optional_text("Attempts", "Receipt/Attempts")? {
        None => None,
        Some(t) => Some(
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u32>().ok())
                .flatten()
                .ok_or_else(|| {
                    invalid(
                        "Receipt/Attempts",
                        &t,
                        "a decimal count from 0 to 4294967295",
                    )
                })?,
        ),
    };
    let reason = c.optional_text("Reason", "Receipt/Reason")?;
    if c.peek_is(DSIG_NS, "Signature") {
        c.at += 1;
    }
    c.finish()?;
    let receipt = Receipt {
        id,
        kind,
        issued_at,
        hub,
        message_id,
        document_id,
        sender,
        recipients,
        package_sha256,
        verdict,
        delivery_id,
        attempts,
        reason,
    };
    receipt.check()?;
    Ok(receipt)
}

fn verdict(doc: &Document<'_>, id: NodeId) -> Result<VerdictSummary, ReceiptError> {
    let mut c = Children::of(doc, id, "Receipt/Verdict")?;
    let out = if let Some(u) = c.optional("Unsigned") {
        Children::of(doc, u, "Receipt/Verdict/Unsigned")?.finish()?;
        VerdictSummary::Unsigned
    } else if let Some(v) = c.optional("Valid") {
        VerdictSummary::Valid(signature_summary(doc, v)?)
    } else if let Some(n) = c.optional("NotVerified") {
        let mut nc = Children::of(doc, n, "Receipt/Verdict/NotVerified")?;
        let outcome = nc.text("Outcome", "Receipt/Verdict/NotVerified/Outcome")?;
        let outcome = NotVerifiedOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == outcome)
            .ok_or_else(|| {
                invalid(
                    "Receipt/Verdict/NotVerified/Outcome",
                    &outcome,
                    "invalid, refused or untrusted",
                )
            })?;
        let code = nc.text("Code", "Receipt/Verdict/NotVerified/Code")?;
        let reason = nc.text("Reason", "Receipt/Verdict/NotVerified/Reason")?;
        nc.finish()?;
        VerdictSummary::NotVerified(NotVerified {
            outcome,
            code,
            reason,
        })
    } else {
        return Err(match c.kids.first() {
            Some((_, e)) => ReceiptError::Unexpected {
                parent: "Receipt/Verdict",
                found: clark(e),
            },
            None => ReceiptError::Missing {
                parent: "Receipt/Verdict",
                element: "Valid, Unsigned or NotVerified",
            },
        });
    };
    c.finish()?;
    Ok(out)
}

fn signature_summary(doc: &Document<'_>, id: NodeId) -> Result<SignatureSummary, ReceiptError> {
    let mut c = Children::of(doc, id, "Receipt/Verdict/Valid")?;
    let signer = match c.optional("Signer") {
        None => None,
        Some(s) => {
            let mut sc = Children::of(doc, s, "Receipt/Verdict/Valid/Signer")?;
            let subject = sc.text("Subject", "Receipt/Verdict/Valid/Signer/Subject")?;
            let fingerprint = sc.text("Fingerprint", "Receipt/Verdict/Valid/Signer/Fingerprint")?;
            sc.finish()?;
            Some(CertSummary {
                subject,
                fingerprint,
            })
        }
    };
    let key = c.text("Key", "Receipt/Verdict/Valid/Key")?;
    let source = c.text("KeySource", "Receipt/Verdict/Valid/KeySource")?;
    let key_source = KEY_SOURCES
        .into_iter()
        .find(|k| key_source_code(*k) == source)
        .ok_or_else(|| {
            invalid(
                "Receipt/Verdict/Valid/KeySource",
                &source,
                "trusted-chain, pinned or insecure",
            )
        })?;
    let signature_method = c.text("SignatureMethod", "Receipt/Verdict/Valid/SignatureMethod")?;
    let digest_method = c.text("DigestMethod", "Receipt/Verdict/Valid/DigestMethod")?;
    let canonicalization = c.text(
        "CanonicalizationMethod",
        "Receipt/Verdict/Valid/CanonicalizationMethod",
    )?;
    let trust_anchor = c.optional_text("TrustAnchor", "Receipt/Verdict/Valid/TrustAnchor")?;
    let revocation = c.text("Revocation", "Receipt/Verdict/Valid/Revocation")?;
    let legacy = c
        .repeated_text("Legacy", "Receipt/Verdict/Valid/Legacy")?
        .iter()
        .map(|t| {
            LEGACY
                .into_iter()
                .find(|l| legacy_code(*l) == t)
                .ok_or_else(|| {
                    invalid(
                        "Receipt/Verdict/Valid/Legacy",
                        t,
                        "a legacy feature code (sha1-digest, rsa-sha1, short-rsa-key, \
                         sha1-certificate, md5-certificate, xpointer-uri)",
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    c.finish()?;
    Ok(SignatureSummary {
        signer,
        key,
        key_source,
        signature_method,
        digest_method,
        canonicalization,
        trust_anchor,
        revocation,
        legacy,
    })
}
