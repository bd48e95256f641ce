//! Compiled XSDs (compiled once, shared read-only by all threads, as libxml2 allows) and
//! validation of a document against one of them.
//!
//! Schemas are embedded in the binary. The external-entity loader we install serves only those
//! embedded files, so neither a schema's `xs:import` nor anything in a document can make
//! libxml2 read the file system or the network.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::OnceLock;

use super::ffi::*;
use super::{DocKind, Limits, Position, Violation, XmlError};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/schemas.rs"));
}

/// Base URI under which embedded schemas are addressed; nothing outside it is ever served.
const BASE: &str = "file:///nsw-schemas/";

struct Compiled(xmlSchemaPtr);
// SAFETY: a compiled xmlSchema is immutable after xmlSchemaParse and libxml2 documents it as
// usable from several threads at once, each with its own validation context.
unsafe impl Send for Compiled {}
unsafe impl Sync for Compiled {}

struct Registry {
    schemas: HashMap<DocKind, Compiled>,
}

static FILES: OnceLock<HashMap<String, CString>> = OnceLock::new();
static REGISTRY: OnceLock<Result<Registry, String>> = OnceLock::new();

fn files() -> &'static HashMap<String, CString> {
    FILES.get_or_init(|| {
        embedded::SCHEMA_FILES
            .iter()
            .filter_map(|(name, bytes)| {
                CString::new(bytes.to_vec())
                    .ok()
                    .map(|c| (format!("{BASE}{name}"), c))
            })
            .collect()
    })
}

/// Names of the embedded schema files (relative to `schemas/`).
pub fn embedded_files() -> impl Iterator<Item = &'static str> {
    embedded::SCHEMA_FILES.iter().map(|(n, _)| *n)
}

unsafe extern "C" fn entity_loader(
    url: *const c_char,
    _id: *const c_char,
    ctxt: xmlParserCtxtPtr,
) -> xmlParserInputPtr {
    if url.is_null() {
        return std::ptr::null_mut();
    }
    let url_str = CStr::from_ptr(url).to_string_lossy();
    let Some(content) = files().get(url_str.as_ref()) else {
        tracing::warn!(url = %url_str, "refused to load an external resource");
        return std::ptr::null_mut();
    };
    let input = xmlNewStringInputStream(ctxt, content.as_ptr() as *const u8);
    if !input.is_null() {
        // Give the input its URI so relative imports inside it resolve within BASE.
        (*input).filename = xmlStrdup(url);
    }
    input
}

unsafe extern "C" fn collect_error(ctx: *mut c_void, err: *mut xmlError) {
    if ctx.is_null() || err.is_null() {
        return;
    }
    let sink = &mut *(ctx as *mut Vec<RawError>);
    if sink.len() >= MAX_ERRORS {
        return;
    }
    let e = &*err;
    let message = if e.message.is_null() {
        String::from("invalid")
    } else {
        CStr::from_ptr(e.message)
            .to_string_lossy()
            .trim()
            .to_string()
    };
    let node = e.node as *const xmlNode;
    let (path, line) = if node.is_null() {
        (None, e.line.max(0) as u32)
    } else {
        let line = if (*node).type_ == XML_ELEMENT_NODE {
            xmlGetLineNo(node).max(0) as u32
        } else {
            e.line.max(0) as u32
        };
        (Some(node_path(node)), line)
    };
    sink.push(RawError {
        code: e.code,
        message,
        line,
        column: e.int2.max(0) as u32,
        path,
    });
}

unsafe extern "C" fn silence(_ctx: *mut c_void, _msg: *const c_char) {}

