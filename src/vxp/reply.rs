//! The JSON replies of the VXP protocol (VXP.md §5, and §6.4 for sendEdoc).
//!
//! A [`Reply`] is built with [`Reply::ok`] or [`Reply::fail`], extended with
//! [`Reply::with`] / [`Reply::data`], and written with [`Reply::to_bytes`].
//!
//! # Invariants of the bytes written
//! - One compact JSON object on one line (the SDK reads the body line by line and joins the
//!   lines without separators).
//! - `status`, `ErrorCode` and `ErrorDesc` are always present, first, and strings. Success is
//!   exactly `"status":"OK","ErrorCode":"0","ErrorDesc":"Success"`; a failure has
//!   `"status":"FAIL"` and an `ErrorCode` other than `"0"` (the SDK reads lists only when it is
//!   `"0"`). If one of the three were missing, the caller would get a result with every field
//!   null.
//! - No JSON `null` anywhere: a member whose value is null is left out, at any depth, and null
//!   array elements are dropped. (The SDK calls `getAsString` on every member present, so one
//!   null aborts a whole list while the reply still says OK.)
//! - With `ascii_only`, every non-ASCII character is written `\uXXXX` (lowercase hex, UTF-16
//!   surrogate pairs above U+FFFF), so the bytes are pure ASCII. sendEdoc replies need it: the
//!   SDK decodes them as US-ASCII. It is harmless elsewhere.
//!
//! Not checked: which members an operation needs (`data` on list success, `count`, `DocId`…);
//! the operation's handler decides. [`Reply::send_edoc_ok`] and [`Reply::send_edoc_fail`]
//! always carry `DocId`, which the SDK requires on sendEdoc even on failure.

use std::io;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use serde_json::ser::{CompactFormatter, Formatter};

/// The three members every reply has, in the order written.
const COMMON: [&str; 3] = ["status", "ErrorCode", "ErrorDesc"];

/// One reply of the VXP protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// `OK` or `FAIL`, exact case: callers test `status.equals("OK")`, getEdoc and the counts
    /// compare against `FAIL`.
    status: &'static str,
    /// `"0"` exactly on success, anything else on failure.
    error_code: String,
    /// Human-readable; `Success` on success.
    error_desc: String,
    /// Further members, in insertion order, names unique and never one of [`COMMON`].
    members: Vec<(String, Value)>,
}

impl Reply {
    /// `"status":"OK","ErrorCode":"0","ErrorDesc":"Success"`.
    pub fn ok() -> Self {
        Self {
            status: "OK",
            error_code: "0".to_owned(),
            error_desc: "Success".to_owned(),
            members: Vec::new(),
        }
    }

    /// `"status":"FAIL"` with `code` and `desc`. A `code` of `"0"`, which the SDK reads as
    /// success, is written as `"1"` instead, so that a failure never lets a list be read.
    pub fn fail(code: &str, desc: &str) -> Self {
        Self {
            status: "FAIL",
            error_code: if code == "0" { "1" } else { code }.to_owned(),
            error_desc: desc.to_owned(),
            members: Vec::new(),
        }
    }

    /// The sendEdoc success reply: the common members and `DocId` (VXP.md §6.4).
    pub fn send_edoc_ok(doc_id: &str) -> Self {
        Self::ok().with("DocId", Value::String(doc_id.to_owned()))
    }

    /// The sendEdoc failure reply: the common members and `"DocId":""`, without which the
    /// caller sees only nulls (VXP.md §6.4).
    pub fn send_edoc_fail(code: &str, desc: &str) -> Self {
        Self::fail(code, desc).with("DocId", Value::String(String::new()))
    }

