use super::*;

#[test]
fn sizes_are_decimal_and_bounded() {
    assert_eq!(parse_size("20k"), Ok(20_000));
    assert_eq!(parse_size("200K"), Ok(200_000));
    assert_eq!(parse_size("5m"), Ok(5_000_000));
    assert_eq!(parse_size("1.5k"), Ok(1_500));
    assert_eq!(parse_size("2500"), Ok(2_500));
    assert_eq!(
        parse_size("999"),
        Err("\"999\": a package size from 1k to 60m".into())
    );
    assert!(parse_size("61m").is_err());
    assert!(parse_size("big").unwrap_err().contains("20k, 200k or 5m"));
}

#[test]
fn durations_take_units_or_seconds() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("soon").is_err());
    assert!(parse_rate("0").is_err());
    assert!(parse_rate("-3").is_err());
    assert!(parse_rate("NaN").is_err());
    assert_eq!(parse_rate("2000"), Ok(2000.0));
}

#[test]
fn the_pool_covers_the_run_within_the_budget() {
    // 2,000/s for 11 s, plus two per connection.
    assert_eq!(pool_size(20_000, 2000.0, 11.0, 16, POOL_BUDGET), 22_032);
    // 5 MB packages at 100/s for 31 s would take 15.5 GB: the budget caps it.
    assert_eq!(pool_size(5_000_000, 100.0, 31.0, 16, 1 << 30), 214);
    // Never fewer than one per connection.
    assert_eq!(pool_size(5_000_000, 100.0, 31.0, 16, 1), 16);
    assert!(expected_rate(20_000) >= 3_000.0, "above the 20 KB target");
    assert!(expected_rate(200_000) >= 1_200.0, "above the 200 KB target");
    assert!(expected_rate(5_000_000) >= 60.0, "above the 5 MB target");
}

#[test]
fn percentiles_are_nearest_rank() {
    // 1..=1000 ms in µs, shuffled.
    let mut samples: Vec<u64> = (1..=1000u64)
        .map(|i| (i * 7919 % 1000 + 1) * 1000)
        .collect();
    let l = Latency::of(&mut samples);
    assert_eq!(
        l,
        Latency {
            p50: 500.0,
            p90: 900.0,
            p99: 990.0,
            p999: 999.0,
            max: 1000.0,
            mean: 500.5
        }
    );
    assert_eq!(Latency::of(&mut []), Latency::default());
    let one = Latency::of(&mut [2500]);
    assert_eq!((one.p50, one.p999, one.max), (2.5, 2.5, 2.5));
}

const BEFORE: &str = r#"# HELP truc_stage_seconds Time spent in each step of accepting a package.
# TYPE truc_stage_seconds histogram
truc_stage_seconds_sum{stage="parse"} 0.5
truc_stage_seconds_count{stage="parse"} 100
truc_stage_seconds_bucket{stage="parse",le="0.001"} 90
truc_stage_seconds_sum{stage="store"} 1.0
truc_stage_seconds_count{stage="store"} 100
truc_commit_batch_size_sum 100.0
truc_commit_batch_size_count 50
truc_commit_sync_seconds_sum 0.05
truc_commit_sync_seconds_count 50
truc_process_resident_memory_bytes 50000000
# EOF
"#;

const AFTER: &str = r#"truc_stage_seconds_sum{stage="parse"} 1.5
truc_stage_seconds_count{stage="parse"} 1100
truc_stage_seconds_sum{stage="store"} 1.0
truc_stage_seconds_count{stage="store"} 100
truc_stage_seconds_sum{stage="receipt"} 0.02
truc_stage_seconds_count{stage="receipt"} 1000
truc_commit_batch_size_sum 1100.0
truc_commit_batch_size_count 150
truc_commit_sync_seconds_sum 0.35
truc_commit_sync_seconds_count 150
truc_process_resident_memory_bytes 80000000
truc_process_peak_resident_memory_bytes 120000000
"#;

