//! Builds a [`Document`] from bytes with quick-xml's pull reader.
//!
//! quick-xml tokenizes; this module adds what a strict reader must check itself: encoding,
//! legal characters, DOCTYPE refusal, namespace resolution, duplicate attributes, reference
//! resolution, a single root, and the [`Limits`].

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::{
    Attribute, Document, Element, Limits, NamespaceDecl, Node, NodeId, NodeKind, Span, XML_NS,
};

const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Why a document could not be read. Every variant carries the byte offset it refers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The input is larger than [`Limits::max_bytes`].
    #[error("document is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A limit other than size was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// Which limit ("nesting depth", "element count", "attribute count").
        what: &'static str,
        /// The limit.
        limit: usize,
        /// Where it was exceeded.
        offset: usize,
    },
    /// A DOCTYPE declaration: refused, always.
    #[error("DOCTYPE declarations are not allowed (no DTDs or entity declarations)")]
    Doctype {
        /// Where it starts.
        offset: usize,
    },
    /// Not UTF-8, or a declaration naming another encoding.
    #[error("unsupported encoding: {detail}")]
    Encoding {
        /// What was found.
        detail: String,
        /// Where.
        offset: usize,
    },
    /// Not well-formed XML.
    #[error("{detail}")]
    Syntax {
        /// What is wrong.
        detail: String,
        /// Where.
        offset: usize,
    },
}

impl XmlError {
    /// `LINE:COL: message`, locating the error in `input` (the bytes that were parsed).
    pub fn located(&self, input: &[u8]) -> String {
        let (line, col) = super::line_col(input, self.offset());
        format!("{line}:{col}: {self}")
    }

    /// Byte offset in the input the error refers to.
    pub fn offset(&self) -> usize {
        match self {
            XmlError::TooLarge { .. } => 0,
            XmlError::LimitExceeded { offset, .. }
            | XmlError::Doctype { offset }
            | XmlError::Encoding { offset, .. }
            | XmlError::Syntax { offset, .. } => *offset,
        }
    }
}

fn syntax(detail: impl Into<String>, offset: usize) -> XmlError {
    XmlError::Syntax {
        detail: detail.into(),
        offset,
    }
}

/// An open element on the stack: its id and how many prefix bindings it pushed.
struct Open {
    id: NodeId,
    bindings: usize,
}

struct Builder<'a> {
    /// The input after any byte-order mark; quick-xml reads this.
    text: &'a str,
    limits: Limits,
    nodes: Vec<Node<'a>>,
    top: Vec<NodeId>,
    root: Option<NodeId>,
    stack: Vec<Open>,
    /// In-scope prefix bindings, innermost last. `None` is the default namespace; an empty URI
    /// undeclares it.
    bindings: Vec<(Option<&'a str>, Cow<'a, str>)>,
    /// Elements, comments and PIs seen so far.
    counted: usize,
}

