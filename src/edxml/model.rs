//! The edXML package model (QCVN 102:2016): typed values only, no XML.
//!
//! A model value is what a *valid* package means. [`super::parse`] builds one only when
//! validation found no error, and [`super::build`] writes one out; `parse(build(m)) == m` is
//! a tested property. Byte positions are not part of the model: they live in
//! [`super::ParsedPackage`], next to the original bytes.
//!
//! Free text (subjects, names, descriptions) is kept exactly as written, whitespace included.
//! Identifiers, dates and numbers are whitespace-collapsed before they are parsed, as their
//! XSD types (`xs:token`, `xs:integer`) prescribe.

use std::fmt;

use jiff::civil::{Date, DateTime};
use serde::Serialize;

use super::AgencyId;

/// A parsed package: a document or a status report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // built once per package and then borrowed, rarely moved
pub enum Package {
    /// An edoc package: an official document with its attachments.
    Edoc(Edoc),
    /// A status package: a receiver's (or, for 13, the sender's) report on a document.
    Status(Status),
}

impl Package {
    /// The agency that sends this package: `MessageHeader/From/OrganId` of an edoc,
    /// `From/OrganId` of a status package.
    pub fn sender(&self) -> &AgencyId {
        match self {
            Package::Edoc(e) => &e.header.from.id,
            Package::Status(s) => &s.from.id,
        }
    }

    /// The agencies this package is for: every `To` of an edoc; `ResponseFor/OrganId` of a
    /// status package.
    pub fn recipients(&self) -> Vec<&AgencyId> {
        match self {
            Package::Edoc(e) => e.header.to.iter().map(|o| &o.id).collect(),
            Package::Status(s) => vec![&s.response_for.organ_id],
        }
    }
}

/// An edoc package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edoc {
    /// `edXMLHeader/MessageHeader`.
    pub header: MessageHeader,
    /// `edXMLHeader/TraceHeaderList`.
    pub trace: TraceHeaderList,
    /// `edXMLBody/edXMLManifest/Reference`, in order.
    pub manifest: Vec<ManifestReference>,
    /// `AttachmentEncoded/Attachment`, in order, described by their decoded payloads.
    pub attachments: Vec<Attachment>,
}

impl Edoc {
    /// The business type (new when the `Bussiness` block is absent).
    pub fn business_type(&self) -> BusinessDocType {
        self.trace
            .business
            .as_ref()
            .map_or(BusinessDocType::New, |b| b.doc_type)
    }
}

/// `MessageHeader` of an edoc package (QCVN 102 clause 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageHeader {
    /// 1.1 `From`.
    pub from: Organization,
    /// 1.2 `To`, one per recipient, no two with the same id.
    pub to: Vec<Organization>,
    /// 1.3 `Code`: number and notation.
    pub code: DocumentCode,
    /// 1.4 `PromulgationInfo`.
    pub promulgation: PromulgationInfo,
    /// 1.5 `DocumentType`.
    pub document_type: DocumentType,
    /// 1.6 `Subject` (trích yếu).
    pub subject: String,
    /// 1.7 `Content` (summary).
    pub content: Option<String>,
    /// 1.8 `SignerInfo`.
    pub signer: Option<SignerInfo>,
    /// 1.9 `DueDate`.
    pub due_date: Option<Date>,
    /// 1.10 `ToPlaces/Place`: the printed "Nơi nhận" lines; never used for routing.
    pub to_places: Vec<String>,
    /// 1.11 `OtherInfo`.
    pub other_info: Option<OtherInfo>,
    /// 1.12 `ResponseFor`: the documents this one answers.
    pub response_for: Vec<ResponseFor>,
    /// 1.13 `SteeringType`.
    pub steering_type: Option<u32>,
    /// 1.14 `DocumentId`: opaque, globally unique document key.
    pub document_id: String,
    /// VNPT extension `ResponseForTask/TaskCode`.
    pub response_for_task: Vec<String>,
    /// VNPT extension `ApplicationType`.
    pub application_type: Option<String>,
}

/// An organization (`From`, `To`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Organization {
    /// `OrganId`.
    pub id: AgencyId,
    /// `OrganName`.
    pub name: String,
    /// `OrganizationInCharge`.
    pub in_charge: Option<String>,
    /// `OrganAdd`.
    pub address: Option<String>,
    /// `Email`.
    pub email: Option<String>,
    /// `Telephone`.
    pub telephone: Option<String>,
    /// `Fax`.
    pub fax: Option<String>,
    /// `Website`.
    pub website: Option<String>,
}

impl Organization {
    /// An organization with only its id and name.
    pub fn new(id: AgencyId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            in_charge: None,
            address: None,
            email: None,
            telephone: None,
            fax: None,
            website: None,
        }
    }
}

/// `Code`: the document's number (số) and notation (ký hiệu).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DocumentCode {
    /// `CodeNumber`, e.g. `7816`.
    pub number: String,
    /// `CodeNotation`, e.g. `VPCP-TTĐT`.
    pub notation: String,
}

impl fmt::Display for DocumentCode {
    /// `number/notation`, the form `ResponseFor/Code` uses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.notation)
    }
}

