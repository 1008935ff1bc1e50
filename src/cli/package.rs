//! `truc package validate | show | new`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use jiff::civil::Date;
use serde::Serialize;

use super::{CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::edxml::build::{self, NewAttachment};
use crate::edxml::model::*;
use crate::edxml::time::{format_date, vietnam_time};
use crate::edxml::{self, AgencyId, Options, Problem, Severity};
use crate::xml;

/// `truc package …`
#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Check packages; exit 0 when all are valid, 1 with one line per problem otherwise.
    Validate(ValidateArgs),
    /// Print a human summary of a package.
    Show(ShowArgs),
    /// Write a new edoc package (or, with --status-of, a status package) to stdout.
    New(Box<NewArgs>),
}

/// `truc package validate FILE... [--lenient] [--json]`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Package files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Tolerate the quirks of field traffic (reported as warnings).
    #[arg(long)]
    pub lenient: bool,
    /// Print problems as a JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `truc package show FILE`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Package file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Read the package leniently.
    #[arg(long)]
    pub lenient: bool,
}

/// `truc package new …`
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Sender agency id.
    #[arg(long, value_name = "ID", value_parser = parse_agency)]
    pub from: AgencyId,
    /// Sender name (OrganName); defaults to the id.
    #[arg(long, value_name = "NAME")]
    pub from_name: Option<String>,
    /// Recipient agency id; repeat for several recipients. With --status-of --code 13, the
    /// recipient the take-back request goes to.
    #[arg(long = "to", value_name = "ID", value_parser = parse_agency)]
    pub to: Vec<AgencyId>,
    /// Document number (CodeNumber).
    #[arg(long, value_name = "N")]
    pub number: Option<String>,
    /// Document notation (CodeNotation), e.g. BTC-VP.
    #[arg(long, value_name = "X")]
    pub notation: Option<String>,
    /// Subject (trích yếu).
    #[arg(long, value_name = "S")]
    pub subject: Option<String>,
    /// Document type name (TypeName).
    #[arg(long, value_name = "T", default_value = "Công văn")]
    pub type_name: String,
    /// Document type code (Type), 1 or 2.
    #[arg(long = "type", value_name = "N", default_value_t = 1)]
    pub type_code: u32,
    /// Promulgation date YYYY/MM/DD; defaults to today (Vietnam time).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub date: Option<Date>,
    /// DocumentId; defaults to `<from>,<date>,<number>/<notation>`.
    #[arg(long, value_name = "ID")]
    pub document_id: Option<String>,
    /// Priority 0–4.
    #[arg(long, value_name = "N")]
    pub priority: Option<u32>,
    /// File to attach; repeat for several.
    #[arg(long = "attach", value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Build a status package answering this package instead of a document.
    #[arg(long, value_name = "FILE", requires = "code")]
    pub status_of: Option<PathBuf>,
    /// Status code (01–06, 13, 15, 16), with --status-of.
    #[arg(long, value_name = "CODE", requires = "status_of")]
    pub code: Option<String>,
    /// Status description (the reason, for 02, 13 and 16).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

fn parse_agency(s: &str) -> Result<AgencyId, String> {
    AgencyId::parse(s).map_err(|e| e.to_string())
}

fn parse_date(s: &str) -> Result<Date, String> {
    match edxml::time::parse_date(s) {
        Some((d, edxml::time::Spelling::Standard)) => Ok(d),
        _ => Err(format!("{s:?} is not a date YYYY/MM/DD")),
    }
}

/// Runs a `package` subcommand.
pub fn run(cmd: PackageCommand, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let now = vietnam_time(SystemClock.now());
    match cmd {
        PackageCommand::Validate(a) => validate(&a, now.date(), out, err),
        PackageCommand::Show(a) => show(&a, now.date(), out, err),
        PackageCommand::New(a) => new(&a, now, out, err),
    }
}

fn options(lenient: bool, today: Date) -> Options {
    if lenient {
        Options::lenient(today)
    } else {
        Options::strict(today)
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// One problem as `--json` prints it.
#[derive(Serialize)]
struct JsonProblem {
    file: String,
    line: usize,
    column: usize,
    #[serde(flatten)]
    problem: Problem,
}

fn validate(a: &ValidateArgs, today: Date, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let opts = options(a.lenient, today);
    let mode = if a.lenient { "lenient" } else { "strict" };
    let mut json = Vec::new();
    let mut all_valid = true;
    for file in &a.files {
        let name = file.display().to_string();
        let bytes = read(file)?;
        tracing::debug!(file = %name, bytes = bytes.len(), mode, "validating");
        let (problems, kind) = match edxml::parse(&bytes, &opts) {
            Ok(p) => {
                let kind = match p.package() {
                    Package::Edoc(_) => "edoc",
                    Package::Status(_) => "status",
                };
                (p.warnings().to_vec(), Some(kind))
            }
            Err(r) => (r.problems, None),
        };
        all_valid &= kind.is_some();
        for p in &problems {
            let (line, column) = xml::line_col(&bytes, p.offset);
            if a.json {
                json.push(JsonProblem {
                    file: name.clone(),
                    line,
                    column,
                    problem: p.clone(),
                });
            } else {
                let severity = match p.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                writeln!(out, "{name}:{line}:{column}: {severity}: {p}").context("stdout")?;
            }
        }
        if let (Some(kind), false) = (kind, a.json) {
            writeln!(err, "{name}: valid {kind} package ({mode})").context("stderr")?;
        }
    }
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &json).context("stdout")?;
        writeln!(out).context("stdout")?;
    }
    Ok(if all_valid { EXIT_OK } else { EXIT_FAILURE })
}

