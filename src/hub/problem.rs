//! Errors as the hub's clients see them: RFC 9457 problem details
//! (`application/problem+json`).
//!
//! Every refusal carries a stable [`Code`] (a contract: clients branch on it; add codes,
//! never rename one), the HTTP status the code maps to, a human `detail`, and for validation
//! errors every problem found (`problems`: path, code, detail). The status mapping lives
//! here and only here.
//!
//! ```json
//! {
//!   "type": "urn:truc:problem:payload-too-large",
//!   "title": "Payload too large",
//!   "status": 413,
//!   "detail": "the body exceeds the limit of 67108864 bytes",
//!   "code": "payload-too-large"
//! }
//! ```
//! `problems` is present only when there are items. Details name what was wrong but never
//! echo secrets (tokens) or internal errors; those go to the log with the request id.

use std::time::Duration;

use http::header::{ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The prefix of every problem `type` URI: `urn:truc:problem:<code>`.
pub const TYPE_PREFIX: &str = "urn:truc:problem:";

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, $status:ident, $title:literal; )*) => {
        /// A stable problem code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as sent: lowercase words joined by `-`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// The HTTP status a problem with this code is sent with.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            /// A short summary that does not change between occurrences (RFC 9457 `title`).
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
        }
    };
}

codes! {
    /// The body is not a valid edXML package (every problem listed).
    InvalidPackage = "invalid-package", UNPROCESSABLE_ENTITY, "Invalid package";
    /// The package's signature does not verify (tampered, wrong digest or key).
    SignatureInvalid = "signature-invalid", UNPROCESSABLE_ENTITY, "Signature invalid";
    /// The sender's policy requires a signature and the package has none.
    SignatureRequired = "signature-required", UNPROCESSABLE_ENTITY, "Signature required";
    /// The signature verifies but the signer's certificate is not trusted (path, revocation).
    SignerUntrusted = "signer-untrusted", UNPROCESSABLE_ENTITY, "Signer untrusted";
    /// A trusted signer that may not sign for the package's sender.
    SignerNotAuthorizedForSender = "signer-not-authorized-for-sender", UNPROCESSABLE_ENTITY,
        "Signer not authorized for the sender";
    /// One or more recipients are not in the directory (each listed).
    UnknownRecipient = "unknown-recipient", UNPROCESSABLE_ENTITY, "Unknown recipient";
    /// A new document reuses the sender's DocumentId with other bytes.
    DuplicateConflict = "duplicate-conflict", CONFLICT, "Duplicate conflict";
    /// The request is valid but not in the delivery's current state (acknowledging a
    /// delivery that was rejected, cancelled or is pushed).
    InvalidState = "invalid-state", CONFLICT, "Invalid state";
    /// The body is larger than the configured limit.
    PayloadTooLarge = "payload-too-large", PAYLOAD_TOO_LARGE, "Payload too large";
    /// No valid credentials: no client certificate or bearer token, or a wrong one.
    Unauthenticated = "unauthenticated", UNAUTHORIZED, "Unauthenticated";
    /// Authenticated, but not allowed to do this (e.g. sending as another agency).
    Forbidden = "forbidden", FORBIDDEN, "Forbidden";
    /// The agency sent more requests than its rate limit allows; see `Retry-After`.
    RateLimited = "rate-limited", TOO_MANY_REQUESTS, "Rate limited";
    /// No such resource (unknown path, or an id the agency cannot see).
    NotFound = "not-found", NOT_FOUND, "Not found";
    /// The path exists but not with this method; see `Allow`.
    MethodNotAllowed = "method-not-allowed", METHOD_NOT_ALLOWED, "Method not allowed";
    /// The request body did not arrive within the body read timeout.
    RequestTimeout = "request-timeout", REQUEST_TIMEOUT, "Request timeout";
    /// The request is malformed (a bad query, a body that is not the JSON expected).
    BadRequest = "bad-request", BAD_REQUEST, "Bad request";
    /// A failure of the hub itself; the log has the details under the request id.
    Internal = "internal", INTERNAL_SERVER_ERROR, "Internal error";
}

