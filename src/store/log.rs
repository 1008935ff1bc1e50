//! The acceptance log: append-only segment files, each record one acceptance (its metadata,
//! its receipt and the package bytes), synced with `fdatasync` before anything in it is
//! acknowledged.
//!
//! # Record format
//! ```text
//! "TRC1" | meta_len:u32 | receipt_len:u32 | body_len:u64 | crc32:u32 | meta | receipt | body
//! ```
//! Integers big-endian; the CRC-32 covers the three lengths and the three parts. Segment
//! files are `log/<segment:016x>.seg`; a new segment starts when the next record would pass
//! the size limit, and the directory is fsynced when a segment is created, before any record
//! in it can be acknowledged.
//!
//! # Parallel writes
//! Appending is two steps. [`Log::reserve`] (under the log's lock, a few instructions) gives
//! the record its sequence number and its place: the next bytes of the current segment.
//! [`Log::write`] then copies the record there with `pwrite(2)`, on the submitter's own
//! thread, so records are copied into the page cache side by side on every core instead of
//! one after another. Writes can finish out of order; the engine acknowledges a record only
//! once every record reserved before it has been written and synced (the contiguous
//! prefix), so the log never holds an acknowledged record after a hole.
//!
//! # Page cache
//! After each sync, the log tells the kernel (`posix_fadvise(POSIX_FADV_DONTNEED)`) that it
//! no longer needs the cached pages of a segment more than [`CACHE_WINDOW`] behind what was
//! just synced: those pages are clean, and freeing them lets the next writes reuse them.
//! Writing into pages the kernel must first find and charge (on this virtual machine, memory
//! the host has never backed) measured 5–7 ms per 5 MB `pwrite`, against 0.9–1.1 ms into
//! recycled pages, and capped acceptances of 5 MB near 110/s. The window keeps the packages
//! just accepted in memory for their deliveries; older ones are read from disk.
//!
//! # Recovery
//! [`Log::replay`] reads every record after a position. A record that is incomplete or fails
//! its CRC is the torn tail of a write that was never acknowledged (acknowledgement waits for
//! the sync of every record before it), or the hole of a reserved record whose write never
//! happened: the segment is truncated there and replay goes on with the next segment.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::Advice;
use serde::{Deserialize, Serialize};

use super::model::StoreError;

const MAGIC: &[u8; 4] = b"TRC1";
/// How much of the log behind the last sync stays in the page cache (see the module docs).
pub const CACHE_WINDOW: u64 = 64 << 20;
const HEADER: u64 = 24;

/// Where a package's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc {
    /// Segment number.
    pub segment: u64,
    /// Byte offset of the body in the segment.
    pub offset: u64,
    /// Body length.
    pub len: u64,
}

/// A point in the log: just after a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the segment (for the memory log: the record count).
    pub offset: u64,
}

/// The place [`Log::reserve`] gave a record: its rank in log order, where it goes, and the
/// file it goes into (so the sync that covers it syncs that file, even after the log moved
/// on to another segment).
#[derive(Clone, Debug)]
pub struct Slot {
    /// Rank in log order, from 0 when the log was opened: every number is handed out once
    /// and the engine acknowledges records in this order.
    pub seq: u64,
    /// Where the package bytes will be.
    pub body: Loc,
    /// The position after the record.
    pub end: Position,
    /// Offset of the record's header.
    start: u64,
    /// The segment file (none for the memory log).
    file: Option<Arc<SegmentFile>>,
}

impl Slot {
    /// The segment the record is in.
    pub fn segment(&self) -> u64 {
        self.end.segment
    }
}

/// A segment open for writing, shared by the slots reserved in it.
#[derive(Debug)]
struct SegmentFile {
    file: File,
    /// Its cached pages below this offset have been given back to the kernel.
    dropped: AtomicU64,
}

impl SegmentFile {
    fn new(file: File) -> Arc<Self> {
        Arc::new(SegmentFile {
            file,
            dropped: AtomicU64::new(0),
        })
    }

