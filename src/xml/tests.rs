use super::*;

fn parse(s: &str) -> Result<Document<'_>, XmlError> {
    Document::parse(s.as_bytes(), &Limits::default())
}

fn detail(s: &str) -> String {
    match parse(s) {
        Ok(_) => panic!("expected an error for {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn resolves_namespaces_by_uri_not_prefix() {
    let doc = parse(r#"<a xmlns="urn:x"><p:b xmlns:p="urn:x"/><c xmlns=""/></a>"#).unwrap();
    let root = doc.element(doc.root()).unwrap();
    assert!(root.is("urn:x", "a"));
    let kids: Vec<_> = doc.child_elements(doc.root()).collect();
    assert!(kids[0].1.is("urn:x", "b"));
    assert_eq!(kids[0].1.prefix, Some("p"));
    assert_eq!(kids[1].1.namespace, None);
}

#[test]
fn text_is_infoset_normalized() {
    let doc = parse("<a>x &amp; &#x41;&#66;<![CDATA[<c>]]>\r\ny\rz</a>").unwrap();
    assert_eq!(doc.text(doc.root()), "x & AB<c>\ny\nz");
    // One merged text node.
    assert_eq!(doc.element(doc.root()).unwrap().children.len(), 1);
}

#[test]
fn attribute_values_are_normalized() {
    let doc = parse("<a v=\"x\ty\r\nz&#9;&lt;\"/>").unwrap();
    assert_eq!(
        doc.element(doc.root()).unwrap().attribute("v"),
        Some("x y z\t<")
    );
}

#[test]
fn spans_point_at_original_bytes() {
    let src = "<?xml version=\"1.0\"?>\n<a><b k='1'>t</b></a>";
    let doc = parse(src).unwrap();
    let (b, _) = doc.child_elements(doc.root()).next().unwrap();
    assert_eq!(&src[doc.node(b).span.range()], "<b k='1'>t</b>");
    assert_eq!(&src[doc.content_span(b).range()], "t");
    assert_eq!(doc.line_col(doc.node(b).span.start), (2, 4));
}

#[test]
fn bom_is_skipped_and_offsets_stay_in_input_coordinates() {
    let src = "\u{FEFF}<a>t</a>";
    let doc = parse(src).unwrap();
    assert_eq!(&src[doc.node(doc.root()).span.range()], "<a>t</a>");
}

#[test]
fn refuses_doctype_even_harmless() {
    let err = parse("<!DOCTYPE a><a/>").unwrap_err();
    assert!(matches!(err, XmlError::Doctype { offset: 0 }));
}

#[test]
fn refuses_ill_formed_input() {
    assert!(detail("<a><b></a>").contains("does not match"));
    assert!(detail("<a>").contains("not closed"));
    assert!(detail("<a/><b/>").contains("more than one root"));
    assert!(detail("<a/>x").contains("outside the root"));
    assert!(detail("<a>&foo;</a>").contains("undeclared entity"));
    assert!(detail("<p:a/>").contains("undeclared namespace prefix"));
    let dup = detail("<a x='1' x='2'/>");
    assert!(
        dup.contains("bad attribute") && dup.contains("duplicat"),
        "{dup}"
    );
    assert!(
        detail("<a xmlns:p='urn:1' xmlns:q='urn:1' p:x='1' q:x='2'/>").contains("appears twice")
    );
    assert!(detail("<a x='<'/>").contains("'<'"));
    assert!(detail("<a>&#0;</a>").contains("character reference"));
    assert!(detail("<a>\u{1}</a>").contains("not allowed"));
    assert!(detail("").contains("no root"));
    assert!(detail(" <?xml version='1.0'?><a/>").contains("very start"));
    assert!(detail("<?xml version='1.1'?><a/>").contains("1.1"));
    assert!(detail("<a xmlns:p=''/>").contains("undeclared"));
    assert!(detail("<1a/>").contains("invalid name"));
}

#[test]
fn refuses_other_encodings() {
    assert!(matches!(
        parse("<?xml version='1.0' encoding='ISO-8859-1'?><a/>"),
        Err(XmlError::Encoding { .. })
    ));
    assert!(matches!(
        Document::parse(b"<a>\xff</a>", &Limits::default()),
        Err(XmlError::Encoding { offset: 3, .. })
    ));
    assert!(matches!(
        Document::parse(b"\xff\xfe<\0a\0/\0>\0", &Limits::default()),
        Err(XmlError::Encoding { .. })
    ));
}

#[test]
fn enforces_limits() {
    let limits = Limits {
        max_bytes: 100,
        max_depth: 3,
        max_elements: 4,
        max_attributes: 2,
    };
    let too_big = "<a>".to_string() + &"x".repeat(100) + "</a>";
    assert!(matches!(
        Document::parse(too_big.as_bytes(), &limits),
        Err(XmlError::TooLarge { .. })
    ));
    let deep = "<a><b><c><d/></c></b></a>";
    assert!(matches!(
        Document::parse(deep.as_bytes(), &limits),
        Err(XmlError::LimitExceeded {
            what: "nesting depth",
            ..
        })
    ));
    let many = "<a><b/><b/><b/><b/></a>";
    assert!(matches!(
        Document::parse(many.as_bytes(), &limits),
        Err(XmlError::LimitExceeded {
            what: "element count",
            ..
        })
    ));
    let attrs = "<a x='1' y='2' z='3'/>";
    assert!(matches!(
        Document::parse(attrs.as_bytes(), &limits),
        Err(XmlError::LimitExceeded {
            what: "attribute count",
            ..
        })
    ));
}

#[test]
fn keeps_comments_and_pis_in_order() {
    let doc = parse("<?pi data?><!-- c --><a><!--x--><?t  y?></a>").unwrap();
    assert_eq!(doc.top_level().len(), 3);
    let kids = &doc.element(doc.root()).unwrap().children;
    assert!(matches!(doc.node(kids[0]).kind, NodeKind::Comment(ref c) if c == "x"));
    assert!(
        matches!(doc.node(kids[1]).kind, NodeKind::Pi { target: "t", ref content } if content == "y")
    );
}

#[test]
fn writer_output_reads_back_exactly() {
    let tricky = "a & b < c > d \" ' \t tab\nline\r\ncrlf ]]>";
    let mut w = write::Writer::with_declaration();
    w.open_with("r", &[("v", tricky)]);
    w.leaf("t", tricky);
    w.close("r");
    let out = w.finish();
    let doc = parse(&out).unwrap();
    let root = doc.element(doc.root()).unwrap();
    assert_eq!(root.attribute("v"), Some(tricky));
    let (t, _) = doc.child_elements(doc.root()).next().unwrap();
    assert_eq!(doc.text(t), tricky);
}

#[test]
fn the_ascii_fast_path_of_name_checks_agrees_with_the_character_rule() {
    let reference = |s: &str| {
        s.chars()
            .any(|c| c.is_whitespace() || "<>&\"'=/".contains(c))
    };
    for b in 0u8..0x80 {
        let c = char::from(b);
        for s in [format!("a{c}b"), format!("{c}"), format!("ab{c}")] {
            assert_eq!(
                super::reader::has_illegal_name_char(&s),
                reference(&s),
                "{s:?}"
            );
        }
    }
    for s in ["tên", "a\u{a0}b", "a\u{3000}b", "文書", "x\u{2028}"] {
        assert_eq!(
            super::reader::has_illegal_name_char(s),
            reference(s),
            "{s:?}"
        );
    }
}
