//! The acceptance log: append-only segment files, each record one acceptance (its metadata,
//! its receipt and the package bytes), synced with `fdatasync` before anything in it is
//! acknowledged.
//!
//! # Record format
//! ```text
//! "TRC1" | meta_len:u32 | receipt_len:u32 | body_len:u64 | crc32:u32 | meta | receipt | body
//! "TRCA" | (the same)                                                 | zeros to a block
//! "TRCP" | pad_len:u32 | crc32:u32 | (pad_len - 12 bytes, skipped)
//! ```
//! Integers big-endian; the CRC-32 of a record covers the three lengths and the three parts,
//! that of a pad its magic and length. Segment files are `log/<segment:016x>.seg`; a new
//! segment starts when the next record would pass the size limit, and the directory is
//! fsynced when a segment is created, before any record in it can be acknowledged.
//!
//! A body of [`DIRECT_MIN`] bytes or more goes into an **aligned record** (`TRCA`): its body
//! starts on a [`BLOCK`] boundary (a pad before the header when needed) and the record ends
//! on one (zeros after the body), so the body is written with `O_DIRECT` (below). Every other
//! record is packed right after the one before it.
//!
//! # Large bodies: `O_DIRECT`
//! An aligned record's body is written with `pwrite(2)` on a second descriptor of the segment
//! opened with `O_DIRECT`: the device gets the bytes straight from the process's memory,
//! without the kernel first finding, charging and filling page-cache pages for them.
//! `O_DIRECT` needs block-aligned memory too: a body read into [`aligned_buffer`] (the hub
//! reads every request body of [`DIRECT_MIN`] bytes or more with a declared length into one)
//! has its whole blocks written from where it is in one call; the rest, and a body elsewhere
//! in memory, is copied through a block-aligned buffer of [`CHUNK`] bytes. Measured on this
//! machine (2026-12-04, 5 MB written and `fdatasync`ed 75 times a second): p99 4.6–5.6 ms
//! this way, against 15–27 ms buffered with the page-cache window below and 280–330 ms
//! buffered without it. The header, metadata and receipt before the body are written buffered (they are in other
//! blocks), and the record's one `fdatasync` (of the same file, through the other
//! descriptor) then flushes the device's cache for both and commits the file's size.
//! Where `O_DIRECT` is refused (a file system without it, such as tmpfs), the same bytes
//! are written buffered at the same places: the format does not depend on how it was
//! written. Deliveries read such a body from the disk, not from the page cache.
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
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::Advice;
use serde::{Deserialize, Serialize};

use super::model::StoreError;

const MAGIC: &[u8; 4] = b"TRC1";
const MAGIC_ALIGNED: &[u8; 4] = b"TRCA";
const MAGIC_PAD: &[u8; 4] = b"TRCP";
/// Bodies of this many bytes or more go into aligned records written with `O_DIRECT`.
pub const DIRECT_MIN: u64 = 1 << 20;
/// The alignment of an aligned record's body and end (offsets, lengths and memory), which
/// covers the logical block size of every disk `O_DIRECT` is used on.
pub const BLOCK: u64 = 4096;
/// Bytes copied and written at a time through an aligned buffer.
pub const CHUNK: usize = 1 << 20;
/// A pad's header: magic, length, CRC.
const PAD_HEADER: u64 = 12;
/// Aligned buffers kept for the next large writes (the rest are freed).
const KEEP_BUFFERS: usize = 4;
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
    /// Offset of the record's first byte (its pad's, when it has one).
    start: u64,
    /// Bytes of the pad before the record's header (0: none).
    pad: u64,
    /// The segment file (none for the memory log).
    file: Option<Arc<SegmentFile>>,
}

impl Slot {
    /// The segment the record is in.
    pub fn segment(&self) -> u64 {
        self.end.segment
    }

    /// Whether it is an aligned record (its body block-aligned, written with `O_DIRECT`
    /// when it can be).
    fn aligned(&self) -> bool {
        self.body.len >= DIRECT_MIN
    }
}