    /// Gives back the cached pages more than [`CACHE_WINDOW`] behind `synced` (clean: they
    /// were synced). Advice only: a failure changes nothing stored.
    fn release(&self, synced: u64) {
        let upto = synced.saturating_sub(CACHE_WINDOW);
        let from = self.dropped.fetch_max(upto, Ordering::Relaxed);
        if let Some(len) = upto.checked_sub(from).and_then(NonZeroU64::new) {
            if let Err(e) = rustix::fs::fadvise(&self.file, from, Some(len), Advice::DontNeed) {
                tracing::debug!(error = %e, "posix_fadvise on a log segment");
            }
        }
    }
}

/// A record's header and the parts before the body, encoded (CRC included) by the submitter's
/// thread, off the log's lock.
pub struct Encoded {
    head: Vec<u8>,
    meta_len: u64,
    receipt_len: u64,
}

impl Encoded {
    /// Header, metadata and receipt of a record of `body`.
    pub fn new(meta: &[u8], receipt: &[u8], body: &[u8]) -> Self {
        let header = encode_header(meta, receipt, body);
        let mut head = Vec::with_capacity(header.len() + meta.len() + receipt.len());
        head.extend_from_slice(&header);
        head.extend_from_slice(meta);
        head.extend_from_slice(receipt);
        Encoded {
            head,
            meta_len: meta.len() as u64,
            receipt_len: receipt.len() as u64,
        }
    }

    /// Bytes of the whole record with a body of `body_len`.
    fn size(&self, body_len: u64) -> u64 {
        self.head.len() as u64 + body_len
    }
}

/// A record read back.
#[derive(Debug)]
pub struct Replayed {
    /// The acceptance metadata.
    pub meta: Vec<u8>,
    /// The receipt.
    pub receipt: Vec<u8>,
    /// The package bytes' location.
    pub body: Loc,
    /// The position after the record.
    pub end: Position,
}

/// What the engine needs from a log.
pub trait Log: Send + Sync + 'static {
    /// Reserves the next place in the log for a record of `head` and `body_len` body bytes
    /// (starting a new segment when the current one is full). Nothing is written yet.
    fn reserve(&self, head: &Encoded, body_len: u64) -> Result<Slot, StoreError>;
    /// Writes a reserved record (page cache only, not yet durable). Runs concurrently with
    /// other writes, reservations and syncs.
    fn write(&self, slot: &Slot, head: &Encoded, body: &[u8]) -> Result<(), StoreError>;
    /// The sequence number the next reservation gets.
    fn next_seq(&self) -> u64;
    /// Makes durable every record in `slots` (their writes returned before the call):
    /// `fdatasync` of each segment file they are in, once.
    fn sync(&self, slots: &[&Slot]) -> Result<(), StoreError>;
    /// The package bytes at `loc`.
    fn read(&self, loc: Loc) -> Result<Vec<u8>, StoreError>;
    /// The receipt of the record whose body is at `body` (`len` bytes, just before it).
    fn read_receipt(&self, body: Loc, len: u64) -> Result<Vec<u8>, StoreError>;
    /// Every complete record after `from`, in order (torn tails truncated).
    fn replay(&self, from: Position) -> Result<Vec<Replayed>, StoreError>;
    /// Deletes segments numbered below `below` that are not in `live`; returns how many.
    fn remove_segments(&self, live: &BTreeSet<u64>, below: u64) -> Result<usize, StoreError>;
    /// The segment being written.
    fn current_segment(&self) -> u64;
    /// Short description for the startup log line.
    fn describe(&self) -> String;
}

fn encode_header(meta: &[u8], receipt: &[u8], body: &[u8]) -> [u8; HEADER as usize] {
    let mut crc = crc32fast::Hasher::new();
    let lens = lengths(meta.len() as u32, receipt.len() as u32, body.len() as u64);
    crc.update(&lens);
    crc.update(meta);
    crc.update(receipt);
    crc.update(body);
    let mut h = [0u8; HEADER as usize];
    h[0..4].copy_from_slice(MAGIC);
    h[4..20].copy_from_slice(&lens);
    h[20..24].copy_from_slice(&crc.finalize().to_be_bytes());
    h
}

