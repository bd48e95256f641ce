//! `/api/v1/certificates-of-origin`: an exporter applies for an ATIGA Form D with the Form D
//! itself; the application then lives in the licence-application machinery (inbox, review,
//! supplements, withdrawal, figures) as type `COO`, routed to Industry and Trade. Issuing it
//! (`{"action":"issue"}` on the application, workflow `licensing::certificates::issue`)
//! completes, signs and stores the certificate and sends the e-Form D to the import country's
//! window, all in one transaction.

use actix_web::{http::header, web, HttpRequest, HttpResponse};

use super::{body, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::licensing::certificates;
use crate::store::certificates::{self as store, CertScope};

/// POST /api/v1/certificates-of-origin: the exporter's Form D (reference and issue date are
/// the exporter's draft values; the window replaces them on issuance).
#[utoipa::path(
    post,
    path = "/api/v1/certificates-of-origin",
    tag = "certificates",
    description = "An exporter applies for an ATIGA Form D with the Form D itself (`urn:nsw:certificate-of-origin:1`); the application is routed to Industry and Trade. Role: enterprise (the Form D's exporter).",
    request_body(
        content = String,
        content_type = "application/xml",
        description = "The Form D (also `text/xml`, `application/*+xml`)",
        example = json!(include_str!("../../fixtures/valid/certificate-of-origin/vn-sg-form-d.xml")),
    ),
    responses(
        (status = 201, description = "The application's receipt; `Location` names the licence application", body = crate::store::licensing::ApplicationReceipt,
            headers(("Location" = String, description = "`/api/v1/licence-applications/{id}`"))),
        (status = 400, description = "`XML_EMPTY`, `XML_ENCODING`, `XML_DOCTYPE`, `XML_TOO_DEEP`, `XML_TOO_MANY_ELEMENTS`, `XML_TOO_MANY_ATTRIBUTES`, `XML_TOO_MANY_NAMESPACES`, `XML_TOO_MANY_NAMES`, `XML_NAME_TOO_LONG`, `XML_TOO_COSTLY`, `XML_MALFORMED`"),
        (status = 403, description = "`ROLE_FORBIDDEN`, `PARTY_MISMATCH`"),
        (status = 409, description = "`CONFLICT`"),
        (status = 422, description = "`DOCUMENT_INVALID`: schema errors, `ORIGIN_EXPORT_COUNTRY`, `ORIGIN_SAME_COUNTRY`, `COUNTRY_UNKNOWN`, `HS_UNKNOWN`, `LINE_NUMBER_SEQUENCE`, `ROUTING_NO_RULE` in `errors`"),
    )
)]
#[tracing::instrument(name = "certificate_of_origin.apply", skip_all, fields(party = %principal.party_id, reference))]
pub async fn apply(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
    let reference = super::json::path_name(reference)?;
    let client = state.pool.get().await?;
    store::get(&client, &scope, reference)
        .await?
        .ok_or(ApiError::NotFound)
}

/// GET /api/v1/certificates-of-origin/{reference}: the exporter, officers of the issuing
/// agency, customs and administrators; anyone else gets 404.
#[utoipa::path(
    get,
    path = "/api/v1/certificates-of-origin/{reference}",
    tag = "certificates",
    description = "An issued certificate of origin. The exporter, officers of the issuing agency, customs and administrators; anyone else gets 404.",
    params(("reference" = String, Path, description = "The certificate's reference")),
    responses(
        (status = 200, description = "The certificate", body = crate::store::certificates::Certificate),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/certificates-of-origin/{reference}/{part}",
    tag = "certificates",
    description = "The certificate's XML as issued, byte for byte (`document`), or the agency's detached DER CMS signature over it (`signature`).",
    params(
        ("reference" = String, Path, description = "The certificate's reference"),
        ("part" = String, Path, description = "`document` or `signature`", pattern = "^(document|signature)$"),
    ),
    responses(
        (status = 200, description = "The bytes", content(
            (String = "application/xml"),
            (String = "application/pkcs7-signature"),
        )),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
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
