//! A small blocking HTTP client for the hub's APIs: the agency client (`truc send`,
//! `inbox`, `receipts`, `status send`) and the operators' commands.
//!
//! One [`Client`] talks to one hub: `https://` with the hub's CA as the **only** root (the
//! system's roots are never consulted) and, optionally, a TLS client certificate; or plain
//! `http://` (the admin API on loopback), where no CA is needed. A bearer token, when given,
//! goes in `Authorization` on every request. HTTP/1.1 over hyper and tokio-rustls (ring):
//! the connection is kept alive between requests and opened again when the hub closed it.
//! The connection itself is [`crate::deliver::push::connect`], shared with push delivery.
//!
//! Each call blocks on a private single-threaded tokio runtime, so callers need no runtime.
//!
//! # Errors
//! [`ClientError`] says which step failed: the arguments (a URL that is not `http(s)://`,
//! `https://` without a CA), a local file (CA, certificate, key, token), the TCP connection
//! ("cannot connect to 127.0.0.1:8443: connection refused"), TLS ("certificate not trusted:
//! the hub's certificate does not chain to the CA in ca.pem"), or HTTP. An answer of any
//! status is not an error: the caller reads [`Response::status`] and, for refusals, the
//! problem document ([`Response::problem`]).
//!
//! # Not guaranteed
//! - No retries: a request that fails is reported, not repeated (a POST of a package is
//!   idempotent on the hub's side, so the caller may simply run it again).
//! - No redirects, no proxies, no HTTP/2.
//! - Bodies are read whole into memory, up to [`MAX_BODY`].

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::deliver::push::{ConnectError, connect};

/// The largest answer body read (bytes); the hub's own submission limit is 64 MiB.
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// How long one request may take by default, connection and whole answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How the client proves who it is.
pub enum Auth {
    /// Nothing (the hub answers 401).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// A TLS client certificate (the chain as sent, leaf first) and its key.
    Certificate {
        /// Leaf first, then its issuers.
        chain: Vec<CertificateDer<'static>>,
        /// The leaf's private key.
        key: PrivateKeyDer<'static>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token or the key.
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
            Auth::Certificate { chain, .. } => write!(f, "Certificate({} certs)", chain.len()),
        }
    }
}

impl Auth {
    /// A bearer token read from `path`, surrounding whitespace trimmed.
    pub fn token_file(path: &Path) -> Result<Auth, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::local(format!("cannot read {}: {e}", path.display())))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(ClientError::local(format!(
                "{}: the token file is empty",
                path.display()
            )));
        }
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(ClientError::local(format!(
                "{}: the token is not a valid header value (one line of visible ASCII)",
                path.display()
            )));
        }
        Ok(Auth::Bearer(token.to_owned()))
    }

    /// A TLS client certificate from PEM files: `cert` holds the certificate, optionally
    /// followed by its chain; `key` its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn certificate_files(cert: &Path, key: &Path) -> Result<Auth, ClientError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ClientError::local(format!("{}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(ClientError::local(format!(
                "{}: no CERTIFICATE block",
                cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            ClientError::local(format!("{}: no usable private key: {e}", key.display()))
        })?;
        Ok(Auth::Certificate { chain, key })
    }
}

/// A failure to get an answer from the hub.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments: the URL, a missing CA.
    #[error("{0}")]
    Usage(String),
    /// A local file or resource that cannot be used.
    #[error("{0}")]
    Local(String),
    /// The TCP connection failed.
    #[error("cannot connect to {addr}: {detail}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The TLS handshake failed, or the hub refused the client certificate.
    #[error("TLS with {addr}: {detail}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// What went wrong, in words.
        detail: String,
    },
    /// The hub did not speak HTTP/1.1 as expected (closed the connection, bad answer).
    #[error("HTTP with {addr}: {detail}")]
    Http {
        /// `host:port`.
        addr: String,
        /// What went wrong.
        detail: String,
    },
    /// No whole answer within the timeout.
    #[error("no answer from {addr} within {seconds} s")]
    Timeout {
        /// `host:port`.
        addr: String,
        /// The timeout.
        seconds: u64,
    },
}

