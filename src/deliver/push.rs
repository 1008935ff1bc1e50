//! Push delivery: the hub POSTs each package to its recipient's endpoint.
//!
//! # Architecture
//! One task per push endpoint (agency), so a dead or slow endpoint only ever holds up its
//! own queue. Each task loops in rounds: one blocking call
//! ([`crate::store::Engine::push_round`], one writer lock, one map batch) records the
//! outcomes of every attempt finished since the last round and claims as many due
//! deliveries as there are free slots (leased; the packages read after the lock is
//! released); the claimed packages are POSTed concurrently (at most
//! `per_endpoint_concurrency`); when nothing is due the task sleeps a poll interval, or until
//! it is woken ([`Live::wake`]: a package accepted for the endpoint, the endpoint resumed, an
//! operator's retry or requeue), so a new package is pushed at once, not at the next poll. Each
//! attempt, once answered, signs its receipt (delivery or failure) on a blocking thread of
//! its own ([`crate::store::Engine::prepare`], from the message and delivery it was claimed
//! with; the round keeps it only if the record still holds exactly those), so the round
//! itself only reads and writes the map. The more attempts finish together, the more one
//! round (and one sled batch, which sled 0.34 writes out every time) carries.
//!
//! Connections are kept alive and reused between attempts (at most
//! `per_endpoint_concurrency` idle per endpoint; one whose answer was not read whole is
//! closed). A circuit breaker per endpoint stops claiming after repeated
//! failures and probes with one delivery after a cool-down; while it is open the deliveries
//! stay due in the queue, no attempt is spent on them.
//!
//! The request: `POST <url>` with the original bytes (never re-serialized) and the headers
//! `Truc-Message-Id`, `Truc-Delivery-Id` (stable across retries, for the receiver to
//! deduplicate) and `Truc-Sender`. The answer ([`classify`]): 2xx delivered; 408, 429, 5xx,
//! timeouts and connection errors retried on the schedule of [`RetryPolicy`] until it gives
//! up (dead); any other status is the recipient refusing the package (rejected). The store
//! issues the delivery or failure receipt in the same batch as the outcome.
//!
//! Receipts go the same way to senders that are push endpoints: when its queue is idle, the
//! worker POSTs the receipts issued for its agency's packages since the last one taken (feed
//! order, with `Truc-Receipt-Id` and `Truc-Message-Id`; the feed position is kept in the
//! store), so a push-mode agency need not poll `GET /api/v1/receipts`.
//!
//! # Invariants
//! - Pure parts ([`classify`], [`Circuit`]) take their inputs and `now`; only [`run`] does
//!   I/O.
//! - An attempt is recorded with the attempt number of its claim: a late answer after the
//!   lease expired and another worker claimed it again is refused by the store, not
//!   double-counted. A round that fails to write changes nothing; its outcomes are logged
//!   as not recorded and their leases expire (at-least-once).
//! - Shutdown: the loop stops claiming; attempts in flight finish (bounded by the push
//!   timeout) and are recorded in one last round.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::retry::{Decision, RetryPolicy};
use crate::hub::Hub;
use crate::store::{AttemptResult, Attempted, Claim, Delivery, DeliveryView, Prepared, StoreError};

/// What an attempt's answer means for the delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Delivered,
    /// Worth trying again: the error, for the record.
    Retry(String),
    /// The recipient refused it: its status and what it said.
    Rejected(String),
}

/// The outcome of an HTTP answer (`Ok(status, body)`) or of a transport failure (`Err`).
pub fn classify(answer: Result<(StatusCode, &[u8]), &str>) -> Outcome {
    match answer {
        Err(e) => Outcome::Retry(e.to_owned()),
        Ok((s, _)) if s.is_success() => Outcome::Delivered,
        Ok((s, body)) => {
            let said = String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_owned();
            let what = if said.is_empty() {
                format!("HTTP {}", s.as_u16())
            } else {
                format!("HTTP {}: {said}", s.as_u16())
            };
            if s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::TOO_MANY_REQUESTS
                || s.is_server_error()
            {
                Outcome::Retry(what)
            } else {
                Outcome::Rejected(what)
            }
        }
    }
}

/// Where a circuit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitState {
    /// Deliveries flow.
    Closed,
    /// Too many failures in a row: nothing is attempted until the cool-down ends.
    Open,
    /// Cool-down over: one attempt probes the endpoint.
    HalfOpen,
}

