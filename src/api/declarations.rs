//! `/api/v1/declarations`: submit, follow, fetch the exact bytes, list.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::Deserialize;
use uuid::Uuid;

use super::{auth, body, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::store::declarations::{self as store, Receipt, Scope};

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "IDEMPOTENCY_KEY_INVALID",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

#[tracing::instrument(name = "declaration.submit", skip_all, fields(party = %principal.party_id, size, reference))]
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
    intake: web::Data<super::Intake>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Enterprise])?;
    body::require_xml(&req)?;
    let key = idempotency_key(&req)?;
    let bytes = body::read_limited(&req, payload, state.validator.limits.max_bytes).await?;
    tracing::Span::current().record("size", bytes.len());
    let submitted =
        crate::intake::submit_declaration(&state, &intake, &principal, bytes, key).await?;
    tracing::Span::current().record("reference", submitted.receipt.reference.as_str());
    Ok(created(&submitted.receipt, submitted.replayed))
}

fn created(receipt: &Receipt, replayed: bool) -> HttpResponse {
    let mut resp = HttpResponse::Created();
    resp.insert_header((
        header::LOCATION,
        format!("/api/v1/declarations/{}", receipt.id),
    ));
    if replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
    }
    resp.json(receipt)
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    // A malformed id names nothing that exists: same answer as an unknown one.
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

#[tracing::instrument(name = "declaration.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let client = state.pool.get().await?;
    let detail = store::get(&client, &Scope::of(&principal), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(detail))
}

#[tracing::instrument(name = "declaration.document", skip_all, fields(party = %principal.party_id))]
pub async fn document(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let client = state.pool.get().await?;
    let (bytes, sha) = store::document(&client, &Scope::of(&principal), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/xml"))
        .insert_header((
            "Repr-Digest",
            format!(
                "sha-256=:{}:",
                base64::engine::general_purpose::STANDARD.encode(&sha)
            ),
        ))
        .insert_header((header::ETAG, format!("\"{}\"", hex::encode(&sha))))
        .body(bytes))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[tracing::instrument(name = "declaration.list", skip_all, fields(party = %principal.party_id))]
pub async fn list(
    query: web::Query<ListQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(
            "LIMIT_INVALID",
            "limit must be 1 to 200",
        ));
    }
    const STATUSES: [&str; 5] = [
        "accepted",
        "under_inspection",
        "cleared",
        "rejected",
        "withdrawn",
    ];
    if let Some(s) = query.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::bad_request(
            "STATUS_INVALID",
            format!("unknown status '{s}'; one of {}", STATUSES.join(", ")),
        ));
    }
    let before = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
            ApiError::bad_request("CURSOR_INVALID", "cursor is not one this API returned")
        })?),
    };
    let client = state.pool.get().await?;
    let page = store::list(
        &client,
        &Scope::of(&principal),
        query.status.as_deref(),
        before,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": page.items,
        "next_cursor": page.next,
    })))
}
