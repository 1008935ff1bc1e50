//! Canonical XML: C14N 1.0, C14N 1.1 and Exclusive C14N 1.0, with or without comments, over
//! the node-sets XML-Signature needs.
//!
//! Pure: a [`Document`] and a [`NodeSet`] in, canonical bytes out to a [`Sink`] (a `Vec<u8>`
//! or a digest context, so a reference is digested without holding its canonical form).
//!
//! # Node-sets
//! XML-Signature only ever canonicalizes "a subtree, minus at most one subtree inside it" —
//! the whole document (`URI=""`), an element by Id (`#id`), either of them minus the enveloped
//! `Signature`, and `SignedInfo` in its document context. [`NodeSet`] names exactly that:
//! an apex (`None` for the document node) and an optional excluded element. Whether comments
//! are in the set is the caller's decision ([`Canonicalizer::comments`]): a same-document
//! reference drops them even under a `#WithComments` algorithm.
//!
//! # What each variant renders (the hard parts)
//! - Namespaces. Inclusive (1.0, 1.1): the apex carries every namespace in scope, inherited
//!   ones included; a descendant carries the declarations that differ from what its output
//!   parent rendered. Exclusive: an element carries a declaration only for the prefixes it
//!   visibly uses (its own prefix, its attributes' prefixes) plus the InclusiveNamespaces
//!   PrefixList, and only when the nearest output ancestor did not already render the same
//!   binding. `xmlns=""` appears only to undo a rendered non-empty default. The `xml` prefix is
//!   never declared.
//! - `xml:*` attributes. On the apex of a subset, C14N 1.0 copies every `xml:*` attribute
//!   inherited from omitted ancestors; C14N 1.1 copies `xml:lang` and `xml:space`, and joins
//!   `xml:base` values into one (RFC 3986 resolution); Exclusive copies none.
//! - Order: namespace declarations first (default, then by prefix), then attributes by
//!   (namespace URI, local name), unqualified attributes first.
//! - Escaping: text `&amp; &lt; &gt; &#xD;`; attribute values `&amp; &lt; &quot; &#x9; &#xA;
//!   &#xD;`. The tree already holds infoset values (line endings and attribute whitespace
//!   normalized, references resolved, CDATA merged), so rendering is a straight walk.
//! - Outside the root: processing instructions (and comments, when kept) each on their own
//!   line, `#xA` after those before the root and before those after it.

use std::borrow::Cow;

use crate::xml::{Document, NodeId, NodeKind, XML_NS};

/// The three canonicalization methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Canonical XML 1.0 (inclusive).
    C14n10,
    /// Canonical XML 1.1 (inclusive, `xml:id` not inherited, `xml:base` fixed up).
    C14n11,
    /// Exclusive XML Canonicalization 1.0.
    Exclusive,
}

/// A canonicalization algorithm as named by an XML-Signature URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Algorithm {
    /// The method.
    pub method: Method,
    /// The `#WithComments` variant.
    pub with_comments: bool,
}

const URIS: [(&str, Method, bool); 6] = [
    (
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        Method::C14n10,
        false,
    ),
    (
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        Method::C14n10,
        true,
    ),
    (
        "http://www.w3.org/2006/12/xml-c14n11",
        Method::C14n11,
        false,
    ),
    (
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
        Method::C14n11,
        true,
    ),
    (
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        Method::Exclusive,
        false,
    ),
    (
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        Method::Exclusive,
        true,
    ),
];

impl Algorithm {
    /// The algorithm a URI names, if it is one of the six.
    pub fn from_uri(uri: &str) -> Option<Self> {
        URIS.iter()
            .find(|(u, ..)| *u == uri)
            .map(|&(_, method, with_comments)| Algorithm {
                method,
                with_comments,
            })
    }

    /// The algorithm's URI.
    pub fn uri(self) -> &'static str {
        URIS.iter()
            .find(|(_, m, c)| *m == self.method && *c == self.with_comments)
            .map_or("", |(u, ..)| u)
    }
}

