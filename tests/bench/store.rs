//! Durable acceptance throughput and latency of the store: `cargo bench --bench store`.
//!
//! Each run opens a fresh store in a temporary directory (on the same disk as the
//! repository's target directory, `TRUC_BENCH_DIR` to choose another) and measures:
//! - **closed loop**: C submitter threads each accept packages back to back for a few
//!   seconds; throughput, latency percentiles, and the mean group-commit batch;
//! - **open loop** at a fixed arrival rate (about half the closed-loop throughput): latency
//!   measured from each request's scheduled time, so a stall is not hidden by the submitters
//!   waiting (no coordinated omission).
//!
//! - **raw disk**, for reference: the same bytes appended to a plain file by one thread with
//!   one `fdatasync` per 1 and per 8 packages, which is what the disk allows right now (it
//!   varies from day to day on a virtual disk).
//!
//! `TRUC_BENCH_ONLY="1 KB"` (or `100 KB`, `5 MB`) runs one size, `TRUC_BENCH_THREADS=16,32`
//! chooses the submitter counts, `TRUC_BENCH_RATE=75` sets the open loop's arrivals per second
//! (instead of half the closed loop's throughput).
//!
//! `cargo bench --bench store -- recovery` instead fills a store with a million pending
//! push deliveries, leases them all, reopens it, and measures how long until the first
//! expired lease is claimed again.

#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BufMut;
use jiff::Timestamp;
use truc::store::{Kind, Mode, NewMessage, Recipient, Store};

fn dir() -> tempfile::TempDir {
    let base = std::env::var("TRUC_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    tempfile::tempdir_in(base).unwrap()
}

fn message(tag: u64, size: usize) -> NewMessage {
    message_in(None, tag, size)
}

/// A package of `size` bytes tagged `tag`, built in `spare` (the buffer of an earlier one the
/// store has let go of) when there is one: the bench measures the store, not the first touch
/// of freshly allocated memory.
fn message_in(spare: Option<bytes::BytesMut>, tag: u64, size: usize) -> NewMessage {
    use std::io::Write;
    // As the hub reads a large request body: into a block-aligned buffer (see
    // `truc::store::log::aligned_buffer`).
    let mut b = spare.unwrap_or_else(|| {
        if size as u64 >= truc::store::log::DIRECT_MIN {
            truc::store::log::aligned_buffer(size)
        } else {
            bytes::BytesMut::new()
        }
    });
    b.clear();
    let mut w = (&mut b).writer();
    write!(w, "<edXML>{tag}</edXML>").unwrap();
    b.resize(size, b'x');
    NewMessage {
        kind: Kind::Edoc,
        sender: "000.00.00.G12".into(),
        recipients: vec![
            Recipient {
                agency: "000.00.00.H29".into(),
                mode: Mode::Push,
            },
            Recipient {
                agency: "000.00.00.H41".into(),
                mode: Mode::Pull,
            },
        ],
        document_id: None,
        business_doc_type: None,
        verdict: "valid".into(),
        summary: Default::default(),
        bytes: b.freeze(),
        received_at: Timestamp::from_second(1_780_000_000).unwrap(),
    }
}

fn receipt(id: truc::store::MessageId, _sha256: &[u8; 32]) -> Result<Vec<u8>, String> {
    // About the size of a signed acceptance receipt.
    let mut r = format!("<Receipt id='{id}'>").into_bytes();
    r.resize(1800, b' ');
    Ok(r)
}

struct Run {
    accepted: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    batch: f64,
    /// Mean `fdatasync` per commit group, and map apply per acceptance.
    sync: Duration,
    apply: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }
}

