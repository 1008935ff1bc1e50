//! `truc bench`: a load generator for the hub's submission API, and the report it prints.
//!
//! ```text
//! truc bench --hub URL --ca PEM (--cert PEM --key PEM | --token-file FILE)
//!            --size 20k|200k|5m --concurrency C --duration D [--rate R] [--json]
//!            [--metrics URL] [--from ID] [--to ID]... [--sign-key PEM --sign-cert PEM]
//!            [--warmup D] [--pool N]
//! ```
//!
//! # What it does
//! 1. **Signs a pool of distinct packages up front**, on every core, before anything is
//!    measured: each is a new document (BussinessDocType 0) from `--from` to `--to` with its
//!    own DocumentId (a nonce of the run and its index, so runs never collide with each other
//!    or with idempotent resubmissions) and its own incompressible attachment, sized so the
//!    signed package is `--size` bytes (±1 %), with an enveloped RSA signature by
//!    `--sign-key`. The pool holds enough for the warm-up and the run at the expected rate
//!    (`--rate`, or a ceiling per size for a closed loop), at most 4 GiB; `--pool N` sets it.
//!    A run that uses up the pool stops there and says so: a package is never sent twice.
//! 2. Opens `--concurrency` HTTP/1.1 keep-alive connections (TLS, with the hub's CA as the
//!    only root and the client certificate or bearer token of [`super::agency`]), sends
//!    packages for `--warmup` (not counted), then scrapes `--metrics` (the hub's admin
//!    `/metrics`, no authentication).
//! 3. **Measures** for `--duration`: every connection POSTs `/api/v1/packages` and reads the
//!    whole answer. Closed loop by default (each connection sends its next package as soon
//!    as the previous one is answered). With `--rate R`, open loop: package *i* is due at
//!    `start + i / R` whatever happened before, and its latency is measured from that due
//!    time, not from when a connection became free, so a stalled hub shows as latency
//!    instead of hiding it (no coordinated omission). Then it scrapes `/metrics` again.
//! 4. **Reports** ([`Report`]): packages sent and accepted (201), duplicates (200; none
//!    are expected), errors by problem code or transport failure, throughput (accepted per
//!    second of the measured interval), the latency of accepted packages (p50, p90, p99,
//!    p99.9, max, exact: every sample is kept), and from the two scrapes the hub's mean
//!    time per stage (parse, verify = digest + signature + chain, store with its group
//!    commit, receipt signing), its mean group-commit batch and `fdatasync`, and its RSS
//!    (now, peak since start, before the run) with the extra memory per package in flight.
//!    As a table, or one JSON object with `--json`.
//!
//! Signing, connection set-up and the warm-up are outside the measured interval. The load
//! generator runs on one thread (a current-thread tokio runtime), so on a small machine it
//! takes at most one core from the hub it measures.
//!
//! # Exit codes
//! 0: the run completed and at least one package was accepted (errors, if any, are in the
//! report); 1: nothing was accepted, or a local failure (a key that cannot be read, a package
//! that cannot be built); 2: the hub could not be reached before the run; 64: usage.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use tokio::time::Instant;