/// A circuit breaker for one endpoint. Pure: every call takes `now`.
#[derive(Clone, Debug)]
pub struct Circuit {
    threshold: u32,
    cool_down: Duration,
    failures: u32,
    open_until: Option<Instant>,
}

impl Circuit {
    /// Opens after `threshold` failures in a row, for `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Circuit {
            threshold: threshold.max(1),
            cool_down,
            failures: 0,
            open_until: None,
        }
    }

    /// Its state at `now`.
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.open_until {
            None => CircuitState::Closed,
            Some(until) if now < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// How many deliveries may be attempted at once at `now` (`limit` when closed).
    pub fn allowance(&self, now: Instant, limit: usize) -> usize {
        match self.state(now) {
            CircuitState::Closed => limit,
            CircuitState::Open => 0,
            CircuitState::HalfOpen => 1.min(limit),
        }
    }

    /// An attempt reached the endpoint and it answered (delivered or refused).
    pub fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }

    /// An attempt failed in a way worth retrying (unreachable, 5xx, timeout).
    pub fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.threshold || self.open_until.is_some() {
            self.open_until = Some(now + self.cool_down);
        }
    }

    /// When the circuit allows an attempt again, if it is open.
    pub fn open_until(&self) -> Option<Instant> {
        self.open_until
    }
}

/// One push endpoint.
#[derive(Clone)]
pub struct Endpoint {
    /// The recipient agency.
    pub agency: String,
    /// Its URL (`https://host[:port]/path`).
    pub url: Uri,
    /// TLS settings: the roots its server certificate must chain to.
    pub tls: Arc<rustls::ClientConfig>,
}

/// Settings of the push workers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Connection, TLS handshake, request and answer together.
    pub timeout: Duration,
    /// Attempts in flight per endpoint.
    pub concurrency: usize,
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// How often an idle endpoint's queue is looked at (a [`Live::wake`] comes sooner).
    pub poll: Duration,
    /// Failures in a row that open the circuit, and for how long.
    pub circuit_threshold: u32,
    /// Cool-down of an open circuit.
    pub circuit_cool_down: Duration,
}

/// What the workers show of themselves to the ops console (each endpoint's circuit), and
/// how the rest of the hub wakes a worker that is waiting for its next poll.
#[derive(Debug, Default)]
pub struct Live {
    circuits: std::sync::Mutex<std::collections::BTreeMap<String, CircuitState>>,
    wakers: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl Live {
    /// The circuit of each endpoint with a worker, by agency.
    pub fn circuits(&self) -> std::collections::BTreeMap<String, CircuitState> {
        self.circuits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Tells `agency`'s worker, if it has one, to look at its queue now: a delivery became
    /// due (a new package, an operator's retry or requeue) or the endpoint was resumed. A
    /// wake that comes while the worker is busy is kept for its next wait.
    pub fn wake(&self, agency: &str) {
        let wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = wakers.get(agency) {
            w.notify_one();
        }
    }

    fn waker(&self, agency: &str) -> Arc<tokio::sync::Notify> {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(agency.to_owned())
            .or_default()
            .clone()
    }

    fn set(&self, agency: &str, state: CircuitState) {
        self.circuits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agency.to_owned(), state);
    }
}

/// Why a connection could not be opened ([`connect`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names no host.
    #[error("the URL has no host")]
    NoHost,
    /// The TCP connection failed (`host:port`).
    #[error("connect {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The host is not a valid TLS server name.
    #[error("server name {host}: {detail}")]
    ServerName {
        /// The host of the URL.
        host: String,
        /// Why.
        detail: String,
    },
    /// The TLS handshake failed (the `rustls::Error` is inside the `io::Error`).
    #[error("TLS with {addr}: {source}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP with {addr}: {source}")]
    Http {
        /// `host:port`.
        addr: String,
        /// What failed.
        source: hyper::Error,
    },
}