    /// Adds the member `key`, replacing an earlier one of the same name. A null `value` is
    /// kept out of the output, as are nulls inside it. The common members cannot be set this
    /// way: for `status`, `ErrorCode` or `ErrorDesc` the call changes nothing.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        if COMMON.contains(&key) {
            return self;
        }
        match self.members.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.members.push((key.to_owned(), value)),
        }
        self
    }

    /// Adds `data` as an array of `items` (a list reply; empty is fine).
    pub fn data(self, items: Vec<Value>) -> Self {
        self.with("data", Value::Array(items))
    }

    /// Whether this is a success reply.
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }

    /// The `ErrorCode` written (`"0"` on success).
    pub fn error_code(&self) -> &str {
        &self.error_code
    }

    /// The reply as one line of JSON; `ascii_only` escapes every non-ASCII character (module
    /// docs).
    pub fn to_bytes(&self, ascii_only: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let written = if ascii_only {
            self.serialize(&mut serde_json::Serializer::with_formatter(
                &mut out,
                AsciiFormatter,
            ))
        } else {
            self.serialize(&mut serde_json::Serializer::with_formatter(
                &mut out,
                CompactFormatter,
            ))
        };
        // Invariant: writing into a Vec cannot fail, and every map key is a string.
        written.expect("serializing a reply into memory cannot fail");
        out
    }
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let members: Vec<(&str, Value)> = self
            .members
            .iter()
            .filter_map(|(k, v)| without_nulls(v).map(|v| (k.as_str(), v)))
            .collect();
        let mut map = serializer.serialize_map(Some(3 + members.len()))?;
        map.serialize_entry("status", self.status)?;
        map.serialize_entry("ErrorCode", &self.error_code)?;
        map.serialize_entry("ErrorDesc", &self.error_desc)?;
        for (k, v) in &members {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `value` without any null: `None` for a null, object members and array elements that are
/// null removed at every depth.
fn without_nulls(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(without_nulls).collect(),
        )),
        Value::Object(members) => Some(Value::Object(
            members
                .iter()
                .filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Compact JSON with every non-ASCII character of strings and names written as `\uXXXX`.
struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if c.is_ascii() {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..at])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn success_is_exactly_the_sdk_form() {
        for ascii in [false, true] {
            assert_eq!(
                Reply::ok().to_bytes(ascii),
                br#"{"status":"OK","ErrorCode":"0","ErrorDesc":"Success"}"#
            );
        }
        let r = Reply::ok().with("count", json!(3));
        assert!(r.is_ok());
        assert_eq!(r.error_code(), "0");
        assert_eq!(parse(&r.to_bytes(false))["ErrorCode"], json!("0"));
    }

    #[test]
    fn failure_is_fail_with_a_non_zero_code() {
        let r = Reply::fail("4015", "bad signature");
        assert!(!r.is_ok());
        assert_eq!(
            r.to_bytes(false),
            br#"{"status":"FAIL","ErrorCode":"4015","ErrorDesc":"bad signature"}"#
        );
        assert_eq!(Reply::fail("0", "x").error_code(), "1");
    }

    #[test]
    fn common_members_are_always_present_and_first() {
        let replies = [
            Reply::ok(),
            Reply::fail("500", "internal error"),
            Reply::ok().data(vec![]),
            Reply::ok().with("count", json!(0)).with("x", Value::Null),
            Reply::send_edoc_ok("852e29c3"),
            Reply::send_edoc_fail("4015", "Sai chữ ký"),
            Reply::fail("1", "x")
                .with("status", json!("OK"))
                .with("ErrorCode", json!("0"))
                .with("ErrorDesc", Value::Null),
        ];
        for r in &replies {
            for ascii in [false, true] {
                let bytes = r.to_bytes(ascii);
                let text = String::from_utf8(bytes.clone()).unwrap();
                assert!(text.starts_with(r#"{"status":""#), "{text}");
                let status_at = text.find(r#""status":"#).unwrap();
                let code_at = text.find(r#","ErrorCode":"#).unwrap();
                let desc_at = text.find(r#","ErrorDesc":"#).unwrap();
                assert!(status_at < code_at && code_at < desc_at, "{text}");
                assert!(!text.contains('\n') && !text.contains('\r'));
                let v = parse(&bytes);
                for k in COMMON {
                    assert!(v[k].is_string(), "{k} in {text}");
                }
                let ok = v["status"] == json!("OK");
                assert_eq!(ok, v["ErrorCode"] == json!("0"), "{text}");
                assert!(ok || v["status"] == json!("FAIL"));
            }
        }
        // `with` cannot touch the common members.
        let last = parse(&replies[6].to_bytes(false));
        assert_eq!(last["status"], json!("FAIL"));
        assert_eq!(last["ErrorCode"], json!("1"));
        assert_eq!(last["ErrorDesc"], json!("x"));
    }

    #[test]
    fn no_null_survives_at_any_depth() {
        let r = Reply::ok().with("gone", Value::Null).data(vec![
            json!({"id": "1", "pid": null, "name": "Sở A", "mail": null,
                       "nested": {"a": null, "b": [null, 1, {"c": null}]}}),
            Value::Null,
            json!({"id": "2", "deleted": false, "version": 3}),
        ]);
        let bytes = r.to_bytes(false);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("null"), "{text}");
        let v = parse(&bytes);
        assert!(v.get("gone").is_none());
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(
            data[0],
            json!({"id": "1", "name": "Sở A", "nested": {"b": [1, {}]}})
        );
        assert_eq!(data[1], json!({"id": "2", "deleted": false, "version": 3}));
    }

    #[test]
    fn data_is_an_array_even_when_empty() {
        let v = parse(&Reply::ok().data(vec![]).to_bytes(false));
        assert_eq!(v["data"], json!([]));
    }

    #[test]
    fn with_replaces_a_member_of_the_same_name() {
        let r = Reply::ok().with("count", json!(1)).with("count", json!(2));
        assert_eq!(
            r.to_bytes(false),
            br#"{"status":"OK","ErrorCode":"0","ErrorDesc":"Success","count":2}"#
        );
    }

    #[test]
    fn ascii_mode_escapes_vietnamese_and_round_trips() {
        let r = Reply::fail("1", "Thành công")
            .with("Tên", json!(["Sở Nội vụ", "ạ", "😀", "<&>\"\\\n"]));
        let bytes = r.to_bytes(true);
        assert!(bytes.is_ascii());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""ErrorDesc":"Th\u00e0nh c\u00f4ng""#),
            "{text}"
        );
        assert!(text.contains(r#""T\u00ean""#), "{text}");
        assert!(text.contains(r"\u1ea1"), "{text}");
        assert!(text.contains(r"\ud83d\ude00"), "{text}");
        let back = parse(&bytes);
        assert_eq!(back["ErrorDesc"], json!("Thành công"));
        assert_eq!(back["Tên"], json!(["Sở Nội vụ", "ạ", "😀", "<&>\"\\\n"]));
        // Without ascii_only the same reply is plain UTF-8 and means the same.
        let utf8 = r.to_bytes(false);
        assert!(!utf8.is_ascii());
        assert_eq!(parse(&utf8), back);
    }

    #[test]
    fn send_edoc_replies_always_carry_doc_id() {
        assert_eq!(
            Reply::send_edoc_ok("852e29c3-0000").to_bytes(true),
            br#"{"status":"OK","ErrorCode":"0","ErrorDesc":"Success","DocId":"852e29c3-0000"}"#
        );
        assert_eq!(
            Reply::send_edoc_fail("4015", "Chữ ký sai").to_bytes(true),
            br#"{"status":"FAIL","ErrorCode":"4015","ErrorDesc":"Ch\u1eef k\u00fd sai","DocId":""}"#
        );
    }
}