impl ClientError {
    fn local(msg: String) -> Self {
        ClientError::Local(msg)
    }

    /// A usage error: the arguments are wrong.
    pub fn is_usage(&self) -> bool {
        matches!(self, ClientError::Usage(_))
    }

    /// A transport failure: the hub could not be reached or talked to.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Tls { .. }
                | ClientError::Http { .. }
                | ClientError::Timeout { .. }
        )
    }
}

/// An answer of the hub, whatever its status.
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers (boxed: an error carrying a `Response` stays small).
    pub headers: Box<HeaderMap>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The RFC 9457 problem document of a refusal, if the body is one.
    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_slice::<Problem>(&self.body)
            .ok()
            .filter(|p| !p.code.is_empty())
    }

    /// The body as JSON (for the listings).
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "the hub's answer (HTTP {}) is not JSON: {e}",
                self.status.as_u16()
            )
        })
    }
}

/// A problem document (`application/problem+json`) as the hub sends it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Problem {
    /// The stable code (`invalid-package`, `signature-invalid`, …).
    #[serde(default)]
    pub code: String,
    /// What happened.
    #[serde(default)]
    pub detail: String,
    /// Every problem found, for validation errors.
    #[serde(default)]
    pub problems: Vec<ProblemItem>,
}

/// One item of a problem's `problems`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ProblemItem {
    /// Where.
    #[serde(default)]
    pub path: String,
    /// Its code.
    #[serde(default)]
    pub code: String,
    /// What.
    #[serde(default)]
    pub detail: String,
}

/// Where a [`Client`] sends its requests, for callers that drive their own connections
/// ([`crate::deliver::push::connect`]) on their own runtime: `truc bench`.
#[derive(Clone)]
pub struct Target {
    /// Connections go here.
    pub url: Uri,
    /// `host[:port]`, for `Host`.
    pub authority: String,
    /// Prefixed to every request path (no trailing `/`).
    pub base_path: String,
    /// `None` for `http://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `Authorization`, when the credential is a token.
    pub bearer: Option<HeaderValue>,
}

