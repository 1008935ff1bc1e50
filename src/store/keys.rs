//! Key encodings (see the layout in the module docs of `store`). Integers are big-endian so
//! that byte order is numeric order; agency ids never contain a zero byte, which therefore
//! ends them.

use super::model::{DeliveryId, MessageId, StateName};

/// Message record (metadata and every delivery).
pub const MESSAGE: u8 = b'm';
/// Event log.
pub const EVENT: u8 = b'e';
/// Receipts.
pub const RECEIPT: u8 = b'r';
/// Receipt feeds: receipts issued for a sender's deliveries, in issue order.
pub const FEED: u8 = b'x';
/// Receipt feed cursors: how far each push-mode sender's receipts have been pushed.
pub const FEED_CURSOR: u8 = b'c';
/// Due queues of push deliveries, one per recipient.
pub const DUE: u8 = b'q';
/// Inboxes of pull deliveries.
pub const INBOX: u8 = b'i';
/// Finished deliveries by recipient and state.
pub const FINISHED: u8 = b's';
/// Idempotency: sender and digest.
pub const IDEMPOTENCY: u8 = b'h';
/// Messages by sender and DocumentId.
pub const DOCUMENT: u8 = b'k';
/// Agencies whose push deliveries an operator paused.
pub const PAUSED: u8 = b'p';
/// The applied-log watermark.
pub const WATERMARK: &[u8] = b"w";

/// `m ‖ id`
pub fn message(id: MessageId) -> Vec<u8> {
    message_prefix(MESSAGE, id)
}

