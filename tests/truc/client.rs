//! The agency client end to end: the `truc` binary's `send`, `inbox`, `receipts` and
//! `status send` against a real `truc serve` (the `Hub` of `flows`), over TLS with the test
//! PKI, with bearer tokens and with TLS client certificates.

use std::path::Path;
use std::process::Output;

use crate::flows::{G12, H29, Hub, package, receipt_verify_cli, sign};
use crate::util::{root, stderr, stdout, truc};

/// `certs-test/<rel>` as a string.
fn cert(rel: &str) -> String {
    root().join("certs-test").join(rel).display().to_string()
}

fn token(agency: &str) -> String {
    cert(&format!("agencies/{agency}/token"))
}

/// A client command against `hub` with the test CA: `args`, then `--hub`, `--ca` and `auth`.
fn client(hub: &Hub, args: &[&str], auth: &[&str]) -> Output {
    let url = format!("https://{}", hub.addr);
    let ca = cert("root-ca.pem");
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["--hub", &url, "--ca", &ca]);
    all.extend_from_slice(auth);
    truc(&all)
}

/// As `agency` with its bearer token.
fn as_agency(hub: &Hub, agency: &str, args: &[&str]) -> Output {
    let t = token(agency);
    client(hub, args, &["--token-file", &t])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

/// `<id> accepted|duplicate` from a submission's stdout.
fn submitted(o: &Output) -> (String, String) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    let out = stdout(o);
    let mut words = out.split_whitespace();
    let id = words.next().unwrap_or_default().to_owned();
    let what = words.next().unwrap_or_default().to_owned();
    assert!(
        id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{out}"
    );
    (id, what)
}

/// The items of `inbox list --json` or `receipts list --json`.
fn listed(o: &Output) -> Vec<serde_json::Value> {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)));
    v["items"].as_array().unwrap().clone()
}

