//! Entry points for the fuzz targets in `fuzz/` (not a public API).
//!
//! Each function feeds arbitrary input to one parser and asserts the invariants that must hold
//! for every input, so the fuzzer finds wrong answers as well as panics.

use crate::edxml::{self, Options};

/// Reads `data` as a package in both modes and checks, for any input:
/// - strict acceptance implies lenient acceptance of the same model;
/// - an accepted package keeps the exact bytes, and each attachment decodes to the size and
///   SHA-256 its model states;
/// - a rejection carries at least one error, and every problem points inside the input.
pub fn edxml_parse(data: &[u8]) {
    let today = jiff::civil::date(2026, 1, 1);
    let strict = edxml::parse(data, &Options::strict(today));
    let lenient = edxml::parse(data, &Options::lenient(today));
    match (&strict, &lenient) {
        (Ok(s), Ok(l)) => assert_eq!(s.package(), l.package()),
        (Ok(_), Err(r)) => panic!("strict accepted what lenient refused: {r}"),
        _ => {}
    }
    for result in [strict, lenient] {
        match result {
            Ok(parsed) => {
                assert_eq!(parsed.bytes(), data);
                if let edxml::Package::Edoc(e) = parsed.package() {
                    for (i, a) in e.attachments.iter().enumerate() {
                        let bytes = parsed
                            .attachment_data(i)
                            .expect("validated payload decodes");
                        assert_eq!(bytes.len() as u64, a.size);
                        assert_eq!(edxml::model::Sha256::of(&bytes), a.sha256);
                    }
                }
            }
            Err(rejection) => {
                assert!(rejection.errors().next().is_some());
                for p in &rejection.problems {
                    assert!(p.offset <= data.len(), "{p:?}");
                }
            }
        }
    }
}

/// Canonicalizes any parseable input with every method and checks, for any input:
/// - whole-document canonical XML parses again and is a fixed point (canonicalizing it
///   once more gives the same bytes);
/// - every element can be canonicalized as a subset apex (bounded to the first 64).
pub fn c14n(data: &[u8]) {
    use crate::dsig::c14n::{Canonicalizer, Method, NodeSet};
    use crate::xml::{Document, Limits};
    let Ok(doc) = Document::parse(data, &Limits::default()) else {
        return;
    };
    for method in [Method::C14n10, Method::C14n11, Method::Exclusive] {
        for comments in [false, true] {
            let mut c = Canonicalizer::new(method).with_prefix_list("#default a");
            c.comments = comments;
            let once = c.to_vec(&doc, &NodeSet::document());
            let again_doc =
                Document::parse(&once, &Limits::default()).expect("canonical XML is well-formed");
            let twice = c.to_vec(&again_doc, &NodeSet::document());
            assert_eq!(once, twice, "{method:?} is not idempotent");
            for (id, _) in doc.elements().take(64) {
                let _ = c.to_vec(&doc, &NodeSet::subtree(id));
            }
        }
    }
}

/// Verifies any input as a signed document, with and without the strict and legacy
/// policies, using whatever key it carries: no panic, and a valid verdict always names
/// what its references covered.
pub fn dsig_verify(data: &[u8]) {
    use crate::dsig::{self, Keys, Policy, Verdict};
    let keys = Keys {
        insecure: true,
        ..Keys::default()
    };
    let now = jiff::Timestamp::UNIX_EPOCH;
    for strict in [false, true] {
        for allow_legacy in [false, true] {
            let policy = Policy {
                allow_legacy,
                strict,
            };
            match dsig::verify(data, &keys, &policy, now) {
                Verdict::Valid(r) => {
                    assert!(!r.references.is_empty());
                    assert!(allow_legacy || r.legacy.is_empty());
                }
                other => assert!(other.failure().is_some()),
            }
        }
    }
}