/// Opens an HTTP/1.1 connection to `url`'s host and port: over TLS with `tls` (port 443 by
/// default), or plain TCP when `tls` is `None` (port 80 by default). The connection is
/// driven by a spawned task (so this needs a tokio runtime) and ends when the returned
/// sender is dropped; it can carry several requests in turn (keep-alive).
pub async fn connect(
    url: &Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ConnectError> {
    let host = url.host().ok_or(ConnectError::NoHost)?.to_owned();
    let port = url
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    let addr = format!("{host}:{port}");
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|source| ConnectError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    async fn handshake<T>(
        io: T,
        addr: &str,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ConnectError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|source| ConnectError::Http {
                addr: addr.to_owned(),
                source,
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }
    let Some(tls) = tls else {
        return handshake(tcp, &addr).await;
    };
    let name = ServerName::try_from(bare.to_owned()).map_err(|e| ConnectError::ServerName {
        host: host.clone(),
        detail: e.to_string(),
    })?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|source| ConnectError::Tls {
            addr: addr.clone(),
            source,
        })?;
    handshake(stream, &addr).await
}

/// The kept-alive connections of one endpoint that are idle, at most
/// `per_endpoint_concurrency` of them: an attempt takes one (or opens one) and gives it back
/// when the answer has been read whole and the endpoint keeps it open.
#[derive(Default)]
struct Idle(std::sync::Mutex<Vec<Sender>>);

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The most of an answer's body read to let its connection be used again; a longer answer
/// closes it (its first 4 KiB are kept either way).
const MAX_ANSWER: usize = 64 * 1024;

impl Idle {
    /// An idle connection that is still open, if any.
    async fn take(&self) -> Option<Sender> {
        loop {
            let popped = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut s = popped?;
            if s.ready().await.is_ok() {
                return Some(s);
            }
        }
    }

    fn give_back(&self, s: Sender, max: usize) {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < max {
            idle.push(s);
        }
    }
}

/// POSTs `body` to `ep` with the `Truc-*` `headers` on a kept-alive connection of `idle`
/// (or a new one); the answer's status and up to 4 KiB of its body.
async fn post(
    ep: &Endpoint,
    idle: &Idle,
    max_idle: usize,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<(StatusCode, Vec<u8>), String> {
    let mut send = match idle.take().await {
        Some(s) => s,
        None => connect(&ep.url, Some(&ep.tls))
            .await
            .map_err(|e| e.to_string())?,
    };
    let path = ep.url.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::post(path)
        .header(
            http::header::HOST,
            ep.url.authority().map_or("", |a| a.as_str()),
        )
        .header(http::header::CONTENT_TYPE, "application/xml");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("POST {}: {e}", ep.url))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let (mut read, mut whole) = (0usize, false);
    while read <= MAX_ANSWER {
        match body.frame().await {
            None => {
                whole = true;
                break;
            }
            Some(Err(_)) => break,
            Some(Ok(frame)) => {
                if let Some(chunk) = frame.data_ref() {
                    read += chunk.len();
                    let room = 4096usize.saturating_sub(out.len());
                    out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
            }
        }
    }
    if whole && !send.is_closed() {
        idle.give_back(send, max_idle);
    }
    Ok((status, out))
}

/// What one attempt came to: whether the endpoint answered (for the circuit), and the
/// outcome for the next round to record with what to log of it (`None` when there is
/// nothing to record: the package could not be read, and the claim is left to expire).
struct Finished {
    reached: bool,
    done: Option<(Prepared, Outcome)>,
}

/// One attempt: POST the package read with its claim; the outcome is recorded by the next
/// round of [`serve`].
async fn attempt(
    hub: Arc<Hub>,
    ep: Endpoint,
    idle: Arc<Idle>,
    settings: Arc<Settings>,
    claim: Claim,
    view: Result<DeliveryView, StoreError>,
) -> Finished {
    let id = claim.delivery;
    let (m, body, d) = match view {
        Ok(DeliveryView {
            message,
            body: Some(body),
            delivery,
        }) => (message, body, delivery),
        other => {
            let why = match other {
                Err(e) => e.to_string(),
                Ok(_) => "the package bytes were purged".to_owned(),
            };
            tracing::error!(message = %id.message, delivery = %id, error = %why, "push: cannot read the package");
            return Finished {
                reached: false,
                done: None,
            };
        }
    };
    let headers = [
        ("truc-message-id", id.message.to_string()),
        ("truc-delivery-id", id.to_string()),
        ("truc-sender", m.sender.clone()),
    ];
    let max_idle = settings.concurrency.max(1);
    let answer =
        tokio::time::timeout(settings.timeout, post(&ep, &idle, max_idle, &headers, body)).await;
    let outcome = match &answer {
        Ok(Ok((status, body))) => classify(Ok((*status, body))),
        Ok(Err(e)) => classify(Err(e)),
        Err(_) => classify(Err(&format!("no answer within {:?}", settings.timeout))),
    };
    let result = match &outcome {
        Outcome::Delivered => AttemptResult::Delivered,
        Outcome::Rejected(why) => AttemptResult::Rejected(why.clone()),
        Outcome::Retry(why) => {
            let now = hub.clock.now();
            let retry_at = match settings.retry.next(claim.attempt, d.since, now, random()) {
                Decision::At(t) => Some(t),
                Decision::GiveUp => None,
            };
            AttemptResult::Failed {
                error: why.clone(),
                retry_at,
            }
        }
    };
    let attempted = Attempted {
        delivery: id,
        attempt: claim.attempt,
        result,
    };
    // Signing a final state's receipt is the costly part of recording: done here, for
    // each attempt on its own blocking thread, so the round only writes.
    let h = hub.clone();
    let prepared =
        tokio::task::spawn_blocking(move || h.store.prepare(attempted, m, d, h.clock.now())).await;
    let reached = !matches!(outcome, Outcome::Retry(_));
    let done = match prepared {
        Ok(p) => Some((p, outcome)),
        Err(e) => {
            tracing::error!(message = %id.message, delivery = %id, error = %e, "push: recording task failed");
            None
        }
    };
    Finished { reached, done }
}

/// Logs and counts what a round recorded of each finished attempt.
fn log_recorded(
    hub: &Hub,
    ep: &Endpoint,
    done: Vec<(Attempted, Outcome)>,
    recorded: Vec<Result<Delivery, StoreError>>,
) {
    for ((a, outcome), r) in done.into_iter().zip(recorded) {
        let (id, attempt) = (a.delivery, a.attempt);
        match r {
            Ok(d) => {
                hub.metrics.delivery_attempt(d.state.name());
                tracing::info!(
                    message = %id.message, delivery = %id, recipient = %ep.agency, attempt,
                    state = %d.state.name(), outcome = ?outcome, "push attempt"
                )
            }
            Err(e) => {
                tracing::warn!(message = %id.message, delivery = %id, error = %e, "push: outcome not recorded")
            }
        }
    }
}

/// Pushes the receipts issued for the endpoint's agency (as a sender) since the last one it
/// took, in feed order, each with `Truc-Receipt-Id` and `Truc-Message-Id`. Stops at the
/// first failure worth retrying (`Some(false)`; the next round starts there again); a
/// receipt the endpoint refuses is skipped, logged. `None`: nothing to push.
async fn push_receipts(
    hub: &Arc<Hub>,
    ep: &Endpoint,
    idle: &Idle,
    settings: &Settings,
) -> Option<bool> {
    let (h, agency) = (hub.clone(), ep.agency.clone());
    let pending = tokio::task::spawn_blocking(move || {
        let after = h.store.feed_cursor(&agency)?;
        let mut out = Vec::new();
        for e in h.store.receipts_for(&agency, after, 16)? {
            let bytes = h.store.delivery_receipt(e.delivery, e.kind)?;
            out.push((e, bytes.unwrap_or_default()));
        }
        Ok::<_, StoreError>(out)
    })
    .await;
    let pending = match pending {
        Ok(Ok(p)) if !p.is_empty() => p,
        Ok(Ok(_)) => return None,
        other => {
            tracing::error!(recipient = %ep.agency, result = ?other.map(|r| r.map(|_| ())), "push: cannot read the receipt feed");
            return None;
        }
    };
    for (entry, bytes) in pending {
        let id = match crate::hub::receipts::kind_of(entry.kind) {
            Some(k) => crate::hub::receipts::ReceiptRef::Delivery(entry.delivery, k).id(),
            None => entry.delivery.to_string(),
        };
        let headers = [
            ("truc-receipt-id", id.clone()),
            ("truc-message-id", entry.delivery.message.to_string()),
        ];
        let max_idle = settings.concurrency.max(1);
        let answer =
            tokio::time::timeout(settings.timeout, post(ep, idle, max_idle, &headers, bytes)).await;
        let outcome = match &answer {
            Ok(Ok((status, body))) => classify(Ok((*status, body))),
            Ok(Err(e)) => classify(Err(e)),
            Err(_) => classify(Err("no answer in time")),
        };
        match outcome {
            Outcome::Retry(why) => {
                tracing::warn!(recipient = %ep.agency, message = %entry.delivery.message, receipt = %id, error = %why, "receipt push failed; will retry");
                return Some(false);
            }
            Outcome::Rejected(why) => {
                tracing::warn!(recipient = %ep.agency, message = %entry.delivery.message, receipt = %id, answer = %why, "the endpoint refused a receipt; skipped");
            }
            Outcome::Delivered => {
                tracing::info!(recipient = %ep.agency, message = %entry.delivery.message, receipt = %id, "receipt pushed");
            }
        }
        let (h, agency, seq) = (hub.clone(), ep.agency.clone(), entry.seq);
        let saved =
            tokio::task::spawn_blocking(move || h.store.set_feed_cursor(&agency, seq)).await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::error!(recipient = %ep.agency, message = %entry.delivery.message, "push: cannot record the receipt feed position");
            return Some(false);
        }
    }
    Some(true)
}

fn random() -> u64 {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u64::from_le_bytes(b)
}

/// Unrecorded outcomes of finished attempts, with what to log of each.
type Done = Vec<(Prepared, Outcome)>;

/// One round in the store for `ep`: records `done` (emptied) and claims up to `allowance`
/// deliveries unless the endpoint is paused. The claims, and whether it is paused.
async fn round(
    hub: &Arc<Hub>,
    ep: &Endpoint,
    done: &mut Done,
    allowance: usize,
    lease: Duration,
) -> (Vec<(Claim, Result<DeliveryView, StoreError>)>, bool) {
    let (h, agency) = (hub.clone(), ep.agency.clone());
    let (outcomes, logged): (Vec<Prepared>, Vec<_>) = std::mem::take(done)
        .into_iter()
        .map(|(p, outcome)| {
            let a = p.attempted().clone();
            (p, (a, outcome))
        })
        .unzip();
    let round = tokio::task::spawn_blocking(move || {
        let paused = allowance > 0 && h.store.is_paused(&agency)?;
        let limit = if paused { 0 } else { allowance };
        let round = h
            .store
            .push_round(&agency, outcomes, h.clock.now(), lease, limit)?;
        Ok::<_, StoreError>((round, paused))
    })
    .await;
    match round {
        Ok(Ok((round, paused))) => {
            log_recorded(hub, ep, logged, round.recorded);
            (round.claimed, paused)
        }
        other => {
            // Nothing was recorded: each outcome is lost with its lease, which expires and
            // makes the delivery due again (at-least-once).
            let error = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "the store task failed".to_owned(),
            };
            tracing::error!(recipient = %ep.agency, error = %error, "push: store round failed");
            for (a, _) in logged {
                tracing::warn!(message = %a.delivery.message, delivery = %a.delivery, error = %error, "push: outcome not recorded");
            }
            (Vec::new(), false)
        }
    }
}

