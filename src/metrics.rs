//! Metrics: what the hub counts and times, in the Prometheus text exposition format (0.0.4).
//!
//! One [`Metrics`] per hub ([`crate::hub::Hub::metrics`]) holds every family, registered with
//! `prometheus-client` under the prefix `truc_`. The code that does the work records into it
//! (the accept pipeline, the store's commit observer, the push workers, the server);
//! [`Metrics::render`] encodes everything at scrape time, with the queue gauges computed from
//! the store's [`crate::store::Engine::queues`] figures passed in, so a scrape shows the
//! queues as they are, not as some worker last saw them.
//!
//! | name | labels | what |
//! |---|---|---|
//! | `truc_packages_accepted_total` | `kind` (edoc, status), `outcome` (new, duplicate) | submissions answered 201 or 200 |
//! | `truc_packages_refused_total` | `code` (the problem code) | refused submissions, from 401 to 500 |
//! | `truc_stage_seconds` | `stage` (parse, verify, digest, signature, chain, store, receipt) | time in each step of an acceptance (`verify` is the whole signature check: digest + signature + chain) |
//! | `truc_commit_batch_size` | | acceptances per group commit |
//! | `truc_commit_sync_seconds` | | the log's `fdatasync` per group commit |
//! | `truc_commit_apply_seconds` | | applying a group commit to the map |
//! | `truc_queue_depth` | `recipient`, `state` (queued, in-flight, retrying) | deliveries waiting, at scrape time |
//! | `truc_queue_oldest_age_seconds` | `recipient` | age of the oldest message not yet delivered to it (0: none) |
//! | `truc_delivery_attempts_total` | `outcome` (delivered, retry, rejected, dead) | push attempts, by recorded outcome |
//! | `truc_receipts_issued_total` | `kind` (acceptance, delivery, failure, cancellation) | receipts signed |
//! | `truc_tls_handshakes_total` | `result` (ok, failed) | TLS handshakes on the API listener |
//! | `truc_connections_open` | | connections on the API listener |
//! | `truc_http_requests_total` | `status` | API responses, by status |
//! | `truc_process_resident_memory_bytes` | | the process's RSS at scrape time (`VmRSS`, Linux) |
//! | `truc_process_peak_resident_memory_bytes` | | its peak RSS since start (`VmHWM`) |
//!
//! # Invariants
//! - Recording never blocks on I/O and never fails: every label value is a `&'static str`
//!   from a closed set (problem codes, stage names) or an agency of the store's queues, so
//!   the number of series is bounded by the directory, not by what clients send.
//! - Durations come from the monotonic clock ([`crate::clock::monotonic`]); they never decide
//!   anything.
//!
//! # Non-guarantees
//! Counters start at zero when the process starts. The digest, signature and chain stages
//! are observed only for signatures that verify (a failing check has only `verify`).

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::hub::problem::Code;
use crate::store::{CommitTiming, Kind, QueueStats, StateName};

