//! Every store operation, over a [`Kv`] and a [`Log`]. See the module docs of `store` for
//! the layout, the invariants and the durability contract.
//!
//! Writes to the map happen under one lock, so every read-check-write below is a
//! compare-and-swap; reads take no lock. Acceptances are written to the log by their callers'
//! threads and committed by the sync thread (group commit); everything else is applied by the
//! caller's thread. Nothing here reads the clock: every operation takes `now`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::audit::{self, AuditLog, Change};
use super::codec::{decode, encode};
use super::keys;
use super::kv::{Kv, MemKv, Op, SledKv};
use super::log::{Encoded, FileLog, Loc, Log, MemLog, Position, Slot};
use super::model::*;

/// The on-disk store: sled for the map, segment files for the log.
pub type Store = Engine<SledKv, FileLog>;
/// The in-memory store (tests, and the reference the disk store is checked against).
pub type MemStore = Engine<MemKv, MemLog>;

/// How far an id's time may run ahead of the message's `received_at` (acceptances from
/// threads whose clocks were read in another order); time-window listings look this much
/// further and filter exactly.
const ARRIVAL_SKEW_MS: u64 = 60_000;

/// Receipt kind of the acceptance receipt.
pub const ACCEPTANCE_RECEIPT: u8 = 0;
/// Receipt kind: delivered (pushed with a 2xx, or acknowledged).
pub const DELIVERY_RECEIPT: u8 = 1;
/// Receipt kind: rejected by the recipient, or dead.
pub const FAILURE_RECEIPT: u8 = 2;
/// Receipt kind: cancelled before delivery.
pub const CANCELLATION_RECEIPT: u8 = 3;

/// The receipt kind a delivery reaching `state` gets, if any.
pub fn receipt_kind(state: &State) -> Option<u8> {
    match state {
        State::Delivered { .. } => Some(DELIVERY_RECEIPT),
        State::Rejected { .. } | State::Dead { .. } => Some(FAILURE_RECEIPT),
        State::Cancelled { .. } => Some(CANCELLATION_RECEIPT),
        State::Queued | State::InFlight { .. } | State::Retrying { .. } => None,
    }
}

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
    #[serde(default)]
    summary: Summary,
    received_at: Timestamp,
    digest: String,
}

/// The map record of a message (`m ‖ id`): its metadata, every delivery, and where its
/// log record is. Deliveries live inside it, so an acceptance writes one record and each
/// transition rewrites it in the same batch as the indexes.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    message: Message,
    deliveries: Vec<Delivery>,
    /// The package bytes in the log; the acceptance receipt is the `receipt_len` bytes just
    /// before them (copied to `r ‖ id ‖ 0` when the bytes are purged).
    body: Loc,
    receipt_len: u64,
}

impl Record {
    fn delivery(&self, id: DeliveryId) -> Option<&Delivery> {
        self.deliveries.get(usize::from(id.index))
    }

    /// The acceptance, as the first event of the timeline (seq 0): it is not stored as an
    /// event of its own, the record and the log say it all.
    fn accepted_event(&self) -> Event {
        let to: Vec<String> = self
            .deliveries
            .iter()
            .map(|d| match d.mode {
                Mode::Push => format!("{} (push)", d.recipient),
                Mode::Pull => format!("{} (pull)", d.recipient),
            })
            .collect();
        Event {
            seq: 0,
            at: self.message.received_at,
            delivery: None,
            what: "accepted".into(),
            state: Some(StateName::Queued),
            detail: Some(format!("queued for {}", to.join(", "))),
        }
    }
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

/// A record whose write returned, waiting for the sync that makes it durable; or a reserved
/// record whose write failed (a hole in the log: nothing after it may be acknowledged).
struct Written {
    /// Where the record is, and its rank in log order.
    slot: Slot,
    staged: Result<Staged, StoreError>,
    reply: Reply,
}

/// Why an acceptance is refused once a log write or sync has failed.
const LOG_FAILED: &str = "an earlier log write or sync failed; restart the hub to recover";

/// Where an acceptance's answer goes.
type Reply = mpsc::SyncSender<Result<Accepted, StoreError>>;

/// A logged acceptance with its map writes worked out (by the submitter's thread, off the
/// serial sync-and-apply path), waiting for the checks only the map in log order can make.
struct Staged {
    meta: AcceptMeta,
    receipt: Vec<u8>,
    /// Position after its log record.
    end: Position,
    /// `h ‖ sender ‖ 0 ‖ digest`.
    idem: Vec<u8>,
    /// The record, the idempotency and DocumentId entries and every delivery's index entry.
    ops: Vec<Op>,
}

impl Staged {
    fn new(meta: AcceptMeta, digest: &[u8; 32], receipt: Vec<u8>, loc: Loc, end: Position) -> Self {
        let id = meta.id;
        let idem = keys::idempotency(&meta.sender, digest);
        let at = meta.received_at;
        let deliveries: Vec<Delivery> = meta
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| Delivery {
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
            })
            .collect();
        let mut ops = Vec::with_capacity(deliveries.len() + 3);
        for d in &deliveries {
            for (k, v) in index_keys(d) {
                ops.push((k, Some(v)));
            }
        }
        let record = Record {
            message: Message {
                id,
                kind: meta.kind,
                sender: meta.sender.clone(),
                recipients: meta.recipients.iter().map(|r| r.agency.clone()).collect(),
                document_id: meta.document_id.clone(),
                business_doc_type: meta.business_doc_type,
                digest: meta.digest.clone(),
                size: loc.len,
                received_at: at,
                verdict: meta.verdict.clone(),
                summary: meta.summary.clone(),
                purged: false,
            },
            deliveries,
            body: loc,
            receipt_len: receipt.len() as u64,
        };
        ops.push((keys::message(id), Some(encode(&record))));
        ops.push((idem.clone(), Some(encode(&id))));
        if let Some(doc) = &meta.document_id {
            ops.push((keys::document(&meta.sender, doc, id), Some(Vec::new())));
        }
        Staged {
            meta,
            receipt,
            end,
            idem,
            ops,
        }
    }
}

/// Answers every acceptance in `items` with an error.
fn fail_all(items: impl IntoIterator<Item = Written>, why: &str) {
    for w in items {
        let _ = w.reply.send(Err(StoreError::Io(why.to_owned())));
    }
}

struct Inner<K, L> {
    kv: K,
    log: L,
    /// Signs the receipt of every delivery that reaches a final state (none until set).
    receipts: std::sync::OnceLock<ReceiptBuilder>,
    /// Serializes every write to the map.
    write: Mutex<()>,
    next_id: AtomicU64,
    /// Written by their submitters, waiting for the fdatasync that makes them durable.
    to_sync: Handoff<Written>,
    /// Answers to hand back: waking each submitter is left to its own thread, off the
    /// serial sync-and-apply path.
    to_answer: Handoff<(Result<Accepted, StoreError>, Reply)>,
    /// Set when a log write or sync failed: nothing more is accepted (after a failed
    /// fdatasync the page cache cannot be trusted; a restart replays the log).
    failed: AtomicBool,
    /// Commit batches so far and acceptances in them (for the group-commit figures).
    batches: AtomicU64,
    batched: AtomicU64,
    /// Told about every commit group (metrics), once set.
    observer: std::sync::OnceLock<CommitObserver>,
    /// Every change, hash-chained, appended under the writer lock after its batch.
    audit: AuditLog,
}