/// A client for one hub. Not `Sync`: one request at a time, on one kept-alive connection.
pub struct Client {
    /// `scheme://authority`, for the `Host` header and messages.
    authority: String,
    /// The URL's path, without a trailing `/`, prefixed to every request path.
    base_path: String,
    /// The URL connections are opened to.
    url: Uri,
    /// `None` for `http://`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Where the roots came from, for messages.
    ca: Option<PathBuf>,
    bearer: Option<HeaderValue>,
    /// Sent with every request ([`Client::with_header`]).
    extra: Vec<(http::HeaderName, HeaderValue)>,
    timeout: Duration,
    runtime: tokio::runtime::Runtime,
    /// The kept-alive connection, if one is open.
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .field("bearer", &self.bearer.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the hub at `hub_url` (`https://host[:port][/prefix]` or `http://…`).
    /// `ca` (PEM file or directory) holds the roots the hub's TLS certificate must chain to,
    /// required for `https://` and ignored for `http://`; a client certificate in `auth`
    /// needs `https://`.
    pub fn new(hub_url: &str, ca: Option<&Path>, auth: Auth) -> Result<Client, ClientError> {
        let url: Uri = hub_url
            .parse()
            .map_err(|e| ClientError::Usage(format!("--hub {hub_url:?}: not a URL: {e}")))?;
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(ClientError::Usage(format!(
                    "--hub {hub_url:?}: expected https://HOST[:PORT] or http://HOST[:PORT]"
                )));
            }
        };
        let Some(authority) = url.authority() else {
            return Err(ClientError::Usage(format!("--hub {hub_url:?}: no host")));
        };
        if url.query().is_some() {
            return Err(ClientError::Usage(format!(
                "--hub {hub_url:?}: a hub URL has no query"
            )));
        }
        let authority = authority.as_str().to_owned();
        let base_path = url.path().trim_end_matches('/').to_owned();
        let (bearer, client_cert) = match auth {
            Auth::None => (None, None),
            Auth::Bearer(token) => {
                let v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    ClientError::local("the token is not a valid header value".into())
                })?;
                (Some(v), None)
            }
            Auth::Certificate { chain, key } => (None, Some((chain, key))),
        };
        let tls = if https {
            let Some(ca) = ca else {
                return Err(ClientError::Usage(format!(
                    "--ca is required for {hub_url}: the hub's CA (PEM) is the only root its \
                     TLS certificate is checked against"
                )));
            };
            Some(Arc::new(tls_config(ca, client_cert)?))
        } else {
            if client_cert.is_some() {
                return Err(ClientError::Usage(format!(
                    "--hub {hub_url}: a TLS client certificate needs an https:// URL"
                )));
            }
            None
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::local(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Client {
            authority,
            base_path,
            url,
            tls,
            ca: ca.map(Path::to_path_buf),
            bearer,
            extra: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            runtime,
            conn: None,
        })
    }

    /// The same client sending `name: value` with every request (ignored if either is not
    /// a valid header).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.extra.push((n, v));
        }
        self
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where this client's requests go, and with what credential.
    pub fn target(&self) -> Target {
        Target {
            url: self.url.clone(),
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            tls: self.tls.clone(),
            bearer: self.bearer.clone(),
        }
    }

    /// `GET path` (`/api/v1/...`, with its query).
    pub fn get(&mut self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, path, None)
    }

    /// `POST path` with `body` of `content_type`.
    pub fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Response, ClientError> {
        self.request(Method::POST, path, Some((content_type, body)))
    }

    /// Any request; the answer whatever its status.
    pub fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response, ClientError> {
        let addr = self.addr();
        let target = format!("{}{path}", self.base_path);
        let mut req = Request::builder()
            .method(method)
            .uri(target.as_str())
            .header(http::header::HOST, self.authority.as_str())
            .header(
                http::header::USER_AGENT,
                concat!("truc/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(b) = &self.bearer {
            req = req.header(http::header::AUTHORIZATION, b.clone());
        }
        for (name, value) in &self.extra {
            req = req.header(name, value.clone());
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Usage(format!("request {target:?}: {e}")))?;
        let timeout = self.timeout;
        let reused = self.conn.take();
        let (url, tls, ca) = (self.url.clone(), self.tls.clone(), self.ca.clone());
        let outcome = self.runtime.block_on(async move {
            tokio::time::timeout(timeout, exchange(reused, &url, tls, ca.as_deref(), req)).await
        });
        match outcome {
            Err(_) => Err(ClientError::Timeout {
                addr,
                seconds: timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok((response, conn))) => {
                self.conn = conn;
                Ok(response)
            }
        }
    }

    fn addr(&self) -> String {
        let host = self.url.host().unwrap_or_default();
        let port = self
            .url
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        format!("{host}:{port}")
    }
}

/// Sends `req` on `reused` if it is still open, else on a new connection; the answer and
/// the connection to keep (if the hub keeps it open).
async fn exchange(
    reused: Option<SendRequest<Full<Bytes>>>,
    url: &Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
    ca: Option<&Path>,
    req: Request<Full<Bytes>>,
) -> Result<(Response, Option<SendRequest<Full<Bytes>>>), ClientError> {
    let host = url.host().unwrap_or_default().to_owned();
    let addr = format!(
        "{host}:{}",
        url.port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 })
    );
    let reused = match reused {
        Some(mut s) => s.ready().await.is_ok().then_some(s),
        None => None,
    };
    let mut send = match reused {
        Some(s) => s,
        None => connect(url, tls.as_ref())
            .await
            .map_err(|e| connect_error(e, &host, ca))?,
    };
    let answer =
        send.send_request(req)
            .await
            .map_err(|e| match transport_error(&e, &addr, ca) {
                // A TLS listener answering a plain-HTTP request.
                ClientError::Http { addr, detail } if tls.is_none() => ClientError::Http {
                    addr,
                    detail: format!("{detail} (does the hub want https://?)"),
                },
                other => other,
            })?;
    let (parts, body) = answer.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| ClientError::Http {
            addr: addr.clone(),
            detail: format!("reading the answer: {e}"),
        })?
        .to_bytes()
        .to_vec();
    let keep = (!send.is_closed()).then_some(send);
    Ok((
        Response {
            status: parts.status,
            headers: Box::new(parts.headers),
            body,
        },
        keep,
    ))
}