/// An empty buffer for at least `capacity` bytes whose first byte is block-aligned: a
/// package of [`DIRECT_MIN`] bytes or more read into it (without growing past `capacity`) is
/// written into the log with `O_DIRECT` straight from there, without a copy.
pub fn aligned_buffer(capacity: usize) -> bytes::BytesMut {
    let mut b = bytes::BytesMut::with_capacity(capacity + BLOCK as usize);
    let pad = b.as_ptr().align_offset(BLOCK as usize);
    b.resize(pad, 0);
    let _ = b.split_to(pad);
    b
}

/// Where a record goes, given where the log ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    /// Bytes of pad before the header.
    pad: u64,
    /// Offset of the body.
    body: u64,
    /// Offset just after the record.
    end: u64,
}

/// The place of a record of `head` bytes (header, metadata, receipt) and `body` bytes that
/// starts at `start`: packed, or for an aligned record with the body and the end on block
/// boundaries (a pad, at least a pad's header long, before the header when needed).
fn place(start: u64, head: u64, body: u64, aligned: bool) -> Place {
    let packed = start + head;
    if !aligned {
        return Place {
            pad: 0,
            body: packed,
            end: packed + body,
        };
    }
    let body_at = if packed % BLOCK == 0 {
        packed
    } else {
        align_up(packed + PAD_HEADER)
    };
    Place {
        pad: body_at - packed,
        body: body_at,
        end: align_up(body_at + body),
    }
}

