//! Request authentication of the VXP protocol: the `XroadVnpt-sign-header` /
//! `XroadVnpt-hash-header` pair (VXP.md §4).
//!
//! [`verify`] implements steps 1–6 of §4.2 and the Latin-1 repair of §4.4; [`sign`] is the
//! client side of §4.1, for tests and for anything that has to talk to a VXP server.
//!
//! # What is checked
//! 1. both headers are present (absent or empty: [`AuthError::MissingSignHeader`],
//!    [`AuthError::MissingHashHeader`]);
//! 2. the sign-header is a UTF-8 JSON object whose members are all named `XroadVnpt-*` and hold
//!    a string (a number or a boolean is taken by its text form; null, arrays, objects and
//!    duplicate names are refused);
//! 3. its `XroadVnpt-systemid` names a system the caller knows a secret for;
//! 4. HMAC-SHA256, keyed with the secret's bytes as they are (it looks like base64 but is not
//!    decoded), over the sign-header **bytes as received**, equals the hash-header (64 hex
//!    digits, either case); the comparison is constant-time ([`ring::hmac::verify`]);
//! 5. its `XroadVnpt-timestamp` has the shape `ddMMyyyy'T'HHmmss+SSSS` and names a real
//!    calendar date and time of day (`+SSSS` is the client's milliseconds padded to four
//!    digits, not a zone offset; any four digits are accepted there);
//! 6. the result, [`Signed`], holds the members with the `XroadVnpt-` prefix stripped, in the
//!    order received.
//!
//! # Invariants
//! - The JSON is never rebuilt for the HMAC: member order and escaping are the client's.
//! - Only the signed JSON is read. The plain `XroadVnpt-k` headers and
//!   `XroadVnpt-sign-header-key` are unsigned copies and must be ignored by the caller.
//! - Pure: no clock, no I/O; secrets come from the `secret_of` argument. No error message or
//!   `Debug` output ever contains a secret.
//!
//! # Latin-1 repair (§4.4)
//! Over `http://host:PORT/` the SDK writes each header character as one byte (`char & 0xFF`),
//! while the client signed its UTF-8 form. When the HMAC fails and the received bytes contain
//! bytes 0x80–0xFF (or are not UTF-8 at all), [`verify`] tries once more with the bytes read as
//! Latin-1 and re-encoded as UTF-8. This repairs characters U+0080–U+00FF only: a Vietnamese
//! letter above U+00FF (`ạ` U+1EA1, `ơ` U+01A1, …) arrived truncated to its low byte and cannot
//! be recovered, so such a request fails with [`AuthError::BadSignature`]. Parameters in real use
//! are ASCII codes and ids.
//!
//! # Not guaranteed (§4.3)
//! The signature covers only the sign-header JSON: not the method, the path, the body (except
//! through `hash-file` on sendEdoc), nor the time, since no freshness is enforced (a client keeps
//! the timestamp of its service object's birth). A captured header pair can be replayed on any
//! operation for ever; TLS is the only protection against that.
//!
//! # Reply codes
//! [`AuthError::code`] is a stable short reason for logs and metrics;
//! [`AuthError::error_code`] is the `ErrorCode` to put in the SDK reply (with `"status":"FAIL"`,
//! VXP.md §5). All are in a `401x` family, digits only, so that clients which parse the code as
//! a number keep working:
//!
//! | variant | `code()` | `error_code()` |
//! |---|---|---|
//! | [`AuthError::MissingSignHeader`] | `missing-sign-header` | `4011` |
//! | [`AuthError::MissingHashHeader`] | `missing-hash-header` | `4012` |
//! | [`AuthError::MalformedSignHeader`] | `malformed-sign-header` | `4013` |
//! | [`AuthError::UnknownSystem`] | `unknown-system` | `4014` |
//! | [`AuthError::BadSignature`] | `bad-signature` | `4015` |
//! | [`AuthError::BadTimestamp`] | `bad-timestamp` | `4016` |
//!
//! `unknown-system` and `bad-signature` are told apart on purpose: system ids are not secret
//! (they appear in agency lists) and the difference is what an integrator needs to fix a
//! misconfigured client.

