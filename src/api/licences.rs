//! `/api/v1/licences`: deposit a licence issued elsewhere (signed), read a licence with its
//! balances, its exact bytes and its signature; `/api/v1/agencies/{code}/certificates`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use base64::Engine;

use super::licence_applications::{licensing_context, officer_agency};
use super::{body, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::licensing;
use crate::store::keys;
use crate::store::licensing as store;

#[utoipa::path(
    post,
    path = "/api/v1/licences",
    tag = "licences",
    description = "An officer deposits a licence issued outside the window, signed by the agency (detached CMS in `X-Signature`). Role: ministry (of the licence's agency).",
    params(("X-Signature" = String, Header, description = "Base64 of a detached DER CMS signature over the body (SHA-256)")),
    request_body(
        content = String,
        content_type = "application/xml",
        description = "The licence (`urn:nsw:licence:1`; also `text/xml`, `application/*+xml`)",
        example = json!(include_str!("../../fixtures/valid/licence/sbv-gold-215.xml")),
    ),
    responses(
        (status = 201, description = "Deposited; `Location` names the licence", body = crate::store::licensing::LicenceView,
            headers(("Location" = String, description = "`/api/v1/licences/{number}` (`/` as `%2F`)"))),
        (status = 400, description = "`XML_EMPTY`, `XML_ENCODING`, `XML_DOCTYPE`, `XML_TOO_DEEP`, `XML_TOO_MANY_ELEMENTS`, `XML_TOO_MANY_ATTRIBUTES`, `XML_TOO_MANY_NAMESPACES`, `XML_TOO_MANY_NAMES`, `XML_NAME_TOO_LONG`, `XML_TOO_COSTLY`, `XML_MALFORMED`, `SIGNATURE_MISSING`, `SIGNATURE_MALFORMED`"),
        (status = 403, description = "`ROLE_FORBIDDEN`, `AGENCY_UNSET`, `AGENCY_MISMATCH`, `SIGNATURE_ALGORITHM`, `CERTIFICATE_UNTRUSTED`, `CERTIFICATE_EXPIRED`, `CERTIFICATE_NOT_YET_VALID`, `CERTIFICATE_PURPOSE`"),
        (status = 409, description = "`CONFLICT`: the number is already known"),
        (status = 422, description = "`DOCUMENT_INVALID`: schema and rule errors, `SIGNATURE_INVALID`, `LICENCE_VALIDITY_ENDED` in `errors`"),
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/licences/{number}",
    tag = "licences",
    description = "A licence with the balance of each line. Holder, issuing agency, customs, admin; others get 404.",
    params(("number" = String, Path, description = "The licence number; `/` sent as `%2F`")),
    responses(
        (status = 200, description = "The licence", body = crate::store::licensing::LicenceView),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "licence.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let number = json::licence_number(json::path_name(&path)?);
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

#[utoipa::path(
    get,
    path = "/api/v1/licences/{number}/document",
    tag = "licences",
    description = "The licence XML, byte for byte.",
    params(("number" = String, Path, description = "The licence number; `/` sent as `%2F`")),
    responses(
        (status = 200, description = "The document", body = String, content_type = "application/xml"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "licence.document", skip_all, fields(party = %principal.party_id))]
pub async fn document(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bytes, _) = visible_document(
        &json::licence_number(json::path_name(&path)?),
        &principal,
        &state,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/xml"))
        .body(bytes))
}

#[utoipa::path(
    get,
    path = "/api/v1/licences/{number}/signature",
    tag = "licences",
    description = "The agency's detached DER CMS signature over the licence document.",
    params(("number" = String, Path, description = "The licence number; `/` sent as `%2F`")),
    responses(
        (status = 200, description = "The signature", body = String, content_type = "application/pkcs7-signature"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "licence.signature", skip_all, fields(party = %principal.party_id))]
pub async fn signature(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, sig) = visible_document(
        &json::licence_number(json::path_name(&path)?),
        &principal,
        &state,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/pkcs7-signature"))
        .body(sig))
}

/// Every certificate licences of the agency may carry signatures of (PEM, concatenated): the
/// window-held key first, then registered ones. Public information to any authenticated caller.
#[utoipa::path(
    get,
    path = "/api/v1/agencies/{code}/certificates",
    tag = "licences",
    description = "PEM certificates licences of the agency may be signed with (the window's key first). Any authenticated caller.",
    params(("code" = String, Path, description = "The agency's code, e.g. `MOIT`")),
    responses(
        (status = 200, description = "Concatenated PEM certificates", body = String, content_type = "application/x-pem-file"),
        (status = 404, description = "`NOT_FOUND`: no certificate for this agency"),
    )
)]
#[tracing::instrument(name = "agency.certificates", skip_all, fields(party = %principal.party_id))]
pub async fn certificates(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let _ = &principal;
    let agency = json::path_name(&path)?.to_owned();
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

/// Answer to a certificate registration.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CertificateRegistered {
    agency: String,
    registered: bool,
}

/// An administrator registers a certificate an agency signs licences with outside the window.
#[utoipa::path(
    post,
    path = "/api/v1/agencies/{code}/certificates",
    tag = "licences",
    description = "An administrator registers a certificate the agency signs licences with outside the window. Role: admin.",
    params(("code" = String, Path, description = "The agency's code, e.g. `MOIT`")),
    request_body(content = String, content_type = "text/plain", description = "One PEM X.509 certificate (`application/x-pem-file` or any other text type is taken as well)",
        example = json!("-----BEGIN CERTIFICATE-----\nMIIB…\n-----END CERTIFICATE-----\n")),
    responses(
        (status = 201, description = "Registered", body = CertificateRegistered),
        (status = 200, description = "Already registered", body = CertificateRegistered),
        (status = 400, description = "`CERTIFICATE_INVALID`, or `AGENCY_UNKNOWN`: the routing table knows no such agency"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`: a code no agency can have"),
    )
)]
#[tracing::instrument(name = "agency.register_certificate", skip_all, fields(party = %principal.party_id))]
pub async fn register_certificate(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let agency = json::path_name(&path)?.to_owned();
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
    // Only for an agency the routing table knows: a certificate registered under a mistyped
    // code would let deposits through under a name no rule routes to.
    if state
        .routing
        .current(&client)
        .await?
        .agency(&agency)
        .is_none()
    {
        return Err(ApiError::bad_request(
            "AGENCY_UNKNOWN",
            format!("the routing table knows no agency '{agency}'"),
        ));
    }
    let new = keys::register(&mut client, &agency, &pem, &principal.party_id).await?;
    Ok(if new {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    }
    .json(CertificateRegistered {
        agency,
        registered: true,
    }))
}