/// `PromulgationInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PromulgationInfo {
    /// `Place`.
    pub place: Option<String>,
    /// `PromulgationDate`.
    pub date: Date,
}

/// `DocumentType`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DocumentType {
    /// `Type`: 1 or 2 in strict mode.
    pub kind: u32,
    /// `TypeDetail`.
    pub detail: Option<u32>,
    /// `TypeName`, e.g. `Công văn`.
    pub name: Option<String>,
}

/// `SignerInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SignerInfo {
    /// `Competence` (thẩm quyền), e.g. `KT. BỘ TRƯỞNG`.
    pub competence: Option<String>,
    /// `Position`.
    pub position: Option<String>,
    /// `FullName`.
    pub full_name: Option<String>,
}

/// `OtherInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OtherInfo {
    /// `Priority` (độ khẩn), 0–4.
    pub priority: Option<Priority>,
    /// `SphereOfPromulgation`.
    pub sphere_of_promulgation: Option<String>,
    /// `TyperNotation`.
    pub typer_notation: Option<String>,
    /// `PromulgationAmount`.
    pub promulgation_amount: Option<u32>,
    /// `PageAmount`.
    pub page_amount: Option<u32>,
    /// `Appendixes/Appendix`.
    pub appendixes: Vec<String>,
    /// VNPT extension `Direction`.
    pub direction: Option<bool>,
}

/// Priority (độ khẩn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// 0 thường.
    Normal = 0,
    /// 1 khẩn.
    Urgent = 1,
    /// 2 thượng khẩn.
    VeryUrgent = 2,
    /// 3 hỏa tốc.
    Flash = 3,
    /// 4 hỏa tốc hẹn giờ.
    FlashScheduled = 4,
}

impl Priority {
    /// From the numeric code.
    pub fn from_code(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::Normal,
            1 => Self::Urgent,
            2 => Self::VeryUrgent,
            3 => Self::Flash,
            4 => Self::FlashScheduled,
            _ => return None,
        })
    }

    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// `ResponseFor` of an edoc: the document this one answers. Every part may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResponseFor {
    /// `OrganId`.
    pub organ_id: Option<AgencyId>,
    /// `Code`, `number/notation`.
    pub code: Option<String>,
    /// `PromulgationDate`.
    pub promulgation_date: Option<Date>,
    /// `DocumentId`.
    pub document_id: Option<String>,
}

/// `TraceHeaderList`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TraceHeaderList {
    /// `TraceHeader`, one per system the package passed, in order.
    pub headers: Vec<TraceHeader>,
    /// `Bussiness` (sic).
    pub business: Option<Business>,
}

/// `TraceHeader`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceHeader {
    /// `OrganId` of the system that handled the package.
    pub organ_id: AgencyId,
    /// `Timestamp`, Vietnam local time.
    pub timestamp: DateTime,
}

/// `BussinessDocType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusinessDocType {
    /// 0: a new document.
    New = 0,
    /// 1: thu hồi, revoke a document sent earlier.
    Revoke = 1,
    /// 2: cập nhật, update a document sent earlier.
    Update = 2,
    /// 3: thay thế, replace documents sent earlier.
    Replace = 3,
}

impl BusinessDocType {
    /// From the numeric code.
    pub fn from_code(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::New,
            1 => Self::Revoke,
            2 => Self::Update,
            3 => Self::Replace,
            _ => return None,
        })
    }

    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for BusinessDocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::New => "new",
            Self::Revoke => "revoke",
            Self::Update => "update",
            Self::Replace => "replace",
        })
    }
}

/// `Bussiness`: what this package does to the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Business {
    /// `BussinessDocType`.
    pub doc_type: BusinessDocType,
    /// `BussinessDocReason`.
    pub reason: Option<String>,
    /// `DocumentId`: the document acted on.
    pub document_id: Option<String>,
    /// `Paper`: whether a paper copy follows.
    pub paper: Option<bool>,
    /// `BussinessDocumentInfo` (updates).
    pub document_info: Option<BusinessDocumentInfo>,
    /// `ReplacementInfoList/ReplacementInfo` (replacements).
    pub replacements: Vec<ReplacementInfo>,
    /// `StaffInfo`.
    pub staff: Option<StaffInfo>,
}

impl Business {
    /// A business block of this type with nothing else.
    pub fn new(doc_type: BusinessDocType) -> Self {
        Self {
            doc_type,
            reason: None,
            document_id: None,
            paper: None,
            document_info: None,
            replacements: Vec::new(),
            staff: None,
        }
    }
}

/// `BussinessDocumentInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BusinessDocumentInfo {
    /// `DocumentInfo`: metadata changed.
    pub document_info: Option<bool>,
    /// `DocumentReceiver`: recipient list changed.
    pub document_receiver: Option<bool>,
    /// `ReceiverList/Receiver`.
    pub receivers: Vec<Receiver>,
}

/// `Receiver` in an update's receiver list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receiver {
    /// `OrganId`.
    pub organ_id: AgencyId,
    /// `ReceiverType`, 0 or 1.
    pub receiver_type: u32,
}