fn lengths(meta: u32, receipt: u32, body: u64) -> [u8; 16] {
    let mut l = [0u8; 16];
    l[0..4].copy_from_slice(&meta.to_be_bytes());
    l[4..8].copy_from_slice(&receipt.to_be_bytes());
    l[8..16].copy_from_slice(&body.to_be_bytes());
    l
}

/// Segment files in a directory.
pub struct FileLog {
    dir: PathBuf,
    max_segment: u64,
    writer: Mutex<Writer>,
    readers: Mutex<HashMap<u64, Arc<File>>>,
}

struct Writer {
    segment: u64,
    /// Shared with the writes and syncs of the records reserved in it.
    file: Arc<SegmentFile>,
    /// Bytes reserved in the segment.
    len: u64,
    /// The next record's sequence number.
    seq: u64,
}

impl FileLog {
    /// Opens the log in `dir` (created if needed), appending to its last segment.
    pub fn open(dir: &Path, max_segment: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let segments = list(dir)?;
        let segment = segments.last().copied().unwrap_or(1);
        let file = open_segment(dir, segment)?;
        let len = file.metadata()?.len();
        if segments.is_empty() {
            sync_dir(dir)?;
        }
        Ok(FileLog {
            dir: dir.to_owned(),
            max_segment,
            writer: Mutex::new(Writer {
                segment,
                file: SegmentFile::new(file),
                len,
                seq: 0,
            }),
            readers: Mutex::default(),
        })
    }

    fn path(&self, segment: u64) -> PathBuf {
        segment_path(&self.dir, segment)
    }

    fn reader(&self, segment: u64) -> Result<Arc<File>, StoreError> {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = readers.get(&segment) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.path(segment))?);
        if readers.len() > 64 {
            readers.clear();
        }
        readers.insert(segment, f.clone());
        Ok(f)
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016x}.seg"))
}

