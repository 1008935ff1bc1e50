use super::*;
use crate::dsig::{CertInfo, ReferenceReport};

const HOSTILE: &str = "<&\"'> ]]> Bộ Tài chính — Văn phòng \"Chính phủ\" & <UBND> 'tỉnh' \
                       Nghệ An\ttab\nnewline\r\ncrlf  ";

fn at() -> Timestamp {
    "2026-11-23T08:30:00Z".parse().unwrap()
}

fn summary() -> SignatureSummary {
    SignatureSummary {
        signer: Some(CertSummary {
            subject: "C=VN, O=Bộ Tài chính, serialNumber=000.00.00.G12".into(),
            fingerprint: "ab".repeat(32),
        }),
        key: "RSA-2048".into(),
        key_source: KeySource::TrustedChain,
        signature_method: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256".into(),
        digest_method: SHA256_DIGEST.into(),
        canonicalization: EXC_C14N.into(),
        trust_anchor: Some("C=VN, O=truc test PKI, CN=truc Test Root CA".into()),
        revocation: "no revocation known".into(),
        legacy: Vec::new(),
    }
}

/// A receipt of `kind` that keeps its kind's rules.
fn sample(kind: Kind) -> Receipt {
    let per_recipient = kind.is_per_recipient();
    Receipt {
        id: receipt_id(
            kind,
            if per_recipient {
                "0000000000000001-0"
            } else {
                "0000000000000001"
            },
        ),
        kind,
        issued_at: at(),
        hub: "truc hub (test)".into(),
        message_id: "0000000000000001".into(),
        document_id: Some("000.00.00.G12,2026/11/23,123/QĐ-BTC".into()),
        sender: "000.00.00.G12".into(),
        recipients: if per_recipient {
            vec!["000.00.00.H29".into()]
        } else {
            vec!["000.00.00.H29".into(), "000.00.00.H41".into()]
        },
        package_sha256: Sha256::of(b"the package"),
        verdict: VerdictSummary::Valid(summary()),
        delivery_id: per_recipient.then(|| "0000000000000001-0".into()),
        attempts: per_recipient.then_some(3),
        reason: kind
            .needs_reason()
            .then(|| "HTTP 410 từ đơn vị nhận".into()),
    }
}

fn roundtrip(r: &Receipt) -> Receipt {
    let bytes = build(r);
    parse(&bytes).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&bytes)))
}

#[test]
fn every_kind_round_trips() {
    for kind in Kind::ALL {
        let r = sample(kind);
        r.check().unwrap();
        assert_eq!(roundtrip(&r), r, "{kind}");
    }
}

#[test]
fn optional_parts_round_trip_absent_and_unsigned() {
    for kind in Kind::ALL {
        let mut r = sample(kind);
        r.document_id = None;
        r.delivery_id = None;
        r.attempts = None;
        r.verdict = VerdictSummary::Unsigned;
        assert_eq!(roundtrip(&r), r, "{kind}");
        let text = String::from_utf8(build(&r)).unwrap();
        assert!(text.contains("<Unsigned/>"), "{text}");
        assert!(!text.contains("DocumentId"), "{text}");
    }
}

