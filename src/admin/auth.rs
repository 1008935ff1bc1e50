//! Who may use the admin listener: one bearer token (from a file), and dashboard sessions
//! opened with it.
//!
//! - The token is the first line of `[admin] token_file` (default `<data>/admin.token`,
//!   created with 32 random bytes in hex and mode 0600 on first start). Scripts and
//!   `truc admin` send it as `Authorization: Bearer <token>`; compared in constant time.
//! - The dashboard's login form takes the token once and opens a session: a random id in the
//!   `truc_admin` cookie (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS), kept in memory
//!   for [`SESSION_TTL`], with its own CSRF token that every form posts back.
//! - The actor written into the audit log: `operator:<name>@<address>`, the name from the
//!   `Truc-Operator` header (the CLI sends the user name) or the login form, else
//!   `operator@<address>`.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use jiff::{SignedDuration, Timestamp};

use crate::hub::problem::Problem;

/// How long a dashboard session lasts.
pub const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);

/// The session cookie's name.
pub const COOKIE_NAME: &str = "truc_admin";

/// The header naming the operator (sent by `truc admin`).
pub const OPERATOR_HEADER: &str = "truc-operator";

/// The header carrying the CSRF token (for scripts using a session; forms use the field).
pub const CSRF_HEADER: &str = "truc-csrf";

/// Most sessions kept at once (the oldest go first).
const MAX_SESSIONS: usize = 1024;

/// The admin token and the open sessions.
pub struct Auth {
    /// SHA-256 of the token: compared digest to digest.
    token: [u8; 32],
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
struct Session {
    name: Option<String>,
    csrf: String,
    expires: Timestamp,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// Who, for the audit log.
    pub actor: String,
    /// The session's CSRF token, when authenticated by the session cookie (state-changing
    /// requests must carry it); `None` for the bearer token.
    pub csrf: Option<String>,
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or creating it failed.
    #[error("admin token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// It holds no token.
    #[error(
        "admin token file {0}: empty (put a token of at least 16 characters on its first line)"
    )]
    Empty(String),
    /// The token is too short to be a secret.
    #[error("admin token file {0}: the token is shorter than 16 characters")]
    Short(String),
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A name fit for the audit log: printable ASCII without spaces, at most 64 characters.
fn clean_name(name: &str) -> Option<String> {
    let n: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '@')
        .take(64)
        .collect();
    (!n.is_empty()).then_some(n)
}

fn actor(name: Option<&str>, peer: IpAddr) -> String {
    match name.and_then(clean_name) {
        Some(n) => format!("operator:{n}@{peer}"),
        None => format!("operator@{peer}"),
    }
}

impl Auth {
    /// The token `token` (for tests and embedding).
    pub fn with_token(token: &str) -> Self {
        Auth {
            token: sha256(token.as_bytes()),
            sessions: Mutex::default(),
        }
    }

    /// Reads the token from `path`, creating the file with a random token (mode 0600) if it
    /// does not exist. Returns the auth and whether the file was created.
    pub fn load_or_create(path: &Path) -> Result<(Auth, bool), TokenError> {
        let io = |source| TokenError::Io {
            path: path.display().to_string(),
            source,
        };
        let created = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(format!("{}\n", random_hex(32)).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io(e)),
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(TokenError::Empty(path.display().to_string()));
        }
        if token.len() < 16 {
            return Err(TokenError::Short(path.display().to_string()));
        }
        Ok((Auth::with_token(token), created))
    }

    fn token_matches(&self, candidate: &str) -> bool {
        same(&self.token, &sha256(candidate.trim().as_bytes()))
    }

    /// The caller of a request: the bearer token, else a live session cookie.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        now: Timestamp,
    ) -> Option<Operator> {
        if let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let name = headers.get(OPERATOR_HEADER).and_then(|v| v.to_str().ok());
            return self.token_matches(token).then(|| Operator {
                actor: actor(name, peer),
                csrf: None,
            });
        }
        let id = session_cookie(headers)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let s = sessions.get(id)?.clone();
        if s.expires <= now {
            sessions.remove(id);
            return None;
        }
        Some(Operator {
            actor: format!("{} (dashboard)", actor(s.name.as_deref(), peer)),
            csrf: Some(s.csrf),
        })
    }

    /// Opens a session if `token` is the admin token: its id (the cookie value).
    pub fn login(&self, token: &str, name: Option<&str>, now: Timestamp) -> Option<String> {
        if !self.token_matches(token) {
            return None;
        }
        let id = random_hex(32);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                name: name.and_then(clean_name),
                csrf: random_hex(16),
                expires: now + SESSION_TTL,
            },
        );
        Some(id)
    }

    /// Ends the session of these request headers, if any.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        }
    }
}

