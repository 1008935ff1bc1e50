//! The signature-wrapping (XSW) catalogue of `../shared/XMLDSIG.md` §4, rebuilt against an
//! edXML package, and hostile XML (XXE, entity bombs, external references).
//!
//! Each attack starts from a genuinely signed package (or, for `#id` references, a document
//! signed by Debian's xmlsec1) and must not come out valid under the package policy.

use std::path::Path;
use std::process::Command;

use jiff::Timestamp;
use truc::dsig::{self, Keys, Policy, Signer, Verdict};
use truc::edxml::Package;
use truc::pki::{Certificate, TrustStore};

use crate::util::*;

fn certs(name: &str) -> Vec<Certificate> {
    Certificate::load(&root().join("certs-test").join(format!("{name}.pem"))).unwrap()
}

fn now() -> Timestamp {
    "2026-11-23T00:00:00Z".parse().unwrap()
}

fn keys() -> Keys {
    Keys {
        trust: TrustStore::new(certs("root-ca"), Vec::new()),
        ..Keys::default()
    }
}

fn signer() -> Signer {
    // The signer's file carries its chain.
    let chain = certs("agencies/000.00.00.G12/sign");
    let key = read(&root().join("certs-test/agencies/000.00.00.G12/sign.key"));
    Signer::from_pem(&key, chain).unwrap()
}

/// A validly signed package (the main fixture family).
fn signed_package() -> String {
    let bytes = read(&fixture("valid/edoc_new_2recipients.edxml"));
    String::from_utf8(signer().sign_package(&bytes, &strict()).unwrap()).unwrap()
}

/// Verdict of the package policy (`truc verify`'s logic).
fn package_verdict(bytes: &str) -> Result<Package, String> {
    dsig::verify_package(bytes.as_bytes(), &strict(), &keys(), false, now())
        .map(|v| v.package().clone())
        .map_err(|e| e.to_string())
}

/// Verdict of generic core validation, strict or not.
fn generic(bytes: &str, strict: bool) -> Verdict {
    let policy = Policy {
        allow_legacy: false,
        strict,
    };
    dsig::verify(bytes.as_bytes(), &keys(), &policy, now())
}

fn signature_element(s: &str) -> &str {
    let start = s.find("<ds:Signature").unwrap();
    let end = s.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    &s[start..end]
}

#[test]
fn the_genuine_package_verifies() {
    let s = signed_package();
    let p = package_verdict(&s).unwrap();
    let Package::Edoc(e) = p else { panic!() };
    assert!(e.header.subject.starts_with("V/v triển khai"));
}

