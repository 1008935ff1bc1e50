//! API v1: the routes agencies call, as synchronous handlers over the [`Hub`].
//!
//! [`handle`] is called by the server on a blocking thread once the request is authenticated,
//! within its limits and fully read; it does no I/O besides what the [`Hub`] holds (the store,
//! the directory, the trust store, the receipt signer). Paths are a contract:
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/api/v1/packages` | submit a package (the raw edoc or status bytes) |
//! | GET | `/api/v1/packages/{id}` | the sender's view of one message |
//! | GET | `/api/v1/inbox` | pending items for the agency (`?after=CURSOR&limit=N`) |
//! | GET | `/api/v1/inbox/{id}` | the package, byte-identical to what was submitted |
//! | GET | `/api/v1/inbox/{id}/trace` | its hop trace |
//! | POST | `/api/v1/inbox/{id}/ack` | `{"result": "delivered"}` or `{"result": "rejected", "reason": ...}` |
//! | GET | `/api/v1/receipts` | receipts addressed to the agency (`?after=CURSOR`) |
//! | GET | `/api/v1/receipts/{id}` | one receipt |
//! | GET | `/api/v1/agencies` | the directory: `[{"id", "name"}]` |
//!
//! An unknown path is `404 not-found`; a known path with another method is
//! `405 method-not-allowed` with `Allow`. The handlers live in [`super::submit`],
//! [`super::inbox`] and [`super::receipts`].

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

use super::Hub;
use super::problem::{self, Problem};

/// A request as the handlers see it: authenticated, within limits, body read.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    /// The method.
    pub method: Method,
    /// The path, as sent (not percent-decoded).
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// The authenticated agency's identifier.
    pub agency: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The whole body (at most `limits.max_body` bytes).
    pub body: bytes::Bytes,
    /// The time the request is judged at (signatures, receipts, events).
    pub now: jiff::Timestamp,
    /// The request id, as sent back in `Truc-Request-Id`.
    pub request_id: String,
}

/// A response: status, headers and body. The server adds `Truc-Request-Id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiResponse {
    /// The status.
    pub status: StatusCode,
    /// Headers, `Content-Type` included.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// A problem document with its status and headers.
    pub fn problem(p: Problem) -> Self {
        let mut headers = vec![(
            CONTENT_TYPE,
            HeaderValue::from_static(problem::CONTENT_TYPE),
        )];
        headers.extend(p.headers.iter().cloned());
        ApiResponse {
            status: p.status(),
            headers,
            body: p.to_json(),
        }
    }

    /// `value` as JSON (`application/json`).
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => ApiResponse {
                status,
                headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a response");
                Self::problem(Problem::internal("the response could not be serialized"))
            }
        }
    }

    /// An XML document (`application/xml`): packages and receipts.
    pub fn xml(status: StatusCode, body: Vec<u8>) -> Self {
        ApiResponse {
            status,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/xml"))],
            body,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// The endpoint a request is for. Ids are path segments as sent; handlers parse them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1/packages`
    SubmitPackage,
    /// `GET /api/v1/packages/{id}`
    Package(String),
    /// `GET /api/v1/inbox`
    Inbox,
    /// `GET /api/v1/inbox/{id}`
    InboxItem(String),
    /// `GET /api/v1/inbox/{id}/trace`
    InboxTrace(String),
    /// `POST /api/v1/inbox/{id}/ack`
    InboxAck(String),
    /// `GET /api/v1/receipts`
    Receipts,
    /// `GET /api/v1/receipts/{id}`
    Receipt(String),
    /// `GET /api/v1/agencies`
    Agencies,
}

/// Maps a method and path to a route: `404 not-found` for an unknown path,
/// `405 method-not-allowed` for a known path with another method. Pure.
pub fn route(method: &Method, path: &str) -> Result<Route, Problem> {
    let not_found = || Problem::not_found(format!("no such resource: {path}"));
    let rest = path.strip_prefix("/api/v1/").ok_or_else(not_found)?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let id = |s: &str| s.to_owned();
    let (route, allowed) = match segments.as_slice() {
        ["packages"] => (Route::SubmitPackage, Method::POST),
        ["packages", i] => (Route::Package(id(i)), Method::GET),
        ["inbox"] => (Route::Inbox, Method::GET),
        ["inbox", i] => (Route::InboxItem(id(i)), Method::GET),
        ["inbox", i, "trace"] => (Route::InboxTrace(id(i)), Method::GET),
        ["inbox", i, "ack"] => (Route::InboxAck(id(i)), Method::POST),
        ["receipts"] => (Route::Receipts, Method::GET),
        ["receipts", i] => (Route::Receipt(id(i)), Method::GET),
        ["agencies"] => (Route::Agencies, Method::GET),
        _ => return Err(not_found()),
    };
    if *method != allowed {
        return Err(Problem::method_not_allowed(method, &[allowed]));
    }
    Ok(route)
}

/// Handles one request.
pub fn handle(hub: &Hub, req: ApiRequest) -> ApiResponse {
    let route = match route(&req.method, &req.path) {
        Ok(r) => r,
        Err(p) => return ApiResponse::problem(p),
    };
    match route {
        Route::SubmitPackage => super::submit::submit(hub, &req),
        Route::Package(id) => super::submit::view(hub, &req, &id),
        Route::Inbox => super::inbox::list(hub, &req),
        Route::InboxItem(id) => super::inbox::fetch(hub, &req, &id),
        Route::InboxTrace(id) => super::inbox::trace(hub, &req, &id),
        Route::InboxAck(id) => super::inbox::ack(hub, &req, &id),
        Route::Receipts => super::receipts::feed(hub, &req),
        Route::Receipt(id) => super::receipts::fetch(hub, &req, &id),
        Route::Agencies => agencies(hub),
    }
}

/// One entry of `GET /api/v1/agencies`.
#[derive(Serialize)]
struct AgencyView<'a> {
    id: &'a str,
    name: &'a str,
}

