//! Push delivery throughput: `cargo bench --bench delivery [-- --json] [-- --messages N]`.
//!
//! The issue's target: "≥ 2,000 pushed deliveries/s of 20 KB to a local receiver, and a
//! dead endpoint costs the others < 10 % throughput".
//!
//! Everything runs on loopback:
//! - an in-process HTTPS push receiver (tokio-rustls and hyper, presenting the hub's test
//!   certificate `certs-test/hub/tls.pem`, which chains to the anchors the hub trusts for
//!   push endpoints without a `push_ca`): it reads every body whole, answers 200, and
//!   records when each delivery arrived with its `Truc-Delivery-Id`, `Truc-Message-Id`,
//!   length and CRC-32;
//! - `truc serve` (the binary) in a temporary directory (`TRUC_BENCH_DIR` to choose where),
//!   configured as `tests/truc/flows.rs` does it (the test PKI, a copy of
//!   `certs-test/directory.toml` whose 000.00.00.H41 pushes to the receiver), with
//!   `[limits] rate_per_second = 0.0` and the hub's default `[delivery]` settings.
//!
//! Each scenario starts a fresh hub, pauses the push agencies (admin API), submits N
//! distinct signed packages of about 20 KB from 000.00.00.G12 (signed up front, sent by
//! several keep-alive clients; none of this is measured), checks that they are all queued,
//! resumes, and measures at the receiver from the resume until the N-th distinct delivery
//! has arrived. Every delivery must arrive, once per delivery id, with the bytes submitted.
//! 1. `live`: the packages are addressed to H41 only.
//! 2. `live + dead`: to H41 and to 000.00.00.H99, an agency added to the bench's directory
//!    copy whose endpoint is a blackhole, a TCP listener that accepts connections and never
//!    answers (worse than a refused port: every attempt waits for `push_timeout`). H99 is
//!    resumed just before H41, so its worker fails on a full queue during the measurement.
//!    The ratio is H41's rate here over its rate in scenario 1 (medians over the rounds).
//!
//! The two scenarios run in turn `--rounds` times (default 3), each time on fresh hubs; the
//! figures compared are each scenario's median rate over the rounds, since two hubs started
//! one after the other on a shared virtual machine differ by several per cent anyway.
//!
//! Options after `--`: `--json` (one JSON object on stdout instead of the table),
//! `--messages N` (default 10,000), `--rounds N` (default 3), `--concurrency N` (sets
//! `[delivery] per_endpoint_concurrency`; without it the hub's default applies).

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use truc::cli::client::{Auth, Client};
use truc::dsig::Signer;
use truc::edxml::build::{self, NewAttachment};
use truc::edxml::{self, AgencyId, Options, Package};
use truc::pki::Certificate;

const G12: &str = "000.00.00.G12";
const H41: &str = "000.00.00.H41";
/// The agency with the dead endpoint, added to the bench's directory copy.
const DEAD: &str = "000.00.00.H99";
/// The size of each package, about.
const PACKAGE_SIZE: usize = 20_000;
/// Concurrent keep-alive clients submitting the packages.
const SUBMITTERS: usize = 8;
/// The target: deliveries per second to one live endpoint, and the share of it kept with a
/// dead endpoint next to it.
const TARGET_RATE: f64 = 2000.0;
const TARGET_RATIO: f64 = 0.9;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn certs(rel: &str) -> PathBuf {
    root().join("certs-test").join(rel)
}

// ----- packages -----

