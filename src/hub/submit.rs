//! `POST /api/v1/packages` and `GET /api/v1/packages/{id}`: what an agency sends, and the
//! sender's view of it afterwards.
//!
//! A submission goes through, in order, and stops at the first step that refuses it (nothing
//! is stored before the last):
//! 1. parse and validate under the sender's policy (strict unless `lenient`) → `422
//!    invalid-package` with every problem;
//! 2. the package's sender must be the authenticated agency → `403 forbidden`;
//! 3. the signature under the package policy, the signer's path to the anchors with
//!    revocation, and the signer's binding to the sender → `signature-required`,
//!    `signature-invalid`, `signer-untrusted`, `signer-not-authorized-for-sender`. A package
//!    without a signature is accepted only when the sender's policy says signatures are not
//!    required. A signature that is present is always checked; under that same optional
//!    policy one that fails is not a refusal but is recorded as such (`NotVerified` in the
//!    receipt, with the verifier's outcome, code and reason), since field software (the VXP
//!    SDK among it) often breaks the signatures it forwards. The hub then vouches for
//!    nothing the signature claims: the receipt, the recipients' trace and the admin API all
//!    say "not verified";
//! 4. every recipient must be in the directory → `422 unknown-recipient` listing them all;
//! 5. the store makes it durable (one `fdatasync`) with its acceptance receipt → `201` with
//!    the signed receipt, `Truc-Message-Id` and `Location`; the same bytes again → `200` with
//!    the same receipt; a new document reusing a DocumentId → `409 duplicate-conflict`.
//!
//! A revocation (BussinessDocType 1) then cancels the deliveries of the revoked document
//! that have not happened yet, for the recipients the revocation names (their senders get
//! cancellation receipts); it is itself delivered like any package, and recipients that had
//! the original already answer with status 15 or 16. Updates and replacements are new
//! messages, linked to the original by their DocumentId.

use http::header::LOCATION;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use super::Hub;
use super::api::{ApiRequest, ApiResponse};
use super::problem::{Problem, ProblemItem};
use super::receipts::{self, ReceiptRef};
use crate::directory::Directory;
use crate::dsig::{self, Keys, PackageError, Verdict};
use crate::edxml;
use crate::edxml::model::{BusinessDocType, Package, Sha256};
use crate::metrics::Stage;
use crate::pki::TrustStore;
use crate::receipt::{Kind as ReceiptKind, VerdictSummary};
use crate::store::{
    self, Accepted, DeliveryId, Kind, MessageId, NewMessage, Recipient, State, StoreError, Summary,
};

/// `Truc-Message-Id`.
pub const MESSAGE_ID: HeaderName = HeaderName::from_static("truc-message-id");

/// A store error as a problem response.
pub fn store_problem(e: StoreError) -> ApiResponse {
    ApiResponse::problem(store_refusal(e))
}

/// A store error as a problem.
pub fn store_refusal(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict { .. } => Problem::duplicate_conflict(e.to_string()),
        StoreError::NotFound(what) => Problem::not_found(what),
        StoreError::BadId(_) => Problem::not_found(e.to_string()),
        StoreError::Receipt(why) => {
            tracing::error!(error = %why, "cannot sign an acceptance receipt: package refused");
            Problem::internal(format!(
                "the hub cannot sign the acceptance receipt, so it did not accept the package \
                 (nothing was stored; send it again later): {why}"
            ))
        }
        other => {
            tracing::error!(error = %other, "store");
            Problem::internal(format!("the store failed: {other}"))
        }
    }
}

/// The parse options for an agency's packages at `now`.
pub fn parse_options(lenient: bool, max_body: u64, now: jiff::Timestamp) -> edxml::Options {
    let today = edxml::time::vietnam_time(now).date();
    let mut o = if lenient {
        edxml::Options::lenient(today)
    } else {
        edxml::Options::strict(today)
    };
    o.limits.max_bytes = usize::try_from(max_body).unwrap_or(usize::MAX);
    o
}

/// The refusal for a package that is not accepted on its signature.
fn signature_problem(e: PackageError) -> Problem {
    match e {
        PackageError::Package(rejection) => invalid_package(&rejection),
        PackageError::Unsigned => Problem::signature_required(
            "the package is not signed, and the sender's policy requires a signature",
        ),
        PackageError::Signature(v) => match &v {
            Verdict::Untrusted(f) if f.code == crate::directory::NotAuthorized::CODE => {
                Problem::signer_not_authorized_for_sender(f.reason.clone())
            }
            Verdict::Untrusted(f) => Problem::signer_untrusted(format!("{}: {}", f.code, f.reason)),
            Verdict::Invalid(f) => Problem::signature_invalid(format!("{}: {}", f.code, f.reason)),
            Verdict::Refused(f) => {
                Problem::signature_invalid(format!("refused by policy: {}: {}", f.code, f.reason))
            }
            Verdict::Valid(_) => Problem::internal("a valid verdict reported as an error"),
        },
    }
}

