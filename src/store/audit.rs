//! The audit log: every state change and every operator action, append-only and
//! hash-chained, so that changing, removing or inserting an entry anywhere but at the very end
//! is detected by recomputing the chain.
//!
//! # Format
//! One file, `<store>/audit.log`, one entry per line (UTF-8 JSON, fields in this order):
//! ```text
//! {"seq":7,"at":"2026-12-02T05:51:04.131Z","actor":"operator:ops@127.0.0.1","action":"retry",
//!  "subject":"1a2b…-0","detail":"1 delivery due now","prev":"<64 hex>"}
//! ```
//! `seq` counts from 1 without gaps; `prev` is the lowercase hex SHA-256 of the previous line's
//! bytes as stored (without its newline), 64 zeros for the first. Anyone can check the chain
//! with standard tools (`sha256sum` of each line), or with [`verify`] (`truc admin audit
//! verify`), which names the first entry that does not fit.
//!
//! # What is logged, by whom
//! The engine appends one entry per event it writes (acceptances, claims, outcomes,
//! acknowledgements, cancellations, retries, requeues, purges), under its writer lock, right
//! after the map batch that made the change, so the chain's order is the order of the changes.
//! The actor is derived from the change ([`actor_of`]): the hub itself for push attempts, the
//! recipient agency for acknowledgements and refusals, the sender for acceptances and
//! revocations, `operator` for operator actions. Operator actions through the admin API are
//! also logged by the admin API with who asked (token, user, address) and the outcome.
//!
//! # Durability
//! An entry is written with `write(2)` (page cache) when its change is made and the file is
//! `fdatasync`'d at most [`SYNC_EVERY`] later by the next append, and on [`AuditLog::sync`]:
//! a killed process loses nothing; a power failure can lose the last entries written in that
//! window, the same window in which sled can lose the state changes themselves (see the
//! store's durability contract). A torn last line (power failure mid-write) is cut on open and
//! the cut is itself logged. Truncating the end of the file cannot be detected by the chain
//! alone: keep copies of the head (`truc admin audit verify` prints it) elsewhere.
//!
//! The log is not rotated: at 4 entries of ≈250 bytes per message, half a million messages a
//! month is ≈500 MB a month.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::model::{Delivery, Mode, StoreError};

/// Longest a written entry waits for its `fdatasync`.
pub const SYNC_EVERY: Duration = Duration::from_millis(500);

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When the change was made.
    pub at: Timestamp,
    /// Who made it: `hub`, `agency:<id>`, `operator`, `operator:<who>`.
    pub actor: String,
    /// What: the event name (`accepted`, `claimed`, `delivered`, …) or the operator action.
    pub action: String,
    /// What it is about: a message id, a delivery id, an agency.
    pub subject: String,
    /// Anything else worth keeping (the error, the reason, the outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// SHA-256 (hex) of the previous entry's line.
    pub prev: String,
}

/// An entry to append: everything but the chain fields.
#[derive(Clone, Debug)]
pub struct Change {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// About what.
    pub subject: String,
    /// Anything else.
    pub detail: Option<String>,
}

/// The last entry of the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Its seq (0: empty log).
    pub seq: u64,
    /// Its SHA-256, hex ([`GENESIS`] for an empty log).
    pub hash: String,
}

/// The actor of an engine event: who caused `what` to happen to `d`.
pub fn actor_of(what: &str, d: &Delivery, sender: &str, detail: Option<&str>) -> String {
    match what {
        "acknowledged" => format!("agency:{}", d.recipient),
        "rejected" if d.mode == Mode::Pull => format!("agency:{}", d.recipient),
        "rejected" => format!("agency:{} (push answer)", d.recipient),
        "cancelled" if detail.is_some_and(|r| r.starts_with("revoked by")) => {
            format!("agency:{sender}")
        }
        "cancelled" | "retry-now" | "requeued" => "operator".into(),
        _ => "hub".into(),
    }
}

