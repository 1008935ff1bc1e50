//! A small, strict, read-only XML tree built on quick-xml.
//!
//! Everything in truc that reads XML reads it through [`Document::parse`]: the edXML model
//! today, canonicalization and signature verification later. One parser and one tree is the
//! defence against parser differentials (a signature checked on one reading of the bytes
//! while business code reads another).
//!
//! # What the tree holds
//! - Nodes in document order in one arena ([`Document::node`]): elements, text, comments and
//!   processing instructions. Every node records its byte [`Span`] in the *original* input, so
//!   callers can digest or forward exact bytes and point at a line and column in errors.
//! - Elements carry their prefix, local name and resolved namespace URI, their namespace
//!   declarations (kept apart from ordinary attributes, as canonicalization needs them) and
//!   their attributes with values normalized as XML 1.0 §3.3.3 requires.
//! - Text is the XML-infoset text: line endings normalized (§2.11), character and predefined
//!   entity references resolved, CDATA sections merged into the surrounding text. Text that
//!   needs no change borrows from the input.
//!
//! # What it refuses (errors, never panics)
//! - Any DOCTYPE: no DTD, no entity declarations, ever (no XXE, no billion laughs).
//! - Input that is not UTF-8 (a UTF-8 byte-order mark is allowed), a declaration naming another
//!   encoding, XML 1.1, characters outside the XML 1.0 `Char` production.
//! - Ill-formed XML: unclosed or mismatched tags, several roots, text outside the root,
//!   undeclared entities or namespace prefixes, duplicate attributes, `<` in attribute values.
//! - Input past the [`Limits`]: size, nesting depth, node count, attributes per element.
//!
//! # Non-guarantees
//! Names are checked only for shape (non-empty parts, at most one colon, no leading digit,
//! `-` or `.`), not against the full XML `Name` production.

mod reader;
pub mod write;

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use reader::XmlError;

/// The namespace bound to the `xml` prefix by definition.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// A byte range `[start, end)` in the original input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The span as a range, for slicing the input.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.end - self.start
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// Resource limits applied while parsing. Every field has a safe default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted input in bytes. Default: 64 MiB.
    pub max_bytes: usize,
    /// Deepest element nesting (the root is depth 1). Default: 64.
    pub max_depth: usize,
    /// Most elements, comments and processing instructions in one document. Default: 100,000.
    pub max_elements: usize,
    /// Most attributes, namespace declarations included, on one element. Default: 64.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_elements: 100_000,
            max_attributes: 64,
        }
    }
}

/// Index of a node in its [`Document`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// A parsed document: an arena of nodes borrowing from the input.
#[derive(Debug)]
pub struct Document<'a> {
    input: &'a [u8],
    nodes: Vec<Node<'a>>,
    /// Top-level nodes in order: comments and PIs before and after the root, and the root.
    top: Vec<NodeId>,
    root: NodeId,
}

/// One node of the tree.
#[derive(Debug)]
pub struct Node<'a> {
    /// Parent element, `None` for top-level nodes.
    pub parent: Option<NodeId>,
    /// Bytes of the node in the input (for an element, from `<` of the start tag to `>` of the
    /// end tag).
    pub span: Span,
    /// What the node is.
    pub kind: NodeKind<'a>,
}

/// The kinds of node the tree keeps.
#[derive(Debug)]
pub enum NodeKind<'a> {
    /// An element.
    Element(Element<'a>),
    /// Character data (text, references and CDATA merged), infoset-normalized.
    Text(Cow<'a, str>),
    /// A comment's content, line endings normalized.
    Comment(Cow<'a, str>),
    /// A processing instruction.
    Pi {
        /// The PI target.
        target: &'a str,
        /// Everything after the target and its separating whitespace.
        content: Cow<'a, str>,
    },
}

/// An element with its resolved names.
#[derive(Debug)]
pub struct Element<'a> {
    /// Prefix as written, `None` when unprefixed.
    pub prefix: Option<&'a str>,
    /// Local name.
    pub local: &'a str,
    /// Namespace URI the name resolved to, `None` when in no namespace.
    pub namespace: Option<Cow<'a, str>>,
    /// Namespace declarations on this element, in document order.
    pub namespace_decls: Vec<NamespaceDecl<'a>>,
    /// Ordinary attributes, in document order.
    pub attributes: Vec<Attribute<'a>>,
    /// Children in document order.
    pub children: Vec<NodeId>,
    /// Bytes of the start tag (or of the whole empty-element tag).
    pub start_tag: Span,
}

/// `xmlns="uri"` (prefix `None`) or `xmlns:p="uri"`.
#[derive(Debug)]
pub struct NamespaceDecl<'a> {
    /// Declared prefix, `None` for the default namespace.
    pub prefix: Option<&'a str>,
    /// The namespace URI; empty only for `xmlns=""`.
    pub uri: Cow<'a, str>,
}