/// One problem of a validation error (RFC 9457 extension member `problems`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProblemItem {
    /// Where: an element path (`edXMLHeader/MessageHeader/To[2]/OrganId`), a recipient, a
    /// field.
    pub path: String,
    /// A stable code (for packages, the codes of [`crate::edxml::Code`]).
    pub code: String,
    /// What, with the value involved.
    pub detail: String,
}

impl ProblemItem {
    /// An item.
    pub fn new(
        path: impl Into<String>,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        ProblemItem {
            path: path.into(),
            code: code.into(),
            detail: detail.into(),
        }
    }
}

/// A problem to send: the code, what happened, the items, and headers the code calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The stable code; it decides the status.
    pub code: Code,
    /// What happened to this request.
    pub detail: String,
    /// Every problem found, for validation errors.
    pub problems: Vec<ProblemItem>,
    /// Response headers this problem needs (`WWW-Authenticate`, `Retry-After`, `Allow`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "<[ProblemItem]>::is_empty")]
    problems: &'a [ProblemItem],
}

impl Problem {
    /// A problem with this code and detail.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
            problems: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Adds the items found.
    pub fn with_problems(mut self, problems: Vec<ProblemItem>) -> Self {
        self.problems.extend(problems);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The `type` URI: `urn:truc:problem:<code>`.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_PREFIX}{}", self.code.as_str())
    }

    /// The `application/problem+json` document.
    pub fn to_json(&self) -> Vec<u8> {
        let doc = Document {
            type_: self.type_uri(),
            title: self.code.title(),
            status: self.status().as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            problems: &self.problems,
        };
        // Serializing strings and integers into a Vec cannot fail.
        serde_json::to_vec(&doc).unwrap_or_else(|_| b"{\"code\":\"internal\"}".to_vec())
    }

    /// `invalid-package`, with every problem found.
    pub fn invalid_package(detail: impl Into<String>, problems: Vec<ProblemItem>) -> Self {
        Self::new(Code::InvalidPackage, detail).with_problems(problems)
    }

    /// `signature-invalid`.
    pub fn signature_invalid(detail: impl Into<String>) -> Self {
        Self::new(Code::SignatureInvalid, detail)
    }

    /// `signature-required`.
    pub fn signature_required(detail: impl Into<String>) -> Self {
        Self::new(Code::SignatureRequired, detail)
    }

    /// `signer-untrusted`.
    pub fn signer_untrusted(detail: impl Into<String>) -> Self {
        Self::new(Code::SignerUntrusted, detail)
    }

    /// `signer-not-authorized-for-sender`.
    pub fn signer_not_authorized_for_sender(detail: impl Into<String>) -> Self {
        Self::new(Code::SignerNotAuthorizedForSender, detail)
    }

    /// `unknown-recipient`, one item per unknown recipient.
    pub fn unknown_recipient(detail: impl Into<String>, problems: Vec<ProblemItem>) -> Self {
        Self::new(Code::UnknownRecipient, detail).with_problems(problems)
    }

    /// `duplicate-conflict`.
    pub fn duplicate_conflict(detail: impl Into<String>) -> Self {
        Self::new(Code::DuplicateConflict, detail)
    }

    /// `payload-too-large`: the body exceeds `limit` bytes.
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            Code::PayloadTooLarge,
            format!("the body exceeds the limit of {limit} bytes"),
        )
    }

    /// `unauthenticated`, with `WWW-Authenticate: Bearer realm="truc"`.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, detail).with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"truc\""),
        )
    }

    /// `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, detail)
    }

    /// `rate-limited`, with `Retry-After` in whole seconds (rounded up, at least 1).
    pub fn rate_limited(retry_after: Duration) -> Self {
        let secs = crate::hub::limit::retry_after_secs(retry_after);
        Self::new(
            Code::RateLimited,
            format!("too many requests; retry after {secs} s"),
        )
        .with_header(RETRY_AFTER, HeaderValue::from(secs))
    }

    /// `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }

    /// `method-not-allowed`, with `Allow` listing `allowed`.
    pub fn method_not_allowed(method: &Method, allowed: &[Method]) -> Self {
        let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        let list = list.join(", ");
        let problem = Self::new(
            Code::MethodNotAllowed,
            format!("{method} is not allowed here; allowed: {list}"),
        );
        match HeaderValue::from_str(&list) {
            Ok(v) => problem.with_header(ALLOW, v),
            Err(_) => problem,
        }
    }

    /// `request-timeout`: the body did not arrive within `timeout`.
    pub fn request_timeout(timeout: Duration) -> Self {
        Self::new(
            Code::RequestTimeout,
            format!(
                "the request body did not arrive within {:.1} s",
                timeout.as_secs_f64()
            ),
        )
    }

    /// `invalid-state`.
    pub fn invalid_state(detail: impl Into<String>) -> Self {
        Problem::new(Code::InvalidState, detail)
    }

    /// `bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, detail)
    }

    /// `internal`; the detail should point to the log, not carry the error.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(Code::Internal, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_rfc_9457_members_and_the_code() {
        let p = Problem::invalid_package(
            "2 problems",
            vec![
                ProblemItem::new(
                    "edXMLHeader/MessageHeader/To[2]/OrganId",
                    "invalid-agency-id",
                    "\"01.02.G22\"",
                ),
                ProblemItem::new("edXMLHeader/MessageHeader/Subject", "missing-element", ""),
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["type"], "urn:truc:problem:invalid-package");
        assert_eq!(v["title"], "Invalid package");
        assert_eq!(v["status"], 422);
        assert_eq!(v["detail"], "2 problems");
        assert_eq!(v["code"], "invalid-package");
        assert_eq!(v["problems"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["problems"][0]["path"],
            "edXMLHeader/MessageHeader/To[2]/OrganId"
        );
        assert_eq!(v["problems"][0]["code"], "invalid-agency-id");
        assert_eq!(v["problems"][0]["detail"], "\"01.02.G22\"");
        assert_eq!(v.as_object().unwrap().len(), 6);
        let v: serde_json::Value =
            serde_json::from_slice(&Problem::not_found("no such message").to_json()).unwrap();
        assert!(v.get("problems").is_none(), "{v}");
        assert_eq!(v["status"], 404);
    }

    #[test]
    fn every_code_is_kebab_case_unique_and_maps_to_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s}"
            );
            assert!(
                c.status().is_client_error() || c.status().is_server_error(),
                "{s}"
            );
            assert!(!c.title().is_empty());
        }
        for (code, status) in [
            ("invalid-package", 422),
            ("signature-invalid", 422),
            ("signature-required", 422),
            ("signer-untrusted", 422),
            ("signer-not-authorized-for-sender", 422),
            ("unknown-recipient", 422),
            ("duplicate-conflict", 409),
            ("payload-too-large", 413),
            ("unauthenticated", 401),
            ("forbidden", 403),
            ("rate-limited", 429),
            ("not-found", 404),
            ("method-not-allowed", 405),
            ("request-timeout", 408),
            ("invalid-state", 409),
            ("internal", 500),
        ] {
            let c = Code::ALL.iter().find(|c| c.as_str() == code).unwrap();
            assert_eq!(c.status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn problems_carry_the_headers_their_code_needs() {
        let p = Problem::unauthenticated("no credentials");
        assert_eq!(p.headers[0].0, WWW_AUTHENTICATE);
        let p = Problem::rate_limited(Duration::from_millis(1200));
        assert_eq!(p.headers, vec![(RETRY_AFTER, HeaderValue::from(2u64))]);
        let p = Problem::rate_limited(Duration::ZERO);
        assert_eq!(p.headers[0].1, "1");
        let p = Problem::method_not_allowed(&Method::DELETE, &[Method::GET, Method::POST]);
        assert_eq!(
            p.headers,
            vec![(ALLOW, HeaderValue::from_static("GET, POST"))]
        );
        assert_eq!(p.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(p.detail.contains("DELETE"), "{}", p.detail);
    }
}
