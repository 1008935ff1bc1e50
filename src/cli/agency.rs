//! The agency client: `truc send`, `truc inbox list|fetch|ack`, `truc receipts list|fetch`
//! and `truc status send`, over the hub's API v1 with [`super::client::Client`].
//!
//! Every command takes the hub (`--hub URL`, default `https://127.0.0.1:8443`; `--ca PEM`,
//! the hub's CA, required for `https://`) and one credential: `--token-file FILE` (a bearer
//! token, the file's content trimmed) or `--cert PEM --key PEM` (a TLS client certificate).
//! `status send` is the exception: its `--key/--cert` sign the status package, and the same
//! pair is the TLS client certificate when no `--token-file` is given (the test PKI's signing
//! certificates carry no extended key usage and keyUsage digitalSignature, so the hub admits
//! them for TLS client use; a signing certificate whose EKU excludes clientAuth needs
//! `--token-file`).
//!
//! Packages are sent as the exact bytes of the file (never re-serialized); fetched packages
//! and receipts are written as the exact bytes the hub served.
//!
//! # Exit codes
//! - 0: done (`send`: accepted, or a duplicate of a package already accepted);
//! - 1: the hub refused (its problem `code`, `detail` and every item of `problems` are
//!   printed to stderr), or a local failure (a file that cannot be read or written);
//! - 2: the hub could not be reached or talked to (connection, TLS, HTTP, timeout);
//! - 64: usage error (bad or missing arguments, `https://` without `--ca`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use clap::{ArgGroup, Args, Subcommand};
use http::StatusCode;
use serde_json::Value;

use super::client::{Auth, Client, ClientError, Response};
use super::dsig::SignerArgs;
use super::package::{NewArgs, PackageCommand};
use super::{CliError, EXIT_FAILURE, EXIT_OK, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::edxml::model::Package;
use crate::edxml::time::vietnam_time;
use crate::edxml::{self, AgencyId, Options};

/// Exit code when the hub refused the request (its problem printed), or a local failure.
pub const EXIT_REFUSED: u8 = EXIT_FAILURE;
/// Exit code when the hub could not be reached or talked to (connection, TLS, HTTP).
pub const EXIT_TRANSPORT: u8 = 2;

/// The largest page asked of the hub (its maximum).
const MAX_PAGE: usize = 1000;

/// Where the hub is.
#[derive(Debug, Args)]
pub struct HubArgs {
    /// The hub's API: https://HOST:PORT (http:// for a plain-HTTP API on loopback).
    #[arg(long, value_name = "URL", default_value = "https://127.0.0.1:8443")]
    pub hub: String,
    /// The hub's CA (PEM file or directory): the only root the hub's TLS certificate is
    /// checked against. Required for https://.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
}

/// Who the client is: a bearer token, or a TLS client certificate (exactly one).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("auth").required(true).args(["token_file", "cert"])))]
pub struct AuthArgs {
    /// Bearer token file (its content, trimmed, is the token).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// TLS client certificate (PEM; may be followed by its chain), with --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The TLS client certificate's private key (PEM), with --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl AuthArgs {
    /// The credential these flags name.
    pub fn auth(&self) -> Result<Auth, ClientError> {
        match (&self.token_file, &self.cert, &self.key) {
            (Some(t), None, None) => Auth::token_file(t),
            (None, Some(c), Some(k)) => Auth::certificate_files(c, k),
            // clap's group and `requires` make any other combination a usage error.
            _ => Err(ClientError::Usage(
                "give either --token-file FILE or --cert PEM --key PEM".into(),
            )),
        }
    }
}

/// The hub and the credential.
#[derive(Debug, Args)]
pub struct Connection {
    /// Where.
    #[command(flatten)]
    pub hub: HubArgs,
    /// Who.
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// `truc send PACKAGE [--receipt-out FILE]`
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The package to submit (edoc or status), sent byte for byte.
    pub package: PathBuf,
    /// Write the signed acceptance receipt (the hub's answer) to this file.
    #[arg(long, value_name = "FILE")]
    pub receipt_out: Option<PathBuf>,
    /// The hub and the credential.
    #[command(flatten)]
    pub conn: Connection,
}

/// `truc inbox …`
#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// List the packages waiting for this agency (every page, or the first --limit).
    List(ListArgs),
    /// Fetch one package: the exact bytes the sender submitted.
    Fetch(FetchArgs),
    /// Acknowledge one package: delivered, or --reject REASON.
    Ack(AckArgs),
}

