//! `truc admin`: the operators' commands, over the admin API (`src/admin/api.rs`).
//!
//! ```text
//! truc admin [--admin URL] [--token-file FILE] [--ca PEM] [--json] COMMAND
//!   queues                       per recipient: queued, in flight, retrying, dead, today, ...
//!   messages [--state S] [--sender A] [--recipient A] [--document-id D]
//!            [--since T] [--until T] [--limit N]
//!   show ID                      metadata, deliveries, the event timeline, receipts
//!   retry ID | requeue ID | cancel ID [--reason TEXT]      (ID: message or delivery id)
//!   pause AGENCY | resume AGENCY
//!   reload                       directory, trust anchors, CRLs
//!   audit verify [--file FILE]   recompute the audit log's hash chain
//! ```
//! Defaults: `--admin http://127.0.0.1:8444`, `--token-file truc-data/admin.token` (the
//! embedded configuration's data directory). Tables by default, aligned; `--json` prints the
//! API's JSON. The operator's name (`$USER`) goes to the hub in `Truc-Operator`, for the
//! audit log.
//!
//! Exit codes: 0 done; 1 refused by the hub (its problem code printed) or the audit chain
//! broken (the entry named); 2 the hub could not be reached; 64 usage.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::agency::{Stop, conclude, segment, table};
use super::client::{Auth, Client, Response};
use super::{CliError, EXIT_FAILURE, EXIT_OK, Outcome};
use crate::store::audit::{self, Head};

