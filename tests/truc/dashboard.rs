//! The dashboard in a real browser: Debian's headless `chromium`, driven over the Chrome
//! DevTools Protocol (a websocket, with `tungstenite`), against a running `truc serve` whose
//! push endpoint for H41 is dead. The operator logs in with the admin token, sees H41's
//! delivery retrying, searches for it, opens the message, presses Retry, and watches the
//! attempts counter go up; a screenshot of that page is kept in
//! `target/test-artifacts/dashboard-retry.png`. Beside the browser, `curl` checks what a
//! browser does not show: the security headers, the CSRF gate, HTML refusals, the receipt
//! XML, and the audit log's entry for the click.
//!
//! Skipped, loudly, only when chromium is not installed and `TRUC_REQUIRE_BROWSER` is unset;
//! `.ci/run` installs chromium and sets it, so CI never skips.

#![allow(clippy::disallowed_methods)]

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::flows::{G12, H41, Hub, eventually, package};
use crate::util::tool;

/// The policy every page must carry.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// Generous: CI is a 2-core machine, and chromium is slow to start there.
const PATIENCE: Duration = Duration::from_secs(60);

/// `chromium` on the `PATH` (or in /usr/bin), if installed.
fn chromium_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// A headless chromium in its own process group with a throw-away profile, and one page
/// attached over the DevTools websocket (flattened session).
struct Chromium {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// The page's session on the browser connection.
    session: Option<String>,
    /// Dropped after the fields above: kills what is left of the browser.
    child: Group,
    profile: tempfile::TempDir,
}

/// The browser's process group, killed when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

impl Chromium {
    fn launch(binary: &Path) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let data = profile.path().join("profile");
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", data.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        let child = Group(child);
        let ws = connect_devtools(&data, &profile);
        let mut browser = Chromium {
            ws,
            next_id: 0,
            session: None,
            child,
            profile,
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .unwrap();
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .unwrap();
        browser.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        browser.call("Page.enable", json!({})).unwrap();
        browser
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }

    /// One DevTools command on the page's session: its result, or the protocol's error.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .map_err(|e| format!("{method}: send: {e}"))?;
        loop {
            let m = self.ws.read().map_err(|e| format!("{method}: read: {e}"))?;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
            if v["id"] != json!(id) {
                continue; // an event
            }
            if let Some(e) = v.get("error") {
                return Err(format!("{method}: {e}"));
            }
            return Ok(v["result"].clone());
        }
    }

    /// `expr` evaluated in the page, by value (`Err` while the page is changing, or if it
    /// threw).
    fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expr}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `expr` until it is truthy; its value.
    fn wait_for(&mut self, expr: &str, what: &str) -> Value {
        let start = Instant::now();
        loop {
            match self.eval(expr) {
                Ok(v) if !(v.is_null() || v == json!(false) || v == json!("")) => return v,
                _ => {}
            }
            assert!(
                start.elapsed() < PATIENCE,
                "timed out waiting for {what} ({expr}); the page: {}\nchromium: {}",
                self.eval("document.documentElement.outerHTML")
                    .unwrap_or_default(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `action` (JavaScript that navigates: a click, a submit) and waits until the
    /// next document has loaded; its URL.
    fn navigating(&mut self, action: &str) -> String {
        self.eval(&format!("window.__trucOld = true; {action}; true"))
            .unwrap();
        self.loaded()
    }

    /// Opens `url` and waits until it has loaded.
    fn open(&mut self, url: &str) -> String {
        self.eval("window.__trucOld = true").unwrap();
        let r = self.call("Page.navigate", json!({ "url": url })).unwrap();
        assert!(r.get("errorText").is_none(), "{url}: {r}");
        self.loaded()
    }

    fn loaded(&mut self) -> String {
        let href = self.wait_for(
            "!window.__trucOld && document.readyState === 'complete' && location.href",
            "the next page",
        );
        href.as_str().unwrap().to_owned()
    }

    /// The trimmed text of the element with this id (`None` if there is none).
    fn text(&mut self, id: &str) -> Option<String> {
        let v = self
            .eval(&format!(
                "(document.getElementById({}) || {{}}).textContent",
                json!(id)
            ))
            .unwrap();
        v.as_str().map(|s| s.trim().to_owned())
    }

    fn number(&mut self, id: &str) -> u64 {
        let t = self.text(id).unwrap_or_else(|| panic!("no element #{id}"));
        t.parse()
            .unwrap_or_else(|_| panic!("#{id} holds {t:?}, not a number"))
    }

    /// A PNG of the page in `target/test-artifacts/<name>` (under the checkout, wherever
    /// `CARGO_TARGET_DIR` points), checked to be one.
    fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.len() > 1000, "{name}: {} bytes", png.len());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        let file = artifacts.join(name);
        std::fs::write(&file, &png).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().len(), png.len() as u64);
        eprintln!("dashboard screenshot: {}", file.display());
        file
    }

    /// A real click on the button with this id (DOM `click()`: the form submits as if a
    /// person had pressed it), then the next page.
    fn click(&mut self, id: &str) -> String {
        let exists = self
            .eval(&format!("!!document.getElementById({})", json!(id)))
            .unwrap();
        assert_eq!(exists, json!(true), "no button #{id}");
        self.navigating(&format!("document.getElementById({}).click()", json!(id)))
    }
}