/// `truc receipts …`
#[derive(Debug, Subcommand)]
pub enum ReceiptsCommand {
    /// List the receipts issued for this agency's packages (delivery, failure, cancellation).
    List(ListArgs),
    /// Fetch one receipt (`<message id>-acceptance`, `<delivery id>-delivery`, ...).
    Fetch(FetchArgs),
}

/// `truc status …`
#[derive(Debug, Subcommand)]
pub enum StatusCommand {
    /// Build a status package answering a received package, sign it and submit it.
    ///
    /// --key/--cert sign the status package; without --token-file the same pair is also the
    /// TLS client certificate (a signing certificate whose extended key usage excludes
    /// clientAuth needs --token-file). Exit 0 accepted or duplicate, 1 refused, 2 the hub
    /// cannot be reached, 64 usage.
    Send(Box<StatusSendArgs>),
}

/// `list [--limit N] [--json]`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List at most N items (default: everything, following the `next` cursor).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Print the items as JSON (`{"items": [...], "next": ...}`) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The hub and the credential.
    #[command(flatten)]
    pub conn: Connection,
}

/// `fetch ID [-o FILE]`
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The id (a message id for `inbox`, a receipt id for `receipts`).
    pub id: String,
    /// Write the bytes to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The hub and the credential.
    #[command(flatten)]
    pub conn: Connection,
}

/// `inbox ack ID [--reject REASON]`
#[derive(Debug, Args)]
pub struct AckArgs {
    /// The message id.
    pub id: String,
    /// Refuse the package, with this reason, instead of acknowledging its delivery.
    #[arg(long, value_name = "REASON")]
    pub reject: Option<String>,
    /// The hub and the credential.
    #[command(flatten)]
    pub conn: Connection,
}

/// `truc status send --for PACKAGE --code CODE --key PEM --cert PEM …`
///
/// `--key/--cert` sign the status package; without `--token-file` the same pair is also
/// the TLS client certificate.
#[derive(Debug, Args)]
pub struct StatusSendArgs {
    /// The received package this status answers (ResponseFor is taken from it).
    #[arg(long = "for", value_name = "PACKAGE")]
    pub for_package: PathBuf,
    /// Status code: 01–06, 13, 15 or 16.
    #[arg(long, value_name = "CODE")]
    pub code: String,
    /// Status description (the reason, for 02, 13 and 16).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The agency answering (From); default: the package's one recipient (To).
    #[arg(long, value_name = "AGENCY", value_parser = parse_agency)]
    pub from: Option<AgencyId>,
    /// With --code 13: the recipient the take-back request goes to.
    #[arg(long, value_name = "ID", value_parser = parse_agency)]
    pub to: Option<AgencyId>,
    /// The signing key and certificate (--key, --cert, --chain); also the TLS client
    /// certificate when no --token-file is given.
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Authenticate with this bearer token instead of the signing certificate over TLS.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Write the signed acceptance receipt to this file.
    #[arg(long, value_name = "FILE")]
    pub receipt_out: Option<PathBuf>,
    /// Where the hub is.
    #[command(flatten)]
    pub hub: HubArgs,
}

fn parse_agency(s: &str) -> Result<AgencyId, String> {
    AgencyId::parse(s).map_err(|e| e.to_string())
}

