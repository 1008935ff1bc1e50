//! `truc bench` against a real `truc serve` (the `Hub` of `flows`): what it reports is what
//! the hub did. Short runs with small packages: these check the harness, they measure
//! nothing (the numbers are in the README, from the commands it gives).

use std::process::Output;

use crate::flows::{G12, H29, Hub};
use crate::util::{root, stderr, stdout, truc};

fn cert(rel: &str) -> String {
    root().join("certs-test").join(rel).display().to_string()
}

/// `truc bench` as G12 (its token) against `hub`, sending to H29, with `args` added.
fn bench(hub: &Hub, token_of: &str, args: &[&str]) -> Output {
    let url = format!("https://{}", hub.addr);
    let metrics = format!("http://{}/metrics", hub.admin);
    let (ca, token) = (
        cert("root-ca.pem"),
        cert(&format!("agencies/{token_of}/token")),
    );
    let mut all = vec![
        "bench",
        "--hub",
        &url,
        "--ca",
        &ca,
        "--token-file",
        &token,
        "--metrics",
        &metrics,
        "--from",
        G12,
        "--to",
        H29,
    ];
    all.extend_from_slice(args);
    truc(&all)
}

fn report(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// How many packages wait in H29's inbox.
fn inbox(hub: &Hub) -> usize {
    let url = format!("https://{}", hub.addr);
    let (ca, token) = (cert("root-ca.pem"), cert("agencies/000.00.00.H29/token"));
    let o = truc(&[
        "inbox",
        "list",
        "--json",
        "--hub",
        &url,
        "--ca",
        &ca,
        "--token-file",
        &token,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["items"].as_array().unwrap().len()
}

#[test]
fn an_open_loop_run_reports_what_the_hub_accepted_with_its_stage_breakdown() {
    let hub = Hub::start("https://localhost:9/inbox", "72h");
    let o = bench(
        &hub,
        G12,
        &[
            "--size",
            "6k",
            "--concurrency",
            "4",
            "--rate",
            "100",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let r = report(&o);
    // The open loop sends what falls due in the second: 100, give or take the last one.
    let sent = r["sent"].as_u64().unwrap();
    assert!((98..=100).contains(&sent), "{r}");
    assert_eq!(r["accepted"], sent, "{r}");
    assert_eq!(r["duplicates"], 0);
    assert_eq!(r["errors"], serde_json::json!({}));
    assert_eq!(r["mode"], "open");
    assert_eq!(r["pool_exhausted"], false);
    let bytes = r["package_bytes"].as_u64().unwrap();
    assert!((5_940..=6_060).contains(&bytes), "{r}");
    let l = &r["latency_ms"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(
        p("p50") > 0.0 && p("p50") <= p("p90") && p("p90") <= p("p99"),
        "{l}"
    );
    assert!(p("p99") <= p("p999") && p("p999") <= p("max"), "{l}");
    // Every accepted package is in the recipient's inbox, the warm-up's too.
    let warm = r["warmup_accepted"].as_u64().unwrap();
    assert!(warm >= 15, "{r}");
    assert_eq!(inbox(&hub) as u64, warm + sent);
    // The hub's side: every stage observed, a group commit per batch, its memory.
    let s = &r["server"];
    for stage in [
        "parse",
        "verify",
        "digest",
        "signature",
        "chain",
        "store",
        "receipt",
    ] {
        let us = s["stage_us"][stage].as_f64().unwrap_or(-1.0);
        assert!(us > 0.0, "stage {stage}: {s}");
    }
    let verify = s["stage_us"]["verify"].as_f64().unwrap();
    let parts: f64 = ["digest", "signature", "chain"]
        .iter()
        .map(|k| s["stage_us"][k].as_f64().unwrap())
        .sum();
    assert!(parts <= verify * 1.01, "verify includes its parts: {s}");
    assert!(s["commit_batch"].as_f64().unwrap() >= 1.0, "{s}");
    assert!(s["rss_bytes"].as_f64().unwrap() > 1e6, "{s}");
    assert!(
        s["peak_rss_bytes"].as_f64().unwrap() >= s["rss_bytes"].as_f64().unwrap(),
        "{s}"
    );
}

#[test]
fn a_closed_loop_stops_when_the_pool_is_used_up_and_never_resends() {
    let hub = Hub::start("https://localhost:9/inbox", "72h");
    let o = bench(
        &hub,
        G12,
        &[
            "--size",
            "6k",
            "--concurrency",
            "3",
            "--duration",
            "60s",
            "--warmup",
            "0",
            "--pool",
            "25",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("accepted    25 ("), "{table}");
    assert!(table.contains("errors      none"), "{table}");
    assert!(table.contains("server µs   parse "), "{table}");
    assert!(
        stderr(&o).contains("the pool of 25 packages ran out"),
        "{}",
        stderr(&o)
    );
    assert_eq!(inbox(&hub), 25);
}

#[test]
fn refusals_are_counted_by_code_and_an_unreachable_hub_is_exit_2() {
    let hub = Hub::start("https://localhost:9/inbox", "72h");
    // H29's credential sending G12's packages: every one refused, nothing accepted.
    let o = bench(
        &hub,
        H29,
        &[
            "--size",
            "6k",
            "--concurrency",
            "2",
            "--duration",
            "5s",
            "--warmup",
            "0",
            "--pool",
            "6",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = report(&o);
    assert_eq!(r["accepted"], 0);
    assert_eq!(
        r["errors"],
        serde_json::json!({"http-403 forbidden": 6}),
        "{r}"
    );
    assert_eq!(inbox(&hub), 0);

    let o = truc(&[
        "bench",
        "--hub",
        "https://127.0.0.1:9",
        "--ca",
        &cert("root-ca.pem"),
        "--token-file",
        &cert("agencies/000.00.00.G12/token"),
        "--size",
        "6k",
        "--pool",
        "1",
        "--sign-key",
        &cert("agencies/000.00.00.G12/sign.key"),
        "--sign-cert",
        &cert("agencies/000.00.00.G12/sign.pem"),
        "--metrics",
        "http://127.0.0.1:9/metrics",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("connect 127.0.0.1:9"), "{}", stderr(&o));

    // Usage: a size outside the range, no credential.
    let o = truc(&["bench", "--ca", "x", "--token-file", "t", "--size", "0.5k"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("a package size from 1k to 60m"),
        "{}",
        stderr(&o)
    );
    let o = truc(&["bench", "--ca", "x", "--size", "20k"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
}
