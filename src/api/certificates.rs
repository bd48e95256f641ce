//! `/api/v1/certificates-of-origin`: an exporter applies for an ATIGA Form D with the Form D
//! itself; the application then lives in the licence-application machinery (inbox, review,
//! supplements, withdrawal, figures) as type `COO`, routed to Industry and Trade. Issuing it
//! (`{"action":"issue"}` on the application, workflow `licensing::certificates::issue`)
//! completes, signs and stores the certificate and sends the e-Form D to the import country's
//! window, all in one transaction.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::{auth, body, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::licensing::certificates;
use crate::routing::Rule;
use crate::store::certificates::{self as store, CertScope};
use crate::store::licensing::{self as applications, NewApplication};
use crate::xml::{self, DocKind, Violation};

/// Who issues Form Ds and under which procedure. Certificates of origin are not goods-specific,
/// so they are not in the HS-keyed routing table (where a rule would also make every export
/// declaration quote one); the agency must still be one of the table's agencies.
pub const AGENCY: &str = "MOIT";
pub const PROCEDURE: &str = "MOIT-COO-FORM-D";
/// Form Ds are issued within eight working hours of a complete application (Decree
/// 31/2018/ND-CP, art. 15).
pub const SLA_HOURS: u32 = 8;

fn rule() -> Rule {
    Rule {
        id: "moit-form-d".into(),
        hs: "00".into(),
        direction: "EX".into(),
        country: None,
        agency: AGENCY.into(),
        procedure: PROCEDURE.into(),
        document: "COO".into(),
        title: "Certificate of origin, ATIGA Form D".into(),
        sla_hours: Some(SLA_HOURS),
        sla_days: None,
        fee_vnd: 0,
    }
}

fn today(state: &AppState) -> chrono::NaiveDate {
    state.today()
}

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
    let tree = match xml::check(
        &bytes,
        &state.validator.limits,
        Some(DocKind::CertificateOfOrigin),
    ) {
        Err(e) => return Err(ApiError::Xml(e)),
        Ok(Err(refused)) => {
            return Err(ApiError::Invalid {
                violations: refused.violations,
            })
        }
        Ok(Ok(valid)) => valid.tree,
    };
    let app = certificates::read_application(&tree, &state.settings.country, today(&state))
        .map_err(|violations| ApiError::Invalid { violations })?;
    if app.applicant.id != principal.party_id {
        return Err(ApiError::forbidden(
            "PARTY_MISMATCH",
            format!(
                "you ({}) may apply only as the exporter, not for {}",
                principal.party_id, app.applicant.id
            ),
        ));
    }
    let mut client = state.pool.get().await?;
    let table = state.routing.current(&client).await?;
    if table.agency(AGENCY).is_none() {
        return Err(ApiError::Invalid {
            violations: vec![Violation {
                line: 1,
                column: 1,
                path: "/CertificateOfOrigin".into(),
                code: "ROUTING_NO_RULE",
                message: format!("the routing table has no agency {AGENCY} to issue Form Ds"),
            }],
        });
    }
    let rule = rule();
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let receipt = applications::submit_application(
        &mut client,
        NewApplication {
            applicant: &principal.party_id,
            document_kind: DocKind::CertificateOfOrigin.name(),
            body: &bytes,
            sha256,
            application: &app,
            rule: &rule,
            routing_version: table.version,
            country: &state.settings.country,
            sla_minutes: rule.sla_minutes(state.calendar.working_day_minutes()),
        },
    )
    .await?;
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
