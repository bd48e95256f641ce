//! A small located tree built with quick-xml: element names, attributes, text and the byte
//! offset of every start tag, so business rules and schema errors can be reported with line,
//! column and an XPath-like path. It is also where hostile shapes are stopped (DTDs, depth and
//! element-count floods) before libxml2 ever sees the bytes.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{Limits, Position, XmlError};

/// Names and values borrow from the document; only values with escapes are copied.
#[derive(Debug, Clone)]
pub struct Attr<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
    pub offset: usize,
}

/// "No node": the root's parent, a leaf's first child, a last child's next sibling.
const NONE: u32 = u32::MAX;

/// One element, 36 bytes: offsets and indices instead of slices and vectors, so a document
/// of a few hundred thousand elements costs about its own size (issue 14: a 10 MB
/// declaration within 4× its size). Children are a chain of siblings; attributes are a
/// range of [`Tree::attrs`], from this node's `attrs` to the next node's.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The local name: `name_len` bytes of the source from `name_at`.
    name_at: u32,
    name_len: u32,
    /// The text ([`Text`]).
    text: Text,
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    /// Byte offset of the start tag's `<` in the source.
    offset: u32,
    /// Index of this node's first attribute in [`Tree::attrs`].
    attrs: u32,
}

/// An element's text: a slice of the source when it has no escapes (the usual case), an
/// entry of [`Tree::owned`] otherwise (`at == NONE`, `len` the entry's index).
#[derive(Debug, Clone, Copy)]
struct Text {
    at: u32,
    len: u32,
}

impl Text {
    const EMPTY: Text = Text { at: 0, len: 0 };
}