fn ids(items: &[serde_json::Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn send_list_fetch_ack_receipts_and_status_through_the_cli() {
    let hub = Hub::start("https://localhost:9/inbox", "72h");
    let d = tempfile::tempdir().unwrap();
    let pkg = package("valid/edoc_new_2recipients.edxml", &[], G12);
    let file = write(d.path(), "p.edxml", &pkg);
    let receipt = d.path().join("receipt.xml").display().to_string();

    // Accepted: the id, and the acceptance receipt, which `truc receipt verify` checks
    // against the package.
    let o = as_agency(&hub, G12, &["send", &file, "--receipt-out", &receipt]);
    let (id, what) = submitted(&o);
    assert_eq!(what, "accepted");
    let acceptance = std::fs::read(&receipt).unwrap();
    receipt_verify_cli(&acceptance, &pkg);
    // The same bytes again: a duplicate, the same id, exit 0.
    let again = d.path().join("again.xml").display().to_string();
    let o = as_agency(&hub, G12, &["send", &file, "--receipt-out", &again]);
    assert_eq!(submitted(&o), (id.clone(), "duplicate".into()));
    assert_eq!(std::fs::read(&again).unwrap(), acceptance);

    // Refusals: non-zero, the problem code and its items on stderr, nothing stored.
    let bad = write(d.path(), "bad.edxml", b"hello");
    let o = as_agency(&hub, G12, &["send", &bad]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the hub refused (HTTP 422): invalid-package: "),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    let unsigned =
        std::fs::read_to_string(crate::util::fixture("valid/edoc_new_2recipients.edxml"))
            .unwrap()
            .replace("000.00.00.G17", G12);
    let unsigned = write(d.path(), "unsigned.edxml", unsigned.as_bytes());
    let o = as_agency(&hub, G12, &["send", &unsigned]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("signature-required"), "{}", stderr(&o));
    let o = as_agency(&hub, H29, &["send", &file]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(": forbidden: "), "{}", stderr(&o));

    // H29's inbox: the table and the JSON list it.
    let o = as_agency(&hub, H29, &["inbox", "list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("MESSAGE ID"), "{table}");
    for cell in [
        id.as_str(),
        G12,
        "edoc",
        "356/BXD-QLN",
        &pkg.len().to_string(),
    ] {
        assert!(lines[1].contains(cell), "{cell} in {table}");
    }
    let items = listed(&as_agency(&hub, H29, &["inbox", "list", "--json"]));
    assert_eq!(ids(&items), [id.as_str()]);
    assert_eq!(items[0]["sender"], G12);
    // G12 has nothing pending.
    assert!(listed(&as_agency(&hub, G12, &["inbox", "list", "--json"])).is_empty());

    // Fetch: the exact bytes, to a file and to stdout.
    let received = d.path().join("received.edxml").display().to_string();
    let o = as_agency(&hub, H29, &["inbox", "fetch", &id, "-o", &received]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&received).unwrap(), pkg, "byte-identical");
    let o = as_agency(&hub, H29, &["inbox", "fetch", &id]);
    assert_eq!(o.stdout, pkg);
    let o = as_agency(&hub, G12, &["inbox", "fetch", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not-found"), "{}", stderr(&o));
    let o = as_agency(&hub, H29, &["inbox", "fetch", "../packages"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));

    // Ack: delivered; the inbox no longer lists it; a different answer now is refused.
    let o = as_agency(&hub, H29, &["inbox", "ack", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), format!("{id} delivered"));
    assert!(listed(&as_agency(&hub, H29, &["inbox", "list", "--json"])).is_empty());
    let o = as_agency(&hub, H29, &["inbox", "ack", &id, "--reject", "late"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid-state"), "{}", stderr(&o));

    // G12's receipts: the delivery receipt to H29, listed and fetched.
    let items = listed(&as_agency(&hub, G12, &["receipts", "list", "--json"]));
    let delivery = items
        .iter()
        .find(|i| i["kind"] == "delivery" && i["recipient"] == H29)
        .unwrap_or_else(|| panic!("no delivery receipt: {items:?}"));
    let rid = delivery["id"].as_str().unwrap().to_owned();
    assert_eq!(delivery["message_id"], id.as_str());
    let o = as_agency(&hub, G12, &["receipts", "list"]);
    let table = stdout(&o);
    assert!(table.starts_with("RECEIPT ID"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&rid) && l.contains("delivery") && l.contains(H29)),
        "{table}"
    );
    let rfile = d.path().join("delivery.xml").display().to_string();
    let o = as_agency(&hub, G12, &["receipts", "fetch", &rid, "-o", &rfile]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(&rfile).unwrap();
    let direct = hub.call(G12, "GET", &format!("/api/v1/receipts/{rid}"), None);
    assert_eq!(bytes, direct.body);
    assert!(String::from_utf8_lossy(&bytes).contains("<Kind>delivery</Kind>"));
    // The acceptance receipt is fetched by its id too.
    let o = as_agency(
        &hub,
        G12,
        &["receipts", "fetch", &format!("{id}-acceptance")],
    );
    assert_eq!(o.stdout, acceptance);

    // H29 answers with status 03. The package has two recipients, so --from is needed.
    let h29_sign = |ext: &str| cert(&format!("agencies/{H29}/sign.{ext}"));
    let (key, crt) = (h29_sign("key"), h29_sign("pem"));
    let t = token(H29);
    let status_args = |extra: &[&'static str]| {
        let mut v: Vec<String> = [
            "status", "send", "--for", &received, "--code", "03", "--key", &key, "--cert", &crt,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, auth: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client(&hub, &args, auth)
    };
    let o = run(status_args(&[]), &["--token-file", &t]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("give --from AGENCY"), "{}", stderr(&o));
    let sreceipt = d.path().join("status-receipt.xml").display().to_string();
    let mut args = status_args(&["--from", H29, "--description", "vào sổ văn bản đến"]);
    args.extend(["--receipt-out".to_owned(), sreceipt.clone()]);
    let o = run(args, &["--token-file", &t]);
    let (sid, what) = submitted(&o);
    assert_eq!(what, "accepted");
    let sr = String::from_utf8(std::fs::read(&sreceipt).unwrap()).unwrap();
    assert!(
        sr.contains(&format!("<MessageId>{sid}</MessageId>")),
        "{sr}"
    );

    // It is routed to the original sender, G12: a status from H29 about 356/BXD-QLN.
    let items = listed(&as_agency(&hub, G12, &["inbox", "list", "--json"]));
    assert_eq!(ids(&items), [sid.as_str()]);
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["sender"].as_str()),
        (Some("status"), Some(H29))
    );
    let o = as_agency(&hub, G12, &["inbox", "fetch", &sid]);
    let status = stdout(&o);
    for part in [
        "<StatusCode>03</StatusCode>",
        "<Code>356/BXD-QLN</Code>",
        "<DocumentId>000.00.00.G12,2025/04/08,356/BXD-QLN</DocumentId>",
        "<Description>vào sổ văn bản đến</Description>",
        "Signature",
    ] {
        assert!(status.contains(part), "{part} in {status}");
    }
    // The status verifies as H29's: `truc verify --directory`.
    let sfile = write(d.path(), "status.edxml", &o.stdout);
    let o = truc(&[
        "verify",
        &sfile,
        "--trusted-pem",
        &cert("root-ca.pem"),
        "--directory",
        &cert("directory.toml"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Without --token-file, the signing pair is the TLS client certificate too.
    let mut args = status_args(&["--from", H29]);
    args[5] = "05".into();
    let o = run(args, &[]);
    let (sid2, what) = submitted(&o);
    assert_eq!(what, "accepted");
    let items = listed(&as_agency(&hub, G12, &["inbox", "list", "--json"]));
    assert_eq!(ids(&items), [sid, sid2]);
}

#[test]
fn mtls_a_single_recipient_status_and_failures() {
    let hub = Hub::start("https://localhost:9/inbox", "72h");
    let d = tempfile::tempdir().unwrap();
    let tls = |agency: &str| {
        (
            cert(&format!("agencies/{agency}/client.pem")),
            cert(&format!("agencies/{agency}/client.key")),
        )
    };

    // A package to H29 alone, built and signed with `truc`, sent with G12's TLS client
    // certificate.
    let o = truc(&[
        "package",
        "new",
        "--from",
        G12,
        "--to",
        H29,
        "--number",
        "7",
        "--notation",
        "BTC-VP",
        "--subject",
        "Một văn bản",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pkg = sign(&o.stdout, G12);
    let file = write(d.path(), "one.edxml", &pkg);
    let (g12_cert, g12_key) = tls(G12);
    let o = client(
        &hub,
        &["send", &file],
        &["--cert", &g12_cert, "--key", &g12_key],
    );
    let (id, what) = submitted(&o);
    assert_eq!(what, "accepted");

    // H29 with its TLS client certificate: lists (the first with --limit), fetches, acks.
    let (h29_cert, h29_key) = tls(H29);
    let h29 = ["--cert", h29_cert.as_str(), "--key", h29_key.as_str()];
    let o = client(&hub, &["inbox", "list", "--json", "--limit", "1"], &h29);
    assert_eq!(ids(&listed(&o)), [id.as_str()]);
    let received = d.path().join("received.edxml").display().to_string();
    let o = client(&hub, &["inbox", "fetch", &id, "-o", &received], &h29);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&received).unwrap(), pkg);
    let o = client(
        &hub,
        &["inbox", "ack", &id, "--reject", "không thuộc thẩm quyền"],
        &h29,
    );
    assert_eq!(
        stdout(&o).trim(),
        format!("{id} rejected"),
        "{}",
        stderr(&o)
    );

    // One recipient: the status comes from it without --from; signed and sent over TLS
    // with H29's signing certificate.
    let (key, crt) = (
        cert(&format!("agencies/{H29}/sign.key")),
        cert(&format!("agencies/{H29}/sign.pem")),
    );
    let o = client(
        &hub,
        &[
            "status",
            "send",
            "--for",
            &received,
            "--code",
            "02",
            "--description",
            "sai thẩm quyền",
            "--key",
            &key,
            "--cert",
            &crt,
        ],
        &[],
    );
    let (sid, _) = submitted(&o);
    let items = listed(&as_agency(&hub, G12, &["inbox", "list", "--json"]));
    assert_eq!(ids(&items), [sid]);
    assert_eq!(items[0]["sender"], H29);
    // G12's feed has the rejection.
    let items = listed(&as_agency(&hub, G12, &["receipts", "list", "--json"]));
    assert!(
        items.iter().any(|i| i["message_id"] == id.as_str()),
        "{items:?}"
    );

    // A CA that is not the hub's: a TLS error, exit 2.
    let t = token(G12);
    let o = truc(&[
        "inbox",
        "list",
        "--hub",
        &format!("https://{}", hub.addr),
        "--ca",
        &cert("bad/rogue-root.pem"),
        "--token-file",
        &t,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!(
            "error: TLS with {}: certificate not trusted",
            hub.addr
        )),
        "{e}"
    );
    // A client certificate the hub does not trust: refused at the TLS level, exit 2.
    let o = client(
        &hub,
        &["inbox", "list"],
        &[
            "--cert",
            &cert("bad/rogue-signer.pem"),
            "--key",
            &cert("bad/rogue-signer.key"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("error: TLS with "), "{}", stderr(&o));
    // A wrong token: refused by the hub, exit 1 with the code.
    let wrong = write(d.path(), "wrong", b"nope\n");
    let o = client(&hub, &["inbox", "list"], &["--token-file", &wrong]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("unauthenticated"), "{}", stderr(&o));
    // Nobody listening: exit 2.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let o = truc(&[
        "send",
        &file,
        "--hub",
        &format!("https://127.0.0.1:{port}"),
        "--ca",
        &cert("root-ca.pem"),
        "--token-file",
        &t,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!("error: cannot connect to 127.0.0.1:{port}: ")),
        "{}",
        stderr(&o)
    );
    // Usage errors: 64.
    let url = format!("https://{}", hub.addr);
    for (args, says) in [
        (
            vec!["inbox", "list", "--hub", &url, "--token-file", &t],
            "--ca is required",
        ),
        (
            vec!["inbox", "list", "--hub", &url, "--ca", "x"],
            "--token-file",
        ),
        (
            vec![
                "send",
                &file,
                "--hub",
                &url,
                "--ca",
                "x",
                "--token-file",
                &t,
                "--cert",
                "c",
                "--key",
                "k",
            ],
            "cannot be used with",
        ),
    ] {
        let o = truc(&args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}
