//! The hub over real TLS on loopback: the `truc serve` binary, started as a child process on
//! `127.0.0.1:0` with a temporary data directory (its address comes from `--ready-file`),
//! driven with Debian's `curl` and with a small blocking rustls client that can misbehave
//! (stall mid-header, stop mid-body, hold connections open).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::util::{root, tool};

const G12: &str = "000.00.00.G12";
const H29: &str = "000.00.00.H29";
const AGENCIES: [&str; 4] = [G12, "000.00.00.G22", H29, "000.00.00.H41"];

#[allow(clippy::disallowed_methods)] // the suite measures how long the hub takes to cut off
fn clock() -> Instant {
    Instant::now()
}

fn pki(rel: &str) -> PathBuf {
    root().join("certs-test").join(rel)
}

fn token(agency: &str) -> String {
    std::fs::read_to_string(pki(&format!("agencies/{agency}/token")))
        .unwrap()
        .trim()
        .to_owned()
}

/// A configuration file's text: the test PKI by absolute path, data in `data`, the API on
/// a free port, and these `[limits]` lines.
fn config_text(data: &Path, limits: &str) -> String {
    let p = |rel: &str| pki(rel).display().to_string();
    format!(
        "id = 'truc-test'\n\
         listen = '127.0.0.1:0'\n\
         admin_listen = '127.0.0.1:0'\n\
         data = '{}'\n\
         directory = '{}'\n\
         [tls]\ncert = '{}'\nkey = '{}'\n\
         [trust]\nanchors = ['{}']\nintermediates = ['{}']\ncrls = ['{}']\n\
         [receipts]\nkey = '{}'\ncert = '{}'\n\
         [limits]\n{limits}\n",
        data.display(),
        p("directory.toml"),
        p("hub/tls.pem"),
        p("hub/tls.key"),
        p("root-ca.pem"),
        p("intermediate-ca.pem"),
        p("crl/intermediate-ca.crl"),
        p("hub/receipt.key"),
        p("hub/receipt.pem"),
    )
}

