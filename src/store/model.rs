//! The store's values: identifiers, messages, deliveries and their states, events, and the
//! errors the API returns. Plain data; the rules live in `engine`.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A message: one accepted package. Allocated in increasing order, so ids sort by arrival:
/// the high 44 bits are at least the arrival time in Unix milliseconds, the low 20 bits count
/// within that millisecond. The store's time index is the message key itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

impl MessageId {
    /// Bits of an id below its millisecond.
    pub const SEQUENCE_BITS: u32 = 20;

    /// The first id of Unix millisecond `ms`.
    pub fn first_at(ms: u64) -> MessageId {
        MessageId(ms.saturating_mul(1 << Self::SEQUENCE_BITS))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        if s.len() != 16 {
            return Err(StoreError::BadId(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(MessageId)
            .map_err(|_| StoreError::BadId(s.to_owned()))
    }
}

/// One recipient's copy of a message: `<message id>-<recipient index>`. Stable across
/// attempts, so receivers can deduplicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeliveryId {
    /// The message.
    pub message: MessageId,
    /// The recipient's position in the message's recipient list.
    pub index: u16,
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.message, self.index)
    }
}

impl FromStr for DeliveryId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::BadId(s.to_owned());
        let (m, i) = s.split_once('-').ok_or_else(bad)?;
        Ok(DeliveryId {
            message: m.parse()?,
            index: i.parse().map_err(|_| bad())?,
        })
    }
}

/// What kind of package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An edoc package.
    Edoc,
    /// A status package.
    Status,
}

/// How a recipient gets its copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The hub POSTs it to the recipient's endpoint (workers claim it from the due queue).
    Push,
    /// The recipient's system fetches it from its inbox and acknowledges it.
    Pull,
}

/// One recipient of a new message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Agency identifier.
    pub agency: String,
    /// Push or pull.
    pub mode: Mode,
}

/// A verified package to accept.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Edoc or status.
    pub kind: Kind,
    /// `From/OrganId`.
    pub sender: String,
    /// Every recipient, each once.
    pub recipients: Vec<Recipient>,
    /// `DocumentId` (or `ResponseFor/DocumentId` of a status), when present.
    pub document_id: Option<String>,
    /// `BussinessDocType` (0 new, 1 revoke, 2 update, 3 replace), when present.
    pub business_doc_type: Option<u8>,
    /// One line on how the signature was verified.
    pub verdict: String,
    /// What an inbox listing shows of it.
    pub summary: Summary,
    /// The exact bytes received (shared with the request that carried them: no copy).
    pub bytes: bytes::Bytes,
    /// When the hub received it.
    pub received_at: Timestamp,
}

/// What a recipient's inbox listing shows of a package besides its ids: `Code` and
/// `Subject` of an edoc package (none for a status package).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `Code/CodeNumber`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// `Code/CodeNotation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notation: Option<String>,
    /// `Subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// An accepted message's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// Edoc or status.
    pub kind: Kind,
    /// The sender agency.
    pub sender: String,
    /// Recipient agencies, in delivery index order.
    pub recipients: Vec<String>,
    /// `DocumentId`.
    pub document_id: Option<String>,
    /// `BussinessDocType`.
    pub business_doc_type: Option<u8>,
    /// SHA-256 of the package, hex.
    pub digest: String,
    /// Package size in bytes.
    pub size: u64,
    /// When the hub received it.
    pub received_at: Timestamp,
    /// Signature verification summary.
    pub verdict: String,
    /// What an inbox listing shows of it.
    #[serde(default)]
    pub summary: Summary,
    /// Whether the package bytes have been purged (metadata and receipts remain).
    pub purged: bool,
}

/// Where a delivery stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Waiting: due now (push) or in the inbox (pull).
    Queued,
    /// Claimed by a worker until the lease expires.
    InFlight {
        /// Lease expiry: after it the delivery is due again.
        lease_until: Timestamp,
    },
    /// The last attempt failed; the next is due at `next_at`.
    Retrying {
        /// Next attempt.
        next_at: Timestamp,
        /// What went wrong.
        error: String,
    },
    /// Pushed with a 2xx, or pulled and acknowledged.
    Delivered {
        /// When.
        at: Timestamp,
    },
    /// The recipient refused it.
    Rejected {
        /// When.
        at: Timestamp,
        /// Its reason.
        reason: String,
    },
    /// Attempts or age exhausted.
    Dead {
        /// When.
        at: Timestamp,
        /// The last error.
        reason: String,
    },
    /// Withdrawn before delivery.
    Cancelled {
        /// When.
        at: Timestamp,
        /// Why.
        reason: String,
    },
}

