//! `/api/v1/certificates-of-origin`: an exporter applies for an ATIGA Form D with the Form D
//! itself; the application then lives in the licence-application machinery (inbox, review,
//! supplements, withdrawal, figures) as type `COO`, routed to Industry and Trade. Issuing it
//! (`{"action":"issue"}` on the application, workflow `licensing::certificates::issue`)
//! completes, signs and stores the certificate and sends the e-Form D to the import country's
//! window, all in one transaction.

use actix_web::{http::header, web, HttpRequest, HttpResponse};

use super::{auth, body, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::licensing::certificates;
use crate::store::certificates::{self as store, CertScope};

/// POST /api/v1/certificates-of-origin: the exporter's Form D (reference and issue date are
/// the exporter's draft values; the window replaces them on issuance).
#[tracing::instrument(name = "certificate_of_origin.apply", skip_all, fields(party = %principal.party_id, reference))]
pub async fn apply(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Enterprise])?;
    body::require_xml(&req)?;
    let bytes = body::read_limited(&req, payload, state.validator.limits.max_bytes).await?;
    let ctx = super::licence_applications::licensing_context(&state);
    let receipt = certificates::apply(&ctx, &principal.party_id, &bytes).await?;
    tracing::Span::current().record("reference", receipt.reference.as_str());
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/licence-applications/{}", receipt.id),
        ))
        .json(receipt))
}

fn scope(p: &Principal) -> Option<CertScope<'_>> {
    match p.role {
        Role::Enterprise => Some(CertScope::Exporter(&p.party_id)),
        Role::Ministry => p.agency.as_deref().map(CertScope::Agency),
        Role::Customs | Role::Admin => Some(CertScope::All),
        Role::Partner => None,
    }
}

async fn load(
    principal: &Principal,
    state: &AppState,
    reference: &str,
) -> Result<(store::Certificate, Vec<u8>, Vec<u8>), ApiError> {
    let scope = scope(principal).ok_or(ApiError::NotFound)?;
    let client = state.pool.get().await?;
    store::get(&client, &scope, reference)
        .await?
        .ok_or(ApiError::NotFound)
}

/// GET /api/v1/certificates-of-origin/{reference}: the exporter, officers of the issuing
/// agency, customs and administrators; anyone else gets 404.
#[tracing::instrument(name = "certificate_of_origin.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (cert, _, _) = load(&principal, &state, &path).await?;
    Ok(HttpResponse::Ok().json(cert))
}

/// GET /api/v1/certificates-of-origin/{reference}/{document|signature}: the bytes as issued
/// and the agency's detached DER CMS signature over them.
#[tracing::instrument(name = "certificate_of_origin.raw", skip_all, fields(party = %principal.party_id))]
pub async fn raw(
    path: web::Path<(String, String)>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (reference, part) = path.into_inner();
    if part != "document" && part != "signature" {
        return Err(ApiError::NotFound);
    }
    let (_, document, signature) = load(&principal, &state, &reference).await?;
    Ok(if part == "document" {
        HttpResponse::Ok()
            .content_type("application/xml")
            .body(document)
    } else {
        HttpResponse::Ok()
            .content_type("application/pkcs7-signature")
            .body(signature)
    })
}