/// `threads` submitters; each waits `interval` between scheduled starts (zero: closed loop).
fn run(size: usize, threads: usize, interval: Duration, duration: Duration) -> Run {
    let dir = dir();
    let store = Store::open(dir.path(), &Default::default()).unwrap();
    let timing = std::sync::Arc::new(std::sync::Mutex::new((
        0u32,
        Duration::ZERO,
        Duration::ZERO,
    )));
    let seen = timing.clone();
    store.observe_commits(Box::new(move |t| {
        let mut s = seen.lock().unwrap();
        s.0 += 1;
        s.1 += t.sync;
        s.2 += t.apply;
    }));
    let counter = AtomicUsize::new(0);
    let start = Instant::now();
    let latencies = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (store, counter) = (&store, &counter);
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut spare = None;
                    // Spread the open-loop submitters' schedules over one interval.
                    let mut next = start + interval.mul_f64(t as f64 / threads as f64);
                    while start.elapsed() < duration {
                        let scheduled = if interval.is_zero() {
                            Instant::now()
                        } else {
                            let now = Instant::now();
                            if now < next {
                                std::thread::sleep(next - now);
                            }
                            next
                        };
                        let n = counter.fetch_add(1, Ordering::Relaxed) as u64;
                        let m = message_in(spare.take(), n, size);
                        let keep = m.bytes.clone();
                        store.accept(m, &receipt).unwrap();
                        spare = keep.try_into_mut().ok();
                        lat.push(scheduled.elapsed());
                        next += interval;
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let elapsed = start.elapsed();
    let (batches, batched) = store.commit_stats();
    let (groups, sync, apply) = *timing.lock().unwrap();
    Run {
        accepted: latencies.len(),
        elapsed,
        latencies,
        batch: batched as f64 / batches.max(1) as f64,
        sync: sync / groups.max(1),
        apply: apply / u32::try_from(batched.max(1)).unwrap_or(u32::MAX),
    }
}

/// Packages/s appending `size` bytes to a plain file with one `fdatasync` every `every`.
fn raw(size: usize, every: usize, duration: Duration) -> f64 {
    use std::io::Write;
    let dir = dir();
    let mut f = std::fs::File::create(dir.path().join("raw")).unwrap();
    let bytes = vec![b'x'; size];
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < duration {
        f.write_all(&bytes).unwrap();
        n += 1;
        if n % every == 0 {
            f.sync_data().unwrap();
        }
    }
    f.sync_data().unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

fn throughput() {
    println!(
        "| package | submitters | accepted/s | p50 | p99 | mean batch | sync per batch | apply per acceptance | open loop at | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let only = std::env::var("TRUC_BENCH_ONLY").ok();
    let fixed_rate = std::env::var("TRUC_BENCH_RATE")
        .ok()
        .and_then(|r| r.parse::<f64>().ok());
    for (label, size, seconds) in [
        ("1 KB", 1_000, 4),
        ("100 KB", 100_000, 4),
        ("5 MB", 5_000_000, 6),
    ] {
        if only.as_ref().is_some_and(|o| o != label) {
            continue;
        }
        let seconds = Duration::from_secs(seconds);
        println!(
            "| {label} | raw file, fdatasync every 1 / 8 | {:.0} / {:.0} | | | | | | | | |",
            raw(size, 1, seconds),
            raw(size, 8, seconds)
        );
        let threads: Vec<usize> = std::env::var("TRUC_BENCH_THREADS")
            .ok()
            .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 16, 32]);
        for threads in threads {
            let mut closed = run(size, threads, Duration::ZERO, seconds);
            let rate = closed.rate();
            let half = fixed_rate.unwrap_or(rate / 2.0);
            let interval = Duration::from_secs_f64(threads as f64 / half);
            let mut open = run(size, threads, interval, seconds);
            println!(
                "| {label} | {threads} | {:.0} | {:.2} ms | {:.2} ms | {:.1} | {:.0} µs | {:.1} µs | {:.0}/s | {:.2} ms | {:.2} ms |",
                rate,
                closed.pct(0.5).as_secs_f64() * 1e3,
                closed.pct(0.99).as_secs_f64() * 1e3,
                closed.batch,
                closed.sync.as_secs_f64() * 1e6,
                closed.apply.as_secs_f64() * 1e6,
                open.rate(),
                open.pct(0.5).as_secs_f64() * 1e3,
                open.pct(0.99).as_secs_f64() * 1e3,
            );
        }
    }
}

fn recovery() {
    let n: usize = std::env::var("TRUC_BENCH_PENDING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = dir();
    let now = Timestamp::from_second(1_780_000_000).unwrap();
    {
        let store = Store::open(dir.path(), &Default::default()).unwrap();
        let t = Instant::now();
        let counter = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    loop {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let mut m = message(i as u64, 200);
                        m.recipients.truncate(1);
                        store.accept(m, &|_, _| Ok(b"r".to_vec())).unwrap();
                    }
                });
            }
        });
        println!(
            "{n} acceptances (200 B, one push recipient): {:.1?}",
            t.elapsed()
        );
        let t = Instant::now();
        let mut leased = 0;
        loop {
            let c = store.claim(now, Duration::from_secs(60), 10_000).unwrap();
            if c.is_empty() {
                break;
            }
            leased += c.len();
        }
        println!("{leased} deliveries leased: {:.1?}", t.elapsed());
        store.close().unwrap();
    }
    let t = Instant::now();
    let store = Store::open(dir.path(), &Default::default()).unwrap();
    let opened = t.elapsed();
    let later = now
        .checked_add(jiff::SignedDuration::from_secs(120))
        .unwrap();
    let first = store.claim(later, Duration::from_secs(60), 100).unwrap();
    println!(
        "reopen: {opened:.1?}; first {} expired leases claimed again {:.1?} after open started",
        first.len(),
        t.elapsed()
    );
}

fn main() {
    if std::env::args().any(|a| a == "recovery") {
        recovery();
    } else if std::env::args().any(|a| a == "--bench") || std::env::args().len() == 1 {
        throughput();
    }
}