fn invalid_package(r: &edxml::Rejection) -> Problem {
    let items = r
        .errors()
        .map(|p| ProblemItem::new(p.path.clone(), p.code.as_str(), p.detail.clone()))
        .collect();
    Problem::invalid_package(r.to_string(), items)
}

/// Checks a package as the hub accepts it from `agency`: everything but storing it. Returns
/// the parsed package and the verdict to record.
pub fn check(
    hub: &Hub,
    dir: &std::sync::Arc<Directory>,
    agency: &str,
    bytes: &[u8],
    now: jiff::Timestamp,
) -> Result<(Package, VerdictSummary), Problem> {
    let Some(me) = dir.agency(agency) else {
        return Err(Problem::forbidden(format!(
            "{agency} is not in the directory"
        )));
    };
    let may_send = |sender: &str| {
        if sender == agency {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "the package is from {sender}, but the request is authenticated as {agency}"
            )))
        }
    };
    check_with(hub, dir, me.policy, &may_send, bytes, now)
}

/// [`check`] under `policy`, with `may_send` judging the package's sender (the VXP front
/// door applies its system's policy and agencies).
pub fn check_with(
    hub: &Hub,
    dir: &std::sync::Arc<Directory>,
    policy: crate::directory::AgencyPolicy,
    may_send: &dyn Fn(&str) -> Result<(), Problem>,
    bytes: &[u8],
    now: jiff::Timestamp,
) -> Result<(Package, VerdictSummary), Problem> {
    let options = parse_options(policy.lenient, hub.config.limits.max_body, now);
    let started = crate::clock::monotonic();
    let parsed = edxml::parse(bytes, &options);
    hub.metrics.stage(Stage::Parse, started.elapsed());
    let parsed = parsed.map_err(|r| invalid_package(&r))?;
    may_send(parsed.package().sender().as_str())?;
    let (package, verdict) = if parsed.signature().is_none() && !policy.signature_required {
        (parsed.into_package(), VerdictSummary::Unsigned)
    } else {
        let keys = Keys {
            trust: TrustStore::clone(&hub.trust.get()),
            directory: Some(dir.clone()),
            ..Keys::default()
        };
        // Under an optional-signature policy a signature that does not verify is recorded,
        // not refused: keep the package, since verification consumes the parse.
        let fallback = (!policy.signature_required).then(|| parsed.package().clone());
        let started = crate::clock::monotonic();
        let verified = dsig::verify_parsed(parsed, &keys, policy.allow_legacy, now);
        hub.metrics.stage(Stage::Verify, started.elapsed());
        match (verified, fallback) {
            (Ok(verified), _) => {
                let t = verified.report().timings;
                hub.metrics.stage(Stage::Digest, t.digest);
                hub.metrics.stage(Stage::Signature, t.signature);
                hub.metrics.stage(Stage::Chain, t.chain);
                (
                    verified.package().clone(),
                    VerdictSummary::from_report(verified.report()),
                )
            }
            (Err(PackageError::Signature(v)), Some(package)) => {
                match VerdictSummary::not_verified(&v) {
                    Some(summary) => {
                        tracing::warn!(
                            sender = package.sender().as_str(),
                            verdict = %v,
                            "signature present but not verified; accepted, as the sender's policy does not require one"
                        );
                        (package, summary)
                    }
                    None => return Err(signature_problem(PackageError::Signature(v))),
                }
            }
            (Err(e), _) => return Err(signature_problem(e)),
        }
    };
    let unknown: Vec<ProblemItem> = package
        .recipients()
        .iter()
        .enumerate()
        .filter(|(_, r)| dir.agency(r.as_str()).is_none())
        .map(|(i, r)| {
            ProblemItem::new(
                match &package {
                    Package::Edoc(_) => format!("edXMLHeader/MessageHeader/To[{}]/OrganId", i + 1),
                    Package::Status(_) => "MessageHeader/ResponseFor/OrganId".to_owned(),
                },
                "unknown-recipient",
                r.as_str(),
            )
        })
        .collect();
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|p| p.detail.as_str()).collect();
        return Err(Problem::unknown_recipient(
            format!("not in the directory: {}", list.join(", ")),
            unknown,
        ));
    }
    Ok((package, verdict))
}

