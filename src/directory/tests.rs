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
