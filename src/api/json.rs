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
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("BODY_INVALID", format!("request body: {e}")))
}

/// A malformed id names nothing that exists: same answer as an unknown one.
pub fn parse_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// Licence numbers may contain `/` (e.g. `045/GCN-XKG`), sent percent-encoded as `%2F`.
pub fn licence_number(raw: &str) -> String {
    raw.replace("%2F", "/").replace("%2f", "/")
}
