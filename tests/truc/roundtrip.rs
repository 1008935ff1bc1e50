//! Builder → bytes → parser gives back the same model (property test).

use jiff::civil::{Date, DateTime};
use proptest::prelude::*;
use truc::edxml::AgencyId;
use truc::edxml::build::{self, NewAttachment};
use truc::edxml::model::*;

use crate::util::today;

/// Free text: Vietnamese letters, XML metacharacters, tabs and line breaks; starts with a
/// letter so that required values are never blank.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(
        "[A-Za-zĐđƯư][ A-Za-z0-9àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ&<>\"'/.,;:()\\-\t\n\r]{{0,{}}}",
        max - 1
    ))
    .expect("valid regex")
}

fn opt_text(max: usize) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text(max))
}

/// `number/notation`, as `ResponseFor/Code` is written.
fn response_code() -> impl Strategy<Value = String> {
    (text(25), text(25)).prop_map(|(number, notation)| format!("{number}/{notation}"))
}

fn agency() -> impl Strategy<Value = AgencyId> {
    prop_oneof![
        (0u32..1000, 0u32..100, 0u32..100, 0u8..26, 0u32..100).prop_map(|(a, b, c, l, n)| {
            format!("{a:03}.{b:02}.{c:02}.{}{n:02}", (b'A' + l) as char)
        }),
        (
            0u8..25,
            0u32..100,
            proptest::collection::vec("[0-9A-Z]{1,4}", 0..4)
        )
            .prop_map(|(l, n, groups)| {
                let mut s = format!("{}{n:02}", (b'A' + l) as char);
                for g in groups {
                    s.push('.');
                    s.push_str(&g);
                }
                s
            }),
    ]
    .prop_map(|s| AgencyId::parse(&s).expect("generated ids are valid"))
}

fn date() -> impl Strategy<Value = Date> {
    (2000i16..=2025, 1i8..=12, 1i8..=28).prop_map(|(y, m, d)| jiff::civil::date(y, m, d))
}

fn datetime() -> impl Strategy<Value = DateTime> {
    (date(), 0i8..24, 0i8..60, 0i8..60).prop_map(|(d, h, m, s)| d.at(h, m, s, 0))
}

fn organization() -> impl Strategy<Value = Organization> {
    (
        agency(),
        text(200),
        opt_text(200),
        opt_text(500),
        opt_text(100),
        opt_text(50),
        opt_text(50),
        opt_text(200),
    )
        .prop_map(
            |(id, name, in_charge, address, email, telephone, fax, website)| Organization {
                id,
                name,
                in_charge,
                address,
                email,
                telephone,
                fax,
                website,
            },
        )
}

fn staff() -> impl Strategy<Value = StaffInfo> {
    (
        opt_text(100),
        opt_text(100),
        opt_text(50),
        opt_text(100),
        opt_text(50),
        opt_text(50),
    )
        .prop_map(
            |(department, staff, mobile, email, department_id, staff_id)| StaffInfo {
                department,
                staff,
                mobile,
                email,
                department_id,
                staff_id,
            },
        )
}