/// Waits for `DevToolsActivePort` in the profile (port, then the browser's path), and opens
/// the websocket.
fn connect_devtools(data: &Path, profile: &tempfile::TempDir) -> WebSocket<TcpStream> {
    let file = data.join("DevToolsActivePort");
    let start = Instant::now();
    let (port, path) = loop {
        if let Ok(s) = std::fs::read_to_string(&file) {
            let mut lines = s.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break (port.trim().to_owned(), path.trim().to_owned());
            }
        }
        assert!(
            start.elapsed() < PATIENCE,
            "chromium did not open its DevTools port: {}",
            std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    match tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream) {
        Ok((ws, _)) => ws,
        Err(e) => panic!("DevTools websocket handshake: {e}"),
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Ask politely on the browser's own connection, then make sure of the whole group.
        self.session = None;
        let _ = self.ws.send(Message::Text(
            json!({ "id": 0, "method": "Browser.close" })
                .to_string()
                .into(),
        ));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Then `Group` kills the renderers and helpers that may be left.
    }
}

/// What `curl` got from the admin listener.
struct Got {
    status: u16,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl <args> http://<admin><path>`, without following redirects.
fn curl(hub: &Hub, args: &[&str], path: &str) -> Got {
    let d = tempfile::tempdir().unwrap();
    let (head, body) = (d.path().join("head"), d.path().join("body"));
    let o = Command::new(tool("curl", "curl"))
        .args(["-s", "-w", "%{http_code}", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(format!("http://{}{path}", hub.admin))
        .output()
        .unwrap();
    Got {
        status: String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        headers: std::fs::read_to_string(&head)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&std::fs::read(&body).unwrap_or_default()).into_owned(),
    }
}

/// H41's delivery of message `id`, from the admin JSON API.
fn h41_delivery(hub: &Hub, token: &str, id: &str) -> Value {
    let bearer = format!("Authorization: Bearer {token}");
    let got = curl(hub, &["-H", &bearer], &format!("/admin/api/messages/{id}"));
    assert_eq!(got.status, 200, "{}", got.body);
    crate::admin::h41_delivery(&serde_json::from_str(&got.body).unwrap())
}

fn assert_security_headers(got: &Got, what: &str) {
    assert_eq!(got.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(got.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(got.header("referrer-policy"), Some("no-referrer"), "{what}");
}

#[test]
fn an_operator_retries_a_stuck_delivery_from_the_dashboard_in_chromium() {
    let Some(binary) = chromium_path() else {
        assert!(
            std::env::var_os("TRUC_REQUIRE_BROWSER").is_none(),
            "TRUC_REQUIRE_BROWSER is set but chromium is not installed (apt-get install -y \
             chromium)"
        );
        eprintln!(
            "\n!!!!!!!! SKIPPED: the dashboard browser test needs chromium \
             (apt-get install -y chromium; .ci/run installs it and sets TRUC_REQUIRE_BROWSER=1) \
             !!!!!!!!\n"
        );
        return;
    };
    let started = Instant::now();

    // A hub whose H41 endpoint is a closed port: its delivery keeps retrying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let hub = Hub::start(&format!("https://127.0.0.1:{port}/inbox"), "72h");
    let data = hub.dir.path().join("data");
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let token = token.trim().to_owned();

    let pkg = package("valid/edoc_new_2recipients.edxml", &[], G12);
    let r = hub.call(G12, "POST", "/api/v1/packages", Some(&pkg));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.header("truc-message-id").unwrap().to_owned();
    let stuck = eventually(PATIENCE, "H41's delivery retrying", || {
        let d = h41_delivery(&hub, &token, &id);
        (d["state"] == "retrying" && d["attempts"].as_u64() >= Some(1)).then_some(d)
    });
    let delivery = stuck["id"].as_str().unwrap().to_owned();

    let mut browser = Chromium::launch(&binary);
    let admin = format!("http://{}", hub.admin);

    // Not logged in: any page leads to the login form.
    let at = browser.open(&format!("{admin}/"));
    assert_eq!(at, format!("{admin}/login"));
    assert!(browser.text("login").is_some(), "the login form");
    // A wrong token is refused on the page.
    browser
        .eval("document.getElementById('token').value = 'not-the-token'")
        .unwrap();
    browser.click("login-submit");
    assert!(
        browser
            .text("login-error")
            .is_some_and(|t| t.contains("not the admin token")),
        "a wrong token is refused"
    );
    // The right one opens the queues.
    browser
        .eval(&format!(
            "document.getElementById('token').value = {}; \
             document.getElementById('name').value = 'dash-test'",
            json!(token)
        ))
        .unwrap();
    let at = browser.click("login-submit");
    assert_eq!(at, format!("{admin}/"), "logged in, on the queues");
    assert!(
        browser
            .text("who")
            .is_some_and(|w| w.contains("dash-test") && w.ends_with("(dashboard)")),
        "{:?}",
        browser.text("who")
    );

    // H41's row: push, retrying (reloading while an attempt happens to be in flight).
    let retrying = format!("retrying-{H41}");
    let start = Instant::now();
    loop {
        if browser.number(&retrying) >= 1 {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "H41 never showed retrying");
        std::thread::sleep(Duration::from_millis(300));
        browser.open(&format!("{admin}/"));
    }
    assert_eq!(
        browser.text(&format!("mode-{H41}")).as_deref(),
        Some("push")
    );
    assert_eq!(
        browser.text(&format!("paused-{H41}")).as_deref(),
        Some("no")
    );

    // The search form finds the message by recipient and state.
    browser
        .eval(&format!(
            "document.getElementById('search-recipient').value = {}; \
             document.getElementById('search-state').value = 'retrying'",
            json!(H41)
        ))
        .unwrap();
    let at = browser.click("search-submit");
    assert!(
        at.starts_with(&format!("{admin}/messages?")) && at.contains("state=retrying"),
        "{at}"
    );
    let link = browser
        .eval(&format!(
            "document.querySelector('#message-{id} a')?.getAttribute('href')"
        ))
        .unwrap();
    assert_eq!(
        link,
        json!(format!("/messages/{id}")),
        "the result links to the message"
    );

    // The message page: the attempts so far, then Retry.
    let page = format!("{admin}/messages/{id}");
    browser.navigating(&format!(
        "document.querySelector('#message-{id} a').click()"
    ));
    let attempts = format!("attempts-{delivery}");
    let before = browser.number(&attempts);
    assert!(before >= 1, "{before}");
    // Retry applies while the delivery waits; an attempt in flight at that very moment makes
    // it a readable refusal instead, and the operator presses again.
    let mut tries = 0;
    let done = loop {
        tries += 1;
        let at = browser.click("retry");
        if browser.text("flash").is_some() {
            assert!(at.starts_with(&format!("{page}?done=retry")), "{at}");
            break at;
        }
        let code = browser.text("problem-code");
        assert_eq!(
            code.as_deref(),
            Some("invalid-state"),
            "a refused retry is shown as a page: {at}"
        );
        assert!(tries < 10, "retry refused {tries} times");
        browser.click("back");
        std::thread::sleep(Duration::from_millis(200));
    };
    let flash = browser.text("flash").unwrap();
    assert_eq!(flash, format!("Retry: {delivery} due now."));
    // Reload (the outcome line stays) until the counter moves.
    let start = Instant::now();
    let after = loop {
        let n = browser.number(&attempts);
        if n > before {
            break n;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "attempts stayed at {n} after Retry\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(300));
        browser.open(&done);
    };
    assert!(after > before);
    // The click itself is in the timeline, not only the worker's own retries.
    let timeline = browser
        .eval(
            "Array.from(document.querySelectorAll('#events td.what'))\
             .some(td => td.textContent === 'retry-now')",
        )
        .unwrap();
    assert_eq!(timeline, json!(true), "a retry-now event in the timeline");
    // Still waiting for its endpoint: due now, in flight or retrying again.
    let state = browser
        .text(&format!("state-{delivery}"))
        .unwrap_or_default();
    assert!(
        matches!(state.as_str(), "queued" | "in-flight" | "retrying"),
        "{state}"
    );

    // The screenshot of that page, kept for people to look at.
    browser.screenshot("dashboard-retry.png");

    // The receipt link serves the signed XML.
    let receipt = browser
        .eval("document.querySelector('#receipts a').getAttribute('href')")
        .unwrap();
    let receipt = receipt.as_str().unwrap().to_owned();
    assert!(receipt.starts_with("/receipts/"), "{receipt}");

    // Pause and resume H41 from the queues page.
    browser.open(&format!("{admin}/"));
    browser.click(&format!("pause-{H41}"));
    assert_eq!(
        browser.text("flash").as_deref(),
        Some(format!("Paused push deliveries to {H41}.").as_str())
    );
    assert_eq!(
        browser.text(&format!("paused-{H41}")).as_deref(),
        Some("paused")
    );
    browser.screenshot("dashboard-queues.png");
    browser.click(&format!("resume-{H41}"));
    assert_eq!(
        browser.text(&format!("paused-{H41}")).as_deref(),
        Some("no")
    );

    // What the browser holds: the session cookie (HttpOnly) and the page's CSRF token.
    let cookies = browser
        .call(
            "Network.getCookies",
            json!({ "urls": [format!("{admin}/")] }),
        )
        .unwrap();
    let session = cookies["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "truc_admin")
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    let cookie = format!("Cookie: truc_admin={}", session["value"].as_str().unwrap());
    let csrf = browser
        .eval("document.querySelector('input[name=csrf]').value")
        .unwrap();
    let csrf = csrf.as_str().unwrap().to_owned();
    assert!(csrf.len() >= 16);

    // The pages carry the security headers; the receipt is XML.
    for path in ["/", &format!("/messages/{id}"), "/messages?state=retrying"] {
        let got = curl(&hub, &["-H", &cookie], path);
        assert_eq!(got.status, 200, "{path}: {}", got.body);
        assert!(
            got.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{path}"
        );
        assert_security_headers(&got, path);
    }
    let got = curl(&hub, &[], "/login");
    assert_security_headers(&got, "/login");
    let got = curl(&hub, &["-H", &cookie], &receipt);
    assert_eq!(got.status, 200, "{receipt}: {}", got.body);
    assert_eq!(got.header("content-type"), Some("application/xml"));
    assert!(got.body.contains("Signature"), "{}", got.body);

    // A form post without the CSRF token, or with another, is refused; nothing happens.
    let retry = format!("/messages/{id}/retry");
    let got = curl(&hub, &["-H", &cookie, "-X", "POST"], &retry);
    assert_eq!(got.status, 403, "{}", got.body);
    let got = curl(&hub, &["-H", &cookie, "--data", "csrf=forged"], &retry);
    assert_eq!(got.status, 403, "{}", got.body);
    assert!(
        got.body.contains("id=problem-code>forbidden"),
        "a page: {}",
        got.body
    );
    assert_security_headers(&got, &retry);
    // With the token, a refusal is a page with a way back (nothing is dead to requeue).
    let form = format!("csrf={csrf}");
    let got = curl(
        &hub,
        &["-H", &cookie, "--data", &form],
        &format!("/messages/{id}/requeue"),
    );
    assert_eq!(got.status, 409, "{}", got.body);
    assert!(
        got.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        got.headers
    );
    assert!(got.body.contains("invalid-state"), "{}", got.body);
    assert!(
        got.body.contains(&format!("href=\"/messages/{id}\"")),
        "{}",
        got.body
    );
    // Not logged in: redirected to the login page.
    let got = curl(&hub, &[], &format!("/messages/{id}"));
    assert_eq!((got.status, got.header("location")), (303, Some("/login")));

    // The click is in the audit log, with who did it, from the dashboard.
    let audit = data.join("store/audit.log");
    let entry = eventually(
        Duration::from_secs(20),
        "admin:retry in the audit log",
        || {
            let text = std::fs::read_to_string(&audit).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| {
                    e["action"] == "admin:retry"
                        && e["actor"]
                            .as_str()
                            .is_some_and(|a| a.ends_with("(dashboard)"))
                        && e["detail"].as_str().is_some_and(|d| d.starts_with("ok"))
                })
        },
    );
    assert!(
        entry["actor"]
            .as_str()
            .unwrap()
            .starts_with("operator:dash-test@"),
        "{entry}"
    );
    assert_eq!(entry["subject"], id.as_str());

    // Log out: the session is gone.
    browser.click("logout");
    let got = curl(&hub, &["-H", &cookie], "/");
    assert_eq!(got.status, 303, "the session ended");
    drop(browser);
    eprintln!("dashboard browser test: {:?}", started.elapsed());
}
