//! What the ops API and the dashboard do, over the [`Hub`]: synchronous, `now` passed in.
//!
//! Views are plain serializable structs (the JSON of the API is exactly them); actions return
//! what changed or a [`Problem`] with a stable code, and every action (done or refused) is
//! written to the audit log with who asked.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::deliver::push::CircuitState;
use crate::directory::Delivery as Route;
use crate::hub::Hub;
use crate::hub::problem::Problem;
use crate::hub::receipts::{self, ReceiptRef};
use crate::store::audit::Change;
use crate::store::{
    self, Delivery, DeliveryId, Event, Filter, Kind, Message, MessageId, Mode, State, StateName,
    StoreError,
};

/// How far back "delivered today" looks for the messages it counts.
const TODAY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// One recipient's queue.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct QueueRow {
    /// The agency.
    pub agency: String,
    /// Its name in the directory (empty when it left the directory).
    pub name: String,
    /// `push` or `pull` (the directory's route; `unknown` when it left the directory).
    pub mode: String,
    /// Waiting to be attempted (push) or in the inbox (pull).
    pub queued: u64,
    /// Leased by a push worker.
    pub in_flight: u64,
    /// Failed, waiting for the next attempt.
    pub retrying: u64,
    /// Given up on.
    pub dead: u64,
    /// Delivered since midnight UTC.
    pub delivered_today: u64,
    /// Delivered, ever (until purged records are dropped: never).
    pub delivered: u64,
    /// Refused by the recipient.
    pub rejected: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Arrival of the oldest message still pending for it.
    pub oldest_pending: Option<Timestamp>,
    /// Seconds since then.
    pub oldest_pending_age_seconds: Option<i64>,
    /// When the next push attempt is due.
    pub next_attempt: Option<Timestamp>,
    /// An operator paused its push deliveries.
    pub paused: bool,
    /// Its endpoint's circuit (`closed`, `open`, `half-open`), for push agencies with a worker.
    pub circuit: Option<CircuitState>,
}

/// Every agency of the directory and every recipient the store knows, with its figures.
pub fn queues(hub: &Hub, now: Timestamp) -> Result<Vec<QueueRow>, Problem> {
    let stats = hub.store.queues().map_err(problem)?;
    let midnight = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .map(|z| z.timestamp())
        .unwrap_or(now);
    let today = hub
        .store
        .delivered_since(midnight, TODAY_WINDOW)
        .map_err(problem)?;
    let paused = hub.store.paused().map_err(problem)?;
    let circuits = hub.push_live.circuits();
    let directory = hub.directory();
    let mut rows: BTreeMap<String, QueueRow> = BTreeMap::new();
    let row = |agency: &str| QueueRow {
        agency: agency.to_owned(),
        mode: "unknown".into(),
        ..QueueRow::default()
    };
    for a in directory.agencies() {
        let mut r = row(a.id.as_str());
        r.name = a.name.clone();
        r.mode = match a.delivery {
            Route::Push { .. } => "push".into(),
            Route::Pull => "pull".into(),
        };
        rows.insert(r.agency.clone(), r);
    }
    for q in stats {
        let r = rows
            .entry(q.recipient.clone())
            .or_insert_with(|| row(&q.recipient));
        let n = |s: StateName| q.counts.get(&s.to_string()).copied().unwrap_or(0);
        r.queued = n(StateName::Queued);
        r.in_flight = n(StateName::InFlight);
        r.retrying = n(StateName::Retrying);
        r.dead = n(StateName::Dead);
        r.delivered = n(StateName::Delivered);
        r.rejected = n(StateName::Rejected);
        r.cancelled = n(StateName::Cancelled);
        r.oldest_pending = q.oldest_pending;
        r.oldest_pending_age_seconds = q.oldest_pending.map(|t| (now - t).get_seconds().max(0));
        r.next_attempt = q.next_due;
    }
    for (agency, n) in today {
        rows.entry(agency.clone())
            .or_insert_with(|| row(&agency))
            .delivered_today = n;
    }
    for agency in paused.keys() {
        rows.entry(agency.clone())
            .or_insert_with(|| row(agency))
            .paused = true;
    }
    for (agency, c) in circuits {
        if let Some(r) = rows.get_mut(&agency) {
            r.circuit = Some(c);
        }
    }
    Ok(rows.into_values().collect())
}