/// Our path convention for a libxml2 node (see `Tree::path`).
unsafe fn node_path(node: *const xmlNode) -> String {
    let mut parts = Vec::new();
    let mut cur = node;
    while !cur.is_null() {
        let n = &*cur;
        let name = if n.name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(n.name).to_string_lossy().into_owned()
        };
        match n.type_ {
            XML_ATTRIBUTE_NODE => parts.push(format!("@{name}")),
            XML_ELEMENT_NODE => {
                let (mut index, mut count) = (0, 0);
                if !n.parent.is_null() && (*n.parent).type_ == XML_ELEMENT_NODE {
                    let mut sib = (*n.parent).children as *const xmlNode;
                    while !sib.is_null() {
                        let s = &*sib;
                        if s.type_ == XML_ELEMENT_NODE
                            && !s.name.is_null()
                            && CStr::from_ptr(s.name) == CStr::from_ptr(n.name)
                        {
                            count += 1;
                            if sib == cur {
                                index = count;
                            }
                        }
                        sib = s.next;
                    }
                }
                if count > 1 {
                    parts.push(format!("{name}[{index}]"));
                } else {
                    parts.push(name);
                }
            }
            _ => break,
        }
        cur = n.parent;
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

const MAX_ERRORS: usize = 500;

#[derive(Debug)]
struct RawError {
    code: c_int,
    message: String,
    line: u32,
    column: u32,
    path: Option<String>,
}

fn install_globals() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| unsafe {
        xmlInitParser();
        xmlSetExternalEntityLoader(Some(entity_loader));
    });
}

/// libxml2 keeps its generic error handler per thread: silence it on each thread we use so
/// nothing is printed to stderr; errors are collected through structured handlers instead.
fn quiet_thread() {
    thread_local!(static QUIET: () = unsafe {
        xmlSetGenericErrorFunc(std::ptr::null_mut(), Some(std::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, *const c_char),
            unsafe extern "C" fn(*mut c_void, *const c_char, ...),
        >(silence)));
    });
    QUIET.with(|_| ());
}

fn compile(kind: DocKind) -> Result<Compiled, String> {
    let url = format!("{BASE}{}", kind.schema_file());
    let content = files()
        .get(&url)
        .ok_or_else(|| format!("schema {} is not embedded", kind.schema_file()))?;
    let c_url = CString::new(url.clone()).map_err(|e| e.to_string())?;
    let mut errors: Vec<RawError> = Vec::new();
    unsafe {
        xmlSetStructuredErrorFunc(&mut errors as *mut _ as *mut c_void, Some(collect_error));
        let doc = xmlReadMemory(
            content.as_ptr(),
            content.as_bytes().len() as c_int,
            c_url.as_ptr(),
            std::ptr::null(),
            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING,
        );
        if doc.is_null() {
            xmlSetStructuredErrorFunc(std::ptr::null_mut(), None);
            return Err(format!("{url}: {errors:?}"));
        }
        let pctxt = xmlSchemaNewDocParserCtxt(doc);
        xmlSchemaSetParserStructuredErrors(
            pctxt,
            Some(collect_error),
            &mut errors as *mut _ as *mut c_void,
        );
        let schema = xmlSchemaParse(pctxt);
        xmlSchemaFreeParserCtxt(pctxt);
        xmlFreeDoc(doc);
        xmlSetStructuredErrorFunc(std::ptr::null_mut(), None);
        if schema.is_null() {
            return Err(format!("{url}: {errors:?}"));
        }
        Ok(Compiled(schema))
    }
}

fn registry() -> Result<&'static Registry, XmlError> {
    install_globals();
    quiet_thread();
    REGISTRY
        .get_or_init(|| {
            let mut schemas = HashMap::new();
            for kind in DocKind::ALL {
                schemas.insert(kind, compile(kind)?);
            }
            Ok(Registry { schemas })
        })
        .as_ref()
        .map_err(|e| XmlError::Internal(format!("schema compilation failed: {e}")))
}

/// Compiles every schema now (at start-up) so a broken schema stops the program early.
pub fn preload() -> Result<(), XmlError> {
    registry().map(|_| ())
}

/// Outcome of handing the bytes to libxml2.
pub enum SchemaOutcome {
    Valid,
    Invalid(Vec<Violation>),
}