/// `truc admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Where the admin listener is.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:8444"
    )]
    pub admin: String,
    /// The admin token (first line of the file).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "truc-data/admin.token"
    )]
    pub token_file: PathBuf,
    /// The CA of the admin listener's certificate, for https:// (`[admin] tls = true`).
    #[arg(long, global = true, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Per recipient: queued, in flight, retrying, dead, delivered today, oldest, next, paused,
    /// circuit.
    Queues,
    /// Messages, oldest first, filtered.
    Messages(MessagesArgs),
    /// One message: metadata, deliveries, events, receipts.
    Show {
        /// Message id.
        id: String,
    },
    /// Make waiting push deliveries due now.
    Retry {
        /// Message id (all its deliveries) or delivery id.
        id: String,
    },
    /// Cancel the deliveries not yet finished (the sender gets cancellation receipts).
    Cancel {
        /// Message id or delivery id.
        id: String,
        /// Why (kept in the event log and the receipt).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Put dead deliveries back in their queue.
    Requeue {
        /// Message id or delivery id.
        id: String,
    },
    /// Hold push deliveries to an agency.
    Pause {
        /// Agency id.
        agency: String,
    },
    /// Release them.
    Resume {
        /// Agency id.
        agency: String,
    },
    /// Re-read the agency directory, trust anchors and CRLs.
    Reload,
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `truc admin messages`.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// queued, in-flight, retrying, delivered, rejected, dead or cancelled.
    #[arg(long)]
    pub state: Option<String>,
    /// Sender agency.
    #[arg(long)]
    pub sender: Option<String>,
    /// Recipient agency.
    #[arg(long)]
    pub recipient: Option<String>,
    /// DocumentId.
    #[arg(long)]
    pub document_id: Option<String>,
    /// Received at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Received before.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many (all pages are followed up to it).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `truc admin audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain from the first entry; exit 1 naming the first entry that
    /// does not fit.
    Verify {
        /// Verify this copy of the log instead of asking the hub.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Runs `truc admin`.
pub fn run(a: &AdminArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    if let AdminCommand::Audit(AuditCommand::Verify { file: Some(f) }) = &a.command {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        return verify_report(&bytes, None, out, err);
    }
    conclude(dispatch(a, out, err), err)
}

fn client(a: &AdminArgs) -> Result<Client, Stop> {
    let auth = Auth::token_file(&a.token_file).map_err(|e| {
        Stop::Cli(CliError::Usage(format!(
            "{e} (the hub writes its admin token to <data>/admin.token on first start; \
             pass --token-file)"
        )))
    })?;
    let mut c = Client::new(&a.admin, a.ca.as_deref(), auth)?;
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        c = c.with_header("truc-operator", &user);
    }
    Ok(c)
}

/// The answer of a call that must succeed (2xx), else the refusal.
fn ok(r: Response) -> Result<Response, Stop> {
    if r.status.is_success() {
        Ok(r)
    } else {
        Err(Stop::Refused(r))
    }
}

fn json(r: &Response) -> Result<Value, Stop> {
    r.json()
        .map_err(|e| Stop::Cli(CliError::Runtime(anyhow::anyhow!("the hub's answer: {e}"))))
}

fn print(out: &mut dyn Write, s: &str) -> Result<(), Stop> {
    out.write_all(s.as_bytes())
        .context("cannot write")
        .map_err(Stop::from)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn dispatch(a: &AdminArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Stop> {
    let mut c = client(a)?;
    let post = |c: &mut Client, path: &str, body: Vec<u8>| -> Result<Value, Stop> {
        let r = ok(c.post(path, "application/json", body)?)?;
        json(&r)
    };
    let (value, render): (Value, fn(&Value) -> String) = match &a.command {
        AdminCommand::Queues => (json(&ok(c.get("/admin/api/queues")?)?)?, queues_table),
        AdminCommand::Messages(m) => (messages(&mut c, m)?, messages_table),
        AdminCommand::Show { id } => (
            json(&ok(
                c.get(&format!("/admin/api/messages/{}", segment(id)?))?
            )?)?,
            show,
        ),
        AdminCommand::Retry { id } => (
            post(
                &mut c,
                &format!("/admin/api/messages/{}/retry", segment(id)?),
                Vec::new(),
            )?,
            action,
        ),
        AdminCommand::Requeue { id } => (
            post(
                &mut c,
                &format!("/admin/api/messages/{}/requeue", segment(id)?),
                Vec::new(),
            )?,
            action,
        ),
        AdminCommand::Cancel { id, reason } => {
            let body = serde_json::json!({ "reason": reason })
                .to_string()
                .into_bytes();
            (
                post(
                    &mut c,
                    &format!("/admin/api/messages/{}/cancel", segment(id)?),
                    body,
                )?,
                action,
            )
        }
        AdminCommand::Pause { agency } => (
            post(
                &mut c,
                &format!("/admin/api/agencies/{}/pause", segment(agency)?),
                Vec::new(),
            )?,
            paused,
        ),
        AdminCommand::Resume { agency } => (
            post(
                &mut c,
                &format!("/admin/api/agencies/{}/resume", segment(agency)?),
                Vec::new(),
            )?,
            paused,
        ),
        AdminCommand::Reload => (post(&mut c, "/admin/api/reload", Vec::new())?, reloaded),
        AdminCommand::Audit(AuditCommand::Verify { .. }) => {
            let (bytes, head) = audit_log(&mut c)?;
            return verify_report(&bytes, Some(head), out, err).map_err(Stop::Cli);
        }
    };
    print(
        out,
        &if a.json {
            pretty(&value)
        } else {
            render(&value)
        },
    )?;
    Ok(EXIT_OK)
}

/// Every page of a message search, up to `m.limit`.
fn messages(c: &mut Client, m: &MessagesArgs) -> Result<Value, Stop> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("state", &m.state),
        ("sender", &m.sender),
        ("recipient", &m.recipient),
        ("document_id", &m.document_id),
        ("since", &m.since),
        ("until", &m.until),
    ] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    let base = query.finish();
    let mut all: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = (m.limit - all.len()).clamp(1, 1000);
        let mut q = format!("{base}&limit={page}");
        if let Some(c) = &cursor {
            q += &format!("&cursor={c}");
        }
        let v = json(&ok(c.get(&format!("/admin/api/messages?{q}"))?)?)?;
        all.extend(v["messages"].as_array().cloned().unwrap_or_default());
        cursor = v["next"].as_str().map(str::to_owned);
        if cursor.is_none() || all.len() >= m.limit {
            break;
        }
    }
    all.truncate(m.limit);
    Ok(serde_json::json!({ "messages": all, "next": cursor }))
}

/// The whole audit log from the hub, and the head it reported with the last part.
fn audit_log(c: &mut Client) -> Result<(Vec<u8>, Head), Stop> {
    let mut bytes = Vec::new();
    let mut offset = 0u64;
    loop {
        let r = ok(c.get(&format!("/admin/api/audit?offset={offset}"))?)?;
        bytes.extend_from_slice(&r.body);
        match r
            .header("truc-audit-next-offset")
            .and_then(|v| v.parse().ok())
        {
            Some(next) if next > offset => offset = next,
            _ => {
                let head = r
                    .header("truc-audit-head")
                    .and_then(|h| h.split_once(' '))
                    .and_then(|(s, h)| {
                        Some(Head {
                            seq: s.parse().ok()?,
                            hash: h.to_owned(),
                        })
                    })
                    .ok_or_else(|| {
                        Stop::Cli(CliError::Runtime(anyhow::anyhow!(
                            "the hub's answer has no Truc-Audit-Head"
                        )))
                    })?;
                return Ok((bytes, head));
            }
        }
    }
}

