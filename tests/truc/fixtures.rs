//! Every fixture against its expected verdict, codes and model.

use truc::edxml::model::{BusinessDocType, Package, PayloadFormat, Sha256};
use truc::edxml::{self, AgencyIdForm, Code, Severity};

use crate::util::*;

fn codes(problems: &[edxml::Problem], severity: Severity) -> Vec<(String, Code)> {
    let mut v: Vec<(String, Code)> = problems
        .iter()
        .filter(|p| p.severity == severity)
        .map(|p| (p.path.clone(), p.code))
        .collect();
    v.sort();
    v
}

#[test]
fn valid_fixtures_pass_strict_without_remarks() {
    for path in fixtures_in("valid") {
        let bytes = read(&path);
        let parsed =
            edxml::parse(&bytes, &strict()).unwrap_or_else(|r| panic!("{}: {r}", path.display()));
        assert!(
            parsed.warnings().is_empty(),
            "{}: {:?}",
            path.display(),
            parsed.warnings()
        );
        // Same verdict leniently, and the same model.
        let lenient = edxml::parse(&bytes, &lenient()).expect("strict-valid is lenient-valid");
        assert_eq!(lenient.package(), parsed.package());
        // The parsed package keeps the exact bytes.
        assert_eq!(parsed.bytes(), &bytes[..]);
    }
}