/// Parses `src` with libxml2 (no recovery, no network, no DTD, no entity substitution) and
/// validates it against the schema of `kind`. `locate` maps an error path to the
/// position of its start tag, for the column libxml2 does not give on validity errors.
pub fn validate(
    kind: DocKind,
    src: &[u8],
    limits: &Limits,
    locate: &dyn Fn(&str) -> Option<Position>,
) -> Result<SchemaOutcome, XmlError> {
    let registry = registry()?;
    let schema = registry
        .schemas
        .get(&kind)
        .ok_or_else(|| XmlError::Internal(format!("no schema for {kind:?}")))?;
    c_int::try_from(src.len()).map_err(|_| XmlError::Internal("too large".into()))?;
    // Fast path: stream the bytes through the validator (SAX, no DOM), which costs a fraction
    // of the memory of a tree and less time. Only a document that fails is parsed again into a
    // tree, to report every error with its element path.
    let mut input = Metered::new(src, limits.cpu_budget_ms);
    if stream_valid(schema, &mut input) {
        return Ok(SchemaOutcome::Valid);
    }
    input.over_budget()?;
    let mut input = Metered::new(src, limits.cpu_budget_ms);
    let mut errors: Vec<RawError> = Vec::new();
    let sink = &mut errors as *mut _ as *mut c_void;
    unsafe {
        xmlSetStructuredErrorFunc(sink, Some(collect_error));
        let doc = xmlReadIO(
            Some(Metered::read),
            None,
            &mut input as *mut Metered as *mut c_void,
            std::ptr::null(),
            c"UTF-8".as_ptr(),
            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING,
        );
        xmlSetStructuredErrorFunc(std::ptr::null_mut(), None);
        if doc.is_null() {
            input.over_budget()?;
            let first = errors.into_iter().next();
            let (line, column, message) = first.map(|e| (e.line, e.column, e.message)).unwrap_or((
                1,
                1,
                "document is not well-formed".into(),
            ));
            return Err(XmlError::Malformed {
                pos: Position { line, column },
                message,
            });
        }
        errors.clear();
        let vctxt = xmlSchemaNewValidCtxt(schema.0);
        if vctxt.is_null() {
            xmlFreeDoc(doc);
            return Err(XmlError::Internal(
                "cannot create validation context".into(),
            ));
        }
        xmlSchemaSetValidStructuredErrors(vctxt, Some(collect_error), sink);
        let rc = xmlSchemaValidateDoc(vctxt, doc);
        xmlSchemaFreeValidCtxt(vctxt);
        xmlFreeDoc(doc);
        if rc == 0 {
            return Ok(SchemaOutcome::Valid);
        }
        if rc < 0 {
            return Err(XmlError::Internal(format!(
                "libxml2 validation failed ({rc})"
            )));
        }
    }
    let mut violations: Vec<Violation> = errors
        .into_iter()
        .map(|e| {
            let code = schema_code(e.code);
            let mut path = e.path.unwrap_or_else(|| "/".into());
            // libxml2 reports a bad attribute value on its element; name the attribute.
            if code == "XSD_VALUE" && !path.contains("/@") {
                if let Some(attr) = attribute_named(&e.message) {
                    path = format!("{path}/@{attr}");
                }
            }
            let column = locate(&path).map(|p| p.column).unwrap_or(e.column.max(1));
            let line = if e.line > 0 {
                e.line
            } else {
                locate(&path).map(|p| p.line).unwrap_or(1)
            };
            Violation {
                line,
                column,
                code,
                message: tidy(&e.message),
                path,
            }
        })
        .collect();
    // libxml2 often reports a facet failure twice (the facet, then the atomic type): keep one.
    violations.dedup_by(|b, a| a.path == b.path && a.code == b.code && a.line == b.line);
    if violations.is_empty() {
        violations.push(Violation {
            line: 1,
            column: 1,
            path: "/".into(),
            code: "XSD_INVALID",
            message: "document does not conform to its schema".into(),
        });
    }
    Ok(SchemaOutcome::Invalid(violations))
}

unsafe extern "C" fn count_error(ctx: *mut c_void, _err: *mut xmlError) {
    if !ctx.is_null() {
        *(ctx as *mut usize) += 1;
    }
}

/// A document handed to libxml2 a few kilobytes at a time, as it asks for them, so that the
/// processing time it has spent can be checked between pieces: past the budget the next read
/// fails and libxml2 stops. Time is the validating thread's own CPU time, so a busy machine
/// does not make a document look costly.
struct Metered<'a> {
    rest: &'a [u8],
    started: Option<std::time::Duration>,
    budget: std::time::Duration,
    exceeded: bool,
}

fn thread_cpu_time() -> Option<std::time::Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

impl<'a> Metered<'a> {
    fn new(src: &'a [u8], budget_ms: u64) -> Self {
        Metered {
            rest: src,
            started: thread_cpu_time(),
            budget: std::time::Duration::from_millis(budget_ms),
            exceeded: false,
        }
    }