/// Which nodes of a document to canonicalize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSet {
    /// The element whose subtree is the set; `None` for the whole document (top-level
    /// processing instructions and comments included).
    pub apex: Option<NodeId>,
    /// An element removed with its descendants (the enveloped `Signature`).
    pub exclude: Option<NodeId>,
}

impl NodeSet {
    /// The whole document.
    pub fn document() -> Self {
        NodeSet {
            apex: None,
            exclude: None,
        }
    }

    /// The subtree rooted at `apex`.
    pub fn subtree(apex: NodeId) -> Self {
        NodeSet {
            apex: Some(apex),
            exclude: None,
        }
    }
}

/// Where canonical bytes go.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for ring::digest::Context {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// A configured canonicalizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canonicalizer {
    /// The method.
    pub method: Method,
    /// Whether comments are rendered.
    pub comments: bool,
    /// Exclusive only: prefixes treated as by inclusive canonicalization (`None` is the
    /// default namespace, written `#default`).
    pub inclusive_prefixes: Vec<Option<String>>,
}

impl Canonicalizer {
    /// A canonicalizer for `method`, without comments or inclusive prefixes.
    pub fn new(method: Method) -> Self {
        Canonicalizer {
            method,
            comments: false,
            inclusive_prefixes: Vec::new(),
        }
    }

    /// Sets the InclusiveNamespaces PrefixList from its attribute value (whitespace-separated
    /// prefixes, `#default` for the default namespace).
    pub fn with_prefix_list(mut self, list: &str) -> Self {
        self.inclusive_prefixes = list
            .split_ascii_whitespace()
            .map(|p| (p != "#default").then(|| p.to_owned()))
            .collect();
        self
    }

    /// Canonicalizes `set` of `doc` into `sink`.
    pub fn canonicalize<S: Sink>(&self, doc: &Document<'_>, set: &NodeSet, sink: &mut S) {
        let mut w = Walker {
            doc,
            c: self,
            exclude: set.exclude,
            out: Out::new(sink),
            inscope: Vec::new(),
            rendered: Vec::new(),
        };
        match set.apex {
            Some(apex) => {
                if set.exclude != Some(apex) && doc.element(apex).is_some() {
                    w.enter_context(apex);
                    w.element(apex, true);
                }
            }
            None => w.document(),
        }
        w.out.flush();
    }

    /// Canonicalizes into a new vector.
    pub fn to_vec(&self, doc: &Document<'_>, set: &NodeSet) -> Vec<u8> {
        let mut out = Vec::with_capacity(doc.input().len());
        self.canonicalize(doc, set, &mut out);
        out
    }
}

/// A buffer in front of the sink: many small writes become few large ones.
struct Out<'s, S: Sink> {
    buf: Vec<u8>,
    sink: &'s mut S,
}

const BUFFER: usize = 32 * 1024;

