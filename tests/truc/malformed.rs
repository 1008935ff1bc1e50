//! Hostile and broken input: never a panic, always a specific problem.

use proptest::prelude::*;
use truc::edxml::{self, Code, Severity};
use truc::xml::Limits;

use crate::util::*;

fn base() -> String {
    String::from_utf8(read(&fixture("valid/edoc_new_2recipients.edxml"))).unwrap()
}

fn status_base() -> String {
    String::from_utf8(read(&fixture("valid/status_03.edxml"))).unwrap()
}

/// Applies one textual edit, checking the edit applied.
fn edit(src: &str, from: &str, to: &str) -> String {
    assert!(src.contains(from), "fixture lacks {from:?}");
    src.replacen(from, to, 1)
}

/// Replaces the text of the first `<tag>…</tag>`.
fn set_text(src: &str, tag: &str, text: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = src.find(&open).expect("element present") + open.len();
    let end = start + src[start..].find(&close).expect("element closed");
    format!("{}{text}{}", &src[..start], &src[end..])
}

fn strict_codes(src: &str) -> Vec<Code> {
    match edxml::parse(src.as_bytes(), &strict()) {
        Ok(_) => Vec::new(),
        Err(r) => r.errors().map(|p| p.code).collect(),
    }
}

#[test]
fn every_truncation_is_rejected_without_panic() {
    for path in fixtures_in("valid") {
        let bytes = read(&path);
        let end = bytes.len()
            - bytes
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        for cut in (0..end).step_by(3) {
            let r = edxml::parse(&bytes[..cut], &lenient());
            assert!(r.is_err(), "{} cut at {cut} was accepted", path.display());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_byte_edits_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = base().into_bytes();
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        let _ = edxml::parse(&bytes, &strict());
        let _ = edxml::parse(&bytes, &lenient());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = edxml::parse(&bytes, &lenient());
    }
}

#[test]
fn limits_are_enforced_with_their_own_code() {
    let src = base();
    for limits in [
        Limits {
            max_bytes: 1000,
            ..Limits::default()
        },
        Limits {
            max_depth: 4,
            ..Limits::default()
        },
        Limits {
            max_elements: 50,
            ..Limits::default()
        },
        Limits {
            max_attributes: 1,
            ..Limits::default()
        },
    ] {
        let opts = edxml::Options { limits, ..strict() };
        let r = edxml::parse(src.as_bytes(), &opts).unwrap_err();
        assert_eq!(
            r.errors().map(|p| p.code).collect::<Vec<_>>(),
            [Code::LimitExceeded],
            "{limits:?}: {r}"
        );
    }
}

#[test]
fn encodings_other_than_utf8_are_refused() {
    let src = base();
    let latin1 = edit(&src, "encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"");
    assert_eq!(strict_codes(&latin1), [Code::UnsupportedEncoding]);
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in src.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let r = edxml::parse(&utf16, &strict()).unwrap_err();
    assert!(r.has(Code::UnsupportedEncoding));
    let mut bad = src.into_bytes();
    bad.insert(300, 0xFF);
    assert!(
        edxml::parse(&bad, &strict())
            .unwrap_err()
            .has(Code::UnsupportedEncoding)
    );
}

#[test]
fn external_entities_are_never_fetched_or_expanded() {
    let xxe = "<?xml version=\"1.0\"?>\n<!DOCTYPE edXML [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">&x;</edXML>";
    assert_eq!(strict_codes(xxe), [Code::DoctypeForbidden]);
    // Without a DOCTYPE, an entity reference is simply undeclared.
    let undeclared = edit(&base(), "<edXML:Subject>", "<edXML:Subject>&x;");
    assert_eq!(strict_codes(&undeclared), [Code::NotWellFormed]);
}

#[test]
fn structural_problems_have_specific_codes() {
    let src = base();
    let cases: Vec<(String, Vec<Code>)> = vec![
        (
            edit(
                &src,
                "<edXML:Content>",
                "<edXML:Subject>again</edXML:Subject><edXML:Content>",
            ),
            vec![Code::DuplicateElement],
        ),
        (
            edit(
                &src,
                "<edXML:Priority>1</edXML:Priority>",
                "<edXML:Priority>9</edXML:Priority>",
            ),
            vec![Code::ValueOutOfRange],
        ),
        (
            edit(
                &src,
                "<edXML:Priority>1</edXML:Priority>",
                "<edXML:Priority>high</edXML:Priority>",
            ),
            vec![Code::InvalidInteger],
        ),
        (
            edit(
                &src,
                "<edXML:BussinessDocType>0<",
                "<edXML:BussinessDocType>7<",
            ),
            vec![Code::ValueOutOfRange],
        ),
        (
            edit(
                &set_text(&src, "edXML:Subject", "  "),
                "<edXML:Content>",
                "<edXML:Nothing/><edXML:Content>",
            ),
            vec![Code::EmptyValue, Code::UnknownElement],
        ),
        (
            edit(&src, "<ContentId>cid:", "<ContentId>cid:other-"),
            vec![Code::AttachmentNotInManifest, Code::AttachmentMissing],
        ),
        (
            edit(&src, "</edXML:To>", "</edXML:To>stray text"),
            vec![Code::UnexpectedText],
        ),
        (
            edit(&src, "<edXML:Subject>", "<edXML:Subject>x<b>bold</b>"),
            vec![Code::UnexpectedElement],
        ),
    ];
    for (doc, mut want) in cases {
        let mut got = strict_codes(&doc);
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}

#[test]
fn text_problems_name_the_element_that_holds_the_text() {
    for (from, to, path) in [
        (
            "</edXML:edXMLEnvelope>",
            "</edXML:edXMLEnvelope>stray",
            "edXML",
        ),
        (
            "</edXML:edXMLBody>",
            "</edXML:edXMLBody>stray",
            "edXMLEnvelope",
        ),
        (
            "</edXML:To>",
            "</edXML:To>stray",
            "edXMLHeader/MessageHeader",
        ),
    ] {
        let doc = edit(&base(), from, to);
        let r = edxml::parse(doc.as_bytes(), &strict()).unwrap_err();
        let paths: Vec<&str> = r.errors().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, [path]);
    }
}

#[test]
fn tolerated_problems_are_warnings_only_when_lenient() {
    let src = base();
    for (doc, code) in [
        (
            edit(
                &src,
                "<edXML:Subject>",
                "<edXML:Extra>x</edXML:Extra><edXML:Subject>",
            ),
            Code::UnknownElement,
        ),
        (
            edit(
                &src,
                "<edXML:Type>1</edXML:Type>",
                "<edXML:Type>18</edXML:Type>",
            ),
            Code::ValueOutOfRange,
        ),
        (
            edit(
                &src,
                "<edXML:TyperNotation>",
                "<edXML:TyperNotation>AAAAAAAAAAAAAAAAAA",
            ),
            Code::TooLong,
        ),
    ] {
        let r = edxml::parse(doc.as_bytes(), &strict()).unwrap_err();
        assert_eq!(r.errors().map(|p| p.code).collect::<Vec<_>>(), [code]);
        let p = edxml::parse(doc.as_bytes(), &lenient()).unwrap();
        assert_eq!(
            p.warnings()
                .iter()
                .map(|w| (w.code, w.severity))
                .collect::<Vec<_>>(),
            [(code, Severity::Warning)]
        );
    }
}

#[test]
fn garbage_agency_ids_stay_errors_even_when_lenient() {
    let doc = edit(
        &base(),
        "<edXML:OrganId>000.00.00.H14<",
        "<edXML:OrganId>not an id<",
    );
    for opts in [strict(), lenient()] {
        let r = edxml::parse(doc.as_bytes(), &opts).unwrap_err();
        assert!(r.has(Code::InvalidAgencyId), "{r}");
    }
}

#[test]
fn a_second_signature_is_refused() {
    let src = String::from_utf8(read(&fixture("valid/edoc_signed_placeholder.edxml"))).unwrap();
    let start = src.find("<ds:Signature").unwrap();
    let end = src.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &src[start..end];
    let twice = format!("{}{sig}{}", &src[..end], &src[end..]);
    for opts in [strict(), lenient()] {
        assert!(
            edxml::parse(twice.as_bytes(), &opts)
                .unwrap_err()
                .has(Code::DuplicateElement)
        );
    }
    // Moved before TraceHeaderList, it is misplaced (strict).
    let without = format!("{}{}", &src[..start], &src[end..]);
    let moved = edit(
        &without,
        "<edXML:TraceHeaderList",
        &format!("{sig}<edXML:TraceHeaderList"),
    );
    assert_eq!(strict_codes(&moved), [Code::SignatureMisplaced]);
}

#[test]
fn status_rules() {
    let src = status_base();
    let unknown = edit(&src, ">03<", ">99<");
    let p = edxml::parse(unknown.as_bytes(), &strict()).expect("unknown codes are kept");
    assert_eq!(p.warnings()[0].code, Code::UnknownStatusCode);
    let bad = edit(&src, ">03<", ">3<");
    assert_eq!(strict_codes(&bad), [Code::InvalidStatusCode]);

    let refusal = String::from_utf8(read(&fixture("valid/status_02.edxml"))).unwrap();
    let start = refusal
        .find("<edXML:Description>")
        .or_else(|| refusal.find("<Description>"))
        .unwrap();
    let end_tag = if refusal[start..].starts_with("<edXML:") {
        "</edXML:Description>"
    } else {
        "</Description>"
    };
    let end = refusal.find(end_tag).unwrap() + end_tag.len();
    let no_reason = format!("{}{}", &refusal[..start], &refusal[end..]);
    assert_eq!(strict_codes(&no_reason), [Code::MissingElement]);
    assert!(edxml::parse(no_reason.as_bytes(), &lenient()).is_ok());
}
