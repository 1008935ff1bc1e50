//! Trust decisions end to end: `truc cert verify` on every certificate class of
//! `certs-test/`, cross-checked with `openssl verify -crl_check`; the same classes as signers
//! of a package through `truc verify` and `truc dsig verify`; the agency binding through
//! `truc verify --directory`; and the field's RSA-SHA1 signatures (signed by xmlsec1) under
//! the legacy policy.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::dsig_interop::{AT, json_verdict, pki};
use super::util::{fixture, read, root, stderr, stdout, tool, truc};

/// `certs-test/<rel>`, as a string for argument lists.
fn path(rel: &str) -> String {
    root().join("certs-test").join(rel).display().to_string()
}

/// [`AT`] as seconds since the epoch, for `openssl verify -attime`.
fn at_epoch() -> String {
    AT.parse::<jiff::Timestamp>()
        .unwrap()
        .as_second()
        .to_string()
}

/// One certificate check: the file, the purpose, whether the certificate's issuer is the
/// issuing CA (so openssl can be given its CRL), truc's code and openssl's error number.
struct Case {
    file: &'static str,
    purpose: &'static str,
    crl: &'static str,
    code: &'static str,
    openssl: Option<u32>,
}

const CURRENT_CRL: &str = "crl/intermediate-ca.crl";
const STALE_CRL: &str = "crl/intermediate-ca-stale.crl";

const fn case(
    file: &'static str,
    purpose: &'static str,
    crl: &'static str,
    code: &'static str,
    openssl: Option<u32>,
) -> Case {
    Case {
        file,
        purpose,
        crl,
        code,
        openssl,
    }
}

/// openssl's error numbers: 9 not yet valid, 10 expired, 12 CRL expired, 18 self-signed leaf,
/// 19 self-signed in chain, 23 revoked, 25 path length, 26 unsuitable purpose, 34 unhandled
/// critical extension.
const CASES: &[Case] = &[
    case(
        "agencies/000.00.00.G12/sign.pem",
        "signer",
        CURRENT_CRL,
        "trusted",
        None,
    ),
    case(
        "agencies/000.00.00.H29/sign.pem",
        "signer",
        CURRENT_CRL,
        "trusted",
        None,
    ),
    case(
        "agencies/000.00.00.H41/sign.pem",
        "signer",
        CURRENT_CRL,
        "trusted",
        None,
    ),
    case(
        "agencies/000.00.00.G22/sign.pem",
        "signer",
        CURRENT_CRL,
        "trusted",
        None,
    ),
    case("hub/receipt.pem", "signer", CURRENT_CRL, "trusted", None),
    case(
        "signers/rsa4096.pem",
        "signer",
        CURRENT_CRL,
        "trusted",
        None,
    ),
    case("signers/p384.pem", "signer", CURRENT_CRL, "trusted", None),
    case(
        "signers/rsa1024.pem",
        "signer",
        CURRENT_CRL,
        "trusted",
        None,
    ),
    case("hub/tls.pem", "tls-server", CURRENT_CRL, "trusted", None),
    case(
        "hub/tls.pem",
        "tls-client",
        CURRENT_CRL,
        "extended-key-usage",
        Some(26),
    ),
    case(
        "hub/tls.pem",
        "signer",
        CURRENT_CRL,
        "extended-key-usage",
        Some(26),
    ),
    case(
        "agencies/000.00.00.H29/client.pem",
        "tls-client",
        CURRENT_CRL,
        "trusted",
        None,
    ),
    case(
        "agencies/000.00.00.G12/client.pem",
        "tls-server",
        CURRENT_CRL,
        "extended-key-usage",
        Some(26),
    ),
    case(
        "agencies/000.00.00.G12/client.pem",
        "signer",
        CURRENT_CRL,
        "extended-key-usage",
        Some(26),
    ),
    case(
        "bad/expired.pem",
        "signer",
        CURRENT_CRL,
        "certificate-expired",
        Some(10),
    ),
    case(
        "bad/not-yet-valid.pem",
        "signer",
        CURRENT_CRL,
        "certificate-not-yet-valid",
        Some(9),
    ),
    case(
        "bad/revoked.pem",
        "signer",
        CURRENT_CRL,
        "certificate-revoked",
        Some(23),
    ),
    case(
        "bad/wrong-key-usage.pem",
        "signer",
        CURRENT_CRL,
        "key-usage",
        Some(26),
    ),
    case(
        "bad/critical-extension.pem",
        "signer",
        CURRENT_CRL,
        "unknown-critical-extension",
        Some(34),
    ),
    case(
        "bad/unknown-issuer.pem",
        "signer",
        "",
        "untrusted-root",
        Some(19),
    ),
    case(
        "bad/rogue-root.pem",
        "signer",
        "",
        "untrusted-root",
        Some(18),
    ),
    case(
        "bad/rogue-signer.pem",
        "signer",
        "",
        "untrusted-root",
        Some(19),
    ),
    case(
        "bad/pathlen.pem",
        "signer",
        "",
        "path-length-exceeded",
        Some(25),
    ),
    case(
        "agencies/000.00.00.G12/sign.pem",
        "signer",
        STALE_CRL,
        "revocation-unavailable",
        Some(12),
    ),
];

