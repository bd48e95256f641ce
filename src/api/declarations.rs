//! `/api/v1/declarations`: submit, follow, fetch the exact bytes, list.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{body, AppState};
use crate::domain::party::Principal;
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

#[utoipa::path(
    post,
    path = "/api/v1/declarations",
    tag = "declarations",
    description = "Submit a customs declaration (`urn:nsw:declaration:1`). Role: enterprise \
        (declarant, or importer/exporter). With an `Idempotency-Key`, the same key and body \
        return the first answer again (`Idempotent-Replayed: true`).",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; scoped to the caller"),
    ),
    request_body(
        content = String,
        content_type = "application/xml",
        description = "The declaration document (also `text/xml`, `application/*+xml`; UTF-8; gzip or deflate `Content-Encoding` accepted)",
        example = json!(include_str!("../../fixtures/valid/declaration/09-import-gold-sbv-1-item-air.xml")),
    ),
    responses(
        (status = 201, description = "Accepted; `Location` names the declaration", body = crate::store::declarations::Receipt,
            headers(("Location" = String, description = "`/api/v1/declarations/{id}`"),
                    ("Idempotent-Replayed" = String, description = "`true` when this repeats an earlier answer"))),
        (status = 400, description = "`XML_EMPTY`, `XML_ENCODING`, `XML_DOCTYPE`, `XML_TOO_DEEP`, `XML_TOO_MANY_ELEMENTS`, `XML_TOO_MANY_ATTRIBUTES`, `XML_TOO_MANY_NAMESPACES`, `XML_TOO_MANY_NAMES`, `XML_NAME_TOO_LONG`, `XML_TOO_COSTLY`, `XML_MALFORMED`, `IDEMPOTENCY_KEY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`, `PARTY_MISMATCH`"),
        (status = 409, description = "`IDEMPOTENCY_KEY_REUSED`, `DECLARATION_REFERENCE_REUSED` (the problem names the first declaration in `declaration: {id, reference, lrn}`)"),
        (status = 422, description = "`DOCUMENT_INVALID`: schema, business-rule and licence violations in `errors`"),
    )
)]
#[tracing::instrument(name = "declaration.submit", skip_all, fields(party = %principal.party_id, size, reference))]
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
    intake: web::Data<super::Intake>,
) -> Result<HttpResponse, ApiError> {
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

#[utoipa::path(
    get,
    path = "/api/v1/declarations/{id}",
    tag = "declarations",
    description = "Status and history of a declaration the caller submitted or is named in (customs and admin: any).",
    params(("id" = String, Path, description = "The declaration's id (UUIDv7)")),
    responses(
        (status = 200, description = "The declaration", body = crate::store::declarations::Detail),
        (status = 404, description = "`NOT_FOUND`: no such declaration, not visible to the caller, or a malformed id"),
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/declarations/{id}/document",
    tag = "declarations",
    description = "The exact bytes received.",
    params(("id" = String, Path, description = "The declaration's id (UUIDv7)")),
    responses(
        (status = 200, description = "The document as received", body = String, content_type = "application/xml",
            headers(("Repr-Digest" = String, description = "`sha-256=:<base64>:` (RFC 9530)"),
                    ("ETag" = String, description = "`\"<sha256 hex>\"`"))),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only declarations in this status.
    #[param(value_type = Option<crate::domain::declaration_state::Status>)]
    status: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// One page of the caller's declarations, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DeclarationPage)]
pub struct Page {
    items: Vec<store::Summary>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<Uuid>,
}

#[utoipa::path(
    get,
    path = "/api/v1/declarations",
    tag = "declarations",
    description = "The caller's declarations, newest first (customs and admin: all). Pages never skip or repeat a declaration.",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = Page),
        (status = 400, description = "`STATUS_INVALID`, `CURSOR_INVALID`, `LIMIT_INVALID`, `QUERY_INVALID`"),
    )
)]
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
    Ok(HttpResponse::Ok().json(Page {
        items: page.items,
        next_cursor: page.next,
    }))
}
