//! Crash safety of the store, in its own test binary (`harness = false`), as sled's own
//! `test_crash_recovery` does: this binary re-runs itself as a child.
//!
//! 1. **Kill and reopen.** A child opens the store, accepts packages from 8 threads (sizes
//!    from 100 bytes to 120 KB, and one in 40 from 1 to 2 MiB: an aligned record, its body
//!    written with `O_DIRECT`) while another thread claims and completes deliveries, and
//!    prints each message id the moment `accept` returns. The parent kills it with SIGKILL
//!    after a random delay, reopens the store and checks that every printed id is there
//!    exactly once with its bytes intact (SHA-256), that the indexes are consistent and that
//!    every stored body is readable. Many rounds, on the same directory.
//! 2. **Durability order.** A child accepts packages one at a time under
//!    `strace -f -y -e trace=write,fdatasync,fsync,sync_file_range`; for every package the
//!    trace must show the write of its bytes to a log segment, then an `fdatasync` of that
//!    segment, then the line on stdout that acknowledges it (one of the packages is 1.5 MB,
//!    whose body goes through the segment's `O_DIRECT` descriptor).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use jiff::Timestamp;
use truc::store::{Filter, Kind, Mode, NewMessage, Recipient, Store};

const CHILD: &str = "TRUC_CRASH_CHILD";
const ACK_CHILD: &str = "TRUC_ACK_CHILD";

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        return child(Path::new(&dir));
    }
    if let Ok(dir) = std::env::var(ACK_CHILD) {
        return ack_child(Path::new(&dir));
    }
    let rounds: u64 = std::env::var("TRUC_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    kill_and_reopen(rounds);
    durability_order();
    println!("crash: all checks passed");
}

fn now() -> Timestamp {
    Timestamp::from_second(1_780_000_000).unwrap()
}

fn package(tag: &str, size: usize) -> Vec<u8> {
    let mut b = format!("<edXML>{tag}</edXML>").into_bytes();
    b.resize(size.max(b.len()), b'.');
    b
}

