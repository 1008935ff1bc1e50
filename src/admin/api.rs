//! The admin API: JSON over the operations of [`super::ops`]. Paths are a contract:
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/admin/api/queues` | per recipient: queued, in-flight, retrying, dead, delivered today, oldest pending age, next attempt, paused, circuit |
//! | GET | `/admin/api/messages?state=&sender=&recipient=&document_id=&since=&until=&cursor=&limit=` | messages, oldest first; `next` is the cursor |
//! | GET | `/admin/api/messages/{id}` | metadata, per-recipient state, the event timeline, receipt ids |
//! | POST | `/admin/api/messages/{id}/retry` | waiting push deliveries due now (`{id}` may be a delivery id) |
//! | POST | `/admin/api/messages/{id}/cancel` | cancel what is not delivered (optional `{"reason": "..."}`) |
//! | POST | `/admin/api/messages/{id}/requeue` | dead deliveries back in their queue |
//! | POST | `/admin/api/agencies/{id}/pause`, `/resume` | hold or release push deliveries to an agency |
//! | POST | `/admin/api/reload` | re-read the directory, trust anchors and CRLs |
//! | GET | `/admin/api/receipts/{id}` | a receipt's signed XML |
//! | GET | `/admin/api/audit?offset=N` | the audit log's lines from byte `N` (≤ 1 MiB of whole lines); `Truc-Audit-Next-Offset` while there is more, `Truc-Audit-Head: <seq> <sha256>` |
//!
//! Errors are `application/problem+json` with the hub's codes: `400 bad-request`,
//! `401 unauthenticated`, `403 forbidden` (CSRF), `404 not-found`, `405 method-not-allowed`,
//! `409 invalid-state` (an action that applies to none of the deliveries it names).

use std::net::SocketAddr;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use jiff::Timestamp;

use super::auth::Operator;
use super::ops::{self, Action};
use crate::hub::Hub;
use crate::hub::api::ApiResponse;
use crate::hub::problem::Problem;

/// The audit log's next offset.
pub const AUDIT_NEXT: HeaderName = HeaderName::from_static("truc-audit-next-offset");
/// The audit log's head: `<seq> <sha256>`.
pub const AUDIT_HEAD: HeaderName = HeaderName::from_static("truc-audit-head");

/// Most audit bytes per answer.
const AUDIT_CHUNK: usize = 1 << 20;

/// One request to the admin listener, read whole.
#[derive(Clone, Debug)]
pub struct AdminRequest {
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Query string, undecoded.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: bytes::Bytes,
    /// The wall clock when it arrived.
    pub now: Timestamp,
    /// Who connected.
    pub peer: SocketAddr,
    /// Its request id.
    pub request_id: String,
}

impl AdminRequest {
    /// The query's `name=value` pairs, percent-decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect()
    }

    /// The body's form fields (`application/x-www-form-urlencoded`), percent-decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// The routes of the table above.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    Queues,
    Messages,
    Message(String),
    Act(String, Action),
    Pause(String, bool),
    Reload,
    Receipt(String),
    Audit,
}

fn route(method: &Method, path: &str) -> Result<Route, Problem> {
    let not_found = || Problem::not_found(format!("no such resource: {path}"));
    let rest = path.strip_prefix("/admin/api/").ok_or_else(not_found)?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let s = |x: &str| x.to_owned();
    let (route, allowed) = match segments.as_slice() {
        ["queues"] => (Route::Queues, Method::GET),
        ["messages"] => (Route::Messages, Method::GET),
        ["messages", id] => (Route::Message(s(id)), Method::GET),
        ["messages", id, "retry"] => (Route::Act(s(id), Action::Retry), Method::POST),
        ["messages", id, "cancel"] => (Route::Act(s(id), Action::Cancel), Method::POST),
        ["messages", id, "requeue"] => (Route::Act(s(id), Action::Requeue), Method::POST),
        ["agencies", id, "pause"] => (Route::Pause(s(id), true), Method::POST),
        ["agencies", id, "resume"] => (Route::Pause(s(id), false), Method::POST),
        ["reload"] => (Route::Reload, Method::POST),
        ["receipts", id] => (Route::Receipt(s(id)), Method::GET),
        ["audit"] => (Route::Audit, Method::GET),
        _ => return Err(not_found()),
    };
    if *method != allowed {
        return Err(Problem::method_not_allowed(method, &[allowed]));
    }
    Ok(route)
}

fn json<T: serde::Serialize>(r: Result<T, Problem>) -> ApiResponse {
    match r {
        Ok(v) => ApiResponse::json(StatusCode::OK, &v),
        Err(p) => ApiResponse::problem(p),
    }
}

/// Answers an authenticated request under `/admin/api/` (CSRF already checked).
pub fn handle(hub: &Hub, op: &Operator, req: &AdminRequest) -> ApiResponse {
    let route = match route(&req.method, &req.path) {
        Ok(r) => r,
        Err(p) => return ApiResponse::problem(p),
    };
    let now = req.now;
    match route {
        Route::Queues => {
            json(ops::queues(hub, now).map(|queues| serde_json::json!({ "queues": queues })))
        }
        Route::Messages => {
            let pairs = req.query_pairs();
            json(
                ops::Search::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .and_then(|s| ops::messages(hub, &s)),
            )
        }
        Route::Message(id) => json(ops::message(hub, &id)),
        Route::Act(id, action) => {
            let reason = match body_field(req, "reason") {
                Ok(r) => r,
                Err(p) => return ApiResponse::problem(p),
            };
            json(ops::act(
                hub,
                &id,
                action,
                reason.as_deref(),
                &op.actor,
                now,
            ))
        }
        Route::Pause(agency, paused) => json(ops::pause(hub, &agency, paused, &op.actor, now)),
        Route::Reload => json(ops::reload(hub, &op.actor, now)),
        Route::Receipt(id) => match ops::receipt(hub, &id) {
            Ok(xml) => ApiResponse::xml(StatusCode::OK, xml),
            Err(p) => ApiResponse::problem(p),
        },
        Route::Audit => audit(hub, req),
    }
}

/// A string field of an optional JSON body.
fn body_field(req: &AdminRequest, name: &str) -> Result<Option<String>, Problem> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&req.body)
        .map_err(|e| Problem::bad_request(format!("the body is not JSON: {e}")))?;
    match v.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Problem::bad_request(format!("{name}: must be a string"))),
    }
}

fn audit(hub: &Hub, req: &AdminRequest) -> ApiResponse {
    let pairs = req.query_pairs();
    let offset = match pairs.iter().find(|(k, _)| k == "offset") {
        None => 0,
        Some((_, v)) => match v.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return ApiResponse::problem(Problem::bad_request(format!(
                    "offset: {v:?} is not a byte offset"
                )));
            }
        },
    };
    let log = hub.store.audit();
    // The head first: the lines read after it reach at least that far.
    let head = log.head();
    match log.read(offset, AUDIT_CHUNK) {
        Ok((lines, next)) => {
            let mut r = ApiResponse {
                status: StatusCode::OK,
                headers: vec![(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                )],
                body: lines,
            };
            if let Ok(v) = HeaderValue::from_str(&format!("{} {}", head.seq, head.hash)) {
                r.headers.push((AUDIT_HEAD, v));
            }
            if let Some(n) = next {
                r.headers.push((AUDIT_NEXT, HeaderValue::from(n)));
            }
            r
        }
        Err(e) => ApiResponse::problem(ops::problem(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(route(&get, "/admin/api/queues").unwrap(), Route::Queues);
        assert_eq!(
            route(&post, "/admin/api/messages/1a2b-0/retry").unwrap(),
            Route::Act("1a2b-0".into(), Action::Retry)
        );
        assert_eq!(
            route(&post, "/admin/api/agencies/000.00.00.H29/resume").unwrap(),
            Route::Pause("000.00.00.H29".into(), false)
        );
        let p = route(&get, "/admin/api/reload").unwrap_err();
        assert_eq!(p.code.as_str(), "method-not-allowed");
        for missing in [
            "/admin/api/",
            "/admin/api//queues",
            "/admin/api/nope",
            "/api/v1/inbox",
        ] {
            assert_eq!(route(&get, missing).unwrap_err().code.as_str(), "not-found");
        }
    }
}
