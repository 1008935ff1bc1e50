//! The recipient's side of API v1: `GET /api/v1/inbox`, `GET /api/v1/inbox/{id}`,
//! `GET /api/v1/inbox/{id}/trace`, `POST /api/v1/inbox/{id}/ack`.
//!
//! `{id}` is the message id. The package is served **byte-identical** to what the sender
//! submitted, so the sender's signature still verifies; the hub's own record of the hop
//! (acceptance, verdict, delivery events) is the separate trace, never written into the
//! package. Acknowledging is idempotent: acknowledging again with the same result answers
//! `200` with the state already reached; a different result for a finished delivery is
//! `409 invalid-state`.

use http::{HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::Hub;
use super::api::{ApiRequest, ApiResponse};
use super::problem::Problem;
use super::receipts;
use super::submit::{MESSAGE_ID, store_problem};
use crate::store::{Delivery, DeliveryId, Message, MessageId, Mode, State, StoreError};

/// `Truc-Delivery-Id`.
pub const DELIVERY_ID: HeaderName = HeaderName::from_static("truc-delivery-id");
/// `Truc-Sender`.
pub const SENDER: HeaderName = HeaderName::from_static("truc-sender");

/// Default and largest page of a listing.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// A query string as `name=value` pairs (percent-decoding is not needed: every parameter
/// of the API is an id or a number).
pub struct Query<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Query<'a> {
    /// Splits `a=1&b=2`.
    pub fn parse(q: Option<&'a str>) -> Self {
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// `after` and `limit` of a listing: the cursor (`what` it must be, for the problem) and
    /// the page size.
    pub fn page<T: std::str::FromStr>(&self, what: &str) -> Result<(Option<T>, usize), Problem> {
        let after = self
            .get("after")
            .map(str::parse::<T>)
            .transpose()
            .map_err(|_| Problem::bad_request(format!("after: not {what}")))?;
        Ok((after, self.limit()?))
    }

    /// `limit`, 1 to 1000, default 100.
    pub fn limit(&self) -> Result<usize, Problem> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(Problem::bad_request(format!(
                    "limit: {v:?} is not a number from 1 to {MAX_LIMIT}"
                ))),
            },
        }
    }
}

/// One pending item of `GET /api/v1/inbox`.
#[derive(Serialize)]
struct Item {
    id: String,
    delivery_id: String,
    kind: crate::store::Kind,
    sender: String,
    document_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    size: u64,
    received_at: jiff::Timestamp,
}

/// `GET /api/v1/inbox?after=CURSOR&limit=N`: pending pull deliveries, oldest first. The
/// cursor is the `delivery_id` of the last item seen (`next` in the answer).
pub fn list(hub: &Hub, req: &ApiRequest) -> ApiResponse {
    let (cursor, limit) =
        match Query::parse(req.query.as_deref()).page::<DeliveryId>("a delivery id") {
            Ok(p) => p,
            Err(p) => return ApiResponse::problem(p),
        };
    let pending = match hub.store.inbox(&req.agency, cursor, limit) {
        Ok(p) => p,
        Err(e) => return store_problem(e),
    };
    let mut items = Vec::with_capacity(pending.len());
    for d in &pending {
        let m = match hub.store.message(d.id.message) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => return store_problem(e),
        };
        items.push(Item {
            id: m.id.to_string(),
            delivery_id: d.id.to_string(),
            kind: m.kind,
            sender: m.sender,
            document_id: m.document_id,
            number: m.summary.number,
            notation: m.summary.notation,
            subject: m.summary.subject,
            size: m.size,
            received_at: m.received_at,
        });
    }
    #[derive(Serialize)]
    struct Page {
        items: Vec<Item>,
        next: Option<String>,
    }
    let next = (pending.len() == limit)
        .then(|| pending.last().map(|d| d.id.to_string()))
        .flatten();
    ApiResponse::json(StatusCode::OK, &Page { items, next })
}

/// The message `id` and the delivery of it addressed to `agency`.
fn find(hub: &Hub, agency: &str, id: &str) -> Result<(Message, Delivery), ApiResponse> {
    let not_found =
        || ApiResponse::problem(Problem::not_found(format!("no package {id} for {agency}")));
    let mid: MessageId = id.parse().map_err(|_| not_found())?;
    let m = match hub.store.message(mid) {
        Ok(Some(m)) => m,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(store_problem(e)),
    };
    let Some(index) = m.recipients.iter().position(|r| r == agency) else {
        return Err(not_found());
    };
    let did = DeliveryId {
        message: mid,
        index: index as u16,
    };
    match hub.store.delivery(did) {
        Ok(Some(d)) => Ok((m, d)),
        Ok(None) => Err(not_found()),
        Err(e) => Err(store_problem(e)),
    }
}