/// `n` distinct signed packages from G12 to `to`, each about [`PACKAGE_SIZE`] bytes: the
/// fixture's header with code number `i + 1` and its own DocumentId, and one PDF-like
/// attachment (as in `tests/bench/dsig.rs`).
fn packages(n: usize, to: &[&str], options: &Options) -> Vec<Vec<u8>> {
    let base =
        std::fs::read(root().join("tests/fixtures/valid/edoc_new_2recipients.edxml")).unwrap();
    let Package::Edoc(e) = edxml::parse(&base, options).unwrap().into_package() else {
        panic!("fixture is an edoc")
    };
    let from = AgencyId::parse(G12).unwrap();
    let key = std::fs::read(certs("agencies/000.00.00.G12/sign.key")).unwrap();
    // The signer's file carries its chain.
    let chain = Certificate::load(&certs("agencies/000.00.00.G12/sign.pem")).unwrap();
    let signer = Signer::from_pem(&key, chain).unwrap();
    let build_one = |i: usize, data_len: usize| -> Vec<u8> {
        let mut header = e.header.clone();
        header.from.id = from.clone();
        header.to = to
            .iter()
            .enumerate()
            .map(|(k, id)| {
                let mut o = e.header.to[k.min(e.header.to.len() - 1)].clone();
                o.id = AgencyId::parse(id).unwrap();
                o
            })
            .collect();
        header.code.number = (i + 1).to_string();
        header.document_id = format!("{G12},2025/04/08,{}/{}", i + 1, header.code.notation);
        let mut trace = e.trace.clone();
        for t in &mut trace.headers {
            t.organ_id = from.clone();
        }
        if let Some(b) = &mut trace.business {
            b.document_id = Some(header.document_id.clone());
        }
        // Incompressible-looking payload, different in every package.
        let mut data = b"%PDF-1.7\n".to_vec();
        let mut x: u32 = 0x1234_5678 ^ (i as u32).wrapping_mul(0x9e37_79b9);
        while data.len() < data_len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(data_len);
        let att = NewAttachment {
            content_id: None,
            name: "attachment.pdf".into(),
            description: None,
            content_type: "application/pdf".into(),
            data,
        };
        let built = build::edoc(&header, &trace, &[att], options.today).unwrap();
        signer.sign_package(&built.bytes, options).unwrap()
    };
    // Size the attachment so that the signed package is about PACKAGE_SIZE (base64: 4/3).
    let probe = build_one(0, PACKAGE_SIZE * 3 / 4);
    let overhead = probe.len().saturating_sub(PACKAGE_SIZE * 3 / 4 * 4 / 3);
    let data_len = PACKAGE_SIZE.saturating_sub(overhead) * 3 / 4;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); n];
    let parts: Vec<Vec<(usize, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return mine;
                        }
                        mine.push((i, build_one(i, data_len)));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, p) in parts.into_iter().flatten() {
        out[i] = p;
    }
    out
}

// ----- the push receiver -----

/// One POST the receiver took.
struct Hit {
    /// When its whole body had been read.
    at: Instant,
    delivery: String,
    message: String,
    len: usize,
    crc: u32,
}

