//! The `truc package` commands, run as a user runs them.

use crate::util::*;

#[test]
fn validate_accepts_valid_packages() {
    let files: Vec<String> = fixtures_in("valid")
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["package", "validate"];
    args.extend(files.iter().map(String::as_str));
    let out = truc(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert_eq!(stderr(&out).lines().count(), files.len());
}

#[test]
fn validate_prints_one_line_per_problem_and_exits_1() {
    let dirty = fixture("lenient/edoc_vnpt_dirty.edxml");
    let out = truc(&["package", "validate", dirty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.lines().all(|l| l.contains(": error: ")), "{text}");
    assert!(
        text.contains("edXMLHeader/MessageHeader/To[2]/OrganId: invalid-agency-id: \"01.02.G22\""),
        "{text}"
    );
    // Lines start with file:line:column.
    let first = text.lines().next().unwrap();
    let prefix = format!("{}:", dirty.display());
    assert!(first.starts_with(&prefix), "{first}");

    let out = truc(&["package", "validate", "--lenient", dirty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).lines().all(|l| l.contains(": warning: ")));
}

#[test]
fn validate_json_is_an_array_of_problems() {
    let dirty = fixture("lenient/edoc_vnpt_dirty.edxml");
    let valid = fixture("valid/status_01.edxml");
    let out = truc(&[
        "package",
        "validate",
        "--json",
        valid.to_str().unwrap(),
        dirty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 5);
    let agency = arr
        .iter()
        .find(|p| p["code"] == "invalid-agency-id")
        .expect("agency problem");
    assert_eq!(agency["path"], "edXMLHeader/MessageHeader/To[2]/OrganId");
    assert_eq!(agency["detail"], "\"01.02.G22\"");
    assert_eq!(agency["severity"], "error");
    assert!(agency["line"].as_u64().unwrap() > 1);
    assert!(
        agency["file"]
            .as_str()
            .unwrap()
            .ends_with("edoc_vnpt_dirty.edxml")
    );

    let out = truc(&["package", "validate", "--json", valid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn validate_reports_hostile_input_without_crashing() {
    for file in ["invalid/billion_laughs.edxml", "invalid/truncated.edxml"] {
        let out = truc(&["package", "validate", fixture(file).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}

#[test]
fn show_summarizes_a_package() {
    let out = truc(&[
        "package",
        "show",
        fixture("valid/edoc_new_2recipients.edxml")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "kind:        edoc (new)",
        "from:",
        "number:",
        "subject:",
        "attachments: 1",
        "sha256:",
        "signature:   none",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    // Both recipients, each on its own line.
    for id in ["000.00.00.H14", "000.00.00.H47"] {
        assert_eq!(text.lines().filter(|l| l.contains(id)).count(), 1, "{id}");
    }

    let out = truc(&[
        "package",
        "show",
        fixture("valid/status_02.edxml").to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(text.contains("status:      02 (refused"), "{text}");

    let out = truc(&[
        "package",
        "show",
        fixture("valid/edoc_signed_placeholder.edxml")
            .to_str()
            .unwrap(),
    ]);
    assert!(stdout(&out).contains("signature:   present (not verified)"));
}

#[test]
fn new_writes_a_valid_package_and_a_status_answering_it() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("cong-van.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n%%EOF\n").unwrap();
    let out = truc(&[
        "package",
        "new",
        "--from",
        "000.00.00.G12",
        "--to",
        "000.00.00.H29",
        "--to",
        "000.00.00.H41",
        "--number",
        "1234",
        "--notation",
        "BTC-VP",
        "--subject",
        "V/v báo cáo & <thử>",
        "--type-name",
        "Công văn",
        "--date",
        "2025/03/14",
        "--attach",
        pdf.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = dir.path().join("doc.edxml");
    std::fs::write(&doc, &out.stdout).unwrap();

    let parsed = truc::edxml::parse(&out.stdout, &strict()).expect("valid");
    let truc::edxml::Package::Edoc(e) = parsed.package() else {
        panic!()
    };
    assert_eq!(e.header.to.len(), 2);
    assert_eq!(e.header.subject, "V/v báo cáo & <thử>");
    assert_eq!(e.header.document_id, "000.00.00.G12,2025/03/14,1234/BTC-VP");
    assert_eq!(e.attachments[0].content_type, "application/pdf");
    assert_eq!(e.attachments[0].name, "cong-van.pdf");

    let out = truc(&[
        "package",
        "new",
        "--from",
        "000.00.00.H29",
        "--status-of",
        doc.to_str().unwrap(),
        "--code",
        "03",
        "--description",
        "Đã vào sổ",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let parsed = truc::edxml::parse(&out.stdout, &strict()).expect("valid status");
    let truc::edxml::Package::Status(s) = parsed.package() else {
        panic!()
    };
    assert_eq!(s.code.as_str(), "03");
    assert_eq!(s.response_for.organ_id.as_str(), "000.00.00.G12");
    assert_eq!(s.response_for.code, "1234/BTC-VP");
    assert_eq!(s.response_for.document_id, e.header.document_id);

    // 13 goes from the sender to one recipient.
    let out = truc(&[
        "package",
        "new",
        "--from",
        "000.00.00.G12",
        "--to",
        "000.00.00.H41",
        "--status-of",
        doc.to_str().unwrap(),
        "--code",
        "13",
        "--description",
        "Gửi nhầm",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let parsed = truc::edxml::parse(&out.stdout, &strict()).unwrap();
    assert_eq!(parsed.package().recipients()[0].as_str(), "000.00.00.H41");
}

#[test]
fn usage_errors_exit_64_with_a_reason() {
    for (args, needle) in [
        (
            vec![
                "package",
                "new",
                "--from",
                "01.02.G22",
                "--to",
                "000.00.00.H29",
            ],
            "not an agency identifier",
        ),
        (
            vec!["package", "new", "--from", "000.00.00.G12"],
            "needs --to, --number, --notation, --subject",
        ),
        (
            vec![
                "package",
                "new",
                "--from",
                "000.00.00.G12",
                "--to",
                "000.00.00.H29",
                "--number",
                "1",
                "--notation",
                "X",
                "--subject",
                "S",
                "--date",
                "14/03/2025",
            ],
            "not a date",
        ),
        (vec!["package", "validate"], "FILE"),
        (vec!["package", "frobnicate"], "frobnicate"),
    ] {
        let out = truc(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    // Values that make an invalid package are refused with the problems.
    let out = truc(&[
        "package",
        "new",
        "--from",
        "000.00.00.G12",
        "--to",
        "000.00.00.G12",
        "--to",
        "000.00.00.G12",
        "--number",
        "1",
        "--notation",
        "X",
        "--subject",
        " ",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("duplicate-recipient"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("empty-value"), "{}", stderr(&out));
}

#[test]
fn unreadable_files_fail_with_exit_1() {
    let out = truc(&["package", "validate", "/nonexistent/x.edxml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/x.edxml"));
}

/// `truc sign` of the fixture edoc with G12's key into `dir/signed.edxml`, and a copy with
/// one byte of the signed attachment content changed into `dir/tampered.edxml`.
fn signed_and_tampered(dir: &std::path::Path) -> (String, String) {
    let certs = root().join("certs-test/agencies/000.00.00.G12");
    let unsigned = String::from_utf8(read(&fixture("valid/edoc_new_2recipients.edxml")))
        .unwrap()
        .replace("000.00.00.G17", "000.00.00.G12");
    let unsigned_path = dir.join("unsigned.edxml");
    std::fs::write(&unsigned_path, &unsigned).unwrap();
    let out = truc(&[
        "sign",
        unsigned_path.to_str().unwrap(),
        "--key",
        certs.join("sign.key").to_str().unwrap(),
        "--cert",
        certs.join("sign.pem").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let signed = dir.join("signed.edxml");
    std::fs::write(&signed, &out.stdout).unwrap();

    // The subject is signed content: change one of its characters.
    let text = String::from_utf8(out.stdout).unwrap();
    let at = text.find("Subject>").expect("a Subject") + "Subject>".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'X' { b'Y' } else { b'X' };
    let tampered = dir.join("tampered.edxml");
    std::fs::write(&tampered, &bytes).unwrap();
    (signed.display().to_string(), tampered.display().to_string())
}

/// `truc dsig verify FILE --at 2026-11-23 --trusted-pem root-ca.pem` plus `extra`.
fn dsig_verify(file: &str, extra: &[&str]) -> std::process::Output {
    let anchor = root().join("certs-test/root-ca.pem").display().to_string();
    let mut args = vec![
        "dsig",
        "verify",
        file,
        "--at",
        "2026-11-23T00:00:00Z",
        "--trusted-pem",
        &anchor,
    ];
    args.extend_from_slice(extra);
    truc(&args)
}

/// The timing line of `--repeat`: `truc: N verifications in S s: U µs each (R/s)`.
fn timing_lines(o: &std::process::Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("truc: ") && l.contains(" verifications in "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn dsig_verify_repeat_runs_the_verification_n_times_with_one_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (signed, tampered) = signed_and_tampered(dir.path());

    // Valid: exit 0, the same stdout as one run, and one timing line on stderr.
    let once = dsig_verify(&signed, &[]);
    assert_eq!(once.status.code(), Some(0), "{}", stderr(&once));
    assert!(stdout(&once).contains(": valid: "), "{}", stdout(&once));
    assert!(timing_lines(&once).is_empty(), "{}", stderr(&once));
    assert!(stderr(&once).is_empty(), "{}", stderr(&once));
    let thrice = dsig_verify(&signed, &["--repeat", "3"]);
    assert_eq!(thrice.status.code(), Some(0), "{}", stderr(&thrice));
    assert_eq!(stdout(&thrice), stdout(&once));
    let lines = timing_lines(&thrice);
    assert_eq!(lines.len(), 1, "{}", stderr(&thrice));
    let line = &lines[0];
    assert!(line.starts_with("truc: 3 verifications in "), "{line}");
    let (_, rest) = line.split_once(" verifications in ").unwrap();
    let (secs, rest) = rest.split_once(" s: ").unwrap();
    let (each, rest) = rest.split_once(" µs each (").unwrap();
    let (rate, rest) = rest.split_once("/s)").unwrap();
    assert!(rest.is_empty(), "{line}");
    let (secs, each, rate): (f64, f64, f64) = (
        secs.parse().unwrap(),
        each.parse().unwrap(),
        rate.parse().unwrap(),
    );
    assert!(secs >= 0.0 && each > 0.0 && rate > 0.0, "{line}");
    // The figures agree with each other (to the printed precision).
    assert!(
        (each * 3.0 / 1e6 - secs).abs() <= 0.0006 + secs * 0.01,
        "{line}"
    );

    // JSON output stays a single JSON document on stdout.
    let json = dsig_verify(&signed, &["--repeat", "3", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(v["verdict"], "valid");
    assert_eq!(timing_lines(&json).len(), 1, "{}", stderr(&json));

    // Invalid: the same non-zero exit and verdict as one run.
    let once = dsig_verify(&tampered, &[]);
    assert_eq!(once.status.code(), Some(1), "{}", stdout(&once));
    assert!(
        stdout(&once).contains("digest-mismatch"),
        "{}",
        stdout(&once)
    );
    let thrice = dsig_verify(&tampered, &["--repeat", "3"]);
    assert_eq!(thrice.status.code(), once.status.code());
    assert_eq!(stdout(&thrice), stdout(&once));
    assert_eq!(timing_lines(&thrice).len(), 1, "{}", stderr(&thrice));
    assert!(timing_lines(&thrice)[0].starts_with("truc: 3 verifications in "));

    // Untrusted (no anchor for this signer): still exit 3 with --repeat.
    let other = root()
        .join("certs-test/bad/unknown-ca.pem")
        .display()
        .to_string();
    let args = ["dsig", "verify", &signed, "--at", "2026-11-23T00:00:00Z"];
    for repeat in [None, Some("2")] {
        let mut a = args.to_vec();
        a.extend(["--trusted-pem", &other]);
        if let Some(n) = repeat {
            a.extend(["--repeat", n]);
        }
        let o = truc(&a);
        assert_eq!(o.status.code(), Some(3), "{repeat:?}: {}", stdout(&o));
    }

    // --repeat 0 (and a non-number) is a usage error; nothing is verified.
    for bad in ["0", "-1", "many"] {
        let flag = format!("--repeat={bad}");
        let o = dsig_verify(&signed, &[&flag]);
        assert_eq!(o.status.code(), Some(64), "--repeat {bad}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "--repeat {bad}: {}", stdout(&o));
        assert!(stderr(&o).contains("--repeat"), "{}", stderr(&o));
    }
}
