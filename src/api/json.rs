//! JSON request bodies, read up to a limit and parsed into problem+json errors.

use actix_web::{web, HttpRequest};
use serde::de::DeserializeOwned;

use super::body;
use crate::error::ApiError;

pub const LIMIT: usize = 2 * 1024 * 1024;

pub async fn read<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    body::require_json(req)?;
    let bytes = body::read_limited(req, payload, LIMIT).await?;
    let invalid = |e: serde_json::Error| {
        ApiError::bad_request(
            "BODY_INVALID",
            format!("request body: {}", plain(&e.to_string())),
        )
    };
    // U+0000 can only come as the escape `\u0000`; PostgreSQL stores no such character.
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        if has_nul(&value) {
            return Err(ApiError::bad_request(
                "BODY_INVALID",
                "request body: a string may not contain U+0000",
            ));
        }
    }
    serde_json::from_slice(&bytes).map_err(invalid)
}

/// Whether a string (or key) anywhere in `v` holds U+0000.
fn has_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A name in a path (a licence number, a certificate reference, an agency code): one with
/// U+0000 names nothing that exists (and PostgreSQL could not even compare it).
pub fn path_name(raw: &str) -> Result<&str, ApiError> {
    if raw.contains('\0') {
        Err(ApiError::NotFound)
    } else {
        Ok(raw)
    }
}

/// A free-text query parameter: PostgreSQL stores no U+0000, so a value with one is refused.
pub fn query_text<'a>(name: &str, value: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match value {
        Some(v) if v.contains('\0') => Err(ApiError::bad_request(
            "QUERY_INVALID",
            format!("{name}: may not contain U+0000"),
        )),
        other => Ok(other),
    }
}

/// A malformed id names nothing that exists: same answer as an unknown one.
pub fn parse_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// Licence numbers may contain `/` (e.g. `045/GCN-XKG`), sent percent-encoded as `%2F`.
pub fn licence_number(raw: &str) -> String {
    raw.replace("%2F", "/").replace("%2f", "/")
}

/// serde's message without the Rust type names it carries ("expected struct DecisionBody"):
/// they mean nothing to a client and are no part of the API.
fn plain(message: &str) -> String {
    let mut out = message.to_owned();
    for (marker, replacement) in [
        (
            "expected internally tagged enum ",
            "expected a JSON object with its tag",
        ),
        ("expected struct ", "expected a JSON object"),
        ("expected enum ", "expected one of the documented values"),
    ] {
        if let Some(at) = out.find(marker) {
            let name_end = out[at + marker.len()..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(out.len(), |n| at + marker.len() + n);
            out.replace_range(at..name_end, replacement);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_names_stay_out_of_messages() {
        assert_eq!(
            super::plain("invalid type: integer `1`, expected internally tagged enum Fault at line 1 column 2"),
            "invalid type: integer `1`, expected a JSON object with its tag at line 1 column 2"
        );
        assert_eq!(
            super::plain("invalid type: string \"x\", expected struct DecisionBody"),
            "invalid type: string \"x\", expected a JSON object"
        );
    }
}