pub(super) fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<Document<'a>, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    if input.starts_with(&[0xFE, 0xFF]) || input.starts_with(&[0xFF, 0xFE]) {
        return Err(XmlError::Encoding {
            detail: "UTF-16 byte-order mark; packages must be UTF-8".into(),
            offset: 0,
        });
    }
    let bom = if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
        3
    } else {
        0
    };
    let text = std::str::from_utf8(&input[bom..]).map_err(|e| XmlError::Encoding {
        detail: "invalid UTF-8".into(),
        offset: bom + e.valid_up_to(),
    })?;
    if let Some(offset) = find_illegal_char(text) {
        return Err(syntax("character not allowed in XML 1.0", bom + offset));
    }

    let mut reader = Reader::from_str(text);
    {
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        config.allow_unmatched_ends = false;
        config.allow_dangling_amp = false;
    }
    let mut b = Builder {
        text,
        limits: *limits,
        nodes: Vec::new(),
        top: Vec::new(),
        root: None,
        stack: Vec::new(),
        bindings: Vec::new(),
        counted: 0,
    };
    let mut first_event = true;
    loop {
        let start = bom + position(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|e| syntax(describe(&e), bom + position(reader.error_position())))?;
        let end = bom + position(reader.buffer_position());
        let span = Span { start, end };
        let is_first = std::mem::replace(&mut first_event, false);
        match event {
            Event::Decl(decl) => {
                if !is_first || start != bom {
                    return Err(syntax(
                        "XML declaration is only allowed at the very start",
                        start,
                    ));
                }
                check_decl(&decl, start)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype { offset: start }),
            Event::Start(tag) => b.start(&tag, span, false)?,
            Event::Empty(tag) => b.start(&tag, span, true)?,
            Event::End(_) => b.end(span)?,
            Event::Text(t) => b.text(t.xml10_content(), span)?,
            Event::CData(c) => b.text(c.xml10_content(), span)?,
            Event::GeneralRef(r) => {
                let ch = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(ch)) if is_xml_char(ch) => ch,
                        _ => {
                            return Err(syntax(
                                format!("invalid character reference &{};", &*r),
                                start,
                            ));
                        }
                    }
                } else {
                    predefined_entity(&r)
                        .ok_or_else(|| syntax(format!("undeclared entity &{};", &*r), start))?
                };
                b.text(Cow::Owned(ch.to_string()), span)?;
            }
            Event::Comment(c) => {
                let content = c.xml10_content();
                b.leaf(NodeKind::Comment(content), span)?;
            }
            Event::PI(pi) => {
                let target = pi_target(text, start - bom, start)?;
                if target.eq_ignore_ascii_case("xml") {
                    return Err(syntax(
                        "processing instruction target \"xml\" is reserved",
                        start,
                    ));
                }
                let content = b.reborrow(pi.content().trim_start(), start)?;
                let content = normalize_eols(content);
                b.leaf(NodeKind::Pi { target, content }, span)?;
            }
            Event::Eof => break,
        }
    }
    if let Some(open) = b.stack.last() {
        let name = b.element_mut(open.id).qname();
        return Err(syntax(
            format!("unexpected end of document: <{name}> is not closed"),
            input.len(),
        ));
    }
    let root = b
        .root
        .ok_or_else(|| syntax("no root element", input.len()))?;
    Ok(Document {
        input,
        nodes: b.nodes,
        top: b.top,
        root,
    })
}

impl<'a> Builder<'a> {
    fn push_node(&mut self, node: Node<'a>) -> Result<NodeId, XmlError> {
        let id = u32::try_from(self.nodes.len())
            .map(NodeId)
            .map_err(|_| syntax("too many nodes", node.span.start))?;
        let parent = node.parent;
        self.nodes.push(node);
        match parent {
            Some(p) => self.element_mut(p).children.push(id),
            None => self.top.push(id),
        }
        Ok(id)
    }

