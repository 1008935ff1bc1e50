//! The hub's receipts: which receipt a store event calls for, with what content, under
//! which id; and the receipt routes of API v1.
//!
//! Content comes from the store's records only (the message, the delivery in its new state,
//! the verdict recorded at acceptance), so a receipt can be built inside the store's
//! transition batch ([`crate::store::Engine::set_receipts`]) and rebuilt identically from the
//! same records. Pure except for the signature, which goes through [`crate::receipt::sign`].
//!
//! Receipt ids, a contract of `GET /api/v1/receipts/{id}`:
//! - `<message id>-acceptance`
//! - `<message id>-<recipient index>-delivery` | `-failure` | `-cancellation`
//!
//! The feed (`GET /api/v1/receipts`) lists the receipts issued after acceptance, for the
//! deliveries of the agency's packages; the acceptance receipt is the body of the `201` of
//! the submission (and of a `200` to a resubmission) and is fetched by id.

use http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;

use super::Hub;
use super::api::{ApiRequest, ApiResponse};
use super::problem::Problem;
use crate::edxml::model::Sha256;
use crate::receipt::{self, Kind, Receipt, VerdictSummary};
use crate::store::{
    ACCEPTANCE_RECEIPT, CANCELLATION_RECEIPT, DELIVERY_RECEIPT, Delivery, DeliveryId,
    FAILURE_RECEIPT, Message, MessageId, State,
};

/// The receipt kind of a store receipt code.
pub fn kind_of(code: u8) -> Option<Kind> {
    match code {
        ACCEPTANCE_RECEIPT => Some(Kind::Acceptance),
        DELIVERY_RECEIPT => Some(Kind::Delivery),
        FAILURE_RECEIPT => Some(Kind::Failure),
        CANCELLATION_RECEIPT => Some(Kind::Cancellation),
        _ => None,
    }
}

/// The store receipt code of a kind.
pub fn code_of(kind: Kind) -> u8 {
    match kind {
        Kind::Acceptance => ACCEPTANCE_RECEIPT,
        Kind::Delivery => DELIVERY_RECEIPT,
        Kind::Failure => FAILURE_RECEIPT,
        Kind::Cancellation => CANCELLATION_RECEIPT,
    }
}

/// Where a receipt id points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptRef {
    /// The acceptance receipt of a message.
    Acceptance(MessageId),
    /// A receipt about one delivery.
    Delivery(DeliveryId, Kind),
}

impl ReceiptRef {
    /// Its id (see the module docs).
    pub fn id(&self) -> String {
        match self {
            ReceiptRef::Acceptance(m) => receipt::receipt_id(Kind::Acceptance, &m.to_string()),
            ReceiptRef::Delivery(d, kind) => receipt::receipt_id(*kind, &d.to_string()),
        }
    }

    /// Reads an id; `None` if it is not one.
    pub fn parse(id: &str) -> Option<ReceiptRef> {
        let (subject, kind) = id.rsplit_once('-')?;
        let kind: Kind = kind.parse().ok()?;
        match kind {
            Kind::Acceptance => subject.parse().ok().map(ReceiptRef::Acceptance),
            _ => subject.parse().ok().map(|d| ReceiptRef::Delivery(d, kind)),
        }
    }

    /// The message it is about.
    pub fn message(&self) -> MessageId {
        match self {
            ReceiptRef::Acceptance(m) => *m,
            ReceiptRef::Delivery(d, _) => d.message,
        }
    }
}

/// The verdict recorded with a message at acceptance (JSON of a [`VerdictSummary`]).
pub fn recorded_verdict(m: &Message) -> VerdictSummary {
    serde_json::from_str(&m.verdict).unwrap_or(VerdictSummary::Unsigned)
}

/// The acceptance receipt of a new message.
#[allow(clippy::too_many_arguments)]
pub fn acceptance(
    hub: &str,
    id: MessageId,
    sender: &str,
    recipients: Vec<String>,
    document_id: Option<String>,
    package_sha256: Sha256,
    verdict: VerdictSummary,
    now: Timestamp,
) -> Receipt {
    Receipt {
        id: ReceiptRef::Acceptance(id).id(),
        kind: Kind::Acceptance,
        issued_at: now,
        hub: hub.to_owned(),
        message_id: id.to_string(),
        document_id,
        sender: sender.to_owned(),
        recipients,
        package_sha256,
        verdict,
        delivery_id: None,
        attempts: None,
        reason: None,
    }
}