fn openssl_purpose(purpose: &str) -> &'static str {
    match purpose {
        "signer" => "smimesign",
        "tls-client" => "sslclient",
        _ => "sslserver",
    }
}

/// `openssl verify` of a case: None if OK, else the error number.
fn openssl_verify(c: &Case) -> Option<u32> {
    let file = path(c.file);
    let mut cmd = Command::new(tool("openssl", "openssl"));
    cmd.args([
        "verify",
        "-attime",
        &at_epoch(),
        "-CAfile",
        &path("root-ca.pem"),
    ])
    .args(["-untrusted", &file, "-purpose", openssl_purpose(c.purpose)]);
    if !c.crl.is_empty() {
        cmd.args(["-crl_check", "-CRLfile", &path(c.crl)]);
    }
    let o = cmd.arg(&file).output().expect("openssl runs");
    let text = format!("{}{}", stdout(&o), stderr(&o));
    if o.status.success() {
        assert!(text.contains(": OK"), "{text}");
        return None;
    }
    let error = text
        .split("error ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    assert!(error.is_some(), "openssl said: {text}");
    error
}

/// `truc cert verify` of a case (legacy allowed, as openssl allows SHA-1 at its default
/// security level): exit code and JSON.
fn truc_cert_verify(c: &Case) -> (Option<i32>, Value) {
    let file = path(c.file);
    let mut args = vec![
        "cert",
        "verify",
        &file,
        "--json",
        "--at",
        AT,
        "--allow-legacy",
    ];
    let anchor = path("root-ca.pem");
    let crl = path(c.crl);
    args.extend(["--trusted-pem", &anchor, "--purpose", c.purpose]);
    if !c.crl.is_empty() {
        args.extend(["--crl", &crl]);
    }
    json_verdict(&truc(&args), &format!("truc cert verify {file}"))
}

#[test]
fn cert_verify_agrees_with_openssl_on_every_class() {
    let mut failures = Vec::new();
    for c in CASES {
        let (exit, v) = truc_cert_verify(c);
        let got = if v["verdict"] == "trusted" {
            "trusted"
        } else {
            v["code"].as_str().unwrap_or("?")
        };
        let want_exit = if c.code == "trusted" { 0 } else { 3 };
        if got != c.code || exit != Some(want_exit) {
            failures.push(format!(
                "{} ({}): truc exit {exit:?} {got} ({}), expected exit {want_exit} {}",
                c.file, c.purpose, v["reason"], c.code
            ));
        }
        let openssl = openssl_verify(c);
        if openssl != c.openssl {
            failures.push(format!(
                "{} ({}): openssl error {openssl:?}, expected {:?}",
                c.file, c.purpose, c.openssl
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `truc cert verify FILE --trusted-pem root-ca.pem` plus `extra`.
fn cert_verify(file: &str, extra: &[&str]) -> std::process::Output {
    let (file, anchor) = (path(file), path("root-ca.pem"));
    let mut args = vec!["cert", "verify", &file, "--trusted-pem", &anchor];
    args.extend_from_slice(extra);
    truc(&args)
}

#[test]
fn cert_verify_reasons_carry_context() {
    let o = cert_verify("bad/expired.pem", &["--at", AT]);
    assert_eq!(o.status.code(), Some(3));
    let line = stdout(&o);
    for part in [
        "untrusted: certificate-expired",
        "CN=Signer expired in 2021",
        "serial ",
        "SHA-256 ",
        "notAfter 2021-01-01T00:00:00Z",
        "now (2026-11-23T00:00:00Z)",
    ] {
        assert!(line.contains(part), "{line:?} lacks {part:?}");
    }
    let crl = path("crl");
    let o = cert_verify("bad/revoked.pem", &["--crl", &crl, "--at", AT]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o).contains("revoked at 2026-06-01T00:00:00Z (keyCompromise)"),
        "{}",
        stdout(&o)
    );
    // Before the revocation time the same certificate is trusted (exit 0), with a warning.
    let o = cert_verify(
        "bad/revoked.pem",
        &["--crl", &crl, "--at", "2026-05-01T00:00:00Z"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("revoked later"), "{}", stdout(&o));
    // A stale CRL soft-fails only when asked to.
    let stale = path(STALE_CRL);
    let g12 = "agencies/000.00.00.G12/sign.pem";
    let hard = cert_verify(g12, &["--crl", &stale, "--at", AT]);
    assert_eq!(hard.status.code(), Some(3));
    let o = cert_verify(g12, &["--crl", &stale, "--at", AT, "--crl-soft-fail"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("WARNING") && stdout(&o).contains("stale"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn cert_verify_usage_errors_exit_64() {
    let g12 = path("agencies/000.00.00.G12/sign.pem");
    for args in [
        vec!["cert", "verify", g12.as_str()],
        vec![
            "cert",
            "verify",
            g12.as_str(),
            "--trusted-pem",
            "x",
            "--purpose",
            "email",
        ],
        vec![
            "cert",
            "verify",
            g12.as_str(),
            "--trusted-pem",
            "x",
            "--at",
            "yesterday",
        ],
    ] {
        let o = truc(&args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
    }
    // An unreadable certificate is a runtime failure.
    let o = cert_verify("no-such.pem", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-such.pem"), "{}", stderr(&o));
}

/// The fixture edoc (from G17) as sent by `sender`.
fn package_from(sender: &str) -> String {
    String::from_utf8(read(&fixture("valid/edoc_new_2recipients.edxml")))
        .unwrap()
        .replace("000.00.00.G17", sender)
}

/// `truc sign` of `package` with `certs-test/<signer>.key|pem` into `dir/<name>`.
fn sign(dir: &Path, name: &str, package: &str, signer: &str) -> String {
    let unsigned = dir.join(format!("{name}.unsigned.edxml"));
    std::fs::write(&unsigned, package).unwrap();
    let (key, cert) = (
        path(&format!("{signer}.key")),
        path(&format!("{signer}.pem")),
    );
    let o = truc(&[
        "sign",
        unsigned.to_str().unwrap(),
        "--key",
        &key,
        "--cert",
        &cert,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "truc sign with {signer}: {}",
        stderr(&o)
    );
    let signed = dir.join(format!("{name}.edxml"));
    std::fs::write(&signed, &o.stdout).unwrap();
    signed.display().to_string()
}

/// `truc verify FILE --json --trusted-pem root-ca.pem --crl crl/ --at AT` plus `extra`.
fn truc_verify(file: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let (anchor, crl) = (path("root-ca.pem"), path("crl"));
    let mut args = vec![
        "verify",
        file,
        "--json",
        "--at",
        AT,
        "--trusted-pem",
        &anchor,
    ];
    args.extend(["--crl", &crl]);
    args.extend_from_slice(extra);
    json_verdict(&truc(&args), &format!("truc verify {file}"))
}

/// Every bad class as the signer of a package: `truc verify` and `truc dsig verify` give
/// the same verdict and code as `truc cert verify` on the certificate.
#[test]
fn bad_signers_are_refused_through_a_signed_package() {
    let dir = tempfile::tempdir().unwrap();
    let package = package_from("000.00.00.G17");
    let (anchor, crl) = (path("root-ca.pem"), path("crl"));
    let mut failures = Vec::new();
    for (signer, code) in [
        ("bad/expired", "certificate-expired"),
        ("bad/not-yet-valid", "certificate-not-yet-valid"),
        ("bad/revoked", "certificate-revoked"),
        ("bad/wrong-key-usage", "key-usage"),
        ("bad/critical-extension", "unknown-critical-extension"),
        ("bad/unknown-issuer", "untrusted-root"),
        ("bad/rogue-root", "untrusted-root"),
        ("bad/rogue-signer", "untrusted-root"),
        ("bad/pathlen", "path-length-exceeded"),
        ("hub/tls", "extended-key-usage"),
    ] {
        let name = signer.replace('/', "_");
        let signed = sign(dir.path(), &name, &package, signer);
        let (exit, v) = truc_verify(&signed, &[]);
        if exit != Some(3) || v["verdict"] != "untrusted" || v["code"] != code {
            failures.push(format!(
                "truc verify, {signer}: exit {exit:?} {} {} {}, expected 3 untrusted {code}",
                v["verdict"], v["code"], v["reason"]
            ));
        }
        let dsig = truc(&[
            "dsig",
            "verify",
            &signed,
            "--json",
            "--strict",
            "--at",
            AT,
            "--trusted-pem",
            &anchor,
            "--crl",
            &crl,
        ]);
        let (exit, v) = json_verdict(&dsig, "truc dsig verify");
        if exit != Some(3) || v["code"] != code {
            failures.push(format!(
                "truc dsig verify, {signer}: exit {exit:?} {}, expected 3 {code}",
                v["code"]
            ));
        }
    }
    // The good signer, for contrast; and the same package judged with only the stale CRL.
    let signed = sign(dir.path(), "good", &package, "agencies/000.00.00.G12/sign");
    let (exit, v) = truc_verify(&signed, &[]);
    if exit != Some(0) {
        failures.push(format!("good signer: exit {exit:?} {v}"));
    }
    let stale = path(STALE_CRL);
    let anchor_only = truc(&[
        "verify",
        &signed,
        "--json",
        "--at",
        AT,
        "--trusted-pem",
        &anchor,
        "--crl",
        &stale,
    ]);
    let (exit, v) = json_verdict(&anchor_only, "truc verify, stale CRL");
    if exit != Some(3) || v["code"] != "revocation-unavailable" {
        failures.push(format!("stale CRL: exit {exit:?} {v}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The binding rule: a valid, trusted signature from the wrong agency is refused with
/// `signer-not-authorized-for-sender`; the right agency's is accepted and says why.
#[test]
fn signers_may_sign_only_for_their_agency() {
    let dir = tempfile::tempdir().unwrap();
    let directory = path("directory.toml");
    let with_dir = ["--directory", directory.as_str()];
    let mut failures = Vec::new();
    for (sender, signer, ok) in [
        ("000.00.00.G12", "000.00.00.G12", true),
        ("000.00.00.H29", "000.00.00.H29", true),
        ("000.00.00.H41", "000.00.00.H41", true),
        ("000.00.00.G12", "000.00.00.H29", false),
        ("000.00.00.H41", "000.00.00.G12", false),
        ("000.00.00.H29", "000.00.00.H41", false),
        // In the directory, but its rule pins another certificate.
        ("000.00.00.G22", "000.00.00.G12", false),
        // Not in the directory at all.
        ("000.00.00.G17", "000.00.00.G12", false),
    ] {
        let name = format!("{sender}-by-{signer}");
        let signed = sign(
            dir.path(),
            &name,
            &package_from(sender),
            &format!("agencies/{signer}/sign"),
        );
        // Without the directory every one of them is a valid signature.
        let (exit, v) = truc_verify(&signed, &[]);
        if exit != Some(0) {
            failures.push(format!("{name} without --directory: {exit:?} {v}"));
        }
        let (exit, v) = truc_verify(&signed, &with_dir);
        let expected = if ok { Some(0) } else { Some(3) };
        let code_ok = ok && v["authorization"]["agency"] == sender
            || !ok && v["code"] == "signer-not-authorized-for-sender";
        if exit != expected || !code_ok {
            failures.push(format!("{name}: exit {exit:?} {v}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A status package is bound to its `From`, not its recipient.
#[test]
fn status_packages_are_bound_to_their_reporter() {
    let dir = tempfile::tempdir().unwrap();
    let status = String::from_utf8(read(&fixture("valid/status_01.edxml")))
        .unwrap()
        .replace("000.00.00.H14", "000.00.00.H41");
    let directory = path("directory.toml");
    let with_dir = ["--directory", directory.as_str()];
    let own = sign(dir.path(), "own", &status, "agencies/000.00.00.H41/sign");
    let (exit, v) = truc_verify(&own, &with_dir);
    assert_eq!(exit, Some(0), "{v}");
    assert_eq!(
        v["authorization"]["by"],
        "subjectAltName URI urn:truc:agency:000.00.00.H41"
    );
    let other = sign(dir.path(), "other", &status, "agencies/000.00.00.H29/sign");
    let (exit, v) = truc_verify(&other, &with_dir);
    assert_eq!(exit, Some(3), "{v}");
    assert_eq!(v["code"], "signer-not-authorized-for-sender");
}

/// G22 signs as the national CA's customers do in the field: RSA-SHA1 over inclusive C14N
/// SignedInfo, exclusive C14N reference, SHA-1 digest, with a sha1WithRSA certificate. xmlsec1
/// produces the signature. Refused by default, valid and authorized under the legacy
/// policy, with every legacy feature reported.
#[test]
fn the_fields_rsa_sha1_signatures_pass_only_under_the_legacy_policy() {
    let dir = tempfile::tempdir().unwrap();
    const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    let template = format!(
        r#"<Signature xmlns="{DS}"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/><SignatureMethod Algorithm="{DS}rsa-sha1"/><Reference URI=""><Transforms><Transform Algorithm="{DS}enveloped-signature"/><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms><DigestMethod Algorithm="{DS}sha1"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data><X509Certificate/></X509Data></KeyInfo></Signature>"#
    );
    let package = package_from("000.00.00.G22");
    let end = package.find("</edXML:edXMLHeader>").expect("edXMLHeader");
    let tmpl = dir.path().join("g22.tmpl.edxml");
    std::fs::write(
        &tmpl,
        format!("{}{template}{}", &package[..end], &package[end..]),
    )
    .unwrap();
    let signed = dir.path().join("g22.edxml");
    // xmlsec1 takes the first certificate of each file: the intermediate comes separately.
    let keys = format!(
        "{},{},{}",
        pki("agencies/000.00.00.G22/sign", "key"),
        pki("agencies/000.00.00.G22/sign", "pem"),
        pki("intermediate-ca", "pem")
    );
    let o = Command::new(tool("xmlsec1", "xmlsec1"))
        .args(["sign", "--privkey-pem", &keys, "--output"])
        .arg(&signed)
        .arg(&tmpl)
        .output()
        .expect("xmlsec1 runs");
    assert!(o.status.success(), "xmlsec1 sign: {}", stderr(&o));
    let signed = signed.display().to_string();
    let directory = path("directory.toml");

    let (exit, v) = truc_verify(&signed, &["--directory", &directory]);
    assert_eq!(
        (exit, v["verdict"].as_str()),
        (Some(2), Some("refused")),
        "{v}"
    );

    let (exit, v) = truc_verify(&signed, &["--directory", &directory, "--allow-legacy"]);
    assert_eq!(exit, Some(0), "{v}");
    assert_eq!(v["authorization"]["by"], "pinned certificate fingerprint");
    let legacy: Vec<&str> = v["legacy"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    for feature in ["rsa-sha1", "sha1-digest", "sha1-certificate"] {
        assert!(
            legacy.contains(&feature),
            "{feature} not reported in {legacy:?}"
        );
    }
}
