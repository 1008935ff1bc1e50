//! Push delivery: the hub POSTs each package to its recipient's endpoint.
//!
//! # Architecture
//! One task per push endpoint (agency), so a dead or slow endpoint only ever holds up its
//! own queue. Each task loops: claim what is due for its agency from the store
//! ([`crate::store::Engine::claim_for`], leased, each package read in the same blocking
//! call), POST the claimed packages concurrently (at most `per_endpoint_concurrency`),
//! record each outcome in the store, and sleep a poll interval when nothing is due; a slot
//! that frees is claimed again at once. Connections are kept alive and reused between
//! attempts (at most `per_endpoint_concurrency` idle per endpoint; one whose answer was not
//! read whole is closed). A circuit breaker per endpoint stops claiming after repeated
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
//!   double-counted.
//! - Shutdown: the loop stops claiming; attempts in flight finish (bounded by the push
//!   timeout) and are recorded.

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
use crate::store::{Claim, DeliveryView, StoreError};

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
    /// How often an idle endpoint's queue is looked at.
    pub poll: Duration,
    /// Failures in a row that open the circuit, and for how long.
    pub circuit_threshold: u32,
    /// Cool-down of an open circuit.
    pub circuit_cool_down: Duration,
}

/// What the workers show of themselves to the ops console: each endpoint's circuit.
#[derive(Debug, Default)]
pub struct Live {
    circuits: std::sync::Mutex<std::collections::BTreeMap<String, CircuitState>>,
}

impl Live {
    /// The circuit of each endpoint with a worker, by agency.
    pub fn circuits(&self) -> std::collections::BTreeMap<String, CircuitState> {
        self.circuits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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

/// A claimed delivery with what its attempt needs, read in the claim's blocking call (one
/// hand-off to the blocking pool fewer per attempt).
struct Claimed {
    claim: Claim,
    view: Result<Option<DeliveryView>, StoreError>,
}

/// One attempt: POST the package read with its claim, record the outcome. Returns whether
/// the endpoint answered (for the circuit).
async fn attempt(
    hub: Arc<Hub>,
    ep: Endpoint,
    idle: Arc<Idle>,
    settings: Arc<Settings>,
    Claimed { claim, view }: Claimed,
) -> bool {
    let id = claim.delivery;
    let (m, body, d) = match view {
        Ok(Some(DeliveryView {
            message,
            body: Some(body),
            delivery,
        })) => (message, body, delivery),
        other => {
            tracing::error!(message = %id.message, delivery = %id, result = ?other.map(|r| r.map(|_| ())), "push: cannot read the package");
            return false;
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
    let reached = !matches!(outcome, Outcome::Retry(_));
    let attempt = claim.attempt;
    let h = hub.clone();
    let record = tokio::task::spawn_blocking(move || {
        let now = h.clock.now();
        match &outcome {
            Outcome::Delivered => h.store.delivered(id, attempt, now),
            Outcome::Rejected(why) => h.store.rejected(id, attempt, why, now),
            Outcome::Retry(why) => {
                let next = match settings.retry.next(attempt, d.since, now, random()) {
                    Decision::At(t) => Some(t),
                    Decision::GiveUp => None,
                };
                h.store.failed(id, attempt, why, next, now)
            }
        }
        .map(|d| (outcome.clone(), d))
    })
    .await;
    match record {
        Ok(Ok((outcome, d))) => {
            hub.metrics.delivery_attempt(d.state.name());
            tracing::info!(
                message = %id.message, delivery = %id, recipient = %ep.agency, attempt,
                state = %d.state.name(), outcome = ?outcome, "push attempt"
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(message = %id.message, delivery = %id, error = %e, "push: outcome not recorded")
        }
        Err(e) => {
            tracing::error!(message = %id.message, delivery = %id, error = %e, "push: recording task failed")
        }
    }
    reached
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

/// Serves one endpoint until `stop` is set: up to `per_endpoint_concurrency` attempts in
/// flight at all times (a slot that frees is claimed again at once, without waiting for the
/// others), on kept-alive connections.
async fn serve(
    hub: Arc<Hub>,
    ep: Endpoint,
    settings: Arc<Settings>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut circuit = Circuit::new(settings.circuit_threshold, settings.circuit_cool_down);
    let lease = settings.timeout.saturating_mul(2) + Duration::from_secs(5);
    let idle = Arc::new(Idle::default());
    let mut in_flight = tokio::task::JoinSet::new();
    let record = |circuit: &mut Circuit, r: Result<bool, tokio::task::JoinError>| match r {
        Ok(true) => circuit.success(),
        _ => circuit.failure(Instant::now()),
    };
    while !*stop.borrow() {
        hub.push_live.set(&ep.agency, circuit.state(Instant::now()));
        let allowance = circuit
            .allowance(Instant::now(), settings.concurrency.max(1))
            .saturating_sub(in_flight.len());
        // An operator's pause holds everything for the endpoint (packages and receipts);
        // the deliveries stay due in the queue.
        let (claims, paused) = if allowance == 0 {
            (Vec::new(), false)
        } else {
            let (h, agency) = (hub.clone(), ep.agency.clone());
            match tokio::task::spawn_blocking(move || {
                if h.store.is_paused(&agency)? {
                    return Ok((Vec::new(), true));
                }
                let claims = h
                    .store
                    .claim_for(&agency, h.clock.now(), lease, allowance)?;
                let claimed = claims
                    .into_iter()
                    .map(|claim| Claimed {
                        view: h.store.delivery_view(claim.delivery),
                        claim,
                    })
                    .collect();
                Ok::<_, StoreError>((claimed, false))
            })
            .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::error!(recipient = %ep.agency, error = %e, "push: claim failed");
                    (Vec::new(), false)
                }
                Err(_) => (Vec::new(), false),
            }
        };
        if !claims.is_empty() {
            for c in claims {
                in_flight.spawn(attempt(
                    hub.clone(),
                    ep.clone(),
                    idle.clone(),
                    settings.clone(),
                    c,
                ));
            }
            if in_flight.len() >= settings.concurrency.max(1) {
                if let Some(r) = in_flight.join_next().await {
                    record(&mut circuit, r);
                }
            }
            continue;
        }
        if !in_flight.is_empty() {
            // Nothing more is due now: wait for an attempt to finish, or look again after a
            // poll interval (a slow attempt must not hold up what arrives meanwhile).
            tokio::select! {
                r = in_flight.join_next() => {
                    if let Some(r) = r {
                        record(&mut circuit, r);
                    }
                }
                _ = tokio::time::sleep(settings.poll) => {}
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
            _ = stop.changed() => {}
        }
    }
    // Shutdown: the attempts in flight finish and are recorded.
    while let Some(r) = in_flight.join_next().await {
        record(&mut circuit, r);
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