/// Opens a segment for positional writes (not `O_APPEND`, under which Linux ignores the
/// offset of `pwrite`).
fn open_segment(dir: &Path, segment: u64) -> Result<File, StoreError> {
    Ok(OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(segment_path(dir, segment))?)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Segment numbers in `dir`, ascending.
fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if let Ok(n) = u64::from_str_radix(stem, 16) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Log for FileLog {
    fn reserve(&self, head: &Encoded, body_len: u64) -> Result<Slot, StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let size = head.size(body_len);
        if w.len > 0 && w.len + size > self.max_segment {
            let next = w.segment + 1;
            let file = open_segment(&self.dir, next)?;
            sync_dir(&self.dir)?;
            // Records still being written into the old segment hold its file in their slots.
            w.file = SegmentFile::new(file);
            w.segment = next;
            w.len = 0;
        }
        let start = w.len;
        w.len += size;
        let seq = w.seq;
        w.seq += 1;
        Ok(Slot {
            seq,
            body: Loc {
                segment: w.segment,
                offset: start + HEADER + head.meta_len + head.receipt_len,
                len: body_len,
            },
            end: Position {
                segment: w.segment,
                offset: w.len,
            },
            start,
            file: Some(w.file.clone()),
        })
    }

    fn write(&self, slot: &Slot, head: &Encoded, body: &[u8]) -> Result<(), StoreError> {
        let Some(f) = &slot.file else {
            return Err(StoreError::Io("a slot of another log".into()));
        };
        f.file.write_all_at(&head.head, slot.start)?;
        f.file.write_all_at(body, slot.body.offset)?;
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).seq
    }

    fn sync(&self, slots: &[&Slot]) -> Result<(), StoreError> {
        // Each segment once, with the end of the last record synced in it.
        let mut files: BTreeMap<u64, (&Arc<SegmentFile>, u64)> = BTreeMap::new();
        for slot in slots {
            if let Some(f) = &slot.file {
                let e = files.entry(slot.segment()).or_insert((f, 0));
                e.1 = e.1.max(slot.end.offset);
            }
        }
        for (f, _) in files.values() {
            // The durability point of every acceptance: fdatasync(2) of its segment.
            f.file.sync_data()?;
        }
        for (f, end) in files.values() {
            f.release(*end);
        }
        Ok(())
    }

    fn read(&self, loc: Loc) -> Result<Vec<u8>, StoreError> {
        let f = self.reader(loc.segment)?;
        let len =
            usize::try_from(loc.len).map_err(|_| StoreError::Corrupt("body length".into()))?;
        let mut buf = vec![0; len];
        f.read_exact_at(&mut buf, loc.offset).map_err(|e| {
            StoreError::Corrupt(format!(
                "segment {:016x} at {}: {e}",
                loc.segment, loc.offset
            ))
        })?;
        Ok(buf)
    }

    fn read_receipt(&self, body: Loc, len: u64) -> Result<Vec<u8>, StoreError> {
        let offset = body
            .offset
            .checked_sub(len)
            .ok_or_else(|| StoreError::Corrupt(format!("receipt of {len} bytes at {body:?}")))?;
        self.read(Loc {
            segment: body.segment,
            offset,
            len,
        })
    }

    fn replay(&self, from: Position) -> Result<Vec<Replayed>, StoreError> {
        let mut out = Vec::new();
        let segments: Vec<u64> = list(&self.dir)?
            .into_iter()
            .filter(|s| *s >= from.segment)
            .collect();
        for segment in segments {
            let start = if segment == from.segment {
                from.offset
            } else {
                0
            };
            let path = self.path(segment);
            let file = File::open(&path)?;
            let end = file.metadata()?.len();
            let mut r = BufReader::with_capacity(1 << 20, file);
            r.seek(SeekFrom::Start(start))?;
            let mut pos = start;
            while pos < end {
                match read_record(&mut r, segment, pos, end)? {
                    Some(rec) => {
                        pos = rec.end.offset;
                        out.push(rec);
                    }
                    None => {
                        tracing::warn!(
                            segment = %path.display(),
                            offset = pos,
                            dropped = end - pos,
                            "torn record at the end of a log segment (never acknowledged); truncated"
                        );
                        let f = OpenOptions::new().write(true).open(&path)?;
                        f.set_len(pos)?;
                        f.sync_all()?;
                        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
                        if w.segment == segment {
                            w.len = pos;
                        }
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn remove_segments(&self, live: &BTreeSet<u64>, below: u64) -> Result<usize, StoreError> {
        let current = self.current_segment();
        let mut removed = 0;
        for s in list(&self.dir)? {
            if s < below && s < current && !live.contains(&s) {
                std::fs::remove_file(self.path(s))?;
                self.readers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&s);
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    fn current_segment(&self) -> u64 {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .segment
    }

    fn describe(&self) -> String {
        format!(
            "segment log {} (fdatasync per commit batch, segments of {} MiB)",
            self.dir.display(),
            self.max_segment >> 20
        )
    }
}

/// Reads one record at `pos`; `None` if it is incomplete or damaged.
fn read_record(
    r: &mut BufReader<File>,
    segment: u64,
    pos: u64,
    end: u64,
) -> Result<Option<Replayed>, StoreError> {
    if end - pos < HEADER {
        return Ok(None);
    }
    let mut h = [0u8; HEADER as usize];
    r.read_exact(&mut h)?;
    if &h[0..4] != MAGIC {
        return Ok(None);
    }
    let meta_len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as u64;
    let receipt_len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as u64;
    let body_len = u64::from_be_bytes(h[12..20].try_into().unwrap_or_default());
    let crc = u32::from_be_bytes([h[20], h[21], h[22], h[23]]);
    let size = HEADER
        .checked_add(meta_len)
        .and_then(|s| s.checked_add(receipt_len))
        .and_then(|s| s.checked_add(body_len));
    let Some(size) = size.filter(|s| pos + s <= end) else {
        return Ok(None);
    };
    let mut meta = vec![0; meta_len as usize];
    let mut receipt = vec![0; receipt_len as usize];
    r.read_exact(&mut meta)?;
    r.read_exact(&mut receipt)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h[4..20]);
    hasher.update(&meta);
    hasher.update(&receipt);
    let mut left = body_len;
    let mut buf = vec![0; 1 << 16];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    if hasher.finalize() != crc {
        return Ok(None);
    }
    Ok(Some(Replayed {
        meta,
        receipt,
        body: Loc {
            segment,
            offset: pos + HEADER + meta_len + receipt_len,
            len: body_len,
        },
        end: Position {
            segment,
            offset: pos + size,
        },
    }))
}

/// Records in memory: the in-memory store's log.
#[derive(Default)]
pub struct MemLog {
    /// By sequence number; `None` while reserved and not yet written.
    records: Mutex<Vec<Option<MemRecord>>>,
}

/// Metadata, receipt and body of one in-memory record.
type MemRecord = (Vec<u8>, Vec<u8>, Arc<Vec<u8>>);

impl Log for MemLog {
    fn reserve(&self, _head: &Encoded, body_len: u64) -> Result<Slot, StoreError> {
        let mut r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.push(None);
        let index = r.len() as u64 - 1;
        Ok(Slot {
            seq: index,
            body: Loc {
                segment: 0,
                offset: index,
                len: body_len,
            },
            end: Position {
                segment: 0,
                offset: index + 1,
            },
            start: index,
            file: None,
        })
    }

    fn write(&self, slot: &Slot, head: &Encoded, body: &[u8]) -> Result<(), StoreError> {
        let meta_end = HEADER as usize + head.meta_len as usize;
        let (meta, receipt) = head
            .head
            .get(HEADER as usize..meta_end)
            .zip(head.head.get(meta_end..))
            .ok_or_else(|| StoreError::Io("a malformed record".into()))?;
        let mut r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let cell = r
            .get_mut(slot.seq as usize)
            .ok_or_else(|| StoreError::Io(format!("no slot {}", slot.seq)))?;
        *cell = Some((meta.to_vec(), receipt.to_vec(), Arc::new(body.to_vec())));
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }

    fn sync(&self, _slots: &[&Slot]) -> Result<(), StoreError> {
        Ok(())
    }

    fn read(&self, loc: Loc) -> Result<Vec<u8>, StoreError> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.get(loc.offset as usize)
            .and_then(Option::as_ref)
            .map(|(_, _, b)| b.as_ref().clone())
            .ok_or_else(|| StoreError::Corrupt(format!("no record {}", loc.offset)))
    }

    fn read_receipt(&self, body: Loc, _len: u64) -> Result<Vec<u8>, StoreError> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.get(body.offset as usize)
            .and_then(Option::as_ref)
            .map(|(_, receipt, _)| receipt.clone())
            .ok_or_else(|| StoreError::Corrupt(format!("no record {}", body.offset)))
    }

    fn replay(&self, from: Position) -> Result<Vec<Replayed>, StoreError> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        Ok(r.iter()
            .enumerate()
            .skip(from.offset as usize)
            // A record never written is a hole: nothing after it was acknowledged.
            .map_while(|(i, r)| r.as_ref().map(|r| (i, r)))
            .map(|(i, (meta, receipt, body))| Replayed {
                meta: meta.clone(),
                receipt: receipt.clone(),
                body: Loc {
                    segment: 0,
                    offset: i as u64,
                    len: body.len() as u64,
                },
                end: Position {
                    segment: 0,
                    offset: i as u64 + 1,
                },
            })
            .collect())
    }

    fn remove_segments(&self, _live: &BTreeSet<u64>, _below: u64) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn current_segment(&self) -> u64 {
        0
    }

    fn describe(&self) -> String {
        "in-memory log (nothing is durable)".into()
    }
}
