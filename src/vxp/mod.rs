//! The VXP front door: the XroadVnpt API that VNPT's VXP Java SDK speaks
//! (`../shared/VXP.md` describes it byte for byte), over the same parse → verify → store →
//! route → receipt core as API v1. An agency system on the SDK moves to truc by changing its
//! `VnptProperties` endpoint to `https://host:8443/vxp`.
//!
//! # Architecture
//! ```text
//!  HTTPS listener (hub/server.rs), path under [vxp] prefix ─┐   plain HTTP listener
//!  (checked before the agencies' auth: VXP has its own)     ├── ([vxp] http_listen, VXP only)
//!                                                            ▼
//!  mod.rs     route on the last path segment (`//` tolerated), POST everywhere, GET only
//!  │          for downloadEdoc; never an HTML page: every answer is one JSON object
//!  ├ auth.rs    HMAC-SHA256 over the raw signed-header bytes, constant time, no freshness
//!  ├ params.rs  the parameters of the signed JSON; the docId/docid preference rules
//!  ├ ops.rs     the operations, on the Hub: sendEdoc through hub::submit (check under the
//!  │            system's policy, durable store, acceptance receipt), inbox listing, getEdoc,
//!  │            updateStatus (ack/refuse → receipts), getSentEdocList, counts, directory
//!  └ reply.rs   status / ErrorCode / ErrorDesc always, no JSON null, ASCII-only sendEdoc
//! ```
//!
//! # Identities
//! A system (`[[vxp.system]]`: `systemid`, secret file, the agency codes it serves) sends for
//! and receives for its agencies. A package it sends must be *from* one of them; what it
//! lists and fetches are the pending pull deliveries *to* them. DocIds are the hub's ids:
//! sendEdoc answers the message id (`1a2b…`), received items are delivery ids
//! (`1a2b…-0`): hex and a dash, safe as the file names the SDK makes of them.
//!
//! # Invariants
//! - Nothing is stored unless the request authenticates and the package passes every check
//!   (hash-file, parse, sender, signature policy, recipients) — the same refusal order as API
//!   v1, each refusal a `FAIL` with a specific `ErrorCode`.
//! - The stored bytes are the body exactly, minus the SDK's trailing CRLF when hash-file says
//!   so; never re-serialized. getEdoc returns them base64, repeatably.
//! - The secret is never logged; every request logs its system and the SDK's timestamp.

pub mod auth;
pub mod ops;
pub mod params;
pub mod reply;

use http::{HeaderMap, Method};
use jiff::Timestamp;

use crate::directory::AgencyPolicy;
use crate::hub::Hub;
use crate::hub::config::VxpSystemConfig;

/// One connecting system, with its secret.
#[derive(Clone)]
pub struct System {
    /// `systemid`.
    pub id: String,
    /// The shared secret's bytes (the text of the secret file's first line).
    secret: Vec<u8>,
    /// The agency codes it serves.
    pub agencies: Vec<String>,
    /// How its packages are checked.
    pub policy: AgencyPolicy,
    /// Whether registerAgency / deleteAgency are accepted.
    pub manage_agencies: bool,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("id", &self.id)
            .field("agencies", &self.agencies)
            .finish_non_exhaustive()
    }
}

impl System {
    /// From its configuration and secret.
    pub fn new(c: &VxpSystemConfig, secret: Vec<u8>) -> Self {
        System {
            id: c.id.clone(),
            secret,
            agencies: c.agencies.clone(),
            policy: AgencyPolicy {
                signature_required: c.signature_required,
                allow_legacy: false,
                lenient: c.lenient,
            },
            manage_agencies: c.manage_agencies,
        }
    }

    /// Whether it serves `agency`.
    pub fn serves(&self, agency: &str) -> bool {
        self.agencies.iter().any(|a| a == agency)
    }
}

/// The operations, by their path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `getAgenciesList`.
    GetAgenciesList,
    /// `getAgenciesListQD20`.
    GetAgenciesListQd20,
    /// `getSynchronizeUnit`.
    GetSynchronizeUnit,
    /// `registerAgency`.
    RegisterAgency,
    /// `deleteAgency`.
    DeleteAgency,
    /// `sendEdoc`.
    SendEdoc,
    /// `getReceivedEdocList`.
    GetReceivedEdocList,
    /// `getEdoc`.
    GetEdoc,
    /// `downloadEdoc` (GET; the reply is the package itself, or empty).
    DownloadEdoc,
    /// `updateStatus`.
    UpdateStatus,
    /// `getSentEdocList`.
    GetSentEdocList,
    /// `countReceiveEdoc`.
    CountReceiveEdoc,
    /// `countReceiveStatus`.
    CountReceiveStatus,
}

impl Operation {
    /// The operation named by the last segment of `path`, if any.
    pub fn from_path(path: &str) -> Option<Operation> {
        let last = path.rsplit('/').find(|s| !s.is_empty())?;
        Some(match last {
            "getAgenciesList" => Operation::GetAgenciesList,
            "getAgenciesListQD20" => Operation::GetAgenciesListQd20,
            "getSynchronizeUnit" => Operation::GetSynchronizeUnit,
            "registerAgency" => Operation::RegisterAgency,
            "deleteAgency" => Operation::DeleteAgency,
            "sendEdoc" => Operation::SendEdoc,
            "getReceivedEdocList" => Operation::GetReceivedEdocList,
            "getEdoc" => Operation::GetEdoc,
            "downloadEdoc" => Operation::DownloadEdoc,
            "updateStatus" => Operation::UpdateStatus,
            "getSentEdocList" => Operation::GetSentEdocList,
            "countReceiveEdoc" => Operation::CountReceiveEdoc,
            "countReceiveStatus" => Operation::CountReceiveStatus,
            _ => return None,
        })
    }

    /// The method the SDK uses for it.
    pub fn method(self) -> Method {
        if self == Operation::DownloadEdoc {
            Method::GET
        } else {
            Method::POST
        }
    }
}

/// Whether `path` is under the VXP `prefix` (`/vxp`, `/vxp/…`, `/vxp//…`).
pub fn under(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One VXP request, read whole.
#[derive(Debug)]
pub struct VxpRequest<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path (under the prefix).
    pub path: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body as received.
    pub body: &'a bytes::Bytes,
    /// When it arrived.
    pub now: Timestamp,
}

/// What to answer: the body and its content type.
#[derive(Debug, PartialEq, Eq)]
pub struct VxpResponse {
    /// `application/json; charset=utf-8`, or `application/octet-stream` for downloadEdoc.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// The answer to a request to `path` that failed before it could be handled (too large,
/// too slow, a crash): what the SDK can read for that operation.
pub fn failure(path: &str, code: &str, desc: &str) -> VxpResponse {
    match Operation::from_path(path) {
        Some(Operation::SendEdoc) => VxpResponse {
            content_type: "application/json; charset=utf-8",
            body: reply::Reply::send_edoc_fail(code, desc).to_bytes(true),
        },
        Some(Operation::DownloadEdoc) => VxpResponse {
            content_type: "application/octet-stream",
            body: Vec::new(),
        },
        _ => VxpResponse {
            content_type: "application/json; charset=utf-8",
            body: reply::Reply::fail(code, desc).to_bytes(false),
        },
    }
}

/// Answers one request (always HTTP 200: the SDK ignores the status and reads the JSON).
pub fn handle(hub: &Hub, req: &VxpRequest<'_>) -> VxpResponse {
    ops::handle(hub, req)
}