    /// `Err(TooCostly)` when a read was refused for time.
    fn over_budget(&self) -> Result<(), XmlError> {
        if self.exceeded {
            return Err(XmlError::TooCostly {
                limit_ms: self.budget.as_millis() as u64,
            });
        }
        Ok(())
    }

    unsafe extern "C" fn read(ctx: *mut c_void, buffer: *mut c_char, len: c_int) -> c_int {
        if ctx.is_null() || buffer.is_null() || len < 0 {
            return -1;
        }
        let me = &mut *(ctx as *mut Metered);
        if let (Some(start), Some(now)) = (me.started, thread_cpu_time()) {
            if now.saturating_sub(start) > me.budget {
                me.exceeded = true;
                return -1;
            }
        }
        let n = me.rest.len().min(len as usize);
        std::ptr::copy_nonoverlapping(me.rest.as_ptr(), buffer as *mut u8, n);
        me.rest = &me.rest[n..];
        n as c_int
    }
}

/// Streaming validation: true when the document is well-formed and valid.
fn stream_valid(schema: &Compiled, src: &mut Metered) -> bool {
    let mut errors = 0usize;
    unsafe {
        let vctxt = xmlSchemaNewValidCtxt(schema.0);
        if vctxt.is_null() {
            return false;
        }
        xmlSchemaSetValidStructuredErrors(
            vctxt,
            Some(count_error),
            &mut errors as *mut usize as *mut c_void,
        );
        let input = xmlParserInputBufferCreateIO(
            Some(Metered::read),
            None,
            src as *mut Metered as *mut c_void,
            XML_CHAR_ENCODING_UTF8,
        );
        let rc = if input.is_null() {
            -1
        } else {
            xmlSchemaValidateStream(
                vctxt,
                input,
                XML_CHAR_ENCODING_UTF8,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        xmlSchemaFreeValidCtxt(vctxt);
        rc == 0 && errors == 0
    }
}

/// libxml2 alone: parse and validate, no error collection, no tree, no rules. The baseline the
/// load generator measures the full pipeline against.
pub fn libxml2_only(kind: DocKind, src: &[u8]) -> Result<bool, XmlError> {
    let registry = registry()?;
    let schema = registry
        .schemas
        .get(&kind)
        .ok_or_else(|| XmlError::Internal(format!("no schema for {kind:?}")))?;
    let len = c_int::try_from(src.len()).map_err(|_| XmlError::Internal("too large".into()))?;
    unsafe {
        let doc = xmlReadMemory(
            src.as_ptr() as *const c_char,
            len,
            std::ptr::null(),
            c"UTF-8".as_ptr(),
            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING,
        );
        if doc.is_null() {
            return Ok(false);
        }
        let vctxt = xmlSchemaNewValidCtxt(schema.0);
        let rc = xmlSchemaValidateDoc(vctxt, doc);
        xmlSchemaFreeValidCtxt(vctxt);
        xmlFreeDoc(doc);
        Ok(rc == 0)
    }
}

/// Stable codes for libxml2's schema-validity error numbers (xmlerror.h, XML_SCHEMAV_*).
fn schema_code(code: c_int) -> &'static str {
    match code {
        1871 | 1841..=1844 => "XSD_CONTENT",
        // 1827: cvc-type.3.1.1, an attribute on an element of simple type
        1866..=1868 | 1827 => "XSD_ATTRIBUTE",
        // 1828: cvc-type.3.1.2, child elements inside an element of simple type
        1828 => "XSD_CONTENT",
        1845 => "XSD_ROOT",
        1819 | 1824..=1826 | 1829..=1840 | 1863 | 1874 => "XSD_VALUE",
        _ => "XSD_INVALID",
    }
}

/// The attribute a libxml2 message is about: "Element 'X', attribute 'currency': …".
fn attribute_named(message: &str) -> Option<&str> {
    let head = message.split(": ").next()?;
    let rest = head.split(", attribute '").nth(1)?;
    rest.split('\'').next()
}

/// Drops `{namespace}` qualifiers from libxml2 messages: paths already say where we are.
/// Only braces holding a URI are dropped, so pattern quantifiers like `{6}` stay.
fn tidy(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        match after.find('}') {
            Some(end) if after[1..end].contains(':') => rest = &after[end + 1..],
            _ => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
