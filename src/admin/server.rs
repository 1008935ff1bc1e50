//! The admin listener's server: TCP (or TLS with the hub's certificate), HTTP/1.1, the
//! routes of [`super`], and the drain on shutdown.
//!
//! Requests are small (forms, JSON, no packages): bodies over [`MAX_BODY`] are refused, and
//! at most [`MAX_CONNECTIONS`] connections are served at once. Every response carries
//! `Truc-Request-Id` and `Cache-Control: no-store`; the dashboard's pages add the headers
//! that keep them out of frames and off other origins' scripts (`dashboard.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use super::api::{self, AdminRequest};
use super::auth::{self, Auth};
use super::dashboard;
use crate::hub::Hub;
use crate::hub::api::ApiResponse;
use crate::hub::problem::Problem;
use crate::hub::server::{REQUEST_ID, ServerError};

/// Largest request body.
pub const MAX_BODY: u64 = 1 << 20;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest wait for a request head or body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What every admin request can reach.
pub struct Context {
    /// The hub.
    pub hub: Arc<Hub>,
    /// The token and sessions.
    pub auth: Auth,
    /// Set once the agencies' API listener is bound (for `/readyz`).
    pub api_ready: Arc<AtomicBool>,
    /// Whether this listener speaks TLS (cookies are `Secure` then).
    pub tls: bool,
}

/// A bound admin listener.
pub struct AdminServer {
    ctx: Arc<Context>,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    local_addr: SocketAddr,
}

impl AdminServer {
    /// Binds `addr`; TLS with the hub's certificate when `[admin] tls` is set.
    pub async fn bind(
        hub: Arc<Hub>,
        addr: SocketAddr,
        auth: Auth,
        api_ready: Arc<AtomicBool>,
    ) -> Result<AdminServer, ServerError> {
        let acceptor = if hub.config.admin.tls {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
                .with_no_client_auth()
                .with_single_cert(hub.tls_chain.clone(), hub.tls_key.clone_key())?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(TlsAcceptor::from(Arc::new(config)))
        } else {
            None
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(AdminServer {
            ctx: Arc::new(Context {
                hub,
                auth,
                api_ready,
                tls: acceptor.is_some(),
            }),
            listener,
            acceptor,
            local_addr,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then lets requests in progress finish (within the
    /// hub's shutdown grace) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let (stop_tx, stop_rx) = watch::channel(false);
        let ids = Arc::new(AtomicU64::new(1));
        let mut connections = JoinSet::new();
        tracing::info!(addr = %self.local_addr, tls = self.acceptor.is_some(), "admin listener accepting");
        tokio::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let permit = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let (tcp, peer) = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (ctx, acceptor, mut stop, ids) = (
                self.ctx.clone(),
                self.acceptor.clone(),
                stop_rx.clone(),
                ids.clone(),
            );
            connections.spawn(async move {
                let _permit = permit;
                let _ = tcp.set_nodelay(true);
                let service = service_fn(move |req| {
                    let (ctx, ids) = (ctx.clone(), ids.clone());
                    async move { Ok::<_, Infallible>(request(ctx, ids, peer, req).await) }
                });
                let mut http = http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(READ_TIMEOUT)
                    .keep_alive(true);
                macro_rules! drive {
                    ($io:expr) => {{
                        let conn = http.serve_connection(TokioIo::new($io), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop.changed() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    }};
                }
                match acceptor {
                    Some(a) => match tokio::time::timeout(READ_TIMEOUT, a.accept(tcp)).await {
                        Ok(Ok(tls)) => drive!(tls),
                        _ => tracing::debug!(%peer, "admin TLS handshake failed"),
                    },
                    None => drive!(tcp),
                }
            });
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        let grace = self.ctx.hub.config.limits.shutdown_grace;
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            connections.abort_all();
        }
        tracing::info!("admin listener stopped");
    }
}

/// One request, always a response.
async fn request(
    ctx: Arc<Context>,
    ids: Arc<AtomicU64>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let id = format!("adm{:08x}", ids.fetch_add(1, Ordering::Relaxed));
    let span = tracing::info_span!(
        "admin",
        id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        %peer,
    );
    let answer = async {
        let (parts, body) = req.into_parts();
        if body.size_hint().lower() > MAX_BODY {
            return ApiResponse::problem(Problem::payload_too_large(MAX_BODY));
        }
        let body = match tokio::time::timeout(READ_TIMEOUT, read_body(body)).await {
            Ok(Some(b)) => b,
            Ok(None) => return ApiResponse::problem(Problem::payload_too_large(MAX_BODY)),
            Err(_) => return ApiResponse::problem(Problem::request_timeout(READ_TIMEOUT)),
        };
        let req = AdminRequest {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
            now: ctx.hub.clock.now(),
            peer,
            request_id: id.clone(),
        };
        let span = tracing::Span::current();
        let c = ctx.clone();
        match tokio::task::spawn_blocking(move || span.in_scope(|| handle(&c, &req))).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "admin handler failed");
                ApiResponse::problem(Problem::internal(
                    "the admin handler failed; the hub's log has the details under the request id",
                ))
            }
        }
    }
    .instrument(span.clone())
    .await;
    span.in_scope(|| tracing::info!(status = answer.status.as_u16(), "admin request done"));
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        headers.append(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, v);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The whole body, `None` past [`MAX_BODY`] or unreadable.
async fn read_body(mut body: Incoming) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if (buf.len() + data.len()) as u64 > MAX_BODY {
                return None;
            }
            buf.extend_from_slice(&data);
        }
    }
    Some(buf.freeze())
}

