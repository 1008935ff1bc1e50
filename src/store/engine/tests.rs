//! The store API, specified by tests that run against both implementations: sled with the
//! segment log in a temporary directory, and the in-memory store.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + s).unwrap()
}

/// A store under test, with a way to restart it.
enum Harness {
    Mem(MemStore),
    Disk(Option<Store>, tempfile::TempDir, Options),
}

impl Harness {
    fn mem() -> Self {
        Harness::Mem(MemStore::memory())
    }

    fn disk() -> Self {
        Self::disk_with(Options::default())
    }

    fn disk_with(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &options).unwrap();
        Harness::Disk(Some(store), dir, options)
    }

    fn both() -> [Harness; 2] {
        [Harness::mem(), Harness::disk()]
    }

    fn name(&self) -> &'static str {
        match self {
            Harness::Mem(_) => "memory",
            Harness::Disk(..) => "sled",
        }
    }

    /// Closes and reopens a disk store (the memory store has nothing to reopen).
    fn restart(&mut self) {
        if let Harness::Disk(store, dir, options) = self {
            if let Some(s) = store.take() {
                drop(s);
            }
            *store = Some(Store::open(dir.path(), options).unwrap());
        }
    }
}

/// Both implementations behind one interface for the tests.
macro_rules! with {
    ($h:expr, |$s:ident| $body:expr) => {
        match $h {
            Harness::Mem($s) => $body,
            Harness::Disk(Some($s), _, _) => $body,
            Harness::Disk(None, _, _) => unreachable!(),
        }
    };
}

fn new(
    sender: &str,
    to: &[(&str, Mode)],
    bytes: &[u8],
    doc: Option<(&str, u8)>,
    at: Timestamp,
) -> NewMessage {
    NewMessage {
        kind: Kind::Edoc,
        sender: sender.into(),
        recipients: to
            .iter()
            .map(|(a, m)| Recipient {
                agency: (*a).into(),
                mode: *m,
            })
            .collect(),
        document_id: doc.map(|d| d.0.to_owned()),
        business_doc_type: doc.map(|d| d.1),
        verdict: "valid".into(),
        summary: Default::default(),
        bytes: bytes::Bytes::copy_from_slice(bytes),
        received_at: at,
    }
}

fn receipt(id: MessageId) -> Vec<u8> {
    format!("<receipt id='{id}'/>").into_bytes()
}

/// [`receipt`] as the store asks for it ([`super::MakeReceipt`]).
fn make_receipt(id: MessageId, _sha256: &[u8; 32]) -> Result<Vec<u8>, String> {
    Ok(receipt(id))
}

/// How many messages the store holds, counted in one page of 10 (enough where it is used).
fn stored<K: Kv, L: Log>(s: &Engine<K, L>) -> usize {
    s.messages(&Filter::default(), None, 10)
        .unwrap()
        .messages
        .len()
}

/// Accepts a message that must be new or a duplicate; its id.
fn accept<K: Kv, L: Log>(s: &Engine<K, L>, m: NewMessage) -> MessageId {
    s.accept(m, &make_receipt).unwrap().id()
}

/// One push and one pull recipient.
const PUSH_AND_PULL: &[(&str, Mode)] = &[(H29, Mode::Push), (H41, Mode::Pull)];

const G12: &str = "000.00.00.G12";
const H29: &str = "000.00.00.H29";
const H41: &str = "000.00.00.H41";

#[test]
fn a_receipt_that_cannot_be_made_refuses_the_acceptance_and_stores_nothing() {
    for h in Harness::both() {
        let name = h.name();
        with!(&h, |s| {
            let m = new(
                G12,
                PUSH_AND_PULL,
                b"<edXML>r</edXML>",
                Some(("DR", 0)),
                t(0),
            );
            let e = s
                .accept(m.clone(), &|_, _| Err("no key".to_owned()))
                .unwrap_err();
            assert!(
                matches!(&e, StoreError::Receipt(why) if why == "no key"),
                "{name}: {e}"
            );
            // Nothing of it is there: the same package is new afterwards, with its receipt.
            let a = s.accept(m, &make_receipt).unwrap();
            let Accepted::New { id, receipt: r } = a else {
                panic!("{name}: {a:?}")
            };
            assert_eq!(r, receipt(id), "{name}");
            assert_eq!(s.deliveries(id).unwrap().len(), 2, "{name}");
        });
    }
}