use std::collections::HashSet;
use std::fmt;

use ring::hmac;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// The prefix of every member of the sign-header JSON.
const PREFIX: &str = "XroadVnpt-";

/// An authenticated request: what the signed JSON says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The `systemid` member: the system whose secret verified the HMAC.
    pub system_id: String,
    /// The `timestamp` member, as sent (shape checked, freshness not).
    pub timestamp: String,
    /// Every member, `XroadVnpt-` prefix stripped, in the order received (including
    /// `systemid`, `timestamp` and `Content-Type`). Names are unique.
    pub params: Vec<(String, String)>,
}

/// Why a request does not authenticate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `XroadVnpt-sign-header`, or an empty one.
    #[error("no XroadVnpt-sign-header header")]
    MissingSignHeader,
    /// No `XroadVnpt-hash-header`, or an empty one.
    #[error("no XroadVnpt-hash-header header")]
    MissingHashHeader,
    /// The sign-header is not a JSON object of `XroadVnpt-*` strings with a `systemid`.
    #[error("XroadVnpt-sign-header is not a JSON object of XroadVnpt-* strings: {reason}")]
    MalformedSignHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// No secret is known for the `systemid`.
    #[error("unknown system {system_id:?}")]
    UnknownSystem {
        /// The `XroadVnpt-systemid` as sent.
        system_id: String,
    },
    /// The hash-header is not the HMAC of the sign-header under the system's secret.
    #[error("the signature of system {system_id:?} does not verify: {reason}")]
    BadSignature {
        /// The `XroadVnpt-systemid` as sent.
        system_id: String,
        /// Which check failed.
        reason: &'static str,
    },
    /// The signed `timestamp` is missing or not a `ddMMyyyy'T'HHmmss+SSSS` date.
    #[error("bad timestamp {timestamp:?} of system {system_id:?}: {reason}")]
    BadTimestamp {
        /// The authenticated system.
        system_id: String,
        /// The `XroadVnpt-timestamp` as sent (empty when missing).
        timestamp: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl AuthError {
    /// A stable short reason code, for logs and metrics (table in the module docs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignHeader => "missing-sign-header",
            Self::MissingHashHeader => "missing-hash-header",
            Self::MalformedSignHeader { .. } => "malformed-sign-header",
            Self::UnknownSystem { .. } => "unknown-system",
            Self::BadSignature { .. } => "bad-signature",
            Self::BadTimestamp { .. } => "bad-timestamp",
        }
    }

    /// The `ErrorCode` of the SDK reply (table in the module docs); never `"0"`.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::MissingSignHeader => "4011",
            Self::MissingHashHeader => "4012",
            Self::MalformedSignHeader { .. } => "4013",
            Self::UnknownSystem { .. } => "4014",
            Self::BadSignature { .. } => "4015",
            Self::BadTimestamp { .. } => "4016",
        }
    }
}

const NOT_HEX: &str = "the hash-header is not 64 hex digits";
const MISMATCH: &str = "HMAC-SHA256 of the sign-header does not match the hash-header";
const MISMATCH_REPAIRED: &str =
    "HMAC-SHA256 of the sign-header does not match the hash-header, nor after Latin-1 repair";
const MISMATCH_NOT_UTF8: &str = "the sign-header is not UTF-8 and its Latin-1 repair does not \
     match the hash-header (characters above U+00FF cannot be repaired)";