/// The `Content-Type` of [`Metrics::render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the time histograms, in seconds: 50 µs to 5 s.
const SECONDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// Upper bounds of the group-commit size histogram: powers of two, 1 to 1024.
const BATCH: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A step of the accept pipeline ([`crate::hub::submit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Parsing and validating the package.
    Parse,
    /// The whole signature check: [`Stage::Digest`], [`Stage::Signature`] and
    /// [`Stage::Chain`], plus reading the Signature element.
    Verify,
    /// Canonicalizing and digesting what the signature's References select.
    Digest,
    /// Canonicalizing SignedInfo and checking the signature value.
    Signature,
    /// The signer's certificate path to the anchors with revocation, and its authorization
    /// for the sender.
    Chain,
    /// The store's acceptance, the group commit's `fdatasync` wait included.
    Store,
    /// Signing the acceptance receipt.
    Receipt,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 7] = [
        Stage::Parse,
        Stage::Verify,
        Stage::Digest,
        Stage::Signature,
        Stage::Chain,
        Stage::Store,
        Stage::Receipt,
    ];

    /// The `stage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Verify => "verify",
            Stage::Digest => "digest",
            Stage::Signature => "signature",
            Stage::Chain => "chain",
            Stage::Store => "store",
            Stage::Receipt => "receipt",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AcceptedLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    recipient: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecipientLabel {
    recipient: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    Histogram::new(SECONDS)
}

/// Every metric family of the hub (see the module docs for names and labels).
pub struct Metrics {
    registry: Registry,
    accepted: Family<AcceptedLabels, Counter>,
    refused: Family<CodeLabel, Counter>,
    stages: Histograms<StageLabel>,
    commit_batch: Histogram,
    commit_sync: Histogram,
    commit_apply: Histogram,
    queue_depth: Family<QueueLabels, Gauge>,
    queue_oldest: Family<RecipientLabel, Gauge<f64, AtomicU64>>,
    attempts: Family<OutcomeLabel, Counter>,
    receipts: Family<KindLabel, Counter>,
    handshakes: Family<ResultLabel, Counter>,
    connections: Gauge,
    requests: Family<StatusLabel, Counter>,
    memory: Gauge,
    memory_peak: Gauge,
    /// Held by [`Metrics::render`]: the queue gauges are reset and refilled per scrape, and
    /// two scrapes at once must not see each other's half.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, all at zero.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("truc"),
            accepted: Family::default(),
            refused: Family::default(),
            stages: Family::new_with_constructor(seconds),
            commit_batch: Histogram::new(BATCH),
            commit_sync: seconds(),
            commit_apply: seconds(),
            queue_depth: Family::default(),
            queue_oldest: Family::default(),
            attempts: Family::default(),
            receipts: Family::default(),
            handshakes: Family::default(),
            memory: Gauge::default(),
            memory_peak: Gauge::default(),
            connections: Gauge::default(),
            requests: Family::default(),
            scrape: Mutex::new(()),
        };
        let r = &mut m.registry;
        r.register(
            "packages_accepted",
            "Packages accepted, by kind and whether they were new or a resubmission",
            m.accepted.clone(),
        );
        r.register(
            "packages_refused",
            "Submissions refused, by problem code",
            m.refused.clone(),
        );
        r.register_with_unit(
            "stage",
            "Time spent in each step of accepting a package",
            Unit::Seconds,
            m.stages.clone(),
        );
        r.register(
            "commit_batch_size",
            "Acceptances made durable by one group commit",
            m.commit_batch.clone(),
        );
        r.register_with_unit(
            "commit_sync",
            "The segment log's fdatasync, per group commit",
            Unit::Seconds,
            m.commit_sync.clone(),
        );
        r.register_with_unit(
            "commit_apply",
            "Applying a group commit to the map, per group commit",
            Unit::Seconds,
            m.commit_apply.clone(),
        );
        r.register(
            "queue_depth",
            "Deliveries not yet finished, by recipient and state, at scrape time",
            m.queue_depth.clone(),
        );
        r.register_with_unit(
            "queue_oldest_age",
            "Age of the oldest message not yet finished for each recipient (0: none)",
            Unit::Seconds,
            m.queue_oldest.clone(),
        );
        r.register(
            "delivery_attempts",
            "Push delivery attempts, by the outcome recorded",
            m.attempts.clone(),
        );
        r.register(
            "receipts_issued",
            "Signed receipts issued, by kind",
            m.receipts.clone(),
        );
        r.register(
            "tls_handshakes",
            "TLS handshakes on the API listener, by result",
            m.handshakes.clone(),
        );
        r.register(
            "connections_open",
            "Connections open on the API listener",
            m.connections.clone(),
        );
        r.register(
            "http_requests",
            "API responses, by HTTP status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident set size of the hub process, at scrape time (Linux)",
            Unit::Bytes,
            m.memory.clone(),
        );
        r.register_with_unit(
            "process_peak_resident_memory",
            "Peak resident set size of the hub process since it started (Linux)",
            Unit::Bytes,
            m.memory_peak.clone(),
        );
        // The series every dashboard expects exist from the start, at zero.
        for kind in ["edoc", "status"] {
            for outcome in ["new", "duplicate"] {
                let _ = m.accepted.get_or_create(&AcceptedLabels { kind, outcome });
            }
        }
        for stage in Stage::ALL {
            let _ = m.stages.get_or_create(&StageLabel {
                stage: stage.as_str(),
            });
        }
        for outcome in ["delivered", "retry", "rejected", "dead"] {
            let _ = m.attempts.get_or_create(&OutcomeLabel { outcome });
        }
        for kind in crate::receipt::Kind::ALL {
            let _ = m.receipts.get_or_create(&KindLabel {
                kind: receipt_kind(kind),
            });
        }
        for result in ["ok", "failed"] {
            let _ = m.handshakes.get_or_create(&ResultLabel { result });
        }
        m
    }

    /// A package accepted: new (201) or the same bytes again (200).
    pub fn accepted(&self, kind: Kind, duplicate: bool) {
        let kind = match kind {
            Kind::Edoc => "edoc",
            Kind::Status => "status",
        };
        let outcome = if duplicate { "duplicate" } else { "new" };
        self.accepted
            .get_or_create(&AcceptedLabels { kind, outcome })
            .inc();
    }

    /// A submission refused with `code`.
    pub fn refused(&self, code: Code) {
        self.refused
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    /// A submission refused with this `application/problem+json` body: its `code`, or
    /// `internal` when the body names none the hub knows.
    pub fn refused_with(&self, problem: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Doc<'a> {
            code: &'a str,
        }
        let code = serde_json::from_slice::<Doc<'_>>(problem)
            .ok()
            .and_then(|d| Code::ALL.iter().copied().find(|c| c.as_str() == d.code))
            .unwrap_or(Code::Internal);
        self.refused(code);
    }

    /// One step of an acceptance took `took`.
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.stages
            .get_or_create(&StageLabel {
                stage: stage.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// One group commit of the store (its commit observer).
    pub fn commit(&self, t: CommitTiming) {
        self.commit_batch.observe(t.records as f64);
        self.commit_sync.observe(t.sync.as_secs_f64());
        self.commit_apply.observe(t.apply.as_secs_f64());
    }

    /// A push attempt whose outcome the store recorded as `state` (delivered, retrying,
    /// rejected or dead; other states are not attempt outcomes and are ignored).
    pub fn delivery_attempt(&self, state: StateName) {
        let outcome = match state {
            StateName::Delivered => "delivered",
            StateName::Retrying => "retry",
            StateName::Rejected => "rejected",
            StateName::Dead => "dead",
            _ => return,
        };
        self.attempts.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// A receipt of `kind` signed.
    pub fn receipt_issued(&self, kind: crate::receipt::Kind) {
        self.receipts
            .get_or_create(&KindLabel {
                kind: receipt_kind(kind),
            })
            .inc();
    }

    /// A TLS handshake on the API listener succeeded or failed (timeouts included).
    pub fn tls_handshake(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.handshakes.get_or_create(&ResultLabel { result }).inc();
    }

    /// A connection opened; it counts in `truc_connections_open` until the guard is dropped.
    pub fn connection(&self) -> OpenConnection {
        self.connections.inc();
        OpenConnection(self.connections.clone())
    }

    /// An API response sent with `status`.
    pub fn http_request(&self, status: u16) {
        self.requests.get_or_create(&StatusLabel { status }).inc();
    }

    /// Every metric in the Prometheus text format, with the queue gauges computed from
    /// `queues` (the store's [`crate::store::Engine::queues`]) at `now`.
    pub fn render(&self, queues: &[QueueStats], now: Timestamp) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.queue_depth.clear();
        self.queue_oldest.clear();
        for q in queues {
            for state in StateName::ALL.into_iter().filter(|s| !s.is_terminal()) {
                let name = state.to_string();
                let n = q.counts.get(&name).copied().unwrap_or(0);
                self.queue_depth
                    .get_or_create(&QueueLabels {
                        recipient: q.recipient.clone(),
                        state: waiting_state(state),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let age = q
                .oldest_pending
                .map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0));
            self.queue_oldest
                .get_or_create(&RecipientLabel {
                    recipient: q.recipient.clone(),
                })
                .set(age);
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let (rss, peak) = memory_of(&status);
            let bytes = |kb: Option<u64>| i64::try_from(kb.unwrap_or(0) * 1024).unwrap_or(i64::MAX);
            self.memory.set(bytes(rss));
            self.memory_peak.set(bytes(peak));
        }
        let mut out = String::new();
        // Writing to a String cannot fail; the encoder reports only the writer's errors.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text, in kB.
fn memory_of(status: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
    };
    (field("VmRSS"), field("VmHWM"))
}

/// A connection counted in `truc_connections_open`; dropping it ends the count.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn receipt_kind(kind: crate::receipt::Kind) -> &'static str {
    match kind {
        crate::receipt::Kind::Acceptance => "acceptance",
        crate::receipt::Kind::Delivery => "delivery",
        crate::receipt::Kind::Failure => "failure",
        crate::receipt::Kind::Cancellation => "cancellation",
    }
}

/// The `state` label of a state a delivery waits in.
fn waiting_state(state: StateName) -> &'static str {
    match state {
        StateName::Queued => "queued",
        StateName::InFlight => "in-flight",
        StateName::Retrying => "retrying",
        _ => "finished",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock as _;

    /// One sample of the text format: name, labels (sorted), value.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// Parses the sample lines of the text format (comments checked to be HELP or TYPE).
    fn parse(text: &str) -> Vec<Sample> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(c) = line.strip_prefix("# ") {
                assert!(c.starts_with("HELP ") || c.starts_with("TYPE "), "{line}");
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|e| panic!("{e}: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect(line);
                    let mut labels: Vec<(String, String)> = inner
                        .split("\",")
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").expect(line);
                            let v = v.trim_end_matches('"');
                            // Bucket bounds compare as numbers (`5e-05` is `0.00005`).
                            let v = match v.parse::<f64>() {
                                Ok(n) if k == "le" && n.is_finite() => n.to_string(),
                                _ => v.to_owned(),
                            };
                            (k.to_owned(), v)
                        })
                        .collect();
                    labels.sort();
                    (name.to_owned(), labels)
                }
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            out.push(Sample {
                name,
                labels,
                value,
            });
        }
        out
    }

    /// The value of the one sample named `name` with exactly these labels.
    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        let found: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} twice");
        found.first().map(|s| s.value)
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn process_memory_is_read_from_proc_status_and_rendered_in_bytes() {
        let status =
            "Name:\ttruc\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(memory_of(status), (Some(40960), Some(51234)));
        assert_eq!(memory_of("VmRSS: lots\n"), (None, None));
        // This process's own figures, as a scrape shows them: present and plausible.
        let s = parse(&Metrics::new().render(&[], t("2026-11-23T00:00:00Z")));
        let rss = value(&s, "truc_process_resident_memory_bytes", &[]).unwrap();
        let peak = value(&s, "truc_process_peak_resident_memory_bytes", &[]).unwrap();
        assert!(rss > 1_000_000.0 && peak >= rss, "{rss} {peak}");
    }

    #[test]
    fn counters_show_with_their_names_labels_and_values() {
        let m = Metrics::new();
        m.accepted(Kind::Edoc, false);
        m.accepted(Kind::Edoc, false);
        m.accepted(Kind::Status, true);
        m.refused(Code::SignatureInvalid);
        m.refused_with(br#"{"type":"x","code":"rate-limited","status":429}"#);
        m.refused_with(b"not json");
        m.delivery_attempt(StateName::Delivered);
        m.delivery_attempt(StateName::Retrying);
        m.delivery_attempt(StateName::Dead);
        m.delivery_attempt(StateName::Queued);
        m.receipt_issued(crate::receipt::Kind::Acceptance);
        m.receipt_issued(crate::receipt::Kind::Failure);
        m.tls_handshake(true);
        m.tls_handshake(false);
        m.tls_handshake(false);
        m.http_request(201);
        let open = m.connection();
        let closed = m.connection();
        drop(closed);
        let s = parse(&m.render(&[], t("2026-12-01T00:00:00Z")));
        let v = |name: &str, labels: &[(&str, &str)]| value(&s, name, labels);
        let accepted = "truc_packages_accepted_total";
        assert_eq!(
            v(accepted, &[("kind", "edoc"), ("outcome", "new")]),
            Some(2.0)
        );
        assert_eq!(
            v(accepted, &[("kind", "status"), ("outcome", "duplicate")]),
            Some(1.0)
        );
        assert_eq!(
            v(accepted, &[("kind", "edoc"), ("outcome", "duplicate")]),
            Some(0.0),
            "declared from the start"
        );
        let refused = "truc_packages_refused_total";
        assert_eq!(v(refused, &[("code", "signature-invalid")]), Some(1.0));
        assert_eq!(v(refused, &[("code", "rate-limited")]), Some(1.0));
        assert_eq!(v(refused, &[("code", "internal")]), Some(1.0));
        let attempts = "truc_delivery_attempts_total";
        assert_eq!(v(attempts, &[("outcome", "delivered")]), Some(1.0));
        assert_eq!(v(attempts, &[("outcome", "retry")]), Some(1.0));
        assert_eq!(v(attempts, &[("outcome", "dead")]), Some(1.0));
        assert_eq!(v(attempts, &[("outcome", "rejected")]), Some(0.0));
        assert_eq!(
            s.iter().filter(|x| x.name == attempts).count(),
            4,
            "a queued state is no outcome"
        );
        let receipts = "truc_receipts_issued_total";
        assert_eq!(v(receipts, &[("kind", "acceptance")]), Some(1.0));
        assert_eq!(v(receipts, &[("kind", "failure")]), Some(1.0));
        assert_eq!(v(receipts, &[("kind", "cancellation")]), Some(0.0));
        let tls = "truc_tls_handshakes_total";
        assert_eq!(v(tls, &[("result", "ok")]), Some(1.0));
        assert_eq!(v(tls, &[("result", "failed")]), Some(2.0));
        assert_eq!(v("truc_connections_open", &[]), Some(1.0));
        drop(open);
        let s = parse(&m.render(&[], t("2026-12-01T00:00:00Z")));
        assert_eq!(value(&s, "truc_connections_open", &[]), Some(0.0));
        assert_eq!(
            value(&s, "truc_http_requests_total", &[("status", "201")]),
            Some(1.0)
        );
    }

    #[test]
    fn histograms_show_buckets_sum_and_count() {
        let m = Metrics::new();
        m.stage(Stage::Verify, Duration::from_micros(700));
        m.stage(Stage::Verify, Duration::from_millis(30));
        m.stage(Stage::Parse, Duration::from_micros(20));
        m.commit(CommitTiming {
            records: 3,
            sync: Duration::from_millis(2),
            apply: Duration::from_micros(80),
        });
        m.commit(CommitTiming {
            records: 1,
            sync: Duration::from_millis(4),
            apply: Duration::from_micros(40),
        });
        let s = parse(&m.render(&[], t("2026-12-01T00:00:00Z")));
        let v = |name: &str, labels: &[(&str, &str)]| value(&s, name, labels);
        let verify = [("stage", "verify")];
        assert_eq!(v("truc_stage_seconds_count", &verify), Some(2.0));
        let sum = v("truc_stage_seconds_sum", &verify).unwrap();
        assert!((sum - 0.0307).abs() < 1e-9, "{sum}");
        let bucket = |le: &str| {
            v(
                "truc_stage_seconds_bucket",
                &[("stage", "verify"), ("le", le)],
            )
        };
        assert_eq!(bucket("0.0005"), Some(0.0));
        assert_eq!(bucket("0.001"), Some(1.0), "cumulative");
        assert_eq!(bucket("0.05"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
        assert_eq!(
            v(
                "truc_stage_seconds_bucket",
                &[("stage", "parse"), ("le", "0.00005")]
            ),
            Some(1.0),
            "the first bucket is 50 µs"
        );
        assert_eq!(
            v("truc_stage_seconds_count", &[("stage", "store")]),
            Some(0.0)
        );
        assert_eq!(v("truc_commit_batch_size_count", &[]), Some(2.0));
        assert_eq!(v("truc_commit_batch_size_sum", &[]), Some(4.0));
        assert_eq!(
            v("truc_commit_batch_size_bucket", &[("le", "1024")]),
            Some(2.0)
        );
        assert_eq!(
            v("truc_commit_batch_size_bucket", &[("le", "2")]),
            Some(1.0)
        );
        assert_eq!(v("truc_commit_sync_seconds_count", &[]), Some(2.0));
        let sync = v("truc_commit_sync_seconds_sum", &[]).unwrap();
        assert!((sync - 0.006).abs() < 1e-9, "{sync}");
        assert_eq!(v("truc_commit_apply_seconds_count", &[]), Some(2.0));
    }

    #[test]
    fn queue_gauges_come_from_the_figures_given_at_scrape_time() {
        let m = Metrics::new();
        let now = t("2026-12-01T10:00:00Z");
        let stats = |recipient: &str, counts: &[(&str, u64)], oldest: Option<&str>| QueueStats {
            recipient: recipient.into(),
            counts: counts.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            oldest_pending: oldest.map(t),
            next_due: None,
        };
        let queues = [
            stats(
                "000.00.00.H41",
                &[("queued", 3), ("retrying", 2), ("delivered", 40)],
                Some("2026-12-01T09:58:30Z"),
            ),
            stats("000.00.00.H29", &[("delivered", 5)], None),
        ];
        let s = parse(&m.render(&queues, now));
        let depth = |r: &str, state: &str| {
            value(
                &s,
                "truc_queue_depth",
                &[("recipient", r), ("state", state)],
            )
        };
        assert_eq!(depth("000.00.00.H41", "queued"), Some(3.0));
        assert_eq!(depth("000.00.00.H41", "retrying"), Some(2.0));
        assert_eq!(depth("000.00.00.H41", "in-flight"), Some(0.0));
        assert_eq!(
            depth("000.00.00.H41", "delivered"),
            None,
            "finished is not depth"
        );
        assert_eq!(depth("000.00.00.H29", "queued"), Some(0.0));
        let age = |r: &str| value(&s, "truc_queue_oldest_age_seconds", &[("recipient", r)]);
        assert_eq!(age("000.00.00.H41"), Some(90.0));
        assert_eq!(age("000.00.00.H29"), Some(0.0));
        // The next scrape shows the queues as they are then: a recipient gone is gone.
        let s = parse(&m.render(&queues[..1], now + jiff::SignedDuration::from_secs(10)));
        assert_eq!(
            value(
                &s,
                "truc_queue_oldest_age_seconds",
                &[("recipient", "000.00.00.H41")]
            ),
            Some(100.0)
        );
        assert!(
            !s.iter()
                .any(|x| x.labels.iter().any(|(_, v)| v == "000.00.00.H29")),
            "the recipient of an earlier scrape is not kept"
        );
    }

    #[test]
    fn the_content_type_is_the_text_format() {
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }

    /// A hub on the embedded defaults (the test PKI) in a temporary directory.
    fn hub(tmp: &std::path::Path) -> crate::hub::Hub {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut config = crate::hub::Config::embedded();
        config.data = tmp.join("data");
        config.directory = root.join("certs-test/directory.toml");
        crate::hub::Hub::open(config, crate::clock::SystemClock.now()).unwrap()
    }

    /// A package from G12 to H29, signed with G12's key (through the `truc` commands).
    fn signed_package(tmp: &std::path::Path) -> Vec<u8> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let run = |args: &[&str]| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let args = std::iter::once("truc")
                .chain(args.iter().copied())
                .map(Into::into);
            let code = crate::cli::run(args, &mut out, &mut err);
            assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
            out
        };
        let unsigned = run(&[
            "package",
            "new",
            "--from",
            "000.00.00.G12",
            "--to",
            "000.00.00.H29",
            "--number",
            "7",
            "--notation",
            "BTC-VP",
            "--subject",
            "metrics",
        ]);
        let file = tmp.join("package.edxml");
        std::fs::write(&file, unsigned).unwrap();
        let agency = root.join("certs-test/agencies/000.00.00.G12");
        run(&[
            "sign",
            file.to_str().unwrap(),
            "--key",
            agency.join("sign.key").to_str().unwrap(),
            "--cert",
            agency.join("sign.pem").to_str().unwrap(),
        ])
    }

    #[test]
    fn a_submission_is_counted_and_timed_and_its_queue_shows() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = hub(tmp.path());
        let body = bytes::Bytes::from(signed_package(tmp.path()));
        let now = hub.clock.now();
        let request = crate::hub::api::ApiRequest {
            method: http::Method::POST,
            path: "/api/v1/packages".into(),
            query: None,
            agency: "000.00.00.G12".into(),
            headers: http::HeaderMap::new(),
            body,
            now,
            request_id: "test".into(),
        };
        let first = crate::hub::api::handle(&hub, request.clone());
        assert_eq!(
            first.status,
            201,
            "{}",
            String::from_utf8_lossy(&first.body)
        );
        let again = crate::hub::api::handle(&hub, request);
        assert_eq!(again.status, 200);
        let later = now + jiff::SignedDuration::from_secs(30);
        let s = parse(&hub.metrics.render(&hub.store.queues().unwrap(), later));
        let v = |name: &str, labels: &[(&str, &str)]| value(&s, name, labels);
        let accepted = "truc_packages_accepted_total";
        assert_eq!(
            v(accepted, &[("kind", "edoc"), ("outcome", "new")]),
            Some(1.0)
        );
        assert_eq!(
            v(accepted, &[("kind", "edoc"), ("outcome", "duplicate")]),
            Some(1.0)
        );
        for stage in ["parse", "verify", "digest", "signature", "chain"] {
            let n = v("truc_stage_seconds_count", &[("stage", stage)]).unwrap();
            assert!(n >= 1.0, "{stage}: {n}");
        }
        assert_eq!(
            v("truc_stage_seconds_count", &[("stage", "receipt")]),
            Some(1.0)
        );
        assert_eq!(
            v("truc_stage_seconds_count", &[("stage", "store")]),
            Some(2.0)
        );
        assert_eq!(
            v("truc_receipts_issued_total", &[("kind", "acceptance")]),
            Some(1.0),
            "the duplicate gets the stored receipt"
        );
        assert!(v("truc_commit_batch_size_count", &[]).unwrap() >= 1.0);
        assert!(v("truc_commit_sync_seconds_count", &[]).unwrap() >= 1.0);
        let h29 = [("recipient", "000.00.00.H29"), ("state", "queued")];
        assert_eq!(v("truc_queue_depth", &h29), Some(1.0));
        let age = v(
            "truc_queue_oldest_age_seconds",
            &[("recipient", "000.00.00.H29")],
        )
        .unwrap();
        assert!((29.0..=31.0).contains(&age), "{age}");
        hub.close().unwrap();
    }
}