impl<'s, S: Sink> Out<'s, S> {
    fn new(sink: &'s mut S) -> Self {
        Out {
            buf: Vec::with_capacity(BUFFER),
            sink,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > BUFFER {
            self.flush();
            if bytes.len() >= BUFFER {
                self.sink.put(bytes);
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    fn str(&mut self, s: &str) {
        self.put(s.as_bytes());
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.sink.put(&self.buf);
            self.buf.clear();
        }
    }

    /// Writes `s` escaped: text content when `attr` is false, an attribute value otherwise.
    /// Text, which may be megabytes of base64, is scanned with SIMD (memchr); attribute
    /// values are short.
    fn escaped(&mut self, s: &str, attr: bool) {
        let bytes = s.as_bytes();
        let mut from = 0;
        // Absolute index of the next CR in text (rare: only from `&#13;`), found once.
        let mut next_cr = if attr {
            None
        } else {
            memchr::memchr(b'\r', bytes)
        };
        while from < bytes.len() {
            let rest = &bytes[from..];
            let next = if attr {
                rest.iter().position(|b| ATTR_SPECIAL.contains(b))
            } else {
                if next_cr.is_some_and(|c| c < from) {
                    next_cr = memchr::memchr(b'\r', rest).map(|c| c + from);
                }
                let cr = next_cr.map(|c| c - from);
                match (memchr::memchr3(b'&', b'<', b'>', rest), cr) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            let Some(k) = next else {
                self.put(rest);
                return;
            };
            self.put(&rest[..k]);
            self.put(match rest[k] {
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                b'"' => b"&quot;",
                b'\t' => b"&#x9;",
                b'\n' => b"&#xA;",
                _ => b"&#xD;",
            });
            from += k + 1;
        }
    }
}

/// Bytes escaped in attribute values.
const ATTR_SPECIAL: &[u8] = b"&<\"\t\n\r";

/// A namespace binding: prefix (`None` = default) and URI (`""` = no default namespace).
type Binding<'d> = (Option<&'d str>, &'d str);

/// An attribute ready to render.
struct Attr<'d> {
    namespace: &'d str,
    local: &'d str,
    prefix: Option<&'d str>,
    value: Cow<'d, str>,
}

struct Walker<'d, 'a, 's, S: Sink> {
    doc: &'d Document<'a>,
    c: &'d Canonicalizer,
    exclude: Option<NodeId>,
    out: Out<'s, S>,
    /// Namespace declarations in scope, outermost first (lookups search from the end).
    inscope: Vec<Binding<'d>>,
    /// Declarations rendered by output ancestors, outermost first.
    rendered: Vec<Binding<'d>>,
}

fn lookup<'d>(stack: &[Binding<'d>], prefix: Option<&str>) -> Option<&'d str> {
    stack
        .iter()
        .rev()
        .find(|(p, _)| *p == prefix)
        .map(|&(_, uri)| uri)
}

impl<'d, S: Sink> Walker<'d, '_, '_, S> {
    fn document(&mut self) {
        let doc = self.doc;
        let root = doc.root();
        let mut after_root = false;
        for &id in doc.top_level() {
            if id == root {
                if self.exclude != Some(root) {
                    self.element(root, true);
                }
                after_root = true;
                continue;
            }
            let keep = match doc.node(id).kind {
                NodeKind::Comment(_) => self.c.comments,
                NodeKind::Pi { .. } => true,
                _ => false,
            };
            if keep {
                if after_root {
                    self.out.put(b"\n");
                }
                self.leaf(id);
                if !after_root {
                    self.out.put(b"\n");
                }
            }
        }
    }

    /// Pushes the namespace declarations of `apex`'s ancestors, outermost first.
    fn enter_context(&mut self, apex: NodeId) {
        let doc = self.doc;
        let mut chain = Vec::new();
        let mut at = doc.node(apex).parent;
        while let Some(id) = at {
            chain.push(id);
            at = doc.node(id).parent;
        }
        for &id in chain.iter().rev() {
            if let Some(e) = doc.element(id) {
                for d in &e.namespace_decls {
                    self.inscope.push((d.prefix, d.uri.as_ref()));
                }
            }
        }
    }

    fn leaf(&mut self, id: NodeId) {
        match &self.doc.node(id).kind {
            NodeKind::Text(t) => self.out.escaped(t, false),
            NodeKind::Comment(c) if self.c.comments => {
                self.out.put(b"<!--");
                self.out.str(c);
                self.out.put(b"-->");
            }
            NodeKind::Pi { target, content } => {
                self.out.put(b"<?");
                self.out.str(target);
                if !content.is_empty() {
                    self.out.put(b" ");
                    self.out.str(content);
                }
                self.out.put(b"?>");
            }
            _ => {}
        }
    }

