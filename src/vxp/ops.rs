//! The VXP operations (`../shared/VXP.md` §6, §7) over the hub's core.
//!
//! ErrorCodes of the refusals this module makes (authentication's, `4011`–`4016`, are in
//! [`super::auth`]):
//!
//! | ErrorCode | when |
//! |---|---|
//! | `400` | the operation is unknown, or called with the wrong method |
//! | `403` | the package is not from an agency of the calling system; registerAgency / deleteAgency not allowed for it; a DocId of another system |
//! | `404` | no such DocId |
//! | `409` | updateStatus on an item finished otherwise; a new document reusing a DocumentId |
//! | `412` | `hash-file` missing or not the SHA-256 of the body (with or without the trailing CRLF) |
//! | `422` | the package is malformed, unsigned when the system's policy requires it, its signature invalid or untrusted, a recipient unknown (the API v1 problem code is in `ErrorDesc`) |
//! | `500` | the store failed |

use base64::Engine as _;
use serde_json::{Value, json};

use super::auth;
use super::params::Params;
use super::reply::Reply;
use super::{Operation, System, VxpRequest, VxpResponse};
use crate::hub::Hub;
use crate::hub::problem::Problem;
use crate::hub::submit;
use crate::store::{
    Accepted, Delivery, DeliveryId, Filter, Kind, Message, MessageId, Mode, State, StoreError,
};

const JSON: &str = "application/json; charset=utf-8";

fn answer(reply: Reply, ascii: bool) -> VxpResponse {
    VxpResponse {
        content_type: JSON,
        body: reply.to_bytes(ascii),
    }
}

/// Routes, authenticates and runs one request.
pub fn handle(hub: &Hub, req: &VxpRequest<'_>) -> VxpResponse {
    let Some(op) = Operation::from_path(req.path) else {
        return answer(
            Reply::fail("400", &format!("unknown operation: {}", req.path)),
            false,
        );
    };
    let send = op == Operation::SendEdoc;
    let fail = |code: &str, desc: &str| {
        if send {
            answer(Reply::send_edoc_fail(code, desc), true)
        } else if op == Operation::DownloadEdoc {
            // The SDK saves whatever it gets as the package: an error is an empty body.
            VxpResponse {
                content_type: "application/octet-stream",
                body: Vec::new(),
            }
        } else {
            answer(Reply::fail(code, desc), false)
        }
    };
    if *req.method != op.method() {
        return fail(
            "400",
            &format!("{op:?} is called with {}, not {}", op.method(), req.method),
        );
    }
    let header = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    let signed = auth::verify(
        header("xroadvnpt-sign-header"),
        header("xroadvnpt-hash-header"),
        |id| {
            hub.vxp
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.secret.clone())
        },
    );
    let signed = match signed {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(operation = ?op, code = e.code(), "VXP request refused: {e}");
            return fail(e.error_code(), &e.to_string());
        }
    };
    let Some(system) = hub.vxp.iter().find(|s| s.id == signed.system_id) else {
        return fail("4014", "unknown system");
    };
    let params = Params::new(signed.params.clone());
    tracing::info!(system = %system.id, timestamp = %signed.timestamp, operation = ?op, "VXP request");
    let now = req.now;
    let result = match op {
        Operation::SendEdoc => return send_edoc(hub, system, &params, req.body, now),
        Operation::DownloadEdoc => {
            return match fetch(hub, system, &params) {
                Ok((_, bytes)) => VxpResponse {
                    content_type: "application/octet-stream",
                    body: bytes,
                },
                Err(r) => {
                    tracing::info!(system = %system.id, "downloadEdoc refused: {r:?}");
                    fail("404", "")
                }
            };
        }
        Operation::GetAgenciesList => Ok(agencies(hub, Listing::Plain)),
        Operation::GetAgenciesListQd20 => Ok(agencies(hub, Listing::Qd20)),
        Operation::GetSynchronizeUnit => Ok(agencies(hub, Listing::Sync)),
        Operation::RegisterAgency | Operation::DeleteAgency => {
            manage(hub, system, op, &params, req.body, now)
        }
        Operation::GetReceivedEdocList => received(hub, system, &params),
        Operation::GetEdoc => fetch(hub, system, &params).map(|(id, bytes)| {
            Reply::ok().with("docId", json!(id.to_string())).with(
                "data",
                json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
            )
        }),
        Operation::UpdateStatus => update_status(hub, system, &params, now),
        Operation::GetSentEdocList => sent(hub, system, &params),
        Operation::CountReceiveEdoc => count(hub, system, Kind::Edoc),
        Operation::CountReceiveStatus => count(hub, system, Kind::Status),
    };
    answer(result.unwrap_or_else(|r| r), false)
}

