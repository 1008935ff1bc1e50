//! The VXP front door end to end: a client written here that signs requests exactly as the
//! VNPT SDK does (`truc::vxp::auth::sign`, checked against `../shared/VXP.md` §8 in its unit
//! tests), sending with `curl` over HTTPS and plain HTTP to a running `truc serve`: the SDK's
//! polling cycle for edoc and status messages with two systems, its quirks, its refusals, and
//! packages crossing between VXP and API v1 agencies.

#![allow(clippy::disallowed_methods)]

use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::flows::{G12, H29, H41, Hub};

const G22: &str = "000.00.00.G22";
use crate::util::{root, tool};

const G12_SYSTEM: &str = "vxp.test.g12";
/// A system whose policy requires signatures (serving H41).
const H41_SYSTEM: &str = "vxp.test.h41";
const H41_SECRET: &str = "h41-secret-requires-signatures";
const H29_SYSTEM: &str = "vxp.test.h29";
const G12_SECRET: &str = "g12-secret-tZ0kq1Yb9xX2vQ==";
const H29_SECRET: &str = "h29-secret-Nn7UVd3pPz5w==";

/// A hub with the two test systems (signatures optional, lenient), VXP also on plain HTTP;
/// and the directory of their secrets, to keep while the hub runs.
fn hub() -> (Hub, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let file = |name: &str, secret: &str| {
        let p = secrets.path().join(name);
        std::fs::write(&p, format!("{secret}\n")).unwrap();
        p.display().to_string()
    };
    let extra = format!(
        r#"
[vxp]
http_listen = "127.0.0.1:0"
[[vxp.system]]
id = "{G12_SYSTEM}"
secret_file = "{g12}"
agencies = ["{G12}"]
signature_required = false
lenient = true
[[vxp.system]]
id = "{H29_SYSTEM}"
secret_file = "{h29}"
agencies = ["{H29}"]
signature_required = false
lenient = true
manage_agencies = true
[[vxp.system]]
id = "{H41_SYSTEM}"
secret_file = "{h41}"
agencies = ["{H41}"]
"#,
        g12 = file("g12.secret", G12_SECRET),
        h29 = file("h29.secret", H29_SECRET),
        h41 = file("h41.secret", H41_SECRET),
    );
    let hub = Hub::start_with("https://localhost:9/inbox", "72h", &extra);
    assert!(
        !hub.vxp_http.is_empty(),
        "the ready file names the VXP listener"
    );
    (hub, secrets)
}

/// One SDK service object: its system, secret, fixed timestamp and growing parameter map
/// (VXP.md §3: nothing is ever removed).
struct Sdk<'a> {
    hub: &'a Hub,
    system: &'a str,
    secret: &'a str,
    params: Vec<(String, String)>,
    /// `https` through the API listener, or `http` through the plain one.
    https: bool,
    /// Unsigned headers sent besides (the hub must ignore them).
    noise: Vec<(String, String)>,
}

impl<'a> Sdk<'a> {
    fn new(hub: &'a Hub, system: &'a str, secret: &'a str, https: bool) -> Self {
        Sdk {
            hub,
            system,
            secret,
            params: vec![
                ("systemid".into(), system.into()),
                ("timestamp".into(), "23112026T101500+0042".into()),
            ],
            https,
            noise: Vec::new(),
        }
    }

    fn put(&mut self, k: &str, v: &str) {
        match self.params.iter_mut().find(|(key, _)| key == k) {
            Some(p) => p.1 = v.to_owned(),
            None => self.params.push((k.to_owned(), v.to_owned())),
        }
    }

