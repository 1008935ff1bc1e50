//! Tampering with a signed edXML package, byte by byte: what must break the signature and
//! what must not.
//!
//! A package is signed with `truc sign` (RSA-2048, chain through `inter-ca`, Exclusive C14N)
//! and each mutation is a byte-level edit of the signed file, judged by `truc verify` (the
//! package policy) with an expected exit code and, where xmlsec1 can judge it, by
//! `xmlsec1 verify`, which must agree. `URI=""` covers the whole document minus the Signature,
//! PIs outside the root included and comments excluded, and the parser normalises line ends
//! and attribute syntax, so lexical edits that change no node verify.

use std::path::Path;

use serde_json::Value;

use crate::dsig_interop::{AT, json_verdict, pki, xmlsec1_ok, xmlsec1_verify};
use crate::util::*;

/// A package with no signature yet.
const PACKAGE: &str = "valid/edoc_new_2recipients.edxml";

/// `truc verify FILE --trusted-pem root-ca.pem --at AT --json`: (exit code, JSON verdict).
fn truc_verify(file: &Path) -> (Option<i32>, Value) {
    let f = file.display().to_string();
    let root_ca = pki("root-ca", "pem");
    let o = truc(&[
        "verify",
        &f,
        "--trusted-pem",
        &root_ca,
        "--at",
        AT,
        "--json",
    ]);
    json_verdict(&o, &format!("truc verify {f}"))
}

/// `truc <sign args> --key --cert --chain intermediate-ca.pem` with the signing key of
/// agency 000.00.00.G12 (RSA-2048).
fn sign_rsa2048(args: &[&str]) -> String {
    let (key, cert, chain) = (
        pki("agencies/000.00.00.G12/sign", "key"),
        pki("agencies/000.00.00.G12/sign", "pem"),
        pki("intermediate-ca", "pem"),
    );
    let mut all = args.to_vec();
    all.extend(["--key", &key, "--cert", &cert, "--chain", &chain]);
    let o = truc(&all);
    assert_eq!(o.status.code(), Some(0), "truc {args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

/// `s` with the first occurrence of `from` replaced by `to`; panics if there is none, so that
/// an edit that misses its target cannot pass for a benign one.
fn replace_first(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "the signed package has no {from:?}");
    s.replacen(from, to, 1)
}

/// `s` with the `n`th character of the content of the first `<tag>` replaced by another
/// base64 character.
fn flip_base64(s: &str, tag: &str, n: usize) -> String {
    let open = format!("<{tag}>");
    let at = s.find(&open).unwrap_or_else(|| panic!("no {open}")) + open.len() + n;
    let old = s.as_bytes()[at];
    assert!(
        old.is_ascii_alphanumeric(),
        "{tag}[{n}] is {:?}",
        old as char
    );
    let new = if old == b'A' { "B" } else { "A" };
    format!("{}{new}{}", &s[..at], &s[at + 1..])
}

/// The base64 body of a PEM certificate, on one line.
/// The base64 of the first certificate in `certs-test/<name>.pem`.
fn cert_base64(name: &str) -> String {
    String::from_utf8(read(Path::new(&pki(name, "pem"))))
        .unwrap()
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect()
}

/// The content of the first `<tag>...</tag>`.
fn content<'a>(s: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = s.find(&open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let end = start + s[start..].find(&format!("</{tag}>")).expect("end tag");
    &s[start..end]
}

/// What a mutation must do.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Exit 0.
    Valid,
    /// Exit 1 with this verdict code (or any code when empty).
    Invalid(&'static str),
    /// Exit 2 (refused by policy).
    Refused,
    /// Anything but exit 0.
    NotValid,
}

impl Expect {
    fn accepts(self, code: Option<i32>, v: &Value) -> bool {
        match self {
            Expect::Valid => code == Some(0) && v["verdict"] == "valid",
            Expect::Invalid(c) => {
                code == Some(1) && v["verdict"] == "invalid" && (c.is_empty() || v["code"] == c)
            }
            Expect::Refused => code == Some(2) && v["verdict"] == "refused",
            Expect::NotValid => code.is_some_and(|c| c != 0) && v["verdict"] != "valid",
        }
    }
}

