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
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "BODY_INVALID",
            format!("request body: {}", plain(&e.to_string())),
        )
    })
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
