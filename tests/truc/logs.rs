//! `truc serve --log-format json`: the binary on its embedded defaults (run from the crate
//! root, data in a temporary directory, the API on a free port), one signed package
//! submitted with Debian's `curl`, then SIGTERM; every log line on stderr is one JSON object
//! and the lines about the request carry its span's fields.

// Waiting for a child process is measured on the real clock.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{root, tool, truc};

const G12: &str = "000.00.00.G12";

#[test]
fn serve_logs_one_json_object_per_line_with_the_request_span() {
    let dir = tempfile::tempdir().unwrap();
    let (ready, log) = (dir.path().join("ready"), dir.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_truc"))
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--ready-file")
        .arg(&ready)
        .env("TRUC_LOG", "truc=info")
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the truc binary starts");
    let start = Instant::now();
    let addr = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            // The API's address, then the admin listener's.
            break text.lines().next().unwrap_or_default().trim().to_owned();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "truc serve exited with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < Duration::from_secs(20), "not ready");
        std::thread::sleep(Duration::from_millis(20));
    };

    let unsigned = dir.path().join("p.edxml");
    let o = truc(&[
        "package",
        "new",
        "--from",
        G12,
        "--to",
        "000.00.00.H29",
        "--number",
        "1",
        "--notation",
        "BTC-VP",
        "--subject",
        "logs",
    ]);
    assert!(o.status.success());
    std::fs::write(&unsigned, &o.stdout).unwrap();
    let key = format!("certs-test/agencies/{G12}/sign.key");
    let cert = format!("certs-test/agencies/{G12}/sign.pem");
    let o = truc(&[
        "sign",
        unsigned.to_str().unwrap(),
        "--key",
        &key,
        "--cert",
        &cert,
    ]);
    assert!(o.status.success());
    let signed = dir.path().join("p-signed.edxml");
    std::fs::write(&signed, &o.stdout).unwrap();
    let token =
        std::fs::read_to_string(root().join(format!("certs-test/agencies/{G12}/token"))).unwrap();
    let o = curl(
        &[
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            "--data-binary",
            &format!("@{}", signed.display()),
        ],
        &format!("https://{addr}/api/v1/packages"),
    );
    let head = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(
        head.starts_with("http/1.1 201"),
        "{head}{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let message = head
        .lines()
        .find_map(|l| l.strip_prefix("truc-message-id: "))
        .unwrap()
        .trim()
        .to_owned();
    let request = head
        .lines()
        .find_map(|l| l.strip_prefix("truc-request-id: "))
        .unwrap()
        .trim()
        .to_owned();

    // An anonymous submission is refused before its body is read.
    let o = curl(
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            "x",
        ],
        &format!("https://{addr}/api/v1/packages"),
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "401");
    // The admin listener's /metrics (its URL as the banner prints it) counted both.
    let banner = std::fs::read_to_string(&log).unwrap();
    let admin = banner
        .lines()
        .find_map(|l| l.split_once("/metrics on ").map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin URL in the banner:\n{banner}"))
        .to_owned();
    let o = curl(&[], &format!("{admin}/metrics"));
    let metrics = String::from_utf8_lossy(&o.stdout).into_owned();
    for line in [
        r#"truc_packages_accepted_total{kind="edoc",outcome="new"} 1"#,
        r#"truc_packages_refused_total{code="unauthenticated"} 1"#,
        r#"truc_receipts_issued_total{kind="acceptance"} 1"#,
        r#"truc_tls_handshakes_total{result="ok"} 2"#,
        r#"truc_queue_depth{recipient="000.00.00.H29",state="queued"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in:\n{metrics}"
        );
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{exit}:\n{text}");

    // The banner and the closing line are for people; every log line is JSON.
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('{'))
            .all(|l| !l.contains("INFO") && !l.contains("WARN")),
        "a log line that is not JSON:\n{text}"
    );
    let accepted = lines
        .iter()
        .find(|v| v["fields"]["message"] == "package accepted")
        .unwrap_or_else(|| panic!("no acceptance line:\n{text}"));
    assert_eq!(
        accepted["fields"]["message_id"],
        message.as_str(),
        "{accepted}"
    );
    assert_eq!(accepted["span"]["name"], "request", "{accepted}");
    assert_eq!(accepted["span"]["id"], request.as_str(), "{accepted}");
    assert_eq!(accepted["span"]["agency"], G12, "{accepted}");
    let done = lines
        .iter()
        .find(|v| v["fields"]["message"] == "request done")
        .unwrap_or_else(|| panic!("no request line:\n{text}"));
    assert_eq!(done["span"]["id"], request.as_str(), "{done}");
    assert_eq!(done["fields"]["status"], 201, "{done}");
}

/// `curl -sS` with the test PKI's root, from the crate root.
fn curl(args: &[&str], url: &str) -> std::process::Output {
    Command::new(tool("curl", "curl"))
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            "certs-test/root-ca.pem",
        ])
        .args(args)
        .arg(url)
        .current_dir(root())
        .output()
        .unwrap()
}
