//! Static files compiled into the binary and served under a content-hashed name with a long
//! cache lifetime: a changed file gets a new name, so no browser keeps a stale one.

use std::sync::OnceLock;

use actix_web::{http::header, web, HttpResponse};
use sha2::{Digest, Sha256};

use super::PortalError;

/// (file name, media type, bytes) of every asset.
const FILES: &[(&str, &str, &[u8])] = &[(
    "portal.css",
    "text/css; charset=utf-8",
    include_bytes!("../../assets/portal.css"),
)];

/// `stem.<first 12 hex of SHA-256>.ext` for each asset, and its index in `FILES`.
fn hashed() -> &'static Vec<(String, usize)> {
    static NAMES: OnceLock<Vec<(String, usize)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        FILES
            .iter()
            .enumerate()
            .map(|(i, (name, _, bytes))| {
                let hash = hex::encode(&Sha256::digest(bytes)[..6]);
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
                (format!("{stem}.{hash}.{ext}"), i)
            })
            .collect()
    })
}

/// The stylesheet's address: `/assets/portal.<hash>.css`.
pub fn stylesheet() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| format!("/assets/{}", hashed()[0].0))
}

/// `GET /assets/{name}`: the asset, cacheable for a year; an unknown name is 404.
pub async fn serve(name: web::Path<String>) -> Result<HttpResponse, PortalError> {
    let (_, i) = hashed()
        .iter()
        .find(|(n, _)| *n == *name)
        .ok_or(PortalError::NotFound)?;
    let (_, media, bytes) = FILES[*i];
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, media))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(bytes))
}
