//! The XSD schemas agree with truc: `xmllint --schema` (libxml2, Debian) accepts every valid
//! fixture and every package the builder emits, and refuses the dirty one.

use std::path::Path;
use std::process::Command;

use truc::edxml::build::{self, NewAttachment};
use truc::edxml::model::*;
use truc::edxml::{self, AgencyId};

use crate::util::*;

fn xmllint(schema: &str, file: &Path) -> (bool, String) {
    let out = Command::new(tool("xmllint", "libxml2-utils"))
        .args(["--noout", "--nonet", "--schema"])
        .arg(root().join("schemas").join(schema))
        .arg(file)
        .output()
        .expect("xmllint runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn schema_for(bytes: &[u8]) -> &'static str {
    match edxml::parse(bytes, &lenient()).map(|p| p.into_package()) {
        Ok(Package::Status(_)) => "edxml-status.xsd",
        _ => "edxml-edoc.xsd",
    }
}

#[test]
fn every_valid_fixture_validates_against_its_schema() {
    for path in fixtures_in("valid") {
        let schema = schema_for(&read(&path));
        let (ok, msg) = xmllint(schema, &path);
        assert!(ok, "{} against {schema}: {msg}", path.display());
    }
}

#[test]
fn the_dirty_package_fails_the_strict_schema_too() {
    let path = fixture("lenient/edoc_vnpt_dirty.edxml");
    let (ok, msg) = xmllint("edxml-edoc.xsd", &path);
    assert!(!ok);
    assert!(msg.contains("01.02.G22"), "{msg}");
}

#[test]
fn invalid_fixtures_that_xsd_can_express_fail_it() {
    for (file, schema) in [
        ("missing_mandatory.edxml", "edxml-edoc.xsd"),
        ("bad_dates.edxml", "edxml-edoc.xsd"),
        ("duplicate_recipients.edxml", "edxml-edoc.xsd"),
        ("bad_base64.edxml", "edxml-edoc.xsd"),
        ("wrong_namespace.edxml", "edxml-edoc.xsd"),
        ("status_missing_code.edxml", "edxml-status.xsd"),
    ] {
        let (ok, _) = xmllint(schema, &fixture(&format!("invalid/{file}")));
        assert!(!ok, "{file} should fail {schema}");
    }
}

#[test]
fn builder_output_validates_against_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let g12 = AgencyId::parse("000.00.00.G12").unwrap();
    let mut from = Organization::new(g12.clone(), "Bộ Tài chính & <Văn phòng>");
    from.email = Some("vanthu@mof.example.vn".into());
    let header = MessageHeader {
        from: from.clone(),
        to: vec![
            Organization::new(
                AgencyId::parse("000.00.00.H29").unwrap(),
                "UBND TP. Hồ Chí Minh",
            ),
            Organization::new(AgencyId::parse("G09.20").unwrap(), "Đơn vị \"thử\""),
        ],
        code: DocumentCode {
            number: "77".into(),
            notation: "BTC-VP".into(),
        },
        promulgation: PromulgationInfo {
            place: Some("Hà Nội".into()),
            date: jiff::civil::date(2026, 5, 4),
        },
        document_type: DocumentType {
            kind: 1,
            detail: Some(0),
            name: Some("Công văn".into()),
        },
        subject: "V/v thử nghiệm <trục> & \"ký tự\"\r\nđặc biệt".into(),
        content: Some("Nội dung".into()),
        signer: Some(SignerInfo {
            competence: Some("KT. BỘ TRƯỞNG".into()),
            ..Default::default()
        }),
        due_date: Some(jiff::civil::date(2026, 6, 1)),
        to_places: vec!["Như trên".into()],
        other_info: Some(OtherInfo {
            priority: Some(Priority::Urgent),
            appendixes: vec!["Phụ lục 1".into()],
            direction: Some(true),
            ..Default::default()
        }),
        response_for: vec![ResponseFor {
            organ_id: Some(AgencyId::parse("000.00.00.H29").unwrap()),
            code: Some("12/UBND-VX".into()),
            ..Default::default()
        }],
        steering_type: Some(0),
        document_id: "000.00.00.G12,2026/05/04,77/BTC-VP".into(),
        response_for_task: vec!["T-1".into()],
        application_type: Some("1".into()),
    };
    let mut business = Business::new(BusinessDocType::Replace);
    business.replacements = vec![ReplacementInfo {
        document_id: "000.00.00.G12,2026/05/01,70/BTC-VP".into(),
        organ_ids: vec![AgencyId::parse("000.00.00.H29").unwrap()],
    }];
    business.document_info = Some(BusinessDocumentInfo {
        document_info: Some(true),
        document_receiver: Some(false),
        receivers: vec![Receiver {
            organ_id: g12.clone(),
            receiver_type: 1,
        }],
    });
    business.staff = Some(StaffInfo {
        staff: Some("Trần Thị B".into()),
        ..Default::default()
    });
    let trace = TraceHeaderList {
        headers: vec![TraceHeader {
            organ_id: g12.clone(),
            timestamp: jiff::civil::date(2026, 5, 4).at(9, 0, 0, 0),
        }],
        business: Some(business),
    };
    let attachments = vec![
        NewAttachment {
            content_id: None,
            name: "77-BTC-VP.pdf".into(),
            description: Some("Bản PDF".into()),
            content_type: "application/pdf".into(),
            data: b"%PDF-1.4\n%%EOF\n".to_vec(),
        },
        NewAttachment {
            content_id: Some("cid:phu-luc".into()),
            name: "phu-luc.zip".into(),
            description: None,
            content_type: "application/zip".into(),
            data: b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
        },
    ];
    let edoc = build::edoc(&header, &trace, &attachments, today()).unwrap();
    let edoc_path = dir.path().join("edoc.edxml");
    std::fs::write(&edoc_path, &edoc.bytes).unwrap();
    let (ok, msg) = xmllint("edxml-edoc.xsd", &edoc_path);
    assert!(ok, "builder edoc: {msg}");

    for code in StatusCode::KNOWN {
        let status = Status {
            from: from.clone(),
            response_for: StatusResponseFor {
                organ_id: AgencyId::parse("000.00.00.H29").unwrap(),
                code: "77/BTC-VP".into(),
                promulgation_date: Some(jiff::civil::date(2026, 5, 4)),
                document_id: "000.00.00.G12,2026/05/04,77/BTC-VP".into(),
            },
            staff: Some(StaffInfo {
                department: Some("Văn thư".into()),
                ..Default::default()
            }),
            code: StatusCode::parse(code).unwrap(),
            description: Some("Lý do: thử".into()),
            timestamp: Some(jiff::civil::date(2026, 5, 4).at(10, 0, 0, 0)),
        };
        let built = build::status(&status, today()).unwrap();
        let path = dir.path().join(format!("status_{code}.edxml"));
        std::fs::write(&path, &built.bytes).unwrap();
        let (ok, msg) = xmllint("edxml-status.xsd", &path);
        assert!(ok, "builder status {code}: {msg}");
    }
}