/// Writes every case's document, judges it with `verify` (truc) and xmlsec1, and returns one
/// line per expectation not met. A case equal to `original` is an edit that missed.
fn judge(
    dir: &Path,
    original: Option<&str>,
    cases: &[(&str, String, Expect)],
    verify: &dyn Fn(&Path) -> (Option<i32>, Value),
) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (what, mutated, expect)) in cases.iter().enumerate() {
        if Some(mutated.as_str()) == original {
            failures.push(format!("{what}: the edit changed nothing"));
            continue;
        }
        let file = dir.join(format!("mutation-{i}.xml"));
        std::fs::write(&file, mutated).unwrap();
        let (code, v) = verify(&file);
        if !expect.accepts(code, &v) {
            failures.push(format!(
                "{what}: truc exit {code:?} {} {} ({}), expected {expect:?}",
                v["verdict"],
                v["code"].as_str().unwrap_or(""),
                v["reason"].as_str().unwrap_or("")
            ));
        }
        let x = xmlsec1_verify(&file, &[]);
        if xmlsec1_ok(&x) != (*expect == Expect::Valid) {
            failures.push(format!(
                "{what}: xmlsec1 says {} (expected {expect:?}): {}",
                if xmlsec1_ok(&x) { "OK" } else { "FAIL" },
                stderr(&x).lines().last().unwrap_or("")
            ));
        }
    }
    failures
}

