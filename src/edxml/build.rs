//! Building packages: model values → strict, correctly escaped UTF-8 edXML.
//!
//! Output uses one default namespace declaration on the root, QCVN 102 element order and
//! two-space indentation. Every build is read back in strict mode before it is returned, so
//! a builder result is always a package the hub would accept (and that `schemas/` validates);
//! input that cannot make one (an empty subject, a bad date, a duplicate recipient…) is
//! refused with the same problems validation reports.

use jiff::civil::Date;

use super::NS;
use super::attachment;
use super::model::*;
use super::parse::{Options, parse};
use super::problem::Rejection;
use super::time::{format_date, format_timestamp};
use crate::xml::write::Writer;

/// An attachment to include in a new package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAttachment {
    /// `ContentId`; `None` derives `cid:att-<n>-<first 8 bytes of the SHA-256 in hex>`.
    pub content_id: Option<String>,
    /// `AttachmentName`, usually the file name.
    pub name: String,
    /// `Description`.
    pub description: Option<String>,
    /// `ContentType`, e.g. `application/pdf`.
    pub content_type: String,
    /// The payload.
    pub data: Vec<u8>,
}

/// A built package: its bytes and the model read back from them.
#[derive(Clone, Debug)]
pub struct Built {
    /// The package.
    pub bytes: Vec<u8>,
    /// The model the bytes mean (read back in strict mode).
    pub package: Package,
}

/// Builds an edoc package; the manifest is derived from `attachments`.
///
/// `today` (Vietnam date) is what the read-back checks the promulgation date against.
pub fn edoc(
    header: &MessageHeader,
    trace: &TraceHeaderList,
    attachments: &[NewAttachment],
    today: Date,
) -> Result<Built, Rejection> {
    let ids: Vec<String> = attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.content_id.clone().unwrap_or_else(|| {
                format!("cid:att-{}-{}", i + 1, &Sha256::of(&a.data).hex()[..16])
            })
        })
        .collect();

    let mut w = Writer::with_declaration();
    w.open_with("edXML", &[("xmlns", NS)]);
    w.open("edXMLEnvelope");
    w.open("edXMLHeader");
    message_header(&mut w, header);
    trace_list(&mut w, trace);
    w.close("edXMLHeader");
    w.open("edXMLBody");
    w.open_with("edXMLManifest", &[("version", "1.0")]);
    for (a, id) in attachments.iter().zip(&ids) {
        w.open("Reference");
        w.leaf("ContentId", id);
        w.leaf("ContentType", &a.content_type);
        opt(&mut w, "Description", &a.description);
        w.leaf("AttachmentName", &a.name);
        w.close("Reference");
    }
    w.close("edXMLManifest");
    w.close("edXMLBody");
    w.close("edXMLEnvelope");
    if !attachments.is_empty() {
        w.open("AttachmentEncoded");
        for (a, id) in attachments.iter().zip(&ids) {
            w.open("Attachment");
            w.leaf("ContentId", id);
            w.leaf("AttachmentName", &a.name);
            opt(&mut w, "Description", &a.description);
            w.leaf("ContentType", &a.content_type);
            w.leaf_raw(
                "ContentTransferEncoded",
                &format!("\n{}\n", attachment::encode_wrapped(&a.data)),
            );
            w.close("Attachment");
        }
        w.close("AttachmentEncoded");
    }
    w.close("edXML");
    finish(w, today)
}

/// Builds a status package.
pub fn status(status: &Status, today: Date) -> Result<Built, Rejection> {
    let mut w = Writer::with_declaration();
    w.open_with("edXML", &[("xmlns", NS)]);
    w.open("edXMLEnvelope");
    w.open("edXMLHeader");
    w.open("MessageHeader");
    organization(&mut w, "From", &status.from);
    let r = &status.response_for;
    w.open("ResponseFor");
    w.leaf("OrganId", r.organ_id.as_str());
    w.leaf("Code", &r.code);
    if let Some(d) = r.promulgation_date {
        w.leaf("PromulgationDate", &format_date(d));
    }
    w.leaf("DocumentId", &r.document_id);
    w.close("ResponseFor");
    if let Some(s) = &status.staff {
        staff(&mut w, s);
    }
    w.leaf("StatusCode", status.code.as_str());
    opt(&mut w, "Description", &status.description);
    if let Some(t) = status.timestamp {
        w.leaf("Timestamp", &format_timestamp(t));
    }
    w.close("MessageHeader");
    w.close("edXMLHeader");
    w.close("edXMLEnvelope");
    w.close("edXML");
    finish(w, today)
}

fn finish(w: Writer, today: Date) -> Result<Built, Rejection> {
    let bytes = w.finish().into_bytes();
    let package = parse(&bytes, &Options::strict(today))?.into_package();
    Ok(Built { bytes, package })
}

fn opt(w: &mut Writer, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        w.leaf(name, v);
    }
}

fn opt_num(w: &mut Writer, name: &str, value: Option<u32>) {
    if let Some(v) = value {
        w.leaf(name, &v.to_string());
    }
}

fn opt_flag(w: &mut Writer, name: &str, value: Option<bool>) {
    if let Some(v) = value {
        w.leaf(name, if v { "1" } else { "0" });
    }
}

fn organization(w: &mut Writer, element: &str, o: &Organization) {
    w.open(element);
    w.leaf("OrganId", o.id.as_str());
    opt(w, "OrganizationInCharge", &o.in_charge);
    w.leaf("OrganName", &o.name);
    opt(w, "OrganAdd", &o.address);
    opt(w, "Email", &o.email);
    opt(w, "Telephone", &o.telephone);
    opt(w, "Fax", &o.fax);
    opt(w, "Website", &o.website);
    w.close(element);
}

