use super::*;
use crate::xml::{Document, Limits};

fn c14n(input: &str, method: Method, comments: bool) -> String {
    let doc = Document::parse(input.as_bytes(), &Limits::default()).unwrap();
    let mut c = Canonicalizer::new(method);
    c.comments = comments;
    String::from_utf8(c.to_vec(&doc, &NodeSet::document())).unwrap()
}

#[test]
fn join_base_resolves_like_rfc3986() {
    assert_eq!(join_base("http://a/b/c/d;p?q", "g"), "http://a/b/c/g");
    assert_eq!(join_base("http://a/b/c/d;p?q", "../g"), "http://a/b/g");
    assert_eq!(join_base("http://a/b/c/d;p?q", "/g"), "http://a/g");
    assert_eq!(join_base("http://a/b/c/d;p?q", "//g"), "http://g");
    assert_eq!(join_base("http://a/b/c/d;p?q", "?y"), "http://a/b/c/d;p?y");
    assert_eq!(join_base("http://a/b/c/d;p?q", "g#s"), "http://a/b/c/g#s");
    assert_eq!(join_base("http://a/b/c/d;p?q", "./"), "http://a/b/c/");
    assert_eq!(join_base("http://a/b/c/d;p?q", "../../g"), "http://a/g");
    assert_eq!(join_base("", "x/y"), "x/y");
}

#[test]
fn empty_elements_become_pairs_and_attributes_sort() {
    let out = c14n(
        r#"<a xmlns:z="urn:z" b='2' a="1" z:c="3"><e/></a>"#,
        Method::C14n10,
        false,
    );
    assert_eq!(out, r#"<a xmlns:z="urn:z" a="1" b="2" z:c="3"><e></e></a>"#);
}
