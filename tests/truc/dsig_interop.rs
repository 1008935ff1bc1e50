//! XML-Signature interoperability with Debian's `xmlsec1` (1.2.37), run as users run both.
//!
//! Both directions over every canonicalization × key × digest the hub supports: xmlsec1 signs
//! and `truc dsig verify --strict` must accept, `truc dsig sign` signs and xmlsec1 must accept.
//! The canonicalizer is cross-checked byte for byte against the reference octets xmlsec1
//! prints (`--store-references --print-debug`), and the legacy and trust decisions are checked
//! through the CLI. Keys and certificates come from `certs-test/` (see its README).
//!
//! The test document exercises C14N: a PI and comments outside the root, default and
//! prefixed namespaces declared on the root and redeclared or rebound deeper, an unused
//! namespace, `xmlns=""`, `xml:lang` and `xml:space`, attributes needing sorting and escaping
//! (char refs and literal tab/newline), CDATA, character references, comments, and the
//! whitespace between elements.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::*;

/// The verification time of every test (the suite's "today"), inside the validity of every
/// certificate in `certs-test/` except `expired`, so that nothing depends on the clock.
pub const AT: &str = "2026-11-23T00:00:00Z";
/// [`AT`] as xmlsec1's `--verification-gmt-time` wants it.
pub const XMLSEC_AT: &str = "2026-11-23 00:00:00";

const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// (`truc` name, URI, `#WithComments` URI)
const C14NS: [(&str, &str, &str); 3] = [
    (
        "c14n10",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    ),
    (
        "c14n11",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
    ),
    (
        "exc",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    ),
];

/// (`truc` name, URI)
const DIGESTS: [(&str, &str); 3] = [
    ("sha256", "http://www.w3.org/2001/04/xmlenc#sha256"),
    ("sha384", "http://www.w3.org/2001/04/xmldsig-more#sha384"),
    ("sha512", "http://www.w3.org/2001/04/xmlenc#sha512"),
];

/// The document signers under `intermediate-ca`, with the key `truc` reports.
const SIGNERS: [(&str, &str); 4] = [
    ("agencies/000.00.00.G12/sign", "RSA-2048"),
    ("signers/rsa4096", "RSA-4096"),
    ("agencies/000.00.00.H29/sign", "EC-P256"),
    ("signers/p384", "EC-P384"),
];

/// The SignatureMethod for a signer and a digest: RSA follows the digest, ECDSA follows the
/// curve. Returns (`truc --alg` name, URI).
fn signature_method(signer: &str, digest: &str) -> (String, String) {
    let alg = match signer {
        "agencies/000.00.00.H29/sign" => "ecdsa-sha256".to_owned(),
        "signers/p384" => "ecdsa-sha384".to_owned(),
        _ => format!("rsa-{digest}"),
    };
    let uri = format!("http://www.w3.org/2001/04/xmldsig-more#{alg}");
    (alg, uri)
}

/// The test document. `{TAB}` stands for a literal tab (in an attribute value, where the
/// parser must turn it into a space).
const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<?pi-before root?>
<!-- a comment before the root -->
<r:doc xmlns="urn:default" xmlns:r="urn:r" xmlns:unused="urn:unused" xml:lang="vi" z="last" a="first &amp; &lt; &quot; &#9;&#10;&#13; x > y" b:attr="p" xmlns:b="urn:b" r:a="ns-a" lit="tab{TAB}and
newline">
  <child b:z="1" a="2" xmlns:r="urn:r" xmlns:b="urn:b">text &amp; &lt;more&gt; &#x41;&#233; cr&#13; tab&#9;end ']]&gt;'</child>
  <inner xmlns="urn:other" xml:lang="en"><r:deep>  <![CDATA[cdata <&> "quoted" ]]>  </r:deep><!-- a comment --><empty/><plain xmlns=""><leaf attr='single "q" &apos;'/></plain></inner>
  <b:x xmlns:b="urn:b2" xml:space="preserve">Bộ Xây dựng<?inner-pi data?></b:x>
  <r:rebind xmlns:r="urn:r2"><r:y r:k="v"/></r:rebind>
</r:doc>
<!-- a comment after the root -->
<?pi-after root?>
"#;