#[test]
fn the_server_side_is_the_difference_of_two_scrapes() {
    let before = parse_scrape(BEFORE);
    assert_eq!(
        before.get("truc_stage_seconds_count{stage=\"parse\"}"),
        Some(&100.0)
    );
    assert_eq!(
        before.get("truc_stage_seconds_bucket{stage=\"parse\",le=\"0.001\"}"),
        Some(&90.0)
    );
    assert!(!before.keys().any(|k| k.starts_with('#')));
    let after = parse_scrape(AFTER);
    let s = Server::between(&before, &before, &after);
    // parse: 1.0 s over 1000 more acceptances = 1,000 µs each.
    assert_eq!(s.stage_us.get("parse"), Some(&1000.0));
    // store: nothing happened in the interval, so it is left out, not 0 or NaN.
    assert_eq!(s.stage_us.get("store"), None);
    // receipt: absent before = 0 then.
    assert_eq!(s.stage_us.get("receipt"), Some(&20.0));
    assert_eq!(s.commit_batch, Some(10.0));
    assert_eq!(s.commit_sync_us.map(|u| u.round()), Some(3000.0));
    assert_eq!(s.rss_bytes, Some(80e6));
    assert_eq!(s.peak_rss_bytes, Some(120e6));
    assert_eq!(s.rss_before_bytes, Some(50e6));
}

#[test]
fn metrics_urls_split_into_client_and_path() {
    assert_eq!(
        split_url("http://127.0.0.1:8444/metrics").unwrap(),
        ("http://127.0.0.1:8444".into(), "/metrics".into())
    );
    assert!(matches!(split_url("/metrics"), Err(CliError::Usage(_))));
}

#[test]
fn payloads_differ_by_run_and_index_and_have_the_asked_length() {
    let a = payload("RUN1", 0, 10_001);
    assert_eq!(a.len(), 10_001);
    assert!(a.starts_with(b"%PDF-1.7\n"));
    assert_ne!(a, payload("RUN1", 1, 10_001));
    assert_ne!(a, payload("RUN2", 0, 10_001));
    assert_eq!(a, payload("RUN1", 0, 10_001));
    assert_eq!(base36(0), "0");
    assert_eq!(base36(36 * 36 + 35), "10z");
}

#[test]
fn the_pool_is_distinct_signed_packages_of_the_asked_size() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-test");
    let key = std::fs::read(root.join("agencies/000.00.00.G12/sign.key")).unwrap();
    let chain = Certificate::load(&root.join("agencies/000.00.00.G12/sign.pem")).unwrap();
    let now = jiff::civil::date(2026, 12, 2).at(10, 0, 0, 0);
    let recipe = Recipe {
        from: AgencyId::parse("000.00.00.G12").unwrap(),
        to: vec![AgencyId::parse("000.00.00.H29").unwrap()],
        size: 20_000,
        nonce: "TEST".into(),
        signer: Signer::from_pem(&key, chain).unwrap(),
        now,
    };
    let pool = recipe.pool(5).unwrap();
    assert_eq!(pool.len(), 5);
    let options = Options::strict(now.date());
    let trust = crate::pki::TrustStore::new(
        Certificate::load(&root.join("root-ca.pem")).unwrap(),
        Vec::new(),
    );
    let keys = crate::dsig::Keys {
        trust,
        ..crate::dsig::Keys::default()
    };
    let mut ids = std::collections::HashSet::new();
    for p in &pool {
        assert!(
            (19_800..=20_200).contains(&p.len()),
            "{} bytes, not about 20,000",
            p.len()
        );
        let verified = crate::dsig::verify_package(
            p,
            &options,
            &keys,
            false,
            "2026-12-02T03:00:00Z".parse().unwrap(),
        )
        .unwrap_or_else(|e| panic!("the bench's package does not verify: {e}"));
        let crate::edxml::Package::Edoc(e) = verified.package() else {
            panic!("an edoc")
        };
        assert_eq!(e.header.from.id.as_str(), "000.00.00.G12");
        assert!(
            ids.insert(e.header.document_id.clone()),
            "DocumentIds repeat"
        );
    }
}