#[test]
fn an_acceptance_stores_everything_and_is_idempotent() {
    for h in Harness::both() {
        let name = h.name();
        with!(&h, |s| {
            let m = new(
                G12,
                PUSH_AND_PULL,
                b"<edXML>1</edXML>",
                Some(("D1", 0)),
                t(0),
            );
            let handed = std::cell::Cell::new(None);
            let a = s
                .accept(m.clone(), &|id, sha256| {
                    handed.set(Some(*sha256));
                    Ok(receipt(id))
                })
                .unwrap();
            let Accepted::New { id, receipt: r } = a.clone() else {
                panic!("{name}: {a:?}")
            };
            assert_eq!(r, receipt(id));
            // The receipt builder is handed the package's SHA-256, as the message records it.
            let sha256 = crate::pki::sha256(b"<edXML>1</edXML>");
            assert_eq!(handed.get(), Some(sha256), "{name}");
            let msg = s.message(id).unwrap().unwrap();
            assert_eq!(
                (msg.sender.as_str(), msg.size, msg.purged),
                (G12, 16, false)
            );
            assert_eq!(msg.digest, crate::pki::hex(&sha256), "{name}");
            assert_eq!(msg.recipients, vec![H29.to_owned(), H41.to_owned()]);
            assert_eq!(s.body(id).unwrap().unwrap(), b"<edXML>1</edXML>");
            let ds = s.deliveries(id).unwrap();
            assert_eq!(ds.len(), 2);
            assert!(ds.iter().all(|d| d.state == State::Queued), "{name}");
            assert_eq!(
                s.receipt(id, ACCEPTANCE_RECEIPT).unwrap().unwrap(),
                receipt(id)
            );
            let events: Vec<String> = s.events(id).unwrap().into_iter().map(|e| e.what).collect();
            assert_eq!(events, ["accepted"], "{name}");
            // The same bytes again: the same message and receipt, nothing new.
            let again = s.accept(m.clone(), &|_, _| Ok(b"other".to_vec())).unwrap();
            assert_eq!(
                again,
                Accepted::Duplicate {
                    id,
                    receipt: receipt(id)
                },
                "{name}"
            );
            assert_eq!(
                s.find_duplicate(G12, b"<edXML>1</edXML>")
                    .unwrap()
                    .unwrap()
                    .id(),
                id
            );
            // Another sender with the same bytes is another message.
            let other = s
                .accept(
                    new(H29, &[(G12, Mode::Pull)], b"<edXML>1</edXML>", None, t(1)),
                    &make_receipt,
                )
                .unwrap();
            assert!(matches!(other, Accepted::New { .. }) && other.id() != id);
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn a_new_document_may_not_reuse_a_document_id() {
    for h in Harness::both() {
        with!(&h, |s| {
            let first = s
                .accept(
                    new(G12, &[(H29, Mode::Push)], b"a", Some(("D1", 0)), t(0)),
                    &make_receipt,
                )
                .unwrap();
            let e = s
                .accept(
                    new(G12, &[(H29, Mode::Push)], b"b", Some(("D1", 0)), t(1)),
                    &make_receipt,
                )
                .unwrap_err();
            assert!(
                matches!(e, StoreError::Conflict { existing, .. } if existing == first.id()),
                "{e}"
            );
            assert!(e.to_string().starts_with("duplicate-conflict"));
            // Revoke, update and replace reuse it by design; another sender may use it too.
            for (bytes, kind) in [(&b"c"[..], 1), (b"d", 2), (b"e", 3)] {
                s.accept(
                    new(G12, &[(H29, Mode::Push)], bytes, Some(("D1", kind)), t(2)),
                    &make_receipt,
                )
                .unwrap();
            }
            s.accept(
                new(H41, &[(H29, Mode::Push)], b"f", Some(("D1", 0)), t(3)),
                &make_receipt,
            )
            .unwrap();
            let page = s
                .messages(
                    &Filter {
                        document_id: Some("D1".into()),
                        sender: Some(G12.into()),
                        ..Filter::default()
                    },
                    None,
                    100,
                )
                .unwrap();
            assert_eq!(page.messages.len(), 4);
        });
    }
}

#[test]
fn claims_lease_and_expired_leases_come_back() {
    for h in Harness::both() {
        with!(&h, |s| {
            let id = accept(s, new(G12, PUSH_AND_PULL, b"x", None, t(0)));
            let lease = Duration::from_secs(60);
            let c = s.claim(t(0), lease, 10).unwrap();
            assert_eq!(c.len(), 1, "only the push delivery");
            assert_eq!(
                (c[0].attempt, c[0].lease_until, c[0].recipient.as_str()),
                (1, t(60), H29)
            );
            assert!(s.claim(t(30), lease, 10).unwrap().is_empty(), "leased");
            // What the push worker reads for its attempt, in one read of the record.
            let view = s.delivery_view(c[0].delivery).unwrap().unwrap();
            assert_eq!(
                (view.message.id, view.body.as_deref()),
                (id, Some(&b"x"[..]))
            );
            assert_eq!(view.delivery.state, State::InFlight { lease_until: t(60) });
            let unknown = DeliveryId {
                message: id,
                index: 2,
            };
            assert!(s.delivery_view(unknown).unwrap().is_none());
            // The worker died: after the lease the delivery is due again, attempt 2.
            let again = s.claim(t(61), lease, 10).unwrap();
            assert_eq!((again[0].delivery, again[0].attempt), (c[0].delivery, 2));
            // The first worker's late answer is refused; the second's is taken.
            let e = s.delivered(c[0].delivery, 1, t(62)).unwrap_err();
            assert!(
                matches!(
                    e,
                    StoreError::InvalidTransition {
                        state: StateName::InFlight,
                        ..
                    }
                ),
                "{e}"
            );
            let d = s.delivered(c[0].delivery, 2, t(62)).unwrap();
            assert_eq!(d.state, State::Delivered { at: t(62) });
            assert!(s.delivered(c[0].delivery, 2, t(63)).is_err(), "terminal");
            let events: Vec<String> = s
                .events(id)
                .unwrap()
                .iter()
                .filter(|e| e.delivery == Some(0))
                .map(|e| e.what.clone())
                .collect();
            assert_eq!(events, ["claimed", "claimed", "delivered"]);
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn a_push_round_records_outcomes_then_claims() {
    for h in Harness::both() {
        with!(&h, |s| {
            let signed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let count = signed.clone();
            s.set_receipts(Box::new(move |m, d, kind| {
                count.fetch_add(1, Ordering::SeqCst);
                format!("{kind}:{}:{}:{}", m.sender, d.id, d.state.name()).into_bytes()
            }))
            .unwrap();
            let ids: Vec<MessageId> = (0..5u8)
                .map(|i| accept(s, new(G12, &[(H29, Mode::Push)], &[b'a' + i], None, t(0))))
                .collect();
            let lease = Duration::from_secs(60);
            let first = s.push_round(H29, Vec::new(), t(1), lease, 4).unwrap();
            assert!(first.recorded.is_empty());
            let claimed: Vec<DeliveryId> = first.claimed.iter().map(|(c, _)| c.delivery).collect();
            let expected: Vec<DeliveryId> = ids[..4]
                .iter()
                .map(|&message| DeliveryId { message, index: 0 })
                .collect();
            assert_eq!(claimed, expected, "{}: earliest due first", h.name());
            let mut views = Vec::new();
            for (c, view) in first.claimed {
                let view = view.unwrap();
                assert_eq!(view.delivery.state, State::InFlight { lease_until: t(61) });
                assert_eq!(view.body.as_deref(), Some(&[b'a' + views.len() as u8][..]));
                views.push((c, view));
            }
            let results = [
                AttemptResult::Delivered,
                AttemptResult::Failed {
                    error: "503".into(),
                    retry_at: Some(t(40)),
                },
                AttemptResult::Rejected("HTTP 400".into()),
                AttemptResult::Delivered,
            ];
            let mut done = Vec::new();
            for ((c, view), result) in views.into_iter().zip(results) {
                let a = Attempted {
                    delivery: c.delivery,
                    attempt: c.attempt,
                    result,
                };
                let mut message = view.message;
                if c.delivery == expected[3] {
                    // Signed from a message that is not the record's: the round must sign
                    // again from the record.
                    message.sender = "000.00.00.X99".into();
                }
                done.push(s.prepare(a, message, view.delivery, t(2)));
            }
            assert_eq!(
                signed.load(Ordering::SeqCst),
                3,
                "signed ahead, retry has no receipt"
            );
            // A late answer for a claim that is no longer current.
            let stale = Attempted {
                delivery: expected[0],
                attempt: 7,
                result: AttemptResult::Delivered,
            };
            let v = s.delivery_view(expected[0]).unwrap().unwrap();
            done.push(s.prepare(stale, v.message, v.delivery, t(2)));
            let round = s.push_round(H29, done, t(3), lease, 10).unwrap();
            let states: Vec<Option<StateName>> = round
                .recorded
                .iter()
                .map(|r| r.as_ref().ok().map(|d| d.state.name()))
                .collect();
            assert_eq!(
                states,
                [
                    Some(StateName::Delivered),
                    Some(StateName::Retrying),
                    Some(StateName::Rejected),
                    Some(StateName::Delivered),
                    None
                ]
            );
            assert!(matches!(
                round.recorded[4],
                Err(StoreError::InvalidTransition { .. })
            ));
            assert_eq!(
                round.recorded[0].as_ref().unwrap().state,
                State::Delivered { at: t(2) },
                "the outcome's time is when it was prepared"
            );
            // Only the fifth message is due: the retry waits until t(40).
            let claimed: Vec<DeliveryId> = round.claimed.iter().map(|(c, _)| c.delivery).collect();
            let fifth = DeliveryId {
                message: ids[4],
                index: 0,
            };
            assert_eq!(claimed, [fifth]);
            // Receipts: the ones signed ahead kept, the changed one signed again (once).
            assert_eq!(signed.load(Ordering::SeqCst), 4);
            assert_eq!(
                s.delivery_receipt(expected[3], DELIVERY_RECEIPT)
                    .unwrap()
                    .unwrap(),
                format!("1:{G12}:{}:delivered", expected[3]).into_bytes()
            );
            let feed: Vec<(DeliveryId, u8)> = s
                .receipts_for(G12, None, 10)
                .unwrap()
                .iter()
                .map(|e| (e.delivery, e.kind))
                .collect();
            assert_eq!(
                feed,
                [
                    (expected[0], DELIVERY_RECEIPT),
                    (expected[2], FAILURE_RECEIPT),
                    (expected[3], DELIVERY_RECEIPT)
                ],
                "{}: one feed position each, in order",
                h.name()
            );
            let events: Vec<String> = s
                .events(ids[0])
                .unwrap()
                .iter()
                .map(|e| e.what.clone())
                .collect();
            assert_eq!(events, ["accepted", "claimed", "delivered"]);
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn a_late_outcome_and_its_expired_lease_in_one_round_is_recorded_not_claimed() {
    for h in Harness::both() {
        with!(&h, |s| {
            let first = accept(s, new(G12, &[(H29, Mode::Push)], b"x", None, t(0)));
            let second = accept(s, new(G12, &[(H29, Mode::Push)], b"y", None, t(0)));
            let lease = Duration::from_secs(60);
            let mut claimed = s
                .push_round(H29, Vec::new(), t(0), lease, 2)
                .unwrap()
                .claimed;
            assert_eq!(claimed.len(), 2);
            let (c, view) = claimed.remove(0);
            assert_eq!(c.delivery.message, first);
            let view = view.unwrap();
            // Both leases ran out. The first one's answer comes late, before anyone claimed
            // it again: it is taken, its stale entry at the head of the queue does not make
            // it claimed in the same batch, and the claim goes to the second one.
            let a = Attempted {
                delivery: c.delivery,
                attempt: c.attempt,
                result: AttemptResult::Delivered,
            };
            let done = vec![s.prepare(a, view.message, view.delivery, t(61))];
            let round = s.push_round(H29, done, t(62), lease, 1).unwrap();
            assert_eq!(
                round.recorded[0].as_ref().unwrap().state,
                State::Delivered { at: t(61) },
                "{}",
                h.name()
            );
            let got: Vec<(MessageId, u32)> = round
                .claimed
                .iter()
                .map(|(c, _)| (c.delivery.message, c.attempt))
                .collect();
            assert_eq!(got, [(second, 2)], "{}", h.name());
            assert_eq!(s.deliveries(first).unwrap()[0].attempts, 1);
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn failures_retry_then_die_and_operators_can_requeue() {
    for h in Harness::both() {
        with!(&h, |s| {
            s.accept(
                new(G12, &[(H29, Mode::Push)], b"x", None, t(0)),
                &make_receipt,
            )
            .unwrap();
            let lease = Duration::from_secs(60);
            let c = s.claim(t(0), lease, 1).unwrap().remove(0);
            let d = s.failed(c.delivery, 1, "503", Some(t(40)), t(1)).unwrap();
            assert_eq!(d.state.name(), StateName::Retrying);
            assert!(s.claim(t(39), lease, 1).unwrap().is_empty(), "not yet due");
            let c = s.claim(t(40), lease, 1).unwrap().remove(0);
            assert_eq!(c.attempt, 2);
            let d = s.failed(c.delivery, 2, "timeout", None, t(41)).unwrap();
            assert_eq!(
                d.state,
                State::Dead {
                    at: t(41),
                    reason: "timeout".into()
                }
            );
            assert!(
                s.claim(t(10_000), lease, 1).unwrap().is_empty(),
                "dead is not due"
            );
            let q = s.requeue(c.delivery, t(50)).unwrap();
            assert_eq!(
                (q.state.clone(), q.attempts, q.since),
                (State::Queued, 0, t(50))
            );
            assert_eq!(s.claim(t(50), lease, 1).unwrap()[0].attempt, 1);
            // retry-now makes a retrying delivery due at once.
            s.failed(c.delivery, 1, "503", Some(t(5_000)), t(51))
                .unwrap();
            s.retry_now(c.delivery, t(52)).unwrap();
            assert_eq!(s.claim(t(52), lease, 1).unwrap().len(), 1);
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn pull_inboxes_are_acknowledged_or_refused() {
    for h in Harness::both() {
        with!(&h, |s| {
            let a = s
                .accept(
                    new(G12, &[(H29, Mode::Pull)], b"a", None, t(0)),
                    &make_receipt,
                )
                .unwrap()
                .id();
            let b = s
                .accept(
                    new(
                        H41,
                        &[(H29, Mode::Pull), (G12, Mode::Pull)],
                        b"b",
                        None,
                        t(1),
                    ),
                    &make_receipt,
                )
                .unwrap()
                .id();
            let inbox = s.inbox(H29, None, 10).unwrap();
            assert_eq!(
                inbox.iter().map(|d| d.id.message).collect::<Vec<_>>(),
                vec![a, b]
            );
            let page = s.inbox(H29, Some(inbox[0].id), 10).unwrap();
            assert_eq!(page.len(), 1);
            s.ack(inbox[0].id, t(5)).unwrap();
            s.refuse(inbox[1].id, "not ours", t(6)).unwrap();
            assert!(s.inbox(H29, None, 10).unwrap().is_empty());
            assert!(s.ack(inbox[0].id, t(7)).is_err(), "twice");
            assert_eq!(s.inbox(G12, None, 10).unwrap().len(), 1);
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn cancel_stops_what_is_not_delivered() {
    for h in Harness::both() {
        with!(&h, |s| {
            let id = s
                .accept(
                    new(
                        G12,
                        &[(H29, Mode::Push), (H41, Mode::Push), (G12, Mode::Pull)],
                        b"x",
                        None,
                        t(0),
                    ),
                    &make_receipt,
                )
                .unwrap()
                .id();
            let c = s.claim(t(0), Duration::from_secs(60), 1).unwrap().remove(0);
            s.delivered(c.delivery, 1, t(1)).unwrap();
            assert_eq!(s.cancel(id, "revoked by sender", t(2)).unwrap(), 2);
            let states: Vec<StateName> = s
                .deliveries(id)
                .unwrap()
                .iter()
                .map(|d| d.state.name())
                .collect();
            assert_eq!(
                states,
                [
                    StateName::Delivered,
                    StateName::Cancelled,
                    StateName::Cancelled
                ]
            );
            assert!(
                s.claim(t(100), Duration::from_secs(60), 10)
                    .unwrap()
                    .is_empty()
            );
            assert!(s.inbox(G12, None, 10).unwrap().is_empty());
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn retention_purges_bytes_and_keeps_the_record() {
    for h in Harness::both() {
        with!(&h, |s| {
            let done = s
                .accept(
                    new(G12, &[(H29, Mode::Pull)], b"done", None, t(0)),
                    &make_receipt,
                )
                .unwrap()
                .id();
            let open = s
                .accept(
                    new(G12, &[(H29, Mode::Pull)], b"open", None, t(0)),
                    &make_receipt,
                )
                .unwrap()
                .id();
            let d = s.inbox(H29, None, 1).unwrap().remove(0);
            s.ack(d.id, t(10)).unwrap();
            let day = Duration::from_secs(86_400);
            assert_eq!(s.purge(t(100), day).unwrap(), 0, "too recent");
            assert_eq!(s.purge(t(10 + 86_400), day).unwrap(), 1);
            assert_eq!(s.body(done).unwrap(), None);
            assert!(s.message(done).unwrap().unwrap().purged);
            assert_eq!(
                s.receipt(done, ACCEPTANCE_RECEIPT).unwrap().unwrap(),
                receipt(done)
            );
            assert_eq!(s.events(done).unwrap().last().unwrap().what, "purged");
            assert_eq!(s.body(open).unwrap().unwrap(), b"open");
            assert_eq!(s.purge(t(10 + 86_400), day).unwrap(), 0, "once");
        });
    }
}

#[test]
fn queue_figures_and_listings() {
    for h in Harness::both() {
        with!(&h, |s| {
            for i in 0..5 {
                s.accept(
                    new(
                        G12,
                        PUSH_AND_PULL,
                        format!("m{i}").as_bytes(),
                        Some((&format!("D{i}"), 0)),
                        t(i),
                    ),
                    &make_receipt,
                )
                .unwrap();
            }
            let c = s.claim(t(10), Duration::from_secs(60), 2).unwrap();
            s.failed(c[0].delivery, 1, "503", Some(t(100)), t(11))
                .unwrap();
            let q = s.queues().unwrap();
            let h29 = q.iter().find(|q| q.recipient == H29).unwrap();
            assert_eq!(h29.counts.get("queued"), Some(&3));
            assert_eq!(h29.counts.get("in-flight"), Some(&1));
            assert_eq!(h29.counts.get("retrying"), Some(&1));
            assert_eq!(h29.oldest_pending, Some(t(0)));
            assert_eq!(h29.next_due, Some(t(2)), "the oldest queued one");
            let h41 = q.iter().find(|q| q.recipient == H41).unwrap();
            assert_eq!(h41.counts.get("queued"), Some(&5));
            assert_eq!(h41.next_due, None, "pull deliveries are never due");
            // Listings: pagination and filters.
            let all = Filter::default();
            let p1 = s.messages(&all, None, 2).unwrap();
            assert_eq!(p1.messages.len(), 2);
            let p2 = s.messages(&all, p1.next, 2).unwrap();
            let p3 = s.messages(&all, p2.next, 2).unwrap();
            assert_eq!((p3.messages.len(), p3.next), (1, None));
            let retrying = Filter {
                state: Some(StateName::Retrying),
                ..Filter::default()
            };
            assert_eq!(s.messages(&retrying, None, 10).unwrap().messages.len(), 1);
            let window = Filter {
                since: Some(t(1)),
                until: Some(t(3)),
                ..Filter::default()
            };
            assert_eq!(s.messages(&window, None, 10).unwrap().messages.len(), 2);
        });
    }
}

#[test]
fn a_restart_keeps_everything() {
    let mut h = Harness::disk();
    let (a, claim) = with!(&h, |s| {
        let a = accept(s, new(G12, PUSH_AND_PULL, b"x", None, t(0)));
        let c = s.claim(t(0), Duration::from_secs(60), 1).unwrap().remove(0);
        (a, c)
    });
    h.restart();
    with!(&h, |s| {
        assert_eq!(s.body(a).unwrap().unwrap(), b"x");
        assert_eq!(
            s.delivery(claim.delivery).unwrap().unwrap().state,
            State::InFlight { lease_until: t(60) }
        );
        // Ids continue after the last one.
        let b = s
            .accept(
                new(G12, &[(H29, Mode::Push)], b"y", None, t(1)),
                &make_receipt,
            )
            .unwrap()
            .id();
        assert!(b > a);
        s.check_indexes().unwrap();
    });
}

/// The log is the source of truth: with the whole map lost, every acceptance comes back from
/// the log, with the same ids, receipts and bytes.
#[test]
fn the_map_is_rebuilt_from_the_log() {
    let mut h = Harness::disk();
    let ids: Vec<MessageId> = with!(&h, |s| {
        (0..20)
            .map(|i| {
                s.accept(
                    new(
                        G12,
                        &[(H29, Mode::Push)],
                        format!("p{i}").as_bytes(),
                        None,
                        t(i),
                    ),
                    &make_receipt,
                )
                .unwrap()
                .id()
            })
            .collect()
    });
    if let Harness::Disk(store, dir, _) = &mut h {
        drop(store.take());
        std::fs::remove_dir_all(dir.path().join("map")).unwrap();
    }
    h.restart();
    with!(&h, |s| {
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(s.body(*id).unwrap().unwrap(), format!("p{i}").as_bytes());
            assert_eq!(
                s.receipt(*id, ACCEPTANCE_RECEIPT).unwrap().unwrap(),
                receipt(*id)
            );
            assert_eq!(s.deliveries(*id).unwrap()[0].state, State::Queued);
        }
        let dup = s
            .accept(
                new(G12, &[(H29, Mode::Push)], b"p3", None, t(99)),
                &make_receipt,
            )
            .unwrap();
        assert_eq!(dup.id(), ids[3]);
        s.check_indexes().unwrap();
    });
}

/// A torn record at the end of the log (a crash during a write, never acknowledged) is cut
/// off on open; what came before is intact and appending goes on.
#[test]
fn a_torn_tail_is_truncated() {
    let mut h = Harness::disk();
    let a = with!(&h, |s| s
        .accept(
            new(G12, &[(H29, Mode::Push)], b"whole", None, t(0)),
            &make_receipt
        )
        .unwrap()
        .id());
    if let Harness::Disk(store, dir, _) = &mut h {
        drop(store.take());
        std::fs::remove_dir_all(dir.path().join("map")).unwrap();
        let seg = std::fs::read_dir(dir.path().join("log"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut f, b"TRC1\0\0\0\x10partial").unwrap();
    }
    h.restart();
    with!(&h, |s| {
        assert_eq!(s.body(a).unwrap().unwrap(), b"whole");
        let b = s
            .accept(
                new(G12, &[(H29, Mode::Push)], b"next", None, t(1)),
                &make_receipt,
            )
            .unwrap()
            .id();
        assert_eq!(s.body(b).unwrap().unwrap(), b"next");
    });
    h.restart();
    with!(&h, |s| assert_eq!(stored(s), 2));
}

#[test]
fn segments_rotate_and_purged_ones_are_deleted() {
    let h = Harness::disk_with(Options { max_segment: 4096 });
    let Harness::Disk(Some(s), dir, _) = &h else {
        unreachable!()
    };
    let body = vec![b'x'; 3000];
    let mut ids = Vec::new();
    for i in 0..6u8 {
        let mut b = body.clone();
        b[0] = i;
        ids.push(
            s.accept(new(G12, &[(H29, Mode::Pull)], &b, None, t(0)), &|id, _| {
                Ok(receipt(id))
            })
            .unwrap()
            .id(),
        );
    }
    let segments = || std::fs::read_dir(dir.path().join("log")).unwrap().count();
    assert_eq!(segments(), 6, "one 3 KB package per 4 KB segment");
    for d in s.inbox(H29, None, 3).unwrap() {
        s.ack(d.id, t(1)).unwrap();
    }
    s.purge(t(100), Duration::from_secs(10)).unwrap();
    assert_eq!(
        segments(),
        3,
        "the three purged packages' segments are gone"
    );
    assert_eq!(s.body(ids[5]).unwrap().unwrap()[0], 5);
}

#[test]
fn concurrent_acceptances_share_syncs() {
    let h = Harness::disk();
    let Harness::Disk(Some(s), ..) = &h else {
        unreachable!()
    };
    std::thread::scope(|scope| {
        for th in 0..16 {
            scope.spawn(move || {
                for i in 0..20 {
                    let bytes = format!("{th}-{i}");
                    s.accept(
                        new(G12, &[(H29, Mode::Push)], bytes.as_bytes(), None, t(0)),
                        &make_receipt,
                    )
                    .unwrap();
                }
            });
        }
    });
    let (batches, accepted) = s.commit_stats();
    assert_eq!(accepted, 320);
    assert!(
        batches < accepted,
        "{batches} batches for {accepted} acceptances: no grouping"
    );
    assert_eq!(
        s.messages(&Filter::default(), None, 1000)
            .unwrap()
            .messages
            .len(),
        320
    );
}

#[test]
fn finished_deliveries_get_receipts_in_the_senders_feed() {
    for h in Harness::both() {
        with!(&h, |s| {
            s.set_receipts(Box::new(|m, d, kind| {
                format!("{kind}:{}:{}:{}", m.sender, d.id, d.state.name()).into_bytes()
            }))
            .unwrap();
            assert!(
                s.set_receipts(Box::new(|_, _, _| Vec::new())).is_err(),
                "once"
            );
            let three: &[(&str, Mode)] = &[(H29, Mode::Push), (H41, Mode::Pull), (G12, Mode::Pull)];
            let id = accept(s, new(G12, three, b"r", None, t(0)));
            let [push, pull, other] = [0, 1, 2].map(|index| DeliveryId { message: id, index });
            assert!(s.receipts_for(G12, None, 10).unwrap().is_empty());
            s.ack(pull, t(1)).unwrap();
            let c = s.claim(t(2), Duration::from_secs(60), 10).unwrap();
            s.failed(c[0].delivery, 1, "503", None, t(3)).unwrap();
            s.cancel(id, "revoked", t(4)).unwrap();
            let feed = s.receipts_for(G12, None, 10).unwrap();
            let got: Vec<(DeliveryId, u8)> = feed.iter().map(|e| (e.delivery, e.kind)).collect();
            assert_eq!(
                got,
                [
                    (pull, DELIVERY_RECEIPT),
                    (push, FAILURE_RECEIPT),
                    (other, CANCELLATION_RECEIPT)
                ],
                "{}",
                h.name()
            );
            assert_eq!(
                s.delivery_receipt(push, FAILURE_RECEIPT).unwrap().unwrap(),
                format!("2:{G12}:{push}:dead").into_bytes()
            );
            assert_eq!(s.delivery_receipt(push, DELIVERY_RECEIPT).unwrap(), None);
            // Paging, and nothing for another sender.
            let rest = s.receipts_for(G12, Some(feed[0].seq), 10).unwrap();
            assert_eq!(rest, feed[1..].to_vec());
            assert!(s.receipts_for(H29, None, 10).unwrap().is_empty());
            // The push cursor over the feed only moves forward.
            assert_eq!(s.feed_cursor(G12).unwrap(), None);
            s.set_feed_cursor(G12, feed[1].seq).unwrap();
            s.set_feed_cursor(G12, feed[0].seq).unwrap();
            assert_eq!(s.feed_cursor(G12).unwrap(), Some(feed[1].seq));
            assert_eq!(s.feed_cursor(H29).unwrap(), None);
            // A finished delivery does not get a second receipt.
            assert!(s.ack(pull, t(5)).is_err());
            assert_eq!(s.receipts_for(G12, None, 10).unwrap().len(), 3);
            s.check_indexes().unwrap();
        });
    }
}

#[test]
fn feed_positions_follow_on_across_a_restart() {
    let mut h = Harness::disk();
    let builder =
        || -> ReceiptBuilder { Box::new(|_, d, kind| format!("{kind}:{}", d.id).into_bytes()) };
    let acked = |h: &Harness, bytes: &[u8], at: i64| {
        with!(h, |s| {
            let id = accept(s, new(G12, &[(H41, Mode::Pull)], bytes, None, t(at)));
            s.ack(
                DeliveryId {
                    message: id,
                    index: 0,
                },
                t(at + 1),
            )
            .unwrap();
        })
    };
    with!(&h, |s| s.set_receipts(builder()).unwrap());
    acked(&h, b"one", 0);
    acked(&h, b"two", 2);
    h.restart();
    with!(&h, |s| s.set_receipts(builder()).unwrap());
    acked(&h, b"three", 4);
    with!(&h, |s| {
        let seqs: Vec<u64> = s
            .receipts_for(G12, None, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [0, 1, 2], "one position each, none reused or skipped");
    });
}

/// Identical packages and reused DocumentIds sent at the same moment, so that they meet in
/// one commit group: one message each, every duplicate answered with its id and receipt, every
/// other new document with the same DocumentId refused.
#[test]
fn concurrent_duplicates_and_conflicts_meet_in_one_group() {
    for h in Harness::both() {
        with!(&h, |s| {
            let results: Vec<(Result<Accepted, StoreError>, Result<Accepted, StoreError>)> =
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..16)
                        .map(|th| {
                            scope.spawn(move || {
                                let same = s.accept(
                                    new(G12, &[(H29, Mode::Push)], b"same", None, t(0)),
                                    &make_receipt,
                                );
                                let body = format!("doc {th}");
                                let doc = s.accept(
                                    new(
                                        G12,
                                        &[(H41, Mode::Pull)],
                                        body.as_bytes(),
                                        Some(("D-shared", 0)),
                                        t(0),
                                    ),
                                    &make_receipt,
                                );
                                (same, doc)
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
            let ids: std::collections::BTreeSet<MessageId> = results
                .iter()
                .map(|(same, _)| same.as_ref().unwrap().id())
                .collect();
            assert_eq!(ids.len(), 1, "{}: one message for the same bytes", h.name());
            let id = *ids.first().unwrap();
            let new_ones = results
                .iter()
                .filter(|(same, _)| matches!(same, Ok(Accepted::New { .. })))
                .count();
            assert_eq!(new_ones, 1);
            assert!(
                results
                    .iter()
                    .all(|(same, _)| same.as_ref().unwrap().receipt() == receipt(id))
            );
            let accepted: Vec<MessageId> = results
                .iter()
                .filter_map(|(_, doc)| doc.as_ref().ok().map(Accepted::id))
                .collect();
            assert_eq!(accepted.len(), 1, "one new document per DocumentId");
            for (_, doc) in &results {
                if let Err(e) = doc {
                    assert!(
                        matches!(e, StoreError::Conflict { existing, .. } if *existing == accepted[0]),
                        "{e}"
                    );
                }
            }
            s.check_indexes().unwrap();
        });
    }
}

/// Model-based: random sequences of operations against a reference model of the delivery
/// state machine, on both implementations; after every step each delivery's state and
/// attempt count match the model and the indexes are consistent.
mod model {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;

    use super::*;

    const AGENCIES: [&str; 4] = [G12, H29, H41, "000.00.00.G22"];
    const LEASE: u64 = 60;

    #[derive(Clone, Debug)]
    enum Op {
        Accept {
            sender: usize,
            body: u8,
            to: Vec<(usize, bool)>,
            doc: Option<(u8, u8)>,
        },
        Claim(usize),
        Deliver(usize),
        Fail(usize, bool),
        Ack(usize),
        Cancel(usize),
        /// A push worker's round for one agency: outcomes for some of its deliveries in
        /// flight (0 delivered, 1 retry, 2 dead, 3 a claim that never was), then claims.
        Round {
            agency: usize,
            outcomes: Vec<(usize, u8)>,
            limit: usize,
        },
        Advance(u16),
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, 0..6u8, proptest::collection::vec((0..4usize, any::<bool>()), 1..3),
                  proptest::option::of((0..3u8, 0..2u8)))
                .prop_map(|(sender, body, to, doc)| Op::Accept { sender, body, to, doc }),
            3 => (1..4usize).prop_map(Op::Claim),
            2 => any::<usize>().prop_map(Op::Deliver),
            2 => (any::<usize>(), any::<bool>()).prop_map(|(p, r)| Op::Fail(p, r)),
            2 => any::<usize>().prop_map(Op::Ack),
            1 => any::<usize>().prop_map(Op::Cancel),
            3 => (0..4usize, proptest::collection::vec((any::<usize>(), 0..4u8), 0..4), 0..4usize)
                .prop_map(|(agency, outcomes, limit)| Op::Round { agency, outcomes, limit }),
            2 => (1..200u16).prop_map(Op::Advance),
            1 => Just(Op::Restart),
        ]
    }

    #[derive(Clone, Debug, PartialEq)]
    enum M {
        Queued(Timestamp),
        InFlight(Timestamp),
        Retrying(Timestamp),
        Done(StateName),
    }

    #[derive(Clone, Debug)]
    struct MD {
        agency: usize,
        pull: bool,
        state: M,
        attempts: u32,
    }

    #[derive(Default)]
    struct Model {
        now: i64,
        seen: HashMap<(usize, u8), MessageId>,
        docs: HashMap<(usize, u8), u8>,
        messages: Vec<MessageId>,
        deliveries: BTreeMap<DeliveryId, MD>,
    }

    impl Model {
        fn due(&self) -> Vec<DeliveryId> {
            let now = t(self.now);
            let mut due: Vec<(u64, DeliveryId)> = self
                .deliveries
                .iter()
                .filter(|(_, d)| !d.pull)
                .filter_map(|(id, d)| match d.state {
                    M::Queued(at) | M::InFlight(at) | M::Retrying(at) if at <= now => {
                        Some((ms(at), *id))
                    }
                    _ => None,
                })
                .collect();
            due.sort();
            due.into_iter().map(|(_, id)| id).collect()
        }

        fn pick(&self, n: usize, f: impl Fn(&MD) -> bool) -> Option<(DeliveryId, MD)> {
            let c: Vec<_> = self.deliveries.iter().filter(|(_, d)| f(d)).collect();
            (!c.is_empty()).then(|| {
                let (id, d) = c[n % c.len()];
                (*id, d.clone())
            })
        }
    }

    fn name(m: &M) -> StateName {
        match m {
            M::Queued(_) => StateName::Queued,
            M::InFlight(_) => StateName::InFlight,
            M::Retrying(_) => StateName::Retrying,
            M::Done(n) => *n,
        }
    }

    fn run(h: &mut Harness, ops: &[Op]) -> Result<(), TestCaseError> {
        let mut m = Model::default();
        for op in ops {
            let now = t(m.now);
            match op.clone() {
                Op::Accept {
                    sender,
                    body,
                    mut to,
                    doc,
                } => {
                    to.sort();
                    to.dedup_by_key(|(a, _)| *a);
                    let recipients: Vec<(&str, Mode)> = to
                        .iter()
                        .map(|(a, pull)| {
                            (AGENCIES[*a], if *pull { Mode::Pull } else { Mode::Push })
                        })
                        .collect();
                    let doc_id = doc.map(|(d, ty)| (format!("D{d}"), ty));
                    let msg = new(
                        AGENCIES[sender],
                        &recipients,
                        format!("body {body}").as_bytes(),
                        doc_id.as_ref().map(|(d, ty)| (d.as_str(), *ty)),
                        now,
                    );
                    let r = with!(&*h, |s| s.accept(msg, &make_receipt));
                    if let Some(id) = m.seen.get(&(sender, body)) {
                        prop_assert_eq!(r.unwrap().id(), *id);
                        continue;
                    }
                    let conflict = doc.and_then(|(d, ty)| {
                        (ty == 0)
                            .then(|| m.docs.get(&(sender, d)).filter(|b| **b != body))
                            .flatten()
                    });
                    if conflict.is_some() {
                        prop_assert!(matches!(r, Err(StoreError::Conflict { .. })), "{:?}", r);
                        continue;
                    }
                    let id = r.unwrap().id();
                    prop_assert!(m.messages.last().is_none_or(|last| id > *last));
                    m.seen.insert((sender, body), id);
                    if let Some((d, _)) = doc {
                        m.docs.entry((sender, d)).or_insert(body);
                    }
                    m.messages.push(id);
                    for (i, (agency, pull)) in to.iter().enumerate() {
                        let did = DeliveryId {
                            message: id,
                            index: i as u16,
                        };
                        m.deliveries.insert(
                            did,
                            MD {
                                agency: *agency,
                                pull: *pull,
                                state: M::Queued(now),
                                attempts: 0,
                            },
                        );
                    }
                }
                Op::Claim(limit) => {
                    let expected: Vec<DeliveryId> = m.due().into_iter().take(limit).collect();
                    let claims =
                        with!(&*h, |s| s.claim(now, Duration::from_secs(LEASE), limit)).unwrap();
                    let got: Vec<DeliveryId> = claims.iter().map(|c| c.delivery).collect();
                    prop_assert_eq!(&got, &expected);
                    for c in claims {
                        let d = m.deliveries.get_mut(&c.delivery).unwrap();
                        d.attempts += 1;
                        prop_assert_eq!(c.attempt, d.attempts);
                        d.state = M::InFlight(t(m.now + LEASE as i64));
                    }
                }
                Op::Deliver(n) => {
                    let Some((id, d)) = m.pick(n, |d| matches!(d.state, M::InFlight(_))) else {
                        continue;
                    };
                    with!(&*h, |s| s.delivered(id, d.attempts, now)).unwrap();
                    m.deliveries.get_mut(&id).unwrap().state = M::Done(StateName::Delivered);
                }
                Op::Fail(n, retry) => {
                    let Some((id, d)) = m.pick(n, |d| matches!(d.state, M::InFlight(_))) else {
                        continue;
                    };
                    let next = retry.then(|| t(m.now + 30));
                    with!(&*h, |s| s.failed(id, d.attempts, "503", next, now)).unwrap();
                    m.deliveries.get_mut(&id).unwrap().state = match next {
                        Some(at) => M::Retrying(at),
                        None => M::Done(StateName::Dead),
                    };
                }
                Op::Ack(n) => {
                    let Some((id, _)) = m.pick(n, |d| d.pull && matches!(d.state, M::Queued(_)))
                    else {
                        continue;
                    };
                    with!(&*h, |s| s.ack(id, now)).unwrap();
                    m.deliveries.get_mut(&id).unwrap().state = M::Done(StateName::Delivered);
                }
                Op::Cancel(n) => {
                    if m.messages.is_empty() {
                        continue;
                    }
                    let id = m.messages[n % m.messages.len()];
                    let count = with!(&*h, |s| s.cancel(id, "revoked", now)).unwrap();
                    let mut expected = 0;
                    for (_, d) in m.deliveries.range_mut(
                        DeliveryId {
                            message: id,
                            index: 0,
                        }..=DeliveryId {
                            message: id,
                            index: u16::MAX,
                        },
                    ) {
                        if !matches!(d.state, M::Done(_)) {
                            d.state = M::Done(StateName::Cancelled);
                            expected += 1;
                        }
                    }
                    prop_assert_eq!(count, expected);
                }
                Op::Round {
                    agency,
                    outcomes,
                    limit,
                } => {
                    let mut done = Vec::new();
                    let mut expected = Vec::new();
                    let in_flight =
                        |d: &MD| d.agency == agency && !d.pull && matches!(d.state, M::InFlight(_));
                    for (n, what) in outcomes {
                        let Some((id, d)) = m.pick(n, in_flight) else {
                            continue;
                        };
                        if expected.iter().any(|(e, _)| *e == id) {
                            continue;
                        }
                        let (attempt, result, state) = match what {
                            0 => (
                                d.attempts,
                                AttemptResult::Delivered,
                                Some(M::Done(StateName::Delivered)),
                            ),
                            1 => {
                                let retry_at = Some(t(m.now + 30));
                                let result = AttemptResult::Failed {
                                    error: "503".into(),
                                    retry_at,
                                };
                                (d.attempts, result, Some(M::Retrying(t(m.now + 30))))
                            }
                            2 => {
                                let result = AttemptResult::Failed {
                                    error: "gone".into(),
                                    retry_at: None,
                                };
                                (d.attempts, result, Some(M::Done(StateName::Dead)))
                            }
                            _ => (d.attempts + 1, AttemptResult::Delivered, None),
                        };
                        let a = Attempted {
                            delivery: id,
                            attempt,
                            result,
                        };
                        done.push(with!(&*h, |s| {
                            let v = s.delivery_view(id).unwrap().unwrap();
                            s.prepare(a, v.message, v.delivery, now)
                        }));
                        expected.push((id, state));
                    }
                    let lease = Duration::from_secs(LEASE);
                    let round = with!(&*h, |s| s.push_round(
                        AGENCIES[agency],
                        done,
                        now,
                        lease,
                        limit
                    ))
                    .unwrap();
                    prop_assert_eq!(round.recorded.len(), expected.len());
                    for ((id, state), got) in expected.into_iter().zip(round.recorded) {
                        match state {
                            Some(state) => {
                                prop_assert_eq!(got.unwrap().state.name(), name(&state));
                                m.deliveries.get_mut(&id).unwrap().state = state;
                            }
                            None => prop_assert!(
                                matches!(got, Err(StoreError::InvalidTransition { .. })),
                                "{:?}",
                                got
                            ),
                        }
                    }
                    let want: Vec<DeliveryId> = m
                        .due()
                        .into_iter()
                        .filter(|id| m.deliveries[id].agency == agency)
                        .take(limit)
                        .collect();
                    let got: Vec<DeliveryId> =
                        round.claimed.iter().map(|(c, _)| c.delivery).collect();
                    prop_assert_eq!(&got, &want);
                    for (c, view) in round.claimed {
                        let d = m.deliveries.get_mut(&c.delivery).unwrap();
                        d.attempts += 1;
                        d.state = M::InFlight(t(m.now + LEASE as i64));
                        let view = view.unwrap();
                        prop_assert_eq!(view.delivery.attempts, d.attempts);
                        prop_assert!(view.body.is_some());
                    }
                }
                Op::Advance(secs) => m.now += i64::from(secs),
                Op::Restart => h.restart(),
            }
            for (id, d) in &m.deliveries {
                let got = with!(&*h, |s| s.delivery(*id)).unwrap().unwrap();
                prop_assert_eq!(got.state.name(), name(&d.state), "{} after {:?}", id, op);
                prop_assert_eq!(got.attempts, d.attempts);
            }
            let checked = with!(&*h, |s| s.check_indexes());
            prop_assert!(checked.is_ok(), "{:?} after {:?}", checked, op);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn memory_store_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            run(&mut Harness::mem(), &ops)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn disk_store_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            run(&mut Harness::disk(), &ops)?;
        }
    }
}

/// The audit log's lines, all of them.
fn audit_lines<K: Kv, L: Log>(s: &Engine<K, L>) -> Vec<u8> {
    let (mut out, mut next) = (Vec::new(), Some(0));
    while let Some(at) = next {
        let (chunk, n) = s.audit().read(at, 1 << 16).unwrap();
        out.extend(chunk);
        next = n;
    }
    out
}

#[test]
fn every_change_is_in_the_audit_chain_in_order_across_restarts() {
    for mut h in Harness::both() {
        let id = with!(&h, |s| {
            let id = accept(s, new(G12, PUSH_AND_PULL, b"audited", None, t(0)));
            let c = s.claim(t(1), Duration::from_secs(60), 1).unwrap().remove(0);
            s.delivered(c.delivery, 1, t(2)).unwrap();
            s.ack(
                DeliveryId {
                    message: id,
                    index: 1,
                },
                t(3),
            )
            .unwrap();
            assert!(s.set_paused(H29, true, t(4)).unwrap());
            assert!(!s.set_paused(H29, true, t(4)).unwrap(), "already paused");
            assert_eq!(s.paused().unwrap().keys().collect::<Vec<_>>(), [H29]);
            assert!(s.is_paused(H29).unwrap() && !s.is_paused(H41).unwrap());
            id
        });
        h.restart();
        with!(&h, |s| {
            assert!(
                s.is_paused(H29).unwrap(),
                "{}: a pause outlives a restart",
                h.name()
            );
            s.set_paused(H29, false, t(5)).unwrap();
            let bytes = audit_lines(s);
            let head = audit::verify(&bytes[..], audit::Head::default(), None).unwrap();
            assert_eq!(head, s.audit().head(), "{}", h.name());
            let entries: Vec<audit::AuditEntry> = bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            let seen: Vec<(&str, &str, &str)> = entries
                .iter()
                .map(|e| (e.actor.as_str(), e.action.as_str(), e.subject.as_str()))
                .collect();
            let (m, d0, d1) = (id.to_string(), format!("{id}-0"), format!("{id}-1"));
            let expected = [
                ("agency:000.00.00.G12", "accepted", m.as_str()),
                ("hub", "claimed", d0.as_str()),
                ("hub", "delivered", d0.as_str()),
                ("agency:000.00.00.H41", "acknowledged", d1.as_str()),
                ("operator", "paused", H29),
                ("operator", "resumed", H29),
            ];
            assert_eq!(seen, expected, "{}", h.name());
            assert!(entries[0].detail.as_deref().unwrap().contains("sha256"));
        });
    }
}

/// A memory log whose writes can be held back, and made to fail, by sequence number: the
/// order in which records reach the log is then the test's to choose.
#[derive(Default)]
struct Gated {
    log: MemLog,
    /// Sequence numbers whose write waits: `None` while held, then whether it fails.
    held: Mutex<BTreeMap<u64, Option<bool>>>,
    changed: Condvar,
    /// Sequence numbers whose write returned (failed or not), in order.
    written: Mutex<Vec<u64>>,
}

impl Gated {
    fn hold(&self, seq: u64) {
        self.held.lock().unwrap().insert(seq, None);
    }

    /// Lets the held write of `seq` go on; `fail`: it then fails.
    fn release(&self, seq: u64, fail: bool) {
        self.held.lock().unwrap().insert(seq, Some(fail));
        self.changed.notify_all();
    }

    fn was_written(&self, seq: u64) -> bool {
        self.written.lock().unwrap().contains(&seq)
    }
}

impl Log for Gated {
    fn reserve(&self, head: &Encoded, body_len: u64) -> Result<Slot, StoreError> {
        self.log.reserve(head, body_len)
    }

    fn write(&self, slot: &Slot, head: &Encoded, body: &[u8]) -> Result<(), StoreError> {
        let mut held = self.held.lock().unwrap();
        while held.get(&slot.seq).is_some_and(Option::is_none) {
            held = self.changed.wait(held).unwrap();
        }
        let fail = held.get(&slot.seq).copied().flatten().unwrap_or(false);
        drop(held);
        let result = if fail {
            Err(StoreError::Io("disk full (test)".into()))
        } else {
            self.log.write(slot, head, body)
        };
        self.written.lock().unwrap().push(slot.seq);
        result
    }

    fn next_seq(&self) -> u64 {
        self.log.next_seq()
    }

    fn sync(&self, slots: &[&Slot]) -> Result<(), StoreError> {
        self.log.sync(slots)
    }

    fn read(&self, loc: Loc) -> Result<Vec<u8>, StoreError> {
        self.log.read(loc)
    }

    fn read_receipt(&self, body: Loc, len: u64) -> Result<Vec<u8>, StoreError> {
        self.log.read_receipt(body, len)
    }

    fn replay(&self, from: Position) -> Result<Vec<super::super::log::Replayed>, StoreError> {
        self.log.replay(from)
    }

    fn remove_segments(&self, live: &BTreeSet<u64>, below: u64) -> Result<usize, StoreError> {
        self.log.remove_segments(live, below)
    }

    fn current_segment(&self) -> u64 {
        self.log.current_segment()
    }

    fn describe(&self) -> String {
        "gated memory log (tests)".into()
    }
}

/// Waits (at most 10 s) for `what`.
fn wait_until(what: impl Fn() -> bool) {
    let started = crate::clock::monotonic();
    while !what() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

type Outcome = Result<Accepted, StoreError>;

/// Accepts `first` with its write held back until the second acceptance's record is written;
/// then `release` decides what the held write does. Returns both outcomes, and what the
/// second one had returned before the release.
fn out_of_order(fail_first: bool) -> (Engine<MemKv, Gated>, [Outcome; 2], Option<Outcome>) {
    let gated = Gated::default();
    gated.hold(0);
    let s = Engine::with(MemKv::default(), gated).unwrap();
    let (outcomes, early) = std::thread::scope(|scope| {
        let s = &s;
        let first = scope.spawn(move || {
            s.accept(
                new(G12, &[(H29, Mode::Push)], b"first", None, t(0)),
                &make_receipt,
            )
        });
        wait_until(|| s.inner.log.next_seq() >= 1);
        let (tx, rx) = mpsc::channel();
        scope.spawn(move || {
            let r = s.accept(
                new(G12, &[(H29, Mode::Push)], b"second", None, t(0)),
                &make_receipt,
            );
            tx.send(r).unwrap();
        });
        wait_until(|| s.inner.log.was_written(1));
        // The second record is in the log and handed to the sync stage, which must wait for
        // the record reserved before it.
        let early = rx.recv_timeout(Duration::from_millis(300)).ok();
        s.inner.log.release(0, fail_first);
        let second = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        ([first.join().unwrap(), second], early)
    });
    (s, outcomes, early)
}

#[test]
fn a_record_written_late_holds_back_the_acknowledgement_of_the_ones_after_it() {
    let (s, [first, second], early) = out_of_order(false);
    assert!(
        early.is_none(),
        "acknowledged before the record reserved ahead of it was written: {early:?}"
    );
    let (first, second) = (first.unwrap().id(), second.unwrap().id());
    assert_ne!(first, second);
    assert_eq!(
        s.commit_stats(),
        (1, 2),
        "both committed in one group, once the gap closed"
    );
    assert_eq!(s.body(first).unwrap().unwrap(), b"first");
    assert_eq!(s.body(second).unwrap().unwrap(), b"second");
}

#[test]
fn a_failed_write_refuses_every_record_after_it_and_every_later_acceptance() {
    let (s, [first, second], early) = out_of_order(true);
    assert!(early.is_none(), "acknowledged after a hole: {early:?}");
    assert!(
        matches!(&first, Err(StoreError::Io(e)) if e.contains("disk full")),
        "{first:?}"
    );
    // Written, but after the hole the failed write left: replay would never reach it.
    assert!(
        matches!(&second, Err(StoreError::Io(e)) if e.contains("restart")),
        "{second:?}"
    );
    let later = s.accept(
        new(G12, &[(H29, Mode::Push)], b"third", None, t(1)),
        &make_receipt,
    );
    assert!(
        matches!(&later, Err(StoreError::Io(e)) if e.contains("restart")),
        "{later:?}"
    );
    assert_eq!(s.commit_stats(), (0, 0));
    assert!(
        s.messages(&Filter::default(), None, 10)
            .unwrap()
            .messages
            .is_empty(),
        "nothing stored"
    );
}

/// A package of `len` bytes (1 MiB or more is an aligned record on disk, its body written
/// with `O_DIRECT`).
fn large(tag: u8, len: usize) -> Vec<u8> {
    let mut b = format!("<edXML>{tag}</edXML>").into_bytes();
    b.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag)));
    b.truncate(len);
    b
}

/// Large packages are stored, idempotent and intact after a restart, beside small ones; a
/// DocumentId conflict and a refused receipt store nothing; a large receipt is kept whole.
#[test]
fn large_packages_are_stored_once_and_come_back() {
    let big_receipt = |id: MessageId| {
        let mut r = receipt(id);
        r.resize(40_000, b' ');
        r
    };
    for mut h in Harness::both() {
        let name = h.name();
        let a = large(1, 3 << 20);
        let b = large(2, (1 << 20) + 17);
        let c = large(3, 2 << 20);
        let (ida, idb, idc) = with!(&h, |s| {
            let handed = std::cell::Cell::new(None);
            let first = s
                .accept(
                    new(G12, PUSH_AND_PULL, &a, Some(("BIG", 0)), t(0)),
                    &|id, sha| {
                        handed.set(Some(*sha));
                        Ok(receipt(id))
                    },
                )
                .unwrap();
            assert!(matches!(first, Accepted::New { .. }), "{name}: {first:?}");
            assert_eq!(handed.get(), Some(crate::pki::sha256(&a)), "{name}");
            let again = s
                .accept(
                    new(G12, PUSH_AND_PULL, &a, Some(("BIG", 0)), t(1)),
                    &make_receipt,
                )
                .unwrap();
            assert!(
                matches!(&again, Accepted::Duplicate { id, receipt: r }
                    if *id == first.id() && r == first.receipt()),
                "{name}: {again:?}"
            );
            let e = s
                .accept(
                    new(G12, PUSH_AND_PULL, &c, Some(("BIG", 0)), t(2)),
                    &make_receipt,
                )
                .unwrap_err();
            assert!(matches!(e, StoreError::Conflict { .. }), "{name}: {e}");
            let e = s
                .accept(new(G12, PUSH_AND_PULL, &c, None, t(3)), &|_, _| {
                    Err("no key".into())
                })
                .unwrap_err();
            assert!(matches!(e, StoreError::Receipt(_)), "{name}: {e}");
            let small = accept(
                s,
                new(G12, &[(H41, Mode::Pull)], b"<edXML>s</edXML>", None, t(4)),
            );
            let second = s
                .accept(new(G12, &[(H29, Mode::Pull)], &b, None, t(4)), &|id, _| {
                    Ok(big_receipt(id))
                })
                .unwrap();
            let third = accept(s, new(G12, &[(H29, Mode::Push)], &c, None, t(5)));
            assert_eq!(s.body(third).unwrap().unwrap(), c, "{name}");
            assert_eq!(
                s.body(small).unwrap().unwrap(),
                b"<edXML>s</edXML>",
                "{name}"
            );
            s.check_indexes().unwrap();
            (first.id(), second.id(), third)
        });
        h.restart();
        with!(&h, |s| {
            let all = s.messages(&Filter::default(), None, 10).unwrap().messages;
            assert_eq!(all.len(), 4, "{name}: {all:?}");
            for (id, bytes, r) in [
                (ida, &a, receipt(ida)),
                (idb, &b, big_receipt(idb)),
                (idc, &c, receipt(idc)),
            ] {
                assert_eq!(&s.body(id).unwrap().unwrap(), bytes, "{name}: {id}");
                let stored = s.receipt(id, ACCEPTANCE_RECEIPT).unwrap().unwrap();
                assert_eq!(stored, r, "{name}: {id}");
            }
            s.check_indexes().unwrap();
            let d = accept(
                s,
                new(G12, &[(H29, Mode::Pull)], b"<edXML>d</edXML>", None, t(6)),
            );
            assert_eq!(s.body(d).unwrap().unwrap(), b"<edXML>d</edXML>");
        });
        h.restart();
        with!(&h, |s| assert_eq!(stored(s), 5, "{name}"));
    }
}
