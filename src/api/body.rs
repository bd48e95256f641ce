//! Reading an XML request body: media type first, then the bytes up to the size limit.

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::xml::XmlError;

/// application/xml, text/xml and any application/*+xml; charset, if given, must be UTF-8.
pub fn require_xml(req: &HttpRequest) -> Result<(), ApiError> {
    require_xml_in(req.headers())
}

/// [`require_xml`] on headers alone.
pub fn require_xml_in(headers: &HeaderMap) -> Result<(), ApiError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let xml = essence == "application/xml"
        || essence == "text/xml"
        || (essence.starts_with("application/") && essence.ends_with("+xml"));
    let charset_ok = parts.all(|p| {
        let p = p.trim().to_ascii_lowercase();
        !p.starts_with("charset=")
            || matches!(
                p.trim_start_matches("charset=").trim_matches('"'),
                "utf-8" | "utf8"
            )
    });
    if xml && charset_ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            got: if raw.is_empty() { "(none)".into() } else { raw },
            expected: "application/xml (or text/xml, application/*+xml)",
        })
    }
}

/// How the request body is encoded on the wire (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    /// HTTP's "deflate": zlib-wrapped (RFC 9110), or raw deflate as some clients send it.
    Deflate,
}

/// One coding among identity, gzip (or x-gzip) and deflate; anything else, or several codings
/// stacked, is 415 `CONTENT_ENCODING_UNSUPPORTED`.
fn coding(headers: &HeaderMap) -> Result<Coding, ApiError> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).peekable();
    if values.peek().is_none() {
        return Ok(Coding::Identity);
    }
    let mut codings = Vec::new();
    for v in values {
        let v = v.to_str().map_err(|_| unsupported_coding("(not text)"))?;
        codings.extend(
            v.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty() && c != "identity"),
        );
    }
    match codings.as_slice() {
        [] => Ok(Coding::Identity),
        [one] if one == "gzip" || one == "x-gzip" => Ok(Coding::Gzip),
        [one] if one == "deflate" => Ok(Coding::Deflate),
        _ => Err(unsupported_coding(&codings.join(", "))),
    }
}

fn unsupported_coding(got: &str) -> ApiError {
    ApiError::UnsupportedEncoding {
        got: got.to_owned(),
    }
}

/// A size the body is sure to exceed once decoded, when it is this long encoded: gzip and
/// deflate never grow data by more than a few bytes per 16 KiB block.
fn encoded_ceiling(limit: usize) -> usize {
    limit.saturating_add(limit / 64).saturating_add(1024)
}

/// Checks `Content-Encoding` and `Content-Length` against `limit` from the headers alone, so a
/// request that cannot succeed is answered before its body is sent (`Expect: 100-continue`).
pub fn precheck(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    judge(headers, limit).map(|_| ())
}

/// The body's coding and declared length, once both pass [`precheck`]'s judgement.
fn judge(headers: &HeaderMap, limit: usize) -> Result<(Coding, Option<usize>), ApiError> {
    let coding = coding(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let ceiling = match coding {
        Coding::Identity => limit,
        _ => encoded_ceiling(limit),
    };
    if let Some(size) = declared.filter(|&s| s > ceiling) {
        return Err(ApiError::Xml(XmlError::TooLarge { size, limit }));
    }
    Ok((coding, declared))
}

/// Where decoded bytes go: refuses to grow past the limit, so a small compressed body that
/// inflates past it costs at most `limit` bytes of memory, never more.
struct Capped {
    buf: web::BytesMut,
    limit: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "decoded body over the limit",
            ));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Identity(Capped),
    Gzip(flate2::write::GzDecoder<Capped>),
    Zlib(flate2::write::ZlibDecoder<Capped>),
    Raw(flate2::write::DeflateDecoder<Capped>),
    /// Deflate whose first two bytes have not arrived yet (they tell zlib from raw).
    Undecided(Capped, Vec<u8>),
}

impl Decoder {
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Decoder::Identity(w) => w.write_all(chunk),
            Decoder::Gzip(d) => d.write_all(chunk),
            Decoder::Zlib(d) => d.write_all(chunk),
            Decoder::Raw(d) => d.write_all(chunk),
            Decoder::Undecided(w, head) => {
                head.extend_from_slice(chunk);
                if head.len() < 2 {
                    return Ok(());
                }
                let sink = Capped {
                    buf: std::mem::take(&mut w.buf),
                    limit: w.limit,
                };
                let head = std::mem::take(head);
                // A zlib stream starts with CMF/FLG: method 8 and a header checksum.
                let zlib =
                    head[0] & 0x0F == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
                *self = if zlib {
                    Decoder::Zlib(flate2::write::ZlibDecoder::new(sink))
                } else {
                    Decoder::Raw(flate2::write::DeflateDecoder::new(sink))
                };
                self.write(&head)
            }
        }
    }

    fn finish(self) -> std::io::Result<web::BytesMut> {
        match self {
            Decoder::Identity(w) => Ok(w.buf),
            Decoder::Gzip(d) => d.finish().map(|w| w.buf),
            Decoder::Zlib(d) => d.finish().map(|w| w.buf),
            Decoder::Raw(d) => d.finish().map(|w| w.buf),
            Decoder::Undecided(_, head) if head.is_empty() => Ok(web::BytesMut::new()),
            Decoder::Undecided(..) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "deflate stream ends after one byte",
            )),
        }
    }
}

/// application/json or any application/*+json; a request with no Content-Type at all is read
/// as JSON too (the body is parsed strictly either way).
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    require_json_in(req.headers())
}

/// [`require_json`] on headers alone.
pub fn require_json_in(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(raw) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let raw = raw.to_str().unwrap_or("(not text)").to_owned();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            got: raw,
            expected: "application/json",
        })
    }
}

/// Collects the body, decoding gzip or deflate (`Content-Encoding`), and refuses it as soon as
/// it passes `limit` bytes once decoded (413 `BODY_TOO_LARGE`). A body that is not valid in its
/// declared coding is 400 `BODY_ENCODING_INVALID`.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let (coding, declared) = judge(req.headers(), limit)?;
    let sink = Capped {
        buf: web::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit)),
        limit,
    };
    let mut decoder = match coding {
        Coding::Identity => Decoder::Identity(sink),
        Coding::Gzip => Decoder::Gzip(flate2::write::GzDecoder::new(sink)),
        Coding::Deflate => Decoder::Undecided(sink, Vec::new()),
    };
    let mut received = 0usize;
    let too_large = |size: usize| ApiError::Xml(XmlError::TooLarge { size, limit });
    let decode_error = |e: std::io::Error, received: usize| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            ApiError::Xml(XmlError::TooLargeDecoded { received, limit })
        } else {
            ApiError::bad_request(
                "BODY_ENCODING_INVALID",
                format!("the body is not valid in its Content-Encoding: {e}"),
            )
        }
    };
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("BODY_UNREADABLE", e.to_string()))?;
        received += chunk.len();
        if coding == Coding::Identity && received > limit {
            return Err(too_large(received));
        }
        decoder
            .write(&chunk)
            .map_err(|e| decode_error(e, received))?;
    }
    let buf = decoder.finish().map_err(|e| decode_error(e, received))?;
    Ok(buf.freeze())
}