fn message(bytes: Vec<u8>, to: &[&str]) -> NewMessage {
    NewMessage {
        kind: Kind::Edoc,
        sender: "000.00.00.G12".into(),
        recipients: to
            .iter()
            .enumerate()
            .map(|(i, a)| Recipient {
                agency: (*a).into(),
                mode: if i % 2 == 0 { Mode::Push } else { Mode::Pull },
            })
            .collect(),
        document_id: None,
        business_doc_type: None,
        verdict: "valid".into(),
        summary: Default::default(),
        bytes: bytes.into(),
        received_at: now(),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(b: &[u8]) -> String {
    hex(&truc::pki::sha256(b))
}

/// Accepts forever from 8 threads, printing `id sha256` after each acceptance returns.
fn child(dir: &Path) {
    let store = Store::open(dir, &Default::default()).unwrap();
    let pid = std::process::id();
    std::thread::scope(|s| {
        for th in 0..8u64 {
            let store = &store;
            s.spawn(move || {
                let mut x = (u64::from(pid) << 8) ^ th ^ 0x9e37_79b9_7f4a_7c15;
                for i in 0.. {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let size = if x % 40 == 0 {
                        (1 << 20) + (x >> 8) as usize % (1 << 20)
                    } else {
                        100 + (x % 120_000) as usize
                    };
                    let bytes = package(&format!("{pid}-{th}-{i}"), size);
                    let digest = sha256(&bytes);
                    let to = ["000.00.00.H29", "000.00.00.H41"];
                    let id = store
                        .accept(message(bytes, &to), &|id, _| {
                            Ok(id.to_string().into_bytes())
                        })
                        .unwrap()
                        .id();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{id} {digest}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
        // Deliveries move while acceptances go on.
        s.spawn(|| {
            loop {
                for c in store.claim(now(), Duration::from_secs(60), 16).unwrap() {
                    if c.attempt % 2 == 1 {
                        let _ = store.delivered(c.delivery, c.attempt, now());
                    } else {
                        let _ = store.failed(c.delivery, c.attempt, "503", Some(now()), now());
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    });
}

fn kill_and_reopen(rounds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(30 + x % 400);
        let mut child = Command::new(&exe)
            .env(CHILD, dir.path())
            .env("TRUC_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut new = 0;
        for line in lines {
            // A line cut by the kill was never completely printed, so never acknowledged.
            let Some((id, digest)) = line.split_once(' ') else {
                continue;
            };
            if digest.len() != 64 {
                continue;
            }
            let previous = acknowledged.insert(id.to_owned(), digest.to_owned());
            assert!(
                previous.is_none(),
                "round {round}: id {id} acknowledged twice"
            );
            new += 1;
        }
        verify(dir.path(), &acknowledged, round);
        println!(
            "crash round {round}: killed after {delay:?}, {new} new acknowledgements, {} in all",
            acknowledged.len()
        );
    }
    assert!(
        rounds < 5 || acknowledged.len() > 100,
        "too few acceptances to mean anything"
    );
}

/// Every acknowledged id present once with its bytes; indexes consistent; bodies readable.
fn verify(dir: &Path, acknowledged: &HashMap<String, String>, round: u64) {
    let store = Store::open(dir, &Default::default()).unwrap();
    for (id, digest) in acknowledged {
        let id = id.parse().unwrap();
        let m = store
            .message(id)
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: acknowledged {id} lost"));
        assert_eq!(&m.digest, digest, "round {round}: {id}");
        let body = store.body(id).unwrap().unwrap();
        assert_eq!(&sha256(&body), digest, "round {round}: {id} bytes damaged");
        assert_eq!(
            store.receipt(id, 0).unwrap().unwrap(),
            id.to_string().into_bytes()
        );
        assert_eq!(store.deliveries(id).unwrap().len(), 2);
    }
    store
        .check_indexes()
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    // Everything stored (acknowledged or not) is whole, and no bytes are stored twice.
    let mut seen = HashMap::new();
    let mut cursor = None;
    loop {
        let page = store.messages(&Filter::default(), cursor, 500).unwrap();
        for m in &page.messages {
            let body = store.body(m.id).unwrap().unwrap();
            assert_eq!(sha256(&body), m.digest, "round {round}: {} damaged", m.id);
            assert!(
                seen.insert(m.digest.clone(), m.id).is_none(),
                "round {round}: {} stored twice",
                m.digest
            );
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    store.close().unwrap();
}

/// Accepts 20 packages one at a time, printing `PKG-n id` after each; the eleventh is large
/// enough for an aligned record.
fn ack_child(dir: &Path) {
    let store = Store::open(dir, &Default::default()).unwrap();
    for n in 0..20 {
        let bytes = package(
            &format!("PKG-{n:04}"),
            if n == 10 { 1_500_000 } else { 4000 },
        );
        let id = store
            .accept(
                message(bytes, &["000.00.00.H29"]),
                &|_, _| Ok(b"r".to_vec()),
            )
            .unwrap()
            .id();
        let mut out = std::io::stdout().lock();
        writeln!(out, "PKG-{n:04} {id}").unwrap();
        out.flush().unwrap();
    }
}

fn strace() -> Option<PathBuf> {
    ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn durability_order() {
    let Some(strace) = strace() else {
        panic!("strace is not installed: run .ci/run, or apt-get install -y strace");
    };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let store = dir.path().join("store");
    let o = Command::new(strace)
        .args([
            "-f",
            "-y",
            "-s",
            "48",
            "-e",
            "trace=write,pwrite64,fdatasync,fsync,sync_file_range",
            "-o",
        ])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .env(ACK_CHILD, &store)
        .env("TRUC_LOG", "off")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "child under strace failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // With -f, a call that another thread interrupts is split into "fdatasync(5<...>
    // <unfinished ...>" and "<... fdatasync resumed>) = 0": a segment sync is complete on
    // the line that carries its result.
    let mut pending: std::collections::HashSet<String> = Default::default();
    let mut synced = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let pid = l.split_whitespace().next().unwrap_or("").to_owned();
        let seg_sync = l.contains("fdatasync(") && l.contains(".seg>");
        let resumed = l.contains("<... fdatasync resumed>") && pending.contains(&pid);
        if seg_sync && l.contains("<unfinished") {
            pending.insert(pid);
        } else if (seg_sync || resumed) && l.contains("= 0") {
            pending.remove(&pid);
            synced.push(i);
        }
    }
    for n in 0..20 {
        let tag = format!("PKG-{n:04}");
        let find = |what: &dyn Fn(&str) -> bool, from: usize| {
            lines
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| what(l))
                .map(|(i, _)| i)
        };
        let body = find(
            &|l| {
                // Records are copied into their reserved place with pwrite(2).
                (l.contains("write(") || l.contains("pwrite64("))
                    && l.contains(".seg>")
                    && l.contains(&format!("<edXML>{tag}"))
            },
            0,
        )
        .unwrap_or_else(|| panic!("{tag}: no write of its bytes to a log segment in the trace"));
        let ack = find(
            &|l| l.contains("write(1") && l.contains(&format!("\"{tag} ")),
            body,
        )
        .unwrap_or_else(|| panic!("{tag}: no acknowledgement after its bytes were written"));
        let sync = synced
            .iter()
            .copied()
            .find(|i| *i > body)
            .unwrap_or_else(|| panic!("{tag}: no fdatasync of the segment after its bytes"));
        assert!(
            sync < ack,
            "{tag}: acknowledged (trace line {ack}) before the fdatasync of its segment (line {sync}):\n{}",
            lines[body..=sync.max(ack)].join("\n")
        );
    }
    let syncs = synced.len();
    assert!(
        syncs >= 20,
        "{syncs} segment fdatasyncs for 20 sequential acceptances"
    );
    println!("durability order: 20 acknowledgements, each after the fdatasync of its log segment");
}