    fn element(&mut self, id: NodeId, apex: bool) {
        let doc = self.doc;
        let Some(e) = doc.element(id) else {
            return;
        };
        let inscope_mark = self.inscope.len();
        let rendered_mark = self.rendered.len();
        for d in &e.namespace_decls {
            self.inscope.push((d.prefix, d.uri.as_ref()));
        }

        // Which prefixes might need a declaration here.
        let mut candidates: Vec<Option<&str>> = Vec::new();
        match self.c.method {
            Method::C14n10 | Method::C14n11 => {
                if apex {
                    for &(p, _) in self.inscope.iter().rev() {
                        if !candidates.contains(&p) {
                            candidates.push(p);
                        }
                    }
                } else {
                    candidates.extend(e.namespace_decls.iter().map(|d| d.prefix));
                }
            }
            Method::Exclusive => {
                candidates.push(e.prefix);
                for a in &e.attributes {
                    if a.prefix.is_some() && !candidates.contains(&a.prefix) {
                        candidates.push(a.prefix);
                    }
                }
                for p in &self.c.inclusive_prefixes {
                    let p = p.as_deref();
                    if !candidates.contains(&p) {
                        candidates.push(p);
                    }
                }
            }
        }
        let mut decls: Vec<Binding<'d>> = Vec::new();
        for p in candidates {
            if p == Some("xml") {
                continue;
            }
            let uri = lookup(&self.inscope, p).unwrap_or("");
            let shown = lookup(&self.rendered, p);
            let emit = if uri.is_empty() {
                // Only the default namespace can be empty: undo a rendered non-empty default.
                p.is_none() && shown.is_some_and(|s| !s.is_empty())
            } else {
                shown != Some(uri)
            };
            if emit {
                decls.push((p, uri));
            }
        }
        decls.sort_by(|a, b| a.0.cmp(&b.0));
        self.rendered.extend_from_slice(&decls);

        let mut attrs: Vec<Attr<'d>> = e
            .attributes
            .iter()
            .map(|a| Attr {
                namespace: a.namespace.as_deref().unwrap_or(""),
                local: a.local,
                prefix: a.prefix,
                value: Cow::Borrowed(a.value.as_ref()),
            })
            .collect();
        if apex {
            self.inherit_xml_attributes(id, &mut attrs);
        }
        attrs.sort_by(|a, b| (a.namespace, a.local).cmp(&(b.namespace, b.local)));

        let qname = e.qname();
        self.out.put(b"<");
        self.out.str(&qname);
        for (p, uri) in &decls {
            match p {
                None => self.out.put(b" xmlns=\""),
                Some(p) => {
                    self.out.put(b" xmlns:");
                    self.out.str(p);
                    self.out.put(b"=\"");
                }
            }
            self.out.escaped(uri, true);
            self.out.put(b"\"");
        }
        for a in &attrs {
            self.out.put(b" ");
            if let Some(p) = a.prefix {
                self.out.str(p);
                self.out.put(b":");
            }
            self.out.str(a.local);
            self.out.put(b"=\"");
            self.out.escaped(&a.value, true);
            self.out.put(b"\"");
        }
        self.out.put(b">");
        for &child in &e.children {
            if Some(child) == self.exclude {
                continue;
            }
            match doc.node(child).kind {
                NodeKind::Element(_) => self.element(child, false),
                _ => self.leaf(child),
            }
        }
        self.out.put(b"</");
        self.out.str(&qname);
        self.out.put(b">");
        self.inscope.truncate(inscope_mark);
        self.rendered.truncate(rendered_mark);
    }

