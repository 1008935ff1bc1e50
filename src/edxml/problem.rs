//! Validation problems: where (element path), what (a stable code), and the value involved.
//!
//! Codes are a contract: the CLI prints them, the hub returns them to agencies, and checks
//! grep for them. Add codes; never rename one.
//!
//! Paths name elements by local name from just below `edXMLEnvelope` (`edXMLHeader/...`,
//! `edXMLBody/...`); elements outside the envelope start below the root (`AttachmentEncoded/...`)
//! and root-level problems use `edXML`. Repeatable elements carry a 1-based index: `To[2]`.

use std::fmt;

use serde::Serialize;

/// Strict or lenient validation, chosen per call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// What the hub accepts by default and what truc emits.
    #[default]
    Strict,
    /// Tolerates the quirks of field traffic (see [`Code::is_tolerated_when_lenient`]); they are
    /// reported as warnings.
    Lenient,
}

/// Whether a problem makes the package invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Informational: the package is still valid in this mode.
    Warning,
    /// The package is invalid in this mode.
    Error,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, lenient: $lenient:literal; )*) => {
        /// A stable problem code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as printed: lowercase words joined by `-`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// Whether lenient mode may downgrade this problem to a warning.
            ///
            /// Some codes are tolerated only in some cases: [`Code::InvalidAgencyId`] for codes
            /// of the nonstandard shape (see [`super::AgencyId::parse_lenient`]) but not for
            /// garbage, [`Code::MissingElement`] only for the elements its doc names.
            pub fn is_tolerated_when_lenient(self) -> bool {
                match self { $(Code::$variant => $lenient,)* }
            }
        }
    };
}

codes! {
    /// The bytes are not well-formed XML.
    NotWellFormed = "not-well-formed", lenient: false;
    /// A DOCTYPE declaration (refused in every mode).
    DoctypeForbidden = "doctype-forbidden", lenient: false;
    /// Not UTF-8.
    UnsupportedEncoding = "unsupported-encoding", lenient: false;
    /// Size, depth, element or attribute limit exceeded.
    LimitExceeded = "limit-exceeded", lenient: false;
    /// The root element is not `edXML`.
    WrongRoot = "wrong-root", lenient: false;
    /// The root is not in the QCVN 102:2016 namespace.
    WrongNamespace = "wrong-namespace", lenient: false;
    /// A mandatory element is absent. Lenient mode tolerates only elements the national axis
    /// itself does without (TraceHeaderList, edXMLBody, a status Timestamp or reason).
    MissingElement = "missing-element", lenient: true;
    /// An element that may appear once appears again.
    DuplicateElement = "duplicate-element", lenient: false;
    /// An element that is not part of edXML as truc knows it (or of another namespace).
    UnknownElement = "unknown-element", lenient: true;
    /// An edXML element in a place it does not belong (e.g. attachments in a status package).
    UnexpectedElement = "unexpected-element", lenient: true;
    /// Non-whitespace text where only elements belong.
    UnexpectedText = "unexpected-text", lenient: true;
    /// A mandatory value is empty.
    EmptyValue = "empty-value", lenient: false;
    /// Not an agency identifier of either official form.
    InvalidAgencyId = "invalid-agency-id", lenient: true;
    /// Not a date.
    InvalidDate = "invalid-date", lenient: false;
    /// A date or timestamp in a legacy spelling (`dd/MM/yyyy`, ISO).
    LegacyDateFormat = "legacy-date-format", lenient: true;
    /// A promulgation date after today (Vietnam time).
    DateInFuture = "date-in-future", lenient: true;
    /// Not a timestamp.
    InvalidTimestamp = "invalid-timestamp", lenient: false;
    /// Not a non-negative integer.
    InvalidInteger = "invalid-integer", lenient: false;
    /// A number or flag outside its value list.
    ValueOutOfRange = "value-out-of-range", lenient: true;
    /// Longer than QCVN 102 allows.
    TooLong = "too-long", lenient: true;
    /// The same recipient twice.
    DuplicateRecipient = "duplicate-recipient", lenient: false;
    /// A manifest entry without its attachment.
    AttachmentMissing = "attachment-missing", lenient: false;
    /// An attachment the manifest does not list.
    AttachmentNotInManifest = "attachment-not-in-manifest", lenient: true;
    /// Two manifest entries or two attachments with one ContentId.
    DuplicateContentId = "duplicate-content-id", lenient: false;
    /// Manifest and attachment ContentIds match only after removing `cid:`.
    ContentIdPrefixMismatch = "content-id-prefix-mismatch", lenient: true;
    /// Declared content types disagree with each other or with the payload's magic bytes.
    ContentTypeMismatch = "content-type-mismatch", lenient: true;
    /// An attachment payload that is not base64.
    InvalidBase64 = "invalid-base64", lenient: false;
    /// A Signature outside the XML-Signature namespace (the VNPT SDK bug).
    SignatureNamespace = "signature-namespace", lenient: true;
    /// A Signature that is not the last child of edXMLHeader.
    SignatureMisplaced = "signature-misplaced", lenient: true;
    /// A status code outside 01–06, 13, 15, 16 (kept; always a warning).
    UnknownStatusCode = "unknown-status-code", lenient: true;
    /// A status code that is not two digits.
    InvalidStatusCode = "invalid-status-code", lenient: false;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem found in a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Element path, e.g. `edXMLHeader/MessageHeader/To[2]/OrganId`.
    pub path: String,
    /// Stable code.
    pub code: Code,
    /// The value involved or what is wrong, e.g. `"01.02.G22"`.
    pub detail: String,
    /// Error or warning, in the mode that was asked for.
    pub severity: Severity,
    /// Byte offset in the package the problem refers to.
    pub offset: usize,
}

impl Problem {
    /// Whether this problem makes the package invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    /// `path: code: detail`, the one-line form the CLI prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.code, self.detail)
    }
}

/// A package refused: every problem found, errors and warnings, in document order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid package: {}", summary(.problems))]
pub struct Rejection {
    /// Every problem found (at least one is an error).
    pub problems: Vec<Problem>,
}

impl Rejection {
    /// The problems that make the package invalid.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    /// Whether some error has this code.
    pub fn has(&self, code: Code) -> bool {
        self.errors().any(|p| p.code == code)
    }
}

fn summary(problems: &[Problem]) -> String {
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    errors.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{s}"
            );
        }
    }

    #[test]
    fn problem_prints_path_code_detail() {
        let p = Problem {
            path: "edXMLHeader/MessageHeader/To[2]/OrganId".into(),
            code: Code::InvalidAgencyId,
            detail: "\"01.02.G22\"".into(),
            severity: Severity::Error,
            offset: 0,
        };
        assert_eq!(
            p.to_string(),
            "edXMLHeader/MessageHeader/To[2]/OrganId: invalid-agency-id: \"01.02.G22\""
        );
    }
}
