//! Canonicalization against the examples of the C14N 1.0 and Exclusive C14N specifications
//! (copied into `tests/fixtures/c14n/`; those that need a DTD are left out, and example 3.1
//! has its DOCTYPE line removed, which changes nothing in its canonical form).

use truc::dsig::c14n::{Canonicalizer, Method, NodeSet};
use truc::xml::{Document, Limits, NodeId};

use crate::util::*;

/// Canonicalizes `input` (whole document, or the first element named `apex`).
fn canon(
    input: &str,
    apex: Option<&str>,
    method: Method,
    comments: bool,
    prefixes: &str,
) -> Vec<u8> {
    let bytes = read(&fixture(&format!("c14n/{input}")));
    let doc = Document::parse(&bytes, &Limits::default()).unwrap();
    let set = match apex {
        None => NodeSet::document(),
        Some(name) => NodeSet::subtree(first_named(&doc, name)),
    };
    let mut c = Canonicalizer::new(method).with_prefix_list(prefixes);
    c.comments = comments;
    c.to_vec(&doc, &set)
}

fn first_named(doc: &Document<'_>, local: &str) -> NodeId {
    doc.elements()
        .find(|(_, e)| e.local == local)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no element {local}"))
}

#[test]
fn spec_examples_are_byte_exact() {
    use Method::*;
    type Case<'a> = (&'a str, Option<&'a str>, Method, bool, &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        // C14N 1.0 §3.1 (PIs, comments, outside the root) and §3.2 (whitespace).
        ("31_input.xml", None, C14n10, false, "", "31_c14n.xml"),
        (
            "31_input.xml",
            None,
            C14n10,
            true,
            "",
            "31_c14n-comments.xml",
        ),
        ("31_input.xml", None, C14n11, false, "", "31_c14n.xml"),
        ("32_input.xml", None, C14n10, false, "", "32_c14n.xml"),
        ("32_input.xml", None, Exclusive, false, "", "32_c14n.xml"),
        // A subset whose apex undoes the default namespace.
        (
            "default_ns_redefinition_input.xml",
            Some("Object"),
            C14n10,
            false,
            "",
            "default_ns_redefinition_c14n.xml",
        ),
        // Exclusive C14N §2.2: the same subset, inclusive vs exclusive.
        (
            "example2_2_1.xml",
            Some("elem2"),
            C14n10,
            false,
            "",
            "example2_2_1_c14nized.xml",
        ),
        (
            "example2_2_2.xml",
            Some("elem2"),
            C14n10,
            false,
            "",
            "example2_2_2_c14nized.xml",
        ),
        (
            "example2_2_1.xml",
            Some("elem2"),
            Exclusive,
            false,
            "",
            "example2_2_c14nized_exclusive.xml",
        ),
        (
            "example2_2_2.xml",
            Some("elem2"),
            Exclusive,
            false,
            "",
            "example2_2_c14nized_exclusive.xml",
        ),
        (
            "example2_2_3.xml",
            Some("p"),
            Exclusive,
            false,
            "",
            "example2_2_3_c14nized_exclusive.xml",
        ),
        (
            "example2_4.xml",
            Some("elem2"),
            Exclusive,
            false,
            "",
            "example2_4_c14nized.xml",
        ),
        (
            "plain-soap-1.1.xml",
            Some("Body"),
            Exclusive,
            false,
            "",
            "plain-soap-c14nized.xml",
        ),
    ];
    let mut failures = Vec::new();
    for &(input, apex, method, comments, prefixes, expected) in cases {
        let got = canon(input, apex, method, comments, prefixes);
        let want = read(&fixture(&format!("c14n/{expected}")));
        if got != want {
            failures.push(format!(
                "{input} {apex:?} {method:?} comments={comments}:\n got: {}\nwant: {}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn inclusive_subset_inherits_ancestor_namespaces_and_xml_attributes() {
    // Example 2.2.2 rendered by each method: 1.0 and 1.1 pull xmlns:n2, xml:space from the
    // omitted ancestor; Exclusive renders only visibly used namespaces and no xml:*.
    let v10 = canon("example2_2_2.xml", Some("elem2"), Method::C14n10, false, "");
    let v11 = canon("example2_2_2.xml", Some("elem2"), Method::C14n11, false, "");
    let exc = canon(
        "example2_2_2.xml",
        Some("elem2"),
        Method::Exclusive,
        false,
        "",
    );
    assert_eq!(v10, v11);
    let v10 = String::from_utf8(v10).unwrap();
    let exc = String::from_utf8(exc).unwrap();
    assert!(v10.starts_with(
        r#"<n1:elem2 xmlns:n1="http://example.net" xmlns:n2="http://foo.example" xml:lang="en" xml:space="retain">"#
    ), "{v10}");
    assert!(
        exc.starts_with(r#"<n1:elem2 xmlns:n1="http://example.net" xml:lang="en">"#),
        "{exc}"
    );
    // A PrefixList makes Exclusive render n2 on the apex like inclusive does.
    let listed = canon(
        "example2_2_2.xml",
        Some("elem2"),
        Method::Exclusive,
        false,
        "n2",
    );
    assert!(String::from_utf8(listed).unwrap().starts_with(
        r#"<n1:elem2 xmlns:n1="http://example.net" xmlns:n2="http://foo.example" xml:lang="en">"#
    ));
}

#[test]
fn c14n_command_writes_canonical_bytes() {
    let out = truc(&[
        "c14n",
        fixture("c14n/default_ns_redefinition_input.xml")
            .to_str()
            .unwrap(),
        "--method",
        "c14n10",
        "--subtree",
        "envelopedData",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        out.stdout,
        read(&fixture("c14n/default_ns_redefinition_c14n.xml"))
    );
    let out = truc(&[
        "c14n",
        fixture("c14n/31_input.xml").to_str().unwrap(),
        "--method",
        "c14n11",
        "--with-comments",
    ]);
    assert_eq!(out.stdout, read(&fixture("c14n/31_c14n-comments.xml")));
    let out = truc(&[
        "c14n",
        fixture("c14n/31_input.xml").to_str().unwrap(),
        "--method",
        "c14n10",
        "--prefix-list",
        "a",
    ]);
    assert_eq!(out.status.code(), Some(64), "--prefix-list needs exc");
    let out = truc(&[
        "c14n",
        fixture("c14n/31_input.xml").to_str().unwrap(),
        "--method",
        "exc",
        "--subtree",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no element with Id \"nope\""),
        "{}",
        stderr(&out)
    );
}