/// One delivery as the console shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DeliveryRow {
    /// `<message id>-<index>`.
    pub id: String,
    /// The recipient.
    pub recipient: String,
    /// Push or pull.
    pub mode: Mode,
    /// Its state and the state's fields (`next_at`, `error`, `lease_until`, `reason`, `at`).
    #[serde(flatten)]
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// When it (re)entered its queue.
    pub since: Timestamp,
    /// Its last change.
    pub updated_at: Timestamp,
    /// The receipt about it, once final.
    pub receipt: Option<String>,
}

impl From<Delivery> for DeliveryRow {
    fn from(d: Delivery) -> Self {
        let receipt = store::receipt_kind(&d.state)
            .and_then(receipts::kind_of)
            .map(|k| ReceiptRef::Delivery(d.id, k).id());
        DeliveryRow {
            id: d.id.to_string(),
            recipient: d.recipient,
            mode: d.mode,
            state: d.state,
            attempts: d.attempts,
            since: d.since,
            updated_at: d.updated_at,
            receipt,
        }
    }
}

/// One message in a listing.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MessageRow {
    /// Its id.
    pub id: String,
    /// edoc or status.
    pub kind: Kind,
    /// The sender agency.
    pub sender: String,
    /// Its DocumentId.
    pub document_id: Option<String>,
    /// Code number and notation, subject (from the header, when recorded).
    pub summary: store::Summary,
    /// Bytes.
    pub size: u64,
    /// When the hub accepted it.
    pub received_at: Timestamp,
    /// Per recipient.
    pub deliveries: Vec<DeliveryRow>,
}

/// A page of messages.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<MessageRow>,
    /// The `cursor` of the next page, if any.
    pub next: Option<String>,
}

/// The search parameters of `GET /admin/api/messages` (and the dashboard's search form).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Search {
    /// Only with a delivery in this state.
    pub state: Option<StateName>,
    /// Only from this sender.
    pub sender: Option<String>,
    /// Only to this recipient.
    pub recipient: Option<String>,
    /// Only with this DocumentId.
    pub document_id: Option<String>,
    /// Received at or after.
    pub since: Option<Timestamp>,
    /// Received before.
    pub until: Option<Timestamp>,
    /// After this message id.
    pub cursor: Option<MessageId>,
    /// Page size (1 to 1000).
    pub limit: usize,
}

