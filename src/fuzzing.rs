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