fn show(a: &ShowArgs, today: Date, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let bytes = read(&a.file)?;
    let parsed = match edxml::parse(&bytes, &options(a.lenient, today)) {
        Ok(p) => p,
        Err(r) => {
            for p in &r.problems {
                let (line, column) = xml::line_col(&bytes, p.offset);
                writeln!(err, "{}:{line}:{column}: {p}", a.file.display()).context("stderr")?;
            }
            return Ok(EXIT_FAILURE);
        }
    };
    let mut s = String::new();
    let org = |o: &Organization| format!("{} ({})", o.id, o.name);
    match parsed.package() {
        Package::Edoc(e) => {
            let h = &e.header;
            s += &format!("kind:        edoc ({})\n", e.business_type());
            s += &format!("from:        {}\n", org(&h.from));
            for (i, t) in h.to.iter().enumerate() {
                let label = if i == 0 { "to:" } else { "" };
                s += &format!("{label:<13}{}\n", org(t));
            }
            s += &format!("number:      {}\n", h.code);
            s += &format!("date:        {}\n", format_date(h.promulgation.date));
            s += &format!("document id: {}\n", h.document_id);
            s += &format!(
                "type:        {} (Type {})\n",
                h.document_type.name.as_deref().unwrap_or("-"),
                h.document_type.kind
            );
            s += &format!("subject:     {}\n", h.subject);
            if let Some(p) = h.other_info.as_ref().and_then(|o| o.priority) {
                s += &format!("priority:    {} ({p:?})\n", p.code());
            }
            if let Some(b) = &e.trace.business {
                for r in &b.replacements {
                    s += &format!("replaces:    {}\n", r.document_id);
                }
            }
            s += &format!("attachments: {}\n", e.attachments.len());
            for at in &e.attachments {
                s += &format!(
                    "  {}  {} bytes  {}  {:?}  sha256:{}\n",
                    at.name, at.size, at.content_type, at.format, at.sha256
                );
            }
        }
        Package::Status(st) => {
            s += "kind:        status\n";
            s += &format!("from:        {}\n", org(&st.from));
            s += &format!("to:          {}\n", st.response_for.organ_id);
            s += &format!("status:      {} ({})\n", st.code, st.code.meaning());
            s += &format!(
                "about:       {} ({})\n",
                st.response_for.code, st.response_for.document_id
            );
            if let Some(d) = &st.description {
                s += &format!("description: {d}\n");
            }
        }
    }
    s += &format!(
        "signature:   {}\n",
        match parsed.signature() {
            None => "none",
            Some(sig) if sig.in_dsig_namespace => "present (not verified)",
            Some(_) => "present, outside the XML-Signature namespace (not verified)",
        }
    );
    for w in parsed.warnings() {
        s += &format!("warning:     {w}\n");
    }
    out.write_all(s.as_bytes()).context("stdout")?;
    Ok(EXIT_OK)
}

fn content_type_for(path: &Path, data: &[u8]) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let by_ext = match ext.as_str() {
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "txt" => "text/plain",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => match PayloadFormat::sniff(data) {
            PayloadFormat::Zip => "application/zip",
            PayloadFormat::Pdf => "application/pdf",
            PayloadFormat::Other => "application/octet-stream",
        },
    };
    by_ext.to_owned()
}

/// What the header of a new document says: the fields `truc package new` takes (shared with
/// `truc bench`, which builds its packages the same way).
pub(crate) struct Document<'a> {
    pub from: Organization,
    pub to: &'a [AgencyId],
    pub number: &'a str,
    pub notation: &'a str,
    pub subject: &'a str,
    pub type_name: &'a str,
    pub type_code: u32,
    pub date: Date,
    pub priority: Option<Priority>,
    pub document_id: String,
}

impl Document<'_> {
    /// The edXML header.
    pub(crate) fn header(self) -> MessageHeader {
        MessageHeader {
            from: self.from,
            to: self
                .to
                .iter()
                .map(|id| Organization::new(id.clone(), id.to_string()))
                .collect(),
            code: DocumentCode {
                number: self.number.to_owned(),
                notation: self.notation.to_owned(),
            },
            promulgation: PromulgationInfo {
                place: None,
                date: self.date,
            },
            document_type: DocumentType {
                kind: self.type_code,
                detail: None,
                name: Some(self.type_name.to_owned()),
            },
            subject: self.subject.to_owned(),
            content: None,
            signer: None,
            due_date: None,
            to_places: Vec::new(),
            other_info: self.priority.map(|p| OtherInfo {
                priority: Some(p),
                ..OtherInfo::default()
            }),
            response_for: Vec::new(),
            steering_type: None,
            document_id: self.document_id,
            response_for_task: Vec::new(),
            application_type: None,
        }
    }
}