/// A running `truc serve`, killed when dropped.
struct Hub {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Hub {
    /// Starts the binary with a configuration whose `[limits]` are `limits`.
    fn start(limits: &str) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hub.toml");
        std::fs::write(&config, config_text(&dir.path().join("data"), limits)).unwrap();
        let ready = dir.path().join("ready");
        let log = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_truc"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--ready-file")
            .arg(&ready)
            .env("TRUC_LOG", "truc=debug")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the truc binary starts");
        let start = clock();
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let addr = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .parse()
                    .expect("the ready file holds ADDR:PORT");
                return Hub { child, addr, dir };
            }
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
                panic!("truc serve exited with {status} before listening:\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "truc serve did not become ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit.
    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = clock();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "truc serve still running {limit:?} after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -sS` against the hub from the crate root; the last line of stdout is the status.
fn curl(args: &[&str]) -> Output {
    Command::new(tool("curl", "curl"))
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .current_dir(root())
        .output()
        .expect("curl runs")
}

/// The status and body of a `curl` call.
fn curl_result(o: &Output) -> (u16, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn agencies_of(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(a["name"].as_str().is_some_and(|n| !n.is_empty()), "{a}");
            a["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

// ----- a blocking rustls client -----

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn client_config(agency_cert: Option<&str>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki("root-ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match agency_cert {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = CertificateDer::pem_file_iter(pki(&format!("agencies/{id}/client.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                PrivateKeyDer::from_pem_file(pki(&format!("agencies/{id}/client.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(config)
}

/// A TLS connection to the hub, handshake done.
fn connect(addr: SocketAddr, agency_cert: Option<&str>) -> Tls {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(client_config(agency_cert), name).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem document with this status and code.
    fn assert_problem(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["status"], status, "{v}");
        assert_eq!(v["type"], format!("urn:truc:problem:{code}"), "{v}");
        assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
        assert!(self.header("truc-request-id").is_some(), "{self:?}");
        v
    }
}

/// Reads one response (the body by Content-Length).
fn read_response(s: &mut Tls) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The head of a request with a bearer token (`Host` included), without the blank line.
fn head(method: &str, path: &str, bearer: Option<&str>) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = bearer {
        h.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    h
}

/// Sends a whole request on `s` and reads the response.
fn exchange(s: &mut Tls, request: &[u8]) -> Response {
    s.write_all(request).unwrap();
    s.flush().unwrap();
    read_response(s).unwrap()
}

/// One GET with G12's token on a new connection.
fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = connect(addr, None);
    let req = format!("{}\r\n", head("GET", path, Some(&token(G12))));
    exchange(&mut s, req.as_bytes())
}

/// Waits for the hub to close `s` (EOF or a reset), draining anything it sends first;
/// panics after `limit`. Returns how long it took.
fn wait_closed(s: &mut Tls, limit: Duration) -> Duration {
    s.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let start = clock();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return start.elapsed(),
        }
        assert!(
            start.elapsed() < limit,
            "connection still open after {limit:?}"
        );
    }
}

// ----- the tests -----

#[test]
fn tls_1_2_and_1_3_with_a_bearer_token_or_a_client_certificate() {
    let hub = Hub::start("");
    let url = hub.url("/api/v1/agencies");
    let auth = format!("Authorization: Bearer {}", token(G12));
    for (versions, expect) in [
        (["--tlsv1.2", "--tls-max", "1.2"].as_slice(), "TLSv1.2"),
        (["--tlsv1.3"].as_slice(), "TLSv1.3"),
    ] {
        let mut args = vec!["-v", "--cacert", "certs-test/root-ca.pem", "-H", &auth];
        args.extend(versions);
        args.push(&url);
        let o = curl(&args);
        let (status, body) = curl_result(&o);
        let verbose = String::from_utf8_lossy(&o.stderr);
        assert_eq!(status, 200, "{verbose}\n{}", hub.log());
        assert!(
            verbose.contains(&format!("SSL connection using {expect}")),
            "{verbose}"
        );
        let mut ids = agencies_of(&body);
        ids.sort();
        let mut want = AGENCIES.map(String::from).to_vec();
        want.sort();
        assert_eq!(ids, want);
    }
    // Each agency's TLS client certificate, on both versions.
    for (i, id) in AGENCIES.iter().enumerate() {
        let cert = format!("certs-test/agencies/{id}/client.pem");
        let key = format!("certs-test/agencies/{id}/client.key");
        let version = if i % 2 == 0 { "--tlsv1.3" } else { "--tls-max" };
        let mut args = vec![
            "--cacert",
            "certs-test/root-ca.pem",
            "--cert",
            &cert,
            "--key",
            &key,
        ];
        if version == "--tls-max" {
            args.extend(["--tls-max", "1.2"]);
        } else {
            args.push(version);
        }
        args.push(&url);
        let (status, body) = curl_result(&curl(&args));
        assert_eq!(status, 200, "{id}: {body}\n{}", hub.log());
        assert_eq!(agencies_of(&body).len(), 4);
    }
    // The certificate really is mapped to its agency: with another agency's token it is
    // refused, naming both.
    let h29 = format!("Authorization: Bearer {}", token(H29));
    let (status, body) = curl_result(&curl(&[
        "--cacert",
        "certs-test/root-ca.pem",
        "--cert",
        "certs-test/agencies/000.00.00.G12/client.pem",
        "--key",
        "certs-test/agencies/000.00.00.G12/client.key",
        "-H",
        &h29,
        &url,
    ]));
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("authenticates 000.00.00.G12 but the bearer token 000.00.00.H29"),
        "{body}"
    );
    // The rustls client with a client certificate, keep-alive: two requests, one connection.
    let mut s = connect(hub.addr, Some(H29));
    for _ in 0..2 {
        let r = exchange(&mut s, b"GET /api/v1/agencies HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[test]
fn missing_wrong_and_untrusted_credentials_are_refused() {
    let hub = Hub::start("");
    // No credentials.
    let mut s = connect(hub.addr, None);
    let r = exchange(&mut s, b"GET /api/v1/agencies HTTP/1.1\r\nHost: x\r\n\r\n");
    let v = r.assert_problem(401, "unauthenticated");
    assert!(
        v["detail"].as_str().unwrap().contains("no credentials"),
        "{v}"
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"truc\""));
    // A wrong token, and a malformed header.
    let r = exchange(
        &mut s,
        format!(
            "{}\r\n",
            head("GET", "/api/v1/agencies", Some(&"0".repeat(64)))
        )
        .as_bytes(),
    );
    r.assert_problem(401, "unauthenticated");
    let r = exchange(
        &mut s,
        b"GET /api/v1/agencies HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n",
    );
    r.assert_problem(401, "unauthenticated");
    // With curl too.
    let (status, body) = curl_result(&curl(&[
        "--cacert",
        "certs-test/root-ca.pem",
        "-H",
        "Authorization: Bearer wrong",
        &hub.url("/api/v1/agencies"),
    ]));
    assert_eq!(status, 401);
    assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");
    // A client certificate under an unknown CA fails the handshake (or, at worst, is 401).
    let o = curl(&[
        "--cacert",
        "certs-test/root-ca.pem",
        "--cert",
        "certs-test/bad/unknown-issuer.pem",
        "--key",
        "certs-test/bad/unknown-issuer.key",
        "-H",
        &format!("Authorization: Bearer {}", token(G12)),
        &hub.url("/api/v1/agencies"),
    ]);
    let (status, _) = curl_result(&o);
    assert!(
        !o.status.success() || status == 401,
        "status {status}, curl {:?}",
        o.status
    );
    assert!(
        hub.log().contains("client certificate refused"),
        "{}",
        hub.log()
    );
}

#[test]
fn unknown_paths_and_wrong_methods_are_problems() {
    let hub = Hub::start("");
    let r = get(hub.addr, "/api/v1/nothing-here");
    let v = r.assert_problem(404, "not-found");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v1/nothing-here")
    );
    get(hub.addr, "/").assert_problem(404, "not-found");
    let mut s = connect(hub.addr, None);
    let req = format!(
        "{}\r\n",
        head("DELETE", "/api/v1/agencies", Some(&token(G12)))
    );
    let r = exchange(&mut s, req.as_bytes());
    r.assert_problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    // A bad query is a problem too, not a default.
    get(hub.addr, "/api/v1/inbox?limit=0").assert_problem(400, "bad-request");
    get(hub.addr, "/api/v1/receipts?after=x").assert_problem(400, "bad-request");
    // Every response carries a distinct request id.
    let a = get(hub.addr, "/api/v1/agencies");
    let b = get(hub.addr, "/api/v1/agencies");
    assert_ne!(a.header("truc-request-id"), b.header("truc-request-id"));
}

#[test]
fn bodies_over_the_limit_are_refused_without_being_buffered() {
    let hub = Hub::start("max_body = 1000");
    let bearer = token(G12);
    // Declared too large: refused before any byte of the body is read, connection closed.
    let mut s = connect(hub.addr, None);
    let req = format!(
        "{}Content-Length: 2000\r\n\r\n",
        head("POST", "/api/v1/packages", Some(&bearer))
    );
    let r = exchange(&mut s, req.as_bytes());
    let v = r.assert_problem(413, "payload-too-large");
    assert!(v["detail"].as_str().unwrap().contains("1000"), "{v}");
    assert_eq!(r.header("connection"), Some("close"));
    wait_closed(&mut s, Duration::from_secs(5));
    // Chunked, growing past the limit while being read.
    let mut s = connect(hub.addr, None);
    let mut req = format!(
        "{}Transfer-Encoding: chunked\r\n\r\n",
        head("POST", "/api/v1/packages", Some(&bearer))
    )
    .into_bytes();
    for _ in 0..3 {
        req.extend_from_slice(b"258\r\n");
        req.extend_from_slice(&[b'x'; 600]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    exchange(&mut s, &req).assert_problem(413, "payload-too-large");
    // At the limit, the request goes through to the API.
    let mut s = connect(hub.addr, None);
    let mut req = format!(
        "{}Content-Length: 1000\r\n\r\n",
        head("GET", "/api/v1/agencies", Some(&bearer))
    )
    .into_bytes();
    req.extend_from_slice(&[b' '; 1000]);
    let r = exchange(&mut s, &req);
    assert_eq!(r.status, 200, "{r:?}");
    // Unauthenticated uploads are refused before the body, whatever its size.
    let mut s = connect(hub.addr, None);
    let r = exchange(
        &mut s,
        b"POST /api/v1/packages HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
    );
    r.assert_problem(401, "unauthenticated");
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn slow_headers_and_slow_bodies_are_cut_off() {
    let hub =
        Hub::start("header_read_timeout = '1s'\nbody_read_timeout = '1s'\nidle_timeout = '5s'");
    // Generous: the whole suite runs in parallel on two cores.
    let margin = Duration::from_millis(2500);
    // Headers trickling in, a line every 200 ms: hyper's header timeout closes the
    // connection about 1 s after it became ready.
    let mut s = connect(hub.addr, None);
    let start = clock();
    s.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"GET /api/v1/agencies HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let closed_after = loop {
        let alive = s
            .write_all(b"X-Slow: 1\r\n")
            .and_then(|()| s.flush())
            .is_ok();
        let read = s.read(&mut buf);
        let closed = !alive
            || matches!(read, Ok(0))
            || matches!(&read, Err(e) if !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut));
        if closed {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1) + margin,
            "a client trickling headers was not cut off"
        );
    };
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );

    // A body that stops half-way: 408 request-timeout, then the connection closes.
    let mut s = connect(hub.addr, None);
    let start = clock();
    let req = format!(
        "{}Content-Length: 100\r\n\r\n0123456789",
        head("GET", "/api/v1/agencies", Some(&token(G12)))
    );
    let r = exchange(&mut s, req.as_bytes());
    let took = start.elapsed();
    let v = r.assert_problem(408, "request-timeout");
    assert!(v["detail"].as_str().unwrap().contains("1.0 s"), "{v}");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(1) + margin,
        "{took:?}"
    );
    wait_closed(&mut s, margin);
}

#[test]
fn idle_connections_are_closed() {
    let hub = Hub::start("idle_timeout = '1s'\nheader_read_timeout = '10s'");
    // A connection that never sends a request.
    let mut s = connect(hub.addr, None);
    let took = wait_closed(&mut s, Duration::from_secs(3));
    assert!(took >= Duration::from_millis(800), "{took:?}");
    // A keep-alive connection after its response.
    let mut s = connect(hub.addr, None);
    let req = format!("{}\r\n", head("GET", "/api/v1/agencies", Some(&token(G12))));
    assert_eq!(exchange(&mut s, req.as_bytes()).status, 200);
    let took = wait_closed(&mut s, Duration::from_secs(3));
    assert!(took >= Duration::from_millis(800), "{took:?}");
}

#[test]
fn each_agency_is_rate_limited_with_retry_after() {
    let hub = Hub::start("rate_per_second = 0.5\nrate_burst = 2");
    let mut s = connect(hub.addr, None);
    let req = format!("{}\r\n", head("GET", "/api/v1/agencies", Some(&token(G12))));
    assert_eq!(exchange(&mut s, req.as_bytes()).status, 200);
    assert_eq!(exchange(&mut s, req.as_bytes()).status, 200);
    let r = exchange(&mut s, req.as_bytes());
    r.assert_problem(429, "rate-limited");
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&after), "{after}");
    // The connection stays usable, and other agencies have their own budget.
    let other = format!("{}\r\n", head("GET", "/api/v1/agencies", Some(&token(H29))));
    assert_eq!(exchange(&mut s, other.as_bytes()).status, 200);
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let hub = Hub::start("max_connections = 1\nidle_timeout = '10s'");
    let first = connect(hub.addr, None);
    let addr = hub.addr;
    let second = std::thread::spawn(move || {
        let start = clock();
        let r = get(addr, "/api/v1/agencies");
        (r.status, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !second.is_finished(),
        "the second connection was served at once"
    );
    drop(first);
    let (status, took) = second.join().unwrap();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(600), "{took:?}");
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let mut hub = Hub::start("shutdown_grace = '5s'\nbody_read_timeout = '10s'");
    let _idle = connect(hub.addr, None);
    // A request in flight: head and half the body sent.
    let mut busy = connect(hub.addr, None);
    let req = format!(
        "{}Content-Length: 10\r\n\r\n01234",
        head("GET", "/api/v1/agencies", Some(&token(G12)))
    );
    busy.write_all(req.as_bytes()).unwrap();
    busy.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    hub.terminate();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        hub.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    // No new connections once draining.
    let start = clock();
    while TcpStream::connect(hub.addr).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The rest of the body: the request completes, then the connection closes.
    let r = exchange(&mut busy, b"56789");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(agencies_of(&String::from_utf8_lossy(&r.body)).len(), 4);
    let (status, took) = hub.wait_exit(Duration::from_secs(4));
    assert_eq!(status.code(), Some(0), "{}", hub.log());
    assert!(
        took < Duration::from_secs(3),
        "well within the 5 s grace: {took:?}"
    );
    assert!(hub.log().contains("SIGTERM"), "{}", hub.log());
}

#[test]
fn sigterm_gives_up_on_stuck_requests_after_the_grace_period() {
    let mut hub = Hub::start("shutdown_grace = '1s'\nbody_read_timeout = '30s'");
    let mut stuck = connect(hub.addr, None);
    let req = format!(
        "{}Content-Length: 10\r\n\r\n",
        head("GET", "/api/v1/agencies", Some(&token(G12)))
    );
    stuck.write_all(req.as_bytes()).unwrap();
    stuck.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = clock();
    hub.terminate();
    let (status, _) = hub.wait_exit(Duration::from_secs(6));
    let took = start.elapsed();
    assert_eq!(status.code(), Some(0), "{}", hub.log());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(hub.log().contains("1 dropped"), "{}", hub.log());
}

#[test]
fn check_config_accepts_a_good_file_and_lists_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let truc = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_truc"))
            .arg("serve")
            .arg("--check-config")
            .arg(file)
            .output()
            .unwrap()
    };
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text(&dir.path().join("data"), "")).unwrap();
    let o = truc(&good);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("configuration OK"));
    // Nothing is created by a check.
    assert!(!dir.path().join("data").exists());

    let missing = dir.path().join("missing.toml");
    let text = config_text(&dir.path().join("data"), "max_body = 0").replace(
        &pki("hub/tls.pem").display().to_string(),
        "/nonexistent/tls.pem",
    );
    // Writes `text` to `file`, checks it, expects the refusal (64); its stderr.
    let refused = |file: &Path, text: String| {
        std::fs::write(file, text).unwrap();
        let o = truc(file);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(64), "{err}");
        err
    };
    let err = refused(&missing, text);
    assert!(
        err.contains("tls.cert") && err.contains("/nonexistent/tls.pem"),
        "{err}"
    );
    assert!(err.contains("limits.max_body"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // A receipt key outside the receipt profile (P-384 signs ecdsa-sha384) is refused when
    // the configuration is read, not discovered at the first acceptance.
    let p384 = dir.path().join("p384.toml");
    let text = config_text(&dir.path().join("data"), "")
        .replace(
            &pki("hub/receipt.key").display().to_string(),
            &pki("signers/p384.key").display().to_string(),
        )
        .replace(
            &pki("hub/receipt.pem").display().to_string(),
            &pki("signers/p384.pem").display().to_string(),
        );
    let err = refused(&p384, text);
    assert!(
        err.contains("receipts.key") && err.contains("cannot sign receipts"),
        "{err}"
    );
    assert!(err.contains("SignatureMethod"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = [\n").unwrap();
    let o = truc(&bad);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(err.contains("TOML parse error"), "{err}");

    let o = truc(&dir.path().join("absent.toml"));
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));

    // `truc serve` itself refuses a bad configuration with 64 too, before listening.
    let o = Command::new(env!("CARGO_BIN_EXE_truc"))
        .args(["serve", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
}

#[test]
fn the_embedded_defaults_start_from_the_checkout() {
    // `truc serve` without --config, from the crate root, on a free port: prints how to
    // send a first package and serves the demo directory.
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let log = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_truc"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--ready-file")
        .arg(&ready)
        .current_dir(root())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = clock();
    let addr: SocketAddr = loop {
        if let Ok(t) = std::fs::read_to_string(&ready) {
            break t.lines().next().unwrap().parse().unwrap();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    };
    let r = get(addr, "/api/v1/agencies");
    assert_eq!(r.status, 200);
    let banner = std::fs::read_to_string(&log).unwrap();
    assert!(
        banner.contains(&format!("listening on https://{addr}")),
        "{banner}"
    );
    assert!(
        banner.contains("curl --cacert certs-test/root-ca.pem")
            && banner.contains("certs-test/agencies/000.00.00.G12/token")
            && banner.contains("--data-binary @"),
        "{banner}"
    );
    assert!(dir.path().join("data/store").is_dir());
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
