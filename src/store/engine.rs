//! Every store operation, over a [`Kv`] and a [`Log`]. See the module docs of `store` for
//! the layout, the invariants and the durability contract.
//!
//! Writes to the map happen under one lock, so every read-check-write below is a
//! compare-and-swap; reads take no lock. Acceptances go through the writer and syncer threads
//! (group commit); everything else is applied by the caller's thread. Nothing here reads the clock:
//! every operation takes `now`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::keys;
use super::kv::{Kv, MemKv, Op, SledKv};
use super::log::{FileLog, Loc, Log, MemLog, Position};
use super::model::*;

/// The on-disk store: sled for the map, segment files for the log.
pub type Store = Engine<SledKv, FileLog>;
/// The in-memory store (tests, and the reference the disk store is checked against).
pub type MemStore = Engine<MemKv, MemLog>;

/// Receipt kind of the acceptance receipt.
pub const ACCEPTANCE_RECEIPT: u8 = 0;

/// Store settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest segment file before a new one starts (default 256 MiB; a bigger package gets
    /// a segment of its own).
    pub max_segment: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_segment: 256 << 20,
        }
    }
}

/// What the log record of an acceptance carries besides the receipt and the bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AcceptMeta {
    id: MessageId,
    kind: Kind,
    sender: String,
    recipients: Vec<Recipient>,
    document_id: Option<String>,
    business_doc_type: Option<u8>,
    verdict: String,
    received_at: Timestamp,
    digest: String,
}

/// A body in the log.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Body {
    loc: Loc,
    purged: bool,
}

struct Pending {
    meta: AcceptMeta,
    meta_bytes: Vec<u8>,
    receipt: Vec<u8>,
    bytes: Vec<u8>,
    reply: mpsc::SyncSender<Result<Accepted, StoreError>>,
}

/// Hands batches of work from one pipeline stage to the next: the taker gets everything
/// queued so far, at once.
struct Handoff<T> {
    state: Mutex<(Vec<T>, bool)>,
    ready: Condvar,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff {
            state: Mutex::new((Vec::new(), false)),
            ready: Condvar::new(),
        }
    }
}

impl<T> Handoff<T> {
    /// Queues `items`; hands them back if the stage is closed.
    fn push(&self, items: impl IntoIterator<Item = T>) -> Result<(), Vec<T>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.1 {
            return Err(items.into_iter().collect());
        }
        st.0.extend(items);
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    /// Everything queued, waiting for at least one item; `None` once closed and drained.
    fn take(&self) -> Option<Vec<T>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.0.is_empty() && !st.1 {
            st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.0.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut st.0))
        }
    }

    /// No more pushes; the taker drains what is queued, then stops.
    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.ready.notify_all();
    }
}

/// A record written to the log, waiting for the sync that makes it durable.
struct Written {
    meta: AcceptMeta,
    receipt: Vec<u8>,
    loc: Loc,
    end: Position,
    reply: mpsc::SyncSender<Result<Accepted, StoreError>>,
}

/// Answers every acceptance in `items` with an error.
fn fail_all(items: Vec<Written>, why: &str) {
    for w in items {
        let _ = w.reply.send(Err(StoreError::Io(why.to_owned())));
    }
}

struct Inner<K, L> {
    kv: K,
    log: L,
    /// Serializes every write to the map.
    write: Mutex<()>,
    next_id: AtomicU64,
    /// Acceptances waiting to be written to the log.
    to_write: Handoff<Pending>,
    /// Written, waiting for the fdatasync that makes them durable.
    to_sync: Handoff<Written>,
    /// Set when a log write or sync failed: nothing more is accepted (after a failed
    /// fdatasync the page cache cannot be trusted; a restart replays the log).
    failed: AtomicBool,
    /// Commit batches so far and acceptances in them (for the group-commit figures).
    batches: AtomicU64,
    batched: AtomicU64,
}