/// Authenticates a request from the raw bytes of its `XroadVnpt-sign-header` and
/// `XroadVnpt-hash-header` (`None` when absent), looking the system's secret up with
/// `secret_of`. Steps 1–6 of VXP.md §4.2 plus the Latin-1 repair of §4.4 (module docs).
pub fn verify(
    sign_header: Option<&[u8]>,
    hash_header: Option<&[u8]>,
    secret_of: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Signed, AuthError> {
    let raw = match sign_header {
        Some(b) if !b.is_empty() => b,
        _ => return Err(AuthError::MissingSignHeader),
    };
    let tag = match hash_header {
        Some(b) if !b.is_empty() => decode_hex32(b),
        _ => return Err(AuthError::MissingHashHeader),
    };
    let high_bytes = raw.iter().any(|b| *b >= 0x80);

    let (system_id, params) = match std::str::from_utf8(raw) {
        Ok(text) => match attempt(text, tag.as_ref(), &secret_of) {
            Err(AuthError::BadSignature { system_id, reason })
                if high_bytes && reason == MISMATCH =>
            {
                // §4.4: the client may have written its characters as single bytes.
                let repaired = latin1_to_utf8(raw);
                attempt(&repaired, tag.as_ref(), &secret_of).map_err(|_| {
                    AuthError::BadSignature {
                        system_id,
                        reason: MISMATCH_REPAIRED,
                    }
                })?
            }
            other => other?,
        },
        // Not UTF-8: the client signed UTF-8, so only the repaired form can match.
        Err(_) => {
            let repaired = latin1_to_utf8(raw);
            attempt(&repaired, tag.as_ref(), &secret_of).map_err(|e| match e {
                AuthError::MalformedSignHeader { reason } => AuthError::MalformedSignHeader {
                    reason: format!("not UTF-8, and read as Latin-1: {reason}"),
                },
                AuthError::BadSignature { system_id, reason } if reason == MISMATCH => {
                    AuthError::BadSignature {
                        system_id,
                        reason: MISMATCH_NOT_UTF8,
                    }
                }
                e => e,
            })?
        }
    };

    let timestamp = match params.iter().find(|(k, _)| k == "timestamp") {
        Some((_, t)) => t.clone(),
        None => {
            return Err(AuthError::BadTimestamp {
                system_id,
                timestamp: String::new(),
                reason: "no XroadVnpt-timestamp member",
            });
        }
    };
    if let Err(reason) = check_timestamp(&timestamp) {
        return Err(AuthError::BadTimestamp {
            system_id,
            timestamp,
            reason,
        });
    }
    Ok(Signed {
        system_id,
        timestamp,
        params,
    })
}

/// Steps 2–4 over one candidate form of the sign-header: `text` is both what is parsed and,
/// as UTF-8 bytes, what is authenticated.
fn attempt(
    text: &str,
    tag: Option<&[u8; 32]>,
    secret_of: &impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<(String, Vec<(String, String)>), AuthError> {
    let Members(params) =
        serde_json::from_str(text).map_err(|e| AuthError::MalformedSignHeader {
            reason: e.to_string(),
        })?;
    let system_id = match params.iter().find(|(k, _)| k == "systemid") {
        Some((_, s)) => s.clone(),
        None => {
            return Err(AuthError::MalformedSignHeader {
                reason: "no XroadVnpt-systemid member".to_owned(),
            });
        }
    };
    let Some(secret) = secret_of(&system_id) else {
        return Err(AuthError::UnknownSystem { system_id });
    };
    let Some(tag) = tag else {
        return Err(AuthError::BadSignature {
            system_id,
            reason: NOT_HEX,
        });
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    if hmac::verify(&key, text.as_bytes(), tag).is_err() {
        return Err(AuthError::BadSignature {
            system_id,
            reason: MISMATCH,
        });
    }
    Ok((system_id, params))
}

/// The members of the sign-header, prefix stripped, in order; see [`MembersVisitor`].
struct Members(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Reads a JSON object keeping member order (a `serde_json::Map` would sort it), refusing
/// names without the prefix, duplicate names and values that are not strings, numbers or
/// booleans.
struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: serde_json::Value = map.next_value()?;
            let Some(name) = key.strip_prefix(PREFIX) else {
                return Err(de::Error::custom(format_args!(
                    "member {key:?} is not named XroadVnpt-*"
                )));
            };
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(de::Error::custom(format_args!(
                        "member {key:?} is not a string"
                    )));
                }
            };
            if !seen.insert(name.to_owned()) {
                return Err(de::Error::custom(format_args!(
                    "member {key:?} appears twice"
                )));
            }
            out.push((name.to_owned(), text));
        }
        Ok(Members(out))
    }
}