/// Dispatch: the open endpoints, the login, then everything else authenticated.
pub fn handle(ctx: &Context, req: &AdminRequest) -> ApiResponse {
    let hub = &ctx.hub;
    match (req.method.clone(), req.path.as_str()) {
        (Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (Method::GET, "/readyz") => return ready(ctx),
        (Method::GET, "/metrics") => {
            return match hub.store.queues() {
                Ok(q) => ApiResponse {
                    status: StatusCode::OK,
                    headers: vec![(
                        CONTENT_TYPE,
                        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                    )],
                    body: hub.metrics.render(&q, req.now).into_bytes(),
                },
                Err(e) => ApiResponse::problem(super::ops::problem(e)),
            };
        }
        (Method::POST, "/login") => return login(ctx, req),
        (Method::POST, "/logout") => {
            ctx.auth.logout(&req.headers);
            let mut r = redirect("/login");
            if let Ok(v) = HeaderValue::from_str(&auth::session_clear_cookie()) {
                r = r.with_header(SET_COOKIE, v);
            }
            return r;
        }
        (Method::GET, "/login") => return dashboard::login_page(None),
        _ => {}
    }
    let op = ctx.auth.authenticate(&req.headers, req.peer.ip(), req.now);
    let api = req.path.starts_with("/admin/api/");
    let Some(op) = op else {
        if api {
            return ApiResponse::problem(Problem::unauthenticated(
                "the admin API needs Authorization: Bearer <the admin token> (see [admin] \
                 token_file; by default <data>/admin.token)",
            ));
        }
        return redirect("/login");
    };
    if req.method != Method::GET {
        let form = (!api).then(|| req.form());
        let sent = form
            .as_ref()
            .and_then(|f| f.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()));
        if let Err(p) = auth::check_csrf(&op, &req.headers, sent) {
            tracing::warn!(actor = %op.actor, detail = %p.detail, "admin: CSRF check failed");
            return if api {
                ApiResponse::problem(p)
            } else {
                dashboard::problem_page(hub, &op, &p)
            };
        }
    }
    if api {
        api::handle(hub, &op, req)
    } else {
        dashboard::handle(hub, &op, req)
    }
}

fn login(ctx: &Context, req: &AdminRequest) -> ApiResponse {
    let form = req.form();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match ctx
        .auth
        .login(field("token").unwrap_or(""), field("name"), req.now)
    {
        Some(session) => {
            tracing::info!(peer = %req.peer, "admin: dashboard login");
            let cookie = auth::session_set_cookie(&session, ctx.tls);
            let mut r = redirect("/");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r = r.with_header(SET_COOKIE, v);
            }
            r
        }
        None => {
            tracing::warn!(peer = %req.peer, "admin: dashboard login refused (wrong token)");
            let mut page = dashboard::login_page(Some("That is not the admin token."));
            page.status = StatusCode::UNAUTHORIZED;
            page
        }
    }
}

/// `/readyz`: the store is open and healthy, the API listener is bound, trust material is
/// loaded.
fn ready(ctx: &Context) -> ApiResponse {
    let hub = &ctx.hub;
    let store = !hub.store.is_failed() && hub.store.paused().is_ok();
    let listeners = ctx.api_ready.load(Ordering::SeqCst);
    let trust = !hub.trust.get().anchors().is_empty();
    let ok = store && listeners && trust;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    ApiResponse::json(
        status,
        &serde_json::json!({
            "ready": ok,
            "checks": { "store": store, "listeners": listeners, "trust": trust },
        }),
    )
}

fn text(status: StatusCode, body: &str) -> ApiResponse {
    ApiResponse {
        status,
        headers: vec![(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body: body.as_bytes().to_vec(),
    }
}

/// `303 See Other` to `to` (after a form post, and to the login page).
pub fn redirect(to: &str) -> ApiResponse {
    let mut r = text(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers.push((LOCATION, v));
    }
    r
}