use super::agency::{Connection, EXIT_TRANSPORT};
use super::client::{Auth, Client, Problem, Target};
use super::package::{Document, new_trace};
use super::{CliError, EXIT_FAILURE, EXIT_OK, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::dsig::Signer;
use crate::edxml::build::{self, NewAttachment};
use crate::edxml::model::Organization;
use crate::edxml::time::vietnam_time;
use crate::edxml::{AgencyId, Options};
use crate::metrics::Stage;
use crate::pki::Certificate;

/// The most memory the package pool takes by default (bytes).
const POOL_BUDGET: usize = 4 << 30;

/// `truc bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The hub and the credential of the sending agency.
    #[command(flatten)]
    pub conn: Connection,
    /// Size of each signed package: 20k, 200k, 5m (k = 1,000 bytes, m = 1,000,000; any
    /// `<number>[k|m]` from 1k to 60m, above what the signature and its certificates take).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: usize,
    /// Connections sending at once (each keeps one request in flight).
    #[arg(long, value_name = "C", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// How long to measure, e.g. 10s, 1m.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Open loop: this many packages per second, each due at its time whatever the hub does
    /// (latency measured from the due time). Without it, a closed loop at full speed.
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The hub's Prometheus metrics (the admin listener), scraped before and after the run
    /// for the server-side breakdown.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8444/metrics"
    )]
    pub metrics: String,
    /// The sending agency (the packages' From; the credential must be its).
    #[arg(long, value_name = "ID", default_value = "000.00.00.G12", value_parser = parse_agency)]
    pub from: AgencyId,
    /// A recipient; repeat for several. Default: 000.00.00.H29, a pull agency of the demo
    /// directory (nothing is pushed during the run).
    #[arg(long = "to", value_name = "ID", value_parser = parse_agency)]
    pub to: Vec<AgencyId>,
    /// The packages' signing key (PEM).
    #[arg(
        long,
        value_name = "PEM",
        default_value = "certs-test/agencies/000.00.00.G12/sign.key"
    )]
    pub sign_key: PathBuf,
    /// The signing certificate (PEM, optionally followed by its chain, all put in KeyInfo).
    #[arg(
        long,
        value_name = "PEM",
        default_value = "certs-test/agencies/000.00.00.G12/sign.pem"
    )]
    pub sign_cert: PathBuf,
    /// Sending before the measurement starts, not counted (connections, caches, the page
    /// cache of the store), e.g. 1s; 0 for none.
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Packages to sign up front (default: enough for the warm-up and the run at the
    /// expected rate, at most 4 GiB of them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pool: Option<u64>,
}

fn parse_agency(s: &str) -> Result<AgencyId, String> {
    AgencyId::parse(s).map_err(|e| e.to_string())
}

/// `20k` → 20,000; `5m` → 5,000,000; `1500` → 1,500. From 1 KB to 60 MB (the signer's
/// certificates in KeyInfo set the real minimum, checked when the pool is built).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (digits, unit) = match t.strip_suffix('k') {
        Some(d) => (d, 1_000),
        None => match t.strip_suffix('m') {
            Some(d) => (d, 1_000_000),
            None => (t.as_str(), 1),
        },
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 20k, 200k or 5m"))?;
    let bytes = n * f64::from(unit);
    if !(1_000.0..=60_000_000.0).contains(&bytes) {
        return Err(format!("{s:?}: a package size from 1k to 60m"));
    }
    Ok(bytes as usize)
}

/// `10s`, `1m30s`, `500ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(t).map_err(|e| format!("{s:?}: {e} (e.g. 10s, 1m, 500ms)"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1_000_000.0 => Ok(r),
        _ => Err(format!("{s:?}: packages per second, more than 0")),
    }
}

/// The expected rate of a closed loop (packages per second) for the pool's size: above the
/// targets on a small machine, so the pool lasts the run (signing takes about 0.5 ms of CPU
/// per package: `--pool` for longer or faster runs).
pub fn expected_rate(size: usize) -> f64 {
    (3e8 / size as f64).clamp(100.0, 4_000.0)
}

/// How many packages to sign: the warm-up and the run at `rate`, plus two per connection
/// (each phase's last index per connection falls past its end, unused), within `budget`
/// bytes.
pub fn pool_size(size: usize, rate: f64, seconds: f64, concurrency: u32, budget: usize) -> usize {
    let wanted = (rate * seconds).ceil() as usize + 2 * concurrency as usize;
    wanted.min((budget / size).max(concurrency as usize))
}

// ----- the packages -----

/// What the packages are: who sends them to whom, how big, signed by what.
pub struct Recipe {
    /// The sender.
    pub from: AgencyId,
    /// The recipients.
    pub to: Vec<AgencyId>,
    /// Target size of each signed package.
    pub size: usize,
    /// Distinguishes this run's DocumentIds and attachments from every other run's.
    pub nonce: String,
    /// The signer.
    pub signer: Signer,
    /// The date and time the packages say.
    pub now: jiff::civil::DateTime,
}

