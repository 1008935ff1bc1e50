//! The demo directory of `certs-test/` and the binding rules.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use super::*;

fn pki(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("certs-test")
        .join(rel)
}

fn cert(rel: &str) -> Certificate {
    Certificate::load(&pki(rel)).unwrap().remove(0)
}

fn demo() -> Directory {
    Directory::load(&pki("directory.toml")).unwrap()
}

fn now() -> Timestamp {
    "2026-11-23T00:00:00Z".parse().unwrap()
}

const AGENCIES: [&str; 4] = [
    "000.00.00.G12",
    "000.00.00.H29",
    "000.00.00.H41",
    "000.00.00.G22",
];

#[test]
fn every_agency_signs_for_itself_and_for_no_one_else() {
    let dir = demo();
    for signer in AGENCIES {
        let c = cert(&format!("agencies/{signer}/sign.pem"));
        for sender in AGENCIES {
            let r = dir.authorize_signer(sender, Some(&c));
            assert_eq!(
                r.is_ok(),
                signer == sender,
                "{signer} signing for {sender}: {r:?}"
            );
        }
    }
}

#[test]
fn each_rule_kind_is_exercised() {
    let dir = demo();
    let by = |id: &str| {
        dir.authorize_signer(id, Some(&cert(&format!("agencies/{id}/sign.pem"))))
            .unwrap()
            .by
    };
    assert_eq!(by("000.00.00.G12"), "subject serialNumber=000.00.00.G12");
    assert_eq!(by("000.00.00.H29"), "subject OU=000.00.00.H29");
    assert_eq!(
        by("000.00.00.H41"),
        "subjectAltName URI urn:truc:agency:000.00.00.H41"
    );
    assert_eq!(by("000.00.00.G22"), "pinned certificate fingerprint");
}

#[test]
fn refusals_say_why() {
    let dir = demo();
    let g12 = cert("agencies/000.00.00.G12/sign.pem");
    let e = dir
        .authorize_signer("000.00.00.H29", Some(&g12))
        .unwrap_err();
    assert_eq!(NotAuthorized::CODE, "signer-not-authorized-for-sender");
    let text = e.to_string();
    assert!(
        text.contains(&g12.fingerprint) && text.contains("000.00.00.H29"),
        "{text}"
    );
    let e = dir
        .authorize_signer("000.00.00.H99", Some(&g12))
        .unwrap_err();
    assert!(e.reason.contains("not in the agency directory"), "{e}");
    let e = dir.authorize_signer("000.00.00.G12", None).unwrap_err();
    assert!(e.reason.contains("without a certificate"), "{e}");
}

#[test]
fn client_certificates_map_to_their_agency() {
    let dir = demo();
    let trust =
        crate::pki::TrustStore::new(Certificate::load(&pki("root-ca.pem")).unwrap(), Vec::new());
    for id in AGENCIES {
        let chain = Certificate::load(&pki(&format!("agencies/{id}/client.pem"))).unwrap();
        let (agency, path) = dir.authenticate_client(&trust, &chain, now()).unwrap();
        assert_eq!(agency.id.as_str(), id);
        assert_eq!(path.chain.len(), 3);
    }
    // The hub's server certificate is not a client certificate.
    let chain = Certificate::load(&pki("hub/tls.pem")).unwrap();
    let e = dir.authenticate_client(&trust, &chain, now()).unwrap_err();
    assert!(
        matches!(e, ClientError::Untrusted(ref r) if r.contains("extendedKeyUsage")),
        "{e}"
    );
    // A trusted client certificate that names no agency.
    let chain = Certificate::load(&pki("hub/receipt.pem")).unwrap();
    let e = dir.authenticate_client(&trust, &chain, now()).unwrap_err();
    assert!(matches!(e, ClientError::NoAgency(_)), "{e}");
    // An expired one never reaches the rules.
    let chain = Certificate::load(&pki("bad/expired.pem")).unwrap();
    assert!(matches!(
        dir.authenticate_client(&trust, &chain, now()),
        Err(ClientError::Untrusted(_))
    ));
}