/// Why a command stops.
pub(crate) enum Stop {
    /// Usage error (64) or local failure (1).
    Cli(CliError),
    /// The hub could not be reached (2).
    Transport(ClientError),
    /// The hub answered with a refusal (1).
    Refused(Response),
}

impl From<CliError> for Stop {
    fn from(e: CliError) -> Self {
        Stop::Cli(e)
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Cli(CliError::Runtime(e))
    }
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Self {
        if e.is_usage() {
            Stop::Cli(CliError::Usage(e.to_string()))
        } else if e.is_transport() {
            Stop::Transport(e)
        } else {
            Stop::Cli(CliError::Runtime(anyhow!(e)))
        }
    }
}

/// Prints what stopped the command and gives its exit code.
pub(crate) fn conclude(r: Result<u8, Stop>, err: &mut dyn Write) -> Outcome {
    match r {
        Ok(code) => Ok(code),
        Err(Stop::Cli(e)) => Err(e),
        Err(Stop::Transport(e)) => {
            let _ = writeln!(err, "error: {e}");
            Ok(EXIT_TRANSPORT)
        }
        Err(Stop::Refused(r)) => {
            let _ = write!(err, "{}", refusal(&r));
            Ok(EXIT_REFUSED)
        }
    }
}

/// A refusal in words: `error: the hub refused: CODE: detail`, then one line per problem.
pub fn refusal(r: &Response) -> String {
    match r.problem() {
        Some(p) => {
            let mut s = format!(
                "error: the hub refused (HTTP {}): {}: {}\n",
                r.status.as_u16(),
                p.code,
                p.detail
            );
            for i in &p.problems {
                s += &format!("  {}: {}: {}\n", i.path, i.code, i.detail);
            }
            s
        }
        None => {
            let body = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]);
            let body = body.trim();
            if body.is_empty() {
                format!("error: the hub answered HTTP {}\n", r.status.as_u16())
            } else {
                format!(
                    "error: the hub answered HTTP {}: {body}\n",
                    r.status.as_u16()
                )
            }
        }
    }
}

fn connect(hub: &HubArgs, auth: Auth) -> Result<Client, Stop> {
    Ok(Client::new(&hub.hub, hub.ca.as_deref(), auth)?)
}

fn client(conn: &Connection) -> Result<Client, Stop> {
    let auth = conn.auth.auth()?;
    connect(&conn.hub, auth)
}

/// An id as a path segment: only characters that need no escaping.
pub(crate) fn segment(id: &str) -> Result<&str, Stop> {
    let ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && id != "."
        && id != "..";
    if ok {
        Ok(id)
    } else {
        Err(CliError::Usage(format!(
            "{id:?} is not an id (letters, digits, '-', '_', '.')"
        ))
        .into())
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `truc send`.
pub fn send(a: &SendArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let run = |out: &mut dyn Write| -> Result<u8, Stop> {
        let bytes = read(&a.package)?;
        let mut c = client(&a.conn)?;
        submit(&mut c, bytes, a.receipt_out.as_deref(), out)
    };
    conclude(run(out), err)
}

/// POSTs a package; prints `<message id> accepted|duplicate` and saves the receipt.
fn submit(
    c: &mut Client,
    bytes: Vec<u8>,
    receipt_out: Option<&Path>,
    out: &mut dyn Write,
) -> Result<u8, Stop> {
    let r = c.post("/api/v1/packages", "application/xml", bytes)?;
    let what = match r.status {
        StatusCode::CREATED => "accepted",
        StatusCode::OK => "duplicate",
        _ => return Err(Stop::Refused(r)),
    };
    let Some(id) = r.header("truc-message-id").map(str::to_owned) else {
        return Err(anyhow!(
            "the hub answered HTTP {} without a Truc-Message-Id",
            r.status.as_u16()
        )
        .into());
    };
    if let Some(path) = receipt_out {
        write_file(path, &r.body)
            .with_context(|| format!("the package was {what} as {id}, but its receipt"))?;
    }
    writeln!(out, "{id} {what}").context("cannot write output")?;
    Ok(EXIT_OK)
}

/// Every item of a listing at `path` (following `next`), or the first `limit`; the items
/// and the cursor to continue from (`null` when the listing is complete).
fn list_all(c: &mut Client, path: &str, limit: Option<u64>) -> Result<(Vec<Value>, Value), Stop> {
    let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let want = limit.map_or(MAX_PAGE, |l| (l - items.len()).min(MAX_PAGE));
        let mut query = format!("{path}?limit={want}");
        if let Some(a) = &after {
            query += &format!("&after={}", segment(a)?);
        }
        let r = c.get(&query)?;
        if !r.status.is_success() {
            return Err(Stop::Refused(r));
        }
        let mut page = r.json().map_err(|e| anyhow!(e))?;
        let Some(got) = page.get_mut("items").and_then(Value::as_array_mut) else {
            return Err(anyhow!("the hub's answer to {path} is not a listing").into());
        };
        let empty = got.is_empty();
        items.append(got);
        let next = page.get("next").cloned().unwrap_or(Value::Null);
        let cursor = match &next {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match cursor {
            Some(cur) if !empty && limit.is_none_or(|l| items.len() < l) => after = Some(cur),
            _ => return Ok((items, next)),
        }
    }
}

/// Columns as text: each padded to its widest cell (counted in characters), two spaces
/// apart; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l += "  ";
            }
            l += cell;
            if i + 1 < widths.len() {
                l += &" ".repeat(w - cell.chars().count());
            }
        }
        s += l.trim_end();
        s += "\n";
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    s
}

