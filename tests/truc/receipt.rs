//! Signed receipts as outsiders check them: for every kind, a receipt signed with the hub's
//! receipt key (`certs-test/hub/receipt.key`, P-256, chain in `receipt.pem`) validates against
//! `schemas/receipt.xsd` with `xmllint`, verifies with `xmlsec1 verify --trusted-pem
//! certs-test/root-ca.pem`, and verifies with `receipt::verify` against the same root and
//! reads back to the data it was built from. A receipt with one digit of its package digest
//! changed fails both verifiers (and still passes the schema: the schema is no integrity
//! check). The package the receipts speak of is a real fixture signed by an agency and
//! verified as the hub does, so the verdict recorded is a real [`dsig::Report`].

use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::Timestamp;
use truc::dsig::{self, KeySource, Keys, SelfCheck, Signer, Verdict};
use truc::edxml::model::{Package, Sha256};
use truc::pki::{Certificate, TrustStore};
use truc::receipt::{self, Kind, Receipt, ReceiptError, VerdictSummary, receipt_id};

use super::dsig_interop::{AT, pki, xmlsec1_ok, xmlsec1_verify};
use super::util::*;

const HUB_SUBJECT: &str = "C=VN, O=truc test PKI, OU=truc hub, CN=truc hub receipts";

fn now() -> Timestamp {
    AT.parse().unwrap()
}

fn certs(name: &str) -> Vec<Certificate> {
    Certificate::load(Path::new(&pki(name, "pem"))).unwrap()
}

/// The hub's receipt signer: the P-256 key and its certificate followed by the issuing CA,
/// with the self-check the hub uses (`SelfCheck::Canonical`, set in `hub::config`), so the
/// xmlsec1 and truc verifications below are what vouch for that path.
fn hub_signer() -> Signer {
    let chain = certs("hub/receipt");
    assert_eq!(
        chain.len(),
        2,
        "receipt.pem holds the certificate and its issuing CA"
    );
    Signer::from_pem(&read(Path::new(&pki("hub/receipt", "key"))), chain)
        .unwrap()
        .with_self_check(SelfCheck::Canonical)
}

/// Trust in the test root only.
fn rooted() -> Keys {
    Keys {
        trust: TrustStore::new(certs("root-ca"), Vec::new()),
        ..Keys::default()
    }
}

/// A real package signed by Bộ Tài chính (G12), verified as the hub verifies packages:
/// the bytes, the model and the report.
fn accepted_package() -> (Vec<u8>, Package, dsig::Report) {
    let unsigned = read(&fixture("valid/edoc_new_2recipients.edxml"));
    let g12 = Signer::from_pem(
        &read(Path::new(&pki("agencies/000.00.00.G12/sign", "key"))),
        certs("agencies/000.00.00.G12/sign"),
    )
    .unwrap();
    let signed = g12.sign_package(&unsigned, &strict()).unwrap();
    let verified = dsig::verify_package(&signed, &strict(), &rooted(), false, now()).unwrap();
    let (package, report) = (verified.package().clone(), verified.report().clone());
    (signed, package, report)
}

/// The receipt of `kind` for the accepted package, with strings that need escaping.
fn receipt_for(kind: Kind, bytes: &[u8], package: &Package, report: &dsig::Report) -> Receipt {
    let message = "00000000000000a7";
    let delivery = "00000000000000a7-1";
    let recipients: Vec<String> = package
        .recipients()
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    assert_eq!(recipients.len(), 2);
    let document_id = match package {
        Package::Edoc(e) => Some(e.header.document_id.clone()),
        Package::Status(_) => None,
    };
    Receipt {
        id: receipt_id(
            kind,
            if kind.is_per_recipient() {
                delivery
            } else {
                message
            },
        ),
        kind,
        issued_at: "2026-11-23T01:02:03.5Z".parse().unwrap(),
        hub: "Trục liên thông văn bản quốc gia <test> & \"staging\"".into(),
        message_id: message.into(),
        document_id,
        sender: package.sender().as_str().into(),
        recipients: if kind.is_per_recipient() {
            recipients[1..].to_vec()
        } else {
            recipients
        },
        package_sha256: Sha256::of(bytes),
        verdict: VerdictSummary::from_report(report),
        delivery_id: kind.is_per_recipient().then(|| delivery.into()),
        attempts: kind.is_per_recipient().then_some(2),
        reason: match kind {
            Kind::Failure => Some("HTTP 422 từ đơn vị nhận: <Lỗi> \"gói tin\" & 'chữ ký'".into()),
            Kind::Cancellation => Some("thu hồi văn bản (BusinessDocType 2)".into()),
            _ => None,
        },
    }
}

