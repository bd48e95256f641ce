//! The handful of libxml2 (2.9+) declarations we need, written by hand so the build does not
//! depend on bindgen/libclang. Struct layouts are the public, stable ones from libxml2's headers;
//! we only read the leading fields of `xmlNode` and `xmlError`.
#![allow(non_camel_case_types, non_snake_case, dead_code)]

use std::os::raw::{c_char, c_int, c_ushort, c_void};

pub type xmlDocPtr = *mut c_void;
pub type xmlSchemaPtr = *mut c_void;
pub type xmlSchemaParserCtxtPtr = *mut c_void;
pub type xmlSchemaValidCtxtPtr = *mut c_void;
pub type xmlParserCtxtPtr = *mut c_void;
/// `struct _xmlParserInput`: we only set `filename`, so relative `xs:import`s inside an
/// embedded schema resolve against its own location.
#[repr(C)]
pub struct xmlParserInput {
    pub buf: *mut c_void,
    pub filename: *const c_char,
}
pub type xmlParserInputPtr = *mut xmlParserInput;

/// `struct _xmlError` from xmlerror.h.
#[repr(C)]
pub struct xmlError {
    pub domain: c_int,
    pub code: c_int,
    pub message: *mut c_char,
    pub level: c_int,
    pub file: *mut c_char,
    pub line: c_int,
    pub str1: *mut c_char,
    pub str2: *mut c_char,
    pub str3: *mut c_char,
    pub int1: c_int,
    pub int2: c_int,
    pub ctxt: *mut c_void,
    pub node: *mut c_void,
}

/// `struct _xmlNs` from tree.h (leading fields).
#[repr(C)]
pub struct xmlNs {
    pub next: *mut xmlNs,
    pub type_: c_int,
    pub href: *const c_char,
    pub prefix: *const c_char,
}

/// `struct _xmlNode` from tree.h. `xmlAttr` shares the layout up to `prev`, which is all we
/// walk for attributes.
#[repr(C)]
pub struct xmlNode {
    pub _private: *mut c_void,
    pub type_: c_int,
    pub name: *const c_char,
    pub children: *mut xmlNode,
    pub last: *mut xmlNode,
    pub parent: *mut xmlNode,
    pub next: *mut xmlNode,
    pub prev: *mut xmlNode,
    pub doc: *mut c_void,
    pub ns: *mut xmlNs,
    pub content: *mut c_char,
    pub properties: *mut c_void,
    pub nsDef: *mut xmlNs,
    pub psvi: *mut c_void,
    pub line: c_ushort,
    pub extra: c_ushort,
}

pub const XML_ELEMENT_NODE: c_int = 1;
pub const XML_ATTRIBUTE_NODE: c_int = 2;

/// xmlCharEncoding
pub const XML_CHAR_ENCODING_UTF8: c_int = 1;

// xmlParserOption
pub const XML_PARSE_NOERROR: c_int = 1 << 5;
pub const XML_PARSE_NOWARNING: c_int = 1 << 6;
pub const XML_PARSE_NONET: c_int = 1 << 11;
pub const XML_PARSE_NOCDATA: c_int = 1 << 14;

pub type xmlStructuredErrorFunc = Option<unsafe extern "C" fn(*mut c_void, *mut xmlError)>;
pub type xmlGenericErrorFunc = Option<unsafe extern "C" fn(*mut c_void, *const c_char, ...)>;
pub type xmlExternalEntityLoader = Option<
    unsafe extern "C" fn(*const c_char, *const c_char, xmlParserCtxtPtr) -> xmlParserInputPtr,
>;

/// Fills `buffer` with up to `len` bytes; returns how many, 0 at the end, -1 on error.
pub type xmlInputReadCallback =
    Option<unsafe extern "C" fn(ctx: *mut c_void, buffer: *mut c_char, len: c_int) -> c_int>;
pub type xmlInputCloseCallback = Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>;

extern "C" {
    pub fn xmlInitParser();
    pub fn xmlCheckVersion(version: c_int);
    pub fn xmlReadMemory(
        buffer: *const c_char,
        size: c_int,
        url: *const c_char,
        encoding: *const c_char,
        options: c_int,
    ) -> xmlDocPtr;
    pub fn xmlFreeDoc(doc: xmlDocPtr);
    pub fn xmlSetStructuredErrorFunc(ctx: *mut c_void, handler: xmlStructuredErrorFunc);
    pub fn xmlSetGenericErrorFunc(ctx: *mut c_void, handler: xmlGenericErrorFunc);
    pub fn xmlSetExternalEntityLoader(f: xmlExternalEntityLoader);
    pub fn xmlNewStringInputStream(ctxt: xmlParserCtxtPtr, buffer: *const u8) -> xmlParserInputPtr;
    pub fn xmlGetLineNo(node: *const xmlNode) -> std::os::raw::c_long;
    pub fn xmlStrdup(s: *const c_char) -> *mut c_char;

    pub fn xmlSchemaNewDocParserCtxt(doc: xmlDocPtr) -> xmlSchemaParserCtxtPtr;
    pub fn xmlSchemaSetParserStructuredErrors(
        ctxt: xmlSchemaParserCtxtPtr,
        serror: xmlStructuredErrorFunc,
        ctx: *mut c_void,
    );
    pub fn xmlSchemaParse(ctxt: xmlSchemaParserCtxtPtr) -> xmlSchemaPtr;
    pub fn xmlSchemaFreeParserCtxt(ctxt: xmlSchemaParserCtxtPtr);
    pub fn xmlSchemaFree(schema: xmlSchemaPtr);
    pub fn xmlSchemaNewValidCtxt(schema: xmlSchemaPtr) -> xmlSchemaValidCtxtPtr;
    pub fn xmlSchemaFreeValidCtxt(ctxt: xmlSchemaValidCtxtPtr);
    pub fn xmlSchemaSetValidStructuredErrors(
        ctxt: xmlSchemaValidCtxtPtr,
        serror: xmlStructuredErrorFunc,
        ctx: *mut c_void,
    );
    pub fn xmlSchemaValidateDoc(ctxt: xmlSchemaValidCtxtPtr, doc: xmlDocPtr) -> c_int;
    pub fn xmlParserInputBufferCreateIO(
        ioread: xmlInputReadCallback,
        ioclose: xmlInputCloseCallback,
        ioctx: *mut c_void,
        enc: c_int,
    ) -> *mut c_void;
    pub fn xmlReadIO(
        ioread: xmlInputReadCallback,
        ioclose: xmlInputCloseCallback,
        ioctx: *mut c_void,
        url: *const c_char,
        encoding: *const c_char,
        options: c_int,
    ) -> xmlDocPtr;
    /// Takes ownership of `input` (freed with the parser it creates).
    pub fn xmlSchemaValidateStream(
        ctxt: xmlSchemaValidCtxtPtr,
        input: *mut c_void,
        enc: c_int,
        sax: *mut c_void,
        user_data: *mut c_void,
    ) -> c_int;
}
