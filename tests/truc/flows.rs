//! End to end, over real TLS on loopback: the `truc serve` binary with the test PKI, agencies
//! talking to it with Debian's `curl`, a push receiver in Python (`ssl` + `http.server`),
//! packages signed by `truc sign` and by `xmlsec1`, and every receipt checked with `xmlsec1`.
//!
//! The fixtures' agencies are mapped onto the test PKI's: 000.00.00.G17 → G12 (pull),
//! H14 → H41 (push, to the receiver), H47 → H29 (pull).

// Waiting for a child process is measured on the real clock.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{root, stderr, tool};

pub(crate) const G12: &str = "000.00.00.G12";
pub(crate) const H29: &str = "000.00.00.H29";
pub(crate) const H41: &str = "000.00.00.H41";

/// A running hub.
pub(crate) struct Hub {
    child: Option<Child>,
    pub(crate) dir: tempfile::TempDir,
    /// The API's `ADDR:PORT`.
    pub(crate) addr: String,
    /// The admin listener's `ADDR:PORT`.
    pub(crate) admin: String,
    /// The VXP plain-HTTP listener's `ADDR:PORT`, when configured.
    pub(crate) vxp_http: String,
    config: PathBuf,
}

/// The push receiver: answers each POST with the next status of `plan` (then 200), and
/// saves the body and the Truc headers of each request.
const RECEIVER: &str = r#"
import http.server, json, os, ssl, sys, threading
out, plan = sys.argv[1], [int(s) for s in sys.argv[2].split(',') if s]
cert, key = sys.argv[3], sys.argv[4]
n = [0]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with lock:
            i = n[0]; n[0] += 1
        status = plan[i] if i < len(plan) else 200
        # The body first and the metadata last, each complete before it appears (written
        # aside, then renamed): the test reads a request once its JSON file exists.
        with open(os.path.join(out, '%d.xml.tmp' % i), 'wb') as f:
            f.write(body)
        os.rename(os.path.join(out, '%d.xml.tmp' % i), os.path.join(out, '%d.xml' % i))
        with open(os.path.join(out, '%d.json.tmp' % i), 'w') as f:
            json.dump({'status': status, 'path': self.path,
                       'headers': {k.lower(): v for k, v in self.headers.items() if k.lower().startswith('truc-')}}, f)
        os.rename(os.path.join(out, '%d.json.tmp' % i), os.path.join(out, '%d.json' % i))
        self.send_response(status)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
with open(os.path.join(out, 'port.tmp'), 'w') as f:
    f.write(str(s.server_address[1]))
os.rename(os.path.join(out, 'port.tmp'), os.path.join(out, 'port'))
s.serve_forever()
"#;

struct Receiver {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Receiver {
    fn start(plan: &str) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("receiver.py");
        std::fs::write(&script, RECEIVER).unwrap();
        let c = root().join("certs-test/hub");
        let child = Command::new("python3")
            .arg(&script)
            .arg(dir.path())
            .arg(plan)
            .arg(c.join("tls.pem"))
            .arg(c.join("tls.key"))
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let port = wait_for(&dir.path().join("port"), Duration::from_secs(10));
        Receiver {
            child,
            port: port.trim().parse().unwrap(),
            dir,
        }
    }

