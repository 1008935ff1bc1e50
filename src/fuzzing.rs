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

/// Reads any input as a certificate and as a CRL (DER, or PEM when it looks like PEM) and
/// checks, for any input:
/// - a certificate that parses can be validated for every purpose, alone and as its own
///   chain, against the committed test root and with the committed CRLs: no panic, and a
///   trusted path starts with it and ends at the anchor;
/// - a CRL that parses can be consulted about any certificate.
pub fn x509(data: &[u8]) {
    use std::sync::{Arc, OnceLock};

    use crate::pki::{
        Certificate, Crl, CrlSet, Purpose, RevocationPolicy, RevocationSource, TrustStore,
    };

    static TRUST: OnceLock<(TrustStore, Certificate)> = OnceLock::new();
    let (trust, anchor) = TRUST.get_or_init(|| {
        let root = include_bytes!("../certs-test/root-ca.pem");
        let inter = include_bytes!("../certs-test/intermediate-ca.pem");
        let crl = include_bytes!("../certs-test/crl/intermediate-ca-stale.crl");
        let anchor = Certificate::from_pem(root).expect("test root")[0].clone();
        let crls = CrlSet::new(vec![
            Crl::from_der(crl.to_vec(), std::path::Path::new("stale.crl")).expect("test CRL"),
        ]);
        let store = TrustStore::new(
            vec![anchor.clone()],
            Certificate::from_pem(inter).expect("test intermediate"),
        )
        // Soft fail, so that paths through the stale CRL's issuer are still found.
        .with_revocation(
            Arc::new(crls),
            RevocationPolicy {
                hard_fail: false,
                ..RevocationPolicy::default()
            },
        );
        (store, anchor)
    });
    let now = jiff::Timestamp::from_second(1_780_000_000).expect("a 2026 time");
    let certs = if data.starts_with(b"-----") {
        Certificate::from_pem(data).unwrap_or_default()
    } else {
        Certificate::from_der(data.to_vec()).into_iter().collect()
    };
    for cert in &certs {
        for purpose in [Purpose::Signer, Purpose::TlsClient, Purpose::TlsServer] {
            for legacy in [false, true] {
                for extra in [&[][..], &certs[..]] {
                    if let Ok(path) = trust.validate(cert, extra, purpose, legacy, now) {
                        assert_eq!(path.chain[0].der(), cert.der());
                        let last = path.chain.last().expect("a path is never empty");
                        assert_eq!(last.der(), anchor.der());
                    }
                }
            }
        }
        let _ = (cert.legacy_features(), cert.san_uris(), cert.is_ca());
    }
    if let Ok(crl) = Crl::from_der(data.to_vec(), std::path::Path::new("fuzz.crl")) {
        let set = CrlSet::new(vec![crl]);
        for cert in certs.iter().chain([anchor]) {
            let _ = set.status(cert, anchor, now, true);
        }
    }
}