/// The trace of a new document sent by `from` at `now`: one TraceHeader, BussinessDocType 0.
pub(crate) fn new_trace(from: &AgencyId, now: jiff::civil::DateTime) -> TraceHeaderList {
    TraceHeaderList {
        headers: vec![TraceHeader {
            organ_id: from.clone(),
            timestamp: whole_seconds(now),
        }],
        business: Some(Business::new(BusinessDocType::New)),
    }
}

fn whole_seconds(t: jiff::civil::DateTime) -> jiff::civil::DateTime {
    t.date().at(t.hour(), t.minute(), t.second(), 0)
}

fn new(
    a: &NewArgs,
    now: jiff::civil::DateTime,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    let today = now.date();
    let from = Organization::new(
        a.from.clone(),
        a.from_name.clone().unwrap_or_else(|| a.from.to_string()),
    );
    let built = if let Some(original) = &a.status_of {
        let bytes = read(original)?;
        let parsed = edxml::parse(&bytes, &Options::lenient(today))
            .map_err(|r| anyhow::anyhow!("{} is not a valid package: {r}", original.display()))?;
        let Package::Edoc(doc) = parsed.package() else {
            return Err(CliError::Usage(format!(
                "{} is a status package; --status-of needs a document",
                original.display()
            )));
        };
        let code = a.code.as_deref().unwrap_or_default();
        let code = StatusCode::parse(code)
            .ok_or_else(|| CliError::Usage(format!("--code {code:?}: expected two digits")))?;
        let organ_id = if code.as_str() == "13" {
            match a.to.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(CliError::Usage(
                        "status 13 goes to one recipient: give exactly one --to".into(),
                    ));
                }
            }
        } else {
            doc.header.from.id.clone()
        };
        let status = Status {
            from,
            response_for: StatusResponseFor {
                organ_id,
                code: doc.header.code.to_string(),
                promulgation_date: Some(doc.header.promulgation.date),
                document_id: doc.header.document_id.clone(),
            },
            staff: None,
            code,
            description: a.description.clone(),
            timestamp: Some(whole_seconds(now)),
        };
        build::status(&status, today)
    } else {
        let missing: Vec<&str> = [
            ("--to", a.to.is_empty()),
            ("--number", a.number.is_none()),
            ("--notation", a.notation.is_none()),
            ("--subject", a.subject.is_none()),
        ]
        .into_iter()
        .filter_map(|(flag, absent)| absent.then_some(flag))
        .collect();
        if !missing.is_empty() {
            return Err(CliError::Usage(format!(
                "a new document needs {}",
                missing.join(", ")
            )));
        }
        let number = a.number.clone().unwrap_or_default();
        let notation = a.notation.clone().unwrap_or_default();
        let date = a.date.unwrap_or(today);
        let priority = match a.priority {
            None => None,
            Some(p) => Some(
                Priority::from_code(p)
                    .ok_or_else(|| CliError::Usage(format!("--priority {p}: expected 0 to 4")))?,
            ),
        };
        let document_id = a
            .document_id
            .clone()
            .unwrap_or_else(|| format!("{},{},{number}/{notation}", a.from, format_date(date)));
        let header = Document {
            from: from.clone(),
            to: &a.to,
            number: &number,
            notation: &notation,
            subject: a.subject.as_deref().unwrap_or_default(),
            type_name: &a.type_name,
            type_code: a.type_code,
            date,
            priority,
            document_id,
        }
        .header();
        let trace = new_trace(&a.from, now);
        let mut attachments = Vec::new();
        for path in &a.attach {
            let data = read(path)?;
            attachments.push(NewAttachment {
                content_id: None,
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "attachment".into()),
                description: None,
                content_type: content_type_for(path, &data),
                data,
            });
        }
        build::edoc(&header, &trace, &attachments, today)
    };
    match built {
        Ok(b) => {
            out.write_all(&b.bytes).context("stdout")?;
            Ok(EXIT_OK)
        }
        Err(r) => {
            for p in r.errors() {
                writeln!(err, "error: {p}").context("stderr")?;
            }
            Ok(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edxml::Mode;

    #[test]
    fn content_types_from_extension_then_magic() {
        assert_eq!(content_type_for(Path::new("a.PDF"), b""), "application/pdf");
        assert_eq!(
            content_type_for(Path::new("a.bin"), b"PK\x03\x04"),
            "application/zip"
        );
        assert_eq!(
            content_type_for(Path::new("noext"), b"hello"),
            "application/octet-stream"
        );
    }

    #[test]
    fn mode_names() {
        assert_eq!(
            options(true, jiff::civil::date(2025, 1, 1)).mode,
            Mode::Lenient
        );
        assert_eq!(
            options(false, jiff::civil::date(2025, 1, 1)).mode,
            Mode::Strict
        );
    }
}