/// `xmllint --schema schemas/receipt.xsd` of a receipt file: whether it validates, and why not.
pub(crate) fn xmllint(file: &Path) -> (bool, String) {
    let out = Command::new(tool("xmllint", "libxml2-utils"))
        .args(["--noout", "--nonet", "--schema"])
        .arg(root().join("schemas/receipt.xsd"))
        .arg(file)
        .output()
        .expect("xmllint runs");
    (out.status.success(), stderr(&out))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn every_kind_validates_and_verifies_with_xmllint_xmlsec1_and_truc() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, package, report) = accepted_package();
    let signer = hub_signer();
    // The verdict recorded is the agency's, as the verifier reported it.
    let VerdictSummary::Valid(summary) = VerdictSummary::from_report(&report) else {
        unreachable!("from_report gives a valid summary");
    };
    let g12 = certs("agencies/000.00.00.G12/sign");
    assert_eq!(
        summary.signer.as_ref().map(|s| s.fingerprint.as_str()),
        Some(g12[0].fingerprint.as_str())
    );
    assert_eq!(summary.key, "RSA-2048");
    assert_eq!(summary.key_source, KeySource::TrustedChain);
    assert_eq!(
        summary.trust_anchor.as_deref(),
        Some(certs("root-ca")[0].subject.as_str())
    );
    assert_eq!(
        summary.signature_method,
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    assert_eq!(
        summary.digest_method,
        "http://www.w3.org/2001/04/xmlenc#sha256"
    );
    assert_eq!(
        summary.canonicalization,
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    );

    for kind in Kind::ALL {
        let r = receipt_for(kind, &bytes, &package, &report);
        let signed = receipt::sign(&r, &signer).unwrap();
        let file = write(dir.path(), &format!("{kind}.xml"), &signed);

        let (ok, msg) = xmllint(&file);
        assert!(ok, "{kind}: xmllint: {msg}");

        let x = xmlsec1_verify(&file, &[]);
        assert!(xmlsec1_ok(&x), "{kind}: xmlsec1 verify: {}", stderr(&x));

        let (verdict, back) = receipt::verify(&signed, &rooted(), now());
        let Verdict::Valid(rep) = &verdict else {
            panic!("{kind}: {verdict}");
        };
        assert_eq!(
            rep.signer.as_ref().map(|s| s.subject.as_str()),
            Some(HUB_SUBJECT)
        );
        assert_eq!(rep.key, "EC-P256");
        assert_eq!(
            rep.signature_method,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
        );
        assert_eq!(rep.chain.len(), 3, "{kind}: receipt, issuing CA, root");
        assert_eq!(back.as_ref(), Some(&r), "{kind}");
        // Reading without verifying gives the same data.
        assert_eq!(receipt::parse(&signed).unwrap(), r, "{kind}");
    }
}

#[test]
fn an_unsigned_package_and_the_unsigned_form_validate_too() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, package, report) = accepted_package();
    let mut r = receipt_for(Kind::Acceptance, &bytes, &package, &report);
    r.verdict = VerdictSummary::Unsigned;
    r.document_id = None;
    let built = write(dir.path(), "built.xml", &receipt::build(&r));
    let (ok, msg) = xmllint(&built);
    assert!(ok, "unsigned form: {msg}");
    let signed = receipt::sign(&r, &hub_signer()).unwrap();
    let file = write(dir.path(), "signed.xml", &signed);
    let (ok, msg) = xmllint(&file);
    assert!(ok, "{msg}");
    assert!(xmlsec1_ok(&xmlsec1_verify(&file, &[])));
    assert_eq!(receipt::verify(&signed, &rooted(), now()).1, Some(r));
}

#[test]
fn a_tampered_package_digest_fails_xmlsec1_and_truc() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, package, report) = accepted_package();
    for kind in [Kind::Acceptance, Kind::Failure] {
        let r = receipt_for(kind, &bytes, &package, &report);
        let signed = receipt::sign(&r, &hub_signer()).unwrap();
        let hex = r.package_sha256.hex();
        let text = String::from_utf8(signed).unwrap();
        let at = text.find(&hex).unwrap() + 10;
        let mut tampered = text.into_bytes();
        tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
        let file = write(dir.path(), &format!("tampered-{kind}.xml"), &tampered);

        // Still a well-formed receipt by the schema: integrity is the signature's job.
        let (ok, msg) = xmllint(&file);
        assert!(ok, "{msg}");

        let x = xmlsec1_verify(&file, &[]);
        assert!(
            !x.status.success() && !xmlsec1_ok(&x),
            "{kind}: xmlsec1 accepted it"
        );

        let (verdict, back) = receipt::verify(&tampered, &rooted(), now());
        assert!(matches!(verdict, Verdict::Invalid(_)), "{kind}: {verdict}");
        assert_eq!(verdict.failure().map(|f| f.code), Some("digest-mismatch"));
        assert!(back.is_none());
        // Unverified reading sees the changed digest: which is why `verify` exists.
        assert_ne!(
            receipt::parse(&tampered).unwrap().package_sha256,
            r.package_sha256
        );
    }
}