/// Each byte as the Latin-1 character of the same code (U+0000–U+00FF).
fn latin1_to_utf8(bytes: &[u8]) -> String {
    bytes.iter().copied().map(char::from).collect()
}

/// 64 hex digits of either case as 32 bytes; anything else is `None`.
fn decode_hex32(hex: &[u8]) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Checks `ddMMyyyy'T'HHmmss+SSSS` with a real date (proleptic Gregorian, years 0001–9999) and
/// time of day (no leap second: Java's formatter never writes one).
fn check_timestamp(t: &str) -> Result<(), &'static str> {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 20
        || b[8] != b'T'
        || b[15] != b'+'
        || !digits(0..8)
        || !digits(9..15)
        || !digits(16..20)
    {
        return Err("not of the form ddMMyyyy'T'HHmmss+SSSS");
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (day, month, year) = (num(0..2), num(2..4), num(4..8));
    let (hour, minute, second) = (num(9..11), num(11..13), num(13..15));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err("no such month"),
    };
    if year == 0 || day == 0 || day > days {
        return Err("no such date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("no such time of day");
    }
    Ok(())
}

/// The client side of VXP.md §4.1: returns `(sign-header-key, sign-header, hash-header)` for
/// the parameter map `params`, in the given order (the SDK uses Java `HashMap` order).
///
/// `XroadVnpt-systemid` = `system_id` comes first unless `params` has its own `systemid`
/// entry, which is then used where it stands. The sign-header is compact JSON escaped as Gson
/// writes it without HTML escaping (`"`, `\`, control characters, U+2028, U+2029; `<>&='/` and
/// non-ASCII kept); the hash-header is the lowercase hex HMAC-SHA256 of its UTF-8 bytes keyed
/// with `secret` as is.
pub fn sign(system_id: &str, secret: &[u8], params: &[(&str, &str)]) -> (String, String, String) {
    let mut members: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 1);
    if !params.iter().any(|(k, _)| *k == "systemid") {
        members.push(("systemid", system_id));
    }
    members.extend_from_slice(params);

    let key = members
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(";");
    let mut header = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        gson_string(&mut header, &format!("{PREFIX}{k}"));
        header.push(':');
        gson_string(&mut header, v);
    }
    header.push('}');
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        header.as_bytes(),
    );
    let hash = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (key, header, hash)
}