/// The hex SHA-256 of one stored line.
pub fn hash_line(line: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, line).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Why a chain does not verify: the first entry that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {line} (seq {seq}): {reason}")]
pub struct Broken {
    /// 1-based line number.
    pub line: u64,
    /// The seq it should have had.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// Checks a chain, from its first line: every line parses, `seq` counts from `start.seq + 1`
/// and each `prev` is the hash of the line before (`start.hash` before the first); with
/// `expected`, the last line must hash to it (the head the hub holds, which covers the last
/// entry too). Returns the head after the last line.
///
/// An entry whose bytes changed is named by its own line: the entry after it no longer
/// commits to it (or, for the last one, the expected head does not).
pub fn verify(lines: impl BufRead, start: Head, expected: Option<&Head>) -> Result<Head, Broken> {
    let mut head = if start.seq == 0 {
        Head {
            seq: 0,
            hash: GENESIS.into(),
        }
    } else {
        start
    };
    let mut n = 0u64;
    for line in lines.split(b'\n') {
        n += 1;
        let seq = head.seq + 1;
        let broken = |line: u64, seq: u64, reason: String| Broken { line, seq, reason };
        let line = line.map_err(|e| broken(n, seq, format!("unreadable: {e}")))?;
        let e: AuditEntry = serde_json::from_slice(&line)
            .map_err(|e| broken(n, seq, format!("not an audit entry: {e}")))?;
        if e.seq != seq {
            return Err(broken(
                n,
                seq,
                format!(
                    "seq is {}, expected {seq} (an entry was removed or inserted)",
                    e.seq
                ),
            ));
        }
        if e.prev != head.hash {
            return Err(if n == 1 {
                broken(
                    n,
                    seq,
                    format!("prev is {}, expected {}", e.prev, head.hash),
                )
            } else {
                broken(
                    n - 1,
                    seq - 1,
                    format!(
                        "this entry hashes to {}, but the next one commits to {}: it was changed",
                        head.hash, e.prev
                    ),
                )
            });
        }
        head = Head {
            seq,
            hash: hash_line(&line),
        };
    }
    if let Some(want) = expected {
        if want.seq != head.seq {
            return Err(Broken {
                line: n,
                seq: head.seq,
                reason: format!(
                    "the log ends at seq {}, but the hub's head is seq {} (entries removed at \
                     the end, or added)",
                    head.seq, want.seq
                ),
            });
        }
        if want.hash != head.hash {
            return Err(Broken {
                line: n,
                seq: head.seq,
                reason: format!(
                    "this entry hashes to {}, but the hub's head is {}: it was changed",
                    head.hash, want.hash
                ),
            });
        }
    }
    Ok(head)
}

/// The audit log of a store: a file, or memory for the in-memory store.
pub struct AuditLog {
    tail: Mutex<Tail>,
}

struct Tail {
    head: Head,
    sink: Sink,
    /// Bytes in the log (complete lines only).
    len: u64,
    /// Written since the last sync.
    dirty: bool,
    last_sync: std::time::Instant,
}

enum Sink {
    File { file: File, path: PathBuf },
    Memory(Vec<u8>),
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// An empty log in memory.
    pub fn memory() -> Self {
        AuditLog::with(Sink::Memory(Vec::new()), Head::default(), 0)
    }

    fn with(sink: Sink, head: Head, len: u64) -> Self {
        let head = if head.seq == 0 {
            Head {
                seq: 0,
                hash: GENESIS.into(),
            }
        } else {
            head
        };
        AuditLog {
            tail: Mutex::new(Tail {
                head,
                sink,
                len,
                dirty: false,
                last_sync: crate::clock::monotonic(),
            }),
        }
    }