/// The `truc_admin` cookie's value.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value opening session `id` (`secure` over TLS).
pub fn session_set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value ending the session.
pub fn session_clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A state-changing request by `op`: with a session, the CSRF token must be `sent` (form
/// field) or in the `Truc-Csrf` header, and an `Origin`, if any, must name this host.
pub fn check_csrf(op: &Operator, headers: &HeaderMap, sent: Option<&str>) -> Result<(), Problem> {
    let Some(expected) = &op.csrf else {
        return Ok(());
    };
    if let (Some(origin), Some(host)) = (
        headers.get(ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin != "null" && origin_host != host {
            return Err(Problem::forbidden(format!(
                "cross-origin request from {origin} refused"
            )));
        }
    }
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match sent.or(header) {
        Some(t) if same(&sha256(t.as_bytes()), &sha256(expected.as_bytes())) => Ok(()),
        _ => Err(Problem::forbidden(
            "the form's CSRF token is missing or stale: reload the page and try again",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn now() -> Timestamp {
        "2026-12-02T06:00:00Z".parse().unwrap()
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn the_token_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let (_, created) = Auth::load_or_create(&path).unwrap();
        assert!(created);
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(token.trim().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (auth, created) = Auth::load_or_create(&path).unwrap();
        assert!(!created);
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", token.trim())).unwrap(),
        );
        h.insert(OPERATOR_HEADER, HeaderValue::from_static("an ops@person"));
        let op = auth.authenticate(&h, PEER, now()).unwrap();
        assert_eq!(op.actor, "operator:anopsperson@127.0.0.1");
        assert_eq!(op.csrf, None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert!(auth.authenticate(&h, PEER, now()).is_none());
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            Auth::load_or_create(&path),
            Err(TokenError::Short(_))
        ));
    }

    #[test]
    fn sessions_need_their_csrf_token_and_expire() {
        let auth = Auth::with_token("0123456789abcdef0123");
        assert!(auth.login("wrong", None, now()).is_none());
        let id = auth
            .login("0123456789abcdef0123", Some("lan"), now())
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE_NAME}={id}")).unwrap(),
        );
        let op = auth.authenticate(&h, PEER, now()).unwrap();
        assert_eq!(op.actor, "operator:lan@127.0.0.1 (dashboard)");
        let csrf = op.csrf.clone().unwrap();
        assert!(check_csrf(&op, &h, None).is_err(), "no token");
        assert!(check_csrf(&op, &h, Some("forged")).is_err());
        check_csrf(&op, &h, Some(&csrf)).unwrap();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8444"));
        h.insert(ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(check_csrf(&op, &h, Some(&csrf)).is_err(), "cross-origin");
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8444"));
        check_csrf(&op, &h, Some(&csrf)).unwrap();
        assert!(
            auth.authenticate(&h, PEER, now() + SESSION_TTL).is_none(),
            "expired"
        );
        let id = auth.login("0123456789abcdef0123", None, now()).unwrap();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}={id}")).unwrap(),
        );
        assert!(auth.authenticate(&h, PEER, now()).is_some());
        auth.logout(&h);
        assert!(auth.authenticate(&h, PEER, now()).is_none(), "logged out");
    }
}