fn align_up(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// A pad of `len` bytes: its header, then zeros.
fn pad_bytes(len: u64) -> Vec<u8> {
    let mut p = vec![0u8; len as usize];
    p[0..4].copy_from_slice(MAGIC_PAD);
    p[4..8].copy_from_slice(&(len as u32).to_be_bytes());
    let crc = crc32fast::hash(&p[0..8]);
    p[8..12].copy_from_slice(&crc.to_be_bytes());
    p
}

/// A segment open for writing, shared by the slots reserved in it.
#[derive(Debug)]
struct SegmentFile {
    file: File,
    /// The same file opened with `O_DIRECT`, for aligned bodies (none where it is refused).
    direct: Option<File>,
    /// Set when a direct write was refused: the rest are written buffered.
    buffered_only: AtomicBool,
    /// Its cached pages below this offset have been given back to the kernel.
    dropped: AtomicU64,
}

impl SegmentFile {
    /// Opens (creating it if needed) segment `segment` of `dir` for writing, and again with
    /// `O_DIRECT` when `direct` asks for it and the file system allows it.
    fn open(dir: &Path, segment: u64, direct: bool) -> Result<Arc<Self>, StoreError> {
        let file = open_segment(dir, segment)?;
        let direct = if direct {
            open_direct(dir, segment)
        } else {
            None
        };
        Ok(Arc::new(SegmentFile {
            file,
            direct,
            buffered_only: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }))
    }

    /// Writes `body` at the block-aligned offset `at`, zeros after it to the next block
    /// boundary, with `O_DIRECT` when the file has it. A body whose memory is block-aligned
    /// (read into [`aligned_buffer`]) is written from where it is, all its whole blocks in one
    /// call; the rest goes through a buffer of [`CHUNK`] bytes taken from `buffers`.
    fn write_aligned(
        &self,
        body: &[u8],
        at: u64,
        buffers: &Mutex<Vec<Vec<u8>>>,
    ) -> std::io::Result<()> {
        let mut done = 0;
        let whole = body.len() / BLOCK as usize * BLOCK as usize;
        if whole > 0 && body.as_ptr().align_offset(BLOCK as usize) == 0 {
            self.put(&body[..whole], at)?;
            done = whole;
        }
        if done == body.len() {
            return Ok(());
        }
        let mut buf = {
            let kept = buffers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            kept.unwrap_or_else(|| vec![0; CHUNK + BLOCK as usize])
        };
        let skip = buf.as_ptr().align_offset(BLOCK as usize);
        let chunk = &mut buf[skip..skip + CHUNK];
        let written = loop {
            let n = (body.len() - done).min(CHUNK);
            let padded = align_up(n as u64) as usize;
            chunk[..n].copy_from_slice(&body[done..done + n]);
            chunk[n..padded].fill(0);
            if let Err(e) = self.put(&chunk[..padded], at + done as u64) {
                break Err(e);
            }
            done += n;
            if done >= body.len() {
                break Ok(());
            }
        };
        let mut kept = buffers.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEEP_BUFFERS {
            kept.push(buf);
        }
        written
    }

    /// Writes whole blocks from block-aligned memory at a block-aligned offset: with
    /// `O_DIRECT`, or buffered where that is refused.
    fn put(&self, bytes: &[u8], offset: u64) -> std::io::Result<()> {
        if let Some(d) = self
            .direct
            .as_ref()
            .filter(|_| !self.buffered_only.load(Ordering::Relaxed))
        {
            match d.write_all_at(bytes, offset) {
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    tracing::warn!(
                        error = %e,
                        "O_DIRECT write refused; log bodies are written buffered from now on"
                    );
                    self.buffered_only.store(true, Ordering::Relaxed);
                }
                done => return done,
            }
        }
        self.file.write_all_at(bytes, offset)
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
    /// An aligned record (`TRCA`): the body is [`DIRECT_MIN`] bytes or more.
    aligned: bool,
}

impl Encoded {
    /// Header, metadata and receipt of a record of `body`.
    pub fn new(meta: &[u8], receipt: &[u8], body: &[u8]) -> Self {
        let aligned = body.len() as u64 >= DIRECT_MIN;
        let header = encode_header(meta, receipt, body, aligned);
        let mut head = Vec::with_capacity(header.len() + meta.len() + receipt.len());
        head.extend_from_slice(&header);
        head.extend_from_slice(meta);
        head.extend_from_slice(receipt);
        Encoded {
            head,
            meta_len: meta.len() as u64,
            aligned,
        }
    }

    /// Where the record goes if the log ends at `start`.
    fn place(&self, start: u64, body_len: u64) -> Place {
        place(start, self.head.len() as u64, body_len, self.aligned)
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

fn encode_header(meta: &[u8], receipt: &[u8], body: &[u8], aligned: bool) -> [u8; HEADER as usize] {
    let mut crc = crc32fast::Hasher::new();
    let lens = lengths(meta.len() as u32, receipt.len() as u32, body.len() as u64);
    crc.update(&lens);
    crc.update(meta);
    crc.update(receipt);
    crc.update(body);
    let mut h = [0u8; HEADER as usize];
    h[0..4].copy_from_slice(if aligned { MAGIC_ALIGNED } else { MAGIC });
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
    /// Whether segments are opened with `O_DIRECT` as well (for aligned bodies).
    direct: bool,
    /// Aligned buffers for the next large writes.
    buffers: Mutex<Vec<Vec<u8>>>,
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
    /// Opens the log in `dir` (created if needed), appending to its last segment; large
    /// bodies are written with `O_DIRECT` where the file system allows it.
    pub fn open(dir: &Path, max_segment: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, max_segment, true)
    }

    /// [`FileLog::open`], with `O_DIRECT` never used when `direct` is false (the same
    /// bytes are written, buffered).
    pub fn open_with(dir: &Path, max_segment: u64, direct: bool) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let segments = list(dir)?;
        let segment = segments.last().copied().unwrap_or(1);
        let file = SegmentFile::open(dir, segment, direct)?;
        let len = file.file.metadata()?.len();
        if segments.is_empty() {
            sync_dir(dir)?;
        }
        Ok(FileLog {
            dir: dir.to_owned(),
            max_segment,
            direct: file.direct.is_some(),
            writer: Mutex::new(Writer {
                segment,
                file,
                len,
                seq: 0,
            }),
            readers: Mutex::default(),
            buffers: Mutex::default(),
        })
    }

    fn path(&self, segment: u64) -> PathBuf {
        segment_path(&self.dir, segment)
    }

    /// Cuts or extends a segment to `len` bytes, durably, and appends there next if it is
    /// the one being written.
    fn set_len(&self, path: &Path, segment: u64, len: u64) -> Result<(), StoreError> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()?;
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if w.segment == segment {
            w.len = len;
        }
        Ok(())
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

/// The segment opened again with `O_DIRECT`, or none where that is refused.
fn open_direct(dir: &Path, segment: u64) -> Option<File> {
    let path = segment_path(dir, segment);
    match OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::debug!(segment = %path.display(), error = %e, "no O_DIRECT: large bodies written buffered");
            None
        }
    }
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
        let mut at = head.place(w.len, body_len);
        if w.len > 0 && at.end > self.max_segment {
            let next = w.segment + 1;
            let file = SegmentFile::open(&self.dir, next, self.direct)?;
            sync_dir(&self.dir)?;
            // Records still being written into the old segment hold its file in their slots.
            w.file = file;
            w.segment = next;
            w.len = 0;
            at = head.place(0, body_len);
        }
        let start = w.len;
        w.len = at.end;
        let seq = w.seq;
        w.seq += 1;
        Ok(Slot {
            seq,
            body: Loc {
                segment: w.segment,
                offset: at.body,
                len: body_len,
            },
            end: Position {
                segment: w.segment,
                offset: w.len,
            },
            start,
            pad: at.pad,
            file: Some(w.file.clone()),
        })
    }

    fn write(&self, slot: &Slot, head: &Encoded, body: &[u8]) -> Result<(), StoreError> {
        let Some(f) = &slot.file else {
            return Err(StoreError::Io("a slot of another log".into()));
        };
        if slot.pad > 0 {
            let mut bytes = pad_bytes(slot.pad);
            bytes.extend_from_slice(&head.head);
            f.file.write_all_at(&bytes, slot.start)?;
        } else {
            f.file.write_all_at(&head.head, slot.start)?;
        }
        if slot.aligned() {
            f.write_aligned(body, slot.body.offset, &self.buffers)?;
        } else {
            f.file.write_all_at(body, slot.body.offset)?;
        }
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
                    Found::Record(rec, read_to) => {
                        pos = rec.end.offset;
                        out.push(rec);
                        if pos > end {
                            // An aligned record whose zeros after the body did not reach
                            // the disk: give the file its full length, so the next record
                            // goes where replay will look for it.
                            self.set_len(&path, segment, pos)?;
                            break;
                        }
                        r.seek_relative((pos - read_to) as i64)?;
                    }
                    Found::Pad(next) => pos = next,
                    Found::Damaged => {
                        tracing::warn!(
                            segment = %path.display(),
                            offset = pos,
                            dropped = end - pos,
                            "torn record at the end of a log segment (never acknowledged); truncated"
                        );
                        self.set_len(&path, segment, pos)?;
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
            "segment log {} (fdatasync per commit batch, segments of {} MiB, bodies of {} MiB \
             and more {})",
            self.dir.display(),
            self.max_segment >> 20,
            DIRECT_MIN >> 20,
            if self.direct {
                "written with O_DIRECT"
            } else {
                "written buffered: O_DIRECT refused here"
            }
        )
    }
}

