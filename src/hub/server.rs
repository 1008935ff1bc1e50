//! The HTTPS server: TCP accept, TLS, HTTP/1.1, the per-request pipeline and the drain.
//!
//! # Per connection
//! 1. Accepting waits for one of `limits.max_connections` permits: at the limit the hub
//!    stops accepting and further connections wait in the kernel's listen backlog (they are
//!    not refused); a permit is returned when its connection closes.
//! 2. TLS 1.3 or 1.2 (rustls, ring), ALPN `http/1.1`, within `limits.header_read_timeout`.
//!    A client certificate is requested but optional (so bearer tokens work); one that is
//!    sent must be trusted for TLS client authentication by the hub's trust store (anchors,
//!    intermediates, CRLs) or the handshake fails.
//! 3. hyper HTTP/1.1 with keep-alive. hyper's `header_read_timeout` bounds the wait for each
//!    request head; an idle watch closes a connection on which nothing moved for
//!    `limits.idle_timeout` while no request was in progress.
//!
//! # Per request
//! A request id (`Truc-Request-Id` on every response, and the `request` tracing span), then
//! in this order: authentication ([`super::auth`], `401`), the agency's rate limit
//! ([`super::limit`], `429`), the declared length (`413` before reading), the body read
//! within `limits.body_read_timeout` (`408`) and never past `limits.max_body` (`413`), and
//! last the API handler ([`super::api::handle`]) on a blocking thread. A refusal sent before
//! the body was read entirely also closes the connection (`Connection: close`), so an unread
//! body is never taken for the next request.
//!
//! # Shutdown
//! [`Server::run`] returns once its `shutdown` future completes and the drain is over: the
//! listener is closed, every connection is told to finish (hyper's graceful shutdown: idle
//! connections close at once, a request in progress gets its response, then its connection
//! closes), and after `limits.shutdown_grace` the connections still open are dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONNECTION};
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::Timestamp;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use super::api::{self, ApiRequest, ApiResponse};
use super::limit::RateLimiter;
use super::problem::Problem;
use super::{Hub, TrustCell, auth};
use crate::pki::{Certificate, Purpose};

/// The response header carrying the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("truc-request-id");

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The TLS certificate and key cannot be used.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// What the drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Connections open when shutdown began.
    pub open: usize,
    /// Connections still open after the grace period, dropped.
    pub aborted: usize,
}

/// A bound HTTPS server, ready to [`run`](Server::run).
pub struct Server {
    /// The state every request uses.
    shared: Arc<Shared>,
    /// The TLS configuration, with the client-certificate verifier; `None` for the plain
    /// HTTP listener of the VXP front door, which serves nothing else.
    acceptor: Option<TlsAcceptor>,
    /// Bound before `run`, so the caller knows the address (port 0) before serving.
    listener: TcpListener,
    local_addr: SocketAddr,
}

/// State shared by every connection of a server.
struct Shared {
    hub: Arc<Hub>,
    /// Per-agency token buckets; held only for one `check`.
    limiter: Mutex<RateLimiter>,
    /// Request ids: a random per-process prefix, then a counter.
    id_prefix: u32,
    next_id: AtomicU64,
}

impl Shared {
    fn request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{n:08x}", self.id_prefix)
    }
}

/// Monotonic time for timeouts and rate limits: tokio's clock (which tests may pause), never
/// the wall clock.
fn monotonic_now() -> Instant {
    Instant::now()
}

impl Server {
    /// Binds `addr` and prepares TLS from the hub's certificate, key and trust store.
    pub async fn bind(hub: Arc<Hub>, addr: SocketAddr) -> Result<Server, ServerError> {
        let tls = tls_config(
            hub.tls_chain.clone(),
            hub.tls_key.clone_key(),
            hub.trust.clone(),
        )?;
        Self::bind_with(hub, addr, Some(TlsAcceptor::from(Arc::new(tls)))).await
    }