/// `e ‖ id ‖ seq`
pub fn event(id: MessageId, seq: u32) -> Vec<u8> {
    let mut k = message_prefix(EVENT, id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `e ‖ id`: a message's events.
pub fn events_of(id: MessageId) -> Vec<u8> {
    message_prefix(EVENT, id)
}

/// `r ‖ id ‖ kind`
pub fn receipt(id: MessageId, kind: u8) -> Vec<u8> {
    let mut k = message_prefix(RECEIPT, id);
    k.push(kind);
    k
}

/// `r ‖ id ‖ kind ‖ idx`: a receipt about one delivery.
pub fn delivery_receipt(id: DeliveryId, kind: u8) -> Vec<u8> {
    let mut k = receipt(id.message, kind);
    k.extend_from_slice(&id.index.to_be_bytes());
    k
}

/// `x ‖ addressee ‖ 0 ‖ seq`
pub fn feed(addressee: &str, seq: u64) -> Vec<u8> {
    let mut k = feed_of(addressee);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `c ‖ addressee ‖ 0`
pub fn feed_cursor(addressee: &str) -> Vec<u8> {
    agency_prefix(FEED_CURSOR, addressee)
}

/// `p ‖ agency ‖ 0`
pub fn paused(agency: &str) -> Vec<u8> {
    agency_prefix(PAUSED, agency)
}

/// `x ‖ addressee ‖ 0`
pub fn feed_of(addressee: &str) -> Vec<u8> {
    agency_prefix(FEED, addressee)
}

fn message_prefix(tag: u8, id: MessageId) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// `q ‖ recipient ‖ 0 ‖ due_ms ‖ id ‖ idx`
pub fn due(recipient: &str, due_ms: u64, id: DeliveryId) -> Vec<u8> {
    let mut k = due_of(recipient);
    k.extend_from_slice(&due_ms.to_be_bytes());
    push_delivery(&mut k, id);
    k
}

/// `q ‖ recipient ‖ 0`: one recipient's due queue.
pub fn due_of(recipient: &str) -> Vec<u8> {
    agency_prefix(DUE, recipient)
}

/// The first key of `recipient`'s queue due after `due_ms`.
pub fn due_after(recipient: &str, due_ms: u64) -> Vec<u8> {
    let mut k = due_of(recipient);
    k.extend_from_slice(&due_ms.saturating_add(1).to_be_bytes());
    k
}

/// The due time and delivery of a `q` key.
pub fn parse_due(key: &[u8]) -> Option<(u64, DeliveryId)> {
    let start = key.len().checked_sub(18)?;
    let due = u64::from_be_bytes(key.get(start..start + 8)?.try_into().ok()?);
    Some((due, delivery_at(&key[start + 8..])?))
}

/// The agency of a key that starts with `tag ‖ agency ‖ 0`.
pub fn agency_of(key: &[u8]) -> Option<&str> {
    let rest = key.get(1..)?;
    let zero = rest.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&rest[..zero]).ok()
}

/// `i ‖ recipient ‖ 0 ‖ id ‖ idx`
pub fn inbox(recipient: &str, id: DeliveryId) -> Vec<u8> {
    let mut k = inbox_of(recipient);
    push_delivery(&mut k, id);
    k
}

/// `i ‖ recipient ‖ 0`
pub fn inbox_of(recipient: &str) -> Vec<u8> {
    agency_prefix(INBOX, recipient)
}

/// `s ‖ recipient ‖ 0 ‖ state ‖ id ‖ idx`
pub fn finished(recipient: &str, state: StateName, id: DeliveryId) -> Vec<u8> {
    let mut k = finished_of(recipient, state);
    push_delivery(&mut k, id);
    k
}

/// `s ‖ recipient ‖ 0 ‖ state`
pub fn finished_of(recipient: &str, state: StateName) -> Vec<u8> {
    let mut k = agency_prefix(FINISHED, recipient);
    k.push(state as u8);
    k
}

/// `h ‖ sender ‖ 0 ‖ digest`
pub fn idempotency(sender: &str, digest: &[u8; 32]) -> Vec<u8> {
    let mut k = agency_prefix(IDEMPOTENCY, sender);
    k.extend_from_slice(digest);
    k
}

/// `k ‖ sender ‖ 0 ‖ document id ‖ 0`
pub fn document_of(sender: &str, document_id: &str) -> Vec<u8> {
    let mut k = agency_prefix(DOCUMENT, sender);
    k.extend_from_slice(document_id.as_bytes());
    k.push(0);
    k
}

/// `k ‖ sender ‖ 0 ‖ document id ‖ 0 ‖ id`
pub fn document(sender: &str, document_id: &str, id: MessageId) -> Vec<u8> {
    let mut k = document_of(sender, document_id);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// The first key after every `tag ‖ agency ‖ 0 ‖ ...` key.
pub fn after_agency(tag: u8, agency: &str) -> Vec<u8> {
    prefix_end(&agency_prefix(tag, agency))
}

fn agency_prefix(tag: u8, agency: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(agency.len() + 32);
    k.push(tag);
    k.extend_from_slice(agency.as_bytes());
    k.push(0);
    k
}

fn push_delivery(k: &mut Vec<u8>, id: DeliveryId) {
    k.extend_from_slice(&id.message.0.to_be_bytes());
    k.extend_from_slice(&id.index.to_be_bytes());
}

/// The delivery id in the last 10 bytes of a key.
pub fn trailing_delivery(key: &[u8]) -> Option<DeliveryId> {
    key.len()
        .checked_sub(10)
        .and_then(|start| delivery_at(&key[start..]))
}

/// The message id in the last 8 bytes of a key.
pub fn trailing_message(key: &[u8]) -> Option<MessageId> {
    let start = key.len().checked_sub(8)?;
    Some(MessageId(u64::from_be_bytes(key[start..].try_into().ok()?)))
}

fn delivery_at(b: &[u8]) -> Option<DeliveryId> {
    Some(DeliveryId {
        message: MessageId(u64::from_be_bytes(b.get(0..8)?.try_into().ok()?)),
        index: u16::from_be_bytes(b.get(8..10)?.try_into().ok()?),
    })
}

/// The smallest key after every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_then_delivery() {
        let a = DeliveryId {
            message: MessageId(9),
            index: 0,
        };
        let b = DeliveryId {
            message: MessageId(1),
            index: 3,
        };
        let r = "000.00.00.H29";
        assert!(due(r, 1_000, a) < due(r, 2_000, b));
        assert!(due(r, 1_000, b) < due(r, 1_000, a));
        assert!(due(r, 1_000, a) < due_after(r, 1_000));
        assert!(due(r, 1_001, b) >= due_after(r, 1_000));
        assert_eq!(parse_due(&due(r, 77, a)), Some((77, a)));
        assert_eq!(agency_of(&due(r, 77, a)), Some(r));
        assert_eq!(trailing_delivery(&inbox("000.00.00.H29", b)), Some(b));
    }

    #[test]
    fn agency_prefixes_do_not_overlap() {
        // "G1" is a prefix of "G12" as a string, not as a key prefix.
        let short = inbox_of("000.00.00.G1");
        let long = inbox(
            "000.00.00.G12",
            DeliveryId {
                message: MessageId(1),
                index: 0,
            },
        );
        assert!(!long.starts_with(&short));
        assert!(prefix_end(&short) > short);
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
    }
}
