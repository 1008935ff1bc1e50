//! Defaults, parsing, checks and the file validation of the hub configuration.

use std::path::PathBuf;

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn now() -> Timestamp {
    "2026-11-23T00:00:00Z".parse().unwrap()
}

/// The defaults resolved against the crate root, as from a checkout.
fn defaults() -> Config {
    let mut c = Config::default();
    c.resolve(&root());
    c
}

fn fields(e: &ConfigError) -> Vec<&str> {
    e.problems.iter().map(|p| p.field.as_str()).collect()
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let c = Config::default();
    assert_eq!(c.id, "truc-dev");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8444");
    assert_eq!(c.data, PathBuf::from("truc-data"));
    assert_eq!(c.directory, PathBuf::from("certs-test/directory.toml"));
    assert_eq!(c.tls.cert, PathBuf::from("certs-test/hub/tls.pem"));
    assert_eq!(c.tls.key, PathBuf::from("certs-test/hub/tls.key"));
    assert_eq!(c.trust.anchors, [PathBuf::from("certs-test/root-ca.pem")]);
    assert_eq!(
        c.trust.intermediates,
        [PathBuf::from("certs-test/intermediate-ca.pem")]
    );
    assert_eq!(
        c.trust.crls,
        [PathBuf::from("certs-test/crl/intermediate-ca.crl")]
    );
    assert_eq!(c.trust.crl_reload_interval, Duration::from_secs(60));
    assert!(!c.trust.crl_soft_fail);
    assert_eq!(c.receipts.key, PathBuf::from("certs-test/hub/receipt.key"));
    assert_eq!(c.receipts.cert, PathBuf::from("certs-test/hub/receipt.pem"));
    let l = &c.limits;
    assert_eq!(l.max_body, 64 * 1024 * 1024);
    assert_eq!(l.header_read_timeout, Duration::from_secs(30));
    assert_eq!(l.body_read_timeout, Duration::from_secs(120));
    assert_eq!(l.idle_timeout, Duration::from_secs(15));
    assert_eq!(l.max_connections, 1024);
    assert_eq!((l.rate_per_second, l.rate_burst), (100.0, 200));
    assert_eq!(l.shutdown_grace, Duration::from_secs(10));
    let d = &c.delivery;
    assert_eq!(d.push_timeout, Duration::from_secs(30));
    assert_eq!(d.per_endpoint_concurrency, 4);
    assert_eq!(d.retry_policy().unwrap(), RetryPolicy::default());
    assert_eq!(d.poll_interval, Duration::from_millis(250));
    // An empty file is the defaults.
    assert_eq!(Config::from_toml("").unwrap(), c);
    c.check().unwrap();
}

#[test]
fn the_embedded_defaults_validate_from_a_checkout() {
    // `cargo test` runs in the crate root, as `truc serve` does from a fresh checkout.
    let c = Config::embedded();
    assert!(c.tls.cert.is_absolute());
    assert_eq!(c.tls.cert, root().join("certs-test/hub/tls.pem"));
    c.validate(now()).unwrap();
}

#[test]
fn a_file_overrides_fields_and_resolves_paths_against_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("hub.toml");
    std::fs::write(
        &file,
        r#"
id = "hub.example.vn"
listen = "0.0.0.0:443"
data = "data"
[tls]
cert = "/etc/truc/tls.pem"
[trust]
crl_reload_interval = "0s"
[limits]
max_body = 1000
body_read_timeout = "1500ms"
rate_per_second = 0.5
[delivery]
retry_base = "PT10S"
retry_max_age = "1h 30m"
"#,
    )
    .unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.id, "hub.example.vn");
    assert_eq!(c.listen.to_string(), "0.0.0.0:443");
    assert_eq!(c.data, tmp.path().join("data"));
    assert_eq!(c.tls.cert, PathBuf::from("/etc/truc/tls.pem"));
    assert_eq!(c.tls.key, tmp.path().join("certs-test/hub/tls.key"));
    assert_eq!(c.trust.crl_reload_interval, Duration::ZERO);
    assert_eq!(c.limits.max_body, 1000);
    assert_eq!(c.limits.body_read_timeout, Duration::from_millis(1500));
    assert_eq!(c.limits.rate_per_second, 0.5);
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(30));
    assert_eq!(c.delivery.retry_base, Duration::from_secs(10));
    assert_eq!(c.delivery.retry_max_age, Duration::from_secs(5400));
}

