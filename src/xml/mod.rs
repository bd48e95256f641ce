//! XML intake: refuse hostile input, check well-formedness, pick the schema from the root's
//! namespace and validate with libxml2. Business rules come afterwards (see `rules`).

pub mod ffi;
pub mod schema;
pub mod tree;

use serde::Serialize;

pub use tree::Tree;

/// 1-based line and column (column counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    /// Position of byte `offset` in `src`.
    pub fn at(src: &[u8], offset: usize) -> Position {
        let offset = offset.min(src.len());
        let before = &src[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(0);
        // Count characters, not bytes: skip UTF-8 continuation bytes.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count() as u32
            + 1;
        Position { line, column }
    }
}

/// One problem found in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    pub line: u32,
    pub column: u32,
    pub path: String,
    pub code: &'static str,
    pub message: String,
}

/// What one document may cost. Every shape whose cost in libxml2 grows faster than its size
/// has a limit here, checked by the linear pre-pass ([`Tree::parse`]) before libxml2 sees the
/// bytes; `cpu_budget_ms` is the backstop for anything not foreseen.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Body size in bytes (HTTP 413 `BODY_TOO_LARGE`).
    pub max_bytes: usize,
    /// Element nesting depth (`XML_TOO_DEEP`).
    pub max_depth: usize,
    /// Elements in a document (`XML_TOO_MANY_ELEMENTS`).
    pub max_elements: usize,
    /// Attributes on one element, namespace declarations aside (`XML_TOO_MANY_ATTRIBUTES`):
    /// libxml2 checks each new attribute against all earlier ones of its element.
    pub max_attributes: usize,
    /// Namespace declarations in scope at any element (`XML_TOO_MANY_NAMESPACES`): libxml2
    /// compares every declaration with those in scope and resolves every prefix by scanning
    /// them.
    pub max_namespaces: usize,
    /// Distinct element, attribute and prefix names in a document (`XML_TOO_MANY_NAMES`):
    /// libxml2's name dictionary grows worse than linearly past some ten thousand names.
    pub max_names: usize,
    /// Length in bytes of one element, attribute or prefix name (`XML_NAME_TOO_LONG`).
    pub max_name_bytes: usize,
    /// CPU time, in milliseconds of the validating thread, that libxml2 may spend on one
    /// document before it is refused (`XML_TOO_COSTLY`).
    pub cpu_budget_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_elements: 500_000,
            max_attributes: 64,
            max_namespaces: 64,
            max_names: 2_000,
            max_name_bytes: 512,
            cpu_budget_ms: 10_000,
        }
    }
}

/// Why a document could not even be read as one of ours (HTTP 400/413), or an internal fault.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// A compressed body that passes the limit once decoded (decoding stopped there).
    #[error("the body passes the limit of {limit} bytes once decoded (it arrived as {received} compressed bytes)")]
    TooLargeDecoded { received: usize, limit: usize },
    #[error("{message}")]
    Encoding { pos: Position, message: String },
    #[error("DOCTYPE declarations are not accepted (no DTDs, no entities)")]
    Doctype { pos: Position },
    #[error("elements nest deeper than {limit} levels")]
    TooDeep { pos: Position, limit: usize },
    #[error("the document has more than {limit} elements")]
    TooManyElements { pos: Position, limit: usize },
    #[error("an element carries more than {limit} attributes")]
    TooManyAttributes { pos: Position, limit: usize },
    #[error("more than {limit} namespace declarations are in scope")]
    TooManyNamespaces { pos: Position, limit: usize },
    #[error("the document uses more than {limit} distinct names")]
    TooManyNames { pos: Position, limit: usize },
    #[error("a name is longer than {limit} bytes")]
    NameTooLong { pos: Position, limit: usize },
    #[error("reading the document took more than its budget of {limit_ms} ms of processing time")]
    TooCostly { limit_ms: u64 },
    #[error("not well-formed XML: {message}")]
    Malformed { pos: Position, message: String },
    #[error("internal XML engine error: {0}")]
    Internal(String),
}

impl XmlError {
    pub fn code(&self) -> &'static str {
        match self {
            XmlError::Empty => "XML_EMPTY",
            XmlError::TooLarge { .. } | XmlError::TooLargeDecoded { .. } => "BODY_TOO_LARGE",
            XmlError::Encoding { .. } => "XML_ENCODING",
            XmlError::Doctype { .. } => "XML_DOCTYPE",
            XmlError::TooDeep { .. } => "XML_TOO_DEEP",
            XmlError::TooManyElements { .. } => "XML_TOO_MANY_ELEMENTS",
            XmlError::TooManyAttributes { .. } => "XML_TOO_MANY_ATTRIBUTES",
            XmlError::TooManyNamespaces { .. } => "XML_TOO_MANY_NAMESPACES",
            XmlError::TooManyNames { .. } => "XML_TOO_MANY_NAMES",
            XmlError::NameTooLong { .. } => "XML_NAME_TOO_LONG",
            XmlError::TooCostly { .. } => "XML_TOO_COSTLY",
            XmlError::Malformed { .. } => "XML_MALFORMED",
            XmlError::Internal(_) => "INTERNAL",
        }
    }

    pub fn position(&self) -> Option<Position> {
        match self {
            XmlError::Encoding { pos, .. }
            | XmlError::Doctype { pos }
            | XmlError::TooDeep { pos, .. }
            | XmlError::TooManyElements { pos, .. }
            | XmlError::TooManyAttributes { pos, .. }
            | XmlError::TooManyNamespaces { pos, .. }
            | XmlError::TooManyNames { pos, .. }
            | XmlError::NameTooLong { pos, .. }
            | XmlError::Malformed { pos, .. } => Some(*pos),
            _ => None,
        }
    }
}