/// Variations for the canonicalization cross-check.
const DOC_NO_PROLOG: &str = r#"<root xmlns:z="urn:a" xmlns:a="urn:z" a:k="2" z:k="1" k="0" xmlns:xl="http://www.w3.org/1999/xlink"><a:e xml:lang="fr" xml:space="default"><z:f xmlns="urn:d"><g xmlns=""><h xmlns="urn:d" xmlns:a="urn:z">&#x1F600;   mixed<i/>text</h></g></z:f></a:e>

	<same xmlns:z="urn:a" xmlns:a="urn:z"/><swap xmlns:z="urn:z" xmlns:a="urn:a" z:k="z" a:k="a"/></root>"#;

const DOC_NESTED_DEFAULTS: &str = r#"<?xml version="1.0"?>
<?first?><?second with data?>
<doc xmlns="urn:one" xml:lang="en" xml:base="http://example.org/base/">
<!-- comment --><p xml:lang="" xmlns="urn:two">a&#xD;b&#xA;c<q xmlns="urn:one" xml:base="sub/">d</q></p>
<p xmlns="urn:one" xmlns:n="urn:n" n:at="&#x9;tab &amp; amp">e</p>
<x:wrap xmlns:x="urn:x"><x:wrap xmlns:x="urn:x2"><x:wrap xmlns:x="urn:x"/></x:wrap></x:wrap>
</doc>
"#;

fn doc() -> String {
    DOC.replace("{TAB}", "\t")
}

/// The documents of the canonicalization cross-check: the test document, its variations and
/// a real package.
fn documents() -> Vec<(&'static str, String)> {
    let package = String::from_utf8(read(&fixture("valid/edoc_new_2recipients.edxml"))).unwrap();
    vec![
        ("doc", doc()),
        ("no-prolog", DOC_NO_PROLOG.to_owned()),
        ("nested-defaults", DOC_NESTED_DEFAULTS.to_owned()),
        ("edoc_new_2recipients", package),
    ]
}

/// `certs-test/<name>.<ext>`, as a string for argument lists.
pub fn pki(name: &str, ext: &str) -> String {
    root()
        .join("certs-test")
        .join(format!("{name}.{ext}"))
        .display()
        .to_string()
}

fn xmlsec1() -> PathBuf {
    tool("xmlsec1", "xmlsec1")
}

/// `xmlsec1 sign` of `template` with `certs-test/<signer>` (chain in KeyInfo: `chain`) into
/// `out`. Panics with xmlsec1's words if it fails: a template that xmlsec1 cannot sign is the
/// test's fault.
pub fn xmlsec1_sign(signer: &str, chain: &str, template: &Path, out: &Path) {
    let keys = format!(
        "{},{},{}",
        pki(signer, "key"),
        pki(signer, "pem"),
        pki(chain, "pem")
    );
    let o = Command::new(xmlsec1())
        .args(["sign", "--privkey-pem", &keys, "--output"])
        .arg(out)
        .arg(template)
        .output()
        .expect("xmlsec1 runs");
    assert!(
        o.status.success(),
        "xmlsec1 sign {} with {signer}: {}",
        template.display(),
        stderr(&o)
    );
}

/// `xmlsec1 verify --trusted-pem certs-test/root-ca.pem` at [`AT`], plus `extra` arguments.
pub fn xmlsec1_verify(file: &Path, extra: &[&str]) -> Output {
    Command::new(xmlsec1())
        .args(["verify", "--trusted-pem", &pki("root-ca", "pem")])
        .args(["--verification-gmt-time", XMLSEC_AT])
        .args(extra)
        .arg(file)
        .output()
        .expect("xmlsec1 runs")
}

/// Whether xmlsec1 says OK (exit 0 and "OK" on stderr).
pub fn xmlsec1_ok(o: &Output) -> bool {
    o.status.success() && stderr(o).lines().any(|l| l == "OK")
}