    /// Binds `addr` for plain HTTP, serving the VXP front door only (`[vxp] http_listen`,
    /// for agency systems on closed networks); every other path is `404`.
    pub async fn bind_plain(hub: Arc<Hub>, addr: SocketAddr) -> Result<Server, ServerError> {
        Self::bind_with(hub, addr, None).await
    }

    async fn bind_with(
        hub: Arc<Hub>,
        addr: SocketAddr,
        acceptor: Option<TlsAcceptor>,
    ) -> Result<Server, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let limits = &hub.config.limits;
        let limiter = RateLimiter::new(limits.rate_per_second, limits.rate_burst);
        let mut prefix = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut prefix);
        Ok(Server {
            shared: Arc::new(Shared {
                hub,
                limiter: Mutex::new(limiter),
                id_prefix: u32::from_be_bytes(prefix),
                next_id: AtomicU64::new(1),
            }),
            acceptor,
            listener,
            local_addr,
        })
    }

    /// The address actually bound (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then drains (see the module docs) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Drained {
        let limits = self.shared.hub.config.limits.clone();
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tracing::info!(addr = %self.local_addr, "accepting connections");
        tokio::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let permit = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let conn = connection(
                self.shared.clone(),
                self.acceptor.clone(),
                tcp,
                peer,
                stop_rx.clone(),
                permit,
            );
            connections.spawn(conn.instrument(tracing::debug_span!("conn", %peer)));
        }
        drop(self.listener);
        while connections.try_join_next().is_some() {}
        let open = connections.len();
        tracing::info!(
            open,
            grace = ?limits.shutdown_grace,
            "shutting down: no longer accepting; draining connections"
        );
        let _ = stop_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        let aborted = match tokio::time::timeout(limits.shutdown_grace, drain).await {
            Ok(()) => 0,
            Err(_) => {
                let n = connections.len();
                tracing::warn!(
                    connections = n,
                    "grace period over: dropping the connections still open"
                );
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                n
            }
        };
        tracing::info!(open, aborted, "drained");
        Drained { open, aborted }
    }
}

/// The signals `truc serve` acts on, installed before the server announces itself so none is
/// missed.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT and names it; each SIGHUP meanwhile calls `on_hangup`.
    pub async fn terminated(mut self, on_hangup: impl Fn()) -> &'static str {
        loop {
            tokio::select! {
                _ = self.term.recv() => return "SIGTERM",
                _ = self.int.recv() => return "SIGINT",
                _ = self.hup.recv() => on_hangup(),
            }
        }
    }
}

/// The TLS server configuration: TLS 1.3 and 1.2 with the ring provider, `chain` and `key`
/// as the server identity, client certificates optional and checked against `trust`.
pub fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    trust: Arc<TrustCell>,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ClientVerifier::new(trust, &provider));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts anonymous clients, and client certificates whose path the trust store validates
/// for TLS client authentication (at rustls's `now`; legacy algorithms never, whatever the
/// agency's signing policy). Which agency a certificate stands for is decided per request
/// ([`auth::authenticate`]).
#[derive(Debug)]
struct ClientVerifier {
    /// Read at each handshake, so a reload applies to the next connection.
    trust: Arc<TrustCell>,
    algorithms: WebPkiSupportedAlgorithms,
    /// The anchors' subjects, sent as acceptable CAs.
    hints: Vec<DistinguishedName>,
}