/// `GET /api/v1/inbox/{id}`: the package as received.
pub fn fetch(hub: &Hub, req: &ApiRequest, id: &str) -> ApiResponse {
    let (m, d) = match find(hub, &req.agency, id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if matches!(d.state, State::Cancelled { .. }) {
        return ApiResponse::problem(Problem::not_found(format!(
            "package {id} was revoked before delivery"
        )));
    }
    let bytes = match hub.store.body(m.id) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return ApiResponse::problem(Problem::not_found(format!(
                "package {id} was delivered and its bytes have been purged"
            )));
        }
        Err(e) => return store_problem(e),
    };
    let mut resp = ApiResponse::xml(StatusCode::OK, bytes);
    for (name, value) in [
        (MESSAGE_ID, m.id.to_string()),
        (DELIVERY_ID, d.id.to_string()),
        (SENDER, m.sender.clone()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp = resp.with_header(name, v);
        }
    }
    resp
}

/// One hop of a trace.
#[derive(Serialize)]
struct Hop {
    at: jiff::Timestamp,
    what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// `GET /api/v1/inbox/{id}/trace`: the hub's record of this package for this recipient.
pub fn trace(hub: &Hub, req: &ApiRequest, id: &str) -> ApiResponse {
    let (m, d) = match find(hub, &req.agency, id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let events = match hub.store.events(m.id) {
        Ok(e) => e,
        Err(e) => return store_problem(e),
    };
    let hops: Vec<Hop> = events
        .into_iter()
        .filter(|e| e.delivery.is_none() || e.delivery == Some(d.id.index))
        .map(|e| Hop {
            at: e.at,
            what: e.what,
            detail: e.detail,
        })
        .collect();
    #[derive(Serialize)]
    struct Trace {
        message_id: String,
        delivery_id: String,
        hub: String,
        sender: String,
        sha256: String,
        verdict: crate::receipt::VerdictSummary,
        state: State,
        hops: Vec<Hop>,
    }
    ApiResponse::json(
        StatusCode::OK,
        &Trace {
            message_id: m.id.to_string(),
            delivery_id: d.id.to_string(),
            hub: hub.config.id.clone(),
            sha256: m.digest.clone(),
            verdict: receipts::recorded_verdict(&m),
            sender: m.sender,
            state: d.state,
            hops,
        },
    )
}

/// The body of `POST /api/v1/inbox/{id}/ack`.
#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase", deny_unknown_fields)]
enum Ack {
    Delivered,
    Rejected { reason: String },
}

/// `POST /api/v1/inbox/{id}/ack`.
pub fn ack(hub: &Hub, req: &ApiRequest, id: &str) -> ApiResponse {
    let ack: Ack = match serde_json::from_slice(&req.body) {
        Ok(a) => a,
        Err(e) => {
            return ApiResponse::problem(Problem::bad_request(format!(
                "expected {{\"result\": \"delivered\"}} or {{\"result\": \"rejected\", \"reason\": \"...\"}}: {e}"
            )));
        }
    };
    let (_, d) = match find(hub, &req.agency, id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if d.mode != Mode::Pull {
        return ApiResponse::problem(Problem::invalid_state(format!(
            "delivery {} is pushed to the agency's endpoint, not acknowledged",
            d.id
        )));
    }
    let done = match &ack {
        Ack::Delivered => hub.store.ack(d.id, req.now),
        Ack::Rejected { reason } => hub.store.refuse(d.id, reason, req.now),
    };
    let state = match done {
        Ok(d) => d.state,
        Err(StoreError::InvalidTransition { .. }) => {
            // Idempotent: the same answer again is fine.
            let same = matches!(
                (&ack, &d.state),
                (Ack::Delivered, State::Delivered { .. })
                    | (Ack::Rejected { .. }, State::Rejected { .. })
            );
            if !same {
                return ApiResponse::problem(Problem::invalid_state(format!(
                    "delivery {} is {}; it cannot be {} now",
                    d.id,
                    d.state.name(),
                    match ack {
                        Ack::Delivered => "acknowledged",
                        Ack::Rejected { .. } => "rejected",
                    }
                )));
            }
            d.state
        }
        Err(e) => return store_problem(e),
    };
    tracing::info!(message = %d.id.message, delivery = %d.id, state = %state.name(), "acknowledged");
    #[derive(Serialize)]
    struct Answer {
        delivery_id: String,
        #[serde(flatten)]
        state: State,
    }
    ApiResponse::json(
        StatusCode::OK,
        &Answer {
            delivery_id: d.id.to_string(),
            state,
        },
    )
}
