//! The store-and-forward engine: messages, per-recipient deliveries, receipts and events,
//! durable before acknowledgement. The only module that touches sled.
//!
//! # Architecture
//! ```text
//!   accept() on each submitter's thread          claim() / complete() / fail() / ack() / ...
//!   reserve a place (serial), pwrite there             │
//!                │ (in parallel)                       │
//!   ┌────────────▼───────────────┐              ┌───────────▼──────────────┐
//!   │ store-sync: fdatasync once │  apply       │ Engine (one writer lock) │
//!   │ per group, then apply      ├─────────────►│ kv.rs: one ordered map,  │
//!   │ store-answer: wake callers │  in order    │ atomic batches           │
//!   └────────────────────────────┘              └──────────────────────────┘
//!    segment files log/*.seg                     sled 0.34 (or memory)
//! ```
//! - `log`: append-only segment files of ours. One record per acceptance carries the
//!   package bytes **and** everything needed to recreate the acceptance (message, recipients,
//!   receipt). This is the write-ahead log and the body store at once.
//! - `kv`: an ordered key-value map with atomic batches: sled 0.34 on disk
//!   ([`kv::SledKv`]), or a `BTreeMap` ([`kv::MemKv`]) for the in-memory store the same test
//!   suite runs against. Metadata, indexes, queues, receipts and events live here.
//! - `engine`: every operation, over a `Kv` and a `Log`, behind one writer lock so each read-
//!   check-write is a compare-and-swap.
//!
//! # The durability contract
//! `accept` returns only after the **`fdatasync(2)` of the segment file holding the
//! acceptance record has returned**, issued after the record's `pwrite(2)` and the writes of
//! every record before it returned (`log.rs`, `FileLog::sync`, which calls
//! `File::sync_data`). A body of 1 MiB or more is written with `O_DIRECT` on a second
//! descriptor of the same segment (`log.rs`, "Large bodies"); the same `fdatasync` then
//! flushes the device's cache and commits the file's size for it. That one syscall makes the
//! acceptance durable: the record holds the package and its whole acceptance, and on open
//! every record after the applied watermark is replayed into the map (`Engine::recover`).
//! sled's own `flush()` is not relied on for acceptances: in 0.34 it issues
//! `sync_file_range` without fsync and never syncs blob files (see `../shared/LIMITS.md`
//! §4); its background flush (every 500 ms) and the explicit
//! [`Engine::sync`] (sled `flush` then `fdatasync` of its `db` file) only bound how much
//! replay is needed.
//!
//! State changes after acceptance (claims, outcomes, acknowledgements, cancellations) are
//! atomic sled batches, durable at the next flush; a push worker's round
//! ([`Engine::push_round`]) puts the outcomes it records and the claims it makes in one batch
//! (sled 0.34 writes its log out on every batch and blocks every reader while one is
//! applied, so fewer, larger batches are what a busy endpoint needs). A crash can undo the last of them (≤ the
//! flush interval): a delivery is then attempted or offered again. Delivery is therefore
//! at-least-once, with a stable delivery id (`<message id>-<recipient index>`) receivers use to
//! deduplicate.
//!
//! Group commit, in pipelined stages. Each submitter's thread encodes its record (CRC
//! included) and works out its map writes (the record encoded, every key built), takes the
//! next place in the log under a short lock (`Log::reserve`: a sequence number and an
//! offset), and copies the record there with `pwrite(2)` (page cache only), beside the other
//! submitters. The `store-sync` thread takes every record written so far, keeps those that
//! follow the last acknowledged record without a gap (a record reserved earlier and still
//! being copied holds back the ones after it), issues one `fdatasync` per segment they are in,
//! and applies the group to the map in log order in one batch (only the checks that need the
//! map in log order — duplicates, DocumentId conflicts — happen there); the `store-answer`
//! thread wakes the submitters. A group closes when the previous sync returns, so a lone
//! acceptance waits for one sync and throughput grows with the number of concurrent
//! submitters; copying the next group overlaps the sync of the current one. Because a record
//! is acknowledged only after every record before it is written and synced, the log never
//! holds an acknowledged record after a hole, and replay's "truncate at the first bad record"
//! loses nothing acknowledged. A failed write or sync stops all acknowledgements until a
//! restart (after a failed `fdatasync` the page cache cannot be trusted).
//!
//! # Map layout (one sled tree; the first byte names the index; integers big-endian)
//! ```text
//! m ‖ id:u64                                  → Record {message, deliveries[], body loc,
//!                                                receipt length}
//! e ‖ id:u64 ‖ seq:u32                        → Event          (append-only; seq ≥ 1)
//! r ‖ id:u64 ‖ kind:u8                        → acceptance receipt (kind 0), once purged
//! r ‖ id:u64 ‖ kind:u8 ‖ idx:u16              → receipt about one delivery (delivery, failure,
//!                                                cancellation), signed by the hub's builder
//!                                                in the transition's batch
//! x ‖ sender ‖ 0 ‖ seq:u64                    → (delivery, kind)  the sender's receipt feed
//! c ‖ sender ‖ 0                              → seq  how far the feed was pushed to the sender
//! q ‖ recipient ‖ 0 ‖ due_ms:u64 ‖ id ‖ idx   → state:u8  push deliveries queued, retrying or
//!                                                   leased: due = next attempt, or lease expiry
//! i ‖ recipient ‖ 0 ‖ id:u64 ‖ idx:u16        → ()  pull deliveries waiting in an inbox
//! s ‖ recipient ‖ 0 ‖ state:u8 ‖ id ‖ idx     → ()  finished deliveries, by final state
//! h ‖ sender ‖ 0 ‖ sha256:32                  → id  idempotency (same sender, same bytes)
//! k ‖ sender ‖ 0 ‖ document id ‖ 0 ‖ id:u64   → ()  messages by DocumentId
//! w                                           → Watermark {segment, offset}: log applied up to
//! ```
//! An acceptance writes `m`, `h`, one `q` or `i` entry per recipient (and `k` when the
//! package has a DocumentId): sled's cost is per key (≈ 6 µs each in a batch), so nothing
//! that can be derived is stored. Deliveries live in the message record; each transition
//! rewrites it with the index entries that change, in one batch. The acceptance event (seq 0)
//! is derived from the record. The acceptance receipt stays in the log record beside the
//! package (read back by location) and is copied to `r ‖ id ‖ 0` when the bytes are purged.
//! Message ids carry their arrival time (the high 44 bits are at least the arrival's Unix
//! millisecond, see [`MessageId`]), so `m` is also the time index.
//!
//! Because each `q` queue sorts by due time, "what is due now for this recipient" is a range
//! scan from the start to now, and [`Engine::claim`] merges the recipients' queues; a leased
//! delivery sits at its lease expiry, so a crashed worker's delivery becomes due again by
//! itself. Values are JSON behind a one-byte format version ([`codec`]).
//!
//! # Invariants (checked by the model-based tests after every step)
//! 1. Every message record holds exactly one delivery per recipient, in recipient order.
//! 2. A push delivery has a `q` entry iff it is queued, retrying or in flight, at its due time
//!    (next attempt or lease expiry), holding its state; a pull delivery has an `i` entry iff
//!    it is queued; a finished delivery has exactly one `s` entry, under its final state.
//! 3. Terminal states (delivered, rejected, dead, cancelled) never change again, except
//!    dead → queued by an explicit requeue.
//! 4. Every transition is made in one atomic batch (alone, or with the others of a push
//!    worker's round) that also appends its event; events are never rewritten.
//! 5. One message, and so one stored copy of the bytes, per (sender, package SHA-256) (the
//!    same signed bytes from two senders cannot both pass the sender check); a new document
//!    (BussinessDocType 0) per (sender, DocumentId) unless the bytes are identical.
//! 6. Nothing acknowledged is lost: every acceptance `accept` returned is in the log before
//!    the return and in the map after any restart.

pub mod audit;
pub mod codec;
pub mod engine;
pub mod keys;
pub mod kv;
pub mod log;
pub mod model;

pub use engine::{
    ACCEPTANCE_RECEIPT, CANCELLATION_RECEIPT, CommitObserver, CommitTiming, DELIVERY_RECEIPT,
    Engine, FAILURE_RECEIPT, MemStore, Options, Prepared, Store, receipt_kind,
};
pub use model::*;