#[test]
fn a_certificate_admitted_by_two_agencies_is_refused() {
    let g12 = Certificate::load(&pki("agencies/000.00.00.G12/client.pem")).unwrap();
    let toml = format!(
        r#"
[[agency]]
id = "000.00.00.G12"
name = "a"
[[agency]]
id = "000.00.00.G09"
name = "b"
[agency.clients]
fingerprints = ["{}"]
[agency.signers]
subject = ["serialNumber"]
"#,
        g12[0].fingerprint
    );
    let mut dir = Directory::from_toml(&toml).unwrap();
    dir.agencies.get_mut("000.00.00.G12").unwrap().clients = Rule {
        attributes: vec![ATTRIBUTES[0]],
        ..Rule::default()
    };
    let trust =
        crate::pki::TrustStore::new(Certificate::load(&pki("root-ca.pem")).unwrap(), Vec::new());
    let e = dir.authenticate_client(&trust, &g12, now()).unwrap_err();
    assert!(
        matches!(e, ClientError::Ambiguous { ref agencies, .. } if agencies.len() == 2),
        "{e}"
    );
}

#[test]
fn tokens_authenticate_by_their_hash() {
    let dir = demo();
    for id in AGENCIES {
        let token = std::fs::read_to_string(pki(&format!("agencies/{id}/token"))).unwrap();
        let agency = dir.token_agency(token.trim()).unwrap();
        assert_eq!(agency.id.as_str(), id);
    }
    assert!(dir.token_agency("not a token").is_none());
    assert!(dir.token_agency("").is_none());
}

#[test]
fn bad_directories_are_refused_with_the_reason() {
    let cases = [
        (
            "[[agency]]\nid = \"x\"\nname = \"n\"\n",
            "not an agency identifier",
        ),
        (
            "[[agency]]\nid = \"000.00.00.G12\"\nname = \"a\"\n[[agency]]\nid = \"000.00.00.G12\"\nname = \"b\"\n",
            "listed twice",
        ),
        (
            "[[agency]]\nid = \"000.00.00.G12\"\nname = \"a\"\n[agency.signers]\nfingerprints = [\"abc\"]\n",
            "not a SHA-256 fingerprint",
        ),
        (
            "[[agency]]\nid = \"000.00.00.G12\"\nname = \"a\"\n[agency.signers]\nsubject = [\"title\"]\n",
            "unknown subject attribute",
        ),
        (
            "[defaults.signers]\nsan_uri = \"urn:fixed\"\n",
            "must contain {id}",
        ),
        (
            "[defaults.signers]\nfingerprints = [\"00000000000000000000000000000000000000000000000000000000000000ff\"]\n",
            "cannot be set in [defaults]",
        ),
        (
            "[[agency]]\nid = \"000.00.00.G12\"\nname = \"a\"\ncolour = 1\n",
            "unknown field",
        ),
        (
            "[[agency]]\nid = \"000.00.00.G12\"\nname = \"a\"\ntoken_sha256 = \"zz\"\n",
            "not a SHA-256 hash",
        ),
    ];
    for (toml, expected) in cases {
        let e = Directory::from_toml(toml).unwrap_err().to_string();
        assert!(e.contains(expected), "{toml:?}: {e}");
    }
}

#[test]
fn fingerprints_accept_colons_and_upper_case() {
    let c = cert("agencies/000.00.00.H41/sign.pem");
    let colons: Vec<String> = c
        .fingerprint
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let toml = format!(
        "[[agency]]\nid = \"000.00.00.H41\"\nname = \"a\"\n[agency.signers]\nfingerprints = [\"{}\"]\n",
        colons.join(":")
    );
    let dir = Directory::from_toml(&toml).unwrap();
    assert!(dir.authorize_signer("000.00.00.H41", Some(&c)).is_ok());
    let empty = Directory::from_toml("[[agency]]\nid = \"000.00.00.H41\"\nname = \"a\"\n").unwrap();
    let e = empty
        .authorize_signer("000.00.00.H41", Some(&c))
        .unwrap_err();
    assert!(e.reason.contains("lists no signer"), "{e}");
}