/// At most `max` characters, with `…` when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "-".to_owned(),
    }
}

/// The inbox table: message id, delivery id, sender, kind, number/notation, DocumentId,
/// subject (shortened), size, received-at.
pub fn inbox_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let number = match (i.get("number"), i.get("notation")) {
                (Some(Value::String(n)), Some(Value::String(x))) => format!("{n}/{x}"),
                (Some(Value::String(n)), _) => n.clone(),
                _ => "-".to_owned(),
            };
            vec![
                text(i, "id"),
                text(i, "delivery_id"),
                text(i, "sender"),
                text(i, "kind"),
                number,
                text(i, "document_id"),
                shorten(&text(i, "subject"), 40),
                text(i, "size"),
                text(i, "received_at"),
            ]
        })
        .collect();
    table(
        &[
            "MESSAGE ID",
            "DELIVERY ID",
            "SENDER",
            "KIND",
            "NUMBER",
            "DOCUMENT ID",
            "SUBJECT",
            "SIZE",
            "RECEIVED AT",
        ],
        &rows,
    )
}

/// The receipts table: receipt id, kind, message id, delivery id, recipient, feed position.
pub fn receipts_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            [
                "id",
                "kind",
                "message_id",
                "delivery_id",
                "recipient",
                "seq",
            ]
            .iter()
            .map(|k| text(i, k))
            .collect()
        })
        .collect();
    table(
        &[
            "RECEIPT ID",
            "KIND",
            "MESSAGE ID",
            "DELIVERY ID",
            "RECIPIENT",
            "SEQ",
        ],
        &rows,
    )
}

fn print_list(
    a: &ListArgs,
    path: &str,
    render: fn(&[Value]) -> String,
    out: &mut dyn Write,
) -> Result<u8, Stop> {
    let mut c = client(&a.conn)?;
    let (items, next) = list_all(&mut c, path, a.limit)?;
    let text = if a.json {
        let v = serde_json::json!({ "items": items, "next": next });
        serde_json::to_string_pretty(&v).map_err(anyhow::Error::from)? + "\n"
    } else {
        render(&items)
    };
    out.write_all(text.as_bytes())
        .context("cannot write output")?;
    Ok(EXIT_OK)
}