    /// Adds to the apex the `xml:*` attributes its omitted ancestors pass on, as the method
    /// demands.
    fn inherit_xml_attributes(&self, apex: NodeId, attrs: &mut Vec<Attr<'d>>) {
        let doc = self.doc;
        if self.c.method == Method::Exclusive {
            return;
        }
        let v11 = self.c.method == Method::C14n11;
        // xml:base values from the ancestors, nearest first (1.1 joins them).
        let mut bases: Vec<&'d str> = Vec::new();
        let mut at = doc.node(apex).parent;
        while let Some(id) = at {
            at = doc.node(id).parent;
            let Some(e) = doc.element(id) else { continue };
            for a in &e.attributes {
                if a.namespace.as_deref() != Some(XML_NS) {
                    continue;
                }
                if v11 && a.local == "id" {
                    continue;
                }
                if v11 && a.local == "base" {
                    bases.push(a.value.as_ref());
                    continue;
                }
                if attrs
                    .iter()
                    .any(|x| x.namespace == XML_NS && x.local == a.local)
                {
                    continue;
                }
                attrs.push(Attr {
                    namespace: XML_NS,
                    local: a.local,
                    prefix: Some("xml"),
                    value: Cow::Borrowed(a.value.as_ref()),
                });
            }
        }
        if bases.is_empty() {
            return;
        }
        // Resolve from the outermost ancestor inward, then the apex's own value.
        let mut base = String::new();
        for b in bases.iter().rev() {
            base = join_base(&base, b);
        }
        if let Some(own) = attrs
            .iter_mut()
            .find(|x| x.namespace == XML_NS && x.local == "base")
        {
            own.value = Cow::Owned(join_base(&base, &own.value));
        } else {
            attrs.push(Attr {
                namespace: XML_NS,
                local: "base",
                prefix: Some("xml"),
                value: Cow::Owned(base),
            });
        }
    }
}

/// Resolves the URI reference `reference` against `base` (RFC 3986 §5.2, as C14N 1.1 §2.4
/// asks for `xml:base` fix-up). An empty base leaves the reference as it is.
pub fn join_base(base: &str, reference: &str) -> String {
    if base.is_empty() {
        return reference.to_owned();
    }
    let r = split_uri(reference);
    let b = split_uri(base);
    let (scheme, authority, path, query);
    if r.scheme.is_some() || r.authority.is_some() {
        scheme = r.scheme.or(b.scheme);
        authority = r.authority;
        path = remove_dot_segments(r.path);
        query = r.query;
    } else {
        scheme = b.scheme;
        authority = b.authority;
        if r.path.is_empty() {
            path = b.path.to_owned();
            query = r.query.or(b.query);
        } else {
            path = if r.path.starts_with('/') {
                remove_dot_segments(r.path)
            } else {
                remove_dot_segments(&merge(&b, r.path))
            };
            query = r.query;
        }
    }
    let mut out = String::new();
    if let Some(s) = scheme {
        out.push_str(s);
        out.push(':');
    }
    if let Some(a) = authority {
        out.push_str("//");
        out.push_str(a);
    }
    out.push_str(&path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = r.fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

struct UriParts<'u> {
    scheme: Option<&'u str>,
    authority: Option<&'u str>,
    path: &'u str,
    query: Option<&'u str>,
    fragment: Option<&'u str>,
}

fn split_uri(u: &str) -> UriParts<'_> {
    let (rest, fragment) = match u.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (u, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (scheme, rest) = match rest.split_once(':') {
        Some((s, r))
            if !s.is_empty()
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (Some(s), r)
        }
        _ => (None, rest),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find('/').unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    UriParts {
        scheme,
        authority,
        path,
        query,
        fragment,
    }
}

fn merge(base: &UriParts<'_>, path: &str) -> String {
    if base.authority.is_some() && base.path.is_empty() {
        return format!("/{path}");
    }
    match base.path.rfind('/') {
        Some(i) => format!("{}{path}", &base.path[..=i]),
        None => path.to_owned(),
    }
}

fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    let mut trailing_slash = false;
    for (i, seg) in path.split('/').enumerate() {
        if i == 0 && absolute {
            continue;
        }
        trailing_slash = false;
        match seg {
            "." => trailing_slash = true,
            ".." => {
                // C14N 1.1: leading ".." segments of a relative path are kept.
                if output.last().is_some_and(|l| *l != "..") {
                    output.pop();
                } else if !absolute {
                    output.push("..");
                }
                trailing_slash = true;
            }
            s => output.push(s),
        }
    }
    let mut out = String::new();
    if absolute {
        out.push('/');
    }
    out.push_str(&output.join("/"));
    if trailing_slash && !out.is_empty() && !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests;