impl ClientVerifier {
    fn new(trust: Arc<TrustCell>, provider: &CryptoProvider) -> Self {
        let mut roots = RootCertStore::empty();
        for anchor in trust.get().anchors() {
            let _ = roots.add(CertificateDer::from(anchor.der().to_vec()));
        }
        ClientVerifier {
            hints: roots.subjects(),
            algorithms: provider.signature_verification_algorithms,
            trust,
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let bad = |_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
        let leaf = Certificate::from_der(end_entity.to_vec()).map_err(bad)?;
        let extra = intermediates
            .iter()
            .map(|c| Certificate::from_der(c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let now = Timestamp::from_second(secs)
            .map_err(|e| rustls::Error::General(format!("clock: {e}")))?;
        match self
            .trust
            .get()
            .validate(&leaf, &extra, Purpose::TlsClient, false, now)
        {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(u) => {
                tracing::info!(code = u.code(), reason = %u, "client certificate refused");
                let e = match u.code() {
                    "certificate-expired" => CertificateError::Expired,
                    "certificate-not-yet-valid" => CertificateError::NotValidYet,
                    "certificate-revoked" => CertificateError::Revoked,
                    "unknown-issuer" | "untrusted-root" | "no-trust-anchor" => {
                        CertificateError::UnknownIssuer
                    }
                    "key-usage" | "extended-key-usage" => CertificateError::InvalidPurpose,
                    "certificate-signature-invalid" => CertificateError::BadSignature,
                    "malformed-certificate" => CertificateError::BadEncoding,
                    _ => CertificateError::ApplicationVerificationFailure,
                };
                Err(rustls::Error::InvalidCertificate(e))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the handshake established about a connection.
struct Peer {
    /// The client's certificate chain as sent, parsed (empty: anonymous).
    certs: Vec<Certificate>,
    /// A plain HTTP connection (the VXP listener): only VXP paths are served.
    plain: bool,
}

/// One connection, from TLS to close.
async fn connection(
    shared: Arc<Shared>,
    acceptor: Option<TlsAcceptor>,
    tcp: TcpStream,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let _open = shared.hub.metrics.connection();
    let limits = shared.hub.config.limits.clone();
    let Some(acceptor) = acceptor else {
        let peer = Arc::new(Peer {
            certs: Vec::new(),
            plain: true,
        });
        return serve_io(shared, tcp, peer, addr, stop).await;
    };
    let tls = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.hub.metrics.tls_handshake(false);
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.hub.metrics.tls_handshake(false);
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    shared.hub.metrics.tls_handshake(true);
    let session = tls.get_ref().1;
    let version = session.protocol_version().map(|v| format!("{v:?}"));
    // The verifier parsed each certificate already; one that fails now closes the connection
    // rather than letting an intermediate stand in for the leaf.
    let certs = match session
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| Certificate::from_der(c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(certs) => certs,
        Err(e) => {
            tracing::warn!(error = %e, "client certificate unreadable after the handshake");
            return;
        }
    };
    tracing::debug!(
        tls = version.as_deref().unwrap_or("?"),
        client_certificate = certs.first().map(|c| c.subject.as_str()),
        "TLS established"
    );
    let peer = Arc::new(Peer {
        certs,
        plain: false,
    });
    serve_io(shared, tls, peer, addr, stop).await;
}

/// HTTP/1.1 on an established stream (TLS, or plain TCP for the VXP listener), until it
/// closes, idles out or the drain ends it.
async fn serve_io<T>(
    shared: Arc<Shared>,
    stream: T,
    peer: Arc<Peer>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.hub.config.limits.clone();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            let (shared, peer, activity) = (shared.clone(), peer.clone(), activity.clone());
            async move { Ok::<_, Infallible>(request(shared, peer, activity, addr, req).await) }
        })
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = idle_watch(activity, limits.idle_timeout);
    tokio::pin!(idle);
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection closed on error");
                }
                break;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut idle => {
                tracing::debug!(idle = ?limits.idle_timeout, "idle timeout: closing");
                break;
            }
        }
    }
}

/// When a connection last moved bytes, and whether a request is in progress.
struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last read or write that moved bytes.
    last_ms: AtomicU64,
    /// Requests being handled.
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: monotonic_now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = monotonic_now().duration_since(self.start).as_millis();
        self.last_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A request in progress; dropping it ends it.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Completes when the connection has been idle (no request, no bytes) for `idle`.
async fn idle_watch(activity: Arc<Activity>, idle: Duration) {
    loop {
        let now = monotonic_now();
        let busy = activity.busy.load(Ordering::Relaxed) > 0;
        let due = activity.last() + idle;
        if !busy && now >= due {
            return;
        }
        tokio::time::sleep_until(if busy { now + idle } else { due }).await;
    }
}

/// The TLS stream, recording activity.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.activity.touch();
            }
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.activity.touch();
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One request: the pipeline of the module docs, always a response.
async fn request(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    activity: Arc<Activity>,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let _busy = activity.busy();
    let started = monotonic_now();
    let id = shared.request_id();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        %addr,
        agency = tracing::field::Empty,
    );
    let submission = req.method() == http::Method::POST && req.uri().path() == "/api/v1/packages";
    let (api, close) = pipeline(&shared, &peer, req, &id)
        .instrument(span.clone())
        .await;
    let status = api.status;
    shared.hub.metrics.http_request(status.as_u16());
    if submission && !status.is_success() {
        // Every refusal of a submission, from 401 before the body to the handler's problems.
        shared.hub.metrics.refused_with(&api.body);
    }
    let mut response = Response::new(Full::new(Bytes::from(api.body)));
    *response.status_mut() = api.status;
    let headers = response.headers_mut();
    for (name, value) in api.headers {
        headers.append(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, v);
    }
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            close,
            "request done"
        );
    });
    response
}