/// A refusal from a problem of the core: its status as the ErrorCode, its code and detail as
/// the ErrorDesc.
fn refusal(p: &Problem) -> Reply {
    Reply::fail(
        &p.status().as_u16().to_string(),
        &format!("{}: {}", p.code.as_str(), p.detail),
    )
}

fn store_failed(e: StoreError) -> Reply {
    refusal(&submit::store_refusal(e))
}

/// `sendEdoc` (§6.4): hash-file, the CRLF, the system's policy, then API v1's acceptance.
fn send_edoc(
    hub: &Hub,
    system: &System,
    params: &Params,
    body: &bytes::Bytes,
    now: jiff::Timestamp,
) -> VxpResponse {
    let fail = |code: &str, desc: String| answer(Reply::send_edoc_fail(code, &desc), true);
    let Some(hash) = params.hash_file() else {
        return fail("412", "hash-file is missing".into());
    };
    let sha = |b: &[u8]| auth::sdk_hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref());
    let hash = hash.to_ascii_lowercase();
    // The package, as a view of the body (no copy).
    let bytes = match body.strip_suffix(b"\r\n") {
        Some(trimmed) if sha(trimmed) == hash => body.slice(..trimmed.len()),
        _ if sha(body) == hash => body.clone(),
        _ => {
            return fail(
                "412",
                "hash-file is not the SHA-256 of the package (the body, without the SDK's \
                 trailing CRLF)"
                    .into(),
            );
        }
    };
    let dir = hub.directory();
    // The package's sender must be one of the system's agencies; it is the agency the
    // acceptance is made for.
    let may_send = |sender: &str| {
        if system.serves(sender) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "the package is from {sender}, which system {} does not serve",
                system.id
            )))
        }
    };
    let accepted =
        submit::check_with(hub, &dir, system.policy, &may_send, &bytes, now).and_then(|checked| {
            let sender = checked.0.sender().as_str().to_owned();
            submit::accept(hub, &dir, &sender, checked, &bytes, now)
        });
    match accepted {
        Ok(a) => {
            let id = match &a {
                Accepted::New { id, .. } | Accepted::Duplicate { id, .. } => *id,
            };
            tracing::info!(system = %system.id, message = %id, duplicate = matches!(a, Accepted::Duplicate { .. }), "VXP sendEdoc accepted");
            answer(Reply::send_edoc_ok(&id.to_string()), true)
        }
        Err(p) => {
            tracing::info!(system = %system.id, code = p.code.as_str(), "VXP sendEdoc refused: {}", p.detail);
            answer(
                Reply::send_edoc_fail(
                    &p.status().as_u16().to_string(),
                    &format!("{}: {}", p.code.as_str(), p.detail),
                ),
                true,
            )
        }
    }
}

#[derive(Clone, Copy)]
enum Listing {
    Plain,
    Qd20,
    Sync,
}

/// §6.1: the directory in the three shapes.
fn agencies(hub: &Hub, listing: Listing) -> Reply {
    let dir = hub.directory();
    let data = dir
        .agencies()
        .enumerate()
        .map(|(i, a)| {
            let (id, code, name) = ((i + 1).to_string(), a.id.as_str(), a.name.as_str());
            match listing {
                Listing::Plain => json!({"id": id, "pid": "", "code": code, "name": name,
                                          "mail": "", "oldCode": ""}),
                Listing::Qd20 => json!({"id": id, "code": code, "name": name, "mail": "",
                                         "code102": code}),
                Listing::Sync => json!({"id": id, "pid": "", "code": code, "name": name,
                                         "mail": "", "version": 1, "centerCode": "",
                                         "deleted": false, "modifyDate": "", "isAgency": true}),
            }
        })
        .collect();
    Reply::ok().data(data)
}