/// The receipt about a delivery that has just reached a final state, at its `updated_at`.
pub fn for_delivery(hub: &str, m: &Message, d: &Delivery, code: u8) -> Option<Receipt> {
    let kind = kind_of(code).filter(|k| k.is_per_recipient())?;
    let reason = match &d.state {
        State::Rejected { reason, .. } => Some(format!("rejected by the recipient: {reason}")),
        State::Dead { reason, .. } => Some(format!("not delivered, retries exhausted: {reason}")),
        State::Cancelled { reason, .. } => Some(reason.clone()),
        _ => None,
    }
    .map(|r| {
        if r.is_empty() {
            "(no reason given)".into()
        } else {
            r
        }
    });
    Some(Receipt {
        id: ReceiptRef::Delivery(d.id, kind).id(),
        kind,
        issued_at: d.updated_at,
        hub: hub.to_owned(),
        message_id: m.id.to_string(),
        document_id: m.document_id.clone(),
        sender: m.sender.clone(),
        recipients: vec![d.recipient.clone()],
        package_sha256: Sha256::from_hex(&m.digest)?,
        verdict: recorded_verdict(m),
        delivery_id: Some(d.id.to_string()),
        attempts: Some(d.attempts),
        reason: if kind.needs_reason() { reason } else { None },
    })
}

/// One entry of `GET /api/v1/receipts`.
#[derive(Serialize)]
struct FeedItem {
    id: String,
    kind: Kind,
    message_id: String,
    delivery_id: String,
    recipient: Option<String>,
    seq: u64,
}

/// `GET /api/v1/receipts?after=SEQ&limit=N`: receipts for the agency's packages.
pub fn feed(hub: &Hub, req: &ApiRequest) -> ApiResponse {
    let (after, limit) =
        match super::inbox::Query::parse(req.query.as_deref()).page::<u64>("a feed position") {
            Ok(p) => p,
            Err(p) => return ApiResponse::problem(p),
        };
    let entries = match hub.store.receipts_for(&req.agency, after, limit) {
        Ok(e) => e,
        Err(e) => return super::submit::store_problem(e),
    };
    let mut items = Vec::with_capacity(entries.len());
    for e in &entries {
        let Some(kind) = kind_of(e.kind) else {
            continue;
        };
        let recipient = hub
            .store
            .message(e.delivery.message)
            .ok()
            .flatten()
            .and_then(|m| m.recipients.get(usize::from(e.delivery.index)).cloned());
        items.push(FeedItem {
            id: ReceiptRef::Delivery(e.delivery, kind).id(),
            kind,
            message_id: e.delivery.message.to_string(),
            delivery_id: e.delivery.to_string(),
            recipient,
            seq: e.seq,
        });
    }
    #[derive(Serialize)]
    struct Page {
        items: Vec<FeedItem>,
        next: Option<u64>,
    }
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    ApiResponse::json(StatusCode::OK, &Page { items, next })
}

/// `GET /api/v1/receipts/{id}`: one receipt about a package the agency sent.
pub fn fetch(hub: &Hub, req: &ApiRequest, id: &str) -> ApiResponse {
    let not_found = || ApiResponse::problem(Problem::not_found(format!("no receipt {id}")));
    let Some(r) = ReceiptRef::parse(id) else {
        return not_found();
    };
    match hub.store.message(r.message()) {
        Ok(Some(m)) if m.sender == req.agency => {}
        Ok(_) => return not_found(),
        Err(e) => return super::submit::store_problem(e),
    }
    let bytes = match r {
        ReceiptRef::Acceptance(m) => hub.store.receipt(m, ACCEPTANCE_RECEIPT),
        ReceiptRef::Delivery(d, kind) => hub.store.delivery_receipt(d, code_of(kind)),
    };
    match bytes {
        Ok(Some(b)) if !b.is_empty() => ApiResponse::xml(StatusCode::OK, b),
        Ok(_) => not_found(),
        Err(e) => super::submit::store_problem(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_ids_read_back() {
        let m = MessageId(0x0191_2345_6789_0001);
        let d = DeliveryId {
            message: m,
            index: 3,
        };
        for r in [
            ReceiptRef::Acceptance(m),
            ReceiptRef::Delivery(d, Kind::Delivery),
            ReceiptRef::Delivery(d, Kind::Failure),
            ReceiptRef::Delivery(d, Kind::Cancellation),
        ] {
            assert_eq!(ReceiptRef::parse(&r.id()), Some(r), "{}", r.id());
        }
        assert_eq!(
            ReceiptRef::Acceptance(m).id(),
            "0191234567890001-acceptance"
        );
        assert_eq!(
            ReceiptRef::Delivery(d, Kind::Failure).id(),
            "0191234567890001-3-failure"
        );
        for bad in [
            "",
            "x",
            "0191234567890001",
            "0191234567890001-3-nope",
            "zz-acceptance",
        ] {
            assert_eq!(ReceiptRef::parse(bad), None, "{bad}");
        }
        for code in [
            ACCEPTANCE_RECEIPT,
            DELIVERY_RECEIPT,
            FAILURE_RECEIPT,
            CANCELLATION_RECEIPT,
        ] {
            assert_eq!(kind_of(code).map(code_of), Some(code));
        }
        assert_eq!(kind_of(9), None);
    }
}