#[test]
fn not_verified_round_trips_with_every_outcome_and_names_it() {
    for outcome in NotVerifiedOutcome::ALL {
        let mut r = sample(Kind::Acceptance);
        r.attempts = None;
        r.verdict = VerdictSummary::NotVerified(NotVerified {
            outcome,
            code: "digest-mismatch".into(),
            reason: "Reference 0: <ký> & \"sửa\"".into(),
        });
        assert_eq!(roundtrip(&r), r, "{outcome:?}");
        let text = String::from_utf8(build(&r)).unwrap();
        let compact: String = text.lines().map(str::trim).collect();
        assert!(
            compact.contains(&format!(
                "<NotVerified><Outcome>{}</Outcome><Code>digest-mismatch</Code>",
                outcome.as_str()
            )),
            "{text}"
        );
    }
    // The JSON the store records reads back as the same summary.
    let v = VerdictSummary::not_verified(&crate::dsig::Verdict::untrusted(
        "untrusted-chain",
        "no path",
    ))
    .unwrap();
    let json = serde_json::to_string(&v).unwrap();
    assert!(json.contains(r#""status":"not-verified""#), "{json}");
    assert_eq!(serde_json::from_str::<VerdictSummary>(&json).unwrap(), v);
}

#[test]
fn not_verified_with_an_unknown_outcome_is_refused() {
    let mut r = sample(Kind::Acceptance);
    r.attempts = None;
    r.verdict = VerdictSummary::NotVerified(NotVerified {
        outcome: NotVerifiedOutcome::Invalid,
        code: "x".into(),
        reason: "y".into(),
    });
    let text = String::from_utf8(build(&r))
        .unwrap()
        .replace("<Outcome>invalid</Outcome>", "<Outcome>forged</Outcome>");
    let e = parse(text.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("Receipt/Verdict/NotVerified/Outcome"), "{e}");
}

#[test]
fn verdict_details_round_trip() {
    let mut r = sample(Kind::Acceptance);
    let mut s = summary();
    s.signer = None;
    s.key_source = KeySource::Pinned;
    s.trust_anchor = None;
    s.legacy = LEGACY.to_vec();
    r.verdict = VerdictSummary::Valid(s);
    r.attempts = None;
    assert_eq!(roundtrip(&r), r);
    let mut r = sample(Kind::Delivery);
    r.attempts = Some(u32::MAX);
    r.issued_at = "2026-11-23T08:30:00.123456789Z".parse().unwrap();
    assert_eq!(roundtrip(&r), r);
    r.attempts = Some(0);
    assert_eq!(roundtrip(&r), r);
}

#[test]
fn hostile_strings_survive_the_round_trip() {
    for kind in [Kind::Acceptance, Kind::Failure] {
        let mut r = sample(kind);
        r.id = HOSTILE.into();
        r.hub = HOSTILE.into();
        r.message_id = format!("m{HOSTILE}");
        r.document_id = Some(HOSTILE.into());
        r.sender = HOSTILE.into();
        r.recipients = if kind.is_per_recipient() {
            vec![HOSTILE.into()]
        } else {
            vec![HOSTILE.into(), "đơn vị \"thứ hai\" <&>".into()]
        };
        if kind.needs_reason() {
            r.reason = Some(HOSTILE.into());
            r.delivery_id = Some(HOSTILE.into());
        }
        let mut s = summary();
        s.signer.as_mut().unwrap().subject = HOSTILE.into();
        s.trust_anchor = Some(HOSTILE.into());
        s.revocation = HOSTILE.into();
        s.key = HOSTILE.into();
        r.verdict = VerdictSummary::Valid(s);
        let bytes = build(&r);
        // Escaped, not raw: no stray markup and the UTF-8 is written as is.
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(!text.contains("<&"), "{text}");
        assert!(text.contains("&lt;&amp;\"'&gt; ]]&gt;"), "{text}");
        assert!(text.contains("&#xD;"), "{text}");
        assert!(text.contains("Bộ Tài chính — Văn phòng"), "{text}");
        assert_eq!(parse(&bytes).unwrap(), r, "{kind}");
    }
}

#[test]
fn build_is_deterministic_and_in_schema_order() {
    let r = sample(Kind::Failure);
    assert_eq!(build(&r), build(&r.clone()));
    let text = String::from_utf8(build(&r)).unwrap();
    let order = [
        "<Receipt xmlns=\"urn:truc:receipt:1\">",
        "<ReceiptId>0000000000000001-0-failure</ReceiptId>",
        "<Kind>failure</Kind>",
        "<IssuedAt>2026-11-23T08:30:00Z</IssuedAt>",
        "<Hub>",
        "<MessageId>",
        "<DocumentId>",
        "<Sender>",
        "<Recipient>",
        "<PackageSha256>",
        "<Verdict>",
        "<Valid>",
        "<Signer>",
        "<Subject>",
        "<Fingerprint>",
        "<Key>",
        "<KeySource>trusted-chain</KeySource>",
        "<SignatureMethod>",
        "<DigestMethod>",
        "<CanonicalizationMethod>",
        "<TrustAnchor>",
        "<Revocation>",
        "<DeliveryId>",
        "<Attempts>3</Attempts>",
        "<Reason>",
        "</Receipt>",
    ];
    let mut from = 0;
    for tag in order {
        let at = text[from..]
            .find(tag)
            .unwrap_or_else(|| panic!("{tag} missing or out of order in\n{text}"));
        from += at + tag.len();
    }
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
    assert!(text.contains(&format!(
        "<PackageSha256>{}</PackageSha256>",
        Sha256::of(b"the package").hex()
    )));
}

#[test]
fn receipt_ids_are_derived_deterministically() {
    assert_eq!(
        receipt_id(Kind::Acceptance, "00000000000000ff"),
        "00000000000000ff-acceptance"
    );
    assert_eq!(
        receipt_id(Kind::Delivery, "00000000000000ff-2"),
        "00000000000000ff-2-delivery"
    );
    assert_eq!(receipt_id(Kind::Failure, "x"), "x-failure");
    assert_eq!(receipt_id(Kind::Cancellation, "x"), "x-cancellation");
}

#[test]
fn codes_match_the_dsig_serialization() {
    for l in LEGACY {
        assert_eq!(
            serde_json::to_value(l).unwrap(),
            serde_json::Value::from(legacy_code(l))
        );
    }
    for k in KEY_SOURCES {
        assert_eq!(
            serde_json::to_value(k).unwrap(),
            serde_json::Value::from(key_source_code(k))
        );
    }
    for k in Kind::ALL {
        assert_eq!(
            serde_json::to_value(k).unwrap(),
            serde_json::Value::from(k.as_str())
        );
        assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
    }
}

#[test]
fn from_report_takes_what_the_verifier_reported() {
    let cert = |subject: &str, fp: char| CertInfo {
        subject: subject.into(),
        issuer: "issuer".into(),
        serial: "01".into(),
        fingerprint: fp.to_string().repeat(64),
    };
    let mut report = Report {
        signature_method: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256".into(),
        canonicalization: EXC_C14N.into(),
        key: "EC-P256".into(),
        key_source: KeySource::TrustedChain,
        signer: Some(cert("CN=signer", 'a')),
        chain: vec![
            cert("CN=signer", 'a'),
            cert("CN=issuing", 'b'),
            cert("CN=root", 'c'),
        ],
        references: vec![ReferenceReport {
            uri: String::new(),
            resolved: "the whole document".into(),
            transforms: Vec::new(),
            digest_method: "http://www.w3.org/2001/04/xmlenc#sha512".into(),
            digest: String::new(),
        }],
        legacy: vec![Legacy::Sha1Certificate],
        warnings: Vec::new(),
        authorization: None,
        timings: Default::default(),
    };
    let VerdictSummary::Valid(s) = VerdictSummary::from_report(&report) else {
        panic!("not valid");
    };
    assert_eq!(
        s.signer,
        Some(CertSummary {
            subject: "CN=signer".into(),
            fingerprint: "a".repeat(64)
        })
    );
    assert_eq!(s.key, "EC-P256");
    assert_eq!(s.key_source, KeySource::TrustedChain);
    assert_eq!(s.signature_method, report.signature_method);
    assert_eq!(s.digest_method, "http://www.w3.org/2001/04/xmlenc#sha512");
    assert_eq!(s.canonicalization, EXC_C14N);
    assert_eq!(s.trust_anchor.as_deref(), Some("CN=root"));
    assert!(
        s.revocation.starts_with("no revocation known"),
        "{}",
        s.revocation
    );
    assert_eq!(s.legacy, vec![Legacy::Sha1Certificate]);

    report.warnings = vec!["revocation of X not checked (soft fail): stale".into()];
    let VerdictSummary::Valid(s) = VerdictSummary::from_report(&report) else {
        panic!("not valid");
    };
    assert_eq!(
        s.revocation,
        "revocation of X not checked (soft fail): stale"
    );

    report.key_source = KeySource::Pinned;
    report.chain.clear();
    let VerdictSummary::Valid(s) = VerdictSummary::from_report(&report) else {
        panic!("not valid");
    };
    assert_eq!(s.trust_anchor, None);
    assert_eq!(s.revocation, "not checked: pinned key");
}

/// Replaces `from` (which must occur) with `to` in a built sample.
fn edited(kind: Kind, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(build(&sample(kind))).unwrap();
    assert!(text.contains(from), "{from} not in\n{text}");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn parse_rejects_the_wrong_root_or_namespace() {
    let e = parse(&edited(
        Kind::Delivery,
        "xmlns=\"urn:truc:receipt:1\"",
        "xmlns=\"urn:truc:receipt:2\"",
    ))
    .unwrap_err();
    assert!(
        matches!(&e, ReceiptError::NotAReceipt { found } if found == "{urn:truc:receipt:2}Receipt"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "the root element is {urn:truc:receipt:2}Receipt, not Receipt in namespace urn:truc:receipt:1"
    );
    let e = parse(&edited(Kind::Delivery, " xmlns=\"urn:truc:receipt:1\"", "")).unwrap_err();
    assert!(
        matches!(&e, ReceiptError::NotAReceipt { found } if found == "Receipt"),
        "{e}"
    );
    // A child in another namespace is not ours, even with the right local name.
    let e = parse(&edited(
        Kind::Delivery,
        "<Hub>truc hub (test)</Hub>",
        "<Hub xmlns=\"urn:other\">truc hub (test)</Hub>",
    ))
    .unwrap_err();
    assert!(
        matches!(
            &e,
            ReceiptError::Missing {
                parent: "Receipt",
                element: "Hub"
            }
        ),
        "{e}"
    );
    assert!(matches!(parse(b"<Receipt"), Err(ReceiptError::Xml(_))));
    assert!(matches!(
        parse(b"<!DOCTYPE r [<!ENTITY x 'y'>]><Receipt xmlns=\"urn:truc:receipt:1\"/>"),
        Err(ReceiptError::Xml(_))
    ));
}

#[test]
fn a_prefixed_receipt_reads_the_same() {
    let r = sample(Kind::Cancellation);
    let text = String::from_utf8(build(&r)).unwrap();
    let mut prefixed = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        prefixed.push(c);
        if c == '<' {
            if chars.peek() == Some(&'/') {
                prefixed.push('/');
                chars.next();
            }
            if chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                prefixed.push_str("rc:");
            }
        }
    }
    let prefixed = prefixed.replace("xmlns=", "xmlns:rc=");
    assert!(
        prefixed.contains("<rc:Kind>cancellation</rc:Kind>"),
        "{prefixed}"
    );
    assert_eq!(parse(prefixed.as_bytes()).unwrap(), r);
}

#[test]
fn parse_names_missing_and_misplaced_elements() {
    let cases: [(Kind, &str, &str, &str); 6] = [
        (
            Kind::Acceptance,
            "<Sender>000.00.00.G12</Sender>",
            "",
            "Receipt: missing Sender",
        ),
        (
            Kind::Acceptance,
            "<Kind>acceptance</Kind>",
            "",
            "Receipt: missing Kind",
        ),
        (
            Kind::Delivery,
            "<Hub>truc hub (test)</Hub>",
            "<Hub>truc hub (test)</Hub><Hub>again</Hub>",
            "Receipt: unexpected element {urn:truc:receipt:1}Hub",
        ),
        (
            Kind::Delivery,
            "<Revocation>",
            "<Extra/><Revocation>",
            "Receipt/Verdict/Valid: unexpected element {urn:truc:receipt:1}Extra",
        ),
        (
            Kind::Delivery,
            "<Attempts>3</Attempts>",
            "<Attempts>3</Attempts><Unknown/>",
            "Receipt: unexpected element {urn:truc:receipt:1}Unknown",
        ),
        (
            Kind::Delivery,
            "<PackageSha256>",
            "<PackageSha256 Algorithm=\"sha256\">",
            "Receipt/PackageSha256: unexpected attribute Algorithm",
        ),
    ];
    for (kind, from, to, message) in cases {
        let e = parse(&edited(kind, from, to)).unwrap_err();
        assert_eq!(e.to_string(), message, "{from} -> {to}");
    }
    let e = parse(&edited(Kind::Delivery, "<Valid>", "text<Valid>")).unwrap_err();
    let ReceiptError::UnexpectedText { element, text } = &e else {
        panic!("{e}");
    };
    assert_eq!((*element, text.as_str()), ("Receipt/Verdict", "text"));
    let e = parse(&edited(
        Kind::Delivery,
        "<Hub>truc hub (test)</Hub>",
        "<Hub>truc <b>hub</b></Hub>",
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Receipt/Hub: unexpected element {urn:truc:receipt:1}b"
    );
}

#[test]
fn parse_rejects_bad_values() {
    let digest = Sha256::of(b"the package").hex();
    let cases = [
        (
            "<Kind>delivery</Kind>",
            "<Kind>Delivery</Kind>",
            "Receipt/Kind",
        ),
        (
            "<IssuedAt>2026-11-23T08:30:00Z</IssuedAt>",
            "<IssuedAt>2026-11-23T15:30:00+07:00</IssuedAt>",
            "Receipt/IssuedAt",
        ),
        (
            "<IssuedAt>2026-11-23T08:30:00Z</IssuedAt>",
            "<IssuedAt>2026-13-23T08:30:00Z</IssuedAt>",
            "Receipt/IssuedAt",
        ),
        (
            "<Attempts>3</Attempts>",
            "<Attempts>+3</Attempts>",
            "Receipt/Attempts",
        ),
        (
            "<Attempts>3</Attempts>",
            "<Attempts>4294967296</Attempts>",
            "Receipt/Attempts",
        ),
        (
            "<KeySource>trusted-chain</KeySource>",
            "<KeySource>trusted</KeySource>",
            "Receipt/Verdict/Valid/KeySource",
        ),
        ("<Hub>truc hub (test)</Hub>", "<Hub></Hub>", "Receipt/Hub"),
    ];
    for (from, to, element) in cases {
        let e = parse(&edited(Kind::Delivery, from, to)).unwrap_err();
        assert!(
            matches!(&e, ReceiptError::Invalid { element: el, .. } if *el == element),
            "{to}: {e}"
        );
    }
    let upper = edited(Kind::Delivery, &digest, &digest.to_uppercase());
    let e = parse(&upper).unwrap_err();
    assert!(
        matches!(
            &e,
            ReceiptError::Invalid {
                element: "Receipt/PackageSha256",
                ..
            }
        ),
        "{e}"
    );
    let short = edited(Kind::Delivery, &digest, &digest[1..]);
    assert!(matches!(
        parse(&short).unwrap_err(),
        ReceiptError::Invalid {
            element: "Receipt/PackageSha256",
            ..
        }
    ));
    let fp = "ab".repeat(32);
    let e = parse(&edited(Kind::Delivery, &fp, &fp[..63])).unwrap_err();
    assert!(
        matches!(
            &e,
            ReceiptError::Invalid {
                element: "Receipt/Verdict/Valid/Signer/Fingerprint",
                ..
            }
        ),
        "{e}"
    );
    let e = parse(&edited(
        Kind::Delivery,
        "<Revocation>",
        "<Legacy>md5</Legacy><Revocation>",
    ))
    .unwrap_err();
    assert!(matches!(&e, ReceiptError::Unexpected { .. }), "{e}");
    let e = parse(&edited(
        Kind::Delivery,
        "</Valid>",
        "<Legacy>md5</Legacy></Valid>",
    ))
    .unwrap_err();
    assert!(
        matches!(
            &e,
            ReceiptError::Invalid {
                element: "Receipt/Verdict/Valid/Legacy",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn parse_enforces_the_rules_of_each_kind() {
    let inconsistent = |bytes: Vec<u8>, kind: Kind, problem: &str| {
        let e = parse(&bytes).unwrap_err();
        let ReceiptError::Inconsistent {
            kind: k,
            problem: p,
        } = &e
        else {
            panic!("{e}");
        };
        assert_eq!(*k, kind);
        assert!(p.contains(problem), "{e}");
    };
    inconsistent(
        edited(
            Kind::Delivery,
            "<Recipient>000.00.00.H29</Recipient>",
            "<Recipient>000.00.00.H29</Recipient><Recipient>000.00.00.H41</Recipient>",
        ),
        Kind::Delivery,
        "exactly one",
    );
    inconsistent(
        edited(
            Kind::Acceptance,
            "<Recipient>000.00.00.H41</Recipient>",
            "<Recipient>000.00.00.H29</Recipient>",
        ),
        Kind::Acceptance,
        "listed twice",
    );
    let reason = "<Reason>HTTP 410 từ đơn vị nhận</Reason>";
    inconsistent(
        edited(Kind::Failure, reason, ""),
        Kind::Failure,
        "no reason",
    );
    inconsistent(
        edited(Kind::Cancellation, reason, ""),
        Kind::Cancellation,
        "no reason",
    );
    inconsistent(
        edited(
            Kind::Delivery,
            "</Attempts>",
            &format!("</Attempts>{reason}"),
        ),
        Kind::Delivery,
        "reason is not allowed",
    );
    inconsistent(
        edited(
            Kind::Acceptance,
            "</Verdict>",
            "</Verdict><DeliveryId>0000000000000001-0</DeliveryId>",
        ),
        Kind::Acceptance,
        "delivery id",
    );
    inconsistent(
        edited(
            Kind::Acceptance,
            "</Verdict>",
            "</Verdict><Attempts>1</Attempts>",
        ),
        Kind::Acceptance,
        "attempt count",
    );
    // Missing the only recipient is a missing element, for every kind.
    let e = parse(&edited(
        Kind::Delivery,
        "<Recipient>000.00.00.H29</Recipient>",
        "",
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), "Receipt: missing Recipient");
}

#[test]
fn check_refuses_what_parse_would_refuse() {
    let mut r = sample(Kind::Failure);
    r.reason = None;
    assert!(matches!(
        r.check(),
        Err(ReceiptError::Inconsistent {
            kind: Kind::Failure,
            ..
        })
    ));
    let mut r = sample(Kind::Acceptance);
    r.recipients.clear();
    assert!(matches!(r.check(), Err(ReceiptError::Inconsistent { .. })));
    let mut r = sample(Kind::Delivery);
    r.hub = "nul\u{0}byte".into();
    let e = r.check().unwrap_err();
    assert!(
        matches!(
            &e,
            ReceiptError::Invalid {
                element: "Receipt/Hub",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("U+0000"), "{e}");
    let mut r = sample(Kind::Delivery);
    r.message_id = "\u{FFFE}".into();
    assert!(r.check().is_err());
    let mut r = sample(Kind::Delivery);
    r.issued_at = "-000001-01-01T00:00:00Z".parse().unwrap();
    assert!(matches!(
        r.check(),
        Err(ReceiptError::Invalid {
            element: "Receipt/IssuedAt",
            ..
        })
    ));
    let mut r = sample(Kind::Delivery);
    let VerdictSummary::Valid(s) = &mut r.verdict else {
        unreachable!()
    };
    s.signer.as_mut().unwrap().fingerprint = "AB".repeat(32);
    assert!(r.check().is_err());
}

#[test]
fn a_trailing_signature_is_skipped_anywhere_else_refused() {
    let sig = "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>";
    let r = sample(Kind::Delivery);
    let ok = edited(Kind::Delivery, "</Receipt>", &format!("{sig}</Receipt>"));
    assert_eq!(parse(&ok).unwrap(), r);
    let twice = edited(
        Kind::Delivery,
        "</Receipt>",
        &format!("{sig}{sig}</Receipt>"),
    );
    assert!(matches!(
        parse(&twice),
        Err(ReceiptError::Unexpected { .. })
    ));
    let early = edited(Kind::Delivery, "<Hub>", &format!("{sig}<Hub>"));
    assert!(matches!(
        parse(&early),
        Err(ReceiptError::Unexpected { .. })
    ));
}

#[test]
fn parse_never_panics_on_truncations_and_byte_flips() {
    let bytes = build(&sample(Kind::Failure));
    for end in 0..bytes.len() {
        let _ = parse(&bytes[..end]);
    }
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x20, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let _ = parse(&b);
        }
    }
}

#[test]
fn verify_needs_exactly_one_signature() {
    let keys = dsig::Keys::default();
    let (v, r) = verify(&build(&sample(Kind::Delivery)), &keys, at());
    assert_eq!(v.failure().map(|f| f.code), Some("no-signature"));
    assert!(r.is_none());
    let (v, r) = verify(b"not xml", &keys, at());
    assert_eq!(v.failure().map(|f| f.code), Some("not-xml"));
    assert!(r.is_none());
    let sig = "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>";
    let two = edited(
        Kind::Delivery,
        "</Receipt>",
        &format!("{sig}{sig}</Receipt>"),
    );
    let (v, r) = verify(&two, &keys, at());
    assert_eq!(v.failure().map(|f| f.code), Some("multiple-signatures"));
    assert!(r.is_none());
}