/// §6.2, §6.3: recorded for an operator when the system may, refused otherwise.
fn manage(
    hub: &Hub,
    system: &System,
    op: Operation,
    params: &Params,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Reply, Reply> {
    if !system.manage_agencies {
        return Err(Reply::fail(
            "403",
            &format!(
                "system {} may not register or delete agencies here: the hub's directory is \
                 managed by its operators",
                system.id
            ),
        ));
    }
    let (action, subject) = match op {
        Operation::RegisterAgency => (
            "vxp:registerAgency",
            String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned(),
        ),
        _ => (
            "vxp:deleteAgency",
            params.get_any_case("AgencyCode").unwrap_or("").to_owned(),
        ),
    };
    hub.store
        .audit()
        .append(&[crate::store::audit::Change {
            at: now,
            actor: format!("vxp:{}", system.id),
            action: action.into(),
            subject,
            detail: Some("recorded for an operator; the directory is unchanged".into()),
        }])
        .map_err(store_failed)?;
    Ok(Reply::ok())
}

/// The pending deliveries to the system's agencies (pull inboxes), oldest first.
fn pending(hub: &Hub, system: &System) -> Result<Vec<(Delivery, Message)>, Reply> {
    let mut out = Vec::new();
    for agency in &system.agencies {
        let mut cursor = None;
        loop {
            let page = hub.store.inbox(agency, cursor, 500).map_err(store_failed)?;
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            for d in page {
                if let Some(m) = hub.store.message(d.id.message).map_err(store_failed)? {
                    out.push((d, m));
                }
            }
        }
    }
    out.sort_by_key(|(d, _)| d.id);
    Ok(out)
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Edoc => "edoc",
        Kind::Status => "status",
    }
}