    /// Opens (or creates) the log at `path`, finding its head from the last line. A torn
    /// last line is cut (and the cut logged at `now`).
    pub fn open(path: &Path, now: Timestamp) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let len = file.metadata()?.len();
        // The last complete line is within the last 64 KiB unless entries grew huge; read
        // more until a newline before it is found.
        let mut window = 64 * 1024u64;
        let (end, last) = loop {
            let from = len.saturating_sub(window);
            let mut buf = vec![0; (len - from) as usize];
            file.read_exact_at(&mut buf, from)?;
            // `end`: just after the last newline (complete lines end there).
            let end = match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => from + i as u64 + 1,
                None if from == 0 => 0,
                None => {
                    window *= 4;
                    continue;
                }
            };
            let complete = &buf[..(end - from) as usize];
            let body = complete.strip_suffix(b"\n").unwrap_or(complete);
            match body.iter().rposition(|&b| b == b'\n') {
                Some(i) => break (end, Some(body[i + 1..].to_vec())),
                None if from == 0 => break (end, (!body.is_empty()).then(|| body.to_vec())),
                None => window *= 4,
            }
        };
        let head = match &last {
            Some(line) => {
                let e: AuditEntry = serde_json::from_slice(line).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "{}: last entry unreadable: {e}; run truc admin audit verify",
                        path.display()
                    ))
                })?;
                Head {
                    seq: e.seq,
                    hash: hash_line(line),
                }
            }
            None => Head::default(),
        };
        let torn = len - end;
        if torn > 0 {
            file.set_len(end)?;
            file.seek(SeekFrom::End(0))?;
            file.sync_data()?;
        }
        let log = AuditLog::with(
            Sink::File {
                file,
                path: path.to_owned(),
            },
            head,
            end,
        );
        if torn > 0 {
            tracing::warn!(bytes = torn, path = %path.display(), "audit log: torn last line cut");
            log.append(&[Change {
                at: now,
                actor: "hub".into(),
                action: "audit-tail-cut".into(),
                subject: path.display().to_string(),
                detail: Some(format!(
                    "{torn} bytes of an incomplete last line removed on open"
                )),
            }])?;
        }
        Ok(log)
    }

    /// Appends `changes` in order (one write), returning the new head.
    pub fn append(&self, changes: &[Change]) -> Result<Head, StoreError> {
        if changes.is_empty() {
            return Ok(self.head());
        }
        let mut t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let mut head = t.head.clone();
        let mut out = Vec::with_capacity(changes.len() * 256);
        for c in changes {
            let e = AuditEntry {
                seq: head.seq + 1,
                at: c.at,
                actor: c.actor.clone(),
                action: c.action.clone(),
                subject: c.subject.clone(),
                detail: c.detail.clone(),
                prev: std::mem::take(&mut head.hash),
            };
            let line =
                serde_json::to_vec(&e).map_err(|e| StoreError::Io(format!("audit entry: {e}")))?;
            head = Head {
                seq: e.seq,
                hash: hash_line(&line),
            };
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        match &mut t.sink {
            Sink::File { file, .. } => {
                file.write_all(&out)?;
            }
            Sink::Memory(v) => v.extend_from_slice(&out),
        }
        t.len += out.len() as u64;
        t.head = head.clone();
        t.dirty = true;
        if t.last_sync.elapsed() >= SYNC_EVERY {
            t.sync()?;
        }
        Ok(head)
    }

    /// The last entry's seq and hash.
    pub fn head(&self) -> Head {
        self.tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .head
            .clone()
    }

    /// `fdatasync`s what was written.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).sync()
    }

    /// Complete lines from byte `offset`, at most about `max` bytes (at least one line),
    /// and the offset after them (`None`: the end of the log).
    pub fn read(&self, offset: u64, max: usize) -> Result<(Vec<u8>, Option<u64>), StoreError> {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let len = t.len;
        if offset >= len {
            return Ok((Vec::new(), None));
        }
        let want = (len - offset).min(max.max(1) as u64) as usize;
        let mut buf = match &t.sink {
            Sink::Memory(v) => v[offset as usize..offset as usize + want].to_vec(),
            Sink::File { path, .. } => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                let mut buf = vec![0; want];
                f.read_exact(&mut buf)?;
                buf
            }
        };
        drop(t);
        // Whole lines only: cut after the last newline (a line longer than `max` is read
        // whole on its own).
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => buf.truncate(i + 1),
            None => return self.read(offset, max.saturating_mul(4)),
        }
        let next = offset + buf.len() as u64;
        Ok((buf, (next < len).then_some(next)))
    }
}