/// `ReplacementInfo`: an earlier document replaced for some recipients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplacementInfo {
    /// `DocumentId` of the replaced document.
    pub document_id: String,
    /// `OrganIdList/OrganId`.
    pub organ_ids: Vec<AgencyId>,
}

/// `StaffInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StaffInfo {
    /// `Department`.
    pub department: Option<String>,
    /// `Staff`.
    pub staff: Option<String>,
    /// `Mobile`.
    pub mobile: Option<String>,
    /// `Email`.
    pub email: Option<String>,
    /// `DepartmentId` (VNPT).
    pub department_id: Option<String>,
    /// `StaffId` (VNPT).
    pub staff_id: Option<String>,
}

/// `edXMLManifest/Reference`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManifestReference {
    /// `ContentId`, usually `cid:…`.
    pub content_id: String,
    /// `ContentType`.
    pub content_type: String,
    /// `Description`.
    pub description: Option<String>,
    /// `AttachmentName`.
    pub attachment_name: String,
}

/// `AttachmentEncoded/Attachment`, described by its decoded payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// `ContentId`.
    pub content_id: String,
    /// `AttachmentName`.
    pub name: String,
    /// `Description`.
    pub description: Option<String>,
    /// `ContentType` as declared.
    pub content_type: String,
    /// Size of the decoded payload in bytes.
    pub size: u64,
    /// SHA-256 of the decoded payload.
    pub sha256: Sha256,
    /// What the payload's first bytes say it is.
    pub format: PayloadFormat,
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        let d = ring::digest::digest(&ring::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Lowercase hex.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads the form [`Sha256::hex`] writes: 64 lower-case hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

/// A payload format recognised by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// `PK\x03\x04` (or an empty archive, `PK\x05\x06`): a ZIP archive, as the VNPT SDK sends.
    Zip,
    /// `%PDF-`.
    Pdf,
    /// Anything else.
    Other,
}

impl PayloadFormat {
    /// Recognises a payload from its first bytes.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Self::Zip
        } else if head.starts_with(b"%PDF-") {
            Self::Pdf
        } else {
            Self::Other
        }
    }

    /// Whether a declared content type is consistent with this format.
    pub fn matches_content_type(self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match self {
            Self::Zip => {
                matches!(
                    essence.as_str(),
                    "application/zip"
                        | "application/x-zip-compressed"
                        | "application/x-zip"
                        | "application/octet-stream"
                ) || essence.starts_with("application/vnd.openxmlformats-officedocument.")
                    || essence.starts_with("application/vnd.oasis.opendocument.")
            }
            Self::Pdf => matches!(
                essence.as_str(),
                "application/pdf" | "application/octet-stream"
            ),
            Self::Other => !matches!(essence.as_str(), "application/pdf" | "application/zip"),
        }
    }
}

/// A status package (`MessageHeader` with `StatusCode`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// `From`: who reports.
    pub from: Organization,
    /// `ResponseFor`: the document reported on; its `OrganId` is the recipient.
    pub response_for: StatusResponseFor,
    /// `StaffInfo`.
    pub staff: Option<StaffInfo>,
    /// `StatusCode`.
    pub code: StatusCode,
    /// `Description`.
    pub description: Option<String>,
    /// `Timestamp`, Vietnam local time.
    pub timestamp: Option<DateTime>,
}

/// `ResponseFor` of a status package; everything but the date is mandatory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusResponseFor {
    /// `OrganId`: the agency the status goes to.
    pub organ_id: AgencyId,
    /// `Code`, `number/notation` of the document.
    pub code: String,
    /// `PromulgationDate` of the document.
    pub promulgation_date: Option<Date>,
    /// `DocumentId` of the document.
    pub document_id: String,
}

/// A two-digit status code. Unknown codes are kept as they are.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct StatusCode(String);

impl StatusCode {
    /// Every code in use on the national axis.
    pub const KNOWN: [&'static str; 9] = ["01", "02", "03", "04", "05", "06", "13", "15", "16"];

    /// A status code: exactly two ASCII digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| Self(s.to_owned()))
    }

    /// The code, e.g. `03`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the code is one of [`StatusCode::KNOWN`].
    pub fn is_known(&self) -> bool {
        Self::KNOWN.contains(&self.0.as_str())
    }

    /// What the code means, for people.
    pub fn meaning(&self) -> &'static str {
        match self.0.as_str() {
            "01" => "arrived (not yet handled by a clerk)",
            "02" => "refused by the receiving clerk",
            "03" => "accepted and registered",
            "04" => "assigned for handling",
            "05" => "being handled",
            "06" => "handling finished",
            "13" => "sender asks to take the document back",
            "15" => "receiver accepts the update or take-back",
            "16" => "receiver refuses the update or take-back",
            _ => "unknown status code",
        }
    }

    /// Whether QCVN practice requires a reason in `Description` (refusal, take-back).
    pub fn needs_reason(&self) -> bool {
        matches!(self.0.as_str(), "02" | "13" | "16")
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