/// An HTTPS server answering 200 to every POST, on its own tokio runtime.
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// POSTs without a `Truc-Delivery-Id` (pushed receipts).
    others: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let chain = CertificateDer::pem_file_iter(certs("hub/tls.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(certs("hub/tls.key")).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let others: Arc<AtomicUsize> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let (h, o, c) = (hits.clone(), others.clone(), connections.clone());
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                c.fetch_add(1, Ordering::Relaxed);
                let (acceptor, h, o) = (acceptor.clone(), h.clone(), o.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (h, o) = (h.clone(), o.clone());
                        take(req, h, o)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Receiver {
            port,
            hits,
            others,
            connections,
            _runtime: runtime,
        }
    }

    fn reset(&self) {
        self.hits.lock().unwrap().clear();
        self.others.store(0, Ordering::Relaxed);
        self.connections.store(0, Ordering::Relaxed);
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// Reads the whole body, records it, answers 200.
async fn take(
    req: hyper::Request<hyper::body::Incoming>,
    hits: Arc<Mutex<Vec<Hit>>>,
    others: Arc<AtomicUsize>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (delivery, message) = (header("truc-delivery-id"), header("truc-message-id"));
    let body = req.into_body().collect().await?.to_bytes();
    let at = Instant::now();
    match delivery {
        Some(delivery) => hits.lock().unwrap().push(Hit {
            at,
            delivery,
            message: message.unwrap_or_default(),
            len: body.len(),
            crc: crc32fast::hash(&body),
        }),
        None => {
            others.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
}

// ----- the dead endpoint -----

/// A TCP listener that accepts every connection and never reads or writes: the hub's TLS
/// handshake waits until `push_timeout`.
struct Blackhole {
    port: u16,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    released: Arc<AtomicBool>,
}

impl Blackhole {
    fn start() -> Blackhole {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let released: Arc<AtomicBool> = Arc::default();
        let (a, h, r) = (accepted.clone(), held.clone(), released.clone());
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                a.fetch_add(1, Ordering::Relaxed);
                if r.load(Ordering::Relaxed) {
                    let _ = s.shutdown(Shutdown::Both);
                } else {
                    h.lock().unwrap().push(s);
                }
            }
        });
        Blackhole {
            port,
            accepted,
            held,
            released,
        }
    }

    /// Closes what it holds and refuses from now on (so the hub's attempts end and it
    /// stops quickly).
    fn release(&self) {
        self.released.store(true, Ordering::Relaxed);
        for s in self.held.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

// ----- the hub -----

struct Hub {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
    admin: Client,
}

impl Hub {
    /// A hub pushing H41 to `receiver` (and H99 to `dead`), with `delivery` as the body of
    /// its `[delivery]` table.
    fn start(receiver: u16, dead: Option<u16>, delivery: &str) -> Hub {
        let base = std::env::var("TRUC_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| std::env::temp_dir());
        let dir = tempfile::tempdir_in(base).unwrap();
        let mut directory = std::fs::read_to_string(certs("directory.toml"))
            .unwrap()
            .replace(
                "https://127.0.0.1:8445/inbox",
                &format!("https://127.0.0.1:{receiver}/inbox"),
            );
        if let Some(port) = dead {
            // Modelled on H41: pushed to, trusted through the hub's anchors.
            directory.push_str(&format!(
                "\n[[agency]]\nid = \"{DEAD}\"\nname = \"dead endpoint (bench)\"\n\
                 delivery = \"push\"\npush_url = \"https://127.0.0.1:{port}/inbox\"\n"
            ));
        }
        std::fs::write(dir.path().join("directory.toml"), directory).unwrap();
        let p = |rel: &str| certs(rel).display().to_string();
        let config = format!(
            r#"
id = "truc-bench"
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
{delivery}"#,
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
        let ready = dir.path().join("ready");
        let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_truc"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .arg("--ready-file")
            .arg(&ready)
            .current_dir(root())
            .env("TRUC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        let text = loop {
            match std::fs::read_to_string(&ready) {
                Ok(s) if s.lines().count() >= 2 => break s,
                _ => {}
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!(
                    "the hub did not get ready:\n{}",
                    std::fs::read_to_string(dir.path().join("hub.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut lines = text.lines();
        let addr = lines.next().unwrap().to_owned();
        let admin_addr = lines.next().unwrap().to_owned();
        let token = Auth::token_file(&dir.path().join("data/admin.token")).unwrap();
        let admin = Client::new(&format!("http://{admin_addr}"), None, token)
            .unwrap()
            .with_header("Truc-Operator", "bench");
        Hub {
            child,
            dir,
            addr,
            admin,
        }
    }

    fn admin_post(&mut self, path: &str) {
        let r = self.admin.request(Method::POST, path, None).unwrap();
        assert!(
            r.status.is_success(),
            "POST {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }

    fn pause(&mut self, agency: &str) {
        self.admin_post(&format!("/admin/api/agencies/{agency}/pause"));
    }

    fn resume(&mut self, agency: &str) {
        self.admin_post(&format!("/admin/api/agencies/{agency}/resume"));
    }

    /// The admin API's queue row of `agency`.
    fn queue(&mut self, agency: &str) -> serde_json::Value {
        let r = self.admin.get("/admin/api/queues").unwrap();
        let v = r.json().unwrap();
        v["queues"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["agency"] == agency).cloned())
            .unwrap_or_default()
    }

    /// Submits every package with [`SUBMITTERS`] keep-alive clients; each package's
    /// message id, with its length and CRC-32.
    fn submit(&self, packages: &[Vec<u8>]) -> HashMap<String, (usize, u32)> {
        let url = format!("https://{}", self.addr.replace("127.0.0.1", "localhost"));
        let next = AtomicUsize::new(0);
        let ids = Mutex::new(HashMap::with_capacity(packages.len()));
        std::thread::scope(|s| {
            for _ in 0..SUBMITTERS {
                s.spawn(|| {
                    let auth = Auth::token_file(&certs("agencies/000.00.00.G12/token")).unwrap();
                    let mut client = Client::new(&url, Some(&certs("root-ca.pem")), auth).unwrap();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = packages.get(i) else { return };
                        let r = client
                            .post("/api/v1/packages", "application/xml", p.clone())
                            .unwrap();
                        assert_eq!(
                            r.status.as_u16(),
                            201,
                            "package {i}: {}",
                            String::from_utf8_lossy(&r.body)
                        );
                        let id = r.header("truc-message-id").unwrap().to_owned();
                        ids.lock()
                            .unwrap()
                            .insert(id, (p.len(), crc32fast::hash(p)));
                    }
                });
            }
        });
        ids.into_inner().unwrap()
    }

    /// CPU seconds the hub process has used so far (user + system).
    fn cpu(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, and SIGKILL if it has not exited within 20 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the hub did not stop within 20 s of SIGTERM; killed");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of process `pid` (`/proc/<pid>/stat`, `self` for this one).
fn cpu_seconds(pid: impl std::fmt::Display) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let field = |n: usize| -> f64 {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(14) + field(15)) / ticks
}

// ----- one scenario -----

struct Outcome {
    name: &'static str,
    messages: usize,
    delivered: usize,
    duplicates: usize,
    seconds: f64,
    first: f64,
    rate: f64,
    /// From the first delivery to the last, without the wait for the worker's next poll.
    steady: f64,
    hub_cpu: f64,
    bench_cpu: f64,
    connections: usize,
    submit_rate: f64,
    dead: Option<serde_json::Value>,
    problems: Vec<String>,
}

fn scenario(
    name: &'static str,
    receiver: &Receiver,
    blackhole: Option<&Blackhole>,
    packages: &[Vec<u8>],
    delivery: &str,
) -> Outcome {
    let n = packages.len();
    let mut hub = Hub::start(receiver.port, blackhole.map(|b| b.port), delivery);
    hub.pause(H41);
    if blackhole.is_some() {
        hub.pause(DEAD);
    }
    eprintln!("{name}: submitting {n} packages");
    let started = Instant::now();
    let submitted = hub.submit(packages);
    let submit_rate = n as f64 / started.elapsed().as_secs_f64();
    assert_eq!(submitted.len(), n, "every package got its own message id");
    let queued = hub.queue(H41)["queued"].as_u64().unwrap_or(0) as usize;
    assert_eq!(queued, n, "all {n} deliveries to {H41} are queued");
    receiver.reset();
    let accepted_before = blackhole.map_or(0, |b| b.accepted.load(Ordering::Relaxed));
    if blackhole.is_some() {
        hub.resume(DEAD);
    }
    eprintln!("{name}: resuming {H41}");
    let (hub_cpu0, bench_cpu0) = (hub.cpu(), cpu_seconds("self"));
    let t0 = Instant::now();
    hub.resume(H41);
    let deadline = Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
    let mut last_progress = Instant::now();
    while receiver.count() < n && t0.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(2));
        if last_progress.elapsed() > Duration::from_secs(5) {
            eprintln!("{name}: {} of {n} delivered", receiver.count());
            last_progress = Instant::now();
        }
    }
    let (hub_cpu1, bench_cpu1) = (hub.cpu(), cpu_seconds("self"));
    let waited = t0.elapsed().as_secs_f64();
    // A little longer, to see redeliveries if there are any.
    std::thread::sleep(Duration::from_millis(300));
    let dead = blackhole.map(|b| {
        let mut q = hub.queue(DEAD);
        q["blackhole_connections"] = (b.accepted.load(Ordering::Relaxed) - accepted_before).into();
        q
    });
    let connections = receiver.connections.load(Ordering::Relaxed);

    let mut problems = Vec::new();
    let hits = std::mem::take(&mut *receiver.hits.lock().unwrap());
    let mut seen = HashSet::new();
    let mut messages = HashSet::new();
    let (mut first, mut done) = (None, None);
    let mut duplicates = 0;
    for h in &hits {
        match submitted.get(&h.message) {
            Some(&(len, crc)) if len == h.len && crc == h.crc => {}
            Some(_) => problems.push(format!("{}: the bytes differ", h.delivery)),
            None => problems.push(format!("{}: unknown message {}", h.delivery, h.message)),
        }
        if !h.delivery.starts_with(&format!("{}-", h.message)) {
            problems.push(format!("{}: not a delivery of {}", h.delivery, h.message));
        }
        first = first.or(Some(h.at));
        if seen.insert(h.delivery.clone()) {
            messages.insert(h.message.clone());
            if seen.len() == n {
                done = Some(h.at);
            }
        } else {
            duplicates += 1;
        }
    }
    if seen.len() < n {
        problems.push(format!(
            "{} of {n} deliveries arrived within {waited:.0} s",
            seen.len()
        ));
    }
    if messages.len() != seen.len() {
        problems.push("two deliveries of one message to one agency".into());
    }
    problems.truncate(10);
    let end = done.or(hits.last().map(|h| h.at)).unwrap_or(t0);
    let seconds = end.duration_since(t0).as_secs_f64();
    let steady = first.map_or(0.0, |f| {
        seen.len().saturating_sub(1) as f64 / end.duration_since(f).as_secs_f64().max(1e-9)
    });
    if !problems.is_empty() {
        eprintln!("{name}: hub log tail:\n{}", hub.log_tail());
    }
    if let Some(b) = blackhole {
        b.release();
    }
    hub.stop();
    Outcome {
        name,
        messages: n,
        delivered: seen.len(),
        duplicates,
        seconds,
        first: first.map_or(f64::NAN, |f| f.duration_since(t0).as_secs_f64()),
        rate: seen.len() as f64 / seconds.max(1e-9),
        steady,
        hub_cpu: (hub_cpu1 - hub_cpu0) / waited,
        bench_cpu: (bench_cpu1 - bench_cpu0) / waited,
        connections,
        submit_rate,
        dead,
        problems,
    }
}

// ----- main -----

struct Args {
    json: bool,
    messages: usize,
    rounds: usize,
    concurrency: Option<usize>,
    push_timeout: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        json: false,
        messages: 10_000,
        rounds: 3,
        concurrency: None,
        push_timeout: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |what: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} takes a positive number"))
        };
        match arg.as_str() {
            "--json" => a.json = true,
            "--messages" => a.messages = number("--messages").max(1),
            "--rounds" => a.rounds = number("--rounds").max(1),
            "--concurrency" => a.concurrency = Some(number("--concurrency").max(1)),
            "--push-timeout" => {
                a.push_timeout = Some(it.next().expect("--push-timeout takes a duration (\"5s\")"))
            }
            // What cargo passes to every bench target.
            "--bench" => {}
            other => {
                panic!(
                    "unknown argument {other:?}: expected --json, --messages N, --rounds N, \
                 --concurrency N, --push-timeout DURATION"
                )
            }
        }
    }
    a
}

fn main() {
    let args = args();
    let n = args.messages;
    let today = jiff::Zoned::now().date();
    let options = Options::strict(today);
    let t = Instant::now();
    let live_only = packages(n, &[H41], &options);
    let with_dead = packages(n, &[H41, DEAD], &options);
    let size = live_only.iter().map(Vec::len).sum::<usize>() / n;
    eprintln!(
        "signed {} packages of {size} bytes on average in {:.1} s",
        2 * n,
        t.elapsed().as_secs_f64()
    );
    // The [delivery] table: the hub's defaults unless an option says otherwise.
    let defaults = truc::hub::config::DeliveryConfig::default();
    let mut delivery = String::new();
    if let Some(c) = args.concurrency {
        delivery.push_str(&format!("per_endpoint_concurrency = {c}\n"));
    }
    if let Some(t) = &args.push_timeout {
        delivery.push_str(&format!("push_timeout = {t:?}\n"));
    }
    let concurrency = args
        .concurrency
        .unwrap_or(defaults.per_endpoint_concurrency);
    let push_timeout = args
        .push_timeout
        .clone()
        .unwrap_or_else(|| format!("{}s", defaults.push_timeout.as_secs_f64()));
    let settings = format!(
        "per_endpoint_concurrency = {concurrency}{}, push_timeout = {push_timeout}{}, \
         circuit_failures = {}, circuit_cool_down = {}s",
        if args.concurrency.is_none() {
            " (default)"
        } else {
            ""
        },
        if args.push_timeout.is_none() {
            " (default)"
        } else {
            ""
        },
        defaults.circuit_failures,
        defaults.circuit_cool_down.as_secs_f64(),
    );
    let receiver = Receiver::start();
    let blackhole = Blackhole::start();
    let mut runs: Vec<(Outcome, Outcome)> = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("round {round} of {}", args.rounds);
        let one = scenario("live", &receiver, None, &live_only, &delivery);
        let two = scenario(
            "live + dead",
            &receiver,
            Some(&blackhole),
            &with_dead,
            &delivery,
        );
        runs.push((one, two));
    }
    let median = |rates: Vec<f64>| {
        let mut r = rates;
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let live = median(runs.iter().map(|(o, _)| o.rate).collect());
    let dead = median(runs.iter().map(|(_, t)| t.rate).collect());
    let ratio = dead / live;
    let met = live >= TARGET_RATE && ratio >= TARGET_RATIO;
    let complete = runs
        .iter()
        .all(|(o, t)| o.problems.is_empty() && t.problems.is_empty());

    if args.json {
        let row = |o: &Outcome, ratio: f64| {
            serde_json::json!({
                "scenario": o.name,
                "messages": o.messages,
                "delivered": o.delivered,
                "duplicates": o.duplicates,
                "seconds": o.seconds,
                "deliveries_per_second": o.rate,
                "steady_deliveries_per_second": o.steady,
                "first_delivery_seconds": o.first,
                "ratio": ratio,
                "hub_cpu_cores": o.hub_cpu,
                "bench_cpu_cores": o.bench_cpu,
                "receiver_connections": o.connections,
                "submitted_per_second": o.submit_rate,
                "dead_endpoint": o.dead,
                "problems": o.problems,
            })
        };
        let v = serde_json::json!({
            "bench": "delivery",
            "package_bytes": size,
            "delivery": {
                "per_endpoint_concurrency": concurrency,
                "push_timeout": push_timeout,
                "defaults": args.concurrency.is_none() && args.push_timeout.is_none(),
            },
            "target": {"deliveries_per_second": TARGET_RATE, "ratio": TARGET_RATIO},
            "met": met,
            "complete": complete,
            "median": {"live": live, "live_and_dead": dead, "ratio": ratio},
            "rounds": runs
                .iter()
                .map(|(o, t)| serde_json::json!([row(o, 1.0), row(t, t.rate / o.rate)]))
                .collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        println!("\npush delivery of {size}-byte packages; [delivery] {settings}");
        println!(
            "{:<12} {:>8} {:>8} {:>13} {:>8} {:>11} {:>9} {:>8} {:>9} {:>11}",
            "scenario",
            "messages",
            "seconds",
            "deliveries/s",
            "ratio",
            "first (ms)",
            "steady/s",
            "hub CPU",
            "recv CPU",
            "recv conns"
        );
        for (o, r) in runs
            .iter()
            .flat_map(|(o, t)| [(o, 1.0), (t, t.rate / o.rate)])
        {
            println!(
                "{:<12} {:>8} {:>8.2} {:>13.0} {:>8.3} {:>11.1} {:>9.0} {:>7.0}% {:>8.0}% {:>11}",
                o.name,
                o.messages,
                o.seconds,
                o.rate,
                r,
                o.first * 1000.0,
                o.steady,
                o.hub_cpu * 100.0,
                o.bench_cpu * 100.0,
                o.connections
            );
        }
        println!(
            "median of {} rounds: live {live:.0}/s, live + dead {dead:.0}/s, ratio {ratio:.3}",
            runs.len()
        );
        if let Some(d) = runs.last().and_then(|(_, t)| t.dead.as_ref()) {
            println!(
                "dead endpoint {DEAD}: {} connections accepted by the blackhole while measured; \
                 at the end: circuit {}, queued {}, in flight {}, retrying {}",
                d["blackhole_connections"],
                d["circuit"],
                d["queued"],
                d["in_flight"],
                d["retrying"]
            );
        }
        println!(
            "target: ≥ {TARGET_RATE:.0} deliveries/s and ratio ≥ {TARGET_RATIO}: {}",
            if met { "met" } else { "NOT met" }
        );
        for o in runs.iter().flat_map(|(o, t)| [o, t]) {
            for p in &o.problems {
                println!("{}: {p}", o.name);
            }
        }
    }
    if !complete {
        std::process::exit(1);
    }
}