impl Recipe {
    /// Package `i` with an attachment of `data_len` bytes.
    fn build(&self, i: usize, data_len: usize) -> anyhow::Result<Vec<u8>> {
        let today = self.now.date();
        let number = format!("{i}");
        let notation = format!("BENCH-{}", self.nonce);
        let header = Document {
            from: Organization::new(self.from.clone(), self.from.to_string()),
            to: &self.to,
            number: &number,
            notation: &notation,
            subject: "truc bench",
            type_name: "Công văn",
            type_code: 1,
            date: today,
            priority: None,
            document_id: format!(
                "{},{},{number}/{notation}",
                self.from,
                crate::edxml::time::format_date(today)
            ),
        }
        .header();
        let trace = new_trace(&self.from, self.now);
        let attachment = NewAttachment {
            content_id: None,
            name: "bench.pdf".into(),
            description: None,
            content_type: "application/pdf".into(),
            data: payload(&self.nonce, i, data_len),
        };
        let built = build::edoc(&header, &trace, &[attachment], today)
            .map_err(|r| anyhow!("cannot build package {i}: {r}"))?;
        self.signer
            .sign_package(&built.bytes, &Options::strict(today))
            .map_err(|e| anyhow!("cannot sign package {i}: {e}"))
    }

    /// The attachment length that makes a signed package [`Recipe::size`] bytes: base64
    /// (in lines) takes a little more than 4/3 of it and the rest is fixed, so a few probes
    /// of package 0 converge on it.
    fn data_len(&self) -> anyhow::Result<usize> {
        let mut len = self.size * 3 / 4;
        for _ in 0..4 {
            let got = self.build(0, len)?.len();
            if got.abs_diff(self.size) <= 4 {
                break;
            }
            let fixed = got.saturating_sub(len * 4 / 3);
            if fixed + 16 > self.size {
                return Err(anyhow!(
                    "--size {}: the smallest package with this signer's certificates is about \
                     {} bytes",
                    self.size,
                    fixed + 16
                ));
            }
            // Scale the variable part by what it came to.
            let variable = (got - fixed) as f64;
            let wanted = (self.size - fixed) as f64;
            len = ((len as f64) * wanted / variable).round() as usize;
        }
        Ok(len.max(16))
    }

    /// Packages `0..n`, signed on every core.
    pub fn pool(&self, n: usize) -> anyhow::Result<Vec<Bytes>> {
        let data_len = self.data_len()?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let parts: Vec<anyhow::Result<Numbered>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                break;
                            }
                            match self.build(i, data_len) {
                                Ok(p) => mine.push((i, p)),
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                        Ok(mine)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(anyhow!("a signing thread panicked")))
                })
                .collect()
        });
        let mut out = vec![Bytes::new(); n];
        for part in parts {
            for (i, p) in part? {
                out[i] = Bytes::from(p);
            }
        }
        Ok(out)
    }
}

/// Packages with their index in the pool.
type Numbered = Vec<(usize, Vec<u8>)>;

/// `len` bytes that look like a PDF and do not compress, different for every `(nonce, i)`.
fn payload(nonce: &str, i: usize, len: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(len + 4);
    data.extend_from_slice(b"%PDF-1.7\n");
    let seed = ring::digest::digest(&ring::digest::SHA256, format!("{nonce}/{i}").as_bytes());
    let mut x = seed.as_ref()[..8]
        .iter()
        .fold(1u64, |x, b| x.rotate_left(8) ^ u64::from(*b))
        | 1;
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    data
}

// ----- the run -----

/// How the run went, as printed.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `https://host:port` of the API.
    pub hub: String,
    /// Mean size of the packages sent (bytes).
    pub package_bytes: usize,
    /// Connections.
    pub concurrency: u32,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// The open loop's arrival rate (packages per second).
    pub rate: Option<f64>,
    /// Packages accepted during the warm-up (not counted anywhere else).
    pub warmup_accepted: u64,
    /// The measured interval (seconds): from the start until the last answer.
    pub seconds: f64,
    /// Packages sent in it.
    pub sent: u64,
    /// Answered 201.
    pub accepted: u64,
    /// Answered 200 (already accepted: none are expected).
    pub duplicates: u64,
    /// Failures by problem code (`http-<status> <code>`) or transport failure.
    pub errors: BTreeMap<String, u64>,
    /// Accepted packages per second.
    pub throughput: f64,
    /// Latency of accepted packages (milliseconds).
    pub latency_ms: Latency,
    /// The pool ran out before the duration did.
    pub pool_exhausted: bool,
    /// What the hub's `/metrics` said, if it could be scraped.
    pub server: Option<Server>,
}

/// Latency percentiles (milliseconds).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The slowest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Latency {
    /// The percentiles of `samples` (microseconds), nearest-rank.
    pub fn of(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |q: f64| {
            let r = (q * n as f64).ceil() as usize;
            samples[r.clamp(1, n) - 1] as f64 / 1000.0
        };
        Latency {
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            p999: rank(0.999),
            max: samples[n - 1] as f64 / 1000.0,
            mean: samples.iter().sum::<u64>() as f64 / n as f64 / 1000.0,
        }
    }
}