/// A package signed by `truc sign` verifies with truc and xmlsec1; every edit of signed
/// content breaks it, every lexical edit that changes no signed node keeps it.
#[test]
fn package_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let package = fixture(PACKAGE).display().to_string();
    let signed = sign_rsa2048(&["sign", &package]);
    let signed_file = dir.path().join("signed.edxml");
    std::fs::write(&signed_file, &signed).unwrap();

    // The baseline.
    let (code, v) = truc_verify(&signed_file);
    assert_eq!(code, Some(0), "the signed package does not verify: {v}");
    assert_eq!(v["verdict"], "valid");
    assert_eq!(
        v["canonicalization"],
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    );
    let x = xmlsec1_verify(&signed_file, &[]);
    assert!(
        xmlsec1_ok(&x),
        "xmlsec1 rejects truc's signature: {}",
        stderr(&x)
    );
    // The signature is the last child of edXMLHeader.
    assert!(signed.contains("</ds:Signature></edXML:edXMLHeader>"));

    let subject = "<edXML:Subject>V/v triển khai Chương trình";
    let root = r#"<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">"#;
    let reference = r#"xlink:href="cid:356-bxd-qln-01" xlink:type="simple""#;
    let signature_value = content(&signed, "ds:SignatureValue");
    let leaf = content(&signed, "ds:X509Certificate");
    use Expect::*;
    let cases: Vec<(&str, String, Expect)> = vec![
        // Edits of signed content.
        (
            "text change in Subject",
            replace_first(&signed, "nhà ở xã hội năm 2025", "nhà ở xã hội năm 2026"),
            Invalid("digest-mismatch"),
        ),
        (
            "attribute value change",
            replace_first(&signed, r#"mustUnderstand="1""#, r#"mustUnderstand="0""#),
            Invalid("digest-mismatch"),
        ),
        (
            "whitespace added between signed elements",
            replace_first(&signed, "</edXML:Subject>", "</edXML:Subject> "),
            Invalid("digest-mismatch"),
        ),
        (
            "whitespace added inside a text node",
            replace_first(&signed, subject, &subject.replace("V/v ", "V/v  ")),
            Invalid("digest-mismatch"),
        ),
        (
            "prefix edXML renamed to e2 (same namespace)",
            replace_first(&signed, "xmlns:edXML=", "xmlns:e2=")
                .replace("<edXML:", "<e2:")
                .replace("</edXML:", "</e2:"),
            Invalid("digest-mismatch"),
        ),
        (
            "namespace URI change (xlink)",
            replace_first(
                &signed,
                r#"xmlns:xlink="http://www.w3.org/1999/xlink""#,
                r#"xmlns:xlink="http://www.w3.org/1999/xlink#""#,
            ),
            Invalid("digest-mismatch"),
        ),
        (
            "xml:lang added on the root",
            replace_first(&signed, root, &root.replace('>', r#" xml:lang="vi">"#)),
            Invalid("digest-mismatch"),
        ),
        (
            "PI inserted before the root",
            replace_first(&signed, "?>\n", "?>\n<?evil instruction?>\n"),
            Invalid("digest-mismatch"),
        ),
        (
            "SignatureValue: one base64 character changed",
            flip_base64(&signed, "ds:SignatureValue", 40),
            Invalid("signature-mismatch"),
        ),
        (
            "DigestValue: one base64 character changed",
            flip_base64(&signed, "ds:DigestValue", 5),
            Invalid(""),
        ),
        (
            "SignatureMethod downgraded to rsa-sha1",
            replace_first(
                &signed,
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            ),
            Refused,
        ),
        (
            "signer certificate swapped for p256's",
            replace_first(&signed, leaf, &cert_base64("agencies/000.00.00.H29/sign")),
            NotValid,
        ),
        (
            "signer certificate swapped for rsa4096's",
            replace_first(&signed, leaf, &cert_base64("signers/rsa4096")),
            Invalid("signature-mismatch"),
        ),
        (
            "SignatureValue replaced by another signature's",
            replace_first(
                &signed,
                signature_value,
                content(
                    &sign_rsa2048(&[
                        "sign",
                        &fixture("valid/status_01.edxml").display().to_string(),
                    ]),
                    "ds:SignatureValue",
                ),
            ),
            Invalid("signature-mismatch"),
        ),
        // Lexical edits that change no signed node.
        (
            "comment inside a text node (text unchanged)",
            replace_first(
                &signed,
                subject,
                &subject.replace("triển khai", "triển<!-- x --> khai"),
            ),
            Valid,
        ),
        ("CRLF line endings", signed.replace('\n', "\r\n"), Valid),
        ("CR line endings", signed.replace('\n', "\r"), Valid),
        ("UTF-8 BOM prepended", format!("\u{feff}{signed}"), Valid),
        (
            "XML declaration removed",
            replace_first(&signed, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", ""),
            Valid,
        ),
        (
            "whitespace between attributes and before '>'",
            replace_first(
                &signed,
                reference,
                &format!("\n\t{}  ", reference.replace(' ', "\n   ")),
            ),
            Valid,
        ),
        (
            "whitespace in an end tag",
            replace_first(&signed, "</edXML:Subject>", "</edXML:Subject\n >"),
            Valid,
        ),
        (
            "attribute order swapped",
            replace_first(
                &signed,
                reference,
                r#"xlink:type="simple" xlink:href="cid:356-bxd-qln-01""#,
            ),
            Valid,
        ),
        (
            "single quotes around an attribute value",
            replace_first(&signed, reference, &reference.replace('"', "'")),
            Valid,
        ),
        (
            "a character as a character reference",
            replace_first(&signed, subject, &subject.replace("khai", "kh&#x61;i")),
            Valid,
        ),
        (
            "a non-ASCII character as a decimal character reference",
            replace_first(&signed, subject, &subject.replace("triển", "tri&#7875;n")),
            Valid,
        ),
        (
            "comment before the root",
            replace_first(&signed, root, &format!("<!-- added -->\n{root}")),
            Valid,
        ),
        (
            "comment after the root",
            replace_first(&signed, "</edXML>", "</edXML><!-- added -->"),
            Valid,
        ),
        (
            "whitespace after the root end tag",
            replace_first(&signed, "</edXML>", "</edXML>\n\n  \t\n"),
            Valid,
        ),
        (
            "comment between signed elements",
            replace_first(
                &signed,
                "</edXML:Subject>",
                "</edXML:Subject><!-- added -->",
            ),
            Valid,
        ),
        (
            "unused namespace declared on the root (exclusive c14n)",
            replace_first(
                &signed,
                root,
                &root.replace('>', r#" xmlns:unused="urn:unused">"#),
            ),
            Valid,
        ),
    ];
    let failures = judge(dir.path(), Some(&signed), &cases, &truc_verify);
    assert!(
        failures.is_empty(),
        "{} of {} mutations judged wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// With inclusive C14N 1.0 every namespace in scope is signed, so an unused declaration added
/// to the root breaks the signature (it does not with exclusive C14N, above).
#[test]
fn unused_namespace_breaks_inclusive_c14n() {
    let dir = tempfile::tempdir().unwrap();
    let package = fixture(PACKAGE).display().to_string();
    let verify = |file: &Path| {
        crate::dsig_interop::truc_dsig_verify(
            file,
            &["--strict", "--trusted-pem", &pki("root-ca", "pem")],
        )
    };
    let root = r#"<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">"#;
    let unused = root.replace('>', r#" xmlns:unused="urn:unused">"#);
    let mut failures = Vec::new();
    // With inclusive C14N in SignedInfo too, the declaration also changes the signed
    // SignedInfo, so which check fails first (signature or digest) is not part of the test.
    for (c14n, expect) in [("c14n10", Expect::Invalid("")), ("exc", Expect::Valid)] {
        let signed = sign_rsa2048(&["dsig", "sign", &package, "--c14n", c14n]);
        let cases = vec![
            ("as signed", signed.clone(), Expect::Valid),
            (
                "unused namespace on the root",
                replace_first(&signed, root, &unused),
                expect,
            ),
        ];
        let sub = dir.path().join(c14n);
        std::fs::create_dir(&sub).unwrap();
        failures.extend(
            judge(&sub, None, &cases, &verify)
                .into_iter()
                .map(|f| format!("{c14n}: {f}")),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