    /// The requests received so far: (metadata JSON, body).
    fn received(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0.. {
            let meta = self.dir.path().join(format!("{i}.json"));
            let body = self.dir.path().join(format!("{i}.xml"));
            let (Ok(m), Ok(b)) = (std::fs::read(&meta), std::fs::read(&body)) else {
                break;
            };
            let Ok(m) = serde_json::from_slice(&m) else {
                break;
            };
            out.push((m, b));
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(path: &Path, within: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(
            start.elapsed() < within,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it returns `Some`, for at most `within`.
pub(crate) fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Hub {
    /// A hub whose H41 pushes to `push_url`, giving up on a delivery after `max_age`.
    pub(crate) fn start(push_url: &str, max_age: &str) -> Hub {
        Hub::start_with(push_url, max_age, "")
    }

    /// [`Hub::start`] with `extra` appended to the configuration (more tables).
    pub(crate) fn start_with(push_url: &str, max_age: &str, extra: &str) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let c = root().join("certs-test");
        let directory = std::fs::read_to_string(c.join("directory.toml"))
            .unwrap()
            .replace("https://127.0.0.1:8445/inbox", push_url);
        std::fs::write(dir.path().join("directory.toml"), directory).unwrap();
        let p = |rel: &str| c.join(rel).display().to_string();
        let config = format!(
            r#"
id = "truc-test"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
data = "{data}"
directory = "{directory}"
[tls]
cert = "{tls_cert}"
key = "{tls_key}"
[trust]
anchors = ["{root}"]
intermediates = ["{inter}"]
crls = ["{crl}"]
[receipts]
key = "{rkey}"
cert = "{rcert}"
[limits]
rate_per_second = 0.0
[delivery]
push_timeout = "5s"
retry_base = "300ms"
retry_cap = "1s"
retry_floor = "200ms"
retry_max_age = "{max_age}"
circuit_cool_down = "200ms"
{extra}
"#,
            data = dir.path().join("data").display(),
            directory = dir.path().join("directory.toml").display(),
            tls_cert = p("hub/tls.pem"),
            tls_key = p("hub/tls.key"),
            root = p("root-ca.pem"),
            inter = p("intermediate-ca.pem"),
            crl = p("crl/intermediate-ca.crl"),
            rkey = p("hub/receipt.key"),
            rcert = p("hub/receipt.pem"),
        );
        let config_path = dir.path().join("hub.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut hub = Hub {
            child: None,
            dir,
            addr: String::new(),
            admin: String::new(),
            vxp_http: String::new(),
            config: config_path,
        };
        hub.spawn();
        hub
    }

    fn spawn(&mut self) {
        let ready = self.dir.path().join("ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::File::create(self.dir.path().join("hub.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_truc"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .arg("--ready-file")
            .arg(&ready)
            .current_dir(root())
            .env("TRUC_LOG", "info")
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = wait_for(&ready, Duration::from_secs(20));
        let mut lines = ready.lines();
        self.addr = lines.next().unwrap_or("").to_owned();
        self.admin = lines.next().unwrap_or("").to_owned();
        self.vxp_http = lines.next().unwrap_or("").to_owned();
    }

    /// SIGTERM, wait for a graceful exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let status = c.wait().unwrap();
            assert!(
                status.success(),
                "the hub exits 0 on SIGTERM: {status}\n{}",
                self.log()
            );
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }

    /// `curl` as `agency` (bearer token): status, headers (lower-case names), body.
    pub(crate) fn call(
        &self,
        agency: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Reply {
        let token =
            std::fs::read_to_string(root().join(format!("certs-test/agencies/{agency}/token")))
                .unwrap();
        self.curl(
            &[
                "-H".into(),
                format!("Authorization: Bearer {}", token.trim()),
            ],
            method,
            path,
            body,
        )
    }

    fn curl(&self, extra: &[String], method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        let d = tempfile::tempdir().unwrap();
        let (out, head) = (d.path().join("body"), d.path().join("head"));
        let mut cmd = Command::new(tool("curl", "curl"));
        cmd.args(["-s", "--cacert"])
            .arg(root().join("certs-test/root-ca.pem"))
            .args(["-X", method, "-o"])
            .arg(&out)
            .arg("-D")
            .arg(&head)
            .args(["-w", "%{http_code}"])
            .args(extra);
        if let Some(b) = body {
            let f = d.path().join("req");
            std::fs::write(&f, b).unwrap();
            cmd.arg("--data-binary").arg(format!("@{}", f.display()));
            cmd.args(["-H", "Content-Type: application/xml"]);
        }
        let url = format!(
            "https://{}{path}",
            self.addr.replace("127.0.0.1", "localhost")
        );
        let o = cmd.arg(url).output().unwrap();
        let status: u16 = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let headers = std::fs::read_to_string(&head)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: std::fs::read(&out).unwrap_or_default(),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The problem code (empty if the body is not a problem).
    fn code(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A fixture with its agencies mapped onto the test PKI's, `edits` applied, signed by
/// `signer` with `truc sign`.
pub(crate) fn package(fixture: &str, edits: &[(&str, &str)], signer: &str) -> Vec<u8> {
    let mut text = std::fs::read_to_string(crate::util::fixture(fixture)).unwrap();
    for (from, to) in [
        ("000.00.00.G17", G12),
        ("000.00.00.H14", H41),
        ("000.00.00.H47", H29),
    ]
    .iter()
    .chain(edits)
    {
        text = text.replace(from, to);
    }
    sign(text.as_bytes(), signer)
}

pub(crate) fn sign(unsigned: &[u8], signer: &str) -> Vec<u8> {
    sign_with(unsigned, &format!("agencies/{signer}/sign"))
}

/// `truc sign` with `certs-test/<key>.key` and `.pem`.
fn sign_with(unsigned: &[u8], key: &str) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("p.edxml");
    std::fs::write(&f, unsigned).unwrap();
    let c = root().join("certs-test");
    let o = crate::util::truc(&[
        "sign",
        f.to_str().unwrap(),
        "--key",
        c.join(format!("{key}.key")).to_str().unwrap(),
        "--cert",
        c.join(format!("{key}.pem")).to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    o.stdout
}

/// `xmlsec1 verify --trusted-pem root-ca.pem` of a receipt.
fn xmlsec1_verifies(receipt: &[u8]) -> bool {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("r.xml");
    std::fs::write(&f, receipt).unwrap();
    Command::new(tool("xmlsec1", "xmlsec1"))
        .arg("verify")
        .arg("--trusted-pem")
        .arg(root().join("certs-test/root-ca.pem"))
        .arg(&f)
        .output()
        .unwrap()
        .status
        .success()
}

fn text_of(xml: &[u8], element: &str) -> Option<String> {
    let s = String::from_utf8_lossy(xml);
    let open = format!("<{element}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find('<')? + start;
    Some(s[start..end].to_owned())
}

/// `truc receipt verify` on a real receipt: valid with its package, refused with another
/// package, a tampered receipt, or an anchor that is not the hub's.
pub(crate) fn receipt_verify_cli(receipt: &[u8], package: &[u8]) {
    let d = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let (r, p) = (file("r.xml", receipt), file("p.edxml", package));
    let other = file("other.edxml", b"<other/>");
    let tampered = file(
        "t.xml",
        String::from_utf8_lossy(receipt)
            .replacen("<Kind>acceptance</Kind>", "<Kind>delivery</Kind>", 1)
            .as_bytes(),
    );
    let root_ca = root().join("certs-test/root-ca.pem").display().to_string();
    let rogue = root()
        .join("certs-test/bad/rogue-root.pem")
        .display()
        .to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["receipt", "verify"];
        all.extend_from_slice(args);
        all.push("--json");
        let o = crate::util::truc(&all);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", crate::util::stderr(&o)));
        (o.status.code(), v)
    };
    let (code, v) = run(&[&r, "--trusted-pem", &root_ca, "--package", &p]);
    assert_eq!(
        (code, v["result"].as_str()),
        (Some(0), Some("valid")),
        "{v}"
    );
    assert_eq!(v["receipt"]["kind"], "acceptance");
    let (code, v) = run(&[&r, "--trusted-pem", &root_ca, "--package", &other]);
    assert_eq!(
        (code, v["code"].as_str()),
        (Some(1), Some("package-mismatch")),
        "{v}"
    );
    let (code, v) = run(&[&tampered, "--trusted-pem", &root_ca]);
    assert_eq!(
        (code, v["code"].as_str()),
        (Some(1), Some("digest-mismatch")),
        "{v}"
    );
    let (code, _) = run(&[&r, "--trusted-pem", &rogue]);
    assert_eq!(
        code,
        Some(3),
        "a receipt is trusted only under the hub's anchor"
    );
    let o = crate::util::truc(&["receipt", "verify", &r]);
    assert_eq!(o.status.code(), Some(64), "--trusted-pem is required");
}

/// The receipts in `agency`'s feed, as (kind, recipient, bytes).
pub(crate) fn feed(hub: &Hub, agency: &str) -> Vec<(String, String, Vec<u8>)> {
    let r = hub.call(agency, "GET", "/api/v1/receipts", None);
    assert_eq!(r.status, 200);
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let id = i["id"].as_str().unwrap();
            let got = hub.call(agency, "GET", &format!("/api/v1/receipts/{id}"), None);
            assert_eq!(got.status, 200, "{id}");
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["recipient"].as_str().unwrap_or_default().to_owned(),
                got.body,
            )
        })
        .collect()
}

#[test]
fn a_package_goes_in_receipts_come_out_pull_and_push() {
    let receiver = Receiver::start("503,503");
    let hub = Hub::start(&format!("https://localhost:{}/inbox", receiver.port), "72h");
    let pkg = package("valid/edoc_new_2recipients.edxml", &[], G12);

    // Accepted: 201, the signed acceptance receipt, Truc-Message-Id and Location.
    let r = hub.call(G12, "POST", "/api/v1/packages", Some(&pkg));
    assert_eq!(
        r.status,
        201,
        "{}\n{}",
        String::from_utf8_lossy(&r.body),
        hub.log()
    );
    let id = r.header("truc-message-id").unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/packages/{id}").as_str())
    );
    let acceptance = r.body.clone();
    assert!(
        xmlsec1_verifies(&acceptance),
        "xmlsec1 verifies the acceptance receipt"
    );
    assert_eq!(text_of(&acceptance, "Kind").as_deref(), Some("acceptance"));
    assert_eq!(text_of(&acceptance, "MessageId"), Some(id.clone()));
    assert_eq!(
        text_of(&acceptance, "PackageSha256"),
        Some(truc::pki::sha256_hex(&pkg))
    );
    // Whoever holds the receipt proves what it says offline: `truc receipt verify`.
    receipt_verify_cli(&acceptance, &pkg);
    // The same bytes again: 200, the same message and receipt.
    let again = hub.call(G12, "POST", "/api/v1/packages", Some(&pkg));
    assert_eq!(
        (again.status, again.header("truc-message-id")),
        (200, Some(id.as_str()))
    );
    assert_eq!(again.body, acceptance);

    // Pull: H29 lists, fetches the exact bytes (the sender's signature still verifies), acks.
    let inbox = hub.call(H29, "GET", "/api/v1/inbox", None).json();
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["sender"], G12);
    assert_eq!(items[0]["notation"], "BXD-QLN");
    let got = hub.call(H29, "GET", &format!("/api/v1/inbox/{id}"), None);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, pkg, "byte-identical");
    assert_eq!(got.header("truc-sender"), Some(G12));
    let trace = hub
        .call(H29, "GET", &format!("/api/v1/inbox/{id}/trace"), None)
        .json();
    assert_eq!(trace["hops"][0]["what"], "accepted");
    // Someone else's package is not there for G12.
    assert_eq!(
        hub.call(G12, "GET", &format!("/api/v1/inbox/{id}"), None)
            .status,
        404
    );
    let ack = br#"{"result": "delivered"}"#;
    let a = hub.call(H29, "POST", &format!("/api/v1/inbox/{id}/ack"), Some(ack));
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["state"], "delivered");
    let a2 = hub.call(H29, "POST", &format!("/api/v1/inbox/{id}/ack"), Some(ack));
    assert_eq!(a2.status, 200, "idempotent");
    let no = br#"{"result": "rejected", "reason": "late"}"#;
    let a3 = hub.call(H29, "POST", &format!("/api/v1/inbox/{id}/ack"), Some(no));
    assert_eq!((a3.status, a3.code()), (409, "invalid-state".to_owned()));
    assert!(
        hub.call(H29, "GET", "/api/v1/inbox", None).json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Push: H41's endpoint fails twice (503), then takes it; the delivery id is stable.
    let pushed = eventually(Duration::from_secs(20), "three push attempts", || {
        let r = receiver.received();
        (r.len() >= 3).then_some(r)
    });
    for (meta, body) in &pushed {
        assert_eq!(body, &pkg, "the original bytes are pushed");
        assert_eq!(meta["headers"]["truc-message-id"], id.as_str());
        assert_eq!(meta["headers"]["truc-sender"], G12);
        assert_eq!(
            meta["headers"]["truc-delivery-id"],
            pushed[0].0["headers"]["truc-delivery-id"]
        );
    }
    // Both recipients have a delivery receipt in G12's feed, each verified by xmlsec1.
    let receipts = eventually(Duration::from_secs(10), "two delivery receipts", || {
        let f = feed(&hub, G12);
        (f.len() >= 2).then_some(f)
    });
    let mut to: Vec<&str> = receipts.iter().map(|(_, r, _)| r.as_str()).collect();
    to.sort();
    assert_eq!(to, [H29, H41]);
    for (kind, _, bytes) in &receipts {
        assert_eq!(kind, "delivery");
        assert!(xmlsec1_verifies(bytes));
        assert_eq!(text_of(bytes, "MessageId"), Some(id.clone()));
    }
    let view = hub
        .call(G12, "GET", &format!("/api/v1/packages/{id}"), None)
        .json();
    let h41 = view["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recipient"] == H41)
        .unwrap();
    assert_eq!(
        (h41["state"].as_str(), h41["attempts"].as_u64()),
        (Some("delivered"), Some(3))
    );
    // Another agency does not see it.
    assert_eq!(
        hub.call(H29, "GET", &format!("/api/v1/packages/{id}"), None)
            .status,
        404
    );

    // Status relay: H41 reports 03 on it; it lands in G12's inbox, signed by H41.
    let status = package("valid/status_03.edxml", &[], H41);
    let s = hub.call(H41, "POST", "/api/v1/packages", Some(&status));
    assert_eq!(s.status, 201, "{}", String::from_utf8_lossy(&s.body));
    let g12 = hub.call(G12, "GET", "/api/v1/inbox", None).json();
    assert_eq!(g12["items"][0]["kind"], "status");
    assert_eq!(g12["items"][0]["sender"], H41);
    let sid = g12["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        hub.call(G12, "GET", &format!("/api/v1/inbox/{sid}"), None)
            .body,
        status
    );

    // G12 acknowledges the status; H41 is a push endpoint, so its delivery receipt is pushed
    // to it (Truc-Receipt-Id) rather than waiting in its feed.
    let ok = br#"{"result": "delivered"}"#;
    let a = hub.call(G12, "POST", &format!("/api/v1/inbox/{sid}/ack"), Some(ok));
    assert_eq!(a.status, 200);
    let (meta, receipt) = eventually(Duration::from_secs(10), "a pushed receipt", || {
        receiver
            .received()
            .into_iter()
            .find(|(m, _)| m["headers"]["truc-receipt-id"].is_string())
    });
    assert_eq!(
        meta["headers"]["truc-receipt-id"],
        format!("{sid}-0-delivery").as_str()
    );
    assert!(xmlsec1_verifies(&receipt));
    assert_eq!(text_of(&receipt, "Sender").as_deref(), Some(H41));

    // A revocation after delivery cancels nothing: the revocation itself reaches H29 (H47 in
    // the fixture), which answers with status 15, relayed to G12.
    let revoke = package("valid/edoc_revoke.edxml", &[], G12);
    let rv = hub.call(G12, "POST", "/api/v1/packages", Some(&revoke));
    assert_eq!(rv.status, 201, "{}", String::from_utf8_lossy(&rv.body));
    let rid = rv.header("truc-message-id").unwrap().to_owned();
    let h29 = hub.call(H29, "GET", "/api/v1/inbox", None).json();
    assert_eq!(h29["items"][0]["id"], rid.as_str());
    let answer = package("valid/status_15.edxml", &[], H29);
    assert_eq!(
        hub.call(H29, "POST", "/api/v1/packages", Some(&answer))
            .status,
        201
    );
    let g12 = hub.call(G12, "GET", "/api/v1/inbox", None).json();
    let senders: Vec<&str> = g12["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sender"].as_str().unwrap())
        .collect();
    assert_eq!(senders, [H29], "H41's status was acknowledged above");
    let kinds: Vec<String> = feed(&hub, G12).into_iter().map(|(k, _, _)| k).collect();
    assert!(
        !kinds.iter().any(|k| k == "cancellation"),
        "nothing was left to cancel: {kinds:?}"
    );
}

/// With an hour between polls, a push still goes out at once: the acceptance wakes the
/// endpoint's worker, and so does an operator's resume.
#[test]
fn a_new_package_and_a_resume_wake_the_push_worker() {
    let receiver = Receiver::start("");
    let hub = Hub::start_with(
        &format!("https://localhost:{}/inbox", receiver.port),
        "72h",
        r#"poll_interval = "1h""#,
    );
    let pkgs: Vec<Vec<u8>> = (1..=3)
        .map(|n| {
            let number = format!(",{n}/BXD-QLN");
            package(
                "valid/edoc_new_2recipients.edxml",
                &[(",356/BXD-QLN", number.as_str())],
                G12,
            )
        })
        .collect();
    let submit = |pkg: &[u8]| {
        let r = hub.call(G12, "POST", "/api/v1/packages", Some(pkg));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.header("truc-message-id").unwrap().to_owned()
    };
    // Pushed and recorded delivered: the worker has nothing left and waits for its next poll.
    let pushed = |id: &str, what: &str| {
        eventually(Duration::from_secs(30), what, || {
            let view = hub
                .call(G12, "GET", &format!("/api/v1/packages/{id}"), None)
                .json();
            let h41 = view["recipients"]
                .as_array()?
                .iter()
                .find(|r| r["recipient"] == H41)?
                .clone();
            (h41["state"] == "delivered").then_some(())
        });
        let received = receiver.received();
        assert_eq!(
            received
                .last()
                .map(|(m, _)| m["headers"]["truc-message-id"].clone()),
            Some(id.into()),
            "{what}"
        );
    };
    let first = submit(&pkgs[0]);
    pushed(&first, "the first push");
    let second = submit(&pkgs[1]);
    pushed(
        &second,
        "a push woken by its acceptance, not by a poll an hour away",
    );

    let pause = crate::admin::admin(&hub, &["pause", H41]);
    assert_eq!(pause.status.code(), Some(0), "{}", stderr(&pause));
    let third = submit(&pkgs[2]);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(receiver.received().len(), 2, "held while paused");
    let resume = crate::admin::admin(&hub, &["resume", H41]);
    assert_eq!(resume.status.code(), Some(0), "{}", stderr(&resume));
    pushed(&third, "a push woken by the resume");
    assert_eq!(receiver.received().len(), 3, "one attempt each");
}

#[test]
fn a_revocation_cancels_what_was_not_delivered_and_a_dead_endpoint_gets_a_failure_receipt() {
    // H41's endpoint is a closed port: every attempt fails, and it gives up after 2 s.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut hub = Hub::start(&format!("https://localhost:{port}/inbox"), "2s");
    let original = package("valid/edoc_new_2recipients.edxml", &[], G12);
    let r = hub.call(G12, "POST", "/api/v1/packages", Some(&original));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.header("truc-message-id").unwrap().to_owned();
    // H29 (pull) has it at once, whatever happens to H41.
    assert_eq!(
        hub.call(H29, "GET", "/api/v1/inbox", None).json()["items"][0]["id"],
        id.as_str()
    );
    // A restart in the middle of the retries loses nothing.
    hub.stop();
    hub.spawn();
    // The revocation names H29 (H47 in the fixture): its delivery is cancelled before H29
    // fetched it, G12 gets a cancellation receipt, and H29's inbox holds the revocation.
    let revoke = package("valid/edoc_revoke.edxml", &[], G12);
    let rv = hub.call(G12, "POST", "/api/v1/packages", Some(&revoke));
    assert_eq!(rv.status, 201, "{}", String::from_utf8_lossy(&rv.body));
    let rid = rv.header("truc-message-id").unwrap().to_owned();
    let inbox = hub.call(H29, "GET", "/api/v1/inbox", None).json();
    let ids: Vec<&str> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [rid.as_str()], "the original is gone from the inbox");
    assert_eq!(
        hub.call(H29, "GET", &format!("/api/v1/inbox/{id}"), None)
            .status,
        404
    );
    // H41's copy dies: a failure receipt; with H29's cancellation, both verified by xmlsec1.
    let receipts = eventually(
        Duration::from_secs(20),
        "failure and cancellation receipts",
        || {
            let f = feed(&hub, G12);
            (f.len() >= 2).then_some(f)
        },
    );
    let mut kinds: Vec<(&str, &str)> = receipts
        .iter()
        .map(|(k, r, _)| (k.as_str(), r.as_str()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [("cancellation", H29), ("failure", H41)],
        "{}",
        hub.log()
    );
    for (_, _, bytes) in &receipts {
        assert!(xmlsec1_verifies(bytes));
        assert!(text_of(bytes, "Reason").is_some());
    }
    hub.stop();
}

/// The unsigned fixture with its agencies mapped, `from` as sender.
fn unsigned_from(fixture: &str, from: &str) -> String {
    let mut t = std::fs::read_to_string(crate::util::fixture(fixture)).unwrap();
    for (a, b) in [
        ("000.00.00.G17", from),
        ("000.00.00.H14", H41),
        ("000.00.00.H47", H29),
    ] {
        t = t.replace(a, b);
    }
    t
}

/// `xmlsec1 sign` of the package with a template Signature at the end of edXMLHeader.
fn xmlsec1_signed(package: &str, agency: &str, method: &str, digest: &str) -> Vec<u8> {
    const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    const EXC: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
    let template = format!(
        r#"<Signature xmlns="{DS}"><SignedInfo><CanonicalizationMethod Algorithm="{EXC}"/><SignatureMethod Algorithm="{method}"/><Reference URI=""><Transforms><Transform Algorithm="{DS}enveloped-signature"/><Transform Algorithm="{EXC}"/></Transforms><DigestMethod Algorithm="{digest}"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data><X509Certificate/></X509Data></KeyInfo></Signature>"#
    );
    let end = package.find("</edXML:edXMLHeader>").unwrap();
    let d = tempfile::tempdir().unwrap();
    let (tmpl, out) = (d.path().join("t.edxml"), d.path().join("s.edxml"));
    std::fs::write(
        &tmpl,
        format!("{}{template}{}", &package[..end], &package[end..]),
    )
    .unwrap();
    let c = root().join("certs-test");
    let keys = format!(
        "{},{},{}",
        c.join(format!("agencies/{agency}/sign.key")).display(),
        c.join(format!("agencies/{agency}/sign.pem")).display(),
        c.join("intermediate-ca.pem").display()
    );
    let o = Command::new(tool("xmlsec1", "xmlsec1"))
        .args(["sign", "--privkey-pem", &keys, "--output"])
        .arg(&out)
        .arg(&tmpl)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    std::fs::read(&out).unwrap()
}

/// Packages signed by an independent signer: xmlsec1 with RSA-SHA256 for G12, and with
/// RSA-SHA1 (the national CA's algorithms) for G22, whose policy allows legacy algorithms;
/// the same RSA-SHA1 signature style from G12, whose policy does not, is refused.
#[test]
fn packages_signed_by_xmlsec1_are_accepted_under_each_senders_policy() {
    const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    const MORE: &str = "http://www.w3.org/2001/04/xmldsig-more#";
    const ENC: &str = "http://www.w3.org/2001/04/xmlenc#";
    let hub = Hub::start("https://localhost:9/inbox", "72h");
    let g12 = xmlsec1_signed(
        &unsigned_from("valid/edoc_new_2recipients.edxml", G12),
        G12,
        &format!("{MORE}rsa-sha256"),
        &format!("{ENC}sha256"),
    );
    let r = hub.call(G12, "POST", "/api/v1/packages", Some(&g12));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.header("truc-message-id").unwrap();
    assert_eq!(
        hub.call(H29, "GET", &format!("/api/v1/inbox/{id}"), None)
            .body,
        g12
    );

    let g22 = xmlsec1_signed(
        &unsigned_from("valid/edoc_new_2recipients.edxml", "000.00.00.G22"),
        "000.00.00.G22",
        &format!("{DS}rsa-sha1"),
        &format!("{DS}sha1"),
    );
    let r = hub.call("000.00.00.G22", "POST", "/api/v1/packages", Some(&g22));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(xmlsec1_verifies(&r.body));
    let receipt = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        receipt.contains("<Legacy>rsa-sha1</Legacy>"),
        "the receipt records it: {receipt}"
    );