#[test]
fn trust_is_whatever_the_keys_say() {
    let (bytes, package, report) = accepted_package();
    let r = receipt_for(Kind::Delivery, &bytes, &package, &report);
    let signed = receipt::sign(&r, &hub_signer()).unwrap();

    // An unrelated anchor: untrusted, and no content.
    let other = Keys {
        trust: TrustStore::new(certs("bad/unknown-ca"), Vec::new()),
        ..Keys::default()
    };
    let (verdict, back) = receipt::verify(&signed, &other, now());
    assert!(matches!(verdict, Verdict::Untrusted(_)), "{verdict}");
    assert!(back.is_none());

    // Pinned to the hub's certificate: valid. Pinned to an agency's: the signature does not
    // verify with that key.
    let pinned = |name: &str| Keys {
        pinned_certs: certs(name)[..1].to_vec(),
        ..Keys::default()
    };
    let (verdict, back) = receipt::verify(&signed, &pinned("hub/receipt"), now());
    assert!(matches!(verdict, Verdict::Valid(_)), "{verdict}");
    assert_eq!(back, Some(r));
    let (verdict, back) = receipt::verify(&signed, &pinned("agencies/000.00.00.H29/sign"), now());
    assert!(!matches!(verdict, Verdict::Valid(_)), "{verdict}");
    assert!(back.is_none());
}

#[test]
fn the_schema_refuses_what_truc_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, package, report) = accepted_package();
    let r = receipt_for(Kind::Delivery, &bytes, &package, &report);
    let text = String::from_utf8(receipt::build(&r)).unwrap();
    let digest = r.package_sha256.hex();
    let sender = format!("<Sender>{}</Sender>", r.sender);
    let edits = [
        ("<Kind>delivery</Kind>", "<Kind>delivered</Kind>"),
        (digest.as_str(), &digest.to_uppercase()),
        (
            "<IssuedAt>2026-11-23T01:02:03.5Z",
            "<IssuedAt>2026-11-23T08:02:03.5+07:00",
        ),
        ("<Attempts>2</Attempts>", "<Attempts>-1</Attempts>"),
        ("<KeySource>trusted-chain", "<KeySource>trusted"),
        (sender.as_str(), ""),
        ("<Hub>", "<Hub lang=\"vi\">"),
        ("</Receipt>", "<Extra/></Receipt>"),
    ];
    for (i, (from, to)) in edits.iter().enumerate() {
        assert!(text.contains(from), "{from}");
        let edited = text.replacen(from, to, 1);
        let file = write(dir.path(), &format!("edit-{i}.xml"), edited.as_bytes());
        let (ok, _) = xmllint(&file);
        assert!(!ok, "the schema accepted {from} -> {to}");
        assert!(
            receipt::parse(edited.as_bytes()).is_err(),
            "truc accepted {from} -> {to}"
        );
    }
}

#[test]
fn signing_refuses_a_receipt_that_breaks_its_kind() {
    let (bytes, package, report) = accepted_package();
    let mut r = receipt_for(Kind::Failure, &bytes, &package, &report);
    r.reason = None;
    let e = receipt::sign(&r, &hub_signer()).unwrap_err();
    assert!(
        matches!(
            &e,
            ReceiptError::Inconsistent {
                kind: Kind::Failure,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.to_string(), "failure receipt: no reason");
}

#[test]
fn signing_refuses_a_signer_outside_the_receipt_profile() {
    let (bytes, package, report) = accepted_package();
    let r = receipt_for(Kind::Acceptance, &bytes, &package, &report);
    let inclusive = hub_signer().with_c14n(truc::dsig::c14n::Method::C14n10);
    let e = receipt::sign(&r, &inclusive).unwrap_err();
    assert!(
        matches!(
            &e,
            ReceiptError::Profile {
                what: "CanonicalizationMethod",
                ..
            }
        ),
        "{e}"
    );
    let sha384 = hub_signer().with_digest(dsig::Hash::Sha384).unwrap();
    let e = receipt::sign(&r, &sha384).unwrap_err();
    assert!(
        matches!(&e, ReceiptError::Profile { what: "DigestMethod", found, .. }
            if found == "http://www.w3.org/2001/04/xmldsig-more#sha384"),
        "{e}"
    );
    // The same receipt with the hub's signer is fine.
    assert!(receipt::sign(&r, &hub_signer()).is_ok());
}