    /// Calls `op` with the header JSON members `header`, and `body` (None: empty). Returns the
    /// raw reply.
    fn raw(
        &mut self,
        method: &str,
        op: &str,
        header: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let content_type = if op == "sendEdoc" {
            "application/octet-stream"
        } else {
            "application/json"
        };
        self.put("Content-Type", content_type);
        for (k, v) in header {
            self.put(k, v);
        }
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (key, sign, hash) = truc::vxp::auth::sign(self.system, self.secret.as_bytes(), &params);
        let d = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(tool("curl", "curl"));
        cmd.args(["-s", "--cacert"])
            .arg(root().join("certs-test/root-ca.pem"))
            .args(["-X", method]);
        for (k, v) in &self.params {
            cmd.args(["-H", &format!("XroadVnpt-{k}: {v}")]);
        }
        if body.is_some_and(|b| !b.is_empty()) {
            // As HttpClient does: the hub must answer 100 Continue, or the SDK stalls 3 s.
            cmd.args([
                "-v",
                "-H",
                "Expect: 100-continue",
                "--expect100-timeout",
                "30",
            ]);
        }
        for (k, v) in &self.noise {
            cmd.args(["-H", &format!("{k}: {v}")]);
        }
        cmd.args(["-H", &format!("Content-Type: {content_type}")])
            .args(["-H", &format!("XroadVnpt-sign-header-key: {key}")])
            .args(["-H", &format!("XroadVnpt-sign-header: {sign}")])
            .args(["-H", &format!("XroadVnpt-hash-header: {hash}")])
            .args(["-H", "User-Agent: JAVASDKAgent/1.0.0 XRoad/VPCP"])
            .args(["-H", "XroadVnpt-version: 3.0.201608"]);
        if let Some(b) = body {
            let f = d.path().join("body");
            std::fs::write(&f, b).unwrap();
            cmd.arg("--data-binary").arg(format!("@{}", f.display()));
        }
        let url = if self.https {
            format!(
                "https://{}/vxp/{op}",
                self.hub.addr.replace("127.0.0.1", "localhost")
            )
        } else {
            format!("http://{}/vxp//{op}", self.hub.vxp_http)
        };
        let o = cmd.arg(url).output().unwrap();
        assert!(
            o.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if body.is_some_and(|b| !b.is_empty()) {
            let verbose = String::from_utf8_lossy(&o.stderr);
            assert!(
                verbose.contains("< HTTP/1.1 100 Continue"),
                "{op}: no 100 Continue:\n{verbose}"
            );
        }
        o.stdout
    }

    fn call(&mut self, op: &str, header: &[(&str, &str)], body: Option<&[u8]>) -> Value {
        let raw = self.raw("POST", op, header, body);
        let v: Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("{op}: {e}: {}", String::from_utf8_lossy(&raw)));
        for k in ["status", "ErrorCode", "ErrorDesc"] {
            assert!(v[k].is_string(), "{op}: {k} missing in {v}");
        }
        assert!(
            !String::from_utf8_lossy(&raw).contains("null"),
            "{op}: a null in {v}"
        );
        v
    }

    /// sendEdoc as the SDK sends it: the file, a CRLF, and the unpadded hash-file.
    fn send(&mut self, from: &str, messagetype: &str, package: &[u8]) -> Value {
        let digest = ring::digest::digest(&ring::digest::SHA256, package);
        let hash = truc::vxp::auth::sdk_hex(digest.as_ref());
        let mut body = package.to_vec();
        body.extend_from_slice(b"\r\n");
        let header = [
            ("from", from),
            ("servicetype", "eDoc"),
            ("messagetype", messagetype),
            ("hash-file", hash.as_str()),
        ];
        let raw = self.raw("POST", "sendEdoc", &header, Some(&body));
        assert!(
            raw.is_ascii(),
            "sendEdoc replies are ASCII: {}",
            String::from_utf8_lossy(&raw)
        );
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert!(v["DocId"].is_string(), "DocId on every sendEdoc reply: {v}");
        v
    }
}

fn ok(v: &Value) {
    assert_eq!(
        (v["status"].as_str(), v["ErrorCode"].as_str()),
        (Some("OK"), Some("0")),
        "{v}"
    );
}

fn fail(v: &Value, code: &str) {
    assert_eq!(
        (v["status"].as_str(), v["ErrorCode"].as_str()),
        (Some("FAIL"), Some(code)),
        "{v}"
    );
    assert!(!v["ErrorDesc"].as_str().unwrap().is_empty());
}