/// Verifies `bytes` (whole lines) against `head` (the hub's, if known) and says so.
fn verify_report(
    bytes: &[u8],
    head: Option<Head>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    // Entries appended after the hub reported its head are checked by the chain only.
    let lines = match &head {
        Some(h) => {
            let mut end = 0;
            for _ in 0..h.seq {
                match bytes[end..].iter().position(|&b| b == b'\n') {
                    Some(i) => end += i + 1,
                    None => {
                        end = bytes.len();
                        break;
                    }
                }
            }
            &bytes[..end]
        }
        None => bytes,
    };
    let body = lines.strip_suffix(b"\n").unwrap_or(lines);
    let checked = if body.is_empty() {
        match &head {
            Some(h) if h.seq > 0 => Err(audit::Broken {
                line: 0,
                seq: 1,
                reason: format!("the log is empty, but the hub's head is seq {}", h.seq),
            }),
            _ => Ok(Head::default()),
        }
    } else {
        audit::verify(body, Head::default(), head.as_ref())
    };
    match checked {
        Ok(h) => {
            writeln!(
                out,
                "audit log verified: {} entries, head seq {} sha256 {}",
                h.seq,
                h.seq,
                if h.seq == 0 { audit::GENESIS } else { &h.hash }
            )
            .context("cannot write")?;
            Ok(EXIT_OK)
        }
        Err(b) => {
            let _ = writeln!(
                err,
                "error: audit log broken at entry {} (line {}): {}",
                b.seq, b.line, b.reason
            );
            Ok(EXIT_FAILURE)
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// Seconds as `45s`, `12m`, `3h`, `2d`.
fn age(v: &Value) -> String {
    match v.as_i64() {
        None => "-".into(),
        Some(n) if n < 120 => format!("{n}s"),
        Some(n) if n < 2 * 3600 => format!("{}m", n / 60),
        Some(n) if n < 2 * 86400 => format!("{}h", n / 3600),
        Some(n) => format!("{}d", n / 86400),
    }
}

fn queues_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["queues"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|q| {
            vec![
                s(&q["agency"]),
                s(&q["mode"]),
                s(&q["queued"]),
                s(&q["in_flight"]),
                s(&q["retrying"]),
                s(&q["dead"]),
                s(&q["delivered_today"]),
                age(&q["oldest_pending_age_seconds"]),
                s(&q["next_attempt"]),
                if q["paused"].as_bool() == Some(true) {
                    "paused"
                } else {
                    "-"
                }
                .into(),
                s(&q["circuit"]),
            ]
        })
        .collect();
    table(
        &[
            "AGENCY",
            "MODE",
            "QUEUED",
            "IN-FLIGHT",
            "RETRYING",
            "DEAD",
            "TODAY",
            "OLDEST",
            "NEXT ATTEMPT",
            "PAUSED",
            "CIRCUIT",
        ],
        &rows,
    )
}

fn deliveries_cell(m: &Value) -> String {
    m["deliveries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            format!(
                "{}:{}({})",
                s(&d["recipient"]),
                s(&d["state"]),
                s(&d["attempts"])
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn messages_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            vec![
                s(&m["id"]),
                s(&m["kind"]),
                s(&m["sender"]),
                s(&m["document_id"]),
                s(&m["received_at"]),
                deliveries_cell(m),
            ]
        })
        .collect();
    let mut t = table(
        &[
            "ID",
            "KIND",
            "SENDER",
            "DOCUMENT",
            "RECEIVED",
            "DELIVERIES (state, attempts)",
        ],
        &rows,
    );
    if let Some(next) = v["next"].as_str() {
        t += &format!("(more after {next}: raise --limit)\n");
    }
    t
}

fn delivery_rows(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["deliveries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let about = ["next_at", "lease_until", "error", "reason"]
                .iter()
                .filter(|k| !d[**k].is_null())
                .map(|k| format!("{k}={}", s(&d[*k])))
                .collect::<Vec<_>>()
                .join(" ");
            vec![
                s(&d["id"]),
                s(&d["recipient"]),
                s(&d["mode"]),
                s(&d["state"]),
                s(&d["attempts"]),
                s(&d["updated_at"]),
                about,
            ]
        })
        .collect();
    table(
        &[
            "DELIVERY",
            "RECIPIENT",
            "MODE",
            "STATE",
            "ATTEMPTS",
            "UPDATED",
            "DETAIL",
        ],
        &rows,
    )
}

