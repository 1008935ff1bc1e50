//! Writing XML: escaping and a small indenting element writer.
//!
//! Used by everything truc emits (packages from the builder, later receipts). Output is UTF-8,
//! escaped so that a conforming parser reads back exactly the strings given: text escapes
//! `&`, `<`, `>` and CR; attribute values also escape `"`, TAB and LF (which a parser would
//! otherwise normalize to spaces).

use std::borrow::Cow;

/// Escapes character data.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    escape(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '\r' => Some("&#xD;"),
        _ => None,
    })
}

/// Escapes an attribute value written between double quotes.
pub fn escape_attr(s: &str) -> Cow<'_, str> {
    escape(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '"' => Some("&quot;"),
        '\t' => Some("&#x9;"),
        '\n' => Some("&#xA;"),
        '\r' => Some("&#xD;"),
        _ => None,
    })
}

fn escape(s: &str, map: impl Fn(char) -> Option<&'static str>) -> Cow<'_, str> {
    let Some(first) = s.find(|c| map(c).is_some()) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match map(c) {
            Some(rep) => out.push_str(rep),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes indented elements into a `String`. Names are written as given; the caller chooses
/// prefixes and declares namespaces through [`Writer::open_with`].
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    /// A writer that starts with the UTF-8 XML declaration.
    pub fn with_declaration() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            depth: 0,
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape_attr(v));
            self.out.push('"');
        }
    }

    /// Opens `<name>` on its own line.
    pub fn open(&mut self, name: &str) {
        self.open_with(name, &[]);
    }

    /// Opens `<name k="v"...>` on its own line.
    pub fn open_with(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.tag(name, attrs);
        self.out.push_str(">\n");
        self.depth += 1;
    }

    /// Closes `</name>`; `name` must match the innermost open element.
    pub fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Writes `<name>text</name>` on one line.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.leaf_with(name, &[], text);
    }

    /// Writes `<name k="v"...>text</name>` on one line.
    pub fn leaf_with(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.tag(name, attrs);
        self.out.push('>');
        self.out.push_str(&escape_text(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Writes `<name k="v"/>`.
    pub fn empty_with(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.tag(name, attrs);
        self.out.push_str("/>\n");
    }

    /// Writes `<name>` and then raw, already-escaped text, then `</name>`. The text is
    /// appended as is (used for base64, which needs no escaping).
    pub fn leaf_raw(&mut self, name: &str, raw: &str) {
        self.tag(name, &[]);
        self.out.push('>');
        self.out.push_str(raw);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// The document written so far.
    pub fn finish(self) -> String {
        self.out
    }
}