impl Search {
    /// Reads the parameters from `name=value` pairs (values percent-decoded already).
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Search, Problem> {
        let mut s = Search {
            limit: 50,
            ..Search::default()
        };
        let bad = |name: &str, v: &str, what: &str| {
            Problem::bad_request(format!("{name}: {v:?} is not {what}"))
        };
        let time = |name: &str, v: &str| -> Result<Timestamp, Problem> {
            v.parse::<Timestamp>()
                .or_else(|_| {
                    v.parse::<jiff::civil::Date>()
                        .map_err(|_| ())
                        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|_| ()))
                        .map(|z| z.timestamp())
                })
                .map_err(|_| bad(name, v, "an RFC 3339 time or a date (YYYY-MM-DD)"))
        };
        for (name, v) in pairs {
            if v.is_empty() {
                continue;
            }
            match name {
                "state" => {
                    s.state = Some(
                        StateName::ALL
                            .into_iter()
                            .find(|n| n.to_string() == v)
                            .ok_or_else(|| {
                                bad(name, v, "a state (queued, in-flight, retrying, delivered, rejected, dead, cancelled)")
                            })?,
                    )
                }
                "sender" => s.sender = Some(v.to_owned()),
                "recipient" => s.recipient = Some(v.to_owned()),
                "document_id" => s.document_id = Some(v.to_owned()),
                "since" => s.since = Some(time(name, v)?),
                "until" => s.until = Some(time(name, v)?),
                "cursor" => s.cursor = Some(v.parse().map_err(|_| bad(name, v, "a message id"))?),
                "limit" => {
                    s.limit = match v.parse::<usize>() {
                        Ok(n) if (1..=1000).contains(&n) => n,
                        _ => return Err(bad(name, v, "a number from 1 to 1000")),
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

fn row(hub: &Hub, m: Message) -> Result<MessageRow, Problem> {
    let deliveries = hub.store.deliveries(m.id).map_err(problem)?;
    Ok(MessageRow {
        id: m.id.to_string(),
        kind: m.kind,
        sender: m.sender,
        document_id: m.document_id,
        summary: m.summary,
        size: m.size,
        received_at: m.received_at,
        deliveries: deliveries.into_iter().map(DeliveryRow::from).collect(),
    })
}

/// Messages matching `search`, oldest first.
pub fn messages(hub: &Hub, search: &Search) -> Result<MessagePage, Problem> {
    let filter = Filter {
        state: search.state,
        sender: search.sender.clone(),
        recipient: search.recipient.clone(),
        document_id: search.document_id.clone(),
        since: search.since,
        until: search.until,
    };
    let page = hub
        .store
        .messages(&filter, search.cursor, search.limit.max(1))
        .map_err(problem)?;
    Ok(MessagePage {
        messages: page
            .messages
            .into_iter()
            .map(|m| row(hub, m))
            .collect::<Result<_, _>>()?,
        next: page.next.map(|id| id.to_string()),
    })
}

/// One message in full.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MessageDetail {
    /// What a listing shows.
    #[serde(flatten)]
    pub message: MessageRow,
    /// The recipients as the package named them.
    pub recipients: Vec<String>,
    /// BussinessDocType.
    pub business_doc_type: Option<u8>,
    /// SHA-256 of the package bytes.
    pub sha256: String,
    /// The signature verdict recorded at acceptance.
    pub verdict: serde_json::Value,
    /// Whether the bytes were purged after the retention period.
    pub purged: bool,
    /// Every event, oldest first.
    pub events: Vec<Event>,
    /// The receipt ids (acceptance first), for `GET /admin/api/receipts/{id}`.
    pub receipts: Vec<String>,
}

/// The full record of one message.
pub fn message(hub: &Hub, id: &str) -> Result<MessageDetail, Problem> {
    let mid = parse_message(id)?;
    let m = hub
        .store
        .message(mid)
        .map_err(problem)?
        .ok_or_else(|| Problem::not_found(format!("no message {id}")))?;
    let events = hub.store.events(mid).map_err(problem)?;
    let (recipients, business_doc_type, sha256, purged) = (
        m.recipients.clone(),
        m.business_doc_type,
        m.digest.clone(),
        m.purged,
    );
    let verdict = serde_json::from_str(&m.verdict).unwrap_or(serde_json::Value::Null);
    let message = row(hub, m)?;
    let mut receipt_ids = vec![ReceiptRef::Acceptance(mid).id()];
    receipt_ids.extend(message.deliveries.iter().filter_map(|d| d.receipt.clone()));
    Ok(MessageDetail {
        message,
        recipients,
        business_doc_type,
        sha256,
        verdict,
        purged,
        events,
        receipts: receipt_ids,
    })
}

/// A receipt's signed XML, by id.
pub fn receipt(hub: &Hub, id: &str) -> Result<Vec<u8>, Problem> {
    let not_found = || Problem::not_found(format!("no receipt {id}"));
    let r = ReceiptRef::parse(id).ok_or_else(not_found)?;
    let found = match r {
        ReceiptRef::Acceptance(m) => hub.store.receipt(m, store::ACCEPTANCE_RECEIPT),
        ReceiptRef::Delivery(d, kind) => hub.store.delivery_receipt(d, receipts::code_of(kind)),
    };
    found.map_err(problem)?.ok_or_else(not_found)
}

/// An operator action on a message's deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make waiting push deliveries due now.
    Retry,
    /// Cancel what is not delivered.
    Cancel,
    /// Put dead deliveries back in their queue.
    Requeue,
}

impl Action {
    /// Its name in paths and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Requeue => "requeue",
        }
    }
}

