//! A small located tree built with quick-xml: element names, attributes, text and the byte
//! offset of every start tag, so business rules and schema errors can be reported with line,
//! column and an XPath-like path. It is also where hostile shapes are stopped (DTDs, depth and
//! element-count floods) before libxml2 ever sees the bytes.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::{Limits, Position, XmlError};

#[derive(Debug, Clone)]
pub struct Attr {
    pub name: String,
    pub value: String,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<Attr>,
    pub text: String,
    pub children: Vec<usize>,
    pub parent: Option<usize>,
    pub offset: usize,
}

#[derive(Debug)]
pub struct Tree<'a> {
    pub src: &'a [u8],
    pub nodes: Vec<Node>,
    /// Namespace URI of the root element (empty when it has none).
    pub root_ns: String,
}

pub const ROOT: usize = 0;

impl<'a> Tree<'a> {
    pub fn parse(src: &'a [u8], limits: &Limits) -> Result<Tree<'a>, XmlError> {
        let text = std::str::from_utf8(src).map_err(|_| XmlError::Encoding {
            pos: Position::at(src, 0),
            message: "document is not valid UTF-8".into(),
        })?;
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.trim_text(false);
        config.expand_empty_elements = true;

        let mut nodes: Vec<Node> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        let mut root_ns = String::new();
        let mut seen_root_end = false;
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader.read_resolved_event();
            let (resolved, event) = match event {
                Ok(ev) => ev,
                Err(e) => {
                    return Err(XmlError::Malformed {
                        pos: Position::at(src, reader.error_position() as usize),
                        message: e.to_string(),
                    })
                }
            };
            match event {
                Event::DocType(_) => {
                    return Err(XmlError::Doctype {
                        pos: Position::at(src, before),
                    })
                }
                Event::Start(e) => {
                    if seen_root_end {
                        return Err(XmlError::Malformed {
                            pos: Position::at(src, before),
                            message: "content after the root element".into(),
                        });
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
                    if nodes.is_empty() {
                        if let ResolveResult::Bound(ns) = resolved {
                            root_ns = String::from_utf8_lossy(ns.as_ref()).into_owned();
                        }
                    }
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let mut attrs = Vec::new();
                    for a in e.attributes() {
                        let a = a.map_err(|err| XmlError::Malformed {
                            pos: Position::at(src, before),
                            message: err.to_string(),
                        })?;
                        let key = a.key;
                        if key.as_ref().starts_with(b"xmlns") {
                            continue;
                        }
                        let value = a
                            .unescape_value()
                            .map_err(|err| XmlError::Malformed {
                                pos: Position::at(src, before),
                                message: err.to_string(),
                            })?
                            .into_owned();
                        attrs.push(Attr {
                            name: String::from_utf8_lossy(key.local_name().as_ref()).into_owned(),
                            value,
                            offset: before,
                        });
                    }
                    let id = nodes.len();
                    let parent = stack.last().copied();
                    nodes.push(Node {
                        name,
                        attrs,
                        text: String::new(),
                        children: Vec::new(),
                        parent,
                        offset: before,
                    });
                    if let Some(p) = parent {
                        nodes[p].children.push(id);
                    }
                    stack.push(id);
                }
                Event::End(_) => {
                    stack.pop();
                    if stack.is_empty() {
                        seen_root_end = true;
                    }
                }
                Event::Text(t) => {
                    let s = t.unescape().map_err(|err| XmlError::Malformed {
                        pos: Position::at(src, before),
                        message: err.to_string(),
                    })?;
                    match stack.last() {
                        Some(&top) => nodes[top].text.push_str(&s),
                        None if s.trim().is_empty() => {}
                        None => {
                            return Err(XmlError::Malformed {
                                pos: Position::at(src, before),
                                message: "text outside the root element".into(),
                            })
                        }
                    }
                }
                Event::CData(t) => {
                    if let Some(&top) = stack.last() {
                        nodes[top].text.push_str(&String::from_utf8_lossy(&t));
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
            return Err(XmlError::Malformed {
                pos: Position::at(src, src.len()),
                message: "no root element".into(),
            });
        }
        if !stack.is_empty() {
            return Err(XmlError::Malformed {
                pos: Position::at(src, src.len()),
                message: "document ends before the root element is closed".into(),
            });
        }
        Ok(Tree {
            src,
            nodes,
            root_ns,
        })
    }

    pub fn node(&self, id: usize) -> &Node {
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

    /// Whitespace-collapsed text of an element (schema types here are tokens).
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

    pub fn position(&self, id: usize) -> Position {
        Position::at(self.src, self.nodes[id].offset)
    }

    /// XPath-like path: local names, `[n]` only among several same-name siblings.
    pub fn path(&self, id: usize) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(n) = cur {
            let node = &self.nodes[n];
            let segment = match node.parent {
                Some(p) => {
                    let same: Vec<usize> = self.children(p, &node.name).collect();
                    if same.len() > 1 {
                        let idx = same.iter().position(|&s| s == n).unwrap_or(0) + 1;
                        format!("{}[{}]", node.name, idx)
                    } else {
                        node.name.clone()
                    }
                }
                None => node.name.clone(),
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