fn header() -> impl Strategy<Value = MessageHeader> {
    let orgs = (
        organization(),
        proptest::collection::vec(organization(), 1..4),
    );
    let code =
        (text(50), text(50)).prop_map(|(number, notation)| DocumentCode { number, notation });
    let promulgation =
        (opt_text(50), date()).prop_map(|(place, date)| PromulgationInfo { place, date });
    let document_type = (1u32..=2, proptest::option::of(0u32..100), opt_text(100))
        .prop_map(|(kind, detail, name)| DocumentType { kind, detail, name });
    let signer = proptest::option::of((opt_text(100), opt_text(100), opt_text(50)).prop_map(
        |(competence, position, full_name)| SignerInfo {
            competence,
            position,
            full_name,
        },
    ));
    let other = proptest::option::of(
        (
            proptest::option::of(0u32..=4),
            opt_text(100),
            opt_text(10),
            proptest::option::of(0u32..1000),
            proptest::option::of(0u32..1000),
            proptest::collection::vec(text(200), 0..3),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(p, sphere, typer, amount, pages, appendixes, direction)| {
                OtherInfo {
                    priority: p.and_then(Priority::from_code),
                    sphere_of_promulgation: sphere,
                    typer_notation: typer,
                    promulgation_amount: amount,
                    page_amount: pages,
                    appendixes,
                    direction,
                }
            }),
    );
    let response_for = proptest::collection::vec(
        (
            proptest::option::of(agency()),
            proptest::option::of(response_code()),
            proptest::option::of(date()),
            opt_text(200),
        )
            .prop_map(
                |(organ_id, code, promulgation_date, document_id)| ResponseFor {
                    organ_id,
                    code,
                    promulgation_date,
                    document_id,
                },
            ),
        0..3,
    );
    (
        orgs,
        code,
        promulgation,
        document_type,
        (
            text(500),
            opt_text(500),
            signer,
            proptest::option::of(date()),
        ),
        (
            proptest::collection::vec(text(150), 0..3),
            other,
            response_for,
        ),
        (
            proptest::option::of(0u32..10),
            text(200),
            proptest::collection::vec(text(50), 0..3),
            opt_text(50),
        ),
    )
        .prop_map(
            |(
                (from, mut to),
                code,
                promulgation,
                document_type,
                (subject, content, signer, due_date),
                (to_places, other_info, response_for),
                (steering_type, document_id, response_for_task, application_type),
            )| {
                // Recipients are distinct by id.
                let mut seen = std::collections::HashSet::new();
                to.retain(|o| seen.insert(o.id.clone()));
                MessageHeader {
                    from,
                    to,
                    code,
                    promulgation,
                    document_type,
                    subject,
                    content,
                    signer,
                    due_date,
                    to_places,
                    other_info,
                    response_for,
                    steering_type,
                    document_id,
                    response_for_task,
                    application_type,
                }
            },
        )
}

fn trace() -> impl Strategy<Value = TraceHeaderList> {
    let headers = proptest::collection::vec(
        (agency(), datetime()).prop_map(|(organ_id, timestamp)| TraceHeader {
            organ_id,
            timestamp,
        }),
        1..3,
    );
    let business = proptest::option::of(
        (
            0u32..=3,
            opt_text(500),
            opt_text(200),
            proptest::option::of(any::<bool>()),
            proptest::option::of(
                (
                    proptest::option::of(any::<bool>()),
                    proptest::option::of(any::<bool>()),
                    proptest::collection::vec(
                        (agency(), 0u32..=1).prop_map(|(organ_id, receiver_type)| Receiver {
                            organ_id,
                            receiver_type,
                        }),
                        0..3,
                    ),
                )
                    .prop_map(|(document_info, document_receiver, receivers)| {
                        BusinessDocumentInfo {
                            document_info,
                            document_receiver,
                            receivers,
                        }
                    }),
            ),
            proptest::collection::vec(
                (text(200), proptest::collection::vec(agency(), 1..3)).prop_map(
                    |(document_id, organ_ids)| ReplacementInfo {
                        document_id,
                        organ_ids,
                    },
                ),
                1..3,
            ),
            proptest::option::of(staff()),
        )
            .prop_map(
                |(t, reason, document_id, paper, document_info, replacements, staff)| {
                    let doc_type = BusinessDocType::from_code(t).expect("0..=3");
                    Business {
                        doc_type,
                        reason,
                        document_id,
                        paper,
                        document_info,
                        // Only replacements carry a replacement list; they must.
                        replacements: if doc_type == BusinessDocType::Replace {
                            replacements
                        } else {
                            Vec::new()
                        },
                        staff,
                    }
                },
            ),
    );
    (headers, business).prop_map(|(headers, business)| TraceHeaderList { headers, business })
}

fn attachments() -> impl Strategy<Value = Vec<NewAttachment>> {
    proptest::collection::vec(
        (
            text(60),
            opt_text(200),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..3000)
                    .prop_map(|d| ("application/octet-stream".to_owned(), d)),
                proptest::collection::vec(any::<u8>(), 0..200).prop_map(|d| {
                    let mut pdf = b"%PDF-1.7\n".to_vec();
                    pdf.extend(d);
                    ("application/pdf".to_owned(), pdf)
                }),
                proptest::collection::vec(any::<u8>(), 0..200).prop_map(|d| {
                    let mut zip = b"PK\x03\x04".to_vec();
                    zip.extend(d);
                    ("application/zip".to_owned(), zip)
                }),
            ],
        )
            .prop_map(|(name, description, (content_type, data))| NewAttachment {
                content_id: None,
                name,
                description,
                content_type,
                data,
            }),
        0..3,
    )
}