/// The hub's side, from the difference of two scrapes of its `/metrics`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Server {
    /// Mean time per acceptance in each stage (microseconds), by stage name; stages with no
    /// observation in the interval are left out.
    pub stage_us: BTreeMap<&'static str, f64>,
    /// Mean acceptances per group commit.
    pub commit_batch: Option<f64>,
    /// Mean `fdatasync` per group commit (microseconds).
    pub commit_sync_us: Option<f64>,
    /// Resident memory after the run (bytes).
    pub rss_bytes: Option<f64>,
    /// Peak resident memory since the hub started (bytes).
    pub peak_rss_bytes: Option<f64>,
    /// Resident memory before the warm-up (bytes).
    pub rss_before_bytes: Option<f64>,
}

/// A scrape: each sample's value by its series (`name{labels}` as printed).
pub type Scrape = HashMap<String, f64>;

/// Parses the Prometheus text format: `name{labels} value` lines, comments skipped.
pub fn parse_scrape(text: &str) -> Scrape {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.trim().rsplit_once(' ')?;
            Some((series.trim().to_owned(), value.parse().ok()?))
        })
        .collect()
}

impl Server {
    /// What happened between `before` and `after`; `baseline` is a scrape before the
    /// warm-up.
    pub fn between(baseline: &Scrape, before: &Scrape, after: &Scrape) -> Server {
        let delta = |k: &str| Some(after.get(k)? - before.get(k).copied().unwrap_or(0.0));
        let mean = |name: &str, labels: &str| {
            let sum = delta(&format!("{name}_sum{labels}"))?;
            let count = delta(&format!("{name}_count{labels}"))?;
            (count > 0.0).then(|| sum / count)
        };
        let stage_us = Stage::ALL
            .iter()
            .filter_map(|s| {
                let labels = format!("{{stage=\"{}\"}}", s.as_str());
                Some((s.as_str(), mean("truc_stage_seconds", &labels)? * 1e6))
            })
            .collect();
        Server {
            stage_us,
            commit_batch: mean("truc_commit_batch_size", ""),
            commit_sync_us: mean("truc_commit_sync_seconds", "").map(|s| s * 1e6),
            rss_bytes: after.get("truc_process_resident_memory_bytes").copied(),
            peak_rss_bytes: after
                .get("truc_process_peak_resident_memory_bytes")
                .copied(),
            rss_before_bytes: baseline.get("truc_process_resident_memory_bytes").copied(),
        }
    }
}

/// What one request came to.
enum Answer {
    Accepted,
    Duplicate,
    Failed(String),
}

/// What the connections share.
struct Shared {
    pool: Vec<Bytes>,
    next: AtomicUsize,
    exhausted: AtomicBool,
    target: Target,
}

impl Shared {
    /// Package `i` of the pool, or `None` (and the flag set) past its end.
    fn package(&self, i: usize) -> Option<Bytes> {
        let p = self.pool.get(i).cloned();
        if p.is_none() {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        p
    }
}

/// A transport failure's kind, as an error label (bounded: the details are not counted).
fn transport(e: &crate::deliver::push::ConnectError) -> &'static str {
    use crate::deliver::push::ConnectError as E;
    match e {
        E::NoHost | E::ServerName { .. } => "transport: bad URL",
        E::Connect { .. } => "transport: connect",
        E::Tls { .. } => "transport: TLS",
        E::Http { .. } => "transport: HTTP handshake",
    }
}