/// `yyyy-MM-dd HH:mm:ss`, Vietnam time.
fn time(t: jiff::Timestamp) -> String {
    crate::edxml::time::vietnam_time(t)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// §6.5: pending items, filtered by `messagetype` only.
fn received(hub: &Hub, system: &System, params: &Params) -> Result<Reply, Reply> {
    let want = params.messagetype().map(str::to_ascii_lowercase);
    let data = pending(hub, system)?
        .into_iter()
        .filter(|(_, m)| want.as_deref().is_none_or(|w| w == kind_name(m.kind)))
        .map(|(d, m)| {
            json!({
                "docId": d.id.to_string(),
                "serviceType": "eDoc",
                "messageType": kind_name(m.kind),
                "created_time": time(m.received_at),
                "updated_time": time(d.updated_at),
                "from": m.sender,
                "to": d.recipient,
                "status": "inbox",
                "status_desc": "waiting to be fetched",
            })
        })
        .collect();
    Ok(Reply::ok().data(data))
}

/// The delivery a received DocId names, if it is one of the system's.
fn own_delivery(hub: &Hub, system: &System, doc_id: Option<&str>) -> Result<Delivery, Reply> {
    let Some(doc_id) = doc_id.filter(|d| !d.is_empty()) else {
        return Err(Reply::fail("404", "docId is missing"));
    };
    let not_found = || Reply::fail("404", &format!("no document {doc_id}"));
    let id: DeliveryId = doc_id.parse().map_err(|_| not_found())?;
    let d = hub
        .store
        .delivery(id)
        .map_err(store_failed)?
        .ok_or_else(not_found)?;
    if !system.serves(&d.recipient) {
        return Err(Reply::fail(
            "403",
            &format!(
                "{doc_id} is not addressed to an agency of system {}",
                system.id
            ),
        ));
    }
    Ok(d)
}

/// §6.6 / §6.10: the exact stored bytes of a received item.
fn fetch(hub: &Hub, system: &System, params: &Params) -> Result<(DeliveryId, Vec<u8>), Reply> {
    let d = own_delivery(hub, system, params.doc_id_for_get())?;
    let bytes = hub
        .store
        .body(d.id.message)
        .map_err(store_failed)?
        .ok_or_else(|| {
            Reply::fail(
                "410",
                "the package's bytes were purged after the retention period",
            )
        })?;
    Ok((d.id, bytes))
}

/// §6.7: `done` acknowledges (a delivery receipt to the sender), `fail` refuses (a failure
/// receipt); other values are recorded as progress. Idempotent.
fn update_status(
    hub: &Hub,
    system: &System,
    params: &Params,
    now: jiff::Timestamp,
) -> Result<Reply, Reply> {
    let d = own_delivery(hub, system, params.doc_id_for_update())?;
    let status = params.status().unwrap_or("").to_ascii_lowercase();
    let result = match status.as_str() {
        "done" => match &d.state {
            State::Delivered { .. } => return Ok(Reply::ok()),
            _ => hub.store.ack(d.id, now),
        },
        "fail" => match &d.state {
            State::Rejected { .. } => return Ok(Reply::ok()),
            _ => hub.store.refuse(
                d.id,
                &format!(
                    "the recipient's system {} reported fail (VXP updateStatus)",
                    system.id
                ),
                now,
            ),
        },
        "" => return Err(Reply::fail("400", "status is missing")),
        _ => return Ok(Reply::ok()),
    };
    match result {
        Ok(_) => Ok(Reply::ok()),
        Err(StoreError::InvalidTransition { state, .. }) => Err(Reply::fail(
            "409",
            &format!("{} is {state}: it cannot be set to {status}", d.id),
        )),
        Err(e) => Err(store_failed(e)),
    }
}

/// §6.8: what the system's agencies sent, per recipient.
fn sent(hub: &Hub, system: &System, params: &Params) -> Result<Reply, Reply> {
    let want = params.messagetype().map(str::to_ascii_lowercase);
    let mut messages = Vec::new();
    for agency in &system.agencies {
        let filter = Filter {
            sender: Some(agency.clone()),
            ..Filter::default()
        };
        let mut cursor = None;
        loop {
            let page = hub
                .store
                .messages(&filter, cursor, 500)
                .map_err(store_failed)?;
            messages.extend(page.messages);
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    // A docId that is not one of the caller's sent documents is a stale leftover: ignored.
    if let Some(doc) = params
        .doc_id_for_get()
        .and_then(|d| d.parse::<MessageId>().ok())
    {
        if messages.iter().any(|m| m.id == doc) {
            messages.retain(|m| m.id == doc);
        }
    }
    let mut data = Vec::new();
    for m in messages
        .iter()
        .filter(|m| want.as_deref().is_none_or(|w| w == kind_name(m.kind)))
    {
        for d in hub.store.deliveries(m.id).map_err(store_failed)? {
            let (code, desc) = receive_status(&d);
            let mut item = json!({
                "serviceType": "eDoc",
                "messageType": kind_name(m.kind),
                "senderDocId": m.id.to_string(),
                "receiverDocId": d.id.to_string(),
                "fromCode": m.sender,
                "toCode": d.recipient,
                "title": m.summary.subject.clone().unwrap_or_default(),
                "notation": m.summary.notation.clone().unwrap_or_default(),
                "sentTime": time(m.received_at),
                "sendStatus": "sent",
                "sendStatusDesc": "accepted by the hub",
                "receiveStatus": code,
                "receiveStatusDesc": desc,
            });
            if let State::Delivered { at } = d.state {
                item["receivedTime"] = Value::String(time(at));
            }
            data.push(item);
        }
    }
    Ok(Reply::ok().data(data))
}

/// A delivery's state as getSentEdocList reports it.
fn receive_status(d: &Delivery) -> (&'static str, String) {
    match &d.state {
        State::Delivered { .. } if d.mode == Mode::Pull => {
            ("done", "fetched and acknowledged".into())
        }
        State::Delivered { .. } => ("done", "delivered to the recipient's endpoint".into()),
        State::Rejected { reason, .. } => ("fail", reason.clone()),
        State::Dead { reason, .. } => ("fail", format!("undeliverable: {reason}")),
        State::Cancelled { reason, .. } => ("cancellation", reason.clone()),
        State::Queued | State::InFlight { .. } | State::Retrying { .. } => {
            ("inbox", "waiting for the recipient".into())
        }
    }
}

/// §6.9.
fn count(hub: &Hub, system: &System, kind: Kind) -> Result<Reply, Reply> {
    let n = pending(hub, system)?
        .iter()
        .filter(|(_, m)| m.kind == kind)
        .count();
    Ok(Reply::ok().with("count", json!(n)))
}