/// The documents we know, each with its namespace, root element and schema file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocKind {
    Declaration,
    Acdd,
    LicenceApplication,
    Licence,
    CertificateOfOrigin,
    Envelope,
    Receipt,
    BusinessResponse,
    KrCoo,
    /// The window's e-receipt for a fee paid online (`payments::receipts`).
    EReceipt,
}

impl DocKind {
    pub const ALL: [DocKind; 10] = [
        DocKind::Declaration,
        DocKind::Acdd,
        DocKind::LicenceApplication,
        DocKind::Licence,
        DocKind::CertificateOfOrigin,
        DocKind::Envelope,
        DocKind::Receipt,
        DocKind::BusinessResponse,
        DocKind::KrCoo,
        DocKind::EReceipt,
    ];

    pub fn namespace(self) -> &'static str {
        match self {
            DocKind::Declaration => "urn:nsw:declaration:1",
            DocKind::Acdd => "urn:nsw:acdd:1",
            DocKind::LicenceApplication => "urn:nsw:licence-application:1",
            DocKind::Licence => "urn:nsw:licence:1",
            DocKind::CertificateOfOrigin => "urn:nsw:certificate-of-origin:1",
            DocKind::Envelope => "urn:nsw:envelope:1",
            DocKind::Receipt => "urn:nsw:receipt:1",
            DocKind::BusinessResponse => "urn:nsw:business-response:1",
            DocKind::KrCoo => "urn:nsw:partner:kr:coo:1",
            DocKind::EReceipt => "urn:nsw:e-receipt:1",
        }
    }

    pub fn schema_file(self) -> &'static str {
        match self {
            DocKind::Declaration => "declaration/1/declaration.xsd",
            DocKind::Acdd => "acdd/1/acdd.xsd",
            DocKind::LicenceApplication => "licence-application/1/licence-application.xsd",
            DocKind::Licence => "licence/1/licence.xsd",
            DocKind::CertificateOfOrigin => "certificate-of-origin/1/certificate-of-origin.xsd",
            DocKind::Envelope => "envelope/1/envelope.xsd",
            DocKind::Receipt => "receipt/1/receipt.xsd",
            DocKind::BusinessResponse => "business-response/1/business-response.xsd",
            DocKind::KrCoo => "kr-coo/1/kr-coo.xsd",
            DocKind::EReceipt => "e-receipt/1/e-receipt.xsd",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DocKind::Declaration => "declaration",
            DocKind::Acdd => "acdd",
            DocKind::LicenceApplication => "licence-application",
            DocKind::Licence => "licence",
            DocKind::CertificateOfOrigin => "certificate-of-origin",
            DocKind::Envelope => "envelope",
            DocKind::Receipt => "receipt",
            DocKind::BusinessResponse => "business-response",
            DocKind::KrCoo => "kr-coo",
            DocKind::EReceipt => "e-receipt",
        }
    }

    pub fn from_namespace(ns: &str) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.namespace() == ns)
    }
}

/// A document that is well-formed, of a known kind, and valid against that kind's schema.
pub struct SchemaValid<'a> {
    pub kind: DocKind,
    pub tree: Tree<'a>,
}

/// A well-formed document refused before the rules: its kind when known, and why.
pub struct Refused {
    pub kind: Option<DocKind>,
    pub violations: Vec<Violation>,
}

/// Result of the XML stages: an unusable document (`Err`), a refused one (`Ok(Err(_))`), or a
/// schema-valid one.
pub type XmlOutcome<'a> = Result<Result<SchemaValid<'a>, Refused>, XmlError>;

/// `src` without its UTF-8 byte-order mark, if it starts with one. Every reader of document
/// bytes goes through this; the bytes stored and hashed stay the ones received.
pub fn without_bom(src: &[u8]) -> &[u8] {
    src.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(src)
}