/// What an action changed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ActionResult {
    /// The action.
    pub action: &'static str,
    /// The message.
    pub message: String,
    /// The deliveries it changed.
    pub changed: Vec<String>,
    /// Every delivery of the message afterwards.
    pub deliveries: Vec<DeliveryRow>,
}

/// Applies `action` to the message `target` (a message id: each of its deliveries it applies
/// to; a delivery id: that one). Refused with `invalid-state` when nothing it names can take
/// the action. Audited with `actor`.
pub fn act(
    hub: &Hub,
    target: &str,
    action: Action,
    reason: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<ActionResult, Problem> {
    let result = act_unaudited(hub, target, action, reason, now);
    let detail = match &result {
        Ok(r) => format!("ok: {}", r.changed.join(",")),
        Err(p) => format!("refused: {} {}", p.code.as_str(), p.detail),
    };
    audit(hub, actor, action.name(), target, detail, now)?;
    result
}

fn act_unaudited(
    hub: &Hub,
    target: &str,
    action: Action,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<ActionResult, Problem> {
    let (mid, only) = match target.parse::<DeliveryId>() {
        Ok(d) => (d.message, Some(d)),
        Err(_) => (parse_message(target)?, None),
    };
    let all = hub.store.deliveries(mid).map_err(problem)?;
    if all.is_empty() {
        return Err(Problem::not_found(format!("no message {mid}")));
    }
    let chosen: Vec<&Delivery> = all
        .iter()
        .filter(|d| only.is_none_or(|o| o == d.id))
        .collect();
    if chosen.is_empty() {
        return Err(Problem::not_found(format!("no delivery {target}")));
    }
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("cancelled by an operator");
    let mut changed = Vec::new();
    for d in chosen {
        let applies = match action {
            Action::Retry => {
                d.mode == Mode::Push && matches!(d.state, State::Retrying { .. } | State::Queued)
            }
            Action::Cancel => !d.state.is_terminal(),
            Action::Requeue => matches!(d.state, State::Dead { .. }),
        };
        if !applies {
            continue;
        }
        let r = match action {
            Action::Retry => hub.store.retry_now(d.id, now),
            Action::Cancel => hub.store.cancel_delivery(d.id, reason, now),
            Action::Requeue => hub.store.requeue(d.id, now),
        };
        match r {
            Ok(_) => {
                if action != Action::Cancel {
                    hub.push_live.wake(&d.recipient);
                }
                changed.push(d.id.to_string())
            }
            // Moved meanwhile (a worker finished it): not applicable any more.
            Err(StoreError::InvalidTransition { .. }) => {}
            Err(e) => return Err(problem(e)),
        }
    }
    if changed.is_empty() {
        let states: Vec<String> = all
            .iter()
            .filter(|d| only.is_none_or(|o| o == d.id))
            .map(|d| format!("{} is {}", d.id, d.state.name()))
            .collect();
        let what = match action {
            Action::Retry => "retry applies to push deliveries that are queued or retrying",
            Action::Cancel => "cancel applies to deliveries not yet finished",
            Action::Requeue => "requeue applies to dead deliveries",
        };
        return Err(Problem::invalid_state(format!(
            "nothing to {}: {what}; {}",
            action.name(),
            states.join(", ")
        )));
    }
    let deliveries = hub.store.deliveries(mid).map_err(problem)?;
    Ok(ActionResult {
        action: action.name(),
        message: mid.to_string(),
        changed,
        deliveries: deliveries.into_iter().map(DeliveryRow::from).collect(),
    })
}

/// What a pause or resume did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PauseResult {
    /// The agency.
    pub agency: String,
    /// Paused now.
    pub paused: bool,
    /// Whether this request changed it.
    pub changed: bool,
}

/// Pauses or resumes push deliveries to `agency` (it must be in the directory). Audited.
pub fn pause(
    hub: &Hub,
    agency: &str,
    paused: bool,
    actor: &str,
    now: Timestamp,
) -> Result<PauseResult, Problem> {
    let action = if paused { "pause" } else { "resume" };
    let directory = hub.directory();
    let result = match directory.agency(agency).map(|a| &a.delivery) {
        None => Err(Problem::not_found(format!(
            "agency {agency} is not in the directory"
        ))),
        Some(Route::Pull) if paused => Err(Problem::invalid_state(format!(
            "{agency} pulls from its inbox: nothing is pushed to it, so there is nothing to pause"
        ))),
        Some(_) => hub
            .store
            .set_paused(agency, paused, now)
            .inspect(|changed| {
                if *changed && !paused {
                    hub.push_live.wake(agency);
                }
            })
            .map(|changed| PauseResult {
                agency: agency.to_owned(),
                paused,
                changed,
            })
            .map_err(problem),
    };
    let detail = match &result {
        Ok(r) if r.changed => "ok".to_owned(),
        Ok(_) => format!("ok: already {}", if paused { "paused" } else { "running" }),
        Err(p) => format!("refused: {} {}", p.code.as_str(), p.detail),
    };
    audit(hub, actor, action, agency, detail, now)?;
    result
}

/// What a reload did, part by part.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReloadResult {
    /// `ok: N agencies`, or why the directory was kept.
    pub directory: String,
    /// `ok: N anchors, M intermediates`, or why the trust material was kept.
    pub trust: String,
    /// `ok: N CRLs`, `none configured`, or what failed.
    pub crls: String,
}