/// What one connection saw in a phase.
#[derive(Default)]
struct Tally {
    sent: u64,
    latencies_us: Vec<u64>,
    duplicates: u64,
    errors: BTreeMap<String, u64>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// POSTs one package on `conn` (opened again if the hub closed it).
async fn send(shared: &Shared, conn: &mut Option<Sender>, body: Bytes) -> Answer {
    let t = &shared.target;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/api/v1/packages", t.base_path))
        .header(http::header::HOST, t.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/xml");
    if let Some(b) = &t.bearer {
        req = req.header(http::header::AUTHORIZATION, b.clone());
    }
    let Ok(req) = req.body(Full::new(body)) else {
        return Answer::Failed("request".into());
    };
    let reused = match conn.take() {
        Some(mut s) => s.ready().await.is_ok().then_some(s),
        None => None,
    };
    let mut s = match reused {
        Some(s) => s,
        None => match crate::deliver::push::connect(&t.url, t.tls.as_ref()).await {
            Ok(s) => s,
            Err(e) => return Answer::Failed(transport(&e).into()),
        },
    };
    let answer = match s.send_request(req).await {
        Ok(a) => a,
        Err(_) => return Answer::Failed("transport: http".into()),
    };
    let status = answer.status();
    let body = match answer.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Answer::Failed("transport: reading the answer".into()),
    };
    if !s.is_closed() {
        *conn = Some(s);
    }
    match status {
        StatusCode::CREATED => Answer::Accepted,
        StatusCode::OK => Answer::Duplicate,
        s => {
            let code = serde_json::from_slice::<Problem>(&body)
                .map(|p| p.code)
                .unwrap_or_default();
            Answer::Failed(format!("http-{} {code}", s.as_u16()).trim().to_owned())
        }
    }
}

/// One connection's loop until `end`: closed (send when answered) or open (package `i` due
/// at `start + i / rate`, latency from then).
async fn connection(
    shared: Arc<Shared>,
    mut conn: Option<Sender>,
    start: Instant,
    end: Instant,
    rate: Option<f64>,
    first: usize,
) -> (Option<Sender>, Tally) {
    let mut tally = Tally::default();
    loop {
        if Instant::now() >= end {
            break;
        }
        // An index past the end of the run is dropped unused (one per connection).
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let due = match rate {
            Some(r) => {
                let due = start + Duration::from_secs_f64((i - first) as f64 / r);
                if due >= end {
                    break;
                }
                Some(due)
            }
            None => None,
        };
        let Some(body) = shared.package(i) else {
            break;
        };
        let due = match due {
            Some(due) => {
                tokio::time::sleep_until(due).await;
                due
            }
            None => Instant::now(),
        };
        tally.sent += 1;
        match send(&shared, &mut conn, body).await {
            Answer::Accepted => tally
                .latencies_us
                .push(u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX)),
            Answer::Duplicate => tally.duplicates += 1,
            Answer::Failed(what) => *tally.errors.entry(what).or_default() += 1,
        }
    }
    (conn, tally)
}

/// Runs every connection for `length`; their connections back and their tallies merged.
async fn phase(
    shared: &Arc<Shared>,
    conns: Vec<Option<Sender>>,
    length: Duration,
    rate: Option<f64>,
) -> (Vec<Option<Sender>>, Tally, Duration) {
    let start = Instant::from_std(crate::clock::monotonic());
    let first = shared.next.load(Ordering::Relaxed);
    let mut set = tokio::task::JoinSet::new();
    for (k, conn) in conns.into_iter().enumerate() {
        set.spawn({
            let shared = shared.clone();
            async move {
                let r = connection(shared, conn, start, start + length, rate, first).await;
                (k, r)
            }
        });
    }
    let mut back: Vec<(usize, Option<Sender>)> = Vec::new();
    let mut all = Tally::default();
    while let Some(joined) = set.join_next().await {
        let Ok((k, (conn, t))) = joined else { continue };
        back.push((k, conn));
        all.sent += t.sent;
        all.duplicates += t.duplicates;
        all.latencies_us.extend(t.latencies_us);
        for (what, n) in t.errors {
            *all.errors.entry(what).or_default() += n;
        }
    }
    back.sort_by_key(|(k, _)| *k);
    (
        back.into_iter().map(|(_, c)| c).collect(),
        all,
        start.elapsed(),
    )
}

/// Scrapes `url`; `None` (with a warning) when it cannot.
fn scrape(client: &mut Option<Client>, url_path: &str, err: &mut dyn Write) -> Option<Scrape> {
    let c = client.as_mut()?;
    match c.get(url_path) {
        Ok(r) if r.status.is_success() => Some(parse_scrape(&String::from_utf8_lossy(&r.body))),
        Ok(r) => {
            let _ = writeln!(
                err,
                "warning: metrics: HTTP {}; no server breakdown",
                r.status
            );
            *client = None;
            None
        }
        Err(e) => {
            let _ = writeln!(err, "warning: metrics: {e}; no server breakdown");
            *client = None;
            None
        }
    }
}