    let mut other = unsigned_from("valid/edoc_new_2recipients.edxml", G12);
    other = other.replace("356/BXD-QLN", "357/BXD-QLN");
    let legacy_g12 = xmlsec1_signed(&other, G12, &format!("{DS}rsa-sha1"), &format!("{DS}sha1"));
    let r = hub.call(G12, "POST", "/api/v1/packages", Some(&legacy_g12));
    assert_eq!((r.status, r.code()), (422, "signature-invalid".to_owned()));
}

#[test]
fn every_refusal_has_its_code_and_stores_nothing() {
    let hub = Hub::start("https://localhost:9/inbox", "72h");
    let signed = package("valid/edoc_new_2recipients.edxml", &[], G12);
    let unsigned = unsigned_from("valid/edoc_new_2recipients.edxml", G12).into_bytes();
    let tampered = String::from_utf8(signed.clone())
        .unwrap()
        .replacen(
            "<edXML:CodeNotation>BXD-QLN<",
            "<edXML:CodeNotation>BXD-QLX<",
            1,
        )
        .into_bytes();
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("unsigned", G12, unsigned.clone(), 422, "signature-required"),
        ("tampered", G12, tampered, 422, "signature-invalid"),
        (
            "signed by another agency",
            G12,
            sign(&unsigned, H29),
            422,
            "signer-not-authorized-for-sender",
        ),
        (
            "signer under a rogue root",
            G12,
            sign_with(&unsigned, "bad/rogue-signer"),
            422,
            "signer-untrusted",
        ),
        (
            "revoked signer",
            G12,
            sign_with(&unsigned, "bad/revoked"),
            422,
            "signer-untrusted",
        ),
        (
            "expired signer",
            G12,
            sign_with(&unsigned, "bad/expired"),
            422,
            "signer-untrusted",
        ),
        (
            "sender is not the caller",
            H29,
            signed.clone(),
            403,
            "forbidden",
        ),
        (
            "unknown recipient",
            G12,
            package(
                "valid/edoc_new_2recipients.edxml",
                &[(H41, "000.00.00.H99")],
                G12,
            ),
            422,
            "unknown-recipient",
        ),
        (
            "DOCTYPE",
            G12,
            [b"<!DOCTYPE x>".as_slice(), &signed].concat(),
            422,
            "invalid-package",
        ),
        ("not XML", G12, b"hello".to_vec(), 422, "invalid-package"),
    ];
    for (what, agency, body, status, code) in cases {
        let r = hub.call(agency, "POST", "/api/v1/packages", Some(&body));
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
    }
    // Wrong credentials.
    let r = hub.curl(
        &["-H".into(), "Authorization: Bearer nope".into()],
        "POST",
        "/api/v1/packages",
        Some(&signed),
    );
    assert_eq!((r.status, r.code()), (401, "unauthenticated".to_owned()));
    // Nothing was stored: no inbox has anything, no feed has anything.
    for a in [G12, H29, H41] {
        let inbox = hub.call(a, "GET", "/api/v1/inbox", None).json();
        assert!(inbox["items"].as_array().unwrap().is_empty(), "{a}");
    }
    assert!(feed(&hub, G12).is_empty());
    // And the same signed package is still accepted afterwards, as a new message.
    assert_eq!(
        hub.call(G12, "POST", "/api/v1/packages", Some(&signed))
            .status,
        201
    );
}