/// What one commit group cost: how many acceptances, the `fdatasync`, the map apply.
#[derive(Clone, Copy, Debug)]
pub struct CommitTiming {
    /// Acceptances in the group.
    pub records: usize,
    /// The log's `fdatasync`.
    pub sync: Duration,
    /// Applying the group to the map.
    pub apply: Duration,
}

/// What [`Engine::accept`] calls to make the signed acceptance receipt: the new message's id
/// and the package's SHA-256 in, the receipt's bytes out, or why it cannot be made.
pub type MakeReceipt<'a> = dyn Fn(MessageId, &[u8; 32]) -> Result<Vec<u8>, String> + 'a;

/// Receives a [`CommitTiming`] per commit group, on the store's sync thread (keep it cheap).
pub type CommitObserver = Box<dyn Fn(CommitTiming) + Send + Sync>;

/// The store engine.
pub struct Engine<K: Kv, L: Log> {
    inner: Arc<Inner<K, L>>,
    syncer: Option<JoinHandle<()>>,
    answerer: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`: `dir/map` (sled), `dir/log` (segments) and
    /// `dir/audit.log`. Replays every acceptance logged after the map's watermark.
    pub fn open(dir: &Path, options: &Options) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let kv = SledKv::open(&dir.join("map"))?;
        let log = FileLog::open(&dir.join("log"), options.max_segment)?;
        // Opening is I/O at the edge: the only time the store reads the clock (to date the
        // note about a torn audit line it cut).
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        let audit = AuditLog::open(&dir.join("audit.log"), now)?;
        Engine::with_audit(kv, log, audit)
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
    /// A store over this map and log, with an audit log in memory: recovers, then starts
    /// the sync and answer threads.
    pub fn with(kv: K, log: L) -> Result<Self, StoreError> {
        Engine::with_audit(kv, log, AuditLog::memory())
    }

    /// A store over this map, log and audit log: recovers, then starts the sync and answer threads.
    pub fn with_audit(kv: K, log: L, audit: AuditLog) -> Result<Self, StoreError> {
        let inner = Arc::new(Inner {
            kv,
            log,
            receipts: std::sync::OnceLock::new(),
            write: Mutex::new(()),
            next_id: AtomicU64::new(1),
            to_sync: Handoff::default(),
            to_answer: Handoff::default(),
            failed: AtomicBool::new(false),
            batches: AtomicU64::new(0),
            batched: AtomicU64::new(0),
            observer: std::sync::OnceLock::new(),
            audit,
        });
        let replayed = inner.recover()?;
        tracing::info!(
            log = %inner.log.describe(),
            replayed,
            "store open: an acceptance returns only after fdatasync of its log segment; \
             the map is rebuilt from the log after a crash, sled's flush is not relied on"
        );
        // Read before any reservation: the sync stage acknowledges from here on, in order.
        let first = inner.log.next_seq();
        let worker = inner.clone();
        let syncer = std::thread::Builder::new()
            .name("store-sync".into())
            .spawn(move || worker.sync_loop(first))?;
        let worker = inner.clone();
        let answerer = std::thread::Builder::new()
            .name("store-answer".into())
            .spawn(move || {
                while let Some(answers) = worker.to_answer.take() {
                    for (result, reply) in answers {
                        let _ = reply.send(result);
                    }
                }
            })?;
        Ok(Engine {
            inner,
            syncer: Some(syncer),
            answerer: Some(answerer),
        })
    }

    /// Accepts a verified package: returns once it is durable. `receipt` builds the signed
    /// acceptance receipt for the new message id and the package's SHA-256 (computed here
    /// once, for the idempotency index, and handed over so the receipt need not hash the
    /// package again); it is stored with the message. The same sender sending the same bytes
    /// again gets the first message and its receipt. When `receipt` fails, nothing is
    /// stored and the acceptance fails with [`StoreError::Receipt`]: no message is ever
    /// accepted without its receipt.
    pub fn accept(&self, m: NewMessage, receipt: &MakeReceipt<'_>) -> Result<Accepted, StoreError> {
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
            id: inner.allocate(m.received_at),
            kind: m.kind,
            sender: m.sender,
            recipients: m.recipients,
            document_id: m.document_id,
            business_doc_type: m.business_doc_type,
            verdict: m.verdict,
            summary: m.summary,
            received_at: m.received_at,
            digest: crate::pki::hex(&digest),
        };
        inner.conflict(&meta)?;
        let receipt = receipt(meta.id, &digest).map_err(StoreError::Receipt)?;
        if inner.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Io(LOG_FAILED.into()));
        }
        // The record is encoded and copied into the log on this thread, beside the other
        // submitters'; only the reservation of its place is serial.
        let head = Encoded::new(&encode(&meta), &receipt, &m.bytes);
        let slot = inner.log.reserve(&head, m.bytes.len() as u64)?;
        // From here on the slot must reach the sync stage, written or not: it acknowledges
        // records in slot order and waits for every one.
        let written = inner.log.write(&slot, &head, &m.bytes);
        // In the page cache now: the package's memory need not wait for the sync.
        drop((head, m.bytes));
        let (tx, rx) = mpsc::sync_channel(1);
        let w = Written {
            staged: written.map(|()| Staged::new(meta, &digest, receipt, slot.body, slot.end)),
            slot,
            reply: tx,
        };
        if w.staged.is_err() {
            inner.failed.store(true, Ordering::SeqCst);
        }
        if let Err(refused) = inner.to_sync.push([w]) {
            fail_all(refused, "the store is closing");
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
        let Some(r) = self.inner.record(id)? else {
            return Err(StoreError::NotFound(format!("message {id}")));
        };
        self.inner.body_of(&r)
    }

    /// What an attempt at delivery `id` needs, from one read of its record: the message, its
    /// bytes (`None` once purged) and the delivery; `None` for an unknown delivery.
    pub fn delivery_view(&self, id: DeliveryId) -> Result<Option<DeliveryView>, StoreError> {
        let Some(r) = self.inner.record(id.message)? else {
            return Ok(None);
        };
        if r.delivery(id).is_none() {
            return Ok(None);
        }
        self.inner.view(r, id).map(Some)
    }

    /// Every delivery of a message, by index.
    pub fn deliveries(&self, id: MessageId) -> Result<Vec<Delivery>, StoreError> {
        Ok(self
            .inner
            .record(id)?
            .map(|r| r.deliveries)
            .unwrap_or_default())
    }

    /// One delivery.
    pub fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.inner.delivery(id)
    }

    /// A message's timeline.
    pub fn events(&self, id: MessageId) -> Result<Vec<Event>, StoreError> {
        let Some(r) = self.inner.record(id)? else {
            return Ok(Vec::new());
        };
        let prefix = keys::events_of(id);
        let stored = self
            .inner
            .kv
            .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?;
        let mut out = Vec::with_capacity(stored.len() + 1);
        out.push(r.accepted_event());
        for (_, v) in stored {
            out.push(decode(&v, "event")?);
        }
        Ok(out)
    }

    /// A stored receipt (`ACCEPTANCE_RECEIPT` or a later kind).
    pub fn receipt(&self, id: MessageId, kind: u8) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.receipt(id, kind)
    }

    /// From now on, every delivery that reaches a final state gets a receipt from `builder`,
    /// written in the same batch as the transition and listed in the sender's feed. Set once;
    /// a second call is refused.
    pub fn set_receipts(&self, builder: ReceiptBuilder) -> Result<(), StoreError> {
        self.inner
            .receipts
            .set(builder)
            .map_err(|_| StoreError::Invalid("the receipt builder is already set".into()))
    }

    /// The receipt of `kind` about one delivery.
    pub fn delivery_receipt(
        &self,
        id: DeliveryId,
        kind: u8,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.kv.get(&keys::delivery_receipt(id, kind))
    }

    /// Receipts issued for `addressee`'s deliveries after feed position `after`, oldest
    /// first.
    pub fn receipts_for(
        &self,
        addressee: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ReceiptEntry>, StoreError> {
        let prefix = keys::feed_of(addressee);
        let start = match after {
            Some(seq) => keys::feed(addressee, seq.saturating_add(1)),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for (k, v) in self
            .inner
            .kv
            .scan(&start, &keys::prefix_end(&prefix), limit)?
        {
            let Some(seq) = keys::trailing_message(&k).map(|m| m.0) else {
                continue;
            };
            let (delivery, kind): (DeliveryId, u8) = decode(&v, "receipt feed")?;
            out.push(ReceiptEntry {
                seq,
                delivery,
                kind,
            });
        }
        Ok(out)
    }

    /// How far `addressee`'s receipt feed has been pushed to it (the last feed position
    /// delivered), if at all.
    pub fn feed_cursor(&self, addressee: &str) -> Result<Option<u64>, StoreError> {
        self.inner
            .kv
            .get(&keys::feed_cursor(addressee))?
            .map(|v| decode(&v, "feed cursor"))
            .transpose()
    }

    /// Records that `addressee`'s feed has been pushed up to `seq` (it only moves forward).
    pub fn set_feed_cursor(&self, addressee: &str, seq: u64) -> Result<(), StoreError> {
        let _w = self.inner.lock();
        if self.feed_cursor(addressee)?.is_some_and(|c| c >= seq) {
            return Ok(());
        }
        self.inner
            .kv
            .apply(vec![(keys::feed_cursor(addressee), Some(encode(&seq)))])
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
        // The earliest due across every recipient's queue.
        let mut due = Vec::new();
        for recipient in inner.agencies(keys::DUE)? {
            due.extend(inner.due(&recipient, now, limit)?);
        }
        due.sort_unstable();
        due.truncate(limit);
        inner.claim_now(due.into_iter().map(|(_, id)| id).collect(), now, lease)
    }

    /// Claims up to `limit` push deliveries to `recipient` due at `now` (for a worker that
    /// serves one endpoint).
    pub fn claim_for(
        &self,
        recipient: &str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        let inner = &self.inner;
        let _w = inner.lock();
        let due = inner.due(recipient, now, limit)?;
        inner.claim_now(due.into_iter().map(|(_, id)| id).collect(), now, lease)
    }

    /// Makes a finished attempt's outcome at `now` ready for [`Engine::push_round`]: the
    /// receipt of a final state is signed here, no lock held and nothing read, from the
    /// message and delivery the attempt was claimed with (its [`DeliveryView`]); the round
    /// uses it only if the record still holds exactly those, and signs again otherwise.
    /// Callers do this for each attempt on its own thread, in parallel.
    pub fn prepare(
        &self,
        attempted: Attempted,
        message: Message,
        delivery: Delivery,
        now: Timestamp,
    ) -> Prepared {
        let m = attempt_move(&attempted.result, now);
        let allowed = finishable(attempted.attempt);
        let signed = self
            .inner
            .sign_from(message, delivery, now, &m.state, &allowed);
        Prepared {
            attempted,
            now,
            m,
            signed,
        }
    }

    /// One round of a push worker for `recipient`, under one writer lock and in one map
    /// batch: records the outcomes of finished attempts ([`Engine::prepare`]d: each as
    /// [`Engine::delivered`], [`Engine::rejected`] or [`Engine::failed`] would at the time
    /// it was prepared, with the receipt signed then if the delivery has not changed since),
    /// then claims up to `limit` deliveries due at `now` as [`Engine::claim_for`]
    /// does; the claimed packages are read after the lock is released. sled 0.34 writes its
    /// log out on every batch, so one batch per round instead of one per claim and per
    /// outcome is what keeps a busy endpoint cheap.
    ///
    /// An outcome no longer valid (a stale claim, an unknown delivery) is refused on its
    /// own, the rest of the round goes on; a failure to read or write the map fails the
    /// whole round and changes nothing.
    pub fn push_round(
        &self,
        recipient: &str,
        done: Vec<Prepared>,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<PushRound, StoreError> {
        let inner = &self.inner;
        let (recorded, claims) = {
            let _w = inner.lock();
            let mut p = Pending::default();
            let mut recorded = Vec::with_capacity(done.len());
            for Prepared {
                attempted: a,
                now: at,
                m,
                signed,
            } in done
            {
                let allowed = finishable(a.attempt);
                match inner.transition_in(&mut p, a.delivery, at, m, allowed, signed) {
                    Err(e @ (StoreError::InvalidTransition { .. } | StoreError::NotFound(_))) => {
                        recorded.push(Err(e))
                    }
                    other => recorded.push(Ok(other?)),
                }
            }
            let claims = if limit == 0 {
                Vec::new()
            } else {
                // Each outcome recorded above may have left a stale entry at the head of
                // the queue (an expired lease): look that much further.
                let due = inner.due(recipient, now, limit + recorded.len())?;
                let due = due.into_iter().map(|(_, id)| id).collect();
                inner.claim(&mut p, due, now, lease, limit)?
            };
            inner.write(p)?;
            (recorded, claims)
        };
        let claimed = claims
            .into_iter()
            .map(|(claim, r)| {
                let view = inner.view(r, claim.delivery);
                (claim, view)
            })
            .collect();
        Ok(PushRound { recorded, claimed })
    }
    /// The claimed attempt `attempt` delivered it (2xx).
    pub fn delivered(
        &self,
        id: DeliveryId,
        attempt: u32,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.finish(id, attempt, AttemptResult::Delivered, now)
    }

    /// The recipient refused it (permanent; no retry).
    pub fn rejected(
        &self,
        id: DeliveryId,
        attempt: u32,
        reason: &str,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.finish(id, attempt, AttemptResult::Rejected(reason.to_owned()), now)
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
        let result = AttemptResult::Failed {
            error: error.to_owned(),
            retry_at,
        };
        self.finish(id, attempt, result, now)
    }

    fn finish(
        &self,
        id: DeliveryId,
        attempt: u32,
        result: AttemptResult,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.inner
            .transition(id, now, attempt_move(&result, now), finishable(attempt))
    }

    /// A pull recipient acknowledged it.
    pub fn ack(&self, id: DeliveryId, now: Timestamp) -> Result<Delivery, StoreError> {
        let m = Move::new("acknowledged", State::Delivered { at: now }, None);
        self.inner.transition(id, now, m, |d| {
            d.mode == Mode::Pull && d.state == State::Queued
        })
    }

    /// A pull recipient refused it.
    pub fn refuse(
        &self,
        id: DeliveryId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        let state = State::Rejected {
            at: now,
            reason: reason.to_owned(),
        };
        let m = Move::new("rejected", state, Some(reason.to_owned()));
        self.inner.transition(id, now, m, |d| {
            d.mode == Mode::Pull && d.state == State::Queued
        })
    }

    /// Cancels every delivery of a message not yet finished; returns how many.
    pub fn cancel(&self, id: MessageId, reason: &str, now: Timestamp) -> Result<usize, StoreError> {
        let mut n = 0;
        for d in self.deliveries(id)? {
            if d.state.is_terminal() {
                continue;
            }
            let r = self.cancel_delivery(d.id, reason, now);
            match r {
                Ok(_) => n += 1,
                Err(StoreError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Cancels one delivery if it is not finished (a revocation naming its recipient).
    pub fn cancel_delivery(
        &self,
        id: DeliveryId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        let state = State::Cancelled {
            at: now,
            reason: reason.to_owned(),
        };
        let m = Move::new("cancelled", state, Some(reason.to_owned()));
        self.inner
            .transition(id, now, m, |d| !d.state.is_terminal())
    }

    /// The messages `sender` sent with this DocumentId, oldest first (the original and its
    /// revocations, updates and replacements).
    pub fn documents(&self, sender: &str, document_id: &str) -> Result<Vec<MessageId>, StoreError> {
        let prefix = keys::document_of(sender, document_id);
        Ok(self
            .inner
            .kv
            .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?
            .iter()
            .filter_map(|(k, _)| keys::trailing_message(k))
            .collect())
    }

    /// Makes a waiting push delivery due now (operator action).
    pub fn retry_now(&self, id: DeliveryId, now: Timestamp) -> Result<Delivery, StoreError> {
        let m = Move::new("retry-now", State::Queued, None);
        self.inner.transition(id, now, m, |d| {
            d.mode == Mode::Push && matches!(d.state, State::Retrying { .. } | State::Queued)
        })
    }

    /// Puts a dead delivery back in its queue, attempts and age starting over (operator
    /// action).
    pub fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<Delivery, StoreError> {
        let inner = &self.inner;
        let _w = inner.lock();
        let r = inner.record_of(id)?;
        let d = r
            .delivery(id)
            .cloned()
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
            ..d
        };
        let mut p = Pending::default();
        inner.commit(&mut p, r, next.clone(), now, "requeued", None, None)?;
        inner.write(p)?;
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
        // A message finished before the cutoff arrived before it: its id is below the
        // cutoff's first id (one that arrived out of order waits for the next run).
        let end = keys::message(MessageId::first_at(ms(cutoff).saturating_add(1)));
        let mut purged = 0;
        let mut cursor = vec![keys::MESSAGE];
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
        let mut cursor = vec![keys::MESSAGE];
        let end = [keys::MESSAGE + 1];
        loop {
            let page = inner.kv.scan(&cursor, &end, 1024)?;
            let Some((last, _)) = page.last() else { break };
            cursor = last.clone();
            cursor.push(0);
            for (_, v) in page {
                let r: Record = decode(&v, "message")?;
                if !r.message.purged {
                    live.insert(r.body.segment);
                }
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
        let Some(mut r) = inner.record(id)? else {
            return Ok(false);
        };
        if r.message.purged
            || !r
                .deliveries
                .iter()
                .all(|d| d.state.is_terminal() && d.updated_at <= cutoff)
        {
            return Ok(false);
        }
        // The acceptance receipt outlives the segment that holds it.
        let receipt = inner.log.read_receipt(r.body, r.receipt_len)?;
        r.message.purged = true;
        let mut batch = vec![
            (keys::message(id), Some(encode(&r))),
            (keys::receipt(id, ACCEPTANCE_RECEIPT), Some(receipt)),
        ];
        inner.event(&mut batch, id, now, None, "purged", None, None)?;
        inner.kv.apply(batch)?;
        inner.audit(Change {
            at: now,
            actor: "hub".into(),
            action: "purged".into(),
            subject: id.to_string(),
            detail: Some("package bytes removed after the retention period".into()),
        })?;
        Ok(true)
    }

    /// Per-recipient figures: counts by state, oldest pending arrival, next due attempt.
    pub fn queues(&self) -> Result<Vec<QueueStats>, StoreError> {
        let inner = &self.inner;
        let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
        let mut oldest: BTreeMap<String, MessageId> = BTreeMap::new();
        let bump = |out: &mut BTreeMap<String, QueueStats>, r: &str, state: StateName, n| {
            *stats_of(out, r)
                .counts
                .entry(state.to_string())
                .or_insert(0) += n;
        };
        // Push: every waiting or leased delivery, its state in the value.
        for recipient in inner.agencies(keys::DUE)? {
            let prefix = keys::due_of(&recipient);
            for (k, v) in inner
                .kv
                .scan(&prefix, &keys::prefix_end(&prefix), usize::MAX)?
            {
                let (Some((due, id)), Some(state)) = (
                    keys::parse_due(&k),
                    v.first().and_then(|b| StateName::from_code(*b)),
                ) else {
                    return Err(StoreError::Corrupt(format!("due entry {k:?}")));
                };
                bump(&mut out, &recipient, state, 1);
                let o = oldest.entry(recipient.clone()).or_insert(id.message);
                *o = (*o).min(id.message);
                if matches!(state, StateName::Queued | StateName::Retrying) {
                    let due = Timestamp::from_millisecond(due as i64).unwrap_or(Timestamp::MAX);
                    let q = stats_of(&mut out, &recipient);
                    q.next_due = Some(q.next_due.map_or(due, |n| n.min(due)));
                }
            }
        }
        // Pull: the inboxes, oldest first.
        for recipient in inner.agencies(keys::INBOX)? {
            let prefix = keys::inbox_of(&recipient);
            let n = inner.kv.count(&prefix, &keys::prefix_end(&prefix))?;
            bump(&mut out, &recipient, StateName::Queued, n);
            if let Some((k, _)) = inner.kv.scan(&prefix, &keys::prefix_end(&prefix), 1)?.pop() {
                if let Some(id) = keys::trailing_delivery(&k) {
                    let o = oldest.entry(recipient.clone()).or_insert(id.message);
                    *o = (*o).min(id.message);
                }
            }
        }
        // Finished.
        for recipient in inner.agencies(keys::FINISHED)? {
            for state in StateName::ALL.into_iter().filter(|s| s.is_terminal()) {
                let prefix = keys::finished_of(&recipient, state);
                let n = inner.kv.count(&prefix, &keys::prefix_end(&prefix))?;
                if n > 0 {
                    bump(&mut out, &recipient, state, n);
                }
            }
        }
        // Ids are allocated in arrival order: the smallest pending id is the oldest.
        for (recipient, id) in oldest {
            if let (Some(q), Some(m)) = (out.get_mut(&recipient), inner.message(id)?) {
                q.oldest_pending = Some(m.received_at);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Per recipient, the deliveries that reached `delivered` at or after `since`, among
    /// messages received within `window` before it (the finished index is ordered by
    /// arrival; a delivery of an older message, after a requeue, is not counted).
    pub fn delivered_since(
        &self,
        since: Timestamp,
        window: Duration,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let inner = &self.inner;
        let from = MessageId::first_at(ms(since).saturating_sub(window.as_millis() as u64));
        let mut out = BTreeMap::new();
        for recipient in inner.agencies(keys::FINISHED)? {
            let prefix = keys::finished_of(&recipient, StateName::Delivered);
            let start = keys::finished(
                &recipient,
                StateName::Delivered,
                DeliveryId {
                    message: from,
                    index: 0,
                },
            );
            let mut n = 0;
            for (k, _) in inner
                .kv
                .scan(&start, &keys::prefix_end(&prefix), usize::MAX)?
            {
                let Some(id) = keys::trailing_delivery(&k) else {
                    continue;
                };
                if let Some(Delivery {
                    state: State::Delivered { at },
                    ..
                }) = inner.delivery(id)?
                {
                    if at >= since {
                        n += 1;
                    }
                }
            }
            if n > 0 {
                out.insert(recipient, n);
            }
        }
        Ok(out)
    }

    /// Whether an earlier log write or sync failed (acceptances are refused until restart).
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::SeqCst)
    }

    /// Messages matching `filter`, oldest first, `limit` per page, after `cursor`.
    pub fn messages(
        &self,
        filter: &Filter,
        cursor: Option<MessageId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let inner = &self.inner;
        // Ids carry their arrival time: the window is a range of ids (widened at the end by
        // the most an id's time can run ahead of its `received_at`), filtered exactly.
        let first = MessageId::first_at(filter.since.map_or(0, ms));
        let mut start = keys::message(match cursor {
            Some(c) => MessageId(c.0.saturating_add(1).max(first.0)),
            None => first,
        });
        let end = match filter.until {
            Some(u) => keys::message(MessageId::first_at(ms(u).saturating_add(ARRIVAL_SKEW_MS))),
            None => vec![keys::MESSAGE + 1],
        };
        let mut page = Page::default();
        loop {
            let chunk = inner.kv.scan(&start, &end, 512)?;
            let Some((last, _)) = chunk.last() else { break };
            start = last.clone();
            start.push(0);
            for (_, v) in &chunk {
                let r: Record = decode(v, "message")?;
                if !matches(&r, filter) {
                    continue;
                }
                if page.messages.len() == limit {
                    page.next = page.messages.last().map(|m| m.id);
                    return Ok(page);
                }
                page.messages.push(r.message);
            }
        }
        Ok(page)
    }

    /// Makes every change so far durable (sled flush and fdatasync of its file), which also
    /// bounds replay after a crash. Call on shutdown, or after operations that must not be
    /// repeated.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.audit.sync()?;
        self.inner.kv.sync()
    }

    /// The audit log (read it, or append what is not a store change, such as an operator's
    /// request and its outcome).
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// Pauses (`true`) or resumes push deliveries to `agency` (operator action; kept across
    /// restarts). Returns whether that changed anything.
    pub fn set_paused(
        &self,
        agency: &str,
        paused: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let _w = inner.lock();
        let key = keys::paused(agency);
        if inner.kv.get(&key)?.is_some() == paused {
            return Ok(false);
        }
        let value = paused.then(|| encode(&now));
        inner.kv.apply(vec![(key, value)])?;
        inner.audit(Change {
            at: now,
            actor: "operator".into(),
            action: if paused { "paused" } else { "resumed" }.into(),
            subject: agency.to_owned(),
            detail: None,
        })?;
        Ok(true)
    }

    /// The agencies whose push deliveries are paused, with when.
    pub fn paused(&self) -> Result<BTreeMap<String, Timestamp>, StoreError> {
        let inner = &self.inner;
        let mut out = BTreeMap::new();
        for (k, v) in inner
            .kv
            .scan(&[keys::PAUSED], &[keys::PAUSED + 1], usize::MAX)?
        {
            let agency = String::from_utf8_lossy(&k[1..k.len().saturating_sub(1)]).into_owned();
            out.insert(agency, decode(&v, "paused")?);
        }
        Ok(out)
    }

    /// Whether push deliveries to `agency` are paused.
    pub fn is_paused(&self, agency: &str) -> Result<bool, StoreError> {
        Ok(self.inner.kv.get(&keys::paused(agency))?.is_some())
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
            .scan(&[keys::MESSAGE], &[keys::MESSAGE + 1], usize::MAX)
            .map_err(err)?;
        for (_, v) in all {
            let r: Record = decode(&v, "message").map_err(err)?;
            if r.deliveries.len() != r.message.recipients.len() {
                return Err(format!(
                    "message {}: deliveries and recipients differ",
                    r.message.id
                ));
            }
            for (i, d) in r.deliveries.iter().enumerate() {
                if d.id.message != r.message.id
                    || usize::from(d.id.index) != i
                    || d.recipient != r.message.recipients[i]
                {
                    return Err(format!(
                        "message {}: delivery {i} is {}",
                        r.message.id, d.id
                    ));
                }
                expected.extend(index_keys(d));
            }
        }
        let mut found = BTreeSet::new();
        for tag in [keys::FINISHED, keys::DUE, keys::INBOX] {
            found.extend(inner.kv.scan(&[tag], &[tag + 1], usize::MAX).map_err(err)?);
        }
        if let Some(k) = expected.difference(&found).next() {
            return Err(format!("missing index entry {k:?}"));
        }
        if let Some(k) = found.difference(&expected).next() {
            return Err(format!("stray or stale index entry {k:?}"));
        }
        Ok(())
    }

    /// Calls `observer` after every commit group from now on (the first observer set stays).
    pub fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.inner.observer.set(observer);
    }

    /// Commit batches so far and the acceptances they carried.
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.inner.batches.load(Ordering::Relaxed),
            self.inner.batched.load(Ordering::Relaxed),
        )
    }

    /// Stops the sync and answer threads (waiting acceptances are still committed) and syncs the map.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.stop();
        self.inner.audit.sync()?;
        self.inner.kv.sync()
        // Drop then syncs again, which is cheap with nothing to flush.
    }

    fn stop(&mut self) {
        // Each stage drains what it was handed, then the next one is closed.
        self.inner.to_sync.close();
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
        self.inner.to_answer.close();
        if let Some(t) = self.answerer.take() {
            let _ = t.join();
        }
    }
}

impl<K: Kv, L: Log> Drop for Engine<K, L> {
    /// A graceful stop: waiting acceptances are committed and the map is synced.
    fn drop(&mut self) {
        self.stop();
        if let Err(e) = self.inner.audit.sync() {
            tracing::error!(error = %e, "store: audit log sync failed");
        }
        if let Err(e) = self.inner.kv.sync() {
            tracing::error!(error = %e, "store: final sync failed; the log will be replayed");
        }
    }
}

/// Whether a message passes a listing filter.
fn matches(r: &Record, f: &Filter) -> bool {
    let m = &r.message;
    if f.since.is_some_and(|t| m.received_at < t)
        || f.until.is_some_and(|t| m.received_at >= t)
        || f.sender.as_ref().is_some_and(|s| *s != m.sender)
        || f.recipient
            .as_ref()
            .is_some_and(|r| !m.recipients.contains(r))
        || f.document_id
            .as_ref()
            .is_some_and(|d| m.document_id.as_ref() != Some(d))
    {
        return false;
    }
    f.state.is_none_or(|state| {
        r.deliveries.iter().any(|d| {
            d.state.name() == state && f.recipient.as_ref().is_none_or(|r| *r == d.recipient)
        })
    })
}

/// `out`'s figures for recipient `r`, created empty.
fn stats_of<'a>(out: &'a mut BTreeMap<String, QueueStats>, r: &str) -> &'a mut QueueStats {
    out.entry(r.to_owned()).or_insert_with(|| QueueStats {
        recipient: r.to_owned(),
        ..QueueStats::default()
    })
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

/// The index entries (key, value) a delivery in this state has: a push delivery waiting or
/// leased is in its recipient's due queue at its due time (the value is its state), a queued
/// pull delivery is in the inbox, and a finished one is under its final state.
fn index_keys(d: &Delivery) -> Vec<(Vec<u8>, Vec<u8>)> {
    let name = d.state.name();
    if name.is_terminal() {
        return vec![(keys::finished(&d.recipient, name, d.id), Vec::new())];
    }
    match d.mode {
        Mode::Push => due_at(d)
            .map(|due| (keys::due(&d.recipient, ms(due), d.id), vec![name as u8]))
            .into_iter()
            .collect(),
        Mode::Pull => (name == StateName::Queued)
            .then(|| (keys::inbox(&d.recipient, d.id), Vec::new()))
            .into_iter()
            .collect(),
    }
}

/// The 32 bytes of a hex SHA-256.
fn digest_bytes(digest_hex: &str) -> Result<[u8; 32], StoreError> {
    crate::edxml::model::Sha256::from_hex(digest_hex)
        .map(|d| d.0)
        .ok_or_else(|| StoreError::Corrupt(format!("digest {digest_hex:?}")))
}

impl<K: Kv, L: Log> Inner<K, L> {
    /// The next message id: at least the first id of its arrival millisecond, and above
    /// every id given so far, so ids sort by arrival and never repeat.
    fn allocate(&self, received_at: Timestamp) -> MessageId {
        let floor = MessageId::first_at(ms(received_at)).0;
        let prev = self
            .next_id
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |next| {
                Some(next.max(floor).saturating_add(1))
            })
            .unwrap_or_else(|n| n);
        MessageId(prev.max(floor))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, id: MessageId) -> Result<Option<Record>, StoreError> {
        self.kv
            .get(&keys::message(id))?
            .map(|v| decode(&v, "message"))
            .transpose()
    }

    /// A record's package bytes from the log (`None` once purged).
    fn body_of(&self, r: &Record) -> Result<Option<Vec<u8>>, StoreError> {
        if r.message.purged {
            return Ok(None);
        }
        self.log.read(r.body).map(Some)
    }

    /// What an attempt at delivery `id` of record `r` needs.
    fn view(&self, r: Record, id: DeliveryId) -> Result<DeliveryView, StoreError> {
        let body = self.body_of(&r)?;
        let delivery = r
            .delivery(id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))?;
        Ok(DeliveryView {
            message: r.message,
            body,
            delivery,
        })
    }

    /// The record holding delivery `id` as changed by `p` so far.
    fn pending_record(&self, p: &Pending, id: DeliveryId) -> Result<Record, StoreError> {
        match p.records.get(&id.message) {
            Some(r) if r.delivery(id).is_some() => Ok(r.clone()),
            Some(_) => Err(StoreError::NotFound(format!("delivery {id}"))),
            None => self.record_of(id),
        }
    }

    /// Writes what `p` gathered: one map batch (the changed records last, once each), then
    /// its audit lines. The caller holds the writer lock.
    fn write(&self, p: Pending) -> Result<(), StoreError> {
        let Pending {
            mut batch,
            records,
            changes,
        } = p;
        for (id, r) in &records {
            batch.push((keys::message(*id), Some(encode(r))));
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.kv.apply(batch)?;
        if changes.is_empty() {
            return Ok(());
        }
        self.audit.append(&changes).map(|_| ())
    }

    /// The record holding delivery `id`.
    fn record_of(&self, id: DeliveryId) -> Result<Record, StoreError> {
        self.record(id.message)?
            .filter(|r| r.delivery(id).is_some())
            .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))
    }

    fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        Ok(self.record(id)?.map(|r| r.message))
    }

    fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .record(id.message)?
            .and_then(|r| r.delivery(id).cloned()))
    }

    fn receipt(&self, id: MessageId, kind: u8) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(r) = self.kv.get(&keys::receipt(id, kind))? {
            return Ok(Some(r));
        }
        if kind != ACCEPTANCE_RECEIPT {
            return Ok(None);
        }
        // Until the bytes are purged, the acceptance receipt is read from the log record.
        match self.record(id)? {
            Some(r) if !r.message.purged => self.log.read_receipt(r.body, r.receipt_len).map(Some),
            _ => Ok(None),
        }
    }

    /// Agencies that have keys under `tag` (`tag ‖ agency ‖ 0 ‖ ...`), skipping from one
    /// agency's keys to the next.
    fn agencies(&self, tag: u8) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut start = vec![tag];
        let end = [tag + 1];
        while let Some((k, _)) = self.kv.scan(&start, &end, 1)?.pop() {
            let Some(agency) = keys::agency_of(&k) else {
                return Err(StoreError::Corrupt(format!("index key {k:?}")));
            };
            start = keys::after_agency(tag, agency);
            out.push(agency.to_owned());
        }
        Ok(out)
    }

    /// Up to `limit` deliveries in `recipient`'s due queue due at `now`, earliest first,
    /// with their due times.
    fn due(
        &self,
        recipient: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(u64, DeliveryId)>, StoreError> {
        Ok(self
            .kv
            .scan(
                &keys::due_of(recipient),
                &keys::due_after(recipient, ms(now)),
                limit,
            )?
            .iter()
            .filter_map(|(k, _)| keys::parse_due(k))
            .collect())
    }

    /// [`Inner::claim`] in a batch of its own.
    fn claim_now(
        &self,
        due: Vec<DeliveryId>,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut p = Pending::default();
        let limit = due.len();
        let claims = self.claim(&mut p, due, now, lease, limit)?;
        self.write(p)?;
        Ok(claims.into_iter().map(|(claim, _)| claim).collect())
    }

    /// Leases the first `limit` of `due` that are still due at `now` as `p` has them (a
    /// delivery an earlier change of the same batch moved is skipped) until `now + lease`;
    /// each claim with its record as claimed. The caller holds the writer lock.
    fn claim(
        &self,
        p: &mut Pending,
        due: Vec<DeliveryId>,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<(Claim, Record)>, StoreError> {
        let lease_until = add(now, lease);
        let mut claims = Vec::with_capacity(due.len().min(limit));
        for id in due {
            if claims.len() == limit {
                break;
            }
            let r = self.pending_record(p, id)?;
            let Some(d) = r.delivery(id).cloned() else {
                continue;
            };
            if due_at(&d).is_none_or(|t| ms(t) > ms(now)) {
                continue;
            }
            let reclaimed = matches!(d.state, State::InFlight { .. });
            let next = Delivery {
                state: State::InFlight { lease_until },
                attempts: d.attempts + 1,
                updated_at: now,
                ..d
            };
            let detail = format!(
                "attempt {}{}",
                next.attempts,
                if reclaimed {
                    " (previous lease expired)"
                } else {
                    ""
                }
            );
            let claim = Claim {
                delivery: id,
                recipient: next.recipient.clone(),
                attempt: next.attempts,
                lease_until,
            };
            self.commit(p, r, next, now, "claimed", Some(detail), None)?;
            let claimed = p
                .records
                .get(&id.message)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))?;
            claims.push((claim, claimed));
        }
        Ok(claims)
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
        self.duplicate_at(&keys::idempotency(sender, digest))
    }

    /// The acceptance recorded under idempotency key `idem`, if any.
    fn duplicate_at(&self, idem: &[u8]) -> Result<Option<Accepted>, StoreError> {
        let Some(v) = self.kv.get(idem)? else {
            return Ok(None);
        };
        let id: MessageId = decode(&v, "idempotency")?;
        let receipt = self.receipt(id, ACCEPTANCE_RECEIPT)?.unwrap_or_default();
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

    /// Appends `change` to the audit log; the caller holds the writer lock and has applied
    /// the change.
    fn audit(&self, change: Change) -> Result<(), StoreError> {
        self.audit.append(&[change]).map(|_| ())
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
        // Seq 0 is the acceptance, derived from the record.
        let mut seq = match stored {
            Some((k, _)) => u32::from_be_bytes(k[9..13].try_into().unwrap_or_default()) + 1,
            None => 1,
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

    /// Makes move `m` of the delivery if `allowed(delivery)`, in a batch of its own;
    /// otherwise the transition is invalid.
    fn transition(
        &self,
        id: DeliveryId,
        now: Timestamp,
        m: Move,
        allowed: impl Fn(&Delivery) -> bool,
    ) -> Result<Delivery, StoreError> {
        // Signing the receipt of a final state is most of a transition's cost: it is done
        // before the writer lock is taken, from the record as read then, and used only if
        // the message and the delivery are unchanged once the lock is held (otherwise the
        // receipt is signed again under the lock).
        let signed = self.sign_ahead(id, now, &m.state, &allowed);
        let _w = self.lock();
        let mut p = Pending::default();
        let new = self.transition_in(&mut p, id, now, m, allowed, signed)?;
        self.write(p)?;
        Ok(new)
    }

    /// [`Inner::transition`]'s check and move, into `p`, with the receipt signed ahead (if
    /// any). Refuses before adding anything to `p`. The caller holds the writer lock.
    fn transition_in(
        &self,
        p: &mut Pending,
        id: DeliveryId,
        now: Timestamp,
        m: Move,
        allowed: impl Fn(&Delivery) -> bool,
        signed: Option<SignedAhead>,
    ) -> Result<Delivery, StoreError> {
        let r = self.pending_record(p, id)?;
        let Some(d) = r.delivery(id).cloned() else {
            return Err(StoreError::NotFound(format!("delivery {id}")));
        };
        if !allowed(&d) {
            return Err(StoreError::InvalidTransition {
                delivery: id,
                state: d.state.name(),
                what: m.what,
            });
        }
        let receipt = signed
            .filter(|s| s.message == r.message && s.delivery == d)
            .map(|s| s.receipt);
        let new = moved(&d, m.state, now);
        self.commit(p, r, new.clone(), now, m.what, m.detail, receipt)?;
        Ok(new)
    }

    /// The receipt the move of delivery `id` to `state` would get, signed from the record as
    /// it is now (no lock held), with what it was signed from; `None` when there is no
    /// receipt to sign (no builder, not a final state, or a move not allowed now). Reads
    /// nothing for a move to a state without a receipt.
    fn sign_ahead(
        &self,
        id: DeliveryId,
        now: Timestamp,
        state: &State,
        allowed: &impl Fn(&Delivery) -> bool,
    ) -> Option<SignedAhead> {
        self.receipts.get()?;
        receipt_kind(state)?;
        let r = self.record(id.message).ok()??;
        let d = r.delivery(id)?.clone();
        self.sign_from(r.message, d, now, state, allowed)
    }

    /// The receipt the move of delivery `d` of `message` to `state` would get, if the move
    /// is allowed and has a receipt.
    fn sign_from(
        &self,
        message: Message,
        d: Delivery,
        now: Timestamp,
        state: &State,
        allowed: &impl Fn(&Delivery) -> bool,
    ) -> Option<SignedAhead> {
        let build = self.receipts.get()?;
        let kind = receipt_kind(state)?;
        if !allowed(&d) || d.state.is_terminal() {
            return None;
        }
        let receipt = build(&message, &moved(&d, state.clone(), now), kind);
        Some(SignedAhead {
            message,
            delivery: d,
            receipt,
        })
    }

    /// Adds one delivery's move to `new` to `p`: the record `r` (as `p` has it) changed, the
    /// index entries that change, the event, the audit line, and for a final state its
    /// receipt (`signed`, when it was signed ahead from this very record and move; otherwise
    /// signed here). The caller holds the writer lock.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        p: &mut Pending,
        mut r: Record,
        new: Delivery,
        now: Timestamp,
        what: &str,
        detail: Option<String>,
        signed: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let i = usize::from(new.id.index);
        let Some(old) = r.deliveries.get(i) else {
            return Err(StoreError::NotFound(format!("delivery {}", new.id)));
        };
        let batch = &mut p.batch;
        let before = index_keys(old);
        let after = index_keys(&new);
        for (k, _) in &before {
            if !after.iter().any(|(a, _)| a == k) {
                batch.push((k.clone(), None));
            }
        }
        for entry in after {
            if !before.contains(&entry) {
                batch.push((entry.0, Some(entry.1)));
            }
        }
        let kind = receipt_kind(&new.state).filter(|_| !old.state.is_terminal());
        if let (Some(kind), Some(build)) = (kind, self.receipts.get()) {
            let receipt = signed.unwrap_or_else(|| build(&r.message, &new, kind));
            batch.push((keys::delivery_receipt(new.id, kind), Some(receipt)));
            let feed = keys::feed_of(&r.message.sender);
            let stored = match self.kv.last(&feed, &keys::prefix_end(&feed))? {
                Some((k, _)) => keys::trailing_message(&k).map_or(0, |m| m.0) + 1,
                None => 0,
            };
            // Feed entries already in this batch come after the stored ones.
            let seq = stored + batch.iter().filter(|(k, _)| k.starts_with(&feed)).count() as u64;
            batch.push((
                keys::feed(&r.message.sender, seq),
                Some(encode(&(new.id, kind))),
            ));
        }
        let change = Change {
            at: now,
            actor: audit::actor_of(what, &new, &r.message.sender, detail.as_deref()),
            action: what.to_owned(),
            subject: new.id.to_string(),
            detail: detail.clone(),
        };
        let (id, index, state) = (new.id.message, new.id.index, new.state.clone());
        r.deliveries[i] = new;
        self.event(batch, id, now, Some(index), what, Some(&state), detail)?;
        p.changes.push(change);
        p.records.insert(id, r);
        Ok(())
    }

    /// Group commit: takes every record written so far, keeps those that follow the last
    /// acknowledged one without a gap (the others wait for the records reserved before
    /// them), makes them durable with one `fdatasync` per segment (a group closes when the
    /// previous sync returns), applies them to the map in one batch and hands their answers
    /// on. (Applying on another thread, overlapping the next sync, measured slower: the map
    /// apply is CPU-bound and smaller groups cost more per key.)
    fn sync_loop(&self, first: u64) {
        let mut next = first;
        let mut held: BTreeMap<u64, Written> = BTreeMap::new();
        // Set for good by a write or sync that failed: the log may have a hole there (or
        // the page cache may not hold what was written), so nothing after it is acknowledged.
        let mut broken = false;
        while let Some(items) = self.to_sync.take() {
            held.extend(items.into_iter().map(|w| (w.slot.seq, w)));
            let mut group = Vec::new();
            while let Some(w) = held.remove(&next) {
                next += 1;
                group.push(w);
            }
            if group.is_empty() {
                continue;
            }
            let mut ready = Vec::with_capacity(group.len());
            for w in group {
                match w.staged {
                    Ok(staged) if !broken => ready.push((staged, w.slot, w.reply)),
                    Ok(_) => {
                        let _ = w.reply.send(Err(StoreError::Io(LOG_FAILED.into())));
                    }
                    Err(e) => {
                        broken = true;
                        tracing::error!(error = %e, "log write failed: refusing acceptances until restart");
                        let _ = w.reply.send(Err(e));
                    }
                }
            }
            if !ready.is_empty() && !self.commit_group(ready) {
                broken = true;
            }
        }
        // Closed: what is still held waits behind a record that never came.
        fail_all(held.into_values(), "the store is closing");
    }

    /// Syncs, applies and answers one group of records in log order; false if the sync
    /// failed.
    fn commit_group(&self, group: Vec<(Staged, Slot, Reply)>) -> bool {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let records = group.len();
        let started = crate::clock::monotonic();
        let slots: Vec<&Slot> = group.iter().map(|(_, slot, _)| slot).collect();
        if let Err(e) = self.log.sync(&slots) {
            self.failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "log fdatasync failed: refusing acceptances until restart");
            for (_, _, reply) in group {
                let _ = reply.send(Err(StoreError::Io(format!("log sync: {e}"))));
            }
            return false;
        }
        let (staged, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|(staged, _, reply)| (staged, reply))
            .unzip();
        let synced = crate::clock::monotonic();
        let applied = self.apply_group(staged, false);
        if let Some(observe) = self.observer.get() {
            let done = crate::clock::monotonic();
            observe(CommitTiming {
                records,
                sync: synced - started,
                apply: done - synced,
            });
        }
        let answers: Vec<_> = match applied {
            Ok(results) => results.into_iter().zip(replies).collect(),
            Err(e) => {
                // Durable in the log, not in the map: a restart replays them.
                tracing::error!(error = %e, "applying acceptances to the map failed");
                replies
                    .into_iter()
                    .map(|reply| (Err(StoreError::Io(e.to_string())), reply))
                    .collect()
            }
        };
        if let Err(unsent) = self.to_answer.push(answers) {
            // Cannot happen: the answer stage closes only after this one stopped.
            for (result, reply) in unsent {
                let _ = reply.send(result);
            }
        }
        true
    }

    /// Writes logged acceptances into the map in one atomic batch, in log order, and moves
    /// the watermark past the last. Idempotent: replay may repeat records already applied.
    fn apply_group(
        &self,
        records: Vec<Staged>,
        replay: bool,
    ) -> Result<Vec<Result<Accepted, StoreError>>, StoreError> {
        let _w = self.lock();
        let mut batch: Vec<Op> = Vec::with_capacity(records.len() * 5 + 1);
        let mut group = Group::default();
        let mut results: Vec<Result<Accepted, StoreError>> = Vec::with_capacity(records.len());
        let mut last = None;
        for staged in records {
            last = Some(staged.end);
            // The same sender and bytes twice in one group: the first one's answer.
            if let Some(Ok(first)) = group.seen.get(&staged.idem).map(|&i| &results[i]) {
                let dup = Accepted::Duplicate {
                    id: first.id(),
                    receipt: first.receipt().to_vec(),
                };
                results.push(Ok(dup));
                continue;
            }
            let index = results.len();
            results.push(self.apply_one(&mut batch, &mut group, staged, replay, index)?);
        }
        if let Some(end) = last {
            batch.push((keys::WATERMARK.to_vec(), Some(encode(&end))));
        }
        self.kv.apply(batch)?;
        if !group.changes.is_empty() {
            if let Err(e) = self.audit.append(&group.changes) {
                // The acceptances are durable and applied; only their audit lines are
                // missing. Say so loudly rather than refuse what is already stored.
                tracing::error!(error = %e, "audit log: cannot append acceptances");
            }
        }
        Ok(results)
    }

    /// Adds one acceptance to `batch`; `group` holds what earlier records of the same batch
    /// decided, since the map does not show them yet.
    fn apply_one(
        &self,
        batch: &mut Vec<Op>,
        group: &mut Group,
        staged: Staged,
        replay: bool,
        index: usize,
    ) -> Result<Result<Accepted, StoreError>, StoreError> {
        let Staged {
            meta,
            receipt,
            idem,
            ops,
            ..
        } = staged;
        // Only a replay can meet a record already applied: a live id is new.
        if replay && self.record(meta.id)?.is_some() {
            return Ok(Ok(Accepted::New {
                id: meta.id,
                receipt,
            }));
        }
        if let Some(dup) = self.duplicate_at(&idem)? {
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
            if let Err(e) = self.conflict(&meta) {
                return Ok(Err(e));
            }
        }
        let id = meta.id;
        group.changes.push(Change {
            at: meta.received_at,
            actor: format!("agency:{}", meta.sender),
            action: if replay {
                "accepted (replayed)"
            } else {
                "accepted"
            }
            .into(),
            subject: id.to_string(),
            detail: Some(format!(
                "{} sha256 {} to {}",
                if meta.kind == Kind::Edoc {
                    "edoc"
                } else {
                    "status"
                },
                meta.digest,
                meta.recipients
                    .iter()
                    .map(|r| r.agency.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        });
        group.seen.insert(idem, index);
        if let Some(doc) = &meta.document_id {
            group
                .documents
                .entry(keys::document_of(&meta.sender, doc))
                .or_insert((id, meta.digest.clone()));
        }
        batch.extend(ops);
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
            let digest = digest_bytes(&meta.digest)?;
            group.push(Staged::new(meta, &digest, r.receipt, r.body, r.end));
            if group.len() == 1024 {
                self.apply_group(std::mem::take(&mut group), true)?;
            }
        }
        if !group.is_empty() {
            self.apply_group(group, true)?;
        }
        self.next_id.store(max + 1, Ordering::SeqCst);
        // (A later acceptance's id is also at least its arrival time's first id.)
        Ok(n)
    }
}

/// A finished attempt's outcome ready to record ([`Engine::prepare`]).
pub struct Prepared {
    attempted: Attempted,
    now: Timestamp,
    m: Move,
    signed: Option<SignedAhead>,
}

impl Prepared {
    /// The attempt and its result.
    pub fn attempted(&self) -> &Attempted {
        &self.attempted
    }
}

/// Changes gathered under the writer lock, written in one map batch by [`Inner::write`].
#[derive(Default)]
struct Pending {
    /// Index entries, receipts, feed entries and events, in order.
    batch: Vec<Op>,
    /// The message records changed so far, as changed (written last, once each).
    records: BTreeMap<MessageId, Record>,
    /// Their audit lines, in order.
    changes: Vec<Change>,
}

/// One move of a delivery: the event's name, the new state, the event's detail.
struct Move {
    what: &'static str,
    state: State,
    detail: Option<String>,
}

impl Move {
    fn new(what: &'static str, state: State, detail: Option<String>) -> Self {
        Move {
            what,
            state,
            detail,
        }
    }
}

/// The move a push attempt's result makes.
fn attempt_move(result: &AttemptResult, now: Timestamp) -> Move {
    match result {
        AttemptResult::Delivered => Move::new("delivered", State::Delivered { at: now }, None),
        AttemptResult::Rejected(reason) => {
            let state = State::Rejected {
                at: now,
                reason: reason.clone(),
            };
            Move::new("rejected", state, Some(reason.clone()))
        }
        AttemptResult::Failed {
            error,
            retry_at: Some(next_at),
        } => {
            let state = State::Retrying {
                next_at: *next_at,
                error: error.clone(),
            };
            Move::new("retrying", state, Some(error.clone()))
        }
        AttemptResult::Failed {
            error,
            retry_at: None,
        } => {
            let state = State::Dead {
                at: now,
                reason: error.clone(),
            };
            Move::new("dead", state, Some(error.clone()))
        }
    }
}

/// Whether a delivery is still held by the claim with attempt number `attempt`.
fn finishable(attempt: u32) -> impl Fn(&Delivery) -> bool {
    move |d| matches!(d.state, State::InFlight { .. }) && d.attempts == attempt
}

/// `d` moved to `state` at `now`.
fn moved(d: &Delivery, state: State, now: Timestamp) -> Delivery {
    Delivery {
        state,
        updated_at: now,
        ..d.clone()
    }
}

/// A receipt signed before the writer lock was taken, and the record it was signed from.
struct SignedAhead {
    message: Message,
    delivery: Delivery,
    receipt: Vec<u8>,
}

/// What earlier acceptances of one commit group decided.
#[derive(Default)]
struct Group {
    /// Idempotency key → the index of its first acceptance's result.
    seen: std::collections::HashMap<Vec<u8>, usize>,
    /// Sender and DocumentId prefix → first message and its digest.
    documents: std::collections::HashMap<Vec<u8>, (MessageId, String)>,
    /// The audit lines of the acceptances applied.
    changes: Vec<Change>,
}