/// The TLS settings: the roots of `ca` only, and the client certificate if any.
fn tls_config(
    ca: &Path,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, ClientError> {
    let certs = crate::pki::load_all(&[ca])
        .map_err(|e| ClientError::local(format!("--ca {}: {e}", ca.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots
            .add(CertificateDer::from(cert.der().to_vec()))
            .map_err(|e| {
                ClientError::local(format!("--ca {}: {}: {e}", ca.display(), cert.subject))
            })?;
    }
    if roots.is_empty() {
        return Err(ClientError::local(format!(
            "--ca {}: no certificate",
            ca.display()
        )));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::local(format!("TLS settings: {e}")))?
    .with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ClientError::local(format!("the client certificate and key: {e}"))),
    }
}

/// The `rustls::Error` somewhere in an error's chain (looking inside `io::Error`s, whose
/// `source` skips the error they wrap).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        cur = e.source();
    }
    None
}

/// A TLS failure in words: what it means for the user, then rustls's own message.
pub fn explain_tls(e: &rustls::Error, host: &str, ca: Option<&Path>) -> String {
    use rustls::{AlertDescription as A, CertificateError as C};
    let ca = ca.map_or_else(|| "--ca".to_owned(), |p| p.display().to_string());
    let what = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => format!(
                "certificate not trusted: the hub's certificate does not chain to the CA in {ca}"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("certificate not trusted: the hub's certificate is not valid for {host}")
            }
            C::Expired | C::ExpiredContext { .. } => {
                "certificate not trusted: the hub's certificate has expired".to_owned()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate not trusted: the hub's certificate is not valid yet".to_owned()
            }
            C::Revoked => "certificate not trusted: the hub's certificate is revoked".to_owned(),
            _ => "certificate not trusted".to_owned(),
        },
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::CertificateRequired
            | A::AccessDenied,
        ) => "the hub refused the client certificate (is it trusted for TLS client \
                use, valid and not revoked?)"
            .to_owned(),
        _ => "handshake failed".to_owned(),
    };
    format!("{what}: {e}")
}

fn connect_error(e: ConnectError, host: &str, ca: Option<&Path>) -> ClientError {
    match e {
        ConnectError::NoHost => ClientError::Usage("the hub URL has no host".into()),
        ConnectError::Connect { addr, source } => ClientError::Connect {
            addr,
            detail: source.to_string(),
        },
        ConnectError::ServerName { host, detail } => {
            ClientError::Usage(format!("{host} is not a TLS server name: {detail}"))
        }
        ConnectError::Tls { addr, source } => ClientError::Tls {
            detail: match rustls_error(&source) {
                Some(r) => explain_tls(r, host, ca),
                None => source.to_string(),
            },
            addr,
        },
        ConnectError::Http { addr, source } => transport_error(&source, &addr, ca),
    }
}