fn fetch(a: &FetchArgs, path: &str, out: &mut dyn Write) -> Result<u8, Stop> {
    let path = format!("{path}/{}", segment(&a.id)?);
    let mut c = client(&a.conn)?;
    let r = c.get(&path)?;
    if r.status != StatusCode::OK {
        return Err(Stop::Refused(r));
    }
    match &a.output {
        Some(file) => write_file(file, &r.body)?,
        None => out.write_all(&r.body).context("cannot write output")?,
    }
    Ok(EXIT_OK)
}

/// Runs `truc inbox …`.
pub fn inbox(cmd: InboxCommand, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let r = match &cmd {
        InboxCommand::List(a) => print_list(a, "/api/v1/inbox", inbox_table, out),
        InboxCommand::Fetch(a) => fetch(a, "/api/v1/inbox", out),
        InboxCommand::Ack(a) => ack(a, out),
    };
    conclude(r, err)
}

fn ack(a: &AckArgs, out: &mut dyn Write) -> Result<u8, Stop> {
    let path = format!("/api/v1/inbox/{}/ack", segment(&a.id)?);
    let body = match &a.reject {
        None => serde_json::json!({ "result": "delivered" }),
        Some(reason) => serde_json::json!({ "result": "rejected", "reason": reason }),
    };
    let mut c = client(&a.conn)?;
    let r = c.post(&path, "application/json", body.to_string().into_bytes())?;
    if r.status != StatusCode::OK {
        return Err(Stop::Refused(r));
    }
    let state = r
        .json()
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body["result"].as_str().unwrap_or_default().to_owned());
    writeln!(out, "{} {state}", a.id).context("cannot write output")?;
    Ok(EXIT_OK)
}

/// Runs `truc receipts …`.
pub fn receipts(cmd: ReceiptsCommand, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let r = match &cmd {
        ReceiptsCommand::List(a) => print_list(a, "/api/v1/receipts", receipts_table, out),
        ReceiptsCommand::Fetch(a) => fetch(a, "/api/v1/receipts", out),
    };
    conclude(r, err)
}

/// Runs `truc status …`.
pub fn status(cmd: StatusCommand, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let StatusCommand::Send(a) = cmd;
    conclude(status_send(&a, out, err), err)
}