/// The document with an xmlsec1 template Signature (one Reference to `uri` with the enveloped
/// transform then `transform`) inserted, with no whitespace around it, as the last child of
/// the root (just before the last end tag). SignedInfo carries a comment, which only the
/// #WithComments canonicalizations keep.
fn template(
    doc: &str,
    c14n: &str,
    uri: &str,
    transform: &str,
    method: &str,
    digest: &str,
) -> String {
    let sig = format!(
        r#"<Signature xmlns="{DSIG}"><SignedInfo><!-- in SignedInfo --><CanonicalizationMethod Algorithm="{c14n}"/><SignatureMethod Algorithm="{method}"/><Reference URI="{uri}"><Transforms><Transform Algorithm="{DSIG}enveloped-signature"/><Transform Algorithm="{transform}"/></Transforms><DigestMethod Algorithm="{digest}"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data><X509Certificate/></X509Data></KeyInfo></Signature>"#
    );
    let at = doc.rfind("</").expect("the root end tag");
    format!("{}{sig}{}", &doc[..at], &doc[at..])
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `truc dsig verify FILE --json` plus `args`, and `--at AT` unless `args` has an `--at`:
/// (exit code, JSON verdict).
pub fn truc_dsig_verify(file: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let f = file.display().to_string();
    let mut all = vec!["dsig", "verify", f.as_str(), "--json"];
    if !args.contains(&"--at") {
        all.extend(["--at", AT]);
    }
    all.extend_from_slice(args);
    json_verdict(&truc(&all), &format!("truc dsig verify {f}"))
}

/// Exit code and JSON verdict of a verifying command run with `--json`.
pub fn json_verdict(o: &std::process::Output, what: &str) -> (Option<i32>, Value) {
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not JSON ({e}): {}{}",
            stdout(o),
            stderr(o)
        )
    });
    (o.status.code(), v)
}

/// One line about a verdict for failure messages.
fn brief(v: &Value) -> String {
    format!(
        "{} {} {}",
        v["verdict"],
        v["code"].as_str().unwrap_or(""),
        v["reason"].as_str().unwrap_or("")
    )
}

/// What went wrong with a valid verdict's report, if anything: the algorithms it names must
/// be the ones signed with.
fn check_report(
    v: &Value,
    key: &str,
    method: &str,
    c14n: &str,
    transform: &str,
    digest: &str,
) -> Option<String> {
    let r = &v["references"][0];
    let expected = [
        ("key", v["key"].clone(), key),
        ("signature_method", v["signature_method"].clone(), method),
        ("canonicalization", v["canonicalization"].clone(), c14n),
        ("key_source", v["key_source"].clone(), "trusted-chain"),
        ("digest_method", r["digest_method"].clone(), digest),
        ("uri", r["uri"].clone(), ""),
        (
            "transforms[0]",
            r["transforms"][0].clone(),
            &format!("{DSIG}enveloped-signature"),
        ),
        ("transforms[1]", r["transforms"][1].clone(), transform),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(_, got, want)| got.as_str() != Some(want))
        .map(|(name, got, want)| format!("{name} = {got}, expected {want:?}"))
        .collect();
    let chain = v["chain"].as_array().map_or(0, Vec::len);
    let mut all = wrong;
    if chain != 3 || v["references"].as_array().map_or(0, Vec::len) != 1 {
        all.push(format!(
            "chain of {chain} (expected signer, inter-ca, root-ca) or not one reference"
        ));
    }
    (!all.is_empty()).then(|| all.join("; "))
}

