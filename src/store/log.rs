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
//! # Recovery
//! [`Log::replay`] reads every record after a position. A record that is incomplete or fails
//! its CRC is the torn tail of a write that was never acknowledged (acknowledgement waits for
//! the sync): the segment is truncated there and replay goes on with the next segment.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::model::StoreError;

const MAGIC: &[u8; 4] = b"TRC1";
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
    /// Appends one record (not yet durable); returns where the body is and the position after
    /// the record. Called by one thread at a time.
    fn append(
        &self,
        meta: &[u8],
        receipt: &[u8],
        body: &[u8],
    ) -> Result<(Loc, Position), StoreError>;
    /// Makes every record appended before the call durable: `fdatasync` of each segment
    /// written since the last sync. Appends may run concurrently.
    fn sync(&self) -> Result<(), StoreError>;
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
    /// Shared with a sync running outside the lock.
    file: Arc<File>,
    len: u64,
    /// Segments written since the last sync, with their files.
    dirty: Vec<(u64, Arc<File>)>,
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
                file: Arc::new(file),
                len,
                dirty: Vec::new(),
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

fn open_segment(dir: &Path, segment: u64) -> Result<File, StoreError> {
    Ok(OpenOptions::new()
        .create(true)
        .append(true)
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
    fn append(
        &self,
        meta: &[u8],
        receipt: &[u8],
        body: &[u8],
    ) -> Result<(Loc, Position), StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let size = HEADER + meta.len() as u64 + receipt.len() as u64 + body.len() as u64;
        if w.len > 0 && w.len + size > self.max_segment {
            let next = w.segment + 1;
            let file = open_segment(&self.dir, next)?;
            sync_dir(&self.dir)?;
            let old = std::mem::replace(&mut w.file, Arc::new(file));
            let old_segment = w.segment;
            w.dirty.push((old_segment, old));
            w.segment = next;
            w.len = 0;
        }
        let start = w.len;
        let header = encode_header(meta, receipt, body);
        let mut f: &File = &w.file;
        f.write_all(&header)?;
        f.write_all(meta)?;
        f.write_all(receipt)?;
        f.write_all(body)?;
        w.len += size;
        let loc = Loc {
            segment: w.segment,
            offset: start + HEADER + meta.len() as u64 + receipt.len() as u64,
            len: body.len() as u64,
        };
        Ok((
            loc,
            Position {
                segment: w.segment,
                offset: w.len,
            },
        ))
    }

    fn sync(&self) -> Result<(), StoreError> {
        // Take what to sync under the lock, sync outside it: appends go on meanwhile.
        let (dirty, current) = {
            let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut w.dirty), w.file.clone())
        };
        for (_, f) in dirty {
            f.sync_data()?;
        }
        // The durability point of every acceptance: fdatasync(2) of the segment.
        current.sync_data()?;
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
    records: Mutex<Vec<MemRecord>>,
}

/// Metadata, receipt and body of one in-memory record.
type MemRecord = (Vec<u8>, Vec<u8>, Arc<Vec<u8>>);

impl Log for MemLog {
    fn append(
        &self,
        meta: &[u8],
        receipt: &[u8],
        body: &[u8],
    ) -> Result<(Loc, Position), StoreError> {
        let mut r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.push((meta.to_vec(), receipt.to_vec(), Arc::new(body.to_vec())));
        let index = r.len() as u64 - 1;
        Ok((
            Loc {
                segment: 0,
                offset: index,
                len: body.len() as u64,
            },
            Position {
                segment: 0,
                offset: index + 1,
            },
        ))
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn read(&self, loc: Loc) -> Result<Vec<u8>, StoreError> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.get(loc.offset as usize)
            .map(|(_, _, b)| b.as_ref().clone())
            .ok_or_else(|| StoreError::Corrupt(format!("no record {}", loc.offset)))
    }

    fn read_receipt(&self, body: Loc, _len: u64) -> Result<Vec<u8>, StoreError> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        r.get(body.offset as usize)
            .map(|(_, receipt, _)| receipt.clone())
            .ok_or_else(|| StoreError::Corrupt(format!("no record {}", body.offset)))
    }

    fn replay(&self, from: Position) -> Result<Vec<Replayed>, StoreError> {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        Ok(r.iter()
            .enumerate()
            .skip(from.offset as usize)
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