fn status() -> impl Strategy<Value = Status> {
    (
        organization(),
        (
            agency(),
            response_code(),
            proptest::option::of(date()),
            text(200),
        ),
        proptest::option::of(staff()),
        prop_oneof![
            proptest::sample::select(StatusCode::KNOWN.to_vec()).prop_map(str::to_owned),
            "[0-9]{2}"
        ],
        text(2000),
        datetime(),
    )
        .prop_map(
            |(
                from,
                (organ_id, code, promulgation_date, document_id),
                staff,
                sc,
                description,
                t,
            )| {
                Status {
                    from,
                    response_for: StatusResponseFor {
                        organ_id,
                        code,
                        promulgation_date,
                        document_id,
                    },
                    staff,
                    code: StatusCode::parse(&sc).expect("two digits"),
                    description: Some(description),
                    timestamp: Some(t),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn edoc_builder_parse_gives_the_same_model(h in header(), t in trace(), atts in attachments()) {
        let built = build::edoc(&h, &t, &atts, today()).map_err(|r| TestCaseError::fail(r.to_string()))?;
        let expected = Edoc {
            header: h,
            trace: t,
            manifest: atts.iter().zip(built_ids(&built)).map(|(a, id)| ManifestReference {
                content_id: id,
                content_type: a.content_type.clone(),
                description: a.description.clone(),
                attachment_name: a.name.clone(),
            }).collect(),
            attachments: atts.iter().zip(built_ids(&built)).map(|(a, id)| Attachment {
                content_id: id,
                name: a.name.clone(),
                description: a.description.clone(),
                content_type: a.content_type.clone(),
                size: a.data.len() as u64,
                sha256: Sha256::of(&a.data),
                format: PayloadFormat::sniff(&a.data),
            }).collect(),
        };
        prop_assert_eq!(&built.package, &Package::Edoc(expected));
        // And the decoded payloads are the bytes given.
        let parsed = truc::edxml::parse(&built.bytes, &crate::util::strict()).expect("built is valid");
        for (i, a) in atts.iter().enumerate() {
            let decoded = parsed.attachment_data(i);
            prop_assert_eq!(decoded.as_ref(), Some(&a.data));
        }
    }

    #[test]
    fn status_builder_parse_gives_the_same_model(s in status()) {
        let built = build::status(&s, today()).map_err(|r| TestCaseError::fail(r.to_string()))?;
        prop_assert_eq!(built.package, Package::Status(s));
    }
}

/// The content ids the builder chose, in order.
fn built_ids(built: &build::Built) -> Vec<String> {
    match &built.package {
        Package::Edoc(e) => e.manifest.iter().map(|r| r.content_id.clone()).collect(),
        Package::Status(_) => Vec::new(),
    }
}

#[test]
fn builder_refuses_what_strict_refuses() {
    let h = MessageHeader {
        from: Organization::new(AgencyId::parse("000.00.00.G12").unwrap(), "Bộ Tài chính"),
        to: vec![
            Organization::new(AgencyId::parse("000.00.00.H29").unwrap(), "TP HCM"),
            Organization::new(AgencyId::parse("000.00.00.H29").unwrap(), "TP HCM again"),
        ],
        code: DocumentCode {
            number: "1".into(),
            notation: "BTC".into(),
        },
        promulgation: PromulgationInfo {
            place: None,
            date: jiff::civil::date(2030, 1, 1),
        },
        document_type: DocumentType {
            kind: 1,
            detail: None,
            name: None,
        },
        subject: " ".into(),
        content: None,
        signer: None,
        due_date: None,
        to_places: vec![],
        other_info: None,
        response_for: vec![],
        steering_type: None,
        document_id: "x".into(),
        response_for_task: vec![],
        application_type: None,
    };
    let t = TraceHeaderList::default();
    let r = build::edoc(&h, &t, &[], today()).unwrap_err();
    for code in [
        truc::edxml::Code::DuplicateRecipient,
        truc::edxml::Code::EmptyValue,
        truc::edxml::Code::DateInFuture,
        truc::edxml::Code::MissingElement,
    ] {
        assert!(r.has(code), "{code}: {r}");
    }
}