/// xmlsec1 signs with every canonicalization (the three, and their #WithComments forms in
/// SignedInfo and the reference), signer and digest; `truc dsig verify --strict` accepts all.
#[test]
fn xmlsec1_signs_truc_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let doc = doc();
    let mut failures = Vec::new();
    let mut runs = 0;
    for (name, plain, with_comments) in C14NS {
        for c14n in [plain, with_comments] {
            for (signer, key) in SIGNERS {
                for (digest, digest_uri) in DIGESTS {
                    let (_, method) = signature_method(signer, digest);
                    let stem = format!(
                        "{name}-{}-{}-{digest}",
                        c14n == with_comments,
                        signer.replace('/', "_")
                    );
                    let tmpl = dir.path().join(format!("{stem}.tmpl.xml"));
                    let signed = dir.path().join(format!("{stem}.xml"));
                    write(&tmpl, template(&doc, c14n, "", c14n, &method, digest_uri));
                    xmlsec1_sign(signer, "intermediate-ca", &tmpl, &signed);
                    runs += 1;
                    let (code, v) = truc_dsig_verify(
                        &signed,
                        &["--strict", "--trusted-pem", &pki("root-ca", "pem")],
                    );
                    let what = format!("{c14n} {signer} {digest}");
                    if code != Some(0) {
                        failures.push(format!("{what}: exit {code:?}: {}", brief(&v)));
                    } else if let Some(w) = check_report(&v, key, &method, c14n, c14n, digest_uri) {
                        failures.push(format!("{what}: valid, but {w}"));
                    }
                }
            }
        }
    }
    assert_eq!(runs, 72);
    assert!(
        failures.is_empty(),
        "{} of {runs} xmlsec1 signatures not accepted by truc:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `truc dsig sign` with every canonicalization, signer and digest; xmlsec1 (chain from
/// KeyInfo to root-ca) and `truc dsig verify --strict` accept all, and the signature uses the
/// algorithms asked for.
#[test]
fn truc_signs_xmlsec1_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unsigned = dir.path().join("doc.xml");
    write(&unsigned, doc());
    let unsigned_arg = unsigned.display().to_string();
    let mut failures = Vec::new();
    let mut runs = 0;
    for (name, c14n, _) in C14NS {
        for (signer, key) in SIGNERS {
            for (digest, digest_uri) in DIGESTS {
                let (alg, method) = signature_method(signer, digest);
                let what = format!("{name} {signer} {digest}");
                let (k, c, chain) = (
                    pki(signer, "key"),
                    pki(signer, "pem"),
                    pki("intermediate-ca", "pem"),
                );
                let mut args = vec![
                    "dsig",
                    "sign",
                    &unsigned_arg,
                    "--key",
                    &k,
                    "--cert",
                    &c,
                    "--chain",
                    &chain,
                    "--digest",
                    digest,
                    "--c14n",
                    name,
                ];
                if key.starts_with("RSA") && digest != "sha256" {
                    args.extend(["--alg", alg.as_str()]);
                }
                runs += 1;
                let signed = dir
                    .path()
                    .join(format!("{name}-{}-{digest}.xml", signer.replace('/', "_")));
                let expect = (key, method.as_str(), c14n, digest_uri);
                check_truc_signature(&what, truc(&args), &signed, expect, &mut failures);
            }
        }
    }
    assert_eq!(runs, 36);
    assert!(
        failures.is_empty(),
        "{} failures over {runs} truc signatures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Checks the output of a `truc dsig sign` run: written to `signed`, accepted by xmlsec1 and by
/// `truc dsig verify --strict`, with the expected (key, SignatureMethod, c14n, DigestMethod).
fn check_truc_signature(
    what: &str,
    o: std::process::Output,
    signed: &Path,
    (key, method, c14n, digest_uri): (&str, &str, &str, &str),
    failures: &mut Vec<String>,
) {
    if o.status.code() != Some(0) {
        failures.push(format!(
            "{what}: truc dsig sign exit {:?}: {}",
            o.status.code(),
            stderr(&o)
        ));
        return;
    }
    write(signed, &o.stdout);
    let x = xmlsec1_verify(signed, &[]);
    if !xmlsec1_ok(&x) {
        failures.push(format!("{what}: xmlsec1 verify: {}", stderr(&x)));
    }
    let (code, v) = truc_dsig_verify(
        signed,
        &["--strict", "--trusted-pem", &pki("root-ca", "pem")],
    );
    if code != Some(0) {
        failures.push(format!(
            "{what}: truc dsig verify exit {code:?}: {}",
            brief(&v)
        ));
    } else if let Some(w) = check_report(&v, key, method, c14n, c14n, digest_uri) {
        failures.push(format!("{what}: valid, but {w}"));
    }
}

/// `truc dsig sign` of every cross-check document with each canonicalization (which
/// SignedInfo also uses, so inclusive C14N pulls the root's namespaces, `xml:lang` and
/// `xml:base` into the signed bytes): xmlsec1 and `truc dsig verify --strict` accept all.
#[test]
fn truc_signs_varied_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert, chain) = (
        pki("agencies/000.00.00.H29/sign", "key"),
        pki("agencies/000.00.00.H29/sign", "pem"),
        pki("intermediate-ca", "pem"),
    );
    let mut failures = Vec::new();
    let mut runs = 0;
    for (label, doc) in &documents() {
        let unsigned = dir.path().join(format!("{label}.xml"));
        write(&unsigned, doc);
        let unsigned_arg = unsigned.display().to_string();
        for (name, c14n, _) in C14NS {
            let what = format!("{label} {name}");
            let o = truc(&[
                "dsig",
                "sign",
                &unsigned_arg,
                "--key",
                &key,
                "--cert",
                &cert,
                "--chain",
                &chain,
                "--c14n",
                name,
            ]);
            runs += 1;
            let signed = dir.path().join(format!("{label}-{name}.xml"));
            let method = signature_method("agencies/000.00.00.H29/sign", "sha256").1;
            let expect = ("EC-P256", method.as_str(), c14n, DIGESTS[0].1);
            check_truc_signature(&what, o, &signed, expect, &mut failures);
        }
    }
    assert_eq!(runs, 12);
    assert!(
        failures.is_empty(),
        "{} failures over {runs} truc signatures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The canonical reference octets xmlsec1 digests (it prints them with `--store-references
/// --print-debug`): the bytes between the start and end markers, less the newline xmlsec1
/// adds after them.
fn xmlsec1_reference_octets(signed: &Path) -> Result<Vec<u8>, String> {
    let o = xmlsec1_verify(signed, &["--store-references", "--print-debug"]);
    if !xmlsec1_ok(&o) {
        return Err(format!("xmlsec1 verify: {}", stderr(&o)));
    }
    let out = o.stdout;
    let start = b"== PreDigest data - start buffer:\n";
    let end = b"\n== PreDigest data - end buffer";
    let find = |needle: &[u8], from: usize| {
        out[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let s = find(start, 0).ok_or("no PreDigest buffer in xmlsec1's output")? + start.len();
    let e = find(end, s).ok_or("no end of the PreDigest buffer")?;
    if find(start, e).is_some() {
        return Err("more than one PreDigest buffer".into());
    }
    Ok(out[s..e].to_vec())
}

/// `truc c14n` of the unsigned document equals the octets xmlsec1 digests for `URI=""` with
/// the enveloped transform and each canonicalization, for several documents. The template
/// Signature is inserted with no whitespace around it, so the document minus its enveloped
/// Signature is the unsigned document. `URI=""` drops comments, so the #WithComments
/// transforms must give the same bytes as the plain ones, with comments left out; with
/// `URI="#xpointer(/)"` they keep them, as `truc c14n --with-comments` does.
#[test]
fn c14n_matches_xmlsec1_reference_octets() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut runs = 0;
    for (label, doc) in &documents() {
        let unsigned = dir.path().join(format!("{label}.xml"));
        write(&unsigned, doc);
        let unsigned_arg = unsigned.display().to_string();
        for (name, plain, with_comments) in C14NS {
            let o = truc(&["c14n", &unsigned_arg, "--method", name]);
            if o.status.code() != Some(0) {
                failures.push(format!(
                    "{label} {name}: truc c14n exit {:?}: {}",
                    o.status.code(),
                    stderr(&o)
                ));
                continue;
            }
            let ours = o.stdout;
            let o = truc(&["c14n", &unsigned_arg, "--method", name, "--with-comments"]);
            if o.status.code() != Some(0) {
                failures.push(format!(
                    "{label} {name} --with-comments: truc c14n exit {:?}: {}",
                    o.status.code(),
                    stderr(&o)
                ));
                continue;
            }
            let ours_with_comments = o.stdout;
            // URI="" drops comments even with a #WithComments transform; #xpointer(/) keeps
            // them (truc verifies it only under the legacy policy).
            let variants = [
                ("", plain, &ours, "--strict"),
                ("", with_comments, &ours, "--strict"),
                (
                    "#xpointer(/)",
                    with_comments,
                    &ours_with_comments,
                    "--allow-legacy",
                ),
            ];
            for (i, (uri, transform, ours, policy)) in variants.into_iter().enumerate() {
                let what = format!("{label} URI={uri:?} {transform}");
                let tmpl = dir.path().join(format!("{label}-{name}-{i}.tmpl.xml"));
                let signed = dir.path().join(format!("{label}-{name}-{i}.xml"));
                write(
                    &tmpl,
                    template(
                        doc,
                        plain,
                        uri,
                        transform,
                        &signature_method("agencies/000.00.00.G12/sign", "sha256").1,
                        DIGESTS[0].1,
                    ),
                );
                xmlsec1_sign(
                    "agencies/000.00.00.G12/sign",
                    "intermediate-ca",
                    &tmpl,
                    &signed,
                );
                runs += 1;
                match xmlsec1_reference_octets(&signed) {
                    Err(e) => failures.push(format!("{what}: {e}")),
                    Ok(theirs) if &theirs != ours => failures.push(format!(
                        "{what}: truc c14n differs from xmlsec1's reference octets\n--- xmlsec1\n{}\n--- truc\n{}",
                        String::from_utf8_lossy(&theirs),
                        String::from_utf8_lossy(ours)
                    )),
                    Ok(_) => {}
                }
                let (code, v) =
                    truc_dsig_verify(&signed, &[policy, "--trusted-pem", &pki("root-ca", "pem")]);
                if code != Some(0) {
                    failures.push(format!(
                        "{what}: truc dsig verify exit {code:?}: {}",
                        brief(&v)
                    ));
                }
            }
        }
    }
    assert_eq!(runs, 36);
    assert!(
        failures.is_empty(),
        "{} c14n mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Signs the test document with xmlsec1: exclusive c14n, the given signer, chain, methods.
fn xmlsec1_signed(dir: &Path, signer: &str, chain: &str, method: &str, digest: &str) -> PathBuf {
    let stem = signer.replace('/', "_");
    let tmpl = dir.join(format!("{stem}.tmpl.xml"));
    let signed = dir.join(format!("{stem}.xml"));
    let exc = C14NS[2].1;
    write(&tmpl, template(&doc(), exc, "", exc, method, digest));
    xmlsec1_sign(signer, chain, &tmpl, &signed);
    signed
}

/// RSA-1024 with rsa-sha1, a SHA-1 digest and a sha1WithRSA certificate: refused (2) by
/// default, valid with --allow-legacy, which lists every legacy feature used.
#[test]
fn legacy_signature_needs_allow_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let signed = xmlsec1_signed(
        dir.path(),
        "signers/rsa1024",
        "intermediate-ca",
        &format!("{DSIG}rsa-sha1"),
        &format!("{DSIG}sha1"),
    );
    let root_ca = pki("root-ca", "pem");
    let mut failures = Vec::new();

    let (code, v) = truc_dsig_verify(&signed, &["--trusted-pem", &root_ca]);
    if code != Some(2) || v["verdict"] != "refused" {
        failures.push(format!(
            "default policy: exit {code:?} ({}), expected 2 refused",
            brief(&v)
        ));
    }
    let (code, v) = truc_dsig_verify(&signed, &["--trusted-pem", &root_ca, "--strict"]);
    if code != Some(2) {
        failures.push(format!(
            "default policy --strict: exit {code:?} ({}), expected 2",
            brief(&v)
        ));
    }
    let (code, v) = truc_dsig_verify(&signed, &["--trusted-pem", &root_ca, "--allow-legacy"]);
    if code != Some(0) || v["verdict"] != "valid" {
        failures.push(format!(
            "--allow-legacy: exit {code:?} ({}), expected 0 valid",
            brief(&v)
        ));
    }
    let legacy: Vec<&str> = v["legacy"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for feature in [
        "sha1-digest",
        "rsa-sha1",
        "short-rsa-key",
        "sha1-certificate",
    ] {
        if !legacy.contains(&feature) {
            failures.push(format!(
                "--allow-legacy: legacy {legacy:?} lacks {feature:?}"
            ));
        }
    }
    // The one-line verdict says so too.
    let f = signed.display().to_string();
    let o = truc(&[
        "dsig",
        "verify",
        &f,
        "--trusted-pem",
        &root_ca,
        "--at",
        AT,
        "--allow-legacy",
    ]);
    let line = stdout(&o);
    if !(line.starts_with(&format!("{f}: valid: ")) && line.contains("LEGACY")) {
        failures.push(format!("--allow-legacy one-line verdict: {line:?}"));
    }
    // A modern signature lists nothing.
    let modern = xmlsec1_signed(
        dir.path(),
        "agencies/000.00.00.G12/sign",
        "intermediate-ca",
        &signature_method("agencies/000.00.00.G12/sign", "sha256").1,
        DIGESTS[0].1,
    );
    let (code, v) = truc_dsig_verify(&modern, &["--trusted-pem", &root_ca, "--allow-legacy"]);
    if code != Some(0) || v["legacy"] != serde_json::json!([]) {
        failures.push(format!(
            "modern signature with --allow-legacy: exit {code:?}, legacy {}",
            v["legacy"]
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The key is trusted through a path to a configured anchor at the verification time, a pin,
/// or --insecure; otherwise the verdict is untrusted (3), even though the cryptography holds.
#[test]
fn trust_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let rsa256 = signature_method("agencies/000.00.00.G12/sign", "sha256").1;
    let sha256 = DIGESTS[0].1;
    let expired_dir = dir.path().join("expired");
    let other_dir = dir.path().join("other");
    let good_dir = dir.path().join("good");
    for d in [&expired_dir, &other_dir, &good_dir] {
        std::fs::create_dir(d).unwrap();
    }
    let expired = xmlsec1_signed(
        &expired_dir,
        "bad/expired",
        "intermediate-ca",
        &rsa256,
        sha256,
    );
    let other = xmlsec1_signed(
        &other_dir,
        "bad/unknown-issuer",
        "bad/unknown-ca",
        &rsa256,
        sha256,
    );
    let good = xmlsec1_signed(
        &good_dir,
        "agencies/000.00.00.G12/sign",
        "intermediate-ca",
        &rsa256,
        sha256,
    );
    let root_ca = pki("root-ca", "pem");
    let cases: Vec<(&str, &Path, Vec<String>, i32, &str)> = vec![
        (
            "expired signer at AT",
            &expired,
            vec!["--trusted-pem".into(), root_ca.clone()],
            3,
            "untrusted",
        ),
        (
            "other CA's signer",
            &other,
            vec!["--trusted-pem".into(), root_ca.clone()],
            3,
            "untrusted",
        ),
        (
            "other CA's signer, anchored",
            &other,
            vec!["--trusted-pem".into(), pki("bad/unknown-ca", "pem")],
            0,
            "valid",
        ),
        ("no trust source", &good, vec![], 3, "untrusted"),
        (
            "no trust source, other signer",
            &other,
            vec![],
            3,
            "untrusted",
        ),
        ("--insecure", &other, vec!["--insecure".into()], 0, "valid"),
        (
            "--insecure, expired",
            &expired,
            vec!["--insecure".into()],
            0,
            "valid",
        ),
        (
            "trusted chain",
            &good,
            vec!["--trusted-pem".into(), root_ca.clone()],
            0,
            "valid",
        ),
        (
            "wrong anchor",
            &good,
            vec!["--trusted-pem".into(), pki("bad/unknown-ca", "pem")],
            3,
            "untrusted",
        ),
        (
            "pinned certificate",
            &good,
            vec![
                "--pubkey-cert-pem".into(),
                pki("agencies/000.00.00.G12/sign", "pem"),
            ],
            0,
            "valid",
        ),
        (
            "wrong pinned certificate",
            &good,
            vec!["--pubkey-cert-pem".into(), pki("signers/rsa4096", "pem")],
            1,
            "invalid",
        ),
    ];
    let mut failures = Vec::new();
    for (what, file, args, want, verdict) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, v) = truc_dsig_verify(file, &args);
        if code != Some(*want) || v["verdict"] != *verdict {
            failures.push(format!(
                "{what}: exit {code:?} ({}), expected {want} {verdict}",
                brief(&v)
            ));
        }
        if *verdict == "valid"
            && args.first() == Some(&"--insecure")
            && v["key_source"] != "insecure"
        {
            failures.push(format!("{what}: key_source {}", v["key_source"]));
        }
    }
    // `--at` is the time the path is judged at: in 2020 the expired signer was valid, but its
    // issuing CA (valid from 2026-01-01) was not yet, so the verdict is still untrusted, now
    // because of the CA. No time makes the expired signer's path valid with this PKI.
    let (code, v) = truc_dsig_verify(&expired, &["--trusted-pem", &root_ca]);
    let why_now = v["reason"].as_str().unwrap_or("").to_owned();
    let (code_2020, v) = truc_dsig_verify(
        &expired,
        &["--trusted-pem", &root_ca, "--at", "2020-06-01T00:00:00Z"],
    );
    let why_2020 = v["reason"].as_str().unwrap_or("").to_owned();
    if code != Some(3) || !why_now.contains("Signer expired in 2021") {
        failures.push(format!(
            "expired signer at AT: exit {code:?}, reason {why_now:?} does not name the signer"
        ));
    }
    if code_2020 != Some(3)
        || !why_2020.contains("Issuing CA")
        || why_2020.contains("Signer expired")
    {
        failures.push(format!(
            "expired signer in 2020: exit {code_2020:?}, reason {why_2020:?} should blame the issuing CA only"
        ));
    }
    // xmlsec1 agrees on the chain decisions it can judge.
    if xmlsec1_ok(&xmlsec1_verify(&expired, &[])) {
        failures.push("xmlsec1 accepts the expired signer at AT".into());
    }
    if xmlsec1_ok(&xmlsec1_verify(&other, &[])) {
        failures.push("xmlsec1 accepts the other CA's signer under root-ca".into());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