    fn element_mut(&mut self, id: NodeId) -> &mut Element<'a> {
        match &mut self.nodes[id.index()].kind {
            NodeKind::Element(e) => e,
            // Only element ids are ever pushed on the stack or used as parents.
            _ => unreachable!("node {id:?} is not an element"),
        }
    }

    /// Re-borrows `s`, a slice quick-xml handed out with a shorter lifetime, from the input.
    ///
    /// quick-xml's events over a `&str` borrow from it, so the slice lies inside `text`; the
    /// check turns any surprise into an error rather than a panic.
    fn reborrow(&self, s: &str, offset: usize) -> Result<&'a str, XmlError> {
        let base = self.text.as_ptr() as usize;
        let at = (s.as_ptr() as usize).wrapping_sub(base);
        match self.text.get(at..at.wrapping_add(s.len())) {
            Some(found) if found.as_ptr() == s.as_ptr() => Ok(found),
            _ => Err(syntax(
                "internal: name does not borrow from the input",
                offset,
            )),
        }
    }

    fn count(&mut self, offset: usize) -> Result<(), XmlError> {
        self.counted += 1;
        if self.counted > self.limits.max_elements {
            return Err(XmlError::LimitExceeded {
                what: "element count",
                limit: self.limits.max_elements,
                offset,
            });
        }
        Ok(())
    }

    fn start(&mut self, tag: &BytesStart<'a>, span: Span, empty: bool) -> Result<(), XmlError> {
        let offset = span.start;
        self.count(offset)?;
        if self.stack.len() + 1 > self.limits.max_depth {
            return Err(XmlError::LimitExceeded {
                what: "nesting depth",
                limit: self.limits.max_depth,
                offset,
            });
        }
        let parent = self.stack.last().map(|o| o.id);
        if parent.is_none() && self.root.is_some() {
            return Err(syntax("more than one root element", offset));
        }
        let qname = self.reborrow(tag.name().into_inner(), offset)?;
        let (prefix, local) = split_qname(qname, offset)?;

        // Attributes: split namespace declarations from ordinary ones, normalize values.
        let mut decls: Vec<NamespaceDecl<'a>> = Vec::new();
        let mut raw_attrs: Vec<(Option<&'a str>, &'a str, Cow<'a, str>)> = Vec::new();
        let mut seen_names: HashSet<&'a str> = HashSet::new();
        for attr in tag.attributes().with_checks(true) {
            let attr = attr.map_err(|e| syntax(format!("bad attribute: {e}"), offset))?;
            if decls.len() + raw_attrs.len() >= self.limits.max_attributes {
                return Err(XmlError::LimitExceeded {
                    what: "attribute count",
                    limit: self.limits.max_attributes,
                    offset,
                });
            }
            let key = self.reborrow(attr.key.into_inner(), offset)?;
            if !seen_names.insert(key) {
                return Err(syntax(format!("duplicate attribute {key}"), offset));
            }
            if attr.value.contains('<') {
                return Err(syntax(
                    format!("'<' in the value of attribute {key}"),
                    offset,
                ));
            }
            let value = match attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| syntax(format!("attribute {key}: {e}"), offset))?
            {
                Cow::Borrowed(v) => Cow::Borrowed(self.reborrow(v, offset)?),
                Cow::Owned(v) => Cow::Owned(v),
            };
            if let Some(bad) = value.chars().find(|&c| !is_xml_char(c)) {
                return Err(syntax(
                    format!(
                        "attribute {key}: character U+{:04X} not allowed",
                        bad as u32
                    ),
                    offset,
                ));
            }
            let (aprefix, alocal) = split_qname(key, offset)?;
            match (aprefix, alocal) {
                (None, "xmlns") => decls.push(NamespaceDecl {
                    prefix: None,
                    uri: value,
                }),
                (Some("xmlns"), p) => {
                    check_prefix_binding(p, &value, offset)?;
                    decls.push(NamespaceDecl {
                        prefix: Some(p),
                        uri: value,
                    });
                }
                _ => raw_attrs.push((aprefix, alocal, value)),
            }
        }
        for d in &decls {
            if d.prefix.is_none() && (d.uri == XML_NS || d.uri == XMLNS_NS) {
                return Err(syntax(
                    format!("{} cannot be the default namespace", d.uri),
                    offset,
                ));
            }
            self.bindings.push((d.prefix, d.uri.clone()));
        }
        let bindings = decls.len();

        let namespace = self.resolve(prefix, true, offset)?;
        let mut attributes = Vec::with_capacity(raw_attrs.len());
        let mut expanded: HashSet<(&str, &str)> = HashSet::new();
        for (aprefix, alocal, value) in raw_attrs {
            let ns = match aprefix {
                Some(_) => self.resolve(aprefix, false, offset)?,
                None => None,
            };
            attributes.push(Attribute {
                prefix: aprefix,
                local: alocal,
                namespace: ns,
                value,
            });
        }
        for a in &attributes {
            if !expanded.insert((a.namespace.as_deref().unwrap_or(""), a.local)) {
                return Err(syntax(
                    format!(
                        "attribute {{{}}}{} appears twice under different prefixes",
                        a.namespace.as_deref().unwrap_or(""),
                        a.local
                    ),
                    offset,
                ));
            }
        }

        let id = self.push_node(Node {
            parent,
            span,
            kind: NodeKind::Element(Element {
                prefix,
                local,
                namespace,
                namespace_decls: decls,
                attributes,
                children: Vec::new(),
                start_tag: span,
            }),
        })?;
        if parent.is_none() {
            self.root = Some(id);
        }
        if empty {
            self.bindings.truncate(self.bindings.len() - bindings);
        } else {
            self.stack.push(Open { id, bindings });
        }
        Ok(())
    }

    fn end(&mut self, span: Span) -> Result<(), XmlError> {
        let open = self
            .stack
            .pop()
            .ok_or_else(|| syntax("end tag without a start tag", span.start))?;
        self.bindings.truncate(self.bindings.len() - open.bindings);
        self.nodes[open.id.index()].span.end = span.end;
        Ok(())
    }

    fn text(&mut self, content: Cow<'a, str>, span: Span) -> Result<(), XmlError> {
        let Some(parent) = self.stack.last().map(|o| o.id) else {
            if content.chars().all(is_xml_space) {
                return Ok(());
            }
            return Err(syntax("text outside the root element", span.start));
        };
        // Merge with a preceding text sibling: the infoset has no adjacent text nodes.
        if let Some(&last) = self.element_mut(parent).children.last() {
            let node = &mut self.nodes[last.index()];
            if let NodeKind::Text(existing) = &mut node.kind {
                existing.to_mut().push_str(&content);
                node.span.end = span.end;
                return Ok(());
            }
        }
        self.push_node(Node {
            parent: Some(parent),
            span,
            kind: NodeKind::Text(content),
        })?;
        Ok(())
    }

    fn leaf(&mut self, kind: NodeKind<'a>, span: Span) -> Result<(), XmlError> {
        self.count(span.start)?;
        let parent = self.stack.last().map(|o| o.id);
        self.push_node(Node { parent, span, kind })?;
        Ok(())
    }

    /// Resolves `prefix` against the in-scope bindings. Unprefixed attributes never get the
    /// default namespace, so callers pass `use_default = false` for them.
    fn resolve(
        &self,
        prefix: Option<&str>,
        use_default: bool,
        offset: usize,
    ) -> Result<Option<Cow<'a, str>>, XmlError> {
        match prefix {
            Some("xml") => return Ok(Some(Cow::Borrowed(XML_NS))),
            Some("xmlns") => {
                return Err(syntax("the xmlns prefix cannot name an element", offset));
            }
            None if !use_default => return Ok(None),
            _ => {}
        }
        match self.bindings.iter().rev().find(|(p, _)| *p == prefix) {
            Some((_, uri)) if uri.is_empty() => Ok(None),
            Some((_, uri)) => Ok(Some(uri.clone())),
            None => match prefix {
                None => Ok(None),
                Some(p) => Err(syntax(format!("undeclared namespace prefix {p}"), offset)),
            },
        }
    }
}

