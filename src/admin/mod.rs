//! The admin listener: the ops API, the dashboard, metrics and health, on its own address.
//!
//! # Architecture
//! ```text
//!  TCP accept on admin_listen (default 127.0.0.1:8444; TLS with the hub's certificate when
//!  │                           [admin] tls = true, required off loopback)
//!  ▼
//!  server.rs  hyper http/1.1; per request: request id + span, body ≤ 1 MiB
//!  ├─ /healthz, /readyz, /metrics                  no authentication
//!  ├─ /login, /logout                              the dashboard's session (auth.rs)
//!  ├─ /admin/api/...   api.rs    JSON              bearer token, or session + CSRF token
//!  └─ / and the pages  dashboard.rs  HTML          session (login form) or bearer token
//!  ▼ spawn_blocking
//!  ops.rs     what both faces do: queue figures, message search and detail, retry / cancel /
//!             requeue, pause / resume, reload; each operator action is audited with who
//! ```
//!
//! # Invariants
//! - Every operator action goes through [`ops`], which writes an audit entry naming the
//!   operator (`operator:<name>@<address>` from the token or session, and `Truc-Operator` when
//!   the CLI sends it) and the outcome, after the store's own entries for the change.
//! - A state-changing request authenticated by a session cookie must carry the session's
//!   CSRF token (form field `csrf` or header `Truc-Csrf`), and an `Origin`, when sent, must be
//!   this listener's: a page elsewhere cannot make an operator's browser act. Bearer tokens
//!   are never sent by browsers on their own, so they need neither.
//! - The token is compared in constant time; it is never logged. Sessions live in memory
//!   (a restart logs everyone out) and expire after [`auth::SESSION_TTL`].
//! - Nothing here re-serializes a package: the API shows metadata, never bytes.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod ops;
pub mod server;

pub use server::AdminServer;
