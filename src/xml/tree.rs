//! A small located tree built with quick-xml: element names, attributes, text and the byte
//! offset of every start tag, so business rules and schema errors can be reported with line,
//! column and an XPath-like path. It is also where hostile shapes are stopped (DTDs, depth and
//! element-count floods) before libxml2 ever sees the bytes.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{Limits, Position, XmlError};

/// Names and values borrow from the document; only text with escapes is copied.
#[derive(Debug, Clone)]
pub struct Attr<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub name: &'a str,
    pub attrs: Vec<Attr<'a>>,
    pub text: Cow<'a, str>,
    pub children: Vec<usize>,
    pub parent: Option<usize>,
    pub offset: usize,
}

#[derive(Debug)]
pub struct Tree<'a> {
    pub src: &'a [u8],
    pub nodes: Vec<Node<'a>>,
    /// Namespace URI of the root element (empty when it has none).
    pub root_ns: String,
    lines: std::sync::OnceLock<Lines>,
}

/// Line and column at every `STEP` bytes of a document, built once on the first position
/// asked: a position is then the nearest checkpoint plus a scan of less than `STEP` bytes.
#[derive(Debug)]
struct Lines {
    checkpoints: Vec<Position>,
}

impl Lines {
    const STEP: usize = 4096;

    fn index(src: &[u8]) -> Lines {
        let mut checkpoints = Vec::with_capacity(src.len() / Self::STEP + 1);
        let mut pos = Position { line: 1, column: 1 };
        for (i, &b) in src.iter().enumerate() {
            if i % Self::STEP == 0 {
                checkpoints.push(pos);
            }
            advance(&mut pos, b);
        }
        if checkpoints.is_empty() {
            checkpoints.push(pos);
        }
        Lines { checkpoints }
    }

    fn at(&self, src: &[u8], offset: usize) -> Position {
        let offset = offset.min(src.len());
        let k = (offset / Self::STEP).min(self.checkpoints.len() - 1);
        let mut pos = self.checkpoints[k];
        for &b in &src[k * Self::STEP..offset] {
            advance(&mut pos, b);
        }
        pos
    }
}

/// Moves a position past one byte: a newline starts a line; columns count characters, so
/// UTF-8 continuation bytes do not move them (as [`Position::at`]).
fn advance(pos: &mut Position, b: u8) {
    if b == b'\n' {
        pos.line += 1;
        pos.column = 1;
    } else if b & 0xC0 != 0x80 {
        pos.column += 1;
    }
}

pub const ROOT: usize = 0;

fn local(qname: &[u8]) -> &[u8] {
    qname
        .iter()
        .position(|&b| b == b':')
        .map_or(qname, |i| &qname[i + 1..])
}

fn utf8<'a>(src: &'a [u8], bytes: &'a [u8], at: usize) -> Result<&'a str, XmlError> {
    std::str::from_utf8(bytes).map_err(|_| XmlError::Encoding {
        pos: Position::at(src, at),
        message: "invalid UTF-8 in a name".into(),
    })
}