#[derive(Debug)]
pub struct Tree<'a> {
    pub src: &'a [u8],
    /// The source as text (checked UTF-8 once): names and texts are slices of it.
    text: &'a str,
    nodes: Vec<Node>,
    attrs: Vec<Attr<'a>>,
    /// Texts that needed unescaping or were assembled from several pieces.
    owned: Vec<String>,
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
        // Offsets are kept in 32 bits; the body limit is far below.
        if u32::try_from(src.len()).is_err() {
            return Err(XmlError::TooLarge {
                size: src.len(),
                limit: u32::MAX as usize,
            });
        }
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.trim_text(false);
        config.expand_empty_elements = true;

        let malformed = |at: usize, message: String| XmlError::Malformed {
            pos: Position::at(src, at),
            message,
        };
        // Sized once from a count of start tags (an upper bound: one inside a comment counts
        // too), so the nodes are never copied into a bigger vector.
        let mut nodes: Vec<Node> = Vec::with_capacity(start_tags(src).min(limits.max_elements) + 1);
        let mut attrs: Vec<Attr<'a>> = Vec::new();
        let mut owned: Vec<String> = Vec::new();
        // The open elements, each with its last child so far (to chain the next one).
        let mut stack: Vec<(u32, u32)> = Vec::new();
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
                    let first_attr = attrs.len();
                    let mut declared = 0usize;
                    // Counted before each attribute is read: the reader's own duplicate check
                    // compares every attribute with the earlier ones, so it must not run on an
                    // unbounded number of them.
                    for a in e.attributes() {
                        if attrs.len() - first_attr >= limits.max_attributes {
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
                    let id = nodes.len() as u32;
                    let parent = match stack.last_mut() {
                        Some((p, last)) => {
                            match *last {
                                NONE => nodes[*p as usize].first_child = id,
                                prev => nodes[prev as usize].next_sibling = id,
                            }
                            *last = id;
                            *p
                        }
                        None => NONE,
                    };
                    nodes.push(Node {
                        name_at: offset_in(text, name),
                        name_len: name.len() as u32,
                        text: Text::EMPTY,
                        parent,
                        first_child: NONE,
                        next_sibling: NONE,
                        offset: before as u32,
                        attrs: first_attr as u32,
                    });
                    stack.push((id, NONE));
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
                        Some(&(top, _)) => {
                            append(text, &mut owned, &mut nodes[top as usize].text, piece)
                        }
                        None if piece.trim().is_empty() => {}
                        None => {
                            return Err(malformed(before, "text outside the root element".into()))
                        }
                    }
                }
                Event::CData(t) => {
                    if let Some(&(top, _)) = stack.last() {
                        let piece = String::from_utf8_lossy(&t).into_owned();
                        append(
                            text,
                            &mut owned,
                            &mut nodes[top as usize].text,
                            Cow::Owned(piece),
                        );
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
            text,
            nodes,
            attrs,
            owned,
            root_ns,
            lines: std::sync::OnceLock::new(),
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a tree has at least its root.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Local name of an element.
    pub fn name(&self, id: usize) -> &'a str {
        let n = &self.nodes[id];
        &self.text[n.name_at as usize..(n.name_at + n.name_len) as usize]
    }

    /// Byte offset of an element's start tag (its `<`) in [`Tree::src`].
    pub fn offset(&self, id: usize) -> usize {
        self.nodes[id].offset as usize
    }

    /// The element an element is in (none for the root).
    pub fn parent(&self, id: usize) -> Option<usize> {
        match self.nodes[id].parent {
            NONE => None,
            p => Some(p as usize),
        }
    }

    /// Every child element, in document order.
    pub fn all_children(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        let first = self.nodes[id].first_child;
        std::iter::successors((first != NONE).then_some(first), move |&c| {
            let next = self.nodes[c as usize].next_sibling;
            (next != NONE).then_some(next)
        })
        .map(|c| c as usize)
    }

    /// An element's attributes, namespace declarations aside.
    pub fn attrs(&self, id: usize) -> &[Attr<'a>] {
        let from = self.nodes[id].attrs as usize;
        let to = self
            .nodes
            .get(id + 1)
            .map_or(self.attrs.len(), |n| n.attrs as usize);
        &self.attrs[from..to]
    }

    /// First child element named `name`.
    pub fn child(&self, id: usize, name: &str) -> Option<usize> {
        self.all_children(id).find(|&c| self.name(c) == name)
    }

    pub fn children<'s>(&'s self, id: usize, name: &'s str) -> impl Iterator<Item = usize> + 's {
        self.all_children(id).filter(move |&c| self.name(c) == name)
    }

    /// Follows a `/`-separated chain of first children, e.g. `"Header/Reference"`.
    pub fn at(&self, id: usize, chain: &str) -> Option<usize> {
        chain
            .split('/')
            .try_fold(id, |cur, name| self.child(cur, name))
    }

    /// Text of an element as written (unescaped), whitespace included.
    pub fn raw_text(&self, id: usize) -> &str {
        let t = self.nodes[id].text;
        if t.at == NONE {
            &self.owned[t.len as usize]
        } else {
            &self.text[t.at as usize..(t.at + t.len) as usize]
        }
    }

    /// Text of an element without surrounding whitespace (schema types here are tokens).
    pub fn text(&self, id: usize) -> &str {
        self.raw_text(id).trim()
    }

    pub fn attr(&self, id: usize, name: &str) -> Option<&str> {
        self.attrs(id)
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.trim())
    }

    /// Line and column of an element's start tag. Costs at most one checkpoint interval of
    /// scanning ([`Lines`]), so locating many errors costs in proportion to the document.
    pub fn position(&self, id: usize) -> Position {
        self.lines
            .get_or_init(|| Lines::index(self.src))
            .at(self.src, self.offset(id))
    }

    /// XPath-like path: local names, `[n]` only among several same-name siblings.
    pub fn path(&self, id: usize) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(n) = cur {
            let name = self.name(n);
            let segment = match self.parent(n) {
                Some(p) => {
                    let same: Vec<usize> = self.children(p, name).collect();
                    if same.len() > 1 {
                        let idx = same.iter().position(|&s| s == n).unwrap_or(0) + 1;
                        format!("{name}[{idx}]")
                    } else {
                        name.to_owned()
                    }
                }
                None => name.to_owned(),
            };
            parts.push(segment);
            cur = self.parent(n);
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
        if self.name(ROOT) != first {
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
/// here has mixed content), so container elements never allocate for it. A piece that is a
/// slice of `src` is kept as its span; anything else goes to `owned`.
fn append(src: &str, owned: &mut Vec<String>, text: &mut Text, piece: Cow<'_, str>) {
    let is_empty = text.at != NONE && text.len == 0;
    if is_empty {
        if piece.trim().is_empty() {
            return;
        }
        *text = match piece {
            Cow::Borrowed(p) if within(src, p) => Text {
                at: offset_in(src, p),
                len: p.len() as u32,
            },
            other => {
                owned.push(other.into_owned());
                Text {
                    at: NONE,
                    len: (owned.len() - 1) as u32,
                }
            }
        };
        return;
    }
    if text.at == NONE {
        owned[text.len as usize].push_str(&piece);
    } else {
        let mut joined = src[text.at as usize..(text.at + text.len) as usize].to_owned();
        joined.push_str(&piece);
        owned.push(joined);
        *text = Text {
            at: NONE,
            len: (owned.len() - 1) as u32,
        };
    }
}

/// Whether `part` is a slice of `src`.
fn within(src: &str, part: &str) -> bool {
    let (s, p) = (src.as_ptr() as usize, part.as_ptr() as usize);
    p >= s && p + part.len() <= s + src.len()
}

/// Offset of `part`, a slice of `src`, in it.
fn offset_in(src: &str, part: &str) -> u32 {
    debug_assert!(within(src, part));
    (part.as_ptr() as usize - src.as_ptr() as usize) as u32
}

/// Start tags in `src` (`<` followed by anything but `/`, `?` or `!`): an upper bound on its
/// elements.
fn start_tags(src: &[u8]) -> usize {
    src.windows(2)
        .filter(|w| w[0] == b'<' && !matches!(w[1], b'/' | b'?' | b'!'))
        .count()
}