/// A hyper error after the handshake: a TLS alert (the hub refusing a client certificate
/// arrives here with TLS 1.3) or an HTTP failure.
fn transport_error(e: &hyper::Error, addr: &str, ca: Option<&Path>) -> ClientError {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    if let Some(r) = e.source().and_then(rustls_error) {
        return ClientError::Tls {
            addr: addr.to_owned(),
            detail: explain_tls(r, host, ca),
        };
    }
    let mut detail = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        detail = format!("{detail}: {s}");
        cur = s.source();
    }
    ClientError::Http {
        addr: addr.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs-test")
    }

    #[test]
    fn urls_and_the_ca_are_checked() {
        let ca = certs().join("root-ca.pem");
        let usage = |url: &str, ca: Option<&Path>| match Client::new(url, ca, Auth::None) {
            Err(e) => {
                assert!(e.is_usage(), "{url}: {e}");
                e.to_string()
            }
            Ok(_) => panic!("{url} accepted"),
        };
        assert!(usage("ftp://x", Some(&ca)).contains("expected https://"));
        assert!(usage("127.0.0.1:8443", Some(&ca)).contains("expected https://"));
        assert!(usage("https://127.0.0.1:8443", None).contains("--ca is required"));
        assert!(usage("https://127.0.0.1:8443/?a=1", Some(&ca)).contains("no query"));
        // http:// needs no CA; https:// with one is fine.
        assert!(Client::new("http://127.0.0.1:8444", None, Auth::None).is_ok());
        let c = Client::new("https://127.0.0.1:8443/", Some(&ca), Auth::None).unwrap();
        assert_eq!(
            (c.base_path.as_str(), c.addr()),
            ("", "127.0.0.1:8443".into())
        );
        let c = Client::new("https://hub.example/truc/", Some(&ca), Auth::None).unwrap();
        assert_eq!(
            (c.base_path.as_str(), c.addr()),
            ("/truc", "hub.example:443".into())
        );
        // A client certificate needs TLS.
        let a = certs().join("agencies/000.00.00.H29");
        let auth = Auth::certificate_files(&a.join("client.pem"), &a.join("client.key")).unwrap();
        assert!(matches!(auth, Auth::Certificate { ref chain, .. } if chain.len() == 2));
        assert!(usage_of(Client::new("http://127.0.0.1:1", None, auth)).contains("https://"));
    }

    fn usage_of(r: Result<Client, ClientError>) -> String {
        match r {
            Err(e) if e.is_usage() => e.to_string(),
            other => panic!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn local_files_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let empty = d.path().join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        let e = Auth::token_file(&empty).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let token = d.path().join("token");
        std::fs::write(&token, "abc123\n").unwrap();
        assert!(matches!(Auth::token_file(&token), Ok(Auth::Bearer(t)) if t == "abc123"));
        let e = Auth::token_file(&d.path().join("missing")).unwrap_err();
        assert!(matches!(e, ClientError::Local(_)) && e.to_string().contains("cannot read"));
        let e = Client::new("https://localhost:1", Some(&empty), Auth::None).unwrap_err();
        assert!(matches!(e, ClientError::Local(_)), "{e}");
        let e = Auth::certificate_files(&empty, &empty).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut c = Client::new(&format!("http://127.0.0.1:{port}"), None, Auth::None).unwrap();
        let e = c.get("/api/v1/inbox").unwrap_err();
        assert!(e.is_transport(), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
            "{e}"
        );
    }

    #[test]
    fn tls_failures_are_explained() {
        let ca = Path::new("ca.pem");
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(explain_tls(&e, "localhost", Some(ca)).starts_with(
            "certificate not trusted: the hub's certificate does not chain to the CA in ca.pem"
        ));
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert!(explain_tls(&e, "hub.example", Some(ca)).contains("not valid for hub.example"));
        let e = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert!(explain_tls(&e, "h", None).contains("refused the client certificate"));
    }

    #[test]
    fn problems_are_read_from_refusals() {
        let r = Response {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            headers: Box::default(),
            body: br#"{"type":"urn:truc:problem:invalid-package","status":422,"code":"invalid-package","detail":"2 problems","problems":[{"path":"a/b","code":"missing","detail":"x"}]}"#.to_vec(),
        };
        let p = r.problem().unwrap();
        assert_eq!(
            (p.code.as_str(), p.detail.as_str()),
            ("invalid-package", "2 problems")
        );
        assert_eq!(p.problems[0].path, "a/b");
        let r = Response {
            status: StatusCode::BAD_GATEWAY,
            headers: Box::default(),
            body: b"<html>".to_vec(),
        };
        assert_eq!(r.problem(), None);
    }
}
