//! The dashboard: server-rendered HTML on the admin listener, for operators with a browser.
//!
//! No script at all, nothing from elsewhere (no CDN, font or image): the pages work offline
//! and under a Content-Security-Policy that forbids everything but inline style. Every form
//! posts to this listener with the session's CSRF token in a hidden `csrf` field, which
//! [`super::server`] checks before [`handle`] runs; every action goes through [`ops`] and is
//! audited there with the operator's name and `(dashboard)`.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | the queues of every agency, with pause/resume; the message search form |
//! | GET | `/messages?state=&sender=&recipient=&document_id=&since=&until=&cursor=` | search results, oldest first, with a next-page link |
//! | GET | `/messages/{id}` | metadata, per-recipient deliveries, the event timeline, receipts, actions |
//! | POST | `/messages/{id}/retry`, `/cancel` (field `reason`), `/requeue` | then 303 to the message with `?done=` |
//! | POST | `/agencies/{id}/pause`, `/resume` | then 303 to `/` with `?done=` |
//! | POST | `/reload` | re-reads the directory, trust anchors and CRLs; answers with what each part did |
//! | GET | `/receipts/{id}` | a receipt's signed XML (`application/xml`) |
//!
//! Refusals (a state an action does not apply to, an unknown message or agency, a bad search)
//! are pages too, with the problem's status and code and a link back: never JSON.
//!
//! Element ids are stable, for people's scripts and the browser test: the queue figures are
//! `<column>-<agency>` (`retrying-000.00.00.H41`), a delivery's cells `<column>-<delivery id>`
//! (`attempts-1a2b3c-1`, `state-...`), the buttons `retry`, `cancel`, `requeue`, `reload`,
//! `logout`, `pause-<agency>` / `resume-<agency>`, and the outcome of the last action `flash`.
//!
//! Not guaranteed: the layout and wording, which may change; the JSON API
//! ([`super::api`]) is the contract for programs.

use std::fmt::Write as _;

use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method, StatusCode};
use jiff::Timestamp;

use super::api::AdminRequest;
use super::auth::Operator;
use super::ops::{self, Action, DeliveryRow, MessageDetail, MessagePage, QueueRow, Search};
use super::server::redirect;
use crate::deliver::push::CircuitState;
use crate::hub::Hub;
use crate::hub::api::ApiResponse;
use crate::hub::problem::Problem;
use crate::store::{Kind, Mode, State, StateName};