#[test]
fn the_demo_directory_has_its_delivery_modes_and_policies() {
    let dir = demo();
    for id in ["000.00.00.G12", "000.00.00.H29", "000.00.00.G22"] {
        assert_eq!(dir.agency(id).unwrap().delivery, Delivery::Pull, "{id}");
    }
    match &dir.agency("000.00.00.H41").unwrap().delivery {
        Delivery::Push { url, ca } => {
            assert_eq!(url.to_string(), "https://127.0.0.1:8445/inbox");
            assert_eq!(ca, &None);
        }
        other => panic!("H41 should be pushed to: {other:?}"),
    }
    let strict = AgencyPolicy {
        signature_required: true,
        allow_legacy: false,
        lenient: false,
    };
    for id in ["000.00.00.G12", "000.00.00.H29", "000.00.00.H41"] {
        assert_eq!(dir.agency(id).unwrap().policy, strict, "{id}");
    }
    assert_eq!(
        dir.agency("000.00.00.G22").unwrap().policy,
        AgencyPolicy {
            allow_legacy: true,
            ..strict
        }
    );
}

#[test]
fn delivery_and_policy_default_to_pull_and_strict() {
    let dir = Directory::from_toml("[[agency]]\nid = \"000.00.00.G12\"\nname = \"a\"\n").unwrap();
    let a = dir.agency("000.00.00.G12").unwrap();
    assert_eq!(a.delivery, Delivery::Pull);
    assert_eq!(a.policy, AgencyPolicy::default());
    assert!(a.policy.signature_required && !a.policy.allow_legacy && !a.policy.lenient);
    let dir = Directory::from_toml(
        "[[agency]]\nid = \"000.00.00.G12\"\nname = \"a\"\n[agency.policy]\nlenient = true\nsignature_required = false\n",
    )
    .unwrap();
    let p = dir.agency("000.00.00.G12").unwrap().policy;
    assert!(!p.signature_required && !p.allow_legacy && p.lenient);
}

#[test]
fn push_ca_is_resolved_against_the_directory_file() {
    let text = "[[agency]]\nid = \"000.00.00.H41\"\nname = \"a\"\ndelivery = \"push\"\npush_url = \"https://recv.example:9443/in\"\npush_ca = \"ca/recv.pem\"\n";
    let dir = Directory::from_toml(text).unwrap();
    let Delivery::Push { ca, url } = &dir.agency("000.00.00.H41").unwrap().delivery else {
        panic!("push")
    };
    assert_eq!(ca.as_deref(), Some(Path::new("ca/recv.pem")));
    assert_eq!(url.port_u16(), Some(9443));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("directory.toml");
    std::fs::write(&file, text).unwrap();
    let dir = Directory::load(&file).unwrap();
    let Delivery::Push { ca, .. } = &dir.agency("000.00.00.H41").unwrap().delivery else {
        panic!("push")
    };
    assert_eq!(
        ca.as_deref(),
        Some(tmp.path().join("ca/recv.pem").as_path())
    );
}

#[test]
fn bad_delivery_and_policy_settings_are_refused() {
    let agency = "[[agency]]\nid = \"000.00.00.H41\"\nname = \"a\"\n";
    let cases = [
        ("delivery = \"push\"\n", "needs a push_url"),
        (
            "delivery = \"push\"\npush_url = \"http://127.0.0.1/in\"\n",
            "must be an https:// URL",
        ),
        (
            "delivery = \"push\"\npush_url = \"/inbox\"\n",
            "must be an https:// URL",
        ),
        ("delivery = \"push\"\npush_url = \"https://\"\n", "push_url"),
        (
            "delivery = \"push\"\npush_url = \"not a url\"\n",
            "not a URL",
        ),
        (
            "push_url = \"https://127.0.0.1/in\"\n",
            "need delivery = \"push\"",
        ),
        (
            "delivery = \"pull\"\npush_ca = \"ca.pem\"\n",
            "need delivery",
        ),
        ("delivery = \"carrier-pigeon\"\n", "unknown variant"),
        ("[agency.policy]\nstrict = true\n", "unknown field"),
        ("[agency.policy]\nallow_legacy = \"yes\"\n", "invalid type"),
    ];
    for (extra, expected) in cases {
        let toml = format!("{agency}{extra}");
        let e = Directory::from_toml(&toml).unwrap_err().to_string();
        assert!(e.contains(expected), "{toml:?}: {e}");
    }
}