/// Appends `s` as a JSON string the way Gson's `JsonWriter` writes it with HTML escaping off.
fn gson_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A digest in the SDK's `hash-file` form: each byte as `Integer.toHexString(b & 0xff)`,
/// lowercase and **without zero padding**, so 32 bytes give 32–64 characters (VXP.md §6.4).
pub fn sdk_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO_SECRET: &str = "demo-secret-AwyOIWljooz1hxgZ";
    const DEMO_HEADER: &str = r#"{"XroadVnpt-systemid":"vxp.demo.01","XroadVnpt-servicetype":"eDoc","XroadVnpt-messagetype":"edoc","XroadVnpt-timestamp":"23112026T101500+0042","XroadVnpt-Content-Type":"application/json"}"#;
    const DEMO_HASH: &str = "8ac83ef96dbd01741d9ca726e031a77a2a5358190c1a4c628e47734f0e386b4f";
    const DEMO_TS: &str = "23112026T101500+0042";

    const CAPTURED_HEADER: &str = r#"{"XroadVnpt-systemid":"sys.a","XroadVnpt-timestamp":"23112026T082505+0854","XroadVnpt-Content-Type":"application/json"}"#;
    const CAPTURED_HASH: &str = "499872629eb317261e38aff5b5098db0e4985cab95d56abf37030650263f5c8b";

    fn secrets(system: &str) -> Option<Vec<u8>> {
        match system {
            "vxp.demo.01" => Some(DEMO_SECRET.as_bytes().to_vec()),
            "sys.a" => Some(b"s3cret".to_vec()),
            _ => None,
        }
    }

    fn check(header: &[u8], hash: &str) -> Result<Signed, AuthError> {
        verify(Some(header), Some(hash.as_bytes()), secrets)
    }

    fn mac_hex(secret: &str, bytes: &[u8]) -> String {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), bytes);
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What HttpClient writes for an explicit-port `http` endpoint: each char's low byte.
    fn single_bytes(s: &str) -> Vec<u8> {
        s.chars().map(|c| (u32::from(c) & 0xff) as u8).collect()
    }

    fn demo_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("servicetype", "eDoc"),
            ("messagetype", "edoc"),
            ("timestamp", DEMO_TS),
            ("Content-Type", "application/json"),
        ]
    }

    #[test]
    fn worked_example_verifies() {
        let signed = check(DEMO_HEADER.as_bytes(), DEMO_HASH).unwrap();
        assert_eq!(signed.system_id, "vxp.demo.01");
        assert_eq!(signed.timestamp, DEMO_TS);
        let expected = [
            ("systemid", "vxp.demo.01"),
            ("servicetype", "eDoc"),
            ("messagetype", "edoc"),
            ("timestamp", DEMO_TS),
            ("Content-Type", "application/json"),
        ];
        let got: Vec<(&str, &str)> = signed
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn sign_reproduces_worked_example() {
        let (key, header, hash) = sign("vxp.demo.01", DEMO_SECRET.as_bytes(), &demo_params());
        assert_eq!(
            key,
            "systemid;servicetype;messagetype;timestamp;Content-Type"
        );
        assert_eq!(header, DEMO_HEADER);
        assert_eq!(hash, DEMO_HASH);
    }

    #[test]
    fn captured_example_verifies_and_is_reproduced() {
        let signed = check(CAPTURED_HEADER.as_bytes(), CAPTURED_HASH).unwrap();
        assert_eq!(signed.system_id, "sys.a");
        assert_eq!(signed.timestamp, "23112026T082505+0854");
        assert_eq!(signed.params.len(), 3);

        let (key, header, hash) = sign(
            "sys.a",
            b"s3cret",
            &[
                ("timestamp", "23112026T082505+0854"),
                ("Content-Type", "application/json"),
            ],
        );
        assert_eq!(key, "systemid;timestamp;Content-Type");
        assert_eq!(header, CAPTURED_HEADER);
        assert_eq!(hash, CAPTURED_HASH);
    }

    #[test]
    fn sign_keeps_a_systemid_where_it_stands() {
        let (key, header, _) = sign(
            "ignored",
            b"k",
            &[("timestamp", DEMO_TS), ("systemid", "sys.a")],
        );
        assert_eq!(key, "timestamp;systemid");
        assert_eq!(
            header,
            format!(r#"{{"XroadVnpt-timestamp":"{DEMO_TS}","XroadVnpt-systemid":"sys.a"}}"#)
        );
    }

    #[test]
    fn sign_escapes_like_gson() {
        let (_, header, _) = sign(
            "s",
            b"k",
            &[(
                "v",
                "a\"b\\c\t\n\r\u{8}\u{c}\u{1}\u{1f}\u{2028}\u{2029}<>&='/ Thành\u{7f}",
            )],
        );
        assert_eq!(
            header,
            r#"{"XroadVnpt-systemid":"s","XroadVnpt-v":"a\"b\\c\t\n\r\b\f\u0001\u001f\u2028\u2029<>&='/ Thành"#
                .to_owned()
                + "\u{7f}\"}"
        );
        // What sign writes, verify reads back.
        let parsed: Members = serde_json::from_str(&header).unwrap();
        assert_eq!(
            parsed.0[1].1,
            "a\"b\\c\t\n\r\u{8}\u{c}\u{1}\u{1f}\u{2028}\u{2029}<>&='/ Thành\u{7f}"
        );
    }

    #[test]
    fn wrong_secret_fails() {
        let (_, header, hash) = sign("sys.a", b"not-the-secret", &[("timestamp", DEMO_TS)]);
        let e = check(header.as_bytes(), &hash).unwrap_err();
        assert_eq!(e.code(), "bad-signature");
        assert_eq!(
            e,
            AuthError::BadSignature {
                system_id: "sys.a".into(),
                reason: MISMATCH
            }
        );
    }

    #[test]
    fn flipped_byte_fails() {
        let mut header = DEMO_HEADER.as_bytes().to_vec();
        let at = DEMO_HEADER.find("edoc").unwrap();
        header[at] = b'f';
        assert_eq!(
            check(&header, DEMO_HASH).unwrap_err().code(),
            "bad-signature"
        );

        let mut hash = DEMO_HASH.as_bytes().to_vec();
        hash[10] = if hash[10] == b'0' { b'1' } else { b'0' };
        let hash = String::from_utf8(hash).unwrap();
        assert_eq!(
            check(DEMO_HEADER.as_bytes(), &hash).unwrap_err().code(),
            "bad-signature"
        );
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let signed = check(DEMO_HEADER.as_bytes(), &DEMO_HASH.to_uppercase()).unwrap();
        assert_eq!(signed.system_id, "vxp.demo.01");
    }

    #[test]
    fn hash_header_not_64_hex_digits_is_a_mismatch() {
        for hash in [
            &DEMO_HASH[..62],
            &format!("{DEMO_HASH}00"),
            &DEMO_HASH.replace('8', "g"),
            &sdk_hex(&[0x0a; 32]),
        ] {
            let e = check(DEMO_HEADER.as_bytes(), hash).unwrap_err();
            assert_eq!(
                e,
                AuthError::BadSignature {
                    system_id: "vxp.demo.01".into(),
                    reason: NOT_HEX
                },
                "{hash}"
            );
        }
    }

    #[test]
    fn unknown_system_fails() {
        let (_, header, hash) = sign("sys.unknown", b"s3cret", &[("timestamp", DEMO_TS)]);
        let e = check(header.as_bytes(), &hash).unwrap_err();
        assert_eq!(
            e,
            AuthError::UnknownSystem {
                system_id: "sys.unknown".into()
            }
        );
        assert_eq!(e.code(), "unknown-system");
    }

    #[test]
    fn missing_headers_fail() {
        let hash = Some(DEMO_HASH.as_bytes());
        let header = Some(DEMO_HEADER.as_bytes());
        assert_eq!(
            verify(None, hash, secrets),
            Err(AuthError::MissingSignHeader)
        );
        assert_eq!(
            verify(Some(b""), hash, secrets),
            Err(AuthError::MissingSignHeader)
        );
        assert_eq!(
            verify(header, None, secrets),
            Err(AuthError::MissingHashHeader)
        );
        assert_eq!(
            verify(header, Some(b""), secrets),
            Err(AuthError::MissingHashHeader)
        );
        assert_eq!(
            verify(None, None, secrets),
            Err(AuthError::MissingSignHeader)
        );
    }

    #[test]
    fn bad_timestamps_fail_after_the_signature() {
        for ts in [
            "32132026T101500+0042",
            "32112026T101500+0042",
            "23132026T101500+0042",
            "00112026T101500+0042",
            "29022025T101500+0042",
            "31042026T101500+0042",
            "23110000T101500+0042",
            "23112026T241500+0042",
            "23112026T106000+0042",
            "23112026T101560+0042",
            "23112026 101500+0042",
            "23112026T101500-0042",
            "23112026T101500+042",
            "2311202T101500+00420",
            "23112026T101500+００42",
            "",
        ] {
            let (_, header, hash) = sign("sys.a", b"s3cret", &[("timestamp", ts)]);
            let e = check(header.as_bytes(), &hash).unwrap_err();
            assert_eq!(e.code(), "bad-timestamp", "{ts}");
        }
        let (_, header, hash) = sign("sys.a", b"s3cret", &[("level", "1")]);
        let e = check(header.as_bytes(), &hash).unwrap_err();
        assert_eq!(
            e,
            AuthError::BadTimestamp {
                system_id: "sys.a".into(),
                timestamp: String::new(),
                reason: "no XroadVnpt-timestamp member"
            }
        );
        // A bad timestamp under a bad signature is reported as the signature.
        let (_, header, hash) = sign("sys.a", b"wrong", &[("timestamp", "32132026T101500+0042")]);
        assert_eq!(
            check(header.as_bytes(), &hash).unwrap_err().code(),
            "bad-signature"
        );
    }

    #[test]
    fn good_timestamps_pass() {
        for ts in [
            "29022024T000000+0000",
            "29022000T235959+0999",
            "31122026T120000+9999",
            "01010001T000000+0000",
        ] {
            let (_, header, hash) = sign("sys.a", b"s3cret", &[("timestamp", ts)]);
            assert_eq!(check(header.as_bytes(), &hash).unwrap().timestamp, ts);
        }
    }

    #[test]
    fn malformed_sign_headers_fail() {
        for header in [
            "not json",
            "[]",
            r#""XroadVnpt-systemid""#,
            r#"{"XroadVnpt-systemid":"sys.a","systemid":"sys.a"}"#,
            r#"{"XroadVnpt-systemid":"sys.a","XroadVnpt-x":null}"#,
            r#"{"XroadVnpt-systemid":"sys.a","XroadVnpt-x":["a"]}"#,
            r#"{"XroadVnpt-systemid":"sys.a","XroadVnpt-x":{}}"#,
            r#"{"XroadVnpt-systemid":"sys.a","XroadVnpt-systemid":"vxp.demo.01"}"#,
            r#"{"XroadVnpt-timestamp":"23112026T101500+0042"}"#,
            r#"{"XroadVnpt-systemid":"sys.a"} trailing"#,
            "{}",
        ] {
            let hash = mac_hex("s3cret", header.as_bytes());
            let e = check(header.as_bytes(), &hash).unwrap_err();
            assert_eq!(e.code(), "malformed-sign-header", "{header}: {e}");
        }
    }

    #[test]
    fn numbers_and_booleans_are_read_by_their_text() {
        let header = r#"{"XroadVnpt-systemid":"sys.a","XroadVnpt-timestamp":"23112026T082505+0854","XroadVnpt-level":1,"XroadVnpt-x":true}"#;
        let signed = check(header.as_bytes(), &mac_hex("s3cret", header.as_bytes())).unwrap();
        assert_eq!(signed.params[2], ("level".to_owned(), "1".to_owned()));
        assert_eq!(signed.params[3], ("x".to_owned(), "true".to_owned()));
    }

    #[test]
    fn latin1_single_bytes_are_repaired() {
        // The client signs the UTF-8 form and sends `à` (U+00E0) as the single byte E0.
        let (_, header, hash) = sign(
            "sys.a",
            b"s3cret",
            &[("timestamp", DEMO_TS), ("note", "Thành à")],
        );
        let sent = single_bytes(&header);
        assert!(std::str::from_utf8(&sent).is_err());
        let signed = check(&sent, &hash).unwrap();
        assert_eq!(signed.params[2], ("note".to_owned(), "Thành à".to_owned()));
        // The UTF-8 form verifies as is.
        assert!(check(header.as_bytes(), &hash).is_ok());
    }

    #[test]
    fn latin1_bytes_that_happen_to_be_utf8_are_repaired() {
        // "Ã©" as single bytes is C3 A9, valid UTF-8 for "é": the first check fails, the
        // repaired form verifies and the parameter is the signed one.
        let (_, header, hash) = sign("sys.a", b"s3cret", &[("timestamp", DEMO_TS), ("n", "Ã©")]);
        let sent = single_bytes(&header);
        assert!(std::str::from_utf8(&sent).is_ok());
        let signed = check(&sent, &hash).unwrap();
        assert_eq!(signed.params[2].1, "Ã©");
    }

    #[test]
    fn letters_above_u00ff_cannot_be_repaired() {
        // `ạ` (U+1EA1) goes out as its low byte A1, which reads back as `¡`.
        let (_, header, hash) = sign("sys.a", b"s3cret", &[("timestamp", DEMO_TS), ("n", "ạ")]);
        let sent = single_bytes(&header);
        assert!(sent.contains(&0xa1));
        let e = check(&sent, &hash).unwrap_err();
        assert_eq!(
            e,
            AuthError::BadSignature {
                system_id: "sys.a".into(),
                reason: MISMATCH_NOT_UTF8
            }
        );
        // U+2028 would truncate to `(` in a plain header, but Gson writes it `\u2028` in the
        // sign-header, which stays ASCII and verifies.
        let (_, header, hash) = sign(
            "sys.a",
            b"s3cret",
            &[("timestamp", DEMO_TS), ("n", "\u{2028}")],
        );
        assert!(header.is_ascii());
        let signed = check(&single_bytes(&header), &hash).unwrap();
        assert_eq!(signed.params[2].1, "\u{2028}");
    }

    #[test]
    fn repair_does_not_rescue_a_wrong_secret() {
        let (_, header, hash) = sign("sys.a", b"wrong", &[("timestamp", DEMO_TS), ("n", "à")]);
        let e = check(&single_bytes(&header), &hash).unwrap_err();
        assert_eq!(e.code(), "bad-signature");
        let e = check(header.as_bytes(), &hash).unwrap_err();
        assert_eq!(
            e,
            AuthError::BadSignature {
                system_id: "sys.a".into(),
                reason: MISMATCH_REPAIRED
            }
        );
    }

    #[test]
    fn errors_have_distinct_codes_and_never_show_the_secret() {
        let (_, wrong_header, wrong_hash) = sign("sys.a", b"s3cretX", &[("timestamp", DEMO_TS)]);
        let (_, ts_header, ts_hash) = sign("sys.a", b"s3cret", &[("timestamp", "x")]);
        let (_, unk_header, unk_hash) = sign("sys.nobody", b"s3cret", &[("timestamp", DEMO_TS)]);
        let errors = [
            verify(None, Some(b"00"), secrets),
            verify(Some(b"{}"), None, secrets),
            check(b"{", "00"),
            check(unk_header.as_bytes(), &unk_hash),
            check(wrong_header.as_bytes(), &wrong_hash),
            check(ts_header.as_bytes(), &ts_hash),
        ]
        .map(|r| r.unwrap_err());
        let codes: HashSet<_> = errors.iter().map(AuthError::code).collect();
        let numeric: HashSet<_> = errors.iter().map(AuthError::error_code).collect();
        assert_eq!(codes.len(), 6);
        assert_eq!(numeric.len(), 6);
        for e in &errors {
            assert_ne!(e.error_code(), "0");
            assert!(e.error_code().bytes().all(|b| b.is_ascii_digit()));
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }

    #[test]
    fn sdk_hex_drops_zero_padding() {
        let d = ring::digest::digest(&ring::digest::SHA256, b"<edXML/>");
        let padded: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            padded,
            "8d55f6c7bf7cd534cf027a10e1bb5731c68279c3cb991c0f4844774c685b3758"
        );
        assert_eq!(
            sdk_hex(d.as_ref()),
            "8d55f6c7bf7cd534cf27a10e1bb5731c68279c3cb991cf4844774c685b3758"
        );
        assert_eq!(sdk_hex(&[0x00, 0x0f, 0xf0, 0xff]), "0ff0ff");
        assert_eq!(sdk_hex(&[]), "");
    }
}