/// Runs every XML stage on `src`. When `expect` is given, a known document of another kind is
/// reported as `DOCUMENT_TYPE_MISMATCH`.
pub fn check<'a>(src: &'a [u8], limits: &Limits, expect: Option<DocKind>) -> XmlOutcome<'a> {
    if src.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: src.len(),
            limit: limits.max_bytes,
        });
    }
    let body = without_bom(src);
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(XmlError::Empty);
    }
    if let Err(e) = std::str::from_utf8(src) {
        return Err(XmlError::Encoding {
            pos: Position::at(src, e.valid_up_to()),
            message: format!(
                "invalid UTF-8 byte sequence at byte offset {}: documents must be UTF-8",
                e.valid_up_to()
            ),
        });
    }
    // The tree skips one byte-order mark itself (and refuses a second); libxml2 is given the
    // same bytes after the mark, so every position counts from after it.
    let tree = match Tree::parse(src, limits) {
        Ok(t) => t,
        // quick-xml is lenient in places and terse in others: let libxml2 name the first
        // well-formedness error when it finds one, as it is the reference parser.
        Err(XmlError::Malformed { pos, message }) => {
            return Err(
                first_libxml_error(body, limits).unwrap_or(XmlError::Malformed { pos, message })
            )
        }
        Err(e) => return Err(e),
    };
    let src = body;
    let Some(kind) = DocKind::from_namespace(&tree.root_ns) else {
        let ns = if tree.root_ns.is_empty() {
            "no namespace".to_string()
        } else {
            format!("namespace '{}'", tree.root_ns)
        };
        let pos = tree.position(tree::ROOT);
        return Ok(Err(Refused { kind: None, violations: vec![Violation {
            line: pos.line,
            column: pos.column,
            path: tree.path(tree::ROOT),
            code: "NAMESPACE_UNKNOWN",
            message: format!(
                "root element '{}' is in {ns}, which is not one of this window's document namespaces",
                tree.name(tree::ROOT)
            ),
        }]}));
    };
    if let Some(expected) = expect {
        if expected != kind {
            let pos = tree.position(tree::ROOT);
            return Ok(Err(Refused {
                kind: Some(kind),
                violations: vec![Violation {
                    line: pos.line,
                    column: pos.column,
                    path: tree.path(tree::ROOT),
                    code: "DOCUMENT_TYPE_MISMATCH",
                    message: format!(
                        "this endpoint takes a {} ({}), not a {}",
                        expected.name(),
                        expected.namespace(),
                        kind.name()
                    ),
                }],
            }));
        }
    }
    let locate = |path: &str| tree.find(path).map(|id| tree.position(id));
    match schema::validate(kind, src, limits, &locate)? {
        schema::SchemaOutcome::Valid => Ok(Ok(SchemaValid { kind, tree })),
        schema::SchemaOutcome::Invalid(violations) => Ok(Err(Refused {
            kind: Some(kind),
            violations,
        })),
    }
}

fn first_libxml_error(src: &[u8], limits: &Limits) -> Option<XmlError> {
    // Any schema will do: the document fails at parse time, before validation starts.
    match schema::validate(DocKind::Declaration, src, limits, &|_| None) {
        Err(e @ XmlError::Malformed { .. }) => Some(e),
        _ => None,
    }
}

/// The exact bytes of the one element inside the root's child `wrapper` (an envelope's
/// `<Payload>`), cut out of `doc` without re-serialisation.
pub fn second_level_child<'a>(doc: &'a [u8], wrapper: &[u8]) -> Option<&'a [u8]> {
    let envelope = without_bom(doc);
    let mut reader = quick_xml::Reader::from_reader(envelope);
    reader.config_mut().expand_empty_elements = false;
    let mut depth = 0usize;
    let mut in_payload = false;
    let mut start = None;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) => {
                depth += 1;
                if depth == 2 && e.local_name().as_ref() == wrapper {
                    in_payload = true;
                } else if in_payload && depth == 3 && start.is_none() {
                    start = Some(before);
                }
            }
            quick_xml::events::Event::Empty(_) if in_payload && depth == 2 && start.is_none() => {
                return envelope.get(before..reader.buffer_position() as usize);
            }
            quick_xml::events::Event::End(_) => {
                if in_payload && depth == 3 {
                    let s = start?;
                    return envelope.get(s..reader.buffer_position() as usize);
                }
                depth = depth.checked_sub(1)?;
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAPTOPS: &[u8] =
        include_bytes!("../../fixtures/valid/declaration/01-import-laptops-10-items.xml");

    #[test]
    fn a_document_past_its_cpu_budget_is_refused_as_too_costly() {
        let limits = Limits {
            cpu_budget_ms: 0,
            ..Limits::default()
        };
        // Any work at all passes a budget of nothing: the first read after the start is refused.
        let mut doc = LAPTOPS.to_vec();
        doc.extend(std::iter::repeat_n(b' ', 64 * 1024));
        match check(&doc, &limits, None) {
            Err(e @ XmlError::TooCostly { .. }) => assert_eq!(e.code(), "XML_TOO_COSTLY"),
            Err(e) => panic!("expected XML_TOO_COSTLY, got {e}"),
            Ok(_) => panic!("expected XML_TOO_COSTLY, got a verdict"),
        }
        assert!(matches!(
            check(LAPTOPS, &Limits::default(), None),
            Ok(Ok(_))
        ));
    }

    #[test]
    fn a_byte_order_mark_is_no_part_of_the_document() {
        let marked = [b"\xEF\xBB\xBF".as_slice(), LAPTOPS].concat();
        assert!(matches!(
            check(&marked, &Limits::default(), None),
            Ok(Ok(_))
        ));
        let tree = Tree::parse(&marked, &Limits::default()).unwrap();
        assert_eq!(tree.position(tree::ROOT), Position { line: 2, column: 1 });
    }
}