/// What [`read_record`] found at a position.
enum Found {
    /// A whole record, and the offset the reader is at after it (its body's end).
    Record(Replayed, u64),
    /// A pad, skipped: the offset after it (the reader is there).
    Pad(u64),
    /// An incomplete or damaged record: the torn end of the segment.
    Damaged,
}

/// Reads the record or pad at `pos`, where the reader is.
fn read_record(
    r: &mut BufReader<File>,
    segment: u64,
    pos: u64,
    end: u64,
) -> Result<Found, StoreError> {
    if end - pos < PAD_HEADER {
        return Ok(Found::Damaged);
    }
    let mut h = [0u8; HEADER as usize];
    r.read_exact(&mut h[..PAD_HEADER as usize])?;
    if &h[0..4] == MAGIC_PAD {
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as u64;
        let crc = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        if crc != crc32fast::hash(&h[0..8]) || len < PAD_HEADER || pos + len > end {
            return Ok(Found::Damaged);
        }
        r.seek_relative((len - PAD_HEADER) as i64)?;
        return Ok(Found::Pad(pos + len));
    }
    let aligned = match &h[0..4] {
        m if m == MAGIC => false,
        m if m == MAGIC_ALIGNED => true,
        _ => return Ok(Found::Damaged),
    };
    if end - pos < HEADER {
        return Ok(Found::Damaged);
    }
    r.read_exact(&mut h[PAD_HEADER as usize..])?;
    let meta_len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as u64;
    let receipt_len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as u64;
    let body_len = u64::from_be_bytes(h[12..20].try_into().unwrap_or_default());
    let crc = u32::from_be_bytes([h[20], h[21], h[22], h[23]]);
    let size = HEADER
        .checked_add(meta_len)
        .and_then(|s| s.checked_add(receipt_len))
        .and_then(|s| s.checked_add(body_len));
    let Some(size) = size.filter(|s| pos + s <= end) else {
        return Ok(Found::Damaged);
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
        return Ok(Found::Damaged);
    }
    let body_offset = pos + HEADER + meta_len + receipt_len;
    let read_to = pos + size;
    Ok(Found::Record(
        Replayed {
            meta,
            receipt,
            body: Loc {
                segment,
                offset: body_offset,
                len: body_len,
            },
            end: Position {
                segment,
                offset: if aligned { align_up(read_to) } else { read_to },
            },
        },
        read_to,
    ))
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
            pad: 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: usize = 1 << 20;

    proptest! {
        /// Packed records follow each other; an aligned record's body and end are on block
        /// boundaries, and a pad before it is long enough to be read back.
        #[test]
        fn records_are_placed_packed_or_aligned(
            start in 0u64..1 << 40,
            head in 24u64..20_000,
            body in 0u64..1 << 26,
        ) {
            let packed = place(start, head, body, false);
            prop_assert_eq!(packed, Place { pad: 0, body: start + head, end: start + head + body });
            let a = place(start, head, body, true);
            prop_assert_eq!(a.body % BLOCK, 0);
            prop_assert_eq!(a.end % BLOCK, 0);
            prop_assert_eq!(a.body, start + a.pad + head);
            prop_assert!(a.pad == 0 || (PAD_HEADER..BLOCK + PAD_HEADER).contains(&a.pad));
            prop_assert!(a.end >= a.body + body && a.end < a.body + body + BLOCK);
        }
    }

    fn record(i: usize, len: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let meta = format!("meta {i}").repeat(i + 1).into_bytes();
        let receipt = format!("<receipt n=\"{i}\"/>")
            .repeat(3 * i + 1)
            .into_bytes();
        let body = (0..len).map(|b| (b * 31 + i * 7) as u8).collect();
        (meta, receipt, body)
    }

    /// Small and large records, each synced: the slots given. With `from_aligned`, every other
    /// body is in block-aligned memory (as the hub reads a large request body), which takes
    /// the path without a copy for its whole blocks.
    fn write_records(
        log: &FileLog,
        records: &[(Vec<u8>, Vec<u8>, Vec<u8>)],
        from_aligned: bool,
    ) -> Vec<Slot> {
        let mut slots = Vec::new();
        for (i, (meta, receipt, body)) in records.iter().enumerate() {
            let mut aligned = aligned_buffer(body.len());
            let body = if from_aligned && i % 2 == 1 {
                let capacity = aligned.capacity();
                aligned.extend_from_slice(body);
                assert_eq!(aligned.as_ptr().align_offset(BLOCK as usize), 0);
                assert_eq!(aligned.capacity(), capacity, "the body outgrew its buffer");
                &aligned[..]
            } else {
                &body[..]
            };
            let head = Encoded::new(meta, receipt, body);
            let slot = log.reserve(&head, body.len() as u64).unwrap();
            log.write(&slot, &head, body).unwrap();
            log.sync(&[&slot]).unwrap();
            slots.push(slot);
        }
        slots
    }

    fn write_all(log: &FileLog, records: &[(Vec<u8>, Vec<u8>, Vec<u8>)]) -> Vec<Slot> {
        write_records(log, records, false)
    }

    fn segment_bytes(dir: &Path) -> Vec<u8> {
        std::fs::read(segment_path(dir, 1)).unwrap()
    }

    fn sizes() -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        [
            10,
            3 * MIB + 5,
            100,
            DIRECT_MIN as usize,
            2 * MIB,
            7,
            0,
            MIB + 4095,
        ]
        .iter()
        .enumerate()
        .map(|(i, len)| record(i, *len))
        .collect()
    }

    /// Records of every size read back, by location and by replay after a reopen, whether
    /// large bodies went through `O_DIRECT` or not and from aligned memory or not, and every
    /// way gives the same file.
    #[test]
    fn records_of_every_size_come_back_the_same_either_way() {
        let records = sizes();
        let mut files = Vec::new();
        for (direct, from_aligned) in [(true, false), (true, true), (false, true), (false, false)] {
            let dir = tempfile::tempdir().unwrap();
            let log = FileLog::open_with(dir.path(), 1 << 30, direct).unwrap();
            let slots = write_records(&log, &records, from_aligned);
            for ((_, receipt, body), slot) in records.iter().zip(&slots) {
                assert_eq!(&log.read(slot.body).unwrap(), body);
                let r = log.read_receipt(slot.body, receipt.len() as u64).unwrap();
                assert_eq!(&r, receipt);
                let large = body.len() as u64 >= DIRECT_MIN;
                assert_eq!(slot.aligned(), large, "{} bytes", body.len());
                if large {
                    assert_eq!(slot.body.offset % BLOCK, 0);
                    assert_eq!(slot.end.offset % BLOCK, 0);
                }
            }
            drop(log);
            let log = FileLog::open_with(dir.path(), 1 << 30, direct).unwrap();
            let replayed = log.replay(Position::default()).unwrap();
            assert_eq!(replayed.len(), records.len());
            for ((rec, slot), (meta, receipt, _)) in replayed.iter().zip(&slots).zip(&records) {
                assert_eq!((&rec.meta, &rec.receipt), (meta, receipt));
                assert_eq!((rec.body, rec.end), (slot.body, slot.end));
            }
            // Appending after the reopen goes where replay looks next.
            let more = [record(20, 33), record(21, 2 * MIB + 1)];
            write_all(&log, &more);
            drop(log);
            let log = FileLog::open_with(dir.path(), 1 << 30, direct).unwrap();
            let replayed = log.replay(Position::default()).unwrap();
            assert_eq!(replayed.len(), records.len() + 2);
            assert_eq!(
                &log.read(replayed[records.len() + 1].body).unwrap(),
                &more[1].2
            );
            files.push(segment_bytes(dir.path()));
        }
        assert!(
            files[0] == files[1],
            "O_DIRECT and buffered writes gave different files"
        );
    }

    /// An aligned record cut short (a crash while its body was written, never acknowledged)
    /// is truncated on replay; what came before stays and appending goes on. One whose
    /// zeros after the body are missing is whole: the file gets its full length back.
    #[test]
    fn a_torn_aligned_record_is_cut_and_a_missing_tail_restored() {
        let dir = tempfile::tempdir().unwrap();
        let records = [record(0, 100), record(1, 3 * MIB + 1)];
        let log = FileLog::open(dir.path(), 1 << 30).unwrap();
        let slots = write_all(&log, &records);
        assert!(
            slots[1].pad > 0,
            "the test wants a pad before the large record"
        );
        drop(log);
        let path = segment_path(dir.path(), 1);
        let body_end = slots[1].body.offset + slots[1].body.len;
        assert!(slots[1].end.offset > body_end);

        // The zeros after the body lost: the record is whole, the length restored.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(body_end)
            .unwrap();
        let log = FileLog::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(log.replay(Position::default()).unwrap().len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), slots[1].end.offset);
        let c = write_all(&log, &[record(2, 50)]);
        assert_eq!(c[0].start, slots[1].end.offset);
        drop(log);
        let log = FileLog::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(log.replay(Position::default()).unwrap().len(), 3);
        drop(log);

        // The body cut in the middle: cut at the record's header, after its pad.
        let cut = slots[1].body.offset + MIB as u64;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let log = FileLog::open(dir.path(), 1 << 30).unwrap();
        let replayed = log.replay(Position::default()).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].receipt, records[0].1);
        let header = slots[1].start + slots[1].pad;
        assert_eq!(std::fs::metadata(&path).unwrap().len(), header);
        let d = write_all(&log, &[record(3, 2 * MIB)]);
        drop(log);
        let log = FileLog::open(dir.path(), 1 << 30).unwrap();
        let replayed = log.replay(Position::default()).unwrap();
        assert_eq!(replayed.len(), 2);
        assert_eq!(replayed[1].body, d[0].body);
        assert_eq!(log.read(d[0].body).unwrap(), record(3, 2 * MIB).2);

        // A damaged pad is a torn end too.
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (d[0].start + 5) as usize;
        assert_eq!(&bytes[d[0].start as usize..][..4], MAGIC_PAD);
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let log = FileLog::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(log.replay(Position::default()).unwrap().len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), d[0].start);
    }
}