impl Tail {
    fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty {
            if let Sink::File { file, .. } = &self.sink {
                file.sync_data()?;
            }
            self.dirty = false;
        }
        self.last_sync = crate::clock::monotonic();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u32) -> Change {
        Change {
            at: Timestamp::from_second(1_700_000_000 + i64::from(n)).unwrap(),
            actor: "hub".into(),
            action: "claimed".into(),
            subject: format!("m{n}-0"),
            detail: Some(format!("attempt {n}")),
        }
    }

    fn all(log: &AuditLog) -> Vec<u8> {
        let (mut out, mut next) = (Vec::new(), Some(0));
        while let Some(at) = next {
            let (chunk, n) = log.read(at, 100).unwrap();
            out.extend(chunk);
            next = n;
        }
        out
    }

    #[test]
    fn the_chain_verifies_and_a_flipped_byte_is_found_at_its_entry() {
        let log = AuditLog::memory();
        for n in 0..10 {
            log.append(&[change(n)]).unwrap();
        }
        log.append(&[change(10), change(11)]).unwrap();
        let bytes = all(&log);
        let head = verify(&bytes[..], Head::default(), Some(&log.head())).unwrap();
        assert_eq!(head, log.head());
        assert_eq!(head.seq, 12);
        // Flip one byte inside entry 5's detail (still valid JSON): entry 6 no longer
        // commits to it; an edit that breaks the JSON is caught at entry 5 as well.
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        let start5: usize = lines[..4].iter().map(|l| l.len() + 1).sum();
        let at = start5 + lines[4].windows(7).position(|w| w == b"attempt").unwrap();
        let mut tampered = bytes.clone();
        tampered[at] ^= 0x01;
        let err = verify(&tampered[..], Head::default(), None).unwrap_err();
        assert_eq!((err.line, err.seq), (5, 5), "{err}");
        assert!(err.reason.contains("changed"), "{err}");
        let mut tampered = bytes.clone();
        tampered[start5] = b'[';
        let err = verify(&tampered[..], Head::default(), None).unwrap_err();
        assert_eq!(err.seq, 5, "{err}");
        // The last entry is covered by the head the hub holds.
        let mut tampered = bytes.clone();
        let last = tampered.windows(7).rposition(|w| w == b"attempt").unwrap();
        tampered[last] ^= 0x01;
        assert!(verify(&tampered[..], Head::default(), None).is_ok());
        let err = verify(&tampered[..], Head::default(), Some(&log.head())).unwrap_err();
        assert_eq!(err.seq, 12, "{err}");
        // Removing an entry: the next one's seq gives it away.
        let mut removed = Vec::new();
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            if i != 2 {
                removed.extend_from_slice(l);
                removed.push(b'\n');
            }
        }
        assert_eq!(
            verify(&removed[..], Head::default(), None).unwrap_err().seq,
            3
        );
    }

    #[test]
    fn a_file_log_reopens_at_its_head_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let log = AuditLog::open(&path, now).unwrap();
        for n in 0..3 {
            log.append(&[change(n)]).unwrap();
        }
        log.sync().unwrap();
        let head = log.head();
        drop(log);
        let log = AuditLog::open(&path, now).unwrap();
        assert_eq!(log.head(), head);
        log.append(&[change(3)]).unwrap();
        drop(log);
        // A write cut short by a power failure.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":5,"at":"2026"#).unwrap();
        drop(f);
        let log = AuditLog::open(&path, now).unwrap();
        assert_eq!(log.head().seq, 5, "the cut is entry 5");
        let bytes = std::fs::read(&path).unwrap();
        let verified = verify(&bytes[..], Head::default(), None).unwrap();
        assert_eq!(verified, log.head());
        assert!(String::from_utf8_lossy(&bytes).contains("audit-tail-cut"));
        assert_eq!(all(&log), bytes);
    }

    #[test]
    fn actors_follow_the_change() {
        let d = |mode| Delivery {
            id: crate::store::DeliveryId {
                message: crate::store::MessageId(1),
                index: 0,
            },
            recipient: "B".into(),
            mode,
            state: crate::store::State::Queued,
            attempts: 0,
            since: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            actor_of("acknowledged", &d(Mode::Pull), "A", None),
            "agency:B"
        );
        assert_eq!(actor_of("delivered", &d(Mode::Push), "A", None), "hub");
        assert_eq!(
            actor_of(
                "cancelled",
                &d(Mode::Push),
                "A",
                Some("revoked by message 9")
            ),
            "agency:A"
        );
        assert_eq!(
            actor_of("cancelled", &d(Mode::Push), "A", Some("by operator")),
            "operator"
        );
    }
}