#[test]
fn status_fixtures_carry_the_code_in_their_name_and_route_to_response_for() {
    let mut seen = Vec::new();
    for path in fixtures_in("valid") {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let Some(code) = name.strip_prefix("status_") else {
            continue;
        };
        let bytes = read(&path);
        let parsed = edxml::parse(&bytes, &strict()).unwrap();
        let Package::Status(s) = parsed.package() else {
            panic!("{name} is not a status package");
        };
        assert_eq!(s.code.as_str(), code);
        assert!(s.code.is_known());
        assert_eq!(
            parsed.package().recipients(),
            vec![&s.response_for.organ_id]
        );
        if s.code.needs_reason() {
            assert!(
                s.description
                    .as_deref()
                    .is_some_and(|d| !d.trim().is_empty())
            );
        }
        seen.push(code.to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["01", "02", "03", "04", "05", "06", "13", "15", "16"]);
}

#[test]
fn new_document_to_two_recipients_with_attachment() {
    let bytes = read(&fixture("valid/edoc_new_2recipients.edxml"));
    let parsed = edxml::parse(&bytes, &strict()).unwrap();
    let Package::Edoc(e) = parsed.package() else {
        panic!("not an edoc")
    };
    assert_eq!(e.header.to.len(), 2);
    assert_eq!(parsed.package().recipients().len(), 2);
    assert_ne!(e.header.to[0].id, e.header.to[1].id);
    assert_eq!(e.business_type(), BusinessDocType::New);
    assert_eq!(e.manifest.len(), 1);
    assert_eq!(e.attachments.len(), 1);
    let att = &e.attachments[0];
    assert_eq!(att.format, PayloadFormat::Pdf);
    // The digest and size are those of the decoded payload.
    let data = parsed.attachment_data(0).unwrap();
    assert!(data.starts_with(b"%PDF-"));
    assert_eq!(att.size, data.len() as u64);
    assert_eq!(att.sha256, Sha256::of(&data));
    // The span points at the base64 text inside the original bytes.
    let span = parsed.attachment_span(0).unwrap();
    let text = std::str::from_utf8(&bytes[span.range()]).unwrap();
    assert!(text.trim_start().starts_with("JVBERi0"), "{text:.20}");
    assert!(parsed.signature().is_none());
}

#[test]
fn signature_is_located_not_verified() {
    let bytes = read(&fixture("valid/edoc_signed_placeholder.edxml"));
    let parsed = edxml::parse(&bytes, &strict()).unwrap();
    let sig = parsed.signature().expect("signature located");
    assert!(sig.in_dsig_namespace);
    let text = std::str::from_utf8(&bytes[sig.span.range()]).unwrap();
    assert!(text.starts_with("<ds:Signature"), "{text:.40}");
    assert!(text.ends_with("</ds:Signature>"));
    // The signature lies inside the envelope.
    let env = parsed.envelope_span();
    assert!(env.start < sig.span.start && sig.span.end < env.end);
}

#[test]
fn revoke_update_replace_are_told_apart() {
    for (file, expected) in [
        ("valid/edoc_revoke.edxml", BusinessDocType::Revoke),
        ("valid/edoc_update.edxml", BusinessDocType::Update),
        ("valid/edoc_replace.edxml", BusinessDocType::Replace),
    ] {
        let bytes = read(&fixture(file));
        let parsed = edxml::parse(&bytes, &strict()).unwrap();
        let Package::Edoc(e) = parsed.package() else {
            panic!("{file}")
        };
        assert_eq!(e.business_type(), expected, "{file}");
        let business = e.trace.business.as_ref().unwrap();
        match expected {
            BusinessDocType::Update => {
                let info = business.document_info.as_ref().expect("update info");
                assert_eq!(info.receivers.len(), 2);
                let kinds: Vec<u32> = info.receivers.iter().map(|r| r.receiver_type).collect();
                assert_eq!(kinds, [0, 1]);
            }
            BusinessDocType::Replace => {
                assert_eq!(business.replacements.len(), 1);
                assert_eq!(business.replacements[0].organ_ids.len(), 2);
                assert_ne!(business.replacements[0].document_id, e.header.document_id);
            }
            _ => assert!(e.attachments.is_empty()),
        }
    }
}

#[test]
fn element_order_and_prefixes_do_not_matter() {
    let bytes = read(&fixture("valid/edoc_vnpt_order.edxml"));
    let parsed = edxml::parse(&bytes, &strict()).unwrap();
    let Package::Edoc(e) = parsed.package() else {
        panic!()
    };
    assert_eq!(e.header.response_for.len(), 1);
    assert!(e.header.application_type.is_some());
    assert!(
        e.header
            .to
            .iter()
            .any(|o| o.id.form() == AgencyIdForm::Qd20)
    );
    assert_eq!(e.attachments[0].format, PayloadFormat::Zip);
}

#[test]
fn vnpt_dirty_package_passes_lenient_and_fails_strict_with_the_right_codes() {
    let bytes = read(&fixture("lenient/edoc_vnpt_dirty.edxml"));
    let expected = vec![
        (
            "AttachmentEncoded/Attachment[1]/ContentId".to_owned(),
            Code::ContentIdPrefixMismatch,
        ),
        (
            "AttachmentEncoded/Attachment[1]/ContentType".to_owned(),
            Code::ContentTypeMismatch,
        ),
        (
            "edXMLHeader/MessageHeader/PromulgationInfo/PromulgationDate".to_owned(),
            Code::LegacyDateFormat,
        ),
        (
            "edXMLHeader/MessageHeader/To[2]/OrganId".to_owned(),
            Code::InvalidAgencyId,
        ),
        ("edXMLHeader/Signature".to_owned(), Code::SignatureNamespace),
    ];

    let rejection = edxml::parse(&bytes, &strict()).unwrap_err();
    assert_eq!(codes(&rejection.problems, Severity::Error), expected);
    let line = rejection
        .problems
        .iter()
        .find(|p| p.code == Code::InvalidAgencyId)
        .unwrap()
        .to_string();
    assert_eq!(
        line,
        "edXMLHeader/MessageHeader/To[2]/OrganId: invalid-agency-id: \"01.02.G22\""
    );

    let parsed = edxml::parse(&bytes, &lenient()).unwrap();
    assert_eq!(codes(parsed.warnings(), Severity::Warning), expected);
    let Package::Edoc(e) = parsed.package() else {
        panic!()
    };
    assert_eq!(e.header.to[1].id.form(), AgencyIdForm::Nonstandard);
    assert_eq!(e.header.promulgation.date, jiff::civil::date(2025, 3, 14));
    assert_eq!(e.attachments[0].format, PayloadFormat::Zip);
    let sig = parsed
        .signature()
        .expect("namespace-less signature is located");
    assert!(!sig.in_dsig_namespace);
}

#[test]
fn invalid_fixtures_fail_in_both_modes_with_their_codes() {
    let table: &[(&str, &[Code])] = &[
        ("truncated.edxml", &[Code::NotWellFormed]),
        ("doctype.edxml", &[Code::DoctypeForbidden]),
        ("billion_laughs.edxml", &[Code::DoctypeForbidden]),
        ("wrong_namespace.edxml", &[Code::WrongNamespace]),
        ("no_namespace.edxml", &[Code::WrongNamespace]),
        (
            "missing_mandatory.edxml",
            &[
                Code::MissingElement,
                Code::MissingElement,
                Code::MissingElement,
                Code::MissingElement,
            ],
        ),
        (
            "bad_dates.edxml",
            &[Code::InvalidDate, Code::InvalidDate, Code::InvalidTimestamp],
        ),
        ("duplicate_recipients.edxml", &[Code::DuplicateRecipient]),
        ("bad_base64.edxml", &[Code::InvalidBase64]),
        ("status_missing_code.edxml", &[Code::MissingElement]),
    ];
    let files = fixtures_in("invalid");
    assert_eq!(
        files.len(),
        table.len(),
        "every invalid fixture is in the table"
    );
    for (file, expected) in table {
        let bytes = read(&fixture(&format!("invalid/{file}")));
        for opts in [strict(), lenient()] {
            let r = edxml::parse(&bytes, &opts).unwrap_err();
            let mut got: Vec<Code> = r.errors().map(|p| p.code).collect();
            got.sort();
            let mut want = expected.to_vec();
            want.sort();
            assert_eq!(got, want, "{file} ({:?}): {r}", opts.mode);
        }
    }
    // Every problem names where it is: the paths of missing_mandatory.
    let r = edxml::parse(
        &read(&fixture("invalid/missing_mandatory.edxml")),
        &strict(),
    )
    .unwrap_err();
    let mut paths: Vec<&str> = r.errors().map(|p| p.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "edXMLHeader/MessageHeader/Code/CodeNotation",
            "edXMLHeader/MessageHeader/DocumentId",
            "edXMLHeader/MessageHeader/From/OrganName",
            "edXMLHeader/MessageHeader/Subject",
        ]
    );
}

#[test]
fn future_promulgation_date_is_strict_only() {
    let bytes = read(&fixture("valid/edoc_new_2recipients.edxml"));
    let long_ago = edxml::Options::strict(jiff::civil::date(2020, 1, 1));
    let r = edxml::parse(&bytes, &long_ago).unwrap_err();
    assert!(r.has(Code::DateInFuture), "{r}");
    let lenient = edxml::Options::lenient(jiff::civil::date(2020, 1, 1));
    let p = edxml::parse(&bytes, &lenient).unwrap();
    assert!(p.warnings().iter().any(|w| w.code == Code::DateInFuture));
}