fn position(p: u64) -> usize {
    usize::try_from(p).unwrap_or(usize::MAX)
}

fn split_qname(qname: &str, offset: usize) -> Result<(Option<&str>, &str), XmlError> {
    let bad = |why: &str| syntax(format!("invalid name {qname:?}: {why}"), offset);
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qname),
    };
    for part in prefix.into_iter().chain(std::iter::once(local)) {
        let Some(first) = part.chars().next() else {
            return Err(bad("empty name part"));
        };
        if first.is_ascii_digit() || first == '-' || first == '.' {
            return Err(bad("cannot start with a digit, '-' or '.'"));
        }
        if part.contains(':') {
            return Err(bad("more than one ':'"));
        }
        if has_illegal_name_char(part) {
            return Err(bad("illegal character"));
        }
    }
    Ok((prefix, local))
}

/// Whether a name part holds whitespace or one of `<>&"'=/`: byte by byte for ASCII names
/// (nearly all of them), by character otherwise (Unicode whitespace).
pub(super) fn has_illegal_name_char(part: &str) -> bool {
    let illegal = |c: char| c.is_whitespace() || "<>&\"'=/".contains(c);
    if part.is_ascii() {
        part.bytes().any(|b| {
            matches!(
                b,
                b'\t'
                    | b'\n'
                    | 0x0b
                    | 0x0c
                    | b'\r'
                    | b' '
                    | b'<'
                    | b'>'
                    | b'&'
                    | b'"'
                    | b'\''
                    | b'='
                    | b'/'
            )
        })
    } else {
        part.chars().any(illegal)
    }
}

