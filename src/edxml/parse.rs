//! Bytes → [`ParsedPackage`]: the XML tree, the typed model, and every problem found.
//!
//! Reading is pure: it takes the bytes and [`Options`] (mode, today's date, limits) and
//! touches no clock or file. It never stops at the first problem: each element is checked
//! and its children visited even when a sibling failed, so a report lists everything wrong
//! at once. The typed [`Package`] is built only when no problem is an error.
//!
//! Elements are matched by namespace URI and local name, never by prefix, and in any order.
//! The original bytes are kept: nothing here serializes XML.

use std::collections::HashMap;

use jiff::civil::{Date, DateTime};

use super::attachment;
use super::model::*;
use super::problem::{Code, Mode, Problem, Rejection, Severity};
use super::time::{self, Spelling};
use super::{AgencyId, DSIG_NS, NS};
use crate::xml::{Document, Limits, NodeId, NodeKind, Span, XmlError};

/// How to read a package.
#[derive(Clone, Debug)]
pub struct Options {
    /// Strict (default) or lenient.
    pub mode: Mode,
    /// Today's date in Vietnam: promulgation dates after it are refused in strict mode.
    pub today: Date,
    /// Parser limits.
    pub limits: Limits,
}

impl Options {
    /// Strict reading with default limits.
    pub fn strict(today: Date) -> Self {
        Self {
            mode: Mode::Strict,
            today,
            limits: Limits::default(),
        }
    }

    /// Lenient reading with default limits.
    pub fn lenient(today: Date) -> Self {
        Self {
            mode: Mode::Lenient,
            ..Self::strict(today)
        }
    }
}

/// Where the package's `Signature` element is. It is located here, not verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureLocation {
    /// The element.
    pub node: NodeId,
    /// Its bytes in the package.
    pub span: Span,
    /// Whether it is in the XML-Signature namespace (`false`: the VNPT SDK's namespace bug).
    pub in_dsig_namespace: bool,
}

/// A valid package: the original bytes, their tree, the model and any warnings.
#[derive(Debug)]
pub struct ParsedPackage<'a> {
    doc: Document<'a>,
    package: Package,
    warnings: Vec<Problem>,
    signature: Option<SignatureLocation>,
    /// `ContentTransferEncoded` elements, parallel to [`Edoc::attachments`].
    payloads: Vec<NodeId>,
    envelope: NodeId,
}

impl<'a> ParsedPackage<'a> {
    /// The package exactly as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.doc.input()
    }

    /// The XML tree the model was read from.
    pub fn document(&self) -> &Document<'a> {
        &self.doc
    }

    /// The typed model.
    pub fn package(&self) -> &Package {
        &self.package
    }

    /// Takes the model, dropping the tree.
    pub fn into_package(self) -> Package {
        self.package
    }

    /// Problems that lenient mode tolerated (empty in strict mode) and unknown status codes.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The `Signature` element, if the package has one.
    pub fn signature(&self) -> Option<SignatureLocation> {
        self.signature
    }

    /// Bytes of `edXMLEnvelope`.
    pub fn envelope_span(&self) -> Span {
        self.doc.node(self.envelope).span
    }

    /// Bytes of attachment `index`'s base64 text, as received.
    pub fn attachment_span(&self, index: usize) -> Option<Span> {
        self.payloads.get(index).map(|&n| self.doc.content_span(n))
    }

    /// Decodes attachment `index`. It was decoded once during validation, so this succeeds
    /// for every index below the number of attachments.
    pub fn attachment_data(&self, index: usize) -> Option<Vec<u8>> {
        let node = *self.payloads.get(index)?;
        attachment::decode(&self.doc.text(node)).ok()
    }
}

/// Reads and validates a package. On success the package has no error (it may have
/// warnings); otherwise every problem found is returned.
pub fn parse<'a>(bytes: &'a [u8], options: &Options) -> Result<ParsedPackage<'a>, Rejection> {
    let doc = Document::parse(bytes, &options.limits).map_err(|e| Rejection {
        problems: vec![xml_problem(&e)],
    })?;
    let mut cx = Cx {
        doc: &doc,
        mode: options.mode,
        today: options.today,
        problems: Vec::new(),
    };
    let read = cx.package();
    let mut problems = cx.problems;
    problems.sort_by_key(|p| p.offset);
    match read {
        Some(r) if !problems.iter().any(Problem::is_error) => Ok(ParsedPackage {
            package: r.package,
            warnings: problems,
            signature: r.signature,
            payloads: r.payloads,
            envelope: r.envelope,
            doc,
        }),
        _ => {
            debug_assert!(problems.iter().any(Problem::is_error));
            Err(Rejection { problems })
        }
    }
}

/// Every problem in a package (errors and warnings); empty when valid without remarks.
pub fn validate(bytes: &[u8], options: &Options) -> Vec<Problem> {
    match parse(bytes, options) {
        Ok(p) => p.warnings,
        Err(r) => r.problems,
    }
}

fn xml_problem(e: &XmlError) -> Problem {
    let code = match e {
        XmlError::TooLarge { .. } | XmlError::LimitExceeded { .. } => Code::LimitExceeded,
        XmlError::Doctype { .. } => Code::DoctypeForbidden,
        XmlError::Encoding { .. } => Code::UnsupportedEncoding,
        XmlError::Syntax { .. } => Code::NotWellFormed,
    };
    Problem {
        path: "edXML".into(),
        code,
        detail: e.to_string(),
        severity: Severity::Error,
        offset: e.offset(),
    }
}

/// What the walk yields besides problems.
struct Read {
    package: Package,
    signature: Option<SignatureLocation>,
    payloads: Vec<NodeId>,
    envelope: NodeId,
}

