//! `/api/v1/licences`: deposit a licence issued elsewhere (signed), read a licence with its
//! balances, its exact bytes and its signature; `/api/v1/agencies/{code}/certificates`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use base64::Engine;

use super::licence_applications::{licensing_context, officer_agency};
use super::{auth, body, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::licensing;
use crate::store::keys;
use crate::store::licensing as store;

#[tracing::instrument(name = "licence.deposit", skip_all, fields(party = %principal.party_id, number))]
pub async fn deposit(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let agency = officer_agency(&principal)?.to_owned();
    body::require_xml(&req)?;
    let signature = req
        .headers()
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .map(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "SIGNATURE_MISSING",
                "a deposited licence carries X-Signature: base64 of a detached DER CMS signature",
            )
        })?
        .map_err(|_| ApiError::bad_request("SIGNATURE_MALFORMED", "X-Signature is not base64"))?;
    let bytes = body::read_limited(&req, payload, state.validator.limits.max_bytes).await?;
    let view = licensing::deposit(
        &licensing_context(&state),
        &agency,
        &principal.party_id,
        &bytes,
        &signature,
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/licences/{}", view.number.replace('/', "%2F")),
        ))
        .json(view))
}

/// Holder, issuing agency, customs and administrators see a licence; others get 404.
fn may_see(p: &Principal, agency: &str, holder: &str) -> bool {
    match p.role {
        Role::Customs | Role::Admin => true,
        Role::Enterprise => p.party_id == holder,
        Role::Ministry => p.agency.as_deref() == Some(agency),
        Role::Partner => false,
    }
}

#[tracing::instrument(name = "licence.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let number = json::licence_number(&path);
    let client = state.pool.get().await?;
    let view = store::get_licence(&client, &number)
        .await?
        .filter(|v| may_see(&principal, &v.agency, &v.holder_id))
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(view))
}

async fn visible_document(
    number: &str,
    principal: &Principal,
    state: &AppState,
) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let client = state.pool.get().await?;
    let view = store::get_licence(&client, number)
        .await?
        .filter(|v| may_see(principal, &v.agency, &v.holder_id))
        .ok_or(ApiError::NotFound)?;
    store::licence_document(&client, &view.number)
        .await?
        .ok_or(ApiError::NotFound)
}

#[tracing::instrument(name = "licence.document", skip_all, fields(party = %principal.party_id))]
pub async fn document(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bytes, _) = visible_document(&json::licence_number(&path), &principal, &state).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/xml"))
        .body(bytes))
}

#[tracing::instrument(name = "licence.signature", skip_all, fields(party = %principal.party_id))]
pub async fn signature(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, sig) = visible_document(&json::licence_number(&path), &principal, &state).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/pkcs7-signature"))
        .body(sig))
}

/// Every certificate licences of the agency may carry signatures of (PEM, concatenated): the
/// window-held key first, then registered ones. Public information to any authenticated caller.
#[tracing::instrument(name = "agency.certificates", skip_all, fields(party = %principal.party_id))]
pub async fn certificates(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let _ = &principal;
    let agency = path.into_inner();
    let client = state.pool.get().await?;
    let mut certs = keys::trusted(&client, &agency).await?;
    if certs.is_empty() {
        return Err(ApiError::NotFound);
    }
    // window key last in `trusted`; show it first
    certs.rotate_right(1);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-pem-file"))
        .body(certs.concat()))
}

/// Largest PEM certificate body accepted, in bytes.
pub const PEM_LIMIT: usize = 64 * 1024;

/// An administrator registers a certificate an agency signs licences with outside the window.
#[tracing::instrument(name = "agency.register_certificate", skip_all, fields(party = %principal.party_id))]
pub async fn register_certificate(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Admin])?;
    let agency = path.into_inner();
    let pem = body::read_limited(&req, payload, PEM_LIMIT).await?;
    let cert = openssl::x509::X509::from_pem(&pem).map_err(|_| {
        ApiError::bad_request(
            "CERTIFICATE_INVALID",
            "the body is not a PEM X.509 certificate",
        )
    })?;
    let pem = String::from_utf8_lossy(
        &cert
            .to_pem()
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    )
    .into_owned();
    let mut client = state.pool.get().await?;
    let new = keys::register(&mut client, &agency, &pem, &principal.party_id).await?;
    Ok(if new {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    }
    .json(serde_json::json!({"agency": agency, "registered": true})))
}