fn check_prefix_binding(prefix: &str, uri: &str, offset: usize) -> Result<(), XmlError> {
    if prefix == "xmlns" {
        return Err(syntax("the xmlns prefix cannot be declared", offset));
    }
    if (prefix == "xml") != (uri == XML_NS) {
        return Err(syntax(
            format!("prefix {prefix} cannot be bound to {uri:?}"),
            offset,
        ));
    }
    if uri == XMLNS_NS {
        return Err(syntax(format!("{XMLNS_NS} cannot be bound"), offset));
    }
    if uri.is_empty() {
        return Err(syntax(
            format!("prefix {prefix} cannot be undeclared in XML 1.0"),
            offset,
        ));
    }
    Ok(())
}

fn check_decl(decl: &quick_xml::events::BytesDecl<'_>, offset: usize) -> Result<(), XmlError> {
    let version = decl
        .version()
        .map_err(|e| syntax(format!("bad XML declaration: {e}"), offset))?;
    if version != "1.0" {
        return Err(syntax(
            format!("unsupported XML version {version:?} (only 1.0)"),
            offset,
        ));
    }
    if let Some(encoding) = decl.encoding() {
        let encoding = encoding.map_err(|e| syntax(format!("bad XML declaration: {e}"), offset))?;
        if !encoding.eq_ignore_ascii_case("utf-8") && !encoding.eq_ignore_ascii_case("utf8") {
            return Err(XmlError::Encoding {
                detail: format!("declared encoding {encoding:?}; packages must be UTF-8"),
                offset,
            });
        }
    }
    Ok(())
}

/// The PI target: the name right after `<?`.
fn pi_target(text: &str, at: usize, offset: usize) -> Result<&str, XmlError> {
    let rest = text.get(at + 2..).unwrap_or("");
    let len = rest
        .find(|c: char| is_xml_space(c) || c == '?')
        .unwrap_or(rest.len());
    let target = &rest[..len];
    if target.is_empty() {
        return Err(syntax("processing instruction without a target", offset));
    }
    Ok(target)
}

fn normalize_eols(s: &str) -> Cow<'_, str> {
    if !s.contains('\r') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The XML 1.0 `Char` production (surrogates cannot occur in a `char`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Offset of the first character outside the XML 1.0 `Char` production, if any.
///
/// Scans 64-byte blocks with a branch-free test the compiler vectorizes, and finds the
/// non-characters U+FFFE / U+FFFF (`EF BF BE` / `EF BF BF` in UTF-8) with memchr.
fn find_illegal_char(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let bad = |b: u8| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
    for (k, block) in bytes.chunks(64).enumerate() {
        if block.iter().fold(false, |acc, &b| acc | bad(b)) {
            return block.iter().position(|&b| bad(b)).map(|i| k * 64 + i);
        }
    }
    memchr::memchr_iter(0xEF, bytes)
        .find(|&i| bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)))
}

fn describe(e: &quick_xml::Error) -> String {
    use quick_xml::errors::{Error, IllFormedError};
    match e {
        Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
            format!("end tag </{found}> does not match start tag <{expected}>")
        }
        Error::IllFormed(IllFormedError::MissingEndTag(name)) => {
            format!("unexpected end of document: <{name}> is not closed")
        }
        Error::IllFormed(IllFormedError::UnmatchedEndTag(name)) => {
            format!("end tag </{name}> without a start tag")
        }
        other => other.to_string(),
    }
}