/// `truc bench`.
pub fn run(a: &BenchArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    // The target first: a usage error is reported before minutes of signing.
    let auth = a.conn.auth.auth().map_err(usage_or_runtime)?;
    let api =
        Client::new(&a.conn.hub.hub, a.conn.hub.ca.as_deref(), auth).map_err(usage_or_runtime)?;
    let target = api.target();
    let (metrics_base, metrics_path) = split_url(&a.metrics)?;
    let mut metrics = match Client::new(&metrics_base, None, Auth::None) {
        Ok(c) => Some(c.with_timeout(Duration::from_secs(10))),
        Err(e) => return Err(CliError::Usage(format!("--metrics {}: {e}", a.metrics))),
    };

    let key = std::fs::read(&a.sign_key)
        .with_context(|| format!("--sign-key {}", a.sign_key.display()))?;
    let chain = Certificate::load(&a.sign_cert)
        .map_err(|e| anyhow!("--sign-cert {}: {e}", a.sign_cert.display()))?;
    let signer = Signer::from_pem(&key, chain).map_err(|e| anyhow!("the signing key: {e}"))?;
    let now = vietnam_time(SystemClock.now());
    let to = if a.to.is_empty() {
        vec![AgencyId::parse("000.00.00.H29").map_err(|e| anyhow!("{e}"))?]
    } else {
        a.to.clone()
    };
    let recipe = Recipe {
        from: a.from.clone(),
        to,
        size: a.size,
        nonce: nonce(),
        signer,
        now,
    };
    let seconds = (a.duration + a.warmup).as_secs_f64();
    let n = match a.pool {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => pool_size(
            a.size,
            a.rate.unwrap_or_else(|| expected_rate(a.size)),
            seconds,
            a.concurrency,
            POOL_BUDGET,
        ),
    };
    let _ = writeln!(err, "signing {n} packages of {} bytes…", a.size);
    let signing = crate::clock::monotonic();
    let pool = recipe.pool(n)?;
    let package_bytes = pool.iter().map(Bytes::len).sum::<usize>() / pool.len().max(1);
    let _ = writeln!(
        err,
        "signed {n} packages of {package_bytes} bytes on average in {:.1} s",
        signing.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let shared = Arc::new(Shared {
        pool,
        next: AtomicUsize::new(0),
        exhausted: AtomicBool::new(false),
        target,
    });
    let baseline = scrape(&mut metrics, &metrics_path, err);
    // Open every connection before anything is timed; one that cannot is the end.
    let conns = runtime.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..a.concurrency {
            let t = &shared.target;
            conns.push(Some(
                crate::deliver::push::connect(&t.url, t.tls.as_ref()).await?,
            ));
        }
        Ok::<_, crate::deliver::push::ConnectError>(conns)
    });
    let conns = match conns {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: {}: {e}", a.conn.hub.hub);
            return Ok(EXIT_TRANSPORT);
        }
    };
    let mut warmup_accepted = 0;
    let conns = if a.warmup.is_zero() {
        conns
    } else {
        let _ = writeln!(err, "warming up for {:?}…", a.warmup);
        let (conns, warm, _) = runtime.block_on(phase(&shared, conns, a.warmup, a.rate));
        if warm.latencies_us.is_empty() && !warm.errors.is_empty() {
            let _ = writeln!(
                err,
                "error: nothing accepted during the warm-up: {:?}",
                warm.errors
            );
            return Ok(EXIT_FAILURE);
        }
        warmup_accepted = warm.latencies_us.len() as u64;
        conns
    };
    let before = scrape(&mut metrics, &metrics_path, err);
    let _ = writeln!(err, "measuring for {:?}…", a.duration);
    let (_conns, mut tally, elapsed) = runtime.block_on(phase(&shared, conns, a.duration, a.rate));
    let after = scrape(&mut metrics, &metrics_path, err);

    let accepted = tally.latencies_us.len() as u64;
    let seconds = elapsed.as_secs_f64();
    let report = Report {
        hub: a.conn.hub.hub.clone(),
        package_bytes,
        concurrency: a.concurrency,
        mode: if a.rate.is_some() { "open" } else { "closed" },
        rate: a.rate,
        warmup_accepted,
        seconds,
        sent: tally.sent,
        accepted,
        duplicates: tally.duplicates,
        errors: std::mem::take(&mut tally.errors),
        throughput: accepted as f64 / seconds.max(1e-9),
        latency_ms: Latency::of(&mut tally.latencies_us),
        pool_exhausted: shared.exhausted.load(Ordering::Relaxed),
        server: match (&before, &after) {
            (Some(b), Some(af)) => Some(Server::between(baseline.as_ref().unwrap_or(b), b, af)),
            _ => None,
        },
    };
    if a.json {
        let line = serde_json::to_string(&report).context("the report")?;
        writeln!(out, "{line}").context("stdout")?;
    } else {
        write_table(&report, out).context("stdout")?;
    }
    if report.pool_exhausted {
        let _ = writeln!(
            err,
            "warning: the pool of {n} packages ran out after {seconds:.1} s; the run was \
             measured over that; give --pool to sign more"
        );
    }
    Ok(if accepted > 0 { EXIT_OK } else { EXIT_FAILURE })
}