#[test]
fn wrapping_attacks_on_a_package_are_refused() {
    let s = signed_package();
    let sig = signature_element(&s).to_owned();
    let evil_subject = "V/v THU HỒI toàn bộ quỹ đất";
    let evil = s.replacen("V/v triển khai Chương trình", evil_subject, 1);
    // The genuine envelope, for copies hidden elsewhere.
    let env_start = s.find("<edXML:edXMLEnvelope").unwrap();
    let env_end = s.find("</edXML:edXMLEnvelope>").unwrap() + "</edXML:edXMLEnvelope>".len();
    let genuine_env = s[env_start..env_end].replace(&sig, "");

    let attacks: Vec<(&str, String)> = vec![
        ("plain tampering", evil.clone()),
        (
            // XSW1/XSW8: the genuine content tucked into ds:Object, evil content in place.
            "XSW1 genuine copy inside ds:Object",
            evil.replacen(
                "</ds:Signature>",
                &format!("<ds:Object>{genuine_env}</ds:Object></ds:Signature>"),
                1,
            ),
        ),
        (
            // XSW2/XSW7: an evil header before the genuine one.
            "XSW2 evil header first",
            s.replacen(
                "<edXML:edXMLHeader>",
                &format!(
                    "<edXML:edXMLHeader><edXML:Subject>{evil_subject}</edXML:Subject></edXML:edXMLHeader><edXML:edXMLHeader>"
                ),
                1,
            ),
        ),
        (
            // XSW4: an evil root wraps the genuine document.
            "XSW4 evil wrapper",
            {
                let root_start = s.find("<edXML ").unwrap();
                format!(
                    "{}<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">{}{}</edXML>",
                    &s[..root_start],
                    &evil[evil.find("<edXML ").unwrap()..],
                    ""
                )
            },
        ),
        (
            "two signatures",
            s.replacen("</edXML:edXMLHeader>", &format!("{sig}</edXML:edXMLHeader>"), 1),
        ),
        (
            "signature moved into the body",
            s.replacen(&sig, "", 1)
                .replacen("<edXML:edXMLBody>", &format!("<edXML:edXMLBody>{sig}"), 1),
        ),
        (
            "reference narrowed to an element",
            s.replacen("<ds:Reference URI=\"\">", "<ds:Reference URI=\"#trace-356-bxd-qln\">", 1),
        ),
        (
            "XPath transform added",
            s.replacen(
                "<ds:Transforms>",
                "<ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath>not(ancestor-or-self::*[local-name()='Subject'])</ds:XPath></ds:Transform>",
                1,
            ),
        ),
        (
            "external reference",
            s.replacen("<ds:Reference URI=\"\">", "<ds:Reference URI=\"http://127.0.0.1:9/pkg.xml\">", 1),
        ),
        (
            "HMAC keyed with the certificate",
            s.replacen(
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
                1,
            ),
        ),
        (
            "duplicate Id",
            s.replacen(
                "<edXML:edXMLBody>",
                "<edXML:edXMLBody><edXML:X id=\"trace-356-bxd-qln\"/>",
                1,
            ),
        ),
    ];
    let mut accepted = Vec::new();
    for (name, doc) in &attacks {
        if let Ok(p) = package_verdict(doc) {
            accepted.push(format!("{name}: package accepted: {p:?}"));
        }
        // Moving the signature changes no signed byte: only the package placement rule
        // (which `dsig verify --strict` leaves to `truc verify`) catches it.
        if *name == "signature moved into the body" {
            continue;
        }
        if let v @ Verdict::Valid(_) = generic(doc, true) {
            accepted.push(format!("{name}: dsig verify --strict said {v}"));
        }
    }
    assert!(accepted.is_empty(), "{}", accepted.join("\n"));
}

#[test]
fn comments_do_not_truncate_what_is_read() {
    // The 2018 comment-truncation CVEs: a comment splits a text node; the signature still
    // holds (comments are not signed) and the text read is the whole text.
    let s = signed_package();
    let split = s.replacen("V/v triển khai", "V/v triển<!-- x --> khai", 1);
    let Package::Edoc(e) = package_verdict(&split).unwrap() else {
        panic!()
    };
    assert!(
        e.header.subject.starts_with("V/v triển khai Chương trình"),
        "{}",
        e.header.subject
    );
}