impl State {
    /// The state's name, as indexed and reported.
    pub fn name(&self) -> StateName {
        match self {
            State::Queued => StateName::Queued,
            State::InFlight { .. } => StateName::InFlight,
            State::Retrying { .. } => StateName::Retrying,
            State::Delivered { .. } => StateName::Delivered,
            State::Rejected { .. } => StateName::Rejected,
            State::Dead { .. } => StateName::Dead,
            State::Cancelled { .. } => StateName::Cancelled,
        }
    }

    /// Whether the delivery is finished (no further attempt will be made).
    pub fn is_terminal(&self) -> bool {
        self.name().is_terminal()
    }
}

/// State names, with their one-byte index code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateName {
    /// Waiting.
    Queued = 1,
    /// Leased to a worker.
    InFlight = 2,
    /// Waiting for its next attempt.
    Retrying = 3,
    /// Done.
    Delivered = 4,
    /// Refused by the recipient.
    Rejected = 5,
    /// Given up.
    Dead = 6,
    /// Withdrawn.
    Cancelled = 7,
}

impl StateName {
    /// All names, in index order.
    pub const ALL: [StateName; 7] = [
        StateName::Queued,
        StateName::InFlight,
        StateName::Retrying,
        StateName::Delivered,
        StateName::Rejected,
        StateName::Dead,
        StateName::Cancelled,
    ];

    /// The name with this index code.
    pub fn from_code(code: u8) -> Option<StateName> {
        StateName::ALL.into_iter().find(|s| *s as u8 == code)
    }

    /// Whether no further attempt follows.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StateName::Delivered | StateName::Rejected | StateName::Dead | StateName::Cancelled
        )
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateName::Queued => "queued",
            StateName::InFlight => "in-flight",
            StateName::Retrying => "retrying",
            StateName::Delivered => "delivered",
            StateName::Rejected => "rejected",
            StateName::Dead => "dead",
            StateName::Cancelled => "cancelled",
        })
    }
}

/// What a push attempt came to, as the worker reports it ([`crate::store::Engine::push_round`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// The endpoint took it (2xx).
    Delivered,
    /// The endpoint refused it (permanent): what it said.
    Rejected(String),
    /// It failed in a way worth retrying: the error, and when to try again (`None`: give
    /// up, dead).
    Failed {
        /// What went wrong.
        error: String,
        /// The next attempt, from the retry policy.
        retry_at: Option<Timestamp>,
    },
}

/// One finished attempt: the delivery, the attempt number of its claim, and its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempted {
    /// Which delivery.
    pub delivery: DeliveryId,
    /// The attempt number of the claim the attempt was made under.
    pub attempt: u32,
    /// What came of it.
    pub result: AttemptResult,
}

/// What [`crate::store::Engine::push_round`] did: each outcome's new delivery (or why it was
/// refused, in the order given), and the deliveries claimed, each with what its attempt
/// needs.
#[derive(Debug)]
pub struct PushRound {
    /// One per outcome given, in order.
    pub recorded: Vec<Result<Delivery, StoreError>>,
    /// The new claims, earliest due first, each with its message, bytes and delivery (or
    /// why the bytes could not be read).
    pub claimed: Vec<(Claim, Result<DeliveryView, StoreError>)>,
}

/// What an attempt at one delivery needs, from one read of its message's record.
#[derive(Clone, Debug)]
pub struct DeliveryView {
    /// The message.
    pub message: Message,
    /// The package bytes (`None` once purged).
    pub body: Option<Vec<u8>>,
    /// The delivery.
    pub delivery: Delivery,
}

/// One recipient's copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The recipient agency.
    pub recipient: String,
    /// Push or pull.
    pub mode: Mode,
    /// Where it stands.
    pub state: State,
    /// Push attempts started so far (since the last requeue).
    pub attempts: u32,
    /// When it was queued (at acceptance, or at the last requeue): retry age counts from here.
    pub since: Timestamp,
    /// Time of the last change.
    pub updated_at: Timestamp,
}

