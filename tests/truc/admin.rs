//! The admin listener end to end: `truc admin` against a running `truc serve` whose push
//! endpoint for H41 is dead, the JSON API with `curl`, `/metrics`, `/healthz`, `/readyz`,
//! and the audit log's hash chain, verified over the API and broken by flipping one byte.

#![allow(clippy::disallowed_methods)]

use std::process::{Command, Output};
use std::time::Duration;

use crate::flows::{G12, H29, H41, Hub, eventually, feed, package};
use crate::util::{root, stderr, stdout, tool};

/// `truc admin <args> --admin http://<hub.admin> --token-file <data>/admin.token`.
pub(crate) fn admin(hub: &Hub, args: &[&str]) -> Output {
    let token = hub.dir.path().join("data/admin.token");
    Command::new(env!("CARGO_BIN_EXE_truc"))
        .arg("admin")
        .args(args)
        .arg("--admin")
        .arg(format!("http://{}", hub.admin))
        .arg("--token-file")
        .arg(&token)
        .env("USER", "night-shift")
        .current_dir(root())
        .output()
        .unwrap()
}

fn admin_json(hub: &Hub, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let o = admin(hub, &a);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// `curl` on the admin listener: status and body.
fn curl(hub: &Hub, args: &[&str], path: &str) -> (u16, String) {
    let o = Command::new(tool("curl", "curl"))
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://{}{path}", hub.admin))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// H41's delivery in a message's detail (`GET /admin/api/messages/{id}`).
pub(crate) fn h41_delivery(detail: &serde_json::Value) -> serde_json::Value {
    detail["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["recipient"] == H41)
        .unwrap()
        .clone()
}

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{labels} ")))
        .and_then(|l| l.rsplit_once(' '))
        .map_or(0.0, |(_, v)| v.parse().unwrap())
}

#[test]
fn operators_see_a_stuck_delivery_act_on_it_and_every_act_is_in_the_audit_chain() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let hub = Hub::start(&format!("https://localhost:{port}/inbox"), "72h");

    // Health first: up, and ready (store, listeners, trust).
    assert_eq!(curl(&hub, &[], "/healthz"), (200, "ok\n".into()));
    let (code, body) = curl(&hub, &[], "/readyz");
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["store"], true);
    assert_eq!(ready["checks"]["listeners"], true);
    // The API needs the token.
    let (code, body) = curl(&hub, &[], "/admin/api/queues");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("unauthenticated"));

    let pkg = package("valid/edoc_new_2recipients.edxml", &[], G12);
    let r = hub.call(G12, "POST", "/api/v1/packages", Some(&pkg));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.header("truc-message-id").unwrap().to_owned();

    // The dead endpoint: H41's delivery keeps retrying.
    let stuck = eventually(Duration::from_secs(30), "H41 retrying", || {
        let d = h41_delivery(&admin_json(&hub, &["show", &id]));
        (d["state"] == "retrying" && d["attempts"].as_u64() >= Some(1)).then_some(d)
    });
    assert!(
        stuck["error"].as_str().unwrap().contains("connect"),
        "{stuck}"
    );
    let queues = admin_json(&hub, &["queues"]);
    let row = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["agency"] == H41)
        .unwrap()
        .clone();
    assert_eq!(row["mode"], "push");
    assert!(row["retrying"].as_u64().unwrap() + row["in_flight"].as_u64().unwrap() >= 1);
    assert!(
        row["oldest_pending"].is_string() && row["circuit"].is_string(),
        "{row}"
    );
    let h29 = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["agency"] == H29)
        .unwrap()
        .clone();
    assert_eq!(
        (h29["mode"].as_str(), h29["queued"].as_u64()),
        (Some("pull"), Some(1))
    );
    // The table lines up its columns.
    let table = stdout(&admin(&hub, &["queues"]));
    let header = table.lines().next().unwrap();
    let h41_line = table.lines().find(|l| l.starts_with(H41)).unwrap();
    let col = header.find("MODE").unwrap();
    assert_eq!(&h41_line[col..col + 4], "push", "{table}");

    // Search by state and recipient finds it; another sender does not.
    let found = admin_json(
        &hub,
        &["messages", "--recipient", H41, "--state", "retrying"],
    );
    assert_eq!(found["messages"][0]["id"], id.as_str(), "{found}");
    let none = admin_json(&hub, &["messages", "--sender", H29]);
    assert_eq!(none["messages"].as_array().unwrap().len(), 0);
    let shown = stdout(&admin(&hub, &["show", &id]));
    assert!(
        shown.contains("claimed") && shown.contains("retrying"),
        "{shown}"
    );
    assert!(shown.contains(&format!("{id}-acceptance")), "{shown}");

    // Retry: due now, so the attempts counter moves on.
    let before = stuck["attempts"].as_u64().unwrap();
    let retried = eventually(Duration::from_secs(20), "a retry that applies", || {
        let o = admin(&hub, &["retry", &format!("{id}-0"), "--json"]);
        (o.status.code() == Some(0))
            .then(|| serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap())
    });
    assert_eq!(retried["changed"][0], format!("{id}-0"));
    eventually(
        Duration::from_secs(20),
        "another attempt after retry",
        || {
            let d = h41_delivery(&admin_json(&hub, &["show", &id]));
            (d["attempts"].as_u64().unwrap() > before).then_some(())
        },
    );
    // Requeue applies to dead deliveries only: refused with its code, exit 1.
    let o = admin(&hub, &["requeue", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("invalid-state"), "{}", stderr(&o));

    // Pause holds H41: no attempt while paused; resume releases it.
    let o = admin(&hub, &["pause", H41]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{H41} paused\n"));
    let paused = admin_json(&hub, &["queues"]);
    assert!(
        paused["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["agency"] == H41 && q["paused"] == true)
    );
    std::thread::sleep(Duration::from_millis(700));
    let held = h41_delivery(&admin_json(&hub, &["show", &id]))["attempts"].clone();
    let _ = admin(&hub, &["retry", &id]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        h41_delivery(&admin_json(&hub, &["show", &id]))["attempts"],
        held,
        "no attempt while paused"
    );
    let o = admin(&hub, &["pause", H29]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a pull agency has nothing to pause"
    );
    assert_eq!(admin(&hub, &["resume", H41]).status.code(), Some(0));

    // Cancel what is not delivered: the sender gets cancellation receipts.
    let o = admin(
        &hub,
        &[
            "cancel",
            &id,
            "--reason",
            "sent to the wrong agency",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cancelled: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        cancelled["changed"].as_array().unwrap().len(),
        2,
        "{cancelled}"
    );
    let kinds: Vec<String> = eventually(Duration::from_secs(10), "cancellation receipts", || {
        let f = feed(&hub, G12);
        (f.len() >= 2).then_some(f.into_iter().map(|(k, _, _)| k).collect())
    });
    assert_eq!(kinds, ["cancellation", "cancellation"]);
    let receipt_id = format!("{id}-0-cancellation");
    let (code, xml) = curl(
        &hub,
        &["-H", &format!("Authorization: Bearer {}", token(&hub))],
        &format!("/admin/api/receipts/{receipt_id}"),
    );
    assert_eq!(code, 200);
    assert!(xml.contains("sent to the wrong agency"), "{xml}");

    // Reload: each part says what it did.
    let o = admin(&hub, &["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("directory  ok: 4 agencies"),
        "{}",
        stdout(&o)
    );

    // Metrics: the acceptance, the failed attempts, the receipts.
    let (code, metrics) = curl(&hub, &[], "/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        metric(
            &metrics,
            "truc_packages_accepted_total",
            "{kind=\"edoc\",outcome=\"new\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "truc_delivery_attempts_total",
            "{outcome=\"retry\"}"
        ) >= 2.0
    );
    assert!(
        metric(
            &metrics,
            "truc_receipts_issued_total",
            "{kind=\"cancellation\"}"
        ) >= 2.0
    );

    // The audit chain holds every change and every operator act, with who.
    let o = admin(&hub, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("audit log verified: "),
        "{}",
        stdout(&o)
    );
    let path = hub.dir.path().join("data/store/audit.log");
    let log = std::fs::read_to_string(&path).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {log}"))
    };
    assert_eq!(find("accepted")["actor"], format!("agency:{G12}"));
    assert_eq!(
        find("admin:retry")["actor"],
        "operator:night-shift@127.0.0.1"
    );
    assert!(
        find("admin:requeue")["detail"]
            .as_str()
            .unwrap()
            .starts_with("refused: invalid-state")
    );
    for action in [
        "claimed",
        "retrying",
        "retry-now",
        "paused",
        "resumed",
        "cancelled",
        "admin:cancel",
        "admin:reload",
    ] {
        find(action);
    }

    // One flipped byte in an entry in the middle: verification names that entry.
    let n = entries.len();
    let k = n / 2;
    let mut bytes = log.clone().into_bytes();
    let start: usize = log.lines().take(k - 1).map(|l| l.len() + 1).sum();
    let line = log.lines().nth(k - 1).unwrap();
    let at = start + line.find("\"action\":\"").unwrap() + 10;
    bytes[at] ^= 0x20; // the action's first letter changes case: still valid JSON
    std::fs::write(&path, &bytes).unwrap();
    let o = admin(&hub, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!("broken at entry {k} ")),
        "entry {k} of {n}: {}",
        stderr(&o)
    );
    // The same offline, on a copy.
    let o = admin(&hub, &["audit", "verify", "--file", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("broken at entry {k} ")),
        "{}",
        stderr(&o)
    );
}

fn token(hub: &Hub) -> String {
    std::fs::read_to_string(hub.dir.path().join("data/admin.token"))
        .unwrap()
        .trim()
        .to_owned()
}
