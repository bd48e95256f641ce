//! Reading an XML request body: media type first, then the bytes up to the size limit.

use actix_web::{http::header, web, HttpRequest};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::xml::XmlError;

/// application/xml, text/xml and any application/*+xml; charset, if given, must be UTF-8.
pub fn require_xml(req: &HttpRequest) -> Result<(), ApiError> {
    let raw = req
        .headers()
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
        })
    }
}

/// Collects the body, refusing it as soon as it passes `limit` bytes.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|&s| s > limit) {
        return Err(ApiError::Xml(XmlError::TooLarge { size, limit }));
    }
    let mut buf = web::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("BODY_UNREADABLE", e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::Xml(XmlError::TooLarge {
                size: buf.len() + chunk.len(),
                limit,
            }));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