/// An unsigned edoc from `from` to `to`, built by `truc package new`.
fn edoc(from: &str, to: &str, number: &str) -> Vec<u8> {
    let o = crate::util::truc(&[
        "package",
        "new",
        "--from",
        from,
        "--to",
        to,
        "--number",
        number,
        "--notation",
        "VXP",
        "--subject",
        "Công văn gửi qua VXP",
    ]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    o.stdout
}

fn docs(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["docId"].as_str().unwrap().to_owned())
        .collect()
}

fn messages(hub: &Hub) -> usize {
    let token = std::fs::read_to_string(hub.dir.path().join("data/admin.token")).unwrap();
    let o = Command::new(tool("curl", "curl"))
        .args([
            "-s",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
        ])
        .arg(format!(
            "http://{}/admin/api/messages?limit=1000",
            hub.admin
        ))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["messages"].as_array().unwrap().len()
}

#[test]
fn the_sdk_polling_cycle_works_for_edoc_and_status_over_https_and_http() {
    let (hub, _secrets) = hub();
    for https in [true, false] {
        let mut g12 = Sdk::new(&hub, G12_SYSTEM, G12_SECRET, https);
        let mut h29 = Sdk::new(&hub, H29_SYSTEM, H29_SECRET, https);
        let agencies = g12.call("getAgenciesList", &[], None);
        ok(&agencies);
        let codes: Vec<&str> = agencies["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&H29) && codes.contains(&G12), "{agencies}");
        let g12_row = agencies["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == G12)
            .unwrap();
        assert_eq!(g12_row["name"], "Bộ Tài chính", "UTF-8 names arrive intact");
        ok(&g12.call("getAgenciesListQD20", &[("level", "1")], None));
        ok(&g12.call("getSynchronizeUnit", &[], None));

        // sendEdoc: stored without the CRLF; the SDK's resend gets the same DocId.
        let package = edoc(G12, H29, if https { "11" } else { "12" });
        let sent = g12.send(G12, "edoc", &package);
        ok(&sent);
        let doc = sent["DocId"].as_str().unwrap().to_owned();
        assert!(
            doc.chars().all(|c| c.is_ascii_hexdigit()),
            "path-safe: {doc}"
        );
        assert_eq!(g12.send(G12, "edoc", &package)["DocId"], doc.as_str());

        // H29's system: list, fetch (repeatable, exact bytes), acknowledge, gone.
        let list = h29.call(
            "getReceivedEdocList",
            &[("servicetype", "eDoc"), ("messagetype", "edoc")],
            None,
        );
        ok(&list);
        let items = docs(&list);
        assert_eq!(items.len(), 1, "delivered once: {list}");
        let item = &items[0];
        assert!(item.starts_with(&doc), "{item} is a delivery of {doc}");
        assert_eq!(list["data"][0]["from"], G12);
        let count = h29.call("countReceiveEdoc", &[], Some(b"{}"));
        assert_eq!(count["count"].as_u64(), Some(1), "{count}");
        for _ in 0..2 {
            let got = h29.call(
                "getEdoc",
                &[("docId", item), ("filePath", "/tmp/xml")],
                Some(b"{}"),
            );
            ok(&got);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(got["data"].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes, package, "the exact bytes, without the SDK's CRLF");
        }
        // Both spellings with different values: getEdoc takes `docId`; unsigned copies of
        // the headers that say otherwise are ignored.
        h29.put("docid", "ffffffffffffffff-0");
        h29.noise = vec![
            ("XroadVnpt-docId".into(), "ffffffffffffffff-0".into()),
            ("XroadVnpt-sign-header-key".into(), "docId".into()),
        ];
        let got = h29.call("getEdoc", &[("docId", item)], Some(b"{}"));
        ok(&got);
        h29.noise.clear();
        let raw = h29.raw("GET", "downloadEdoc", &[("docId", item)], None);
        assert_eq!(raw, package);
        // A stale `docId` from an earlier call and the `docid` of this one: updateStatus
        // takes `docid`.
        h29.put("docId", "ffffffffffffffff-0");
        let done = h29.call(
            "updateStatus",
            &[("docid", item), ("status", "done")],
            Some(b"{}"),
        );
        ok(&done);
        ok(&h29.call(
            "updateStatus",
            &[("docid", item), ("status", "done")],
            Some(b"{}"),
        ));
        let list = h29.call("getReceivedEdocList", &[("messagetype", "edoc")], None);
        assert!(
            docs(&list).is_empty(),
            "acknowledged items leave the list: {list}"
        );

        // G12 sees it received; its native receipt feed holds the delivery receipt.
        let sent_list = g12.call(
            "getSentEdocList",
            &[("docId", &doc), ("messagetype", "edoc")],
            None,
        );
        ok(&sent_list);
        let row = &sent_list["data"][0];
        assert_eq!(
            (row["senderDocId"].as_str(), row["receiveStatus"].as_str()),
            (Some(doc.as_str()), Some("done")),
            "{sent_list}"
        );
        assert!(row["receivedTime"].is_string());
        let feed = hub.call(G12, "GET", "/api/v1/receipts", None).json();
        assert!(
            feed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == format!("{item}-delivery")),
            "{feed}"
        );

        // A status answering it goes back to G12's system as messagetype status.
        let original = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(original.path(), &package).unwrap();
        let o = crate::util::truc(&[
            "package",
            "new",
            "--status-of",
            original.path().to_str().unwrap(),
            "--code",
            "03",
            "--from",
            H29,
        ]);
        assert!(o.status.success(), "{}", crate::util::stderr(&o));
        let status = o.stdout;
        let sent = h29.send(H29, "status", &status);
        ok(&sent);
        let edocs = g12.call("getReceivedEdocList", &[("messagetype", "edoc")], None);
        assert!(docs(&edocs).is_empty(), "filtered by messagetype: {edocs}");
        let statuses = g12.call("getReceivedEdocList", &[("messagetype", "status")], None);
        let items = docs(&statuses);
        assert_eq!(items.len(), 1, "{statuses}");
        assert_eq!(
            g12.call("countReceiveStatus", &[], Some(b"{}"))["count"].as_u64(),
            Some(1)
        );
        let got = g12.call("getEdoc", &[("docId", &items[0])], Some(b"{}"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(got["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, status);
        ok(&g12.call(
            "updateStatus",
            &[("docid", &items[0]), ("status", "done")],
            Some(b"{}"),
        ));
    }
    // Mixed worlds: G12's system sends to G22, an API v1 agency, which finds it in its inbox.
    let mut g12 = Sdk::new(&hub, G12_SYSTEM, G12_SECRET, true);
    let to_native = edoc(G12, G22, "31");
    let sent = g12.send(G12, "edoc", &to_native);
    ok(&sent);
    let inbox = hub.call(G22, "GET", "/api/v1/inbox", None).json();
    assert_eq!(inbox["items"][0]["id"], sent["DocId"], "{inbox}");
    let fetched = hub.call(
        G22,
        "GET",
        &format!("/api/v1/inbox/{}", sent["DocId"].as_str().unwrap()),
        None,
    );
    assert_eq!(fetched.body, to_native);
    // And back: G12 sends through API v1 (signed, with its token); H29's system gets it.
    let native = crate::flows::package("valid/edoc_new_2recipients.edxml", &[], G12);
    let r = hub.call(G12, "POST", "/api/v1/packages", Some(&native));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.header("truc-message-id").unwrap().to_owned();
    let mut h29 = Sdk::new(&hub, H29_SYSTEM, H29_SECRET, true);
    let list = h29.call("getReceivedEdocList", &[("messagetype", "edoc")], None);
    let item = docs(&list)
        .into_iter()
        .find(|d| d.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} in {list}"));
    let got = h29.call("getEdoc", &[("docId", &item)], Some(b"{}"));
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(got["data"].as_str().unwrap())
            .unwrap(),
        native
    );
    ok(&h29.call(
        "updateStatus",
        &[("docid", &item), ("status", "fail")],
        Some(b"{}"),
    ));
    let view = hub
        .call(G12, "GET", &format!("/api/v1/packages/{id}"), None)
        .json();
    let h29_state = view["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recipient"] == H29)
        .unwrap()["state"]
        .clone();
    assert_eq!(h29_state, "rejected", "{view}");
}

#[test]
fn refusals_are_fail_replies_with_specific_codes_and_store_nothing() {
    let (hub, _secrets) = hub();
    let package = edoc(G12, H29, "21");
    let before = messages(&hub);
    // A wrong secret and an unknown system.
    let mut wrong = Sdk::new(&hub, G12_SYSTEM, "not-the-secret", true);
    let r = wrong.send(G12, "edoc", &package);
    fail(&r, "4015");
    assert_eq!(r["DocId"], "");
    let mut stranger = Sdk::new(&hub, "vxp.unknown", "whatever", true);
    fail(&stranger.call("getReceivedEdocList", &[], None), "4014");
    // No signed headers at all (a browser, a probe): still a JSON FAIL, never HTML.
    let o = Command::new(tool("curl", "curl"))
        .args(["-s", "-X", "POST", "--cacert"])
        .arg(root().join("certs-test/root-ca.pem"))
        .arg(format!(
            "https://{}/vxp/getEdoc",
            hub.addr.replace("127.0.0.1", "localhost")
        ))
        .output()
        .unwrap();
    fail(&serde_json::from_slice(&o.stdout).unwrap(), "4011");
    let mut g12 = Sdk::new(&hub, G12_SYSTEM, G12_SECRET, true);
    // hash-file of other bytes.
    let digest = ring::digest::digest(&ring::digest::SHA256, b"other bytes");
    let bad_hash = truc::vxp::auth::sdk_hex(digest.as_ref());
    let mut body = package.clone();
    body.extend_from_slice(b"\r\n");
    let raw = g12.raw(
        "POST",
        "sendEdoc",
        &[
            ("from", G12),
            ("messagetype", "edoc"),
            ("hash-file", &bad_hash),
        ],
        Some(&body),
    );
    fail(&serde_json::from_slice(&raw).unwrap(), "412");
    // Malformed, from an agency the system does not serve, to an unknown recipient.
    fail(
        &g12.send(G12, "edoc", b"<edXMLEnvelope>not a package"),
        "422",
    );
    fail(&g12.send(H29, "edoc", &edoc(H29, G12, "22")), "403");
    let unknown = g12.send(G12, "edoc", &edoc(G12, "000.00.00.Z99", "23"));
    fail(&unknown, "422");
    assert!(
        unknown["ErrorDesc"]
            .as_str()
            .unwrap()
            .contains("unknown-recipient"),
        "{unknown}"
    );
    // Someone else's document.
    let sent = g12.send(G12, "edoc", &package);
    ok(&sent);
    let mut h29 = Sdk::new(&hub, H29_SYSTEM, H29_SECRET, true);
    let item = docs(&h29.call("getReceivedEdocList", &[], None))[0].clone();
    fail(
        &g12.call("getEdoc", &[("docId", &item)], Some(b"{}")),
        "403",
    );
    fail(
        &h29.call("getEdoc", &[("docId", "0000000000000001-0")], Some(b"{}")),
        "404",
    );
    // Management: refused for G12's system, recorded for H29's.
    fail(
        &g12.call("deleteAgency", &[("AgencyCode", H29)], Some(b"{}")),
        "403",
    );
    ok(&h29.call(
        "registerAgency",
        &[],
        Some("{\"code\":\"999.010.01.H22\",\"name\":\"Sở Thử\"}".as_bytes()),
    ));
    assert_eq!(
        messages(&hub),
        before + 1,
        "only the one good package was stored"
    );
    // Not VXP: an unknown operation is a FAIL, never an HTML page.
    fail(&g12.call("noSuchOperation", &[], None), "400");
}

/// What field software does to a signed package: content changed after signing.
fn broken_signature(from: &str, to: &str, number: &str) -> Vec<u8> {
    let signed = crate::flows::sign(&edoc(from, to, number), from);
    let text = String::from_utf8(signed).unwrap();
    assert!(text.contains("Công văn gửi qua VXP"));
    text.replacen(
        "Công văn gửi qua VXP",
        "Công văn gửi qua VXP (sửa sau khi ký)",
        1,
    )
    .into_bytes()
}

/// The acceptance receipt of message `id`, fetched by its sender over API v1, and the same
/// with its lines trimmed and joined (to match elements regardless of indentation).
fn acceptance_receipt(hub: &Hub, sender: &str, id: &str) -> (String, String) {
    let r = hub.call(
        sender,
        "GET",
        &format!("/api/v1/receipts/{id}-acceptance"),
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8(r.body).unwrap();
    let compact = text.lines().map(str::trim).collect();
    (text, compact)
}

#[test]
fn a_signature_the_sdk_broke_is_accepted_as_not_verified_only_where_signatures_are_optional() {
    let (hub, _secrets) = hub();
    // Optional: accepted, and the receipt says the signature was present but did not verify.
    let mut g12 = Sdk::new(&hub, G12_SYSTEM, G12_SECRET, true);
    let broken = broken_signature(G12, H29, "41");
    let sent = g12.send(G12, "edoc", &broken);
    ok(&sent);
    let id = sent["DocId"].as_str().unwrap();
    let (receipt, compact) = acceptance_receipt(&hub, G12, id);
    assert!(
        compact.contains(
            "<Verdict><NotVerified><Outcome>invalid</Outcome><Code>digest-mismatch</Code>"
        ),
        "{receipt}"
    );
    assert!(!receipt.contains("<Valid>"), "{receipt}");
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("acceptance.xml");
    std::fs::write(&file, &receipt).unwrap();
    let (valid, why) = crate::receipt::xmllint(&file);
    assert!(valid, "the NotVerified form is in the schema: {why}");
    // The recipient gets the exact bytes, broken signature and all, and the admin API shows
    // the recorded verdict.
    let mut h29 = Sdk::new(&hub, H29_SYSTEM, H29_SECRET, true);
    let item = docs(&h29.call("getReceivedEdocList", &[], None))
        .into_iter()
        .find(|d| d.starts_with(id))
        .unwrap();
    let got = h29.call("getEdoc", &[("docId", &item)], Some(b"{}"));
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(got["data"].as_str().unwrap())
            .unwrap(),
        broken
    );
    let o = crate::util::truc(&[
        "admin",
        "show",
        id,
        "--json",
        "--admin",
        &format!("http://{}", hub.admin),
        "--token-file",
        &hub.dir
            .path()
            .join("data/admin.token")
            .display()
            .to_string(),
    ]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["verdict"]["status"], "not-verified", "{shown}");
    assert_eq!(shown["verdict"]["code"], "digest-mismatch", "{shown}");

    // Required: the same damage, no signature at all, or a signature that is not the
    // sender's are refusals naming the problem, and nothing is stored; an intact signature
    // is accepted as valid.
    let before = messages(&hub);
    let mut h41 = Sdk::new(&hub, H41_SYSTEM, H41_SECRET, true);
    let r = h41.send(H41, "edoc", &broken_signature(H41, H29, "42"));
    fail(&r, "422");
    assert!(
        r["ErrorDesc"]
            .as_str()
            .unwrap()
            .starts_with("signature-invalid: digest-mismatch"),
        "{r}"
    );
    let r = h41.send(H41, "edoc", &edoc(H41, H29, "43"));
    fail(&r, "422");
    assert!(
        r["ErrorDesc"]
            .as_str()
            .unwrap()
            .starts_with("signature-required"),
        "{r}"
    );
    let r = h41.send(H41, "edoc", &crate::flows::sign(&edoc(H41, H29, "44"), G12));
    fail(&r, "422");
    assert!(
        r["ErrorDesc"]
            .as_str()
            .unwrap()
            .starts_with("signer-not-authorized-for-sender"),
        "{r}"
    );
    assert_eq!(messages(&hub), before, "no refused package was stored");
    let sent = h41.send(H41, "edoc", &crate::flows::sign(&edoc(H41, H29, "45"), H41));
    ok(&sent);
    let (receipt, compact) = acceptance_receipt(&hub, H41, sent["DocId"].as_str().unwrap());
    assert!(compact.contains("<Verdict><Valid>"), "{receipt}");
}