/// Authentication, limits, body, handler. Returns the response and whether to close the
/// connection after it.
async fn pipeline(
    shared: &Shared,
    peer: &Peer,
    req: Request<Incoming>,
    request_id: &str,
) -> (ApiResponse, bool) {
    let hub = &shared.hub;
    let limits = &hub.config.limits;
    let now = hub.clock.now();
    // A refusal before the body has been read closes the connection: the unread body must
    // not be parsed as the next request.
    let unread_body = !req.body().is_end_stream();
    let refuse = |p: Problem| (ApiResponse::problem(p), unread_body);

    // The VXP front door authenticates by its own signed headers.
    let prefix = &hub.config.vxp.prefix;
    if crate::vxp::under(prefix, req.uri().path()) {
        return vxp(shared, req, now).await;
    }
    if peer.plain {
        return refuse(Problem::not_found(format!(
            "this plain-HTTP listener serves only the VXP API, under {prefix}"
        )));
    }

    let directory = hub.directory();
    let who = match auth::authenticate(
        &directory,
        &hub.trust.get(),
        &peer.certs,
        req.headers().get(AUTHORIZATION),
        now,
    ) {
        Ok(who) => who,
        Err(p) => {
            tracing::info!(detail = %p.detail, "unauthenticated");
            return refuse(p);
        }
    };
    tracing::Span::current().record("agency", who.agency.as_str());
    let limited = match shared.limiter.lock() {
        Ok(mut l) => l.check(&who.agency, monotonic_now().into_std()),
        Err(poisoned) => poisoned
            .into_inner()
            .check(&who.agency, monotonic_now().into_std()),
    };
    if let Err(wait) = limited {
        return refuse(Problem::rate_limited(wait));
    }
    if req.body().size_hint().lower() > limits.max_body {
        return refuse(Problem::payload_too_large(limits.max_body));
    }

    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(
        limits.body_read_timeout,
        read_body(body, limits.max_body),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => {
            return (
                ApiResponse::problem(Problem::payload_too_large(limits.max_body)),
                true,
            );
        }
        Ok(Err(BodyError::Read(e))) => {
            tracing::info!(error = %e, "request body unreadable");
            return (
                ApiResponse::problem(Problem::bad_request("the request body could not be read")),
                true,
            );
        }
        Err(_) => {
            tracing::info!(timeout = ?limits.body_read_timeout, "request body too slow");
            return (
                ApiResponse::problem(Problem::request_timeout(limits.body_read_timeout)),
                true,
            );
        }
    };

    let api_request = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        agency: who.agency,
        headers: parts.headers,
        body,
        now,
        request_id: request_id.to_owned(),
    };
    let hub = hub.clone();
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(|| api::handle(&hub, api_request)))
        .await
    {
        Ok(response) => (response, false),
        Err(e) => {
            tracing::error!(error = %e, "API handler failed");
            (
                ApiResponse::problem(Problem::internal(
                    "the hub failed to handle the request; its log has the details under \
                     the request id",
                )),
                false,
            )
        }
    }
}