/// The store engine.
pub struct Engine<K: Kv, L: Log> {
    inner: Arc<Inner<K, L>>,
    writer: Option<JoinHandle<()>>,
    syncer: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`: `dir/map` (sled) and `dir/log` (segments).
    /// Replays every acceptance logged after the map's watermark.
    pub fn open(dir: &Path, options: &Options) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let kv = SledKv::open(&dir.join("map"))?;
        let log = FileLog::open(&dir.join("log"), options.max_segment)?;
        Engine::with(kv, log)
    }
}

impl MemStore {
    /// An empty in-memory store.
    pub fn memory() -> Self {
        // An empty map and log cannot fail to recover.
        Engine::with(MemKv::default(), MemLog::default()).unwrap_or_else(|_| unreachable!())
    }
}

#[cfg(test)]
mod tests;

fn ms(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    let span = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_add(span).unwrap_or(Timestamp::MAX)
}

impl<K: Kv, L: Log> Engine<K, L> {
    /// A store over this map and log: recovers, then starts the writer and syncer.
    pub fn with(kv: K, log: L) -> Result<Self, StoreError> {
        let inner = Arc::new(Inner {
            kv,
            log,
            write: Mutex::new(()),
            next_id: AtomicU64::new(1),
            to_write: Handoff::default(),
            to_sync: Handoff::default(),
            failed: AtomicBool::new(false),
            batches: AtomicU64::new(0),
            batched: AtomicU64::new(0),
        });
        let replayed = inner.recover()?;
        tracing::info!(
            log = %inner.log.describe(),
            replayed,
            "store open: an acceptance returns only after fdatasync of its log segment; \
             the map is rebuilt from the log after a crash, sled's flush is not relied on"
        );
        let worker = inner.clone();
        let writer = std::thread::Builder::new()
            .name("store-write".into())
            .spawn(move || worker.write_loop())?;
        let worker = inner.clone();
        let syncer = std::thread::Builder::new()
            .name("store-sync".into())
            .spawn(move || worker.sync_loop())?;
        Ok(Engine {
            inner,
            writer: Some(writer),
            syncer: Some(syncer),
        })
    }

    /// Accepts a verified package: returns once it is durable. `receipt` builds the signed
    /// acceptance receipt for the new message id; it is stored with the message. The same
    /// sender sending the same bytes again gets the first message and its receipt.
    pub fn accept(
        &self,
        m: NewMessage,
        receipt: &dyn Fn(MessageId) -> Vec<u8>,
    ) -> Result<Accepted, StoreError> {
        if m.recipients.is_empty() {
            return Err(StoreError::Invalid(
                "a message needs at least one recipient".into(),
            ));
        }
        if m.recipients.len() > usize::from(u16::MAX) {
            return Err(StoreError::Invalid(
                "a message has at most 65,535 recipients".into(),
            ));
        }
        let digest = crate::pki::sha256(&m.bytes);
        let inner = &self.inner;
        if let Some(dup) = inner.duplicate(&m.sender, &digest)? {
            return Ok(dup);
        }
        let meta = AcceptMeta {
            id: MessageId(inner.next_id.fetch_add(1, Ordering::SeqCst)),
            kind: m.kind,
            sender: m.sender,
            recipients: m.recipients,
            document_id: m.document_id,
            business_doc_type: m.business_doc_type,
            verdict: m.verdict,
            received_at: m.received_at,
            digest: crate::pki::hex(&digest),
        };
        inner.conflict(&meta)?;
        let receipt = receipt(meta.id);
        let (tx, rx) = mpsc::sync_channel(1);
        let pending = Pending {
            meta_bytes: encode(&meta),
            meta,
            receipt,
            bytes: m.bytes,
            reply: tx,
        };
        if inner.to_write.push([pending]).is_err() {
            return Err(StoreError::Closed);
        }
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// The acceptance of an earlier identical package from `sender`, if any.
    pub fn find_duplicate(
        &self,
        sender: &str,
        bytes: &[u8],
    ) -> Result<Option<Accepted>, StoreError> {
        self.inner.duplicate(sender, &crate::pki::sha256(bytes))
    }

    /// A message's metadata.
    pub fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.inner.message(id)
    }

    /// The package bytes (`None` once purged).
    pub fn body(&self, id: MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(m) = self.inner.message(id)? else {
            return Err(StoreError::NotFound(format!("message {id}")));
        };
        let Some(body) = self.inner.body_entry(&m.digest)? else {
            return Err(StoreError::Corrupt(format!("message {id}: no body entry")));
        };
        if body.purged {
            return Ok(None);
        }
        self.inner.log.read(body.loc).map(Some)
    }

    /// Every delivery of a message, by index.
    pub fn deliveries(&self, id: MessageId) -> Result<Vec<Delivery>, StoreError> {
        let prefix = keys::deliveries_of(id);
        self.inner
            .kv
            .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?
            .iter()
            .map(|(_, v)| decode(v, "delivery"))
            .collect()
    }

    /// One delivery.
    pub fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.inner.delivery(id)
    }

    /// A message's timeline.
    pub fn events(&self, id: MessageId) -> Result<Vec<Event>, StoreError> {
        let prefix = keys::events_of(id);
        self.inner
            .kv
            .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?
            .iter()
            .map(|(_, v)| decode(v, "event"))
            .collect()
    }

    /// A stored receipt (`ACCEPTANCE_RECEIPT` or a later kind).
    pub fn receipt(&self, id: MessageId, kind: u8) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.kv.get(&keys::receipt(id, kind))
    }

    /// Stores a later receipt (delivery, failure) for a message, with an event.
    pub fn add_receipt(
        &self,
        id: MessageId,
        kind: u8,
        receipt: Vec<u8>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let _w = inner.lock();
        if inner.message(id)?.is_none() {
            return Err(StoreError::NotFound(format!("message {id}")));
        }
        let mut batch = vec![(keys::receipt(id, kind), Some(receipt))];
        inner.event(
            &mut batch,
            id,
            now,
            None,
            "receipt",
            None,
            Some(format!("kind {kind}")),
        )?;
        inner.kv.apply(batch)
    }

    /// Claims up to `limit` push deliveries due at `now` (queued, retry due, or with an expired
    /// lease), leasing each until `now + lease`.
    pub fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        let inner = &self.inner;
        let _w = inner.lock();
        let due = inner.kv.scan(
            &[keys::DUE],
            &keys::due(
                ms(now).saturating_add(1),
                DeliveryId {
                    message: MessageId(0),
                    index: 0,
                },
            ),
            limit,
        )?;
        let lease_until = add(now, lease);
        let mut claims = Vec::new();
        for (key, _) in due {
            let Some((_, id)) = keys::parse_due(&key) else {
                continue;
            };
            let Some(d) = inner.delivery(id)? else {
                continue;
            };
            let reclaimed = matches!(d.state, State::InFlight { .. });
            let mut next = d.clone();
            next.state = State::InFlight { lease_until };
            next.attempts += 1;
            next.updated_at = now;
            let detail = format!(
                "attempt {}{}",
                next.attempts,
                if reclaimed {
                    " (previous lease expired)"
                } else {
                    ""
                }
            );
            inner.commit_change(&d, &next, now, "claimed", Some(detail))?;
            claims.push(Claim {
                delivery: id,
                recipient: d.recipient,
                attempt: next.attempts,
                lease_until,
            });
        }
        Ok(claims)
    }

    /// The claimed attempt `attempt` delivered it (2xx).
    pub fn delivered(
        &self,
        id: DeliveryId,
        attempt: u32,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.finish(
            id,
            attempt,
            now,
            "delivered",
            State::Delivered { at: now },
            None,
        )
    }

    /// The recipient refused it (permanent; no retry).
    pub fn rejected(
        &self,
        id: DeliveryId,
        attempt: u32,
        reason: &str,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        let state = State::Rejected {
            at: now,
            reason: reason.to_owned(),
        };
        self.finish(id, attempt, now, "rejected", state, Some(reason.to_owned()))
    }

    /// The attempt failed: retry at `retry_at`, or give up (`None`: dead).
    pub fn failed(
        &self,
        id: DeliveryId,
        attempt: u32,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        let (what, state) = match retry_at {
            Some(next_at) => (
                "retrying",
                State::Retrying {
                    next_at,
                    error: error.to_owned(),
                },
            ),
            None => (
                "dead",
                State::Dead {
                    at: now,
                    reason: error.to_owned(),
                },
            ),
        };
        self.finish(id, attempt, now, what, state, Some(error.to_owned()))
    }

    fn finish(
        &self,
        id: DeliveryId,
        attempt: u32,
        now: Timestamp,
        what: &'static str,
        state: State,
        detail: Option<String>,
    ) -> Result<Delivery, StoreError> {
        self.inner.transition(id, now, what, detail, |d| {
            (matches!(d.state, State::InFlight { .. }) && d.attempts == attempt).then_some(state)
        })
    }

    /// A pull recipient acknowledged it.
    pub fn ack(&self, id: DeliveryId, now: Timestamp) -> Result<Delivery, StoreError> {
        self.inner.transition(id, now, "acknowledged", None, |d| {
            (d.mode == Mode::Pull && d.state == State::Queued)
                .then_some(State::Delivered { at: now })
        })
    }

    /// A pull recipient refused it.
    pub fn refuse(
        &self,
        id: DeliveryId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.inner
            .transition(id, now, "rejected", Some(reason.to_owned()), |d| {
                (d.mode == Mode::Pull && d.state == State::Queued).then(|| State::Rejected {
                    at: now,
                    reason: reason.to_owned(),
                })
            })
    }

    /// Cancels every delivery of a message not yet finished; returns how many.
    pub fn cancel(&self, id: MessageId, reason: &str, now: Timestamp) -> Result<usize, StoreError> {
        let mut n = 0;
        for d in self.deliveries(id)? {
            if d.state.is_terminal() {
                continue;
            }
            let r = self
                .inner
                .transition(d.id, now, "cancelled", Some(reason.to_owned()), |d| {
                    (!d.state.is_terminal()).then(|| State::Cancelled {
                        at: now,
                        reason: reason.to_owned(),
                    })
                });
            match r {
                Ok(_) => n += 1,
                Err(StoreError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Makes a waiting push delivery due now (operator action).
    pub fn retry_now(&self, id: DeliveryId, now: Timestamp) -> Result<Delivery, StoreError> {
        self.inner.transition(id, now, "retry-now", None, |d| {
            (d.mode == Mode::Push && matches!(d.state, State::Retrying { .. } | State::Queued))
                .then_some(State::Queued)
        })
    }

    /// Puts a dead delivery back in its queue, attempts and age starting over (operator
    /// action).
    pub fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<Delivery, StoreError> {
        let inner = &self.inner;
        let _w = inner.lock();
        let d = inner
            .delivery(id)?
            .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))?;
        if !matches!(d.state, State::Dead { .. }) {
            return Err(StoreError::InvalidTransition {
                delivery: id,
                state: d.state.name(),
                what: "requeue",
            });
        }
        let next = Delivery {
            state: State::Queued,
            attempts: 0,
            since: now,
            updated_at: now,
            ..d.clone()
        };
        inner.commit_change(&d, &next, now, "requeued", None)?;
        Ok(next)
    }

    /// Pull deliveries waiting in `recipient`'s inbox, oldest first, after `cursor`.
    pub fn inbox(
        &self,
        recipient: &str,
        cursor: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let prefix = keys::inbox_of(recipient);
        let start = match cursor {
            Some(c) => {
                let mut k = keys::inbox(recipient, c);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for (k, _) in self
            .inner
            .kv
            .scan(&start, &keys::prefix_end(&prefix), limit)?
        {
            if let Some(d) =
                keys::trailing_delivery(&k).and_then(|id| self.inner.delivery(id).transpose())
            {
                out.push(d?);
            }
        }
        Ok(out)
    }

    /// Purges the bytes of messages whose deliveries all finished at least `retention` before
    /// `now` (metadata, receipts and events stay), then deletes log segments no longer needed.
    /// Returns how many messages were purged.
    pub fn purge(&self, now: Timestamp, retention: Duration) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let cutoff = now
            .checked_sub(
                jiff::SignedDuration::try_from(retention).unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MIN);
        let start = [keys::BY_TIME];
        let end = keys::by_time(ms(cutoff).saturating_add(1), MessageId(0));
        let mut purged = 0;
        let mut cursor = start.to_vec();
        loop {
            let page = inner.kv.scan(&cursor, &end, 1024)?;
            let Some((last, _)) = page.last() else { break };
            cursor = last.clone();
            cursor.push(0);
            for (k, _) in &page {
                let Some(id) = keys::trailing_message(k) else {
                    continue;
                };
                if self.purge_one(id, cutoff, now)? {
                    purged += 1;
                }
            }
        }
        // Segments still holding a live body, and the watermark's, stay.
        let mut live = BTreeSet::new();
        let bodies = inner
            .kv
            .scan(&[keys::BODY], &[keys::BODY + 1], usize::MAX)?;
        for (_, v) in bodies {
            let b: Body = decode(&v, "body")?;
            if !b.purged {
                live.insert(b.loc.segment);
            }
        }
        let below = inner.watermark()?.segment;
        let removed = inner.log.remove_segments(&live, below)?;
        if purged > 0 || removed > 0 {
            tracing::info!(purged, segments_removed = removed, "retention purge");
        }
        Ok(purged)
    }

    fn purge_one(
        &self,
        id: MessageId,
        cutoff: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let _w = inner.lock();
        let Some(mut m) = inner.message(id)? else {
            return Ok(false);
        };
        if m.purged {
            return Ok(false);
        }
        let deliveries = self.deliveries(id)?;
        if !deliveries
            .iter()
            .all(|d| d.state.is_terminal() && d.updated_at <= cutoff)
        {
            return Ok(false);
        }
        m.purged = true;
        let mut batch = vec![(keys::message(id), Some(encode(&m)))];
        if let Some(mut b) = inner.body_entry(&m.digest)? {
            b.purged = true;
            batch.push((body_key(&m.digest)?, Some(encode(&b))));
        }
        inner.event(&mut batch, id, now, None, "purged", None, None)?;
        inner.kv.apply(batch)?;
        Ok(true)
    }

    /// Per-recipient figures: counts by state, oldest pending arrival, next due attempt.
    pub fn queues(&self) -> Result<Vec<QueueStats>, StoreError> {
        let inner = &self.inner;
        let mut out = Vec::new();
        let mut start = vec![keys::BY_STATE];
        let end = vec![keys::BY_STATE + 1];
        // Walk recipients by skipping from one recipient's keys to the next.
        while let Some((k, _)) = inner.kv.scan(&start, &end, 1)?.pop() {
            let Some(zero) = k.iter().position(|b| *b == 0) else {
                break;
            };
            let recipient = String::from_utf8_lossy(&k[1..zero]).into_owned();
            let mut stats = QueueStats {
                recipient: recipient.clone(),
                ..QueueStats::default()
            };
            for state in StateName::ALL {
                let prefix = keys::by_state_of(&recipient, state);
                let n = inner.kv.count(&prefix, &keys::prefix_end(&prefix))?;
                if n > 0 {
                    stats.counts.insert(state.to_string(), n);
                }
                if state.is_terminal() || n == 0 {
                    continue;
                }
                if let Some((first, _)) =
                    inner.kv.scan(&prefix, &keys::prefix_end(&prefix), 1)?.pop()
                {
                    if let Some(m) = keys::trailing_delivery(&first)
                        .and_then(|d| inner.message(d.message).transpose())
                    {
                        let at = m?.received_at;
                        stats.oldest_pending =
                            Some(stats.oldest_pending.map_or(at, |o: Timestamp| o.min(at)));
                    }
                }
                if matches!(state, StateName::Queued | StateName::Retrying) {
                    for (key, _) in
                        inner
                            .kv
                            .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?
                    {
                        let Some(d) = keys::trailing_delivery(&key)
                            .and_then(|id| inner.delivery(id).transpose())
                        else {
                            continue;
                        };
                        let d = d?;
                        if let Some(due) = due_at(&d) {
                            stats.next_due =
                                Some(stats.next_due.map_or(due, |n: Timestamp| n.min(due)));
                        }
                    }
                }
            }
            out.push(stats);
            start = keys::prefix_end(&k[..=zero]);
        }
        Ok(out)
    }

    /// Messages matching `filter`, oldest first, `limit` per page, after `cursor`.
    pub fn messages(
        &self,
        filter: &Filter,
        cursor: Option<MessageId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let inner = &self.inner;
        let mut start = keys::by_time(filter.since.map_or(0, ms), MessageId(0));
        if let Some(c) = cursor {
            match inner.message(c)? {
                Some(m) => {
                    start = keys::by_time(ms(m.received_at), MessageId(c.0.saturating_add(1)))
                }
                None => return Err(StoreError::NotFound(format!("cursor {c}"))),
            }
        }
        let end = match filter.until {
            Some(u) => keys::by_time(ms(u), MessageId(0)),
            None => vec![keys::BY_TIME + 1],
        };
        let mut page = Page::default();
        loop {
            let chunk = inner.kv.scan(&start, &end, 512)?;
            let Some((last, _)) = chunk.last() else { break };
            start = last.clone();
            start.push(0);
            for (k, _) in &chunk {
                let Some(id) = keys::trailing_message(k) else {
                    continue;
                };
                let Some(m) = inner.message(id)? else {
                    continue;
                };
                if !self.matches(&m, filter)? {
                    continue;
                }
                if page.messages.len() == limit {
                    page.next = page.messages.last().map(|m| m.id);
                    return Ok(page);
                }
                page.messages.push(m);
            }
        }
        Ok(page)
    }

    fn matches(&self, m: &Message, f: &Filter) -> Result<bool, StoreError> {
        if f.sender.as_ref().is_some_and(|s| *s != m.sender)
            || f.recipient
                .as_ref()
                .is_some_and(|r| !m.recipients.contains(r))
            || f.document_id
                .as_ref()
                .is_some_and(|d| m.document_id.as_ref() != Some(d))
        {
            return Ok(false);
        }
        if let Some(state) = f.state {
            let deliveries = self.deliveries(m.id)?;
            return Ok(deliveries.iter().any(|d| {
                d.state.name() == state && f.recipient.as_ref().is_none_or(|r| *r == d.recipient)
            }));
        }
        Ok(true)
    }

    /// Makes every change so far durable (sled flush and fdatasync of its file), which also
    /// bounds replay after a crash. Call on shutdown, or after operations that must not be
    /// repeated.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.kv.sync()
    }

    /// Checks invariants 1 and 2 of the module docs over the whole map: every delivery has
    /// exactly the index entries its state calls for, and no index entry lacks its delivery.
    /// For tests and `truc store check`; reads everything.
    pub fn check_indexes(&self) -> Result<(), String> {
        let inner = &self.inner;
        let err = |e: StoreError| e.to_string();
        let mut expected = BTreeSet::new();
        let all = inner
            .kv
            .scan(&[keys::DELIVERY], &[keys::DELIVERY + 1], usize::MAX)
            .map_err(err)?;
        for (_, v) in all {
            let d: Delivery = decode(&v, "delivery").map_err(err)?;
            if inner.message(d.id.message).map_err(err)?.is_none() {
                return Err(format!("delivery {} without its message", d.id));
            }
            expected.extend(index_keys(&d));
        }
        let mut found = BTreeSet::new();
        for tag in [keys::BY_STATE, keys::DUE, keys::INBOX] {
            for (k, _) in inner.kv.scan(&[tag], &[tag + 1], usize::MAX).map_err(err)? {
                found.insert(k);
            }
        }
        if let Some(k) = expected.difference(&found).next() {
            return Err(format!("missing index entry {k:?}"));
        }
        if let Some(k) = found.difference(&expected).next() {
            return Err(format!("stray index entry {k:?}"));
        }
        Ok(())
    }

    /// Commit batches so far and the acceptances they carried.
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.inner.batches.load(Ordering::Relaxed),
            self.inner.batched.load(Ordering::Relaxed),
        )
    }

    /// Stops the writer and syncer (waiting acceptances are still committed) and syncs the map.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.stop();
        self.inner.kv.sync()
        // Drop then syncs again, which is cheap with nothing to flush.
    }

    fn stop(&mut self) {
        // Each stage drains what it was handed, then the next one is closed.
        self.inner.to_write.close();
        if let Some(t) = self.writer.take() {
            let _ = t.join();
        }
        self.inner.to_sync.close();
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
    }
}

impl<K: Kv, L: Log> Drop for Engine<K, L> {
    /// A graceful stop: waiting acceptances are committed and the map is synced.
    fn drop(&mut self) {
        self.stop();
        if let Err(e) = self.inner.kv.sync() {
            tracing::error!(error = %e, "store: final sync failed; the log will be replayed");
        }
    }
}

/// When a waiting push delivery is next due.
fn due_at(d: &Delivery) -> Option<Timestamp> {
    if d.mode != Mode::Push {
        return None;
    }
    match &d.state {
        State::Queued => Some(d.updated_at),
        State::Retrying { next_at, .. } => Some(*next_at),
        State::InFlight { lease_until } => Some(*lease_until),
        _ => None,
    }
}

/// The index keys a delivery in this state has (besides its record).
fn index_keys(d: &Delivery) -> Vec<Vec<u8>> {
    let mut out = vec![keys::by_state(&d.recipient, d.state.name(), d.id)];
    if let Some(due) = due_at(d) {
        out.push(keys::due(ms(due), d.id));
    }
    if d.mode == Mode::Pull && d.state == State::Queued {
        out.push(keys::inbox(&d.recipient, d.id));
    }
    out
}

fn body_key(digest_hex: &str) -> Result<Vec<u8>, StoreError> {
    let mut digest = [0u8; 32];
    if digest_hex.len() != 64 {
        return Err(StoreError::Corrupt(format!("digest {digest_hex:?}")));
    }
    for (i, b) in digest.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digest_hex[2 * i..2 * i + 2], 16)
            .map_err(|_| StoreError::Corrupt(format!("digest {digest_hex:?}")))?;
    }
    Ok(keys::body(&digest))
}

impl<K: Kv, L: Log> Inner<K, L> {
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.kv
            .get(&keys::message(id))?
            .map(|v| decode(&v, "message"))
            .transpose()
    }

    fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.kv
            .get(&keys::delivery(id))?
            .map(|v| decode(&v, "delivery"))
            .transpose()
    }

    fn body_entry(&self, digest_hex: &str) -> Result<Option<Body>, StoreError> {
        self.kv
            .get(&body_key(digest_hex)?)?
            .map(|v| decode(&v, "body"))
            .transpose()
    }

    fn watermark(&self) -> Result<Position, StoreError> {
        Ok(self
            .kv
            .get(keys::WATERMARK)?
            .map(|v| decode(&v, "watermark"))
            .transpose()?
            .unwrap_or_default())
    }

    fn duplicate(&self, sender: &str, digest: &[u8; 32]) -> Result<Option<Accepted>, StoreError> {
        let Some(v) = self.kv.get(&keys::idempotency(sender, digest))? else {
            return Ok(None);
        };
        let id: MessageId = decode(&v, "idempotency")?;
        let receipt = self
            .kv
            .get(&keys::receipt(id, ACCEPTANCE_RECEIPT))?
            .unwrap_or_default();
        Ok(Some(Accepted::Duplicate { id, receipt }))
    }

    /// A new document reusing a DocumentId of the same sender: the conflicting message.
    fn conflict(&self, meta: &AcceptMeta) -> Result<(), StoreError> {
        let (Some(doc), Kind::Edoc, None | Some(0)) =
            (&meta.document_id, meta.kind, meta.business_doc_type)
        else {
            return Ok(());
        };
        let prefix = keys::document_of(&meta.sender, doc);
        for (k, _) in self
            .kv
            .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?
        {
            let Some(existing) = keys::trailing_message(&k) else {
                continue;
            };
            let Some(m) = self.message(existing)? else {
                continue;
            };
            if m.kind == Kind::Edoc && m.digest != meta.digest {
                return Err(StoreError::Conflict {
                    sender: meta.sender.clone(),
                    document_id: doc.clone(),
                    existing,
                });
            }
        }
        Ok(())
    }

    /// Appends an event to `batch` (its sequence after the message's last event).
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        batch: &mut Vec<Op>,
        id: MessageId,
        at: Timestamp,
        delivery: Option<u16>,
        what: &str,
        state: Option<&State>,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let prefix = keys::events_of(id);
        let stored = self.kv.last(&prefix, &keys::prefix_end(&prefix))?;
        let mut seq = match stored {
            Some((k, _)) => u32::from_be_bytes(k[9..13].try_into().unwrap_or_default()) + 1,
            None => 0,
        };
        // Events already in this batch come after the stored ones.
        seq += batch.iter().filter(|(k, _)| k.starts_with(&prefix)).count() as u32;
        let e = Event {
            seq,
            at,
            delivery,
            what: what.to_owned(),
            state: state.map(State::name),
            detail,
        };
        batch.push((keys::event(id, seq), Some(encode(&e))));
        Ok(())
    }

    /// Adds to `batch` the writes that turn `old` into `new`: the record and its indexes.
    fn change(
        &self,
        batch: &mut Vec<Op>,
        old: &Delivery,
        new: &Delivery,
    ) -> Result<(), StoreError> {
        let before = index_keys(old);
        let after = index_keys(new);
        for k in &before {
            if !after.contains(k) {
                batch.push((k.clone(), None));
            }
        }
        for k in after {
            if !before.contains(&k) {
                batch.push((k, Some(Vec::new())));
            }
        }
        batch.push((keys::delivery(new.id), Some(encode(new))));
        Ok(())
    }

    /// Applies `next(delivery)` if it returns a state; otherwise the transition is invalid.
    fn transition(
        &self,
        id: DeliveryId,
        now: Timestamp,
        what: &'static str,
        detail: Option<String>,
        next: impl FnOnce(&Delivery) -> Option<State>,
    ) -> Result<Delivery, StoreError> {
        let _w = self.lock();
        let d = self
            .delivery(id)?
            .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))?;
        let Some(state) = next(&d) else {
            return Err(StoreError::InvalidTransition {
                delivery: id,
                state: d.state.name(),
                what,
            });
        };
        let new = Delivery {
            state,
            updated_at: now,
            ..d.clone()
        };
        self.commit_change(&d, &new, now, what, detail)?;
        Ok(new)
    }

    /// Writes one delivery's move from `old` to `new` and its event, in one batch. The caller
    /// holds the writer lock.
    fn commit_change(
        &self,
        old: &Delivery,
        new: &Delivery,
        now: Timestamp,
        what: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let mut batch = Vec::new();
        self.change(&mut batch, old, new)?;
        self.event(
            &mut batch,
            new.id.message,
            now,
            Some(new.id.index),
            what,
            Some(&new.state),
            detail,
        )?;
        self.kv.apply(batch)
    }

    /// Group commit, first stage: appends every waiting acceptance to the log (page cache
    /// only) and hands them to the sync stage.
    fn write_loop(&self) {
        while let Some(batch) = self.to_write.take() {
            let mut written = Vec::with_capacity(batch.len());
            for p in batch {
                if self.failed.load(Ordering::SeqCst) {
                    let _ = p.reply.send(Err(StoreError::Io(
                        "an earlier log write failed; restart the hub to recover".into(),
                    )));
                    continue;
                }
                match self.log.append(&p.meta_bytes, &p.receipt, &p.bytes) {
                    Ok((loc, end)) => written.push(Written {
                        meta: p.meta,
                        receipt: p.receipt,
                        loc,
                        end,
                        reply: p.reply,
                    }),
                    Err(e) => {
                        self.failed.store(true, Ordering::SeqCst);
                        let _ = p.reply.send(Err(e));
                    }
                }
            }
            if let Err(refused) = self.to_sync.push(written) {
                // Cannot happen: the sync stage closes only after this one stopped.
                fail_all(refused, "the store is closing");
            }
        }
    }

    /// Group commit, second stage: one `fdatasync` for everything written so far (a group
    /// closes when the previous sync returns), then the group goes into the map in one batch
    /// and every acceptance in it is answered. (Applying on a third thread, overlapping the
    /// next sync, measured slower: the map apply is CPU-bound and smaller groups cost more
    /// per key.)
    fn sync_loop(&self) {
        while let Some(group) = self.to_sync.take() {
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.batched
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            if let Err(e) = self.log.sync() {
                self.failed.store(true, Ordering::SeqCst);
                tracing::error!(error = %e, "log fdatasync failed: refusing acceptances until restart");
                fail_all(group, &format!("log sync: {e}"));
                continue;
            }
            let (records, replies): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|w| ((w.meta, w.receipt, w.loc, w.end), w.reply))
                .unzip();
            match self.apply_group(records, false) {
                Ok(results) => {
                    for (r, reply) in results.into_iter().zip(replies) {
                        let _ = reply.send(r);
                    }
                }
                Err(e) => {
                    // Durable in the log, not in the map: a restart replays them.
                    tracing::error!(error = %e, "applying acceptances to the map failed");
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Io(e.to_string())));
                    }
                }
            }
        }
    }

    /// Writes logged acceptances into the map in one atomic batch, in log order, and moves
    /// the watermark past the last. Idempotent: replay may repeat records already applied.
    fn apply_group(
        &self,
        records: Vec<(AcceptMeta, Vec<u8>, Loc, Position)>,
        replay: bool,
    ) -> Result<Vec<Result<Accepted, StoreError>>, StoreError> {
        let _w = self.lock();
        let mut batch: Vec<Op> = Vec::new();
        let mut group = Group::default();
        let mut results = Vec::with_capacity(records.len());
        let mut last = None;
        for (meta, receipt, loc, end) in records {
            last = Some(end);
            results.push(self.apply_one(&mut batch, &mut group, &meta, receipt, loc, replay)?);
        }
        if let Some(end) = last {
            batch.push((keys::WATERMARK.to_vec(), Some(encode(&end))));
        }
        self.kv.apply(batch)?;
        Ok(results)
    }

    /// Adds one acceptance to `batch`; `group` holds what earlier records of the same batch
    /// decided, since the map does not show them yet.
    fn apply_one(
        &self,
        batch: &mut Vec<Op>,
        group: &mut Group,
        meta: &AcceptMeta,
        receipt: Vec<u8>,
        loc: Loc,
        replay: bool,
    ) -> Result<Result<Accepted, StoreError>, StoreError> {
        let digest_key = body_key(&meta.digest)?;
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&digest_key[1..]);
        let idem = keys::idempotency(&meta.sender, &digest);
        // Only a replay can meet a record already applied: a live id is new.
        if replay && self.message(meta.id)?.is_some() {
            return Ok(Ok(Accepted::New {
                id: meta.id,
                receipt,
            }));
        }
        if let Some((id, receipt)) = group.seen.get(&idem) {
            return Ok(Ok(Accepted::Duplicate {
                id: *id,
                receipt: receipt.clone(),
            }));
        }
        if let Some(dup) = self.duplicate(&meta.sender, &digest)? {
            return Ok(Ok(dup));
        }
        let new_document = matches!(
            (&meta.document_id, meta.kind, meta.business_doc_type),
            (Some(_), Kind::Edoc, None | Some(0))
        );
        if new_document {
            if let Some(doc) = &meta.document_id {
                let docs = keys::document_of(&meta.sender, doc);
                if let Some((existing, other)) = group.documents.get(&docs) {
                    if *other != meta.digest {
                        return Ok(Err(StoreError::Conflict {
                            sender: meta.sender.clone(),
                            document_id: doc.clone(),
                            existing: *existing,
                        }));
                    }
                }
            }
            if let Err(e) = self.conflict(meta) {
                return Ok(Err(e));
            }
        }
        let id = meta.id;
        group.seen.insert(idem.clone(), (id, receipt.clone()));
        if let Some(doc) = &meta.document_id {
            group
                .documents
                .entry(keys::document_of(&meta.sender, doc))
                .or_insert((id, meta.digest.clone()));
        }
        let message = Message {
            id,
            kind: meta.kind,
            sender: meta.sender.clone(),
            recipients: meta.recipients.iter().map(|r| r.agency.clone()).collect(),
            document_id: meta.document_id.clone(),
            business_doc_type: meta.business_doc_type,
            digest: meta.digest.clone(),
            size: loc.len,
            received_at: meta.received_at,
            verdict: meta.verdict.clone(),
            purged: false,
        };
        let at = meta.received_at;
        batch.extend([
            (keys::message(id), Some(encode(&message))),
            (keys::by_time(ms(at), id), Some(Vec::new())),
            (idem, Some(encode(&id))),
            (keys::receipt(id, ACCEPTANCE_RECEIPT), Some(receipt.clone())),
            (digest_key, Some(encode(&Body { loc, purged: false }))),
        ]);
        if let Some(doc) = &meta.document_id {
            batch.push((keys::document(&meta.sender, doc, id), Some(Vec::new())));
        }
        // One event for the acceptance and the queueing of every delivery.
        let to: Vec<String> = meta
            .recipients
            .iter()
            .map(|r| match r.mode {
                Mode::Push => format!("{} (push)", r.agency),
                Mode::Pull => format!("{} (pull)", r.agency),
            })
            .collect();
        let event = Event {
            seq: 0,
            at,
            delivery: None,
            what: "accepted".into(),
            state: Some(StateName::Queued),
            detail: Some(format!("queued for {}", to.join(", "))),
        };
        batch.push((keys::event(id, 0), Some(encode(&event))));
        for (i, r) in meta.recipients.iter().enumerate() {
            let d = Delivery {
                id: DeliveryId {
                    message: id,
                    index: i as u16,
                },
                recipient: r.agency.clone(),
                mode: r.mode,
                state: State::Queued,
                attempts: 0,
                since: at,
                updated_at: at,
            };
            for k in index_keys(&d) {
                batch.push((k, Some(Vec::new())));
            }
            batch.push((keys::delivery(d.id), Some(encode(&d))));
        }
        Ok(Ok(Accepted::New { id, receipt }))
    }

    /// Replays the log after the watermark and sets the next message id. Returns how many
    /// records were replayed.
    fn recover(&self) -> Result<usize, StoreError> {
        let from = self.watermark()?;
        let records = self.log.replay(from)?;
        let mut max = self
            .kv
            .last(&[keys::MESSAGE], &[keys::MESSAGE + 1])?
            .and_then(|(k, _)| keys::trailing_message(&k))
            .map_or(0, |m| m.0);
        let n = records.len();
        let mut group = Vec::new();
        for r in records {
            let meta: AcceptMeta = decode(&r.meta, "log record")?;
            max = max.max(meta.id.0);
            group.push((meta, r.receipt, r.body, r.end));
            if group.len() == 1024 {
                self.apply_group(std::mem::take(&mut group), true)?;
            }
        }
        if !group.is_empty() {
            self.apply_group(group, true)?;
        }
        self.next_id.store(max + 1, Ordering::SeqCst);
        Ok(n)
    }
}

/// What earlier acceptances of one commit group decided.
#[derive(Default)]
struct Group {
    /// Idempotency key → message and receipt.
    seen: std::collections::HashMap<Vec<u8>, (MessageId, Vec<u8>)>,
    /// Sender and DocumentId prefix → first message and its digest.
    documents: std::collections::HashMap<Vec<u8>, (MessageId, String)>,
}