/// Signs `doc` with xmlsec1 (template inside), marking `Id` on `element` as an ID.
fn xmlsec_sign(dir: &Path, doc: &str, element: &str) -> String {
    let template = dir.join("template.xml");
    std::fs::write(&template, doc).unwrap();
    let out = dir.join("signed.xml");
    let certs_dir = root().join("certs-test");
    let status = Command::new(tool("xmlsec1", "xmlsec1"))
        .arg("sign")
        .arg("--id-attr:Id")
        .arg(format!("urn:example:doc:{element}"))
        .arg("--privkey-pem")
        .arg(format!(
            "{},{},{}",
            certs_dir.join("agencies/000.00.00.G12/sign.key").display(),
            certs_dir.join("agencies/000.00.00.G12/sign.pem").display(),
            certs_dir.join("intermediate-ca.pem").display()
        ))
        .arg("--output")
        .arg(&out)
        .arg(&template)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

fn template(reference: &str, inner: &str) -> String {
    format!(
        r##"<Doc xmlns="urn:example:doc" Id="doc">{inner}<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><Reference URI="{reference}"><Transforms><Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data><X509Certificate/><X509Certificate/></X509Data></KeyInfo></Signature></Doc>"##
    )
}

#[test]
fn id_reference_attacks_are_refused_by_the_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    // Signed by xmlsec1 over the root's Id: valid both ways.
    let whole = xmlsec_sign(
        dir.path(),
        &template("#doc", "<Order Id=\"o1\"><Amount>10</Amount></Order>"),
        "Doc",
    );
    assert!(
        matches!(generic(&whole, true), Verdict::Valid(_)),
        "{}",
        generic(&whole, true)
    );

    // XSW4/5: the signed root is wrapped by an evil root with another Id. Core validation
    // still resolves #doc to the genuine element (generic mode says valid); the strict policy
    // demands that the reference cover the whole document.
    let inner = &whole[whole.find("<Doc").unwrap()..];
    let wrapped =
        format!("<Doc xmlns=\"urn:example:doc\" Id=\"evil\"><Amount>1000000</Amount>{inner}</Doc>");
    assert!(matches!(generic(&wrapped, false), Verdict::Valid(_)));
    let v = generic(&wrapped, true);
    assert_eq!(v.failure().map(|f| f.code), Some("signature-shape"), "{v}");

    // XSW3: a second element with the same Id.
    let dup = whole.replacen("<Order Id=\"o1\">", "<Order Id=\"doc\">", 1);
    let v = generic(&dup, false);
    assert_eq!(v.failure().map(|f| f.code), Some("duplicate-id"), "{v}");

    // Partial coverage: a signature over one element only.
    let partial = xmlsec_sign(
        dir.path(),
        &template(
            "#o1",
            "<Order Id=\"o1\"><Amount>10</Amount></Order><Note>unsigned</Note>",
        ),
        "Order",
    );
    assert!(matches!(generic(&partial, false), Verdict::Valid(_)));
    let v = generic(&partial, true);
    assert_eq!(v.failure().map(|f| f.code), Some("signature-shape"), "{v}");

    // XSW5/6: the Signature is not inside the element its reference resolves to, so the
    // enveloped transform removes nothing; the element was moved next to an evil one.
    let moved = xmlsec_sign(
        dir.path(),
        &template("#o1", "<Order Id=\"o1\"><Amount>10</Amount></Order>"),
        "Order",
    );
    let order = "<Order Id=\"o1\"><Amount>10</Amount></Order>";
    let sig_start = moved.find("<Signature").unwrap();
    let sig_end = moved.find("</Signature>").unwrap() + "</Signature>".len();
    let sig = &moved[sig_start..sig_end];
    let xsw6 = format!(
        "<Doc xmlns=\"urn:example:doc\" Id=\"doc\"><Order><Amount>1000000</Amount></Order>{sig}<Archive>{order}</Archive></Doc>"
    );
    assert!(matches!(generic(&xsw6, false), Verdict::Valid(_)));
    assert!(!matches!(generic(&xsw6, true), Verdict::Valid(_)));
}

#[test]
fn hostile_xml_is_refused_without_touching_files_or_network() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let s = signed_package();
    let body = &s[s.find("<edXML ").unwrap()..];
    let cases = [
        (
            "xxe",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE edXML [<!ENTITY x SYSTEM \"file://{}\">]>{}",
                secret.display(),
                body.replacen("V/v triển khai", "&x;", 1)
            ),
        ),
        (
            "billion laughs",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE edXML [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>{}",
                body.replacen("V/v triển khai", "&c;", 1)
            ),
        ),
        (
            "external DTD",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE edXML SYSTEM \"http://127.0.0.1:9/x.dtd\">{body}"
            ),
        ),
        (
            "external reference",
            s.replacen(
                "<ds:Reference URI=\"\">",
                &format!("<ds:Reference URI=\"file://{}\">", secret.display()),
                1,
            ),
        ),
    ];
    let strace = tool("strace", "strace");
    let ca = root().join("certs-test/root-ca.pem");
    for (name, doc) in cases {
        let file = dir.path().join(format!("{}.xml", name.replace(' ', "-")));
        std::fs::write(&file, &doc).unwrap();
        let trace = dir.path().join(format!("{name}.trace"));
        let out = Command::new(&strace)
            .args(["-f", "-e", "trace=open,openat,connect,socket", "-o"])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_truc"))
            .args([
                "dsig",
                "verify",
                "--strict",
                "--at",
                "2026-11-23T00:00:00Z",
                "--trusted-pem",
            ])
            .arg(&ca)
            .arg(&file)
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(
            matches!(code, Some(1 | 2)),
            "{name}: exit {code:?} {}",
            stdout(&out)
        );
        let calls = std::fs::read_to_string(&trace).unwrap();
        assert!(
            !calls.contains("secret.txt"),
            "{name} opened the secret:\n{calls}"
        );
        assert!(
            !calls.contains("connect("),
            "{name} connected somewhere:\n{calls}"
        );
        if name != "external reference" {
            assert!(stdout(&out).contains("DOCTYPE"), "{name}: {}", stdout(&out));
        }
    }
}