/// The agency a status about `original` comes from: `--from`, or the one recipient.
pub fn answering_agency(original: &Package, from: Option<&AgencyId>) -> Result<AgencyId, String> {
    if let Some(f) = from {
        return Ok(f.clone());
    }
    let Package::Edoc(doc) = original else {
        return Err("a status answers a document, not another status".into());
    };
    match doc.header.to.as_slice() {
        [one] => Ok(one.id.clone()),
        many => Err(format!(
            "the package has {} recipients ({}): give --from AGENCY",
            many.len(),
            many.iter()
                .map(|o| o.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn status_send(a: &StatusSendArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, Stop> {
    let now = vietnam_time(SystemClock.now());
    let original = read(&a.for_package)?;
    let parsed = edxml::parse(&original, &Options::lenient(now.date()))
        .map_err(|r| anyhow!("{} is not a valid package: {r}", a.for_package.display()))?;
    let from = answering_agency(parsed.package(), a.from.as_ref()).map_err(CliError::Usage)?;
    // The status is built by `truc package new --status-of`, so both commands make the same
    // package from the same answer.
    let new = NewArgs {
        from,
        from_name: None,
        to: a.to.iter().cloned().collect(),
        number: None,
        notation: None,
        subject: None,
        type_name: String::new(),
        type_code: 1,
        date: None,
        document_id: None,
        priority: None,
        attach: Vec::new(),
        status_of: Some(a.for_package.clone()),
        code: Some(a.code.clone()),
        description: a.description.clone(),
    };
    let mut unsigned = Vec::new();
    let code = super::package::run(PackageCommand::New(Box::new(new)), &mut unsigned, err)?;
    if code != EXIT_OK {
        return Ok(code);
    }
    let signed = super::dsig::signer(&a.signer)?
        .sign_package(&unsigned, &Options::strict(now.date()))
        .map_err(anyhow::Error::from)?;
    let auth = match &a.token_file {
        Some(t) => Auth::token_file(t)?,
        None => Auth::certificate_files(&a.signer.cert, &a.signer.key)?,
    };
    let mut c = connect(&a.hub, auth)?;
    submit(&mut c, signed, a.receipt_out.as_deref(), out)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let mut all = vec!["truc"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.command)
    }

    fn refused(args: &[&str]) -> String {
        match parse(args) {
            Ok(c) => panic!("{args:?} accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn exactly_one_auth_mode_is_required() {
        let hub = ["--hub", "https://h", "--ca", "ca.pem"];
        let with = |extra: &[&'static str]| {
            let mut v = vec!["send", "p.edxml"];
            v.extend_from_slice(&hub);
            v.extend_from_slice(extra);
            v
        };
        let Command::Send(a) = parse(&with(&["--token-file", "t"])).unwrap() else {
            panic!()
        };
        assert_eq!(a.conn.auth.token_file.as_deref(), Some(Path::new("t")));
        assert!(parse(&with(&["--cert", "c.pem", "--key", "k.pem"])).is_ok());
        assert!(refused(&with(&[])).contains("--token-file"));
        let both = refused(&with(&["--token-file", "t", "--cert", "c", "--key", "k"]));
        assert!(both.contains("cannot be used with"), "{both}");
        assert!(refused(&with(&["--cert", "c.pem"])).contains("--key"));
        assert!(refused(&with(&["--key", "k.pem"])).contains("--cert"));
        // Every command has the same flags.
        for cmd in [
            &["inbox", "list"][..],
            &["inbox", "fetch", "1"],
            &["inbox", "ack", "1"],
            &["receipts", "list"],
            &["receipts", "fetch", "1-acceptance"],
        ] {
            let mut v = cmd.to_vec();
            v.extend_from_slice(&["--token-file", "t"]);
            assert!(parse(&v).is_ok(), "{v:?}");
            assert!(parse(cmd).is_err(), "{cmd:?} without credentials");
        }
        // The hub defaults to the local one.
        let Command::Inbox(InboxCommand::List(l)) = parse(&[
            "inbox",
            "list",
            "--token-file",
            "t",
            "--limit",
            "5",
            "--json",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (l.conn.hub.hub.as_str(), l.limit, l.json),
            ("https://127.0.0.1:8443", Some(5), true)
        );
        assert!(parse(&["inbox", "list", "--token-file", "t", "--limit", "0"]).is_err());
    }

    #[test]
    fn status_send_signs_with_key_and_cert_and_may_add_a_token() {
        let base = ["status", "send", "--for", "p.edxml", "--code", "03"];
        let with = |extra: &[&'static str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        let Command::Status(StatusCommand::Send(a)) =
            parse(&with(&["--key", "s.key", "--cert", "s.pem"])).unwrap()
        else {
            panic!("not status send")
        };
        assert_eq!(a.signer.key, Path::new("s.key"));
        assert!(a.token_file.is_none() && a.from.is_none());
        assert!(
            parse(&with(&[
                "--key",
                "s.key",
                "--cert",
                "s.pem",
                "--token-file",
                "t",
                "--from",
                "000.00.00.H29",
                "--description",
                "ok"
            ]))
            .is_ok()
        );
        assert!(refused(&with(&["--token-file", "t"])).contains("--key"));
        assert!(
            refused(&with(&["--key", "k", "--cert", "c", "--from", "nope"])).contains("--from")
        );
    }

    #[test]
    fn connection_errors_map_to_exit_codes() {
        let d = tempfile::tempdir().unwrap();
        let token = d.path().join("t");
        std::fs::write(&token, "x").unwrap();
        let conn = |hub: &str, ca: Option<PathBuf>| Connection {
            hub: HubArgs {
                hub: hub.into(),
                ca,
            },
            auth: AuthArgs {
                token_file: Some(token.clone()),
                cert: None,
                key: None,
            },
        };
        let code = |c: Connection| {
            let a = ListArgs {
                limit: None,
                json: false,
                conn: c,
            };
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let r = conclude(
                print_list(&a, "/api/v1/inbox", inbox_table, &mut out),
                &mut err,
            );
            (
                r.map_err(|e| e.to_string()),
                String::from_utf8(err).unwrap(),
            )
        };
        let (r, _) = code(conn("https://127.0.0.1:1", None));
        assert!(matches!(r, Err(m) if m.contains("--ca is required")));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let (r, err) = code(conn(&format!("http://127.0.0.1:{port}"), None));
        assert_eq!(r.unwrap(), EXIT_TRANSPORT);
        assert!(
            err.starts_with("error: cannot connect to 127.0.0.1:"),
            "{err}"
        );
    }

    /// A hub stand-in on plain HTTP: answers listings in pages of two from `ids`, keeping
    /// connections alive; records each request line and `Authorization` header, and counts
    /// connections.
    fn fake_hub(ids: &'static [&'static str]) -> (String, Arc<Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(stream) = stream else { return };
                log.lock().unwrap().push("connection".to_owned());
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    log.lock().unwrap().push(line.trim().to_owned());
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        if h.to_ascii_lowercase().starts_with("authorization:") {
                            log.lock().unwrap().push(h.trim().to_owned());
                        }
                    }
                    let param = |name: &str| {
                        let target = line.split(' ').nth(1).unwrap_or("");
                        let query = target.split_once('?').map_or("", |(_, q)| q);
                        query
                            .split('&')
                            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                            .map(str::to_owned)
                    };
                    let start =
                        param("after").map_or(0, |a| ids.iter().position(|i| *i == a).unwrap() + 1);
                    let n = param("limit").map_or(2, |l| l.parse::<usize>().unwrap().min(2));
                    let page: Vec<&str> = ids.iter().skip(start).take(n).copied().collect();
                    let next = (start + n < ids.len()).then(|| page[page.len() - 1]);
                    let items: Vec<Value> =
                        page.iter().map(|i| serde_json::json!({"id": i})).collect();
                    let body = serde_json::json!({"items": items, "next": next}).to_string();
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        });
        (url, seen)
    }

    #[test]
    fn listings_follow_next_on_one_kept_alive_connection() {
        let (url, seen) = fake_hub(&["a", "b", "c", "d", "e"]);
        let mut c = Client::new(&url, None, Auth::Bearer("tok".into())).unwrap();
        let (items, next) = list_all(&mut c, "/api/v1/inbox", None).unwrap_or_else(|_| panic!());
        let got: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!((got, next), (vec!["a", "b", "c", "d", "e"], Value::Null));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "connection",
                "GET /api/v1/inbox?limit=1000 HTTP/1.1",
                "authorization: Bearer tok",
                "GET /api/v1/inbox?limit=1000&after=b HTTP/1.1",
                "authorization: Bearer tok",
                "GET /api/v1/inbox?limit=1000&after=d HTTP/1.1",
                "authorization: Bearer tok",
            ]
        );
        // With a limit: only what is needed, and the cursor to go on from.
        seen.lock().unwrap().clear();
        let (items, next) =
            list_all(&mut c, "/api/v1/receipts", Some(3)).unwrap_or_else(|_| panic!());
        assert_eq!((items.len(), next), (3, Value::from("c")));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], "GET /api/v1/receipts?limit=3 HTTP/1.1", "{seen:?}");
        assert_eq!(
            seen[2], "GET /api/v1/receipts?limit=1&after=b HTTP/1.1",
            "{seen:?}"
        );
    }

    #[test]
    fn ids_are_path_segments() {
        assert!(segment("1a2b3c-0-delivery").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_line_up() {
        let t = table(
            &["ID", "NAME", "SIZE"],
            &[
                vec!["1".into(), "Bộ Tài chính".into(), "12".into()],
                vec!["22".into(), "x".into(), "3".into()],
            ],
        );
        assert_eq!(
            t,
            "ID  NAME          SIZE\n1   Bộ Tài chính  12\n22  x             3\n"
        );
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn inbox_and_receipt_rows() {
        let items: Vec<Value> = serde_json::from_str(
            r#"[{"id":"1a2b","delivery_id":"1a2b-0","kind":"edoc","sender":"000.00.00.G12",
                "document_id":"000.00.00.G12,2026/01/02,1/BTC-VP","number":"1","notation":"BTC-VP",
                "subject":"A subject that is much longer than forty characters, surely","size":2048,
                "received_at":"2026-11-23T01:02:03Z"},
               {"id":"3c4d","delivery_id":"3c4d-0","kind":"status","sender":"000.00.00.H29",
                "document_id":null,"size":900,"received_at":"2026-11-23T01:02:04Z"}]"#,
        )
        .unwrap();
        let t = inbox_table(&items);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("MESSAGE ID  DELIVERY ID  SENDER"),
            "{t}"
        );
        let cells: Vec<&str> = lines[1]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "1a2b",
                "1a2b-0",
                "000.00.00.G12",
                "edoc",
                "1/BTC-VP",
                "000.00.00.G12,2026/01/02,1/BTC-VP",
                "A subject that is much longer than fort…",
                "2048",
                "2026-11-23T01:02:03Z"
            ]
        );
        assert!(
            lines[2].contains("status") && lines[2].contains(" - "),
            "{t}"
        );
        let r: Vec<Value> = serde_json::from_str(
            r#"[{"id":"1a2b-0-delivery","kind":"delivery","message_id":"1a2b","delivery_id":"1a2b-0","recipient":"000.00.00.H29","seq":7}]"#,
        )
        .unwrap();
        let t = receipts_table(&r);
        assert!(
            t.lines().nth(1).unwrap().ends_with("000.00.00.H29  7"),
            "{t}"
        );
    }

    #[test]
    fn refusals_print_code_detail_and_problems() {
        let r = Response {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            headers: Box::default(),
            body: br#"{"code":"invalid-package","detail":"the package is not valid","problems":[{"path":"edXMLHeader","code":"missing-element","detail":"no From"}]}"#.to_vec(),
        };
        assert_eq!(
            refusal(&r),
            "error: the hub refused (HTTP 422): invalid-package: the package is not valid\n  edXMLHeader: missing-element: no From\n"
        );
        let r = Response {
            status: StatusCode::BAD_GATEWAY,
            headers: Box::default(),
            body: Vec::new(),
        };
        assert_eq!(refusal(&r), "error: the hub answered HTTP 502\n");
    }

    #[test]
    fn the_answering_agency_is_the_one_recipient_or_from() {
        let today = jiff::civil::date(2026, 11, 23);
        let file = |rel: &str| {
            std::fs::read(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures")
                    .join(rel),
            )
            .unwrap()
        };
        let two = file("valid/edoc_new_2recipients.edxml");
        let p = edxml::parse(&two, &Options::lenient(today)).unwrap();
        let e = answering_agency(p.package(), None).unwrap_err();
        assert!(e.contains("2 recipients") && e.contains("--from"), "{e}");
        let h = AgencyId::parse("000.00.00.H47").unwrap();
        assert_eq!(answering_agency(p.package(), Some(&h)).unwrap(), h);
        let revoke = file("valid/edoc_revoke.edxml");
        let p = edxml::parse(&revoke, &Options::lenient(today)).unwrap();
        assert_eq!(
            answering_agency(p.package(), None).unwrap().to_string(),
            "000.00.00.H47"
        );
        let status = file("valid/status_03.edxml");
        let p = edxml::parse(&status, &Options::lenient(today)).unwrap();
        assert!(answering_agency(p.package(), None).is_err());
    }
}