/// Re-reads the directory, the trust anchors and intermediates, and the CRLs; a part that
/// fails keeps its current version. Audited.
pub fn reload(hub: &Hub, actor: &str, now: Timestamp) -> Result<ReloadResult, Problem> {
    let directory = match hub.reload_directory() {
        Ok(()) => format!("ok: {} agencies", hub.directory().agencies().count()),
        Err(e) => format!("kept the current directory: {e}"),
    };
    let trust = match hub.reload_trust(now) {
        Ok((anchors, intermediates)) => {
            format!("ok: {anchors} anchors, {intermediates} intermediates")
        }
        Err(e) => format!("kept the current trust material: {e}"),
    };
    let crls = match hub.reload_crls() {
        None => "none configured".to_owned(),
        Some(r) if r.errors.is_empty() => format!("ok: {} CRLs", r.loaded),
        Some(r) => format!(
            "{} CRLs loaded; kept the previous: {}",
            r.loaded,
            r.errors.join("; ")
        ),
    };
    let result = ReloadResult {
        directory,
        trust,
        crls,
    };
    let detail = format!(
        "directory {}; trust {}; crls {}",
        result.directory, result.trust, result.crls
    );
    audit(hub, actor, "reload", "hub", detail, now)?;
    Ok(result)
}

fn audit(
    hub: &Hub,
    actor: &str,
    action: &str,
    subject: &str,
    detail: String,
    now: Timestamp,
) -> Result<(), Problem> {
    hub.store
        .audit()
        .append(&[Change {
            at: now,
            actor: actor.to_owned(),
            action: format!("admin:{action}"),
            subject: subject.to_owned(),
            detail: Some(detail),
        }])
        .map(|_| ())
        .map_err(problem)
}

fn parse_message(id: &str) -> Result<MessageId, Problem> {
    id.parse()
        .map_err(|_| Problem::not_found(format!("no message {id}")))
}

/// A store error as the problem the admin API answers.
pub fn problem(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound(what) => Problem::not_found(what),
        StoreError::InvalidTransition { .. } => Problem::invalid_state(e.to_string()),
        other => {
            tracing::error!(error = %other, "admin: store failed");
            Problem::internal(format!("the store failed: {other}"))
        }
    }
}