/// A push delivery a worker has claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Which delivery.
    pub delivery: DeliveryId,
    /// The recipient agency.
    pub recipient: String,
    /// The attempt number (1 for the first); the token that completes this claim.
    pub attempt: u32,
    /// When the lease ends.
    pub lease_until: Timestamp,
}

/// One entry of a message's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Order within the message.
    pub seq: u32,
    /// When.
    pub at: Timestamp,
    /// The delivery concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<u16>,
    /// What happened (`accepted`, `claimed`, `delivered`, ...).
    pub what: String,
    /// The state after it, for delivery events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateName>,
    /// Details (error, reason, attempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A receipt issued for one delivery, as listed in its addressee's (the sender's) feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEntry {
    /// Position in the feed (pass as `after` for the next page).
    pub seq: u64,
    /// The delivery it is about.
    pub delivery: DeliveryId,
    /// `DELIVERY_RECEIPT`, `FAILURE_RECEIPT` or `CANCELLATION_RECEIPT`.
    pub kind: u8,
}

/// Builds the signed receipt for a delivery that has just reached a final state: the
/// message, the delivery in that state (its `updated_at` is the time to state) and the receipt
/// kind. Called under the store's writer lock, so the receipt is written in the same batch as
/// the transition.
pub type ReceiptBuilder = Box<dyn Fn(&Message, &Delivery, u8) -> Vec<u8> + Send + Sync>;

/// What `accept` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A new message, durable.
    New {
        /// Its id.
        id: MessageId,
        /// The acceptance receipt stored with it.
        receipt: Vec<u8>,
    },
    /// The same sender sent the same bytes before: that message and its receipt.
    Duplicate {
        /// The earlier message.
        id: MessageId,
        /// Its acceptance receipt.
        receipt: Vec<u8>,
    },
}

impl Accepted {
    /// The message id either way.
    pub fn id(&self) -> MessageId {
        match self {
            Accepted::New { id, .. } | Accepted::Duplicate { id, .. } => *id,
        }
    }

    /// The acceptance receipt either way.
    pub fn receipt(&self) -> &[u8] {
        match self {
            Accepted::New { receipt, .. } | Accepted::Duplicate { receipt, .. } => receipt,
        }
    }
}

/// Per-recipient queue figures for operators.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// The recipient agency.
    pub recipient: String,
    /// Deliveries per state.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Arrival of the oldest message not yet in a terminal state.
    pub oldest_pending: Option<Timestamp>,
    /// The earliest next attempt of a waiting push delivery.
    pub next_due: Option<Timestamp>,
}

/// Which messages to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only messages with a delivery in this state.
    pub state: Option<StateName>,
    /// Only from this sender.
    pub sender: Option<String>,
    /// Only with this recipient.
    pub recipient: Option<String>,
    /// Only with this DocumentId.
    pub document_id: Option<String>,
    /// Received at or after.
    pub since: Option<Timestamp>,
    /// Received before.
    pub until: Option<Timestamp>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Pass as `cursor` to get the next page; `None` at the end.
    pub next: Option<MessageId>,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A new document (BussinessDocType 0) reuses a DocumentId of this sender with other
    /// content.
    #[error(
        "duplicate-conflict: {sender} already sent DocumentId {document_id:?} as message {existing} with other content"
    )]
    Conflict {
        /// The sender.
        sender: String,
        /// The DocumentId.
        document_id: String,
        /// The message that holds it.
        existing: MessageId,
    },
    /// No such message or delivery.
    #[error("not found: {0}")]
    NotFound(String),
    /// The transition is not allowed from the current state (or the claim is stale).
    #[error("{what} is not possible for delivery {delivery} in state {state}")]
    InvalidTransition {
        /// The delivery.
        delivery: DeliveryId,
        /// Its state.
        state: StateName,
        /// What was asked.
        what: &'static str,
    },
    /// Not an id.
    #[error("{0:?} is not a message or delivery id")]
    BadId(String),
    /// The request is not acceptable as such (no recipients, too many).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A stored value does not decode, or the log is damaged.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// The acceptance receipt could not be made: nothing was stored.
    #[error("the acceptance receipt cannot be signed: {0}")]
    Receipt(String),
    /// Disk or database error.
    #[error("storage: {0}")]
    Io(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}