/// What the store keeps of a checked package.
pub fn new_message(
    dir: &Directory,
    package: &Package,
    verdict: &VerdictSummary,
    bytes: bytes::Bytes,
    now: jiff::Timestamp,
) -> NewMessage {
    let recipients = package
        .recipients()
        .iter()
        .map(|r| Recipient {
            agency: r.as_str().to_owned(),
            mode: match dir.agency(r.as_str()).map(|a| &a.delivery) {
                Some(crate::directory::Delivery::Push { .. }) => store::Mode::Push,
                _ => store::Mode::Pull,
            },
        })
        .collect();
    let (kind, document_id, business, summary) = match package {
        Package::Edoc(e) => (
            Kind::Edoc,
            Some(e.header.document_id.clone()),
            Some(e.business_type().code() as u8),
            Summary {
                number: Some(e.header.code.number.clone()),
                notation: Some(e.header.code.notation.clone()),
                subject: Some(e.header.subject.clone()),
            },
        ),
        Package::Status(s) => (
            Kind::Status,
            Some(s.response_for.document_id.clone()),
            None,
            Summary {
                number: None,
                notation: None,
                subject: Some(format!("status {}: {}", s.code.as_str(), s.code.meaning())),
            },
        ),
    };
    NewMessage {
        kind,
        sender: package.sender().as_str().to_owned(),
        recipients,
        document_id: document_id.filter(|d| !d.is_empty()),
        business_doc_type: business,
        verdict: serde_json::to_string(verdict).unwrap_or_default(),
        summary,
        bytes,
        received_at: now,
    }
}

/// `POST /api/v1/packages`.
pub fn submit(hub: &Hub, req: &ApiRequest) -> ApiResponse {
    let dir = hub.directory();
    let accepted = check(hub, &dir, &req.agency, &req.body, req.now)
        .and_then(|checked| accept(hub, &dir, &req.agency, checked, &req.body, req.now));
    let accepted = match accepted {
        Ok(a) => a,
        Err(p) => return ApiResponse::problem(p),
    };
    let (status, id) = match &accepted {
        Accepted::New { id, .. } => (StatusCode::CREATED, *id),
        Accepted::Duplicate { id, .. } => (StatusCode::OK, *id),
    };
    let loc = format!("/api/v1/packages/{id}");
    let mut resp = ApiResponse::xml(status, accepted.receipt().to_vec());
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp = resp.with_header(MESSAGE_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&loc) {
        resp = resp.with_header(LOCATION, v);
    }
    resp
}

/// Stores a checked package from `agency` with its signed acceptance receipt (durable when
/// this returns), and applies a revocation. Shared by API v1 and the VXP front door.
pub fn accept(
    hub: &Hub,
    dir: &Directory,
    agency: &str,
    (package, verdict): (Package, VerdictSummary),
    body: &bytes::Bytes,
    now: jiff::Timestamp,
) -> Result<Accepted, Problem> {
    let m = new_message(dir, &package, &verdict, body.clone(), now);
    let (sender, recipients, document_id) = (
        m.sender.clone(),
        m.recipients
            .iter()
            .map(|r| r.agency.clone())
            .collect::<Vec<_>>(),
        m.document_id.clone(),
    );
    let signing = std::cell::Cell::new(std::time::Duration::ZERO);
    let signed = |id: MessageId, sha256: &[u8; 32]| {
        let started = crate::clock::monotonic();
        let r = receipts::acceptance(
            &hub.config.id,
            id,
            &sender,
            recipients.clone(),
            document_id.clone(),
            Sha256(*sha256),
            verdict.clone(),
            now,
        );
        let receipt = crate::receipt::sign(&r, &hub.receipt_signer);
        signing.set(started.elapsed());
        hub.metrics.stage(Stage::Receipt, signing.get());
        // A failure refuses the acceptance (the store keeps nothing): never a message
        // accepted without its receipt.
        receipt
            .inspect(|_| hub.metrics.receipt_issued(ReceiptKind::Acceptance))
            .map_err(|e| format!("message {id}: {e}"))
    };
    let kind = m.kind;
    let started = crate::clock::monotonic();
    let accepted = hub.store.accept(m, &signed);
    // The store calls `signed` inside `accept`: its time is the receipt stage's, not the store's.
    hub.metrics.stage(
        Stage::Store,
        started.elapsed().saturating_sub(signing.get()),
    );
    let accepted = accepted.map_err(store_refusal)?;
    let (new, id) = match &accepted {
        Accepted::New { id, .. } => (true, *id),
        Accepted::Duplicate { id, .. } => (false, *id),
    };
    hub.metrics.accepted(kind, !new);
    tracing::info!(message = %id, sender = %agency, new, "package accepted");
    if new {
        // Push workers waiting for their next poll start on it now (pull agencies have none).
        for r in &recipients {
            hub.push_live.wake(r);
        }
        if let Package::Edoc(e) = &package {
            if e.business_type() == BusinessDocType::Revoke {
                revoke(hub, agency, e, id, now);
            }
        }
    }
    Ok(accepted)
}