/// The report for people.
pub fn write_table(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let mode = match r.rate {
        Some(rate) => format!("open loop at {rate}/s"),
        None => "closed loop".to_owned(),
    };
    writeln!(
        out,
        "{} packages of {} bytes to {}, {} connections, {mode}, {:.1} s",
        r.sent, r.package_bytes, r.hub, r.concurrency, r.seconds
    )?;
    writeln!(
        out,
        "accepted    {} ({:.0}/s){}",
        r.accepted,
        r.throughput,
        if r.duplicates > 0 {
            format!(", {} duplicates", r.duplicates)
        } else {
            String::new()
        }
    )?;
    let l = &r.latency_ms;
    writeln!(
        out,
        "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean
    )?;
    if r.errors.is_empty() {
        writeln!(out, "errors      none")?;
    }
    for (what, n) in &r.errors {
        writeln!(out, "errors      {n} {what}")?;
    }
    let Some(s) = &r.server else {
        return writeln!(out, "server      (no metrics)");
    };
    let stages: Vec<String> = Stage::ALL
        .iter()
        .filter_map(|st| {
            Some(format!(
                "{} {:.0}",
                st.as_str(),
                s.stage_us.get(st.as_str())?
            ))
        })
        .collect();
    writeln!(out, "server µs   {}", stages.join("  "))?;
    if let (Some(b), Some(sync)) = (s.commit_batch, s.commit_sync_us) {
        writeln!(
            out,
            "commit      {b:.1} acceptances per group commit, fdatasync {sync:.0} µs"
        )?;
    }
    let mb = |b: Option<f64>| b.map_or("?".to_owned(), |b| format!("{:.0} MB", b / 1e6));
    writeln!(
        out,
        "memory      RSS {} (peak {}, before {})",
        mb(s.rss_bytes),
        mb(s.peak_rss_bytes),
        mb(s.rss_before_bytes)
    )?;
    if let (Some(peak), Some(before)) = (s.peak_rss_bytes, s.rss_before_bytes) {
        let in_flight = f64::from(r.concurrency) * r.package_bytes as f64;
        writeln!(
            out,
            "            {:.1}× the bytes in flight above the RSS before",
            (peak - before).max(0.0) / in_flight
        )?;
    }
    Ok(())
}

/// `http://host:port/path` → (`http://host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), CliError> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| CliError::Usage(format!("--metrics {url:?}: {e}")))?;
    let (Some(scheme), Some(authority)) = (parsed.scheme_str(), parsed.authority()) else {
        return Err(CliError::Usage(format!(
            "--metrics {url:?}: expected http://HOST:PORT/metrics"
        )));
    };
    let path = parsed.path_and_query().map_or("/metrics", |p| p.as_str());
    Ok((format!("{scheme}://{authority}"), path.to_owned()))
}

/// A string no other run has: the time in milliseconds and 32 random bits, in base 36.
fn nonce() -> String {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let millis = SystemClock.now().as_millisecond().unsigned_abs();
    format!(
        "{}{}",
        base36(millis),
        base36(u64::from(u32::from_le_bytes(b)))
    )
    .to_ascii_uppercase()
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn usage_or_runtime(e: super::client::ClientError) -> CliError {
    if e.is_usage() {
        CliError::Usage(e.to_string())
    } else {
        CliError::Runtime(anyhow::Error::new(e))
    }
}

#[cfg(test)]
mod tests;