impl<'a> Tree<'a> {
    /// Reads `src` (a UTF-8 byte-order mark in front is allowed and skipped: XML 1.0 permits
    /// it and Windows tools write one). Positions and offsets count from after the mark,
    /// which is not part of the document's text.
    pub fn parse(src: &'a [u8], limits: &Limits) -> Result<Tree<'a>, XmlError> {
        let src = super::without_bom(src);
        if src.starts_with(b"\xEF\xBB\xBF") {
            // U+FEFF is a byte-order mark once, at the very start; a second one is text
            // before the root element.
            return Err(XmlError::Malformed {
                pos: Position { line: 1, column: 1 },
                message: "a second byte-order mark: text before the root element".into(),
            });
        }
        let text = std::str::from_utf8(src).map_err(|_| XmlError::Encoding {
            pos: Position::at(src, 0),
            message: "document is not valid UTF-8".into(),
        })?;
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.trim_text(false);
        config.expand_empty_elements = true;

        let malformed = |at: usize, message: String| XmlError::Malformed {
            pos: Position::at(src, at),
            message,
        };
        let mut nodes: Vec<Node<'a>> = Vec::with_capacity(src.len() / 40);
        let mut stack: Vec<usize> = Vec::new();
        // Namespace declarations made by each open element, and their sum (those in scope).
        let mut ns_stack: Vec<usize> = Vec::new();
        let mut ns_in_scope = 0usize;
        let mut names = NameCounter::new(limits);
        let mut root_ns = String::new();
        let mut seen_root_end = false;
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader
                .read_event()
                .map_err(|e| malformed(reader.error_position() as usize, e.to_string()))?;
            match event {
                Event::DocType(_) => {
                    return Err(XmlError::Doctype {
                        pos: Position::at(src, before),
                    })
                }
                Event::Start(e) => {
                    if seen_root_end {
                        return Err(malformed(before, "content after the root element".into()));
                    }
                    if stack.len() >= limits.max_depth {
                        return Err(XmlError::TooDeep {
                            pos: Position::at(src, before),
                            limit: limits.max_depth,
                        });
                    }
                    if nodes.len() >= limits.max_elements {
                        return Err(XmlError::TooManyElements {
                            pos: Position::at(src, before),
                            limit: limits.max_elements,
                        });
                    }
                    // The tag's bytes, taken from the input itself so names and values keep the
                    // input's lifetime: the event starts with '<' at `before`.
                    let raw = borrowed(src, before + 1, &e)?;
                    let name_len = e.name().as_ref().len();
                    let e = quick_xml::events::BytesStart::from_content(
                        utf8(src, raw, before)?,
                        name_len,
                    );
                    // `e` now reads `raw` in place: its slices are slices of `raw`.
                    let within = |part: &[u8]| -> Result<&'a [u8], XmlError> {
                        (part.as_ptr() as usize)
                            .checked_sub(raw.as_ptr() as usize)
                            .and_then(|off| raw.get(off..off + part.len()))
                            .ok_or_else(|| XmlError::Internal("attribute outside its tag".into()))
                    };
                    let qname: &'a [u8] = &raw[..e.name().as_ref().len()];
                    names.see(qname, src, before)?;
                    let name = utf8(src, local(qname), before)?;
                    let prefix = qname.len().checked_sub(name.len() + 1).map(|n| &qname[..n]);
                    let mut attrs = Vec::new();
                    let mut declared = 0usize;
                    // Counted before each attribute is read: the reader's own duplicate check
                    // compares every attribute with the earlier ones, so it must not run on an
                    // unbounded number of them.
                    for a in e.attributes() {
                        if attrs.len() >= limits.max_attributes {
                            return Err(XmlError::TooManyAttributes {
                                pos: Position::at(src, before),
                                limit: limits.max_attributes,
                            });
                        }
                        let a = a.map_err(|err| malformed(before, err.to_string()))?;
                        let key = within(a.key.as_ref())?;
                        names.see(key, src, before)?;
                        let value = match a.value {
                            Cow::Borrowed(v) => {
                                quick_xml::escape::unescape(utf8(src, within(v)?, before)?)
                                    .map_err(|err| malformed(before, err.to_string()))?
                            }
                            Cow::Owned(v) => Cow::Owned(
                                quick_xml::escape::unescape(&String::from_utf8_lossy(&v))
                                    .map_err(|err| malformed(before, err.to_string()))?
                                    .into_owned(),
                            ),
                        };
                        let is_ns = key == b"xmlns" || key.starts_with(b"xmlns:");
                        if nodes.is_empty() && is_ns {
                            let declared = key.get(6..).filter(|p| !p.is_empty());
                            if declared == prefix {
                                root_ns = value.clone().into_owned();
                            }
                        }
                        if is_ns {
                            declared += 1;
                            if ns_in_scope + declared > limits.max_namespaces {
                                return Err(XmlError::TooManyNamespaces {
                                    pos: Position::at(src, before),
                                    limit: limits.max_namespaces,
                                });
                            }
                            continue;
                        }
                        attrs.push(Attr {
                            name: utf8(src, local(key), before)?,
                            value,
                            offset: before,
                        });
                    }
                    let id = nodes.len();
                    let parent = stack.last().copied();
                    nodes.push(Node {
                        name,
                        attrs,
                        text: Cow::Borrowed(""),
                        children: Vec::new(),
                        parent,
                        offset: before,
                    });
                    if let Some(p) = parent {
                        nodes[p].children.push(id);
                    }
                    stack.push(id);
                    ns_stack.push(declared);
                    ns_in_scope += declared;
                }
                Event::End(_) => {
                    stack.pop();
                    ns_in_scope -= ns_stack.pop().unwrap_or(0);
                    if stack.is_empty() {
                        seen_root_end = true;
                    }
                }
                Event::Text(t) => {
                    let raw = borrowed(src, before, &t)?;
                    let piece = quick_xml::escape::unescape(utf8(src, raw, before)?)
                        .map_err(|err| malformed(before, err.to_string()))?;
                    match stack.last() {
                        Some(&top) => append(&mut nodes[top].text, piece),
                        None if piece.trim().is_empty() => {}
                        None => {
                            return Err(malformed(before, "text outside the root element".into()))
                        }
                    }
                }
                Event::CData(t) => {
                    if let Some(&top) = stack.last() {
                        let piece = String::from_utf8_lossy(&t).into_owned();
                        append(&mut nodes[top].text, Cow::Owned(piece));
                    }
                }
                Event::Decl(d) => {
                    if let Some(Ok(enc)) = d.encoding() {
                        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                        if enc != "utf-8" && enc != "utf8" {
                            return Err(XmlError::Encoding {
                                pos: Position::at(src, before),
                                message: format!(
                                    "declared encoding '{enc}' is not accepted: documents must be UTF-8"
                                ),
                            });
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if nodes.is_empty() {
            return Err(malformed(src.len(), "no root element".into()));
        }
        if !stack.is_empty() {
            return Err(malformed(
                src.len(),
                "document ends before the root element is closed".into(),
            ));
        }
        Ok(Tree {
            src,
            nodes,
            root_ns,
            lines: std::sync::OnceLock::new(),
        })
    }

    pub fn node(&self, id: usize) -> &Node<'a> {
        &self.nodes[id]
    }

    /// First child element named `name`.
    pub fn child(&self, id: usize, name: &str) -> Option<usize> {
        self.nodes[id]
            .children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].name == name)
    }

    pub fn children<'s>(&'s self, id: usize, name: &'s str) -> impl Iterator<Item = usize> + 's {
        self.nodes[id]
            .children
            .iter()
            .copied()
            .filter(move |&c| self.nodes[c].name == name)
    }

    /// Follows a `/`-separated chain of first children, e.g. `"Header/Reference"`.
    pub fn at(&self, id: usize, chain: &str) -> Option<usize> {
        chain
            .split('/')
            .try_fold(id, |cur, name| self.child(cur, name))
    }

    /// Text of an element without surrounding whitespace (schema types here are tokens).
    pub fn text(&self, id: usize) -> &str {
        self.nodes[id].text.trim()
    }

    pub fn attr(&self, id: usize, name: &str) -> Option<&str> {
        self.nodes[id]
            .attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.trim())
    }