// Element names, by parent. Order here is the order the builder writes.
const ROOT: &[&str] = &["edXMLEnvelope", "AttachmentEncoded"];
const ENVELOPE: &[&str] = &["edXMLHeader", "edXMLBody"];
const HEADER: &[&str] = &["MessageHeader", "TraceHeaderList"];
const EDOC_MESSAGE_HEADER: &[&str] = &[
    "From",
    "To",
    "Code",
    "PromulgationInfo",
    "DocumentType",
    "Subject",
    "Content",
    "SignerInfo",
    "DueDate",
    "ToPlaces",
    "OtherInfo",
    "ResponseFor",
    "SteeringType",
    "DocumentId",
    "ResponseForTask",
    "ApplicationType",
];
const STATUS_MESSAGE_HEADER: &[&str] = &[
    "From",
    "ResponseFor",
    "StaffInfo",
    "StatusCode",
    "Description",
    "Timestamp",
];
const ORGANIZATION: &[&str] = &[
    "OrganId",
    "OrganizationInCharge",
    "OrganName",
    "OrganAdd",
    "Email",
    "Telephone",
    "Fax",
    "Website",
];
const CODE: &[&str] = &["CodeNumber", "CodeNotation"];
const PROMULGATION: &[&str] = &["Place", "PromulgationDate"];
const DOCUMENT_TYPE: &[&str] = &["Type", "TypeDetail", "TypeName"];
const SIGNER: &[&str] = &["Competence", "Position", "FullName"];
const PLACES: &[&str] = &["Place"];
const OTHER_INFO: &[&str] = &[
    "Priority",
    "SphereOfPromulgation",
    "TyperNotation",
    "PromulgationAmount",
    "PageAmount",
    "Appendixes",
    "Direction",
];
const APPENDIXES: &[&str] = &["Appendix"];
const RESPONSE_FOR: &[&str] = &["OrganId", "Code", "PromulgationDate", "DocumentId"];
const TASKS: &[&str] = &["TaskCode"];
const TRACE_LIST: &[&str] = &["TraceHeader", "Bussiness"];
const TRACE: &[&str] = &["OrganId", "Timestamp"];
const BUSINESS: &[&str] = &[
    "BussinessDocType",
    "BussinessDocReason",
    "DocumentId",
    "Paper",
    "BussinessDocumentInfo",
    "ReplacementInfoList",
    "StaffInfo",
];
const DOCUMENT_INFO: &[&str] = &["DocumentInfo", "DocumentReceiver", "ReceiverList"];
const RECEIVER_LIST: &[&str] = &["Receiver"];
const RECEIVER: &[&str] = &["OrganId", "ReceiverType"];
const REPLACEMENT_LIST: &[&str] = &["ReplacementInfo"];
const REPLACEMENT: &[&str] = &["DocumentId", "OrganIdList"];
const ORGAN_ID_LIST: &[&str] = &["OrganId"];
const STAFF: &[&str] = &[
    "Department",
    "Staff",
    "Mobile",
    "Email",
    "DepartmentId",
    "StaffId",
];
const BODY: &[&str] = &["edXMLManifest"];
const MANIFEST: &[&str] = &["Reference"];
const REFERENCE: &[&str] = &["ContentId", "ContentType", "Description", "AttachmentName"];
const ATTACHMENTS: &[&str] = &["Attachment"];
const ATTACHMENT: &[&str] = &[
    "ContentId",
    "AttachmentName",
    "Description",
    "ContentType",
    "ContentTransferEncoded",
];

/// Every element name edXML defines anywhere: a known name in the wrong place is
/// `unexpected-element`, any other name `unknown-element`.
const ALL_GROUPS: &[&[&str]] = &[
    ROOT,
    ENVELOPE,
    HEADER,
    EDOC_MESSAGE_HEADER,
    STATUS_MESSAGE_HEADER,
    ORGANIZATION,
    CODE,
    PROMULGATION,
    DOCUMENT_TYPE,
    SIGNER,
    OTHER_INFO,
    APPENDIXES,
    TASKS,
    TRACE_LIST,
    TRACE,
    BUSINESS,
    DOCUMENT_INFO,
    RECEIVER_LIST,
    RECEIVER,
    REPLACEMENT_LIST,
    REPLACEMENT,
    STAFF,
    BODY,
    MANIFEST,
    REFERENCE,
    ATTACHMENTS,
    ATTACHMENT,
];

// Length limits (characters), from QCVN practice (EDXML.md §1.3), generous end.
const LEN_NAME: usize = 200;
const LEN_ADDRESS: usize = 500;
const LEN_EMAIL: usize = 100;
const LEN_PHONE: usize = 50;
const LEN_CODE: usize = 50;
const LEN_TEXT: usize = 500;
const LEN_LONG_TEXT: usize = 2000;
const LEN_SHORT: usize = 100;
const LEN_PLACE: usize = 50;
const LEN_TO_PLACE: usize = 150;
const LEN_FULL_NAME: usize = 50;
const LEN_TYPER: usize = 10;
const LEN_DOCUMENT_ID: usize = 200;
const LEN_CONTENT_ID: usize = 255;

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}/{name}")
    }
}

/// The child elements of one element, grouped by local name.
struct Kids<'d> {
    path: String,
    node: NodeId,
    groups: Vec<(&'d str, Vec<NodeId>)>,
    signatures: Vec<(NodeId, bool)>,
}