/// Serves one endpoint until `stop` is set: up to `per_endpoint_concurrency` attempts in
/// flight at all times, on kept-alive connections. Each [`round`] is one blocking call and
/// one store batch ([`crate::store::Engine::push_round`]): it records every attempt
/// finished since the last round and claims as many deliveries as there are free slots, so
/// a slot that frees is claimed again at once.
async fn serve(
    hub: Arc<Hub>,
    ep: Endpoint,
    settings: Arc<Settings>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut circuit = Circuit::new(settings.circuit_threshold, settings.circuit_cool_down);
    let lease = settings.timeout.saturating_mul(2) + Duration::from_secs(5);
    let idle = Arc::new(Idle::default());
    let wake = hub.push_live.waker(&ep.agency);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut done: Done = Vec::new();
    let finish = |circuit: &mut Circuit, done: &mut Done, r: Result<Finished, _>| match r {
        Ok(Finished { reached, done: d }) => {
            if reached {
                circuit.success();
            } else {
                circuit.failure(Instant::now());
            }
            done.extend(d);
        }
        Err(_) => circuit.failure(Instant::now()),
    };
    while !*stop.borrow() {
        hub.push_live.set(&ep.agency, circuit.state(Instant::now()));
        let allowance = circuit
            .allowance(Instant::now(), settings.concurrency.max(1))
            .saturating_sub(in_flight.len());
        // An operator's pause holds everything for the endpoint (packages and receipts);
        // the deliveries stay due in the queue. Outcomes are recorded either way.
        let (claims, paused) = if allowance > 0 || !done.is_empty() {
            round(&hub, &ep, &mut done, allowance, lease).await
        } else {
            (Vec::new(), false)
        };
        if !claims.is_empty() {
            for (claim, view) in claims {
                in_flight.spawn(attempt(
                    hub.clone(),
                    ep.clone(),
                    idle.clone(),
                    settings.clone(),
                    claim,
                    view,
                ));
            }
            if in_flight.len() >= settings.concurrency.max(1) {
                if let Some(r) = in_flight.join_next().await {
                    finish(&mut circuit, &mut done, r);
                }
            }
            while let Some(r) = in_flight.try_join_next() {
                finish(&mut circuit, &mut done, r);
            }
            continue;
        }
        if !in_flight.is_empty() {
            // Nothing more is due now: wait for an attempt to finish, or look again after a
            // poll interval (a slow attempt must not hold up what arrives meanwhile).
            tokio::select! {
                r = in_flight.join_next() => {
                    if let Some(r) = r {
                        finish(&mut circuit, &mut done, r);
                    }
                    while let Some(r) = in_flight.try_join_next() {
                        finish(&mut circuit, &mut done, r);
                    }
                }
                _ = tokio::time::sleep(settings.poll) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if allowance > 0 && !paused {
            match push_receipts(&hub, &ep, &idle, &settings).await {
                Some(true) => {
                    circuit.success();
                    continue;
                }
                Some(false) => circuit.failure(Instant::now()),
                None => {}
            }
        }
        let wait = circuit
            .open_until()
            .map_or(settings.poll, |u| {
                u.saturating_duration_since(Instant::now())
                    .min(settings.poll)
            })
            .max(Duration::from_millis(10));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
    // Shutdown: the attempts in flight finish, and their outcomes are recorded.
    while let Some(r) = in_flight.join_next().await {
        finish(&mut circuit, &mut done, r);
    }
    if !done.is_empty() {
        round(&hub, &ep, &mut done, 0, lease).await;
    }
}

/// Starts one worker per endpoint; they stop when `stop` turns true. The returned set
/// completes once every worker has finished its attempts in flight.
pub fn run(
    hub: Arc<Hub>,
    endpoints: Vec<Endpoint>,
    settings: Settings,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let settings = Arc::new(settings);
    let mut set = tokio::task::JoinSet::new();
    for ep in endpoints {
        tracing::info!(recipient = %ep.agency, url = %ep.url, "push worker started");
        set.spawn(serve(hub.clone(), ep, settings.clone(), stop.clone()));
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(Ok((s(200), b""))), Outcome::Delivered);
        assert_eq!(classify(Ok((s(204), b""))), Outcome::Delivered);
        for retry in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(Ok((s(retry), b"busy"))), Outcome::Retry(_)),
                "{retry}"
            );
        }
        for refused in [400, 401, 403, 404, 409, 413, 422] {
            assert!(
                matches!(classify(Ok((s(refused), b""))), Outcome::Rejected(_)),
                "{refused}"
            );
        }
        assert_eq!(
            classify(Ok((s(422), b" bad signature \n"))),
            Outcome::Rejected("HTTP 422: bad signature".into())
        );
        assert_eq!(
            classify(Err("connect: refused")),
            Outcome::Retry("connect: refused".into())
        );
    }

    #[test]
    fn the_circuit_opens_after_failures_and_probes_after_the_cool_down() {
        let t0 = Instant::now();
        let mut c = Circuit::new(3, Duration::from_secs(30));
        assert_eq!(c.allowance(t0, 8), 8);
        c.failure(t0);
        c.failure(t0);
        assert_eq!(c.state(t0), CircuitState::Closed);
        c.failure(t0);
        assert_eq!(c.state(t0), CircuitState::Open);
        assert_eq!(c.allowance(t0 + Duration::from_secs(29), 8), 0);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(c.state(later), CircuitState::HalfOpen);
        assert_eq!(c.allowance(later, 8), 1, "one probe");
        // A failed probe opens it again for a whole cool-down.
        c.failure(later);
        assert_eq!(c.state(later + Duration::from_secs(29)), CircuitState::Open);
        let probe = later + Duration::from_secs(30);
        assert_eq!(c.allowance(probe, 8), 1);
        c.success();
        assert_eq!(c.state(probe), CircuitState::Closed);
        assert_eq!(c.allowance(probe, 8), 8);
    }
}