    /// Line and column of an element's start tag. Costs at most one checkpoint interval of
    /// scanning ([`Lines`]), so locating many errors costs in proportion to the document.
    pub fn position(&self, id: usize) -> Position {
        self.lines
            .get_or_init(|| Lines::index(self.src))
            .at(self.src, self.nodes[id].offset)
    }

    /// XPath-like path: local names, `[n]` only among several same-name siblings.
    pub fn path(&self, id: usize) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(n) = cur {
            let node = &self.nodes[n];
            let segment = match node.parent {
                Some(p) => {
                    let same: Vec<usize> = self.children(p, node.name).collect();
                    if same.len() > 1 {
                        let idx = same.iter().position(|&s| s == n).unwrap_or(0) + 1;
                        format!("{}[{}]", node.name, idx)
                    } else {
                        node.name.to_owned()
                    }
                }
                None => node.name.to_owned(),
            };
            parts.push(segment);
            cur = node.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    pub fn attr_path(&self, id: usize, attr: &str) -> String {
        format!("{}/@{}", self.path(id), attr)
    }

    /// Finds the element a path names (the inverse of [`Tree::path`]); attribute steps are
    /// resolved to their element.
    pub fn find(&self, path: &str) -> Option<usize> {
        let mut steps = path.trim_start_matches('/').split('/');
        let first = steps.next()?;
        if self.nodes[ROOT].name != first {
            return None;
        }
        let mut cur = ROOT;
        for step in steps {
            if step.starts_with('@') {
                break;
            }
            let (name, idx) = match step.split_once('[') {
                Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()?),
                None => (step, 1),
            };
            cur = self.children(cur, name).nth(idx.checked_sub(1)?)?;
        }
        Some(cur)
    }
}

/// Counts the distinct names a document uses and refuses overlong ones. Names are few in a
/// real document (a schema's vocabulary), so the set stays small until the limit refuses it.
struct NameCounter<'l, 'a> {
    seen: std::collections::HashSet<&'a [u8]>,
    limits: &'l Limits,
}

impl<'l, 'a> NameCounter<'l, 'a> {
    fn new(limits: &'l Limits) -> Self {
        NameCounter {
            seen: std::collections::HashSet::new(),
            limits,
        }
    }

    /// A qualified name as written (`prefix:local`, or `xmlns:prefix`); both parts count.
    fn see(&mut self, qname: &'a [u8], src: &[u8], at: usize) -> Result<(), XmlError> {
        if qname.len() > self.limits.max_name_bytes {
            return Err(XmlError::NameTooLong {
                pos: Position::at(src, at),
                limit: self.limits.max_name_bytes,
            });
        }
        if self.seen.insert(qname) && self.seen.len() > self.limits.max_names {
            return Err(XmlError::TooManyNames {
                pos: Position::at(src, at),
                limit: self.limits.max_names,
            });
        }
        Ok(())
    }
}

/// The input slice an event was read from, checked against the event's own bytes.
fn borrowed<'a>(src: &'a [u8], start: usize, event: &[u8]) -> Result<&'a [u8], XmlError> {
    src.get(start..start + event.len())
        .filter(|s| *s == event)
        .ok_or_else(|| XmlError::Internal("reader position out of step with its input".into()))
}

/// Adds a text piece to an element. Whitespace between child elements is dropped (no schema
/// here has mixed content), so container elements never allocate for it.
fn append<'a>(text: &mut Cow<'a, str>, piece: Cow<'a, str>) {
    if text.is_empty() {
        if !piece.trim().is_empty() {
            *text = piece;
        }
    } else {
        text.to_mut().push_str(&piece);
    }
}