impl Kids<'_> {
    fn all(&self, name: &str) -> &[NodeId] {
        self.groups
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

struct Cx<'d, 'a> {
    doc: &'d Document<'a>,
    mode: Mode,
    today: Date,
    problems: Vec<Problem>,
}

impl<'d, 'a> Cx<'d, 'a> {
    fn report(&mut self, severity: Severity, path: &str, node: NodeId, code: Code, detail: String) {
        self.problems.push(Problem {
            path: path.to_owned(),
            code,
            detail,
            severity,
            offset: self.doc.node(node).span.start,
        });
    }

    /// An error in every mode.
    fn error(&mut self, path: &str, node: NodeId, code: Code, detail: impl Into<String>) {
        self.report(Severity::Error, path, node, code, detail.into());
    }

    /// An error in strict mode, a warning in lenient mode.
    fn strict(&mut self, path: &str, node: NodeId, code: Code, detail: impl Into<String>) {
        debug_assert!(code.is_tolerated_when_lenient());
        let severity = match self.mode {
            Mode::Strict => Severity::Error,
            Mode::Lenient => Severity::Warning,
        };
        self.report(severity, path, node, code, detail.into());
    }

    /// A warning in every mode.
    fn warn(&mut self, path: &str, node: NodeId, code: Code, detail: impl Into<String>) {
        self.report(Severity::Warning, path, node, code, detail.into());
    }

    /// Groups the children of `node`; reports text, unknown and foreign elements, and
    /// `Signature` elements unless `signature_allowed`.
    fn kids(
        &mut self,
        node: NodeId,
        path: &str,
        known: &[&'static str],
        signature_allowed: bool,
    ) -> Kids<'d> {
        let doc = self.doc;
        let mut kids = Kids {
            path: path.to_owned(),
            node,
            groups: Vec::new(),
            signatures: Vec::new(),
        };
        let Some(el) = doc.element(node) else {
            return kids;
        };
        for &child in &el.children {
            match &doc.node(child).kind {
                NodeKind::Text(t) if !t.trim().is_empty() => {
                    let shown: String = t.trim().chars().take(40).collect();
                    // Paths start below the envelope, so its own text and the root's need names.
                    let at = match path {
                        "" if node == doc.root() => "edXML",
                        "" => "edXMLEnvelope",
                        p => p,
                    };
                    self.strict(
                        at,
                        child,
                        Code::UnexpectedText,
                        format!("text {shown:?} where only elements belong"),
                    );
                }
                NodeKind::Element(e) => {
                    let ns = e.namespace.as_deref();
                    let child_path = join(path, e.local);
                    let is_signature =
                        e.local == "Signature" && matches!(ns, None | Some(NS) | Some(DSIG_NS));
                    if is_signature {
                        if signature_allowed {
                            kids.signatures.push((child, ns == Some(DSIG_NS)));
                        } else {
                            self.strict(
                                &child_path,
                                child,
                                Code::UnknownElement,
                                "a Signature belongs only at the end of edXMLHeader",
                            );
                        }
                    } else if ns == Some(NS) && known.contains(&e.local) {
                        match kids.groups.iter_mut().find(|(n, _)| *n == e.local) {
                            Some((_, v)) => v.push(child),
                            None => kids.groups.push((e.local, vec![child])),
                        }
                    } else if ns == Some(NS) {
                        let code = if ALL_GROUPS.iter().any(|g| g.contains(&e.local)) {
                            Code::UnexpectedElement
                        } else {
                            Code::UnknownElement
                        };
                        self.strict(
                            &child_path,
                            child,
                            code,
                            format!("{} does not belong here", e.local),
                        );
                    } else {
                        self.strict(
                            &child_path,
                            child,
                            Code::UnknownElement,
                            format!(
                                "{{{}}}{} is not an edXML element",
                                ns.unwrap_or(""),
                                e.local
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
        kids
    }

    /// The single child `name`: missing is an error, a repeat is an error.
    fn one(&mut self, k: &Kids<'_>, name: &str) -> Option<(NodeId, String)> {
        let found = self.opt(k, name);
        if found.is_none() {
            let path = join(&k.path, name);
            self.error(
                &path,
                k.node,
                Code::MissingElement,
                format!("{name} is required"),
            );
        }
        found
    }

    /// The child `name` if present; a repeat is an error.
    fn opt(&mut self, k: &Kids<'_>, name: &str) -> Option<(NodeId, String)> {
        let all = k.all(name);
        let path = join(&k.path, name);
        for &extra in all.iter().skip(1) {
            self.error(
                &path,
                extra,
                Code::DuplicateElement,
                format!("{name} may appear only once"),
            );
        }
        all.first().map(|&n| (n, path))
    }

    /// Every child `name`, with indexed paths.
    fn many(&self, k: &Kids<'_>, name: &str) -> Vec<(NodeId, String)> {
        k.all(name)
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, format!("{}[{}]", join(&k.path, name), i + 1)))
            .collect()
    }

    /// The text of a leaf element; child elements are reported.
    fn leaf(&mut self, node: NodeId, path: &str) -> String {
        self.leaf_text(node, path).into_owned()
    }

    /// [`Cx::leaf`] without the copy: borrows the text when the input holds it verbatim.
    fn leaf_text(&mut self, node: NodeId, path: &str) -> std::borrow::Cow<'d, str> {
        let doc = self.doc;
        for (child, e) in doc.child_elements(node) {
            self.strict(
                &join(path, e.local),
                child,
                Code::UnexpectedElement,
                format!(
                    "{} cannot contain elements",
                    path.rsplit('/').next().unwrap_or(path)
                ),
            );
        }
        doc.text(node)
    }

    /// Free text: kept exactly; `required` text must not be blank.
    fn text(&mut self, node: NodeId, path: &str, max: usize, required: bool) -> Option<String> {
        let t = self.leaf(node, path);
        if required && t.trim().is_empty() {
            self.error(path, node, Code::EmptyValue, "must not be empty");
            return None;
        }
        let n = t.chars().count();
        if n > max {
            self.strict(
                path,
                node,
                Code::TooLong,
                format!("{n} characters, at most {max}"),
            );
        }
        Some(t)
    }

    /// `ResponseFor/Code`: `number/notation`.
    fn response_code(&mut self, node: NodeId, path: &str) -> Option<String> {
        let t = self.text(node, path, LEN_CODE * 2 + 1, true)?;
        if !matches!(t.trim().split_once('/'), Some((n, x)) if !n.is_empty() && !x.is_empty()) {
            self.strict(
                path,
                node,
                Code::ValueOutOfRange,
                format!("{t:?}: expected number/notation, e.g. 7816/VPCP-TTĐT"),
            );
        }
        Some(t)
    }

    /// A MIME type `type/subtype[;parameters]`.
    fn content_type(&mut self, node: NodeId, path: &str) -> Option<String> {
        let t = self.text(node, path, LEN_SHORT, true)?.trim().to_owned();
        let token = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
        };
        let essence = t.split(';').next().unwrap_or("");
        if !matches!(essence.split_once('/'), Some((a, b)) if token(a) && token(b)) {
            self.strict(
                path,
                node,
                Code::ValueOutOfRange,
                format!("{t:?}: expected a MIME type such as application/pdf"),
            );
        }
        Some(t)
    }

    fn req_text(&mut self, k: &Kids<'_>, name: &str, max: usize) -> Option<String> {
        let (n, p) = self.one(k, name)?;
        self.text(n, &p, max, true)
    }

    fn opt_text(&mut self, k: &Kids<'_>, name: &str, max: usize) -> Option<String> {
        let (n, p) = self.opt(k, name)?;
        self.text(n, &p, max, false)
    }

    /// A token (identifier, date, number): surrounding whitespace removed.
    fn token(&mut self, node: NodeId, path: &str) -> String {
        self.leaf(node, path).trim().to_owned()
    }

    fn req<T>(
        &mut self,
        k: &Kids<'_>,
        name: &str,
        f: impl FnOnce(&mut Self, NodeId, &str) -> Option<T>,
    ) -> Option<T> {
        let (n, p) = self.one(k, name)?;
        f(self, n, &p)
    }

    fn opt_with<T>(
        &mut self,
        k: &Kids<'_>,
        name: &str,
        f: impl FnOnce(&mut Self, NodeId, &str) -> Option<T>,
    ) -> Option<T> {
        let (n, p) = self.opt(k, name)?;
        f(self, n, &p)
    }

    fn agency(&mut self, node: NodeId, path: &str) -> Option<AgencyId> {
        let s = self.token(node, path);
        match AgencyId::parse(&s) {
            Ok(id) => Some(id),
            Err(strict) => match AgencyId::parse_lenient(&s) {
                Ok(id) => {
                    self.strict(path, node, Code::InvalidAgencyId, format!("{s:?}"));
                    Some(id)
                }
                Err(_) => {
                    self.error(
                        path,
                        node,
                        Code::InvalidAgencyId,
                        format!("{s:?}: {}", strict.reason),
                    );
                    None
                }
            },
        }
    }

    fn date(&mut self, node: NodeId, path: &str) -> Option<Date> {
        self.dated(
            node,
            path,
            time::parse_date,
            Code::InvalidDate,
            "a date YYYY/MM/DD",
        )
    }

    fn timestamp(&mut self, node: NodeId, path: &str) -> Option<DateTime> {
        self.dated(
            node,
            path,
            time::parse_timestamp,
            Code::InvalidTimestamp,
            "a timestamp YYYY/MM/DD HH:mm:ss",
        )
    }

    /// A date or timestamp: the standard spelling is accepted, a legacy one is tolerated only
    /// when lenient, anything else is `invalid`.
    fn dated<T>(
        &mut self,
        node: NodeId,
        path: &str,
        parse: fn(&str) -> Option<(T, Spelling)>,
        invalid: Code,
        expected: &str,
    ) -> Option<T> {
        let s = self.token(node, path);
        match parse(&s) {
            Some((v, Spelling::Standard)) => Some(v),
            Some((v, Spelling::Legacy)) => {
                self.strict(
                    path,
                    node,
                    Code::LegacyDateFormat,
                    format!("{s:?}: expected {expected}"),
                );
                Some(v)
            }
            None => {
                self.error(path, node, invalid, format!("{s:?}: expected {expected}"));
                None
            }
        }
    }

    fn uint(&mut self, node: NodeId, path: &str) -> Option<u32> {
        let s = self.token(node, path);
        let parsed = (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten();
        if parsed.is_none() {
            self.error(
                path,
                node,
                Code::InvalidInteger,
                format!("{s:?}: expected a non-negative integer"),
            );
        }
        parsed
    }

    /// A `0`/`1` flag.
    fn flag(&mut self, node: NodeId, path: &str) -> Option<bool> {
        match self.uint(node, path)? {
            0 => Some(false),
            1 => Some(true),
            n => {
                self.error(
                    path,
                    node,
                    Code::ValueOutOfRange,
                    format!("{n}: expected 0 or 1"),
                );
                None
            }
        }
    }

    /// An `xs:boolean`.
    fn boolean(&mut self, node: NodeId, path: &str) -> Option<bool> {
        match self.token(node, path).as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            other => {
                self.error(
                    path,
                    node,
                    Code::ValueOutOfRange,
                    format!("{other:?}: expected true or false"),
                );
                None
            }
        }
    }

    // ----- the package -----

    fn package(&mut self) -> Option<Read> {
        let doc = self.doc;
        let root = doc.root();
        let el = doc.element(root)?;
        if el.namespace.as_deref() != Some(NS) {
            self.error(
                "edXML",
                root,
                Code::WrongNamespace,
                format!(
                    "root element {} is in namespace {:?}; expected {NS:?}",
                    el.local,
                    el.namespace.as_deref().unwrap_or("")
                ),
            );
            return None;
        }
        if el.local != "edXML" {
            self.error(
                "edXML",
                root,
                Code::WrongRoot,
                format!("root element is {}; expected edXML", el.local),
            );
            return None;
        }
        let root_kids = self.kids(root, "", ROOT, false);
        let (envelope, _) = self.one(&root_kids, "edXMLEnvelope")?;
        let env = self.kids(envelope, "", ENVELOPE, false);
        let (header, header_path) = self.one(&env, "edXMLHeader")?;
        let hk = self.kids(header, &header_path, HEADER, true);
        let signature = self.signature(&hk);
        let (mh, mh_path) = self.one(&hk, "MessageHeader")?;

        let is_status = doc.child_elements(mh).any(|(_, e)| e.is(NS, "StatusCode"))
            || (!doc.child_elements(mh).any(|(_, e)| e.is(NS, "To")) && !hk.has("TraceHeaderList"));

        let (package, payloads) = if is_status {
            for (name, parent) in [("TraceHeaderList", &hk), ("edXMLBody", &env)] {
                for &n in parent.all(name) {
                    self.strict(
                        &join(&parent.path, name),
                        n,
                        Code::UnexpectedElement,
                        "a status package has no trace, body or attachments",
                    );
                }
            }
            for &n in root_kids.all("AttachmentEncoded") {
                self.strict(
                    "AttachmentEncoded",
                    n,
                    Code::UnexpectedElement,
                    "a status package has no trace, body or attachments",
                );
            }
            (self.status(mh, &mh_path).map(Package::Status), Vec::new())
        } else {
            let header = self.edoc_header(mh, &mh_path);
            let trace = self.trace(&hk);
            let manifest = self.manifest(&env);
            let (attachments, payloads) = self.attachments(&root_kids);
            if let Some(m) = &manifest {
                self.match_attachments(m, &attachments);
            }
            let package = header.and_then(|header| {
                Some(Package::Edoc(Edoc {
                    header,
                    trace: trace?,
                    manifest: manifest?.into_iter().map(|(r, _, _)| r).collect(),
                    attachments: attachments
                        .into_iter()
                        .map(|(a, _, _)| a)
                        .collect::<Option<Vec<_>>>()?,
                }))
            });
            (package, payloads)
        };
        Some(Read {
            package: package?,
            signature,
            payloads,
            envelope,
        })
    }

    fn signature(&mut self, hk: &Kids<'_>) -> Option<SignatureLocation> {
        let doc = self.doc;
        let (&(node, in_dsig), rest) = hk.signatures.split_first()?;
        let path = join(&hk.path, "Signature");
        for &(extra, _) in rest {
            self.error(
                &path,
                extra,
                Code::DuplicateElement,
                "a package carries exactly one Signature",
            );
        }
        if !in_dsig {
            self.strict(
                &path,
                node,
                Code::SignatureNamespace,
                format!("Signature must be in the XML-Signature namespace {DSIG_NS:?}"),
            );
        }
        if doc.child_elements(hk.node).last().map(|(n, _)| n) != Some(node) {
            self.strict(
                &path,
                node,
                Code::SignatureMisplaced,
                "Signature must be the last child of edXMLHeader",
            );
        }
        Some(SignatureLocation {
            node,
            span: doc.node(node).span,
            in_dsig_namespace: in_dsig,
        })
    }

    fn organization(&mut self, node: NodeId, path: &str) -> Option<Organization> {
        let k = self.kids(node, path, ORGANIZATION, false);
        let id = self.req(&k, "OrganId", Self::agency);
        let name = self.req_text(&k, "OrganName", LEN_NAME);
        let in_charge = self.opt_text(&k, "OrganizationInCharge", LEN_NAME);
        let address = self.opt_text(&k, "OrganAdd", LEN_ADDRESS);
        let email = self.opt_text(&k, "Email", LEN_EMAIL);
        let telephone = self.opt_text(&k, "Telephone", LEN_PHONE);
        let fax = self.opt_text(&k, "Fax", LEN_PHONE);
        let website = self.opt_text(&k, "Website", LEN_NAME);
        Some(Organization {
            id: id?,
            name: name?,
            in_charge,
            address,
            email,
            telephone,
            fax,
            website,
        })
    }

    fn staff(&mut self, node: NodeId, path: &str) -> Option<StaffInfo> {
        let k = self.kids(node, path, STAFF, false);
        Some(StaffInfo {
            department: self.opt_text(&k, "Department", LEN_NAME),
            staff: self.opt_text(&k, "Staff", LEN_SHORT),
            mobile: self.opt_text(&k, "Mobile", LEN_PHONE),
            email: self.opt_text(&k, "Email", LEN_EMAIL),
            department_id: self.opt_text(&k, "DepartmentId", LEN_SHORT),
            staff_id: self.opt_text(&k, "StaffId", LEN_SHORT),
        })
    }

    fn edoc_header(&mut self, node: NodeId, path: &str) -> Option<MessageHeader> {
        let k = self.kids(node, path, EDOC_MESSAGE_HEADER, false);
        let from = self.req(&k, "From", Self::organization);

        let to_nodes = self.many(&k, "To");
        if to_nodes.is_empty() {
            self.error(
                &join(path, "To"),
                node,
                Code::MissingElement,
                "at least one To (recipient) is required",
            );
        }
        let mut to = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, (n, p)) in to_nodes.iter().enumerate() {
            let org = self.organization(*n, p);
            if let Some(org) = &org
                && let Some(first) = seen.insert(org.id.as_str().to_owned(), i + 1)
            {
                self.error(
                    &join(p, "OrganId"),
                    *n,
                    Code::DuplicateRecipient,
                    format!("{:?} is also To[{first}]", org.id.as_str()),
                );
            }
            to.push(org);
        }

        let code = self.req(&k, "Code", |cx, n, p| {
            let k = cx.kids(n, p, CODE, false);
            let number = cx.req_text(&k, "CodeNumber", LEN_CODE);
            let notation = cx.req_text(&k, "CodeNotation", LEN_CODE);
            Some(DocumentCode {
                number: number?,
                notation: notation?,
            })
        });
        let promulgation = self.req(&k, "PromulgationInfo", |cx, n, p| {
            let k = cx.kids(n, p, PROMULGATION, false);
            let place = cx.opt_text(&k, "Place", LEN_PLACE);
            let date = cx.req(&k, "PromulgationDate", |cx, n, p| {
                let d = cx.date(n, p)?;
                if d > cx.today {
                    cx.strict(
                        p,
                        n,
                        Code::DateInFuture,
                        format!(
                            "{} is after today ({})",
                            time::format_date(d),
                            time::format_date(cx.today)
                        ),
                    );
                }
                Some(d)
            });
            Some(PromulgationInfo { place, date: date? })
        });
        let document_type = self.req(&k, "DocumentType", |cx, n, p| {
            let k = cx.kids(n, p, DOCUMENT_TYPE, false);
            let kind = cx.req(&k, "Type", |cx, n, p| {
                let t = cx.uint(n, p)?;
                if !(1..=2).contains(&t) {
                    cx.strict(p, n, Code::ValueOutOfRange, format!("{t}: expected 1 or 2"));
                }
                Some(t)
            });
            let detail = cx.opt_with(&k, "TypeDetail", Self::uint);
            let name = cx.opt_text(&k, "TypeName", LEN_SHORT);
            Some(DocumentType {
                kind: kind?,
                detail,
                name,
            })
        });
        let subject = self.req_text(&k, "Subject", LEN_TEXT);
        let content = self.opt_text(&k, "Content", LEN_TEXT);
        let signer = self.opt_with(&k, "SignerInfo", |cx, n, p| {
            let k = cx.kids(n, p, SIGNER, false);
            Some(SignerInfo {
                competence: cx.opt_text(&k, "Competence", LEN_SHORT),
                position: cx.opt_text(&k, "Position", LEN_SHORT),
                full_name: cx.opt_text(&k, "FullName", LEN_FULL_NAME),
            })
        });
        let due_date = self.opt_with(&k, "DueDate", Self::date);
        let to_places = self
            .opt_with(&k, "ToPlaces", |cx, n, p| {
                let k = cx.kids(n, p, PLACES, false);
                let places = cx.many(&k, "Place");
                Some(
                    places
                        .into_iter()
                        .filter_map(|(n, p)| cx.text(n, &p, LEN_TO_PLACE, false))
                        .collect(),
                )
            })
            .unwrap_or_default();
        let other_info = self.opt_with(&k, "OtherInfo", Self::other_info);
        let mut response_for = Vec::new();
        for (n, p) in self.many(&k, "ResponseFor") {
            let k = self.kids(n, &p, RESPONSE_FOR, false);
            response_for.push(ResponseFor {
                organ_id: self.opt_with(&k, "OrganId", Self::agency),
                code: self.opt_with(&k, "Code", Self::response_code),
                promulgation_date: self.opt_with(&k, "PromulgationDate", Self::date),
                document_id: self.opt_text(&k, "DocumentId", LEN_DOCUMENT_ID),
            });
        }
        let steering_type = self.opt_with(&k, "SteeringType", Self::uint);
        let document_id = self.req_text(&k, "DocumentId", LEN_DOCUMENT_ID);
        let response_for_task = self
            .opt_with(&k, "ResponseForTask", |cx, n, p| {
                let k = cx.kids(n, p, TASKS, false);
                let tasks = cx.many(&k, "TaskCode");
                Some(
                    tasks
                        .into_iter()
                        .filter_map(|(n, p)| cx.text(n, &p, LEN_SHORT, true))
                        .collect(),
                )
            })
            .unwrap_or_default();
        let application_type = self.opt_text(&k, "ApplicationType", LEN_SHORT);
        Some(MessageHeader {
            from: from?,
            to: to.into_iter().collect::<Option<Vec<_>>>()?,
            code: code?,
            promulgation: promulgation?,
            document_type: document_type?,
            subject: subject?,
            content,
            signer,
            due_date,
            to_places,
            other_info,
            response_for,
            steering_type,
            document_id: document_id?,
            response_for_task,
            application_type,
        })
    }

    fn other_info(&mut self, node: NodeId, path: &str) -> Option<OtherInfo> {
        let k = self.kids(node, path, OTHER_INFO, false);
        let priority = self.opt_with(&k, "Priority", |cx, n, p| {
            let v = cx.uint(n, p)?;
            let priority = Priority::from_code(v);
            if priority.is_none() {
                cx.error(p, n, Code::ValueOutOfRange, format!("{v}: expected 0 to 4"));
            }
            priority
        });
        let appendixes = self
            .opt_with(&k, "Appendixes", |cx, n, p| {
                let k = cx.kids(n, p, APPENDIXES, false);
                let items = cx.many(&k, "Appendix");
                Some(
                    items
                        .into_iter()
                        .filter_map(|(n, p)| cx.text(n, &p, LEN_TEXT, false))
                        .collect(),
                )
            })
            .unwrap_or_default();
        Some(OtherInfo {
            priority,
            sphere_of_promulgation: self.opt_text(&k, "SphereOfPromulgation", LEN_SHORT),
            typer_notation: self.opt_text(&k, "TyperNotation", LEN_TYPER),
            promulgation_amount: self.opt_with(&k, "PromulgationAmount", Self::uint),
            page_amount: self.opt_with(&k, "PageAmount", Self::uint),
            appendixes,
            direction: self.opt_with(&k, "Direction", Self::boolean),
        })
    }

    fn trace(&mut self, hk: &Kids<'_>) -> Option<TraceHeaderList> {
        let Some((node, path)) = self.opt(hk, "TraceHeaderList") else {
            self.strict(
                &join(&hk.path, "TraceHeaderList"),
                hk.node,
                Code::MissingElement,
                "TraceHeaderList is required in an edoc package",
            );
            return Some(TraceHeaderList::default());
        };
        let k = self.kids(node, &path, TRACE_LIST, false);
        let nodes = self.many(&k, "TraceHeader");
        if nodes.is_empty() {
            self.strict(
                &join(&path, "TraceHeader"),
                node,
                Code::MissingElement,
                "at least one TraceHeader is required",
            );
        }
        let mut headers = Vec::new();
        for (n, p) in nodes {
            let k = self.kids(n, &p, TRACE, false);
            let organ_id = self.req(&k, "OrganId", Self::agency);
            let timestamp = self.req(&k, "Timestamp", Self::timestamp);
            headers.push(
                organ_id
                    .zip(timestamp)
                    .map(|(organ_id, timestamp)| TraceHeader {
                        organ_id,
                        timestamp,
                    }),
            );
        }
        let business = match self.opt(&k, "Bussiness") {
            Some((n, p)) => Some(self.business(n, &p)?),
            None => None,
        };
        Some(TraceHeaderList {
            headers: headers.into_iter().collect::<Option<Vec<_>>>()?,
            business,
        })
    }

    fn business(&mut self, node: NodeId, path: &str) -> Option<Business> {
        let k = self.kids(node, path, BUSINESS, false);
        let doc_type = self.req(&k, "BussinessDocType", |cx, n, p| {
            let v = cx.uint(n, p)?;
            let t = BusinessDocType::from_code(v);
            if t.is_none() {
                cx.error(
                    p,
                    n,
                    Code::ValueOutOfRange,
                    format!("{v}: expected 0 (new), 1 (revoke), 2 (update) or 3 (replace)"),
                );
            }
            t
        });
        let reason = self.opt_text(&k, "BussinessDocReason", LEN_TEXT);
        let document_id = self.opt_text(&k, "DocumentId", LEN_DOCUMENT_ID);
        let paper = self.opt_with(&k, "Paper", Self::flag);
        let document_info = self.opt_with(&k, "BussinessDocumentInfo", |cx, n, p| {
            let k = cx.kids(n, p, DOCUMENT_INFO, false);
            let document_info = cx.opt_with(&k, "DocumentInfo", Self::flag);
            let document_receiver = cx.opt_with(&k, "DocumentReceiver", Self::flag);
            let receivers =
                match cx.opt(&k, "ReceiverList") {
                    Some((n, p)) => {
                        let k = cx.kids(n, &p, RECEIVER_LIST, false);
                        let mut out = Vec::new();
                        for (n, p) in cx.many(&k, "Receiver") {
                            let k = cx.kids(n, &p, RECEIVER, false);
                            let organ_id = cx.req(&k, "OrganId", Self::agency);
                            let receiver_type = cx.req(&k, "ReceiverType", |cx, n, p| {
                                let v = cx.uint(n, p)?;
                                if v > 1 {
                                    cx.error(
                                        p,
                                        n,
                                        Code::ValueOutOfRange,
                                        format!("{v}: expected 0 or 1"),
                                    );
                                    return None;
                                }
                                Some(v)
                            });
                            out.push(organ_id.zip(receiver_type).map(
                                |(organ_id, receiver_type)| Receiver {
                                    organ_id,
                                    receiver_type,
                                },
                            ));
                        }
                        out.into_iter().collect::<Option<Vec<_>>>()?
                    }
                    None => Vec::new(),
                };
            Some(BusinessDocumentInfo {
                document_info,
                document_receiver,
                receivers,
            })
        });
        let replacements = match self.opt(&k, "ReplacementInfoList") {
            Some((n, p)) => {
                let k = self.kids(n, &p, REPLACEMENT_LIST, false);
                let items = self.many(&k, "ReplacementInfo");
                if items.is_empty() {
                    self.strict(
                        &join(&p, "ReplacementInfo"),
                        n,
                        Code::MissingElement,
                        "at least one ReplacementInfo is required",
                    );
                }
                let mut out = Vec::new();
                for (n, p) in items {
                    let k = self.kids(n, &p, REPLACEMENT, false);
                    let document_id = self.req_text(&k, "DocumentId", LEN_DOCUMENT_ID);
                    let organ_ids = self.req(&k, "OrganIdList", |cx, n, p| {
                        let k = cx.kids(n, p, ORGAN_ID_LIST, false);
                        let ids = cx.many(&k, "OrganId");
                        if ids.is_empty() {
                            cx.error(
                                &join(p, "OrganId"),
                                n,
                                Code::MissingElement,
                                "at least one OrganId is required",
                            );
                        }
                        ids.into_iter()
                            .map(|(n, p)| cx.agency(n, &p))
                            .collect::<Vec<_>>()
                            .into_iter()
                            .collect::<Option<Vec<_>>>()
                    });
                    out.push(document_id.zip(organ_ids).map(|(document_id, organ_ids)| {
                        ReplacementInfo {
                            document_id,
                            organ_ids,
                        }
                    }));
                }
                out.into_iter().collect::<Option<Vec<_>>>()?
            }
            None => Vec::new(),
        };
        if doc_type == Some(BusinessDocType::Replace) && replacements.is_empty() {
            self.strict(
                &join(path, "ReplacementInfoList"),
                node,
                Code::MissingElement,
                "a replacement (BussinessDocType 3) must say what it replaces",
            );
        }
        let staff = self.opt_with(&k, "StaffInfo", Self::staff);
        Some(Business {
            doc_type: doc_type?,
            reason,
            document_id,
            paper,
            document_info,
            replacements,
            staff,
        })
    }

    /// Manifest references with their node and path.
    fn manifest(&mut self, env: &Kids<'_>) -> Option<Vec<(ManifestReference, NodeId, String)>> {
        let Some((body, body_path)) = self.opt(env, "edXMLBody") else {
            self.strict(
                "edXMLBody",
                env.node,
                Code::MissingElement,
                "edXMLBody is required in an edoc package",
            );
            return Some(Vec::new());
        };
        let bk = self.kids(body, &body_path, BODY, false);
        let Some((manifest, manifest_path)) = self.opt(&bk, "edXMLManifest") else {
            self.strict(
                &join(&body_path, "edXMLManifest"),
                body,
                Code::MissingElement,
                "edXMLManifest is required in edXMLBody",
            );
            return Some(Vec::new());
        };
        let mk = self.kids(manifest, &manifest_path, MANIFEST, false);
        let mut out = Vec::new();
        let mut ok = true;
        for (n, p) in self.many(&mk, "Reference") {
            let k = self.kids(n, &p, REFERENCE, false);
            let content_id = self.req_text(&k, "ContentId", LEN_CONTENT_ID);
            let content_type = self.req(&k, "ContentType", Self::content_type);
            let description = self.opt_text(&k, "Description", LEN_TEXT);
            let attachment_name = self.req_text(&k, "AttachmentName", LEN_TEXT);
            match (content_id, content_type, attachment_name) {
                (Some(content_id), Some(content_type), Some(attachment_name)) => out.push((
                    ManifestReference {
                        content_id: content_id.trim().to_owned(),
                        content_type,
                        description,
                        attachment_name,
                    },
                    n,
                    p,
                )),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Attachments (each `None` when invalid) with their node and path, and the payload nodes.
    #[allow(clippy::type_complexity)]
    fn attachments(
        &mut self,
        root: &Kids<'_>,
    ) -> (Vec<(Option<Attachment>, NodeId, String)>, Vec<NodeId>) {
        let mut out = Vec::new();
        let mut payloads = Vec::new();
        let Some((node, path)) = self.opt(root, "AttachmentEncoded") else {
            return (out, payloads);
        };
        let k = self.kids(node, &path, ATTACHMENTS, false);
        for (n, p) in self.many(&k, "Attachment") {
            let k = self.kids(n, &p, ATTACHMENT, false);
            let content_id = self.req_text(&k, "ContentId", LEN_CONTENT_ID);
            let name = self.req_text(&k, "AttachmentName", LEN_TEXT);
            let description = self.opt_text(&k, "Description", LEN_TEXT);
            let content_type = self.req(&k, "ContentType", Self::content_type);
            let summary = self.one(&k, "ContentTransferEncoded").and_then(|(pn, pp)| {
                payloads.push(pn);
                // Borrowed: a payload can be megabytes, and is decoded in streaming chunks.
                let text = self.leaf_text(pn, &pp);
                match attachment::summarize(&text) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        self.error(&pp, pn, Code::InvalidBase64, e.to_string());
                        None
                    }
                }
            });
            let attachment = match (content_id, name, content_type, summary) {
                (Some(content_id), Some(name), Some(content_type), Some(s)) => {
                    if !s.format.matches_content_type(&content_type) {
                        self.strict(
                            &join(&p, "ContentType"),
                            n,
                            Code::ContentTypeMismatch,
                            format!(
                                "declared {content_type:?} but the payload is {}",
                                match s.format {
                                    PayloadFormat::Zip => "a ZIP archive",
                                    PayloadFormat::Pdf => "a PDF document",
                                    PayloadFormat::Other => "neither PDF nor ZIP",
                                }
                            ),
                        );
                    }
                    Some(Attachment {
                        content_id: content_id.trim().to_owned(),
                        name,
                        description,
                        content_type,
                        size: s.size,
                        sha256: s.sha256,
                        format: s.format,
                    })
                }
                _ => None,
            };
            out.push((attachment, n, p));
        }
        (out, payloads)
    }

    /// Every manifest entry has exactly one attachment and vice versa.
    fn match_attachments(
        &mut self,
        manifest: &[(ManifestReference, NodeId, String)],
        attachments: &[(Option<Attachment>, NodeId, String)],
    ) {
        fn bare(id: &str) -> &str {
            let id = id.trim();
            id.strip_prefix("cid:").unwrap_or(id)
        }
        let mut by_id: HashMap<&str, usize> = HashMap::new();
        for (i, (r, n, p)) in manifest.iter().enumerate() {
            if by_id.insert(bare(&r.content_id), i).is_some() {
                self.error(
                    &join(p, "ContentId"),
                    *n,
                    Code::DuplicateContentId,
                    format!("{:?} is listed twice in the manifest", r.content_id),
                );
            }
        }
        let mut matched = vec![false; manifest.len()];
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for (a, n, p) in attachments {
            let Some(a) = a else { continue };
            let id_path = join(p, "ContentId");
            if seen.insert(bare(&a.content_id), ()).is_some() {
                self.error(
                    &id_path,
                    *n,
                    Code::DuplicateContentId,
                    format!("{:?} names two attachments", a.content_id),
                );
                continue;
            }
            let Some(&i) = by_id.get(bare(&a.content_id)) else {
                self.strict(
                    &id_path,
                    *n,
                    Code::AttachmentNotInManifest,
                    format!("{:?} is not listed in edXMLManifest", a.content_id),
                );
                continue;
            };
            matched[i] = true;
            let (r, _, _) = &manifest[i];
            if r.content_id != a.content_id {
                self.strict(
                    &id_path,
                    *n,
                    Code::ContentIdPrefixMismatch,
                    format!(
                        "{:?} matches manifest {:?} only without the cid: prefix",
                        a.content_id, r.content_id
                    ),
                );
            }
            if !r.content_type.eq_ignore_ascii_case(&a.content_type) {
                self.strict(
                    &join(p, "ContentType"),
                    *n,
                    Code::ContentTypeMismatch,
                    format!(
                        "{:?} but the manifest says {:?}",
                        a.content_type, r.content_type
                    ),
                );
            }
        }
        // Attachments that failed to read are already errors; only report a missing payload
        // when every attachment was readable.
        if attachments.iter().all(|(a, _, _)| a.is_some()) {
            for ((r, n, p), found) in manifest.iter().zip(&matched) {
                if !found {
                    self.error(
                        &join(p, "ContentId"),
                        *n,
                        Code::AttachmentMissing,
                        format!("no attachment carries {:?}", r.content_id),
                    );
                }
            }
        }
    }

    fn status(&mut self, node: NodeId, path: &str) -> Option<Status> {
        let k = self.kids(node, path, STATUS_MESSAGE_HEADER, false);
        let from = self.req(&k, "From", Self::organization);
        let response_for = self.req(&k, "ResponseFor", |cx, n, p| {
            let k = cx.kids(n, p, RESPONSE_FOR, false);
            let organ_id = cx.req(&k, "OrganId", Self::agency);
            let code = cx.req(&k, "Code", Self::response_code);
            let promulgation_date = cx.opt_with(&k, "PromulgationDate", Self::date);
            let document_id = cx.req_text(&k, "DocumentId", LEN_DOCUMENT_ID);
            Some(StatusResponseFor {
                organ_id: organ_id?,
                code: code?,
                promulgation_date,
                document_id: document_id?,
            })
        });
        let staff = self.opt_with(&k, "StaffInfo", Self::staff);
        let code = self.req(&k, "StatusCode", |cx, n, p| {
            let s = cx.token(n, p);
            let code = StatusCode::parse(&s);
            match &code {
                None => cx.error(
                    p,
                    n,
                    Code::InvalidStatusCode,
                    format!("{s:?}: expected two digits"),
                ),
                Some(c) if !c.is_known() => cx.warn(
                    p,
                    n,
                    Code::UnknownStatusCode,
                    format!("{s:?} is not one of {}", StatusCode::KNOWN.join(", ")),
                ),
                Some(_) => {}
            }
            code
        });
        let description = self.opt_text(&k, "Description", LEN_LONG_TEXT);
        if let Some(c) = &code
            && c.needs_reason()
            && description.as_deref().is_none_or(|d| d.trim().is_empty())
        {
            self.strict(
                &join(path, "Description"),
                node,
                Code::MissingElement,
                format!("status {c} ({}) must give a reason", c.meaning()),
            );
        }
        let timestamp = match self.opt(&k, "Timestamp") {
            Some((n, p)) => self.timestamp(n, &p),
            None => {
                self.strict(
                    &join(path, "Timestamp"),
                    node,
                    Code::MissingElement,
                    "Timestamp is required",
                );
                None
            }
        };
        Some(Status {
            from: from?,
            response_for: response_for?,
            staff,
            code: code?,
            description,
            timestamp,
        })
    }
}