/// A VXP request: the body read under the same limits, then [`crate::vxp::handle`] on a
/// blocking thread. Always `200` with one JSON object (or downloadEdoc's raw bytes).
async fn vxp(shared: &Shared, req: Request<Incoming>, now: jiff::Timestamp) -> (ApiResponse, bool) {
    let hub = shared.hub.clone();
    let limits = &hub.config.limits;
    let (parts, body) = req.into_parts();
    let answer = |r: crate::vxp::VxpResponse| ApiResponse {
        status: http::StatusCode::OK,
        headers: vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(r.content_type),
        )],
        body: r.body,
    };
    let path = parts.uri.path().to_owned();
    let body = match tokio::time::timeout(
        limits.body_read_timeout,
        read_body(body, limits.max_body),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            let why = match e {
                BodyError::TooLarge => format!("the body is larger than {} bytes", limits.max_body),
                BodyError::Read(e) => format!("the body could not be read: {e}"),
            };
            return (answer(crate::vxp::failure(&path, "413", &why)), true);
        }
        Err(_) => {
            let why = "the body took too long to arrive";
            return (answer(crate::vxp::failure(&path, "408", why)), true);
        }
    };
    let span = tracing::Span::current();
    let failed_path = path.clone();
    let handled = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let req = crate::vxp::VxpRequest {
                method: &parts.method,
                path: &path,
                headers: &parts.headers,
                body: &body,
                now,
            };
            crate::vxp::handle(&hub, &req)
        })
    })
    .await;
    match handled {
        Ok(r) => (answer(r), false),
        Err(e) => {
            tracing::error!(error = %e, "VXP handler failed");
            let r = crate::vxp::failure(
                &failed_path,
                "500",
                "the hub failed to handle the request; its log has the details",
            );
            (answer(r), false)
        }
    }
}

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// The whole body, refused as soon as it grows past `max` bytes.
async fn read_body(mut body: Incoming, max: u64) -> Result<Bytes, BodyError> {
    // Preallocate what was declared, but not a declared 64 MiB before any byte arrived:
    // at most 1 MiB first. Once the body outgrows that, the client has shown it sends, and
    // the rest of the declared length is reserved at once, so a 5 MB package takes 5 MB
    // (not the 8 MiB that doubling would leave, after copying 7 MiB on the way), in a
    // block-aligned buffer when it is large enough for the store's O_DIRECT writes.
    let exact = body.size_hint().exact().filter(|&n| n <= max);
    let first = exact.unwrap_or(0).min(1 << 20);
    let mut buf = BytesMut::with_capacity(usize::try_from(first).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            let len = (buf.len() as u64).saturating_add(data.len() as u64);
            if len > max {
                return Err(BodyError::TooLarge);
            }
            if len > buf.capacity() as u64 {
                if let Some(rest) = exact
                    .filter(|&n| n >= len)
                    .and_then(|n| usize::try_from(n).ok())
                {
                    if rest as u64 >= crate::store::log::DIRECT_MIN {
                        // Block-aligned, so the store writes it with O_DIRECT from here.
                        let mut aligned = crate::store::log::aligned_buffer(rest);
                        aligned.extend_from_slice(&buf);
                        buf = aligned;
                    } else {
                        buf.reserve(rest - buf.len());
                    }
                }
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