fn staff(w: &mut Writer, s: &StaffInfo) {
    w.open("StaffInfo");
    opt(w, "Department", &s.department);
    opt(w, "Staff", &s.staff);
    opt(w, "Mobile", &s.mobile);
    opt(w, "Email", &s.email);
    opt(w, "DepartmentId", &s.department_id);
    opt(w, "StaffId", &s.staff_id);
    w.close("StaffInfo");
}

fn message_header(w: &mut Writer, h: &MessageHeader) {
    w.open("MessageHeader");
    organization(w, "From", &h.from);
    for to in &h.to {
        organization(w, "To", to);
    }
    w.open("Code");
    w.leaf("CodeNumber", &h.code.number);
    w.leaf("CodeNotation", &h.code.notation);
    w.close("Code");
    w.open("PromulgationInfo");
    opt(w, "Place", &h.promulgation.place);
    w.leaf("PromulgationDate", &format_date(h.promulgation.date));
    w.close("PromulgationInfo");
    w.open("DocumentType");
    w.leaf("Type", &h.document_type.kind.to_string());
    opt_num(w, "TypeDetail", h.document_type.detail);
    opt(w, "TypeName", &h.document_type.name);
    w.close("DocumentType");
    w.leaf("Subject", &h.subject);
    opt(w, "Content", &h.content);
    if let Some(s) = &h.signer {
        w.open("SignerInfo");
        opt(w, "Competence", &s.competence);
        opt(w, "Position", &s.position);
        opt(w, "FullName", &s.full_name);
        w.close("SignerInfo");
    }
    if let Some(d) = h.due_date {
        w.leaf("DueDate", &format_date(d));
    }
    if !h.to_places.is_empty() {
        w.open("ToPlaces");
        for p in &h.to_places {
            w.leaf("Place", p);
        }
        w.close("ToPlaces");
    }
    if let Some(o) = &h.other_info {
        w.open("OtherInfo");
        opt_num(w, "Priority", o.priority.map(Priority::code));
        opt(w, "SphereOfPromulgation", &o.sphere_of_promulgation);
        opt(w, "TyperNotation", &o.typer_notation);
        opt_num(w, "PromulgationAmount", o.promulgation_amount);
        opt_num(w, "PageAmount", o.page_amount);
        if !o.appendixes.is_empty() {
            w.open("Appendixes");
            for a in &o.appendixes {
                w.leaf("Appendix", a);
            }
            w.close("Appendixes");
        }
        if let Some(d) = o.direction {
            w.leaf("Direction", if d { "true" } else { "false" });
        }
        w.close("OtherInfo");
    }
    for r in &h.response_for {
        w.open("ResponseFor");
        if let Some(id) = &r.organ_id {
            w.leaf("OrganId", id.as_str());
        }
        opt(w, "Code", &r.code);
        if let Some(d) = r.promulgation_date {
            w.leaf("PromulgationDate", &format_date(d));
        }
        opt(w, "DocumentId", &r.document_id);
        w.close("ResponseFor");
    }
    opt_num(w, "SteeringType", h.steering_type);
    w.leaf("DocumentId", &h.document_id);
    if !h.response_for_task.is_empty() {
        w.open("ResponseForTask");
        for t in &h.response_for_task {
            w.leaf("TaskCode", t);
        }
        w.close("ResponseForTask");
    }
    opt(w, "ApplicationType", &h.application_type);
    w.close("MessageHeader");
}

fn trace_list(w: &mut Writer, t: &TraceHeaderList) {
    w.open("TraceHeaderList");
    for h in &t.headers {
        w.open("TraceHeader");
        w.leaf("OrganId", h.organ_id.as_str());
        w.leaf("Timestamp", &format_timestamp(h.timestamp));
        w.close("TraceHeader");
    }
    if let Some(b) = &t.business {
        w.open("Bussiness");
        w.leaf("BussinessDocType", &b.doc_type.code().to_string());
        opt(w, "BussinessDocReason", &b.reason);
        opt(w, "DocumentId", &b.document_id);
        opt_flag(w, "Paper", b.paper);
        if let Some(info) = &b.document_info {
            w.open("BussinessDocumentInfo");
            opt_flag(w, "DocumentInfo", info.document_info);
            opt_flag(w, "DocumentReceiver", info.document_receiver);
            if !info.receivers.is_empty() {
                w.open("ReceiverList");
                for r in &info.receivers {
                    w.open("Receiver");
                    w.leaf("OrganId", r.organ_id.as_str());
                    w.leaf("ReceiverType", &r.receiver_type.to_string());
                    w.close("Receiver");
                }
                w.close("ReceiverList");
            }
            w.close("BussinessDocumentInfo");
        }
        if !b.replacements.is_empty() {
            w.open("ReplacementInfoList");
            for r in &b.replacements {
                w.open("ReplacementInfo");
                w.leaf("DocumentId", &r.document_id);
                w.open("OrganIdList");
                for id in &r.organ_ids {
                    w.leaf("OrganId", id.as_str());
                }
                w.close("OrganIdList");
                w.close("ReplacementInfo");
            }
            w.close("ReplacementInfoList");
        }
        if let Some(s) = &b.staff {
            staff(w, s);
        }
        w.close("Bussiness");
    }
    w.close("TraceHeaderList");
}