/// The policy of every page: no script, no remote resource, inline style only, forms to this
/// listener only, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// The style of every page (inline: the policy allows nothing else).
const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{display:flex;gap:1em;align-items:center;background:#1d3557;color:#fff;padding:.6em 1.2em}\
header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto}\
header .muted{color:#c9d3e3}\
header form{margin:0}main{padding:1em 1.2em}h1{font-size:1.4em;margin:.2em 0 .6em}\
h2{font-size:1.1em;margin:1.4em 0 .5em}\
table{border-collapse:collapse;background:#fff;margin-bottom:1em}\
th,td{border:1px solid #d5d9e0;padding:.3em .55em;text-align:left;vertical-align:top}\
th{background:#e9edf3;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}\
td.id{white-space:nowrap}\
.state{padding:0 .35em;border-radius:3px;background:#e9edf3}\
.retrying,.in-flight{background:#fff0c2}.dead,.rejected{background:#fbd3d0}\
.delivered{background:#d4f1d9}.cancelled{background:#e2e2e2}\
.flash{padding:.5em .8em;border-radius:4px;background:#d4f1d9;border:1px solid #9bd3a6}\
.error{padding:.5em .8em;border-radius:4px;background:#fbd3d0;border:1px solid #e39a94}\
form.inline{display:inline}button{cursor:pointer}\
.actions form{display:inline-block;margin-right:1em}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;background:#fff;padding:.6em;\
border:1px solid #d5d9e0}dt{font-weight:600}dd{margin:0}\
pre{background:#fff;border:1px solid #d5d9e0;padding:.6em;overflow:auto}\
.search label{margin-right:.8em}.muted{color:#6b7280}";

/// The login form, with `error` above it.
pub fn login_page(error: Option<&str>) -> ApiResponse {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=error id=login-error>{}</p>", escape(e))
    });
    let body = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <title>truc admin: log in</title><style>{STYLE}</style></head>\
         <body><header><a href=/>truc admin</a></header><main><h1>Log in</h1>{error}\
         <form method=post action=/login id=login>\
         <p><label>Admin token <input type=password name=token id=token autofocus \
         autocomplete=off></label></p>\
         <p><label>Your name <input name=name id=name autocomplete=username></label> \
         <span class=muted>(written into the audit log)</span></p>\
         <p><button id=login-submit>Log in</button></p></form></main></body></html>"
    );
    html(StatusCode::OK, body)
}

/// The routes of the table above.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Page {
    Overview,
    Messages,
    Message(String),
    Receipt(String),
    Act(String, Action),
    Pause(String, bool),
    Reload,
}

fn route(method: &Method, path: &str) -> Result<Page, Problem> {
    let not_found = || Problem::not_found(format!("no such page: {path}"));
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some("") => Vec::new(),
        Some(rest) => rest.split('/').collect(),
        None => return Err(not_found()),
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let s = |x: &str| x.to_owned();
    let (page, allowed) = match segments.as_slice() {
        [] => (Page::Overview, Method::GET),
        ["messages"] => (Page::Messages, Method::GET),
        ["messages", id] => (Page::Message(s(id)), Method::GET),
        ["messages", id, "retry"] => (Page::Act(s(id), Action::Retry), Method::POST),
        ["messages", id, "cancel"] => (Page::Act(s(id), Action::Cancel), Method::POST),
        ["messages", id, "requeue"] => (Page::Act(s(id), Action::Requeue), Method::POST),
        ["agencies", id, "pause"] => (Page::Pause(s(id), true), Method::POST),
        ["agencies", id, "resume"] => (Page::Pause(s(id), false), Method::POST),
        ["reload"] => (Page::Reload, Method::POST),
        ["receipts", id] => (Page::Receipt(s(id)), Method::GET),
        _ => return Err(not_found()),
    };
    if *method != allowed {
        return Err(Problem::method_not_allowed(method, &[allowed]));
    }
    Ok(page)
}

/// A page for an authenticated operator (for a state-changing request, the CSRF token has
/// been checked already).
pub fn handle(hub: &Hub, op: &Operator, req: &AdminRequest) -> ApiResponse {
    let page = match route(&req.method, &req.path) {
        Ok(p) => p,
        Err(p) => return refusal(hub, op, &p, "/"),
    };
    let now = req.now;
    let query = req.query_pairs();
    match page {
        Page::Overview => match ops::queues(hub, now) {
            Ok(rows) => {
                let flash = overview_flash(&query, &rows);
                let body = overview(&rows, now, csrf(op), flash.as_deref());
                html(StatusCode::OK, layout(hub, op, "Queues", &body))
            }
            Err(p) => refusal(hub, op, &p, "/"),
        },
        Page::Messages => {
            let search = Search::parse(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            match search.and_then(|s| ops::messages(hub, &s)) {
                Ok(page) => {
                    let body = messages(&page, &query, now);
                    html(StatusCode::OK, layout(hub, op, "Messages", &body))
                }
                Err(p) => refusal(hub, op, &p, "/"),
            }
        }
        Page::Message(id) => match ops::message(hub, &id) {
            Ok(d) => {
                let flash = message_flash(&query, &d);
                let body = message(&d, now, csrf(op), flash.as_deref());
                let title = format!("Message {}", d.message.id);
                html(StatusCode::OK, layout(hub, op, &title, &body))
            }
            Err(p) => refusal(hub, op, &p, "/messages"),
        },
        Page::Receipt(id) => match ops::receipt(hub, &id) {
            Ok(xml) => {
                let mut r = ApiResponse::xml(StatusCode::OK, xml);
                r.headers.extend(security_headers());
                r
            }
            Err(p) => refusal(hub, op, &p, "/"),
        },
        Page::Act(id, action) => {
            let form = req.form();
            let reason = param(&form, "reason");
            let back = format!("/messages/{id}");
            match ops::act(hub, &id, action, reason, &op.actor, now) {
                Ok(r) => {
                    let q = form_urlencoded::Serializer::new(String::new())
                        .append_pair("done", action.name())
                        .append_pair("changed", &r.changed.join(","))
                        .finish();
                    redirect(&format!("/messages/{}?{q}", r.message))
                }
                Err(p) => refusal(hub, op, &p, &back),
            }
        }
        Page::Pause(agency, paused) => match ops::pause(hub, &agency, paused, &op.actor, now) {
            Ok(r) => {
                let q = form_urlencoded::Serializer::new(String::new())
                    .append_pair("done", if paused { "pause" } else { "resume" })
                    .append_pair("agency", &r.agency)
                    .append_pair("changed", if r.changed { "1" } else { "0" })
                    .finish();
                redirect(&format!("/?{q}"))
            }
            Err(p) => refusal(hub, op, &p, "/"),
        },
        Page::Reload => match ops::reload(hub, &op.actor, now) {
            Ok(r) => {
                let mut body = String::from(
                    "<h1>Reload</h1><p class=flash id=flash>Re-read the directory, the trust \
                     anchors and the CRLs; a part that failed kept its current version.</p>\
                     <table id=reload><tr><th>part</th><th>outcome</th></tr>",
                );
                for (part, outcome) in [
                    ("directory", &r.directory),
                    ("trust", &r.trust),
                    ("crls", &r.crls),
                ] {
                    let _ = write!(
                        body,
                        "<tr><th>{part}</th><td id=reload-{part}>{}</td></tr>",
                        escape(outcome)
                    );
                }
                body.push_str("</table><p><a id=back href=/>Back to the queues</a></p>");
                html(StatusCode::OK, layout(hub, op, "Reload", &body))
            }
            Err(p) => refusal(hub, op, &p, "/"),
        },
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration in seconds as a person reads it: `42 s`, `3 min`, `2 h 5 min`, `3 d 4 h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{m} min"),
        3600..86_400 if m == 0 => format!("{h} h"),
        3600..86_400 => format!("{h} h {m} min"),
        _ if h == 0 => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// `2026-12-02 06:00:00 UTC`.
fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time to come, with how far: `... (in 3 s)`, or `(due)` once passed.
fn due(t: Timestamp, now: Timestamp) -> String {
    let secs = (t - now).get_seconds();
    if secs <= 0 {
        format!("{} (due)", time(t))
    } else {
        format!("{} (in {})", time(t), age(secs))
    }
}

/// The value of the first `name` of these pairs (a query's or a form's).
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn csrf(op: &Operator) -> &str {
    op.csrf.as_deref().unwrap_or("")
}

/// The headers of every page.
fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

fn html(status: StatusCode, body: String) -> ApiResponse {
    let mut headers = vec![(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    )];
    headers.extend(security_headers());
    ApiResponse {
        status,
        headers,
        body: body.into_bytes(),
    }
}

/// A hidden field with the session's CSRF token.
fn csrf_field(csrf: &str) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", escape(csrf))
}

/// A whole page: the header (home, messages, who, reload, log out) and `main`.
fn layout(hub: &Hub, op: &Operator, title: &str, main: &str) -> String {
    let token = csrf_field(csrf(op));
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <title>{title} · truc admin</title><style>{STYLE}</style></head><body>\
         <header><a href=/ id=home>truc admin</a><span class=muted>{hub_name}</span>\
         <a href=/messages id=nav-messages>Messages</a>\
         <span class=who id=who>{who}</span>\
         <form method=post action=/reload class=inline>{token}\
         <button id=reload>Reload directory, trust and CRLs</button></form>\
         <form method=post action=/logout class=inline>{token}\
         <button id=logout>Log out</button></form></header>\
         <main>{main}</main></body></html>",
        title = escape(title),
        hub_name = escape(&format!("{} ({})", hub.config.name, hub.config.id)),
        who = escape(&op.actor),
    )
}

/// A refusal as a page: the problem's status, code and detail, and a link to `back`.
fn refusal(hub: &Hub, op: &Operator, p: &Problem, back: &str) -> ApiResponse {
    let mut r = html(
        p.status(),
        layout(hub, op, p.code.title(), &refusal_body(p, back)),
    );
    r.headers.extend(p.headers.iter().cloned());
    r
}

/// A refusal made before a page could be chosen (the CSRF check), as a page of its own.
pub fn problem_page(hub: &Hub, op: &Operator, p: &Problem) -> ApiResponse {
    refusal(hub, op, p, "/")
}

fn refusal_body(p: &Problem, back: &str) -> String {
    format!(
        "<h1>{title}</h1><p class=error id=problem><code id=problem-code>{code}</code>: \
         {detail}</p><p><a id=back href=\"{back}\">Back</a></p>",
        title = escape(p.code.title()),
        code = escape(p.code.as_str()),
        detail = escape(&p.detail),
        back = escape(back),
    )
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Push => "push",
        Mode::Pull => "pull",
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Edoc => "edoc",
        Kind::Status => "status",
    }
}

fn circuit_name(c: CircuitState) -> &'static str {
    match c {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half-open",
    }
}

/// A state as a badge (its name is its class).
fn badge(s: StateName) -> String {
    format!("<span class=\"state {s}\">{s}</span>")
}

/// The outcome line of `/?done=pause|resume&agency=..&changed=..`, for an agency listed.
fn overview_flash(query: &[(String, String)], rows: &[QueueRow]) -> Option<String> {
    let get = |name: &str| param(query, name);
    let agency = rows
        .iter()
        .find(|r| Some(r.agency.as_str()) == get("agency"))?;
    let changed = get("changed") != Some("0");
    Some(match (get("done")?, changed) {
        ("pause", true) => format!("Paused push deliveries to {}.", agency.agency),
        ("pause", false) => format!("{} was paused already.", agency.agency),
        ("resume", true) => format!("Resumed push deliveries to {}.", agency.agency),
        ("resume", false) => format!("{} was running already.", agency.agency),
        _ => return None,
    })
}

/// The queues table and the search form.
fn overview(rows: &[QueueRow], now: Timestamp, csrf: &str, flash: Option<&str>) -> String {
    let mut out = String::from("<h1>Queues</h1>");
    if let Some(f) = flash {
        let _ = write!(out, "<p class=flash id=flash>{}</p>", escape(f));
    }
    out.push_str(&queues_table(rows, now, csrf));
    out.push_str("<h2>Find messages</h2>");
    out.push_str(&search_form(&[]));
    out
}

/// One row per agency, with its pause or resume button.
fn queues_table(rows: &[QueueRow], now: Timestamp, csrf: &str) -> String {
    let mut out = String::from(
        "<table id=queues><thead><tr><th>agency</th><th>name</th><th>mode</th>\
         <th>queued</th><th>in flight</th><th>retrying</th><th>dead</th>\
         <th>delivered today</th><th>oldest pending</th><th>next attempt</th>\
         <th>paused</th><th>circuit</th><th></th></tr></thead><tbody>",
    );
    for r in rows {
        let a = escape(&r.agency);
        let messages = form_urlencoded::Serializer::new(String::new())
            .append_pair("recipient", &r.agency)
            .finish();
        let _ = write!(
            out,
            "<tr id=\"queue-{a}\"><td class=id><a href=\"/messages?{link}\">{a}</a></td>\
             <td>{name}</td><td id=\"mode-{a}\">{mode}</td>",
            link = escape(&messages),
            name = escape(&r.name),
            mode = escape(&r.mode),
        );
        for (col, n) in [
            ("queued", r.queued),
            ("in-flight", r.in_flight),
            ("retrying", r.retrying),
            ("dead", r.dead),
            ("delivered-today", r.delivered_today),
        ] {
            let _ = write!(out, "<td class=n id=\"{col}-{a}\">{n}</td>");
        }
        let oldest = r.oldest_pending_age_seconds.map_or(String::from("–"), age);
        let next = r.next_attempt.map_or(String::from("–"), |t| due(t, now));
        let circuit = r.circuit.map_or("–", circuit_name);
        let _ = write!(
            out,
            "<td id=\"oldest-{a}\">{oldest}</td><td id=\"next-{a}\">{next}</td>\
             <td id=\"paused-{a}\">{paused}</td><td id=\"circuit-{a}\">{circuit}</td><td>",
            oldest = escape(&oldest),
            next = escape(&next),
            paused = if r.paused { "paused" } else { "no" },
        );
        if r.mode == "push" || r.paused {
            let (verb, label) = if r.paused {
                ("resume", "Resume")
            } else {
                ("pause", "Pause")
            };
            let _ = write!(
                out,
                "<form method=post action=\"/agencies/{a}/{verb}\" class=inline>{token}\
                 <button id=\"{verb}-{a}\">{label}</button></form>",
                token = csrf_field(csrf),
            );
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The search form, filled with `current`'s values.
fn search_form(current: &[(String, String)]) -> String {
    let get = |name: &str| param(current, name).unwrap_or("");
    let mut out = String::from(
        "<form method=get action=/messages id=search class=search>\
         <label>State <select name=state id=search-state><option value=\"\">any</option>",
    );
    for s in StateName::ALL {
        let selected = if get("state") == s.to_string() {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option{selected}>{s}</option>");
    }
    out.push_str("</select></label>");
    for (name, label, hint) in [
        ("sender", "Sender", "000.00.00.G12"),
        ("recipient", "Recipient", "000.00.00.H41"),
        ("document_id", "Document id", ""),
        ("since", "Since", "YYYY-MM-DD or RFC 3339"),
        ("until", "Until", "YYYY-MM-DD or RFC 3339"),
    ] {
        let _ = write!(
            out,
            "<label>{label} <input name={name} id=\"search-{name}\" value=\"{v}\" \
             placeholder=\"{hint}\" size=16></label>",
            v = escape(get(name)),
        );
    }
    out.push_str("<button id=search-submit>Search</button></form>");
    out
}

/// The results of a search, with the form above and the next-page link below.
fn messages(page: &MessagePage, query: &[(String, String)], now: Timestamp) -> String {
    let mut out = String::from("<h1>Messages</h1>");
    out.push_str(&search_form(query));
    out.push_str(&messages_table(page, now));
    match &page.next {
        Some(next) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query.iter().filter(|(k, _)| k != "cursor") {
                q.append_pair(k, v);
            }
            q.append_pair("cursor", next);
            let _ = write!(
                out,
                "<p><a id=next href=\"/messages?{}\">Next page</a></p>",
                escape(&q.finish())
            );
        }
        None => out.push_str("<p class=muted id=end>End of the results.</p>"),
    }
    out
}

fn messages_table(page: &MessagePage, now: Timestamp) -> String {
    if page.messages.is_empty() {
        return String::from("<p id=none>No message matches.</p>");
    }
    let mut out = String::from(
        "<table id=messages><thead><tr><th>id</th><th>kind</th><th>sender</th>\
         <th>number, subject</th><th>recipients</th><th>received at</th></tr></thead><tbody>",
    );
    for m in &page.messages {
        let id = escape(&m.id);
        let summary = [
            m.summary.number.as_deref(),
            m.summary.notation.as_deref(),
            m.summary.subject.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
        let _ = write!(
            out,
            "<tr id=\"message-{id}\"><td class=id><a href=\"/messages/{id}\">{id}</a></td><td>{kind}</td>\
             <td>{sender}</td><td>{summary}</td><td><ul class=recipients>",
            kind = kind_name(m.kind),
            sender = escape(&m.sender),
            summary = escape(&summary),
        );
        for d in &m.deliveries {
            let _ = write!(
                out,
                "<li id=\"recipient-{did}\">{r} {state} <span class=muted>{n} attempt{s}</span></li>",
                did = escape(&d.id),
                r = escape(&d.recipient),
                state = badge(d.state.name()),
                n = d.attempts,
                s = if d.attempts == 1 { "" } else { "s" },
            );
        }
        let _ = write!(
            out,
            "</ul></td><td>{} <span class=muted>({} ago)</span></td></tr>",
            escape(&time(m.received_at)),
            escape(&age((now - m.received_at).get_seconds())),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The outcome line of `/messages/{id}?done=<action>&changed=<ids>`, naming only deliveries
/// of this message.
fn message_flash(query: &[(String, String)], d: &MessageDetail) -> Option<String> {
    let get = |name: &str| param(query, name);
    let changed: Vec<&str> = get("changed")
        .unwrap_or("")
        .split(',')
        .filter(|c| d.message.deliveries.iter().any(|x| x.id == *c))
        .collect();
    if changed.is_empty() {
        return None;
    }
    let ids = changed.join(", ");
    Some(match get("done")? {
        "retry" => format!("Retry: {ids} due now."),
        "cancel" => format!("Cancelled: {ids}."),
        "requeue" => format!("Requeued: {ids}."),
        _ => return None,
    })
}

/// When the next attempt is, and the error or reason, of a delivery in `state`.
fn state_cells(state: &State, mode: Mode, now: Timestamp) -> (String, String) {
    let dash = || String::from("–");
    match state {
        State::Queued if mode == Mode::Pull => ("in the inbox".into(), dash()),
        State::Queued => ("due now".into(), dash()),
        State::InFlight { lease_until } => (
            format!("attempt in progress (lease until {})", time(*lease_until)),
            dash(),
        ),
        State::Retrying { next_at, error } => (due(*next_at, now), error.clone()),
        State::Delivered { at } => (format!("delivered {}", time(*at)), dash()),
        State::Rejected { at, reason } => (format!("rejected {}", time(*at)), reason.clone()),
        State::Dead { at, reason } => (format!("given up {}", time(*at)), reason.clone()),
        State::Cancelled { at, reason } => (format!("cancelled {}", time(*at)), reason.clone()),
    }
}

fn deliveries_table(rows: &[DeliveryRow], now: Timestamp) -> String {
    let mut out = String::from(
        "<table id=deliveries><thead><tr><th>delivery</th><th>recipient</th><th>mode</th>\
         <th>state</th><th>attempts</th><th>next attempt</th><th>error or reason</th>\
         <th>updated</th><th>receipt</th></tr></thead><tbody>",
    );
    for d in rows {
        let id = escape(&d.id);
        let (next, error) = state_cells(&d.state, d.mode, now);
        let receipt = d.receipt.as_deref().map_or(String::from("–"), |r| {
            let r = escape(r);
            format!("<a href=\"/receipts/{r}\">{r}</a>")
        });
        let _ = write!(
            out,
            "<tr id=\"delivery-{id}\"><td class=id>{id}</td><td>{recipient}</td><td>{mode}</td>\
             <td id=\"state-{id}\">{state}</td><td class=n id=\"attempts-{id}\">{attempts}</td>\
             <td id=\"next-{id}\">{next}</td><td id=\"error-{id}\">{error}</td>\
             <td>{updated}</td><td>{receipt}</td></tr>",
            recipient = escape(&d.recipient),
            mode = mode_name(d.mode),
            state = badge(d.state.name()),
            attempts = d.attempts,
            next = escape(&next),
            error = escape(&error),
            updated = escape(&time(d.updated_at)),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// One message in full: metadata, deliveries, actions, receipts, the timeline.
fn message(d: &MessageDetail, now: Timestamp, csrf: &str, flash: Option<&str>) -> String {
    let m = &d.message;
    let id = escape(&m.id);
    let mut out = format!("<h1>Message <span id=message-id>{id}</span></h1>");
    if let Some(f) = flash {
        let _ = write!(out, "<p class=flash id=flash>{}</p>", escape(f));
    }
    let opt = |v: Option<&str>| escape(v.unwrap_or("–"));
    let _ = write!(
        out,
        "<dl id=metadata><dt>kind</dt><dd>{kind}</dd><dt>sender</dt><dd id=sender>{sender}</dd>\
         <dt>recipients</dt><dd>{recipients}</dd><dt>document id</dt><dd>{doc}</dd>\
         <dt>code</dt><dd>{number} {notation}</dd><dt>subject</dt><dd>{subject}</dd>\
         <dt>business doc type</dt><dd>{bdt}</dd><dt>size</dt><dd>{size} bytes</dd>\
         <dt>received</dt><dd>{received} <span class=muted>({ago} ago)</span></dd>\
         <dt>SHA-256</dt><dd><code>{sha}</code></dd><dt>bytes</dt><dd>{purged}</dd></dl>",
        kind = kind_name(m.kind),
        sender = escape(&m.sender),
        recipients = escape(&d.recipients.join(", ")),
        doc = opt(m.document_id.as_deref()),
        number = opt(m.summary.number.as_deref()),
        notation = escape(m.summary.notation.as_deref().unwrap_or("")),
        subject = opt(m.summary.subject.as_deref()),
        bdt = d
            .business_doc_type
            .map_or(String::from("–"), |b| b.to_string()),
        size = m.size,
        received = escape(&time(m.received_at)),
        ago = escape(&age((now - m.received_at).get_seconds())),
        sha = escape(&d.sha256),
        purged = if d.purged {
            "purged after the retention period"
        } else {
            "kept"
        },
    );
    out.push_str("<h2>Deliveries</h2>");
    out.push_str(&deliveries_table(&m.deliveries, now));
    let token = csrf_field(csrf);
    let _ = write!(
        out,
        "<div class=actions id=actions>\
         <form method=post action=\"/messages/{id}/retry\">{token}\
         <button id=retry>Retry now</button></form>\
         <form method=post action=\"/messages/{id}/requeue\">{token}\
         <button id=requeue>Requeue dead</button></form>\
         <form method=post action=\"/messages/{id}/cancel\">{token}\
         <label>Reason <input name=reason id=cancel-reason size=30 \
         placeholder=\"cancelled by an operator\"></label> \
         <button id=cancel>Cancel undelivered</button></form></div>\
         <p class=muted>Retry applies to push deliveries that are queued or retrying, requeue \
         to dead ones, cancel to any not yet finished (the sender gets a cancellation \
         receipt).</p>"
    );
    out.push_str("<h2>Receipts</h2><ul id=receipts>");
    for r in &d.receipts {
        let r = escape(r);
        let _ = write!(out, "<li><a href=\"/receipts/{r}\">{r}</a></li>");
    }
    out.push_str("</ul><h2>Timeline</h2>");
    out.push_str(
        "<table id=events><thead><tr><th>#</th><th>at</th><th>delivery</th><th>what</th>\
         <th>state</th><th>detail</th></tr></thead><tbody>",
    );
    for e in &d.events {
        let delivery = e.delivery.map_or(String::from("–"), |i| {
            let did = format!("{}-{i}", m.id);
            match m.deliveries.iter().find(|x| x.id == did) {
                Some(x) => format!("{did} ({})", x.recipient),
                None => did,
            }
        });
        let _ = write!(
            out,
            "<tr><td class=n>{seq}</td><td>{at}</td><td>{delivery}</td><td class=what>{what}</td>\
             <td>{state}</td><td>{detail}</td></tr>",
            seq = e.seq,
            at = escape(&time(e.at)),
            delivery = escape(&delivery),
            what = escape(&e.what),
            state = e.state.map_or(String::from("–"), badge),
            detail = escape(e.detail.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table><h2>Signature verdict</h2><pre id=verdict>");
    let verdict = serde_json::to_string_pretty(&d.verdict).unwrap_or_default();
    out.push_str(&escape(&verdict));
    out.push_str("</pre>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MessageId, Summary};

    const HOSTILE: &str = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>&amp;";

    fn now() -> Timestamp {
        "2026-12-02T06:00:00Z".parse().unwrap()
    }

    fn queue(agency: &str, name: &str) -> QueueRow {
        QueueRow {
            agency: agency.into(),
            name: name.into(),
            mode: "push".into(),
            queued: 1,
            in_flight: 0,
            retrying: 2,
            dead: 0,
            delivered_today: 3,
            delivered: 3,
            rejected: 0,
            cancelled: 0,
            oldest_pending: Some(now() - jiff::SignedDuration::from_secs(200)),
            oldest_pending_age_seconds: Some(200),
            next_attempt: Some(now() + jiff::SignedDuration::from_secs(5)),
            paused: false,
            circuit: Some(CircuitState::Open),
        }
    }

    /// No markup of the hostile string survives: every `<` in the output opens a tag the
    /// renderer wrote.
    fn assert_inert(html: &str) {
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("'x'"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("&amp;amp;"));
    }

    #[test]
    fn escape_covers_content_and_attributes() {
        assert_eq!(
            escape("a<b>&\"c'"),
            "a&lt;b&gt;&amp;&quot;c&#39;".to_owned()
        );
        assert_eq!(escape("Sở Nội vụ"), "Sở Nội vụ");
    }

    #[test]
    fn a_hostile_queue_row_renders_inert() {
        let rows = [
            queue(HOSTILE, HOSTILE),
            queue("000.00.00.H41", "Tỉnh Hà Giang"),
        ];
        let html = queues_table(&rows, now(), "tok\"en");
        assert_inert(&html);
        assert!(html.contains("value=\"tok&quot;en\""), "{html}");
        assert!(html.contains("<td class=n id=\"retrying-000.00.00.H41\">2</td>"));
        assert!(html.contains("id=\"pause-000.00.00.H41\""));
        assert!(html.contains("<td id=\"oldest-000.00.00.H41\">3 min</td>"));
        assert!(html.contains("(in 5 s)"));
        assert!(html.contains("<td id=\"circuit-000.00.00.H41\">open</td>"));
    }

    #[test]
    fn a_hostile_message_renders_inert_and_its_search_link_is_encoded() {
        let id: MessageId = "1a23484224700000".parse().unwrap();
        let delivery = DeliveryRow {
            id: format!("{id}-1"),
            recipient: HOSTILE.into(),
            mode: Mode::Push,
            state: State::Retrying {
                next_at: now(),
                error: HOSTILE.into(),
            },
            attempts: 4,
            since: now(),
            updated_at: now(),
            receipt: None,
        };
        let row = ops::MessageRow {
            id: id.to_string(),
            kind: Kind::Edoc,
            sender: HOSTILE.into(),
            document_id: Some(HOSTILE.into()),
            summary: Summary {
                number: Some("1".into()),
                notation: Some(HOSTILE.into()),
                subject: Some(HOSTILE.into()),
            },
            size: 10,
            received_at: now(),
            deliveries: vec![delivery.clone()],
        };
        let page = MessagePage {
            messages: vec![row.clone()],
            next: Some("1a23484224700001".into()),
        };
        let query = vec![("sender".to_owned(), HOSTILE.to_owned())];
        let html = messages(&page, &query, now());
        assert_inert(&html);
        assert!(
            html.contains("href=\"/messages?sender=%3Cscript%3E"),
            "the next link keeps the search, percent-encoded: {html}"
        );
        assert!(html.contains("&amp;cursor=1a23484224700001\""), "{html}");

        let detail = MessageDetail {
            message: row,
            recipients: vec![HOSTILE.into()],
            business_doc_type: Some(0),
            sha256: "00".into(),
            verdict: serde_json::json!({ "signer": HOSTILE }),
            purged: false,
            events: vec![crate::store::Event {
                seq: 1,
                at: now(),
                delivery: Some(1),
                what: HOSTILE.into(),
                state: Some(StateName::Retrying),
                detail: Some(HOSTILE.into()),
            }],
            receipts: vec![format!("{id}-acceptance")],
        };
        let flash = message_flash(
            &[
                ("done".into(), "retry".into()),
                ("changed".into(), format!("{id}-1,<b>forged</b>")),
            ],
            &detail,
        );
        assert_eq!(flash.as_deref(), Some("Retry: 1a23484224700000-1 due now."));
        let html = message(&detail, now(), "t", flash.as_deref());
        assert_inert(&html);
        assert!(html.contains("<td class=n id=\"attempts-1a23484224700000-1\">4</td>"));
        assert!(html.contains("<button id=retry>"));
        assert!(html.contains("action=\"/messages/1a23484224700000/cancel\""));
        assert!(html.contains("<p class=flash id=flash>Retry: 1a23484224700000-1 due now.</p>"));
    }

    #[test]
    fn a_refusal_is_a_page_with_its_code_and_a_way_back() {
        let p = Problem::invalid_state(HOSTILE);
        let html = refusal_body(&p, "/messages/\"x");
        assert_inert(&html);
        assert!(html.contains("<code id=problem-code>invalid-state</code>"));
        assert!(html.contains("href=\"/messages/&quot;x\""));
    }

    #[test]
    fn ages_read_like_a_person_says_them() {
        assert_eq!(age(-5), "0 s");
        assert_eq!(age(42), "42 s");
        assert_eq!(age(60), "1 min");
        assert_eq!(age(3 * 60 + 59), "3 min");
        assert_eq!(age(3600), "1 h");
        assert_eq!(age(2 * 3600 + 5 * 60), "2 h 5 min");
        assert_eq!(age(86_400), "1 d");
        assert_eq!(age(3 * 86_400 + 4 * 3600 + 59), "3 d 4 h");
        assert_eq!(due(now(), now()), "2026-12-02 06:00:00 UTC (due)");
        assert_eq!(
            due(now() + jiff::SignedDuration::from_secs(90), now()),
            "2026-12-02 06:01:30 UTC (in 1 min)"
        );
    }

    #[test]
    fn routes_and_methods() {
        let (get, post) = (Method::GET, Method::POST);
        assert_eq!(route(&get, "/").unwrap(), Page::Overview);
        assert_eq!(route(&get, "/messages").unwrap(), Page::Messages);
        assert_eq!(
            route(&post, "/messages/1a2b/retry").unwrap(),
            Page::Act("1a2b".into(), Action::Retry)
        );
        assert_eq!(
            route(&post, "/agencies/000.00.00.H41/resume").unwrap(),
            Page::Pause("000.00.00.H41".into(), false)
        );
        assert_eq!(
            route(&get, "/receipts/x-acceptance").unwrap(),
            Page::Receipt("x-acceptance".into())
        );
        assert_eq!(
            route(&get, "/messages/1a2b/retry")
                .unwrap_err()
                .code
                .as_str(),
            "method-not-allowed"
        );
        assert_eq!(
            route(&post, "/").unwrap_err().code.as_str(),
            "method-not-allowed"
        );
        for missing in [
            "/messages/",
            "//",
            "/nope",
            "/messages/a/b/c/d",
            "/favicon.ico",
        ] {
            assert_eq!(route(&get, missing).unwrap_err().code.as_str(), "not-found");
        }
    }
}