fn show(v: &Value) -> String {
    let mut t = String::new();
    for k in [
        "id",
        "kind",
        "sender",
        "document_id",
        "business_doc_type",
        "size",
        "sha256",
        "received_at",
        "purged",
    ] {
        t += &format!("{k:<18}{}\n", s(&v[k]));
    }
    t += "\n";
    t += &delivery_rows(v);
    t += "\n";
    let events: Vec<Vec<String>> = v["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                s(&e["seq"]),
                s(&e["at"]),
                e["delivery"].as_u64().map_or("-".into(), |i| i.to_string()),
                s(&e["what"]),
                s(&e["state"]),
                s(&e["detail"]),
            ]
        })
        .collect();
    t += &table(
        &["SEQ", "AT", "DELIVERY", "EVENT", "STATE", "DETAIL"],
        &events,
    );
    t += "\nreceipts:\n";
    for r in v["receipts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        t += &format!("  {}\n", s(r));
    }
    t
}

fn action(v: &Value) -> String {
    let changed: Vec<String> = v["changed"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(s)
        .collect();
    format!(
        "{} {}: changed {}\n\n{}",
        s(&v["action"]),
        s(&v["message"]),
        changed.join(", "),
        delivery_rows(v)
    )
}

fn paused(v: &Value) -> String {
    let state = if v["paused"].as_bool() == Some(true) {
        "paused"
    } else {
        "resumed"
    };
    let already = if v["changed"].as_bool() == Some(false) {
        " (it already was)"
    } else {
        ""
    };
    format!("{} {state}{already}\n", s(&v["agency"]))
}

fn reloaded(v: &Value) -> String {
    format!(
        "directory  {}\ntrust      {}\ncrls       {}\n",
        s(&v["directory"]),
        s(&v["trust"]),
        s(&v["crls"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_rows_line_up_with_ages_and_flags() {
        let v = serde_json::json!({"queues": [
            {"agency": "000.00.00.H29", "mode": "push", "queued": 0, "in_flight": 1,
             "retrying": 2, "dead": 0, "delivered_today": 5, "oldest_pending_age_seconds": 7300,
             "next_attempt": "2026-12-02T06:00:00Z", "paused": true, "circuit": "open"},
            {"agency": "000.00.00.H41", "mode": "pull", "queued": 3, "in_flight": 0,
             "retrying": 0, "dead": 0, "delivered_today": 0, "oldest_pending_age_seconds": null,
             "next_attempt": null, "paused": false, "circuit": null},
        ]});
        let t = queues_table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].contains(" 2h ") && lines[1].contains("paused") && lines[1].ends_with("open")
        );
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cells[7..], ["-", "-", "-", "-"], "{:?}", lines[2]);
        let col = lines[0].find("RETRYING").unwrap();
        assert_eq!(&lines[1][col..col + 1], "2");
    }

    #[test]
    fn a_broken_chain_names_its_entry_and_exits_1() {
        let log = audit::AuditLog::memory();
        for n in 0..3 {
            log.append(&[audit::Change {
                at: jiff::Timestamp::from_second(1_800_000_000 + n).unwrap(),
                actor: "hub".into(),
                action: "claimed".into(),
                subject: format!("m{n}"),
                detail: None,
            }])
            .unwrap();
        }
        let (bytes, _) = log.read(0, 1 << 20).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = verify_report(&bytes, Some(log.head()), &mut out, &mut err).unwrap();
        assert_eq!(code, EXIT_OK);
        assert!(String::from_utf8_lossy(&out).contains("3 entries"));
        let mut bad = bytes.clone();
        let at = bad.windows(2).position(|w| w == b"m1").unwrap();
        bad[at + 1] = b'7';
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = verify_report(&bad, Some(log.head()), &mut out, &mut err).unwrap();
        assert_eq!(code, EXIT_FAILURE);
        assert!(
            String::from_utf8_lossy(&err).contains("broken at entry 2"),
            "{}",
            String::from_utf8_lossy(&err)
        );
    }
}