#[test]
fn bad_toml_unknown_keys_and_bad_values_are_refused() {
    for (text, expect) in [
        ("listen = ", "TOML parse error"),
        ("colour = 1", "unknown field"),
        ("[limits]\nmax_bodyy = 1", "unknown field"),
        ("listen = \"localhost\"", "invalid socket address"),
        ("[limits]\nidle_timeout = \"-5s\"", "negative"),
        ("[limits]\nidle_timeout = \"soon\"", "duration"),
        ("[limits]\nmax_body = -1", "invalid value"),
    ] {
        let e = Config::from_toml(text).unwrap_err().to_string();
        assert!(e.contains(expect), "{text:?}: {e}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(&file, "[tls]\ncert = 3\n").unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(e.file.as_deref(), Some(file.as_path()));
    assert_eq!(fields(&e), [""]);
    assert!(e.to_string().contains("invalid type"), "{e}");
    let e = Config::load(&tmp.path().join("missing.toml")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn check_reports_every_bad_value_with_its_field() {
    let mut c = Config::default();
    c.id = " ".into();
    c.admin_listen = c.listen;
    c.trust.anchors.clear();
    c.limits.max_body = 0;
    c.limits.header_read_timeout = Duration::ZERO;
    c.limits.body_read_timeout = Duration::ZERO;
    c.limits.idle_timeout = Duration::ZERO;
    c.limits.max_connections = 0;
    c.limits.rate_per_second = f64::NAN;
    c.delivery.push_timeout = Duration::ZERO;
    c.delivery.poll_interval = Duration::ZERO;
    c.delivery.per_endpoint_concurrency = 0;
    c.delivery.retry_cap = Duration::from_secs(1);
    let e = c.check().unwrap_err();
    assert_eq!(
        fields(&e),
        [
            "id",
            "admin_listen",
            "trust.anchors",
            "limits.max_body",
            "limits.header_read_timeout",
            "limits.body_read_timeout",
            "limits.idle_timeout",
            "delivery.push_timeout",
            "delivery.poll_interval",
            "limits.max_connections",
            "limits.rate_per_second",
            "delivery.per_endpoint_concurrency",
            "delivery.retry_cap",
        ],
        "{e}"
    );
    let mut c = Config::default();
    c.limits.rate_burst = 0;
    assert_eq!(fields(&c.check().unwrap_err()), ["limits.rate_burst"]);
    c.limits.rate_per_second = 0.0;
    c.check().unwrap();
}

#[test]
fn validate_reads_every_file_and_reports_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = defaults();
    c.tls.cert = tmp.path().join("missing-tls.pem");
    c.tls.key = root().join("certs-test/hub/receipt.key"); // not the TLS certificate's key
    c.trust.anchors = vec![tmp.path().join("no-anchors")];
    c.trust.crls = vec![root().join("certs-test/root-ca.pem")]; // not a CRL
    c.receipts.key = tmp.path().join("missing.key");
    c.directory = tmp.path().join("directory.toml");
    std::fs::write(&c.directory, "[[agency]]\nid = \"bad\"\nname = \"x\"\n").unwrap();
    let e = c.validate(now()).unwrap_err();
    assert_eq!(
        fields(&e),
        [
            "tls.cert",
            "trust.anchors",
            "trust.crls",
            "receipts.key",
            "directory"
        ],
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains("missing-tls.pem"), "{text}");
    assert!(text.contains("missing.key"), "{text}");

    // A key that does not match the certificate.
    let mut c = defaults();
    c.tls.key = root().join("certs-test/hub/receipt.key");
    let e = c.validate(now()).unwrap_err();
    assert_eq!(fields(&e), ["tls.key"], "{e}");

    // Certificates judged at `now`.
    let e = defaults()
        .validate("2040-01-01T00:00:00Z".parse().unwrap())
        .unwrap_err();
    assert_eq!(fields(&e), ["tls.cert", "receipts.cert"], "{e}");
    assert!(e.to_string().contains("not valid at 2040"), "{e}");

    // A push CA that cannot be read.
    let mut c = defaults();
    c.directory = tmp.path().join("push.toml");
    std::fs::write(
        &c.directory,
        "[[agency]]\nid = \"000.00.00.H41\"\nname = \"x\"\ndelivery = \"push\"\npush_url = \"https://127.0.0.1:8445/inbox\"\npush_ca = \"nope.pem\"\n",
    )
    .unwrap();
    let e = c.validate(now()).unwrap_err();
    assert_eq!(fields(&e), ["directory"], "{e}");
    assert!(e.to_string().contains("000.00.00.H41 push_ca"), "{e}");

    // The data directory must be a directory if it exists.
    let mut c = defaults();
    c.data = c.directory.clone();
    assert_eq!(fields(&c.validate(now()).unwrap_err()), ["data"]);
}

#[test]
fn vxp_systems_are_checked_and_their_secrets_read() {
    let mut c = Config::embedded();
    assert_eq!(c.vxp.prefix, "/vxp");
    let ids: Vec<&str> = c.vxp.systems.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["vxp.demo.g12", "vxp.demo.h29"]);
    assert!(
        c.vxp
            .systems
            .iter()
            .all(|s| !s.signature_required && s.lenient)
    );
    c.check().unwrap();
    assert!(
        Config::default().vxp.systems.is_empty(),
        "demo systems only when embedded"
    );
    // A bad prefix, an agency served twice, the same id twice, a non-loopback admin address
    // without TLS.
    c.vxp.prefix = "/api/vxp/".into();
    let mut twin = c.vxp.systems[0].clone();
    twin.agencies = vec!["000.00.00.H29".into()];
    c.vxp.systems.push(twin);
    c.admin_listen = "0.0.0.0:8444".parse().unwrap();
    let e = c.check().unwrap_err();
    assert_eq!(
        fields(&e),
        [
            "admin_listen",
            "vxp.prefix",
            "vxp.system.id",
            "vxp.system.agencies"
        ],
        "{e}"
    );
    // Files: a missing secret and an agency not in the directory.
    let mut c = Config::embedded();
    c.vxp.systems[0].secret_file = "/nonexistent/secret".into();
    c.vxp.systems[1].agencies = vec!["000.00.00.Z99".into()];
    let now = "2026-12-01T00:00:00Z".parse().unwrap();
    let e = c.validate(now).unwrap_err();
    let f = fields(&e);
    assert!(
        f.contains(&"vxp.system.secret_file") && f.contains(&"vxp.system.agencies"),
        "{e}"
    );
}