/// Cancels the not-yet-delivered deliveries of the document a revocation names, for the
/// recipients it is addressed to.
fn revoke(
    hub: &Hub,
    sender: &str,
    e: &crate::edxml::model::Edoc,
    revocation: MessageId,
    now: jiff::Timestamp,
) {
    let doc = &e.header.document_id;
    let named: Vec<&str> = e.header.to.iter().map(|o| o.id.as_str()).collect();
    let earlier = match hub.store.documents(sender, doc) {
        Ok(ids) => ids,
        Err(err) => {
            tracing::error!(message = %revocation, error = %err, "revocation: cannot list the revoked document");
            return;
        }
    };
    for id in earlier.into_iter().filter(|id| *id != revocation) {
        let Ok(Some(m)) = hub.store.message(id) else {
            continue;
        };
        if m.kind != Kind::Edoc || m.business_doc_type == Some(BusinessDocType::Revoke.code() as u8)
        {
            continue;
        }
        for (index, recipient) in m.recipients.iter().enumerate() {
            if !named.contains(&recipient.as_str()) {
                continue;
            }
            let d = DeliveryId {
                message: id,
                index: index as u16,
            };
            match hub
                .store
                .cancel_delivery(d, &format!("revoked by message {revocation}"), now)
            {
                Ok(_) => tracing::info!(message = %id, delivery = %d, "revoked before delivery"),
                Err(StoreError::InvalidTransition { .. }) => {}
                Err(err) => {
                    tracing::error!(message = %id, delivery = %d, error = %err, "revocation: cancel failed")
                }
            }
        }
    }
}

/// One recipient in the sender's view.
#[derive(Serialize)]
struct RecipientView {
    recipient: String,
    delivery_id: String,
    mode: store::Mode,
    #[serde(flatten)]
    state: State,
    attempts: u32,
    updated_at: jiff::Timestamp,
    receipts: Vec<String>,
}

/// `GET /api/v1/packages/{id}`: per-recipient state, attempts, timestamps, receipt ids.
pub fn view(hub: &Hub, req: &ApiRequest, id: &str) -> ApiResponse {
    let not_found = || ApiResponse::problem(Problem::not_found(format!("no package {id}")));
    let Ok(mid) = id.parse::<MessageId>() else {
        return not_found();
    };
    let m = match hub.store.message(mid) {
        Ok(Some(m)) if m.sender == req.agency => m,
        Ok(_) => return not_found(),
        Err(e) => return store_problem(e),
    };
    let deliveries = match hub.store.deliveries(mid) {
        Ok(d) => d,
        Err(e) => return store_problem(e),
    };
    let recipients: Vec<RecipientView> = deliveries
        .into_iter()
        .map(|d| {
            let receipts = store::receipt_kind(&d.state)
                .and_then(receipts::kind_of)
                .map(|k| ReceiptRef::Delivery(d.id, k).id())
                .into_iter()
                .collect();
            RecipientView {
                recipient: d.recipient,
                delivery_id: d.id.to_string(),
                mode: d.mode,
                state: d.state,
                attempts: d.attempts,
                updated_at: d.updated_at,
                receipts,
            }
        })
        .collect();
    #[derive(Serialize)]
    struct View {
        id: String,
        kind: Kind,
        sender: String,
        document_id: Option<String>,
        business_doc_type: Option<u8>,
        sha256: String,
        size: u64,
        received_at: jiff::Timestamp,
        verdict: VerdictSummary,
        acceptance_receipt: String,
        recipients: Vec<RecipientView>,
    }
    let verdict = receipts::recorded_verdict(&m);
    ApiResponse::json(
        StatusCode::OK,
        &View {
            id: m.id.to_string(),
            kind: m.kind,
            sender: m.sender,
            document_id: m.document_id,
            business_doc_type: m.business_doc_type,
            sha256: m.digest,
            size: m.size,
            received_at: m.received_at,
            verdict,
            acceptance_receipt: crate::receipt::receipt_id(ReceiptKind::Acceptance, id),
            recipients,
        },
    )
}