/// An attribute with its normalized value.
#[derive(Debug)]
pub struct Attribute<'a> {
    /// Prefix as written.
    pub prefix: Option<&'a str>,
    /// Local name.
    pub local: &'a str,
    /// Namespace of a prefixed attribute; unprefixed attributes are in no namespace.
    pub namespace: Option<Cow<'a, str>>,
    /// Value after attribute-value normalization and reference resolution.
    pub value: Cow<'a, str>,
}

impl Element<'_> {
    /// Whether this element has namespace `ns` and local name `local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.namespace.as_deref() == Some(ns)
    }

    /// The value of the unprefixed attribute `local`, if present.
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_none() && a.local == local)
            .map(|a| a.value.as_ref())
    }

    /// The name as written, `prefix:local` or `local`.
    pub fn qname(&self) -> String {
        match self.prefix {
            Some(p) => format!("{p}:{}", self.local),
            None => self.local.to_owned(),
        }
    }
}

impl<'a> Document<'a> {
    /// Parses `input` into a tree, enforcing `limits`.
    pub fn parse(input: &'a [u8], limits: &Limits) -> Result<Self, XmlError> {
        reader::parse(input, limits)
    }

    /// The original input.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// The root element's id.
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// Top-level nodes in document order (the root and any comments or PIs around it).
    pub fn top_level(&self) -> &[NodeId] {
        &self.top
    }

    /// The node with this id.
    ///
    /// Ids come only from this document, so the index is always in bounds.
    pub fn node(&self, id: NodeId) -> &Node<'a> {
        &self.nodes[id.index()]
    }

    /// The element with this id, or `None` for other kinds of node.
    pub fn element(&self, id: NodeId) -> Option<&Element<'a>> {
        match &self.node(id).kind {
            NodeKind::Element(e) => Some(e),
            _ => None,
        }
    }

    /// Every element, in document order.
    pub fn elements(&self) -> impl Iterator<Item = (NodeId, &Element<'a>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::Element(e) => Some((NodeId(i as u32), e)),
                _ => None,
            })
    }

    /// Child elements of `id`, in document order.
    pub fn child_elements(&self, id: NodeId) -> impl Iterator<Item = (NodeId, &Element<'a>)> {
        self.element(id)
            .map(|e| e.children.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|&c| self.element(c).map(|e| (c, e)))
    }

    /// The concatenated text of `id`'s direct text children (comments and elements skipped).
    pub fn text(&self, id: NodeId) -> Cow<'_, str> {
        let Some(e) = self.element(id) else {
            return Cow::Borrowed("");
        };
        let mut texts = e.children.iter().filter_map(|&c| match &self.node(c).kind {
            NodeKind::Text(t) => Some(t.as_ref()),
            _ => None,
        });
        match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(one), None) => Cow::Borrowed(one),
            (Some(first), Some(second)) => {
                let mut all = String::from(first);
                all.push_str(second);
                texts.for_each(|t| all.push_str(t));
                Cow::Owned(all)
            }
        }
    }

    /// Span of the raw character data of `id` (from the end of its start tag to the start of
    /// its end tag); empty for an empty-element tag.
    pub fn content_span(&self, id: NodeId) -> Span {
        let node = self.node(id);
        match &node.kind {
            NodeKind::Element(e) if e.start_tag.end < node.span.end => {
                let raw = &self.input[e.start_tag.end..node.span.end];
                let close = raw.iter().rposition(|&b| b == b'<').unwrap_or(0);
                Span {
                    start: e.start_tag.end,
                    end: e.start_tag.end + close,
                }
            }
            _ => Span {
                start: node.span.end,
                end: node.span.end,
            },
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(self.input, offset)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `input`.
pub fn line_col(input: &[u8], offset: usize) -> (usize, usize) {
    let before = &input[..offset.min(input.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // Count characters, not bytes: continuation bytes (10xxxxxx) do not start a character.
    let column = before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count()
        + 1;
    (line, column)
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests;