/// `GET /api/v1/agencies`: every agency of the directory, by identifier.
fn agencies(hub: &Hub) -> ApiResponse {
    let dir = hub.directory();
    let list: Vec<AgencyView<'_>> = dir
        .agencies()
        .map(|a| AgencyView {
            id: a.id.as_str(),
            name: &a.name,
        })
        .collect();
    ApiResponse::json(StatusCode::OK, &list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::problem::Code;

    #[test]
    fn every_route_of_the_contract_is_dispatched() {
        let ok = |m: Method, p: &str, r: Route| assert_eq!(route(&m, p).unwrap(), r, "{m} {p}");
        ok(Method::POST, "/api/v1/packages", Route::SubmitPackage);
        ok(
            Method::GET,
            "/api/v1/packages/42",
            Route::Package("42".into()),
        );
        ok(Method::GET, "/api/v1/inbox", Route::Inbox);
        ok(
            Method::GET,
            "/api/v1/inbox/42",
            Route::InboxItem("42".into()),
        );
        ok(
            Method::GET,
            "/api/v1/inbox/42/trace",
            Route::InboxTrace("42".into()),
        );
        ok(
            Method::POST,
            "/api/v1/inbox/42/ack",
            Route::InboxAck("42".into()),
        );
        ok(Method::GET, "/api/v1/receipts", Route::Receipts);
        ok(
            Method::GET,
            "/api/v1/receipts/r1",
            Route::Receipt("r1".into()),
        );
        ok(Method::GET, "/api/v1/agencies", Route::Agencies);
    }

    #[test]
    fn wrong_methods_and_unknown_paths_are_refused() {
        let code = |m: Method, p: &str| route(&m, p).unwrap_err().code;
        assert_eq!(
            code(Method::GET, "/api/v1/packages"),
            Code::MethodNotAllowed
        );
        assert_eq!(
            code(Method::DELETE, "/api/v1/inbox/1"),
            Code::MethodNotAllowed
        );
        assert_eq!(
            code(Method::GET, "/api/v1/inbox/1/ack"),
            Code::MethodNotAllowed
        );
        assert_eq!(
            code(Method::POST, "/api/v1/agencies"),
            Code::MethodNotAllowed
        );
        for p in [
            "/",
            "/api",
            "/api/v1",
            "/api/v1/",
            "/api/v2/agencies",
            "/api/v1/agencies/",
            "/api/v1/inbox//trace",
            "/api/v1/inbox/1/2/3",
            "/api/v1/unknown",
        ] {
            assert_eq!(code(Method::GET, p), Code::NotFound, "{p}");
        }
        let p = route(&Method::PUT, "/api/v1/inbox/7/ack").unwrap_err();
        assert_eq!(p.headers[0].1, "POST");
    }

    #[test]
    fn responses_carry_their_content_type() {
        let r = ApiResponse::problem(Problem::not_found("x"));
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.headers[0].1, "application/problem+json");
        let r = ApiResponse::json(StatusCode::OK, &[1, 2]);
        assert_eq!(r.body, b"[1,2]");
        assert_eq!(r.headers[0].1, "application/json");
        let r = ApiResponse::xml(StatusCode::CREATED, b"<a/>".to_vec());
        assert_eq!(r.headers[0].1, "application/xml");
    }
}
