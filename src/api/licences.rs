//! `/api/v1/licences`: deposit a licence issued elsewhere (signed), read a licence with its
//! balances, its exact bytes and its signature; `/api/v1/agencies/{code}/certificates`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use base64::Engine;

use super::licence_applications::officer_agency;
use super::{auth, body, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::exchange::signature::SignatureError;
use crate::licensing::{documents, signing};
use crate::store::keys;
use crate::store::licensing::{self as store, NewLicence};
use crate::xml::{self, DocKind};

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
    let tree = match xml::check(&bytes, &state.validator.limits, Some(DocKind::Licence)) {
        Err(e) => return Err(ApiError::Xml(e)),
        Ok(Err(refused)) => {
            return Err(ApiError::Invalid {
                violations: refused.violations,
            })
        }
        Ok(Ok(valid)) => valid.tree,
    };
    let licence =
        documents::read_licence(&tree).map_err(|violations| ApiError::Invalid { violations })?;
    documents::check_not_ended(&tree, &licence, state.today())
        .map_err(|violations| ApiError::Invalid { violations })?;
    tracing::Span::current().record("number", licence.number.as_str());
    if licence.agency != agency {
        return Err(ApiError::forbidden(
            "AGENCY_MISMATCH",
            format!(
                "an officer of {agency} may deposit only licences of {agency}, not of {}",
                licence.agency
            ),
        ));
    }
    let mut client = state.pool.get().await?;
    let trusted = keys::trusted(&client, &agency).await?;
    let policy = signing::Policy::from_settings(&state.settings.exchange);
    signing::verify_detached(&signature, &bytes, &trusted, &agency, &policy).map_err(
        |e| match e {
            SignatureError::Malformed(_) | SignatureError::NoSigner => {
                ApiError::bad_request("SIGNATURE_MALFORMED", e.to_string())
            }
            // The bytes are not what was signed: a fault of the document, listed like its others.
            SignatureError::Invalid(_) => ApiError::Invalid {
                violations: vec![xml::Violation {
                    line: 1,
                    column: 1,
                    path: "/Licence".into(),
                    code: "SIGNATURE_INVALID",
                    message: e.to_string(),
                }],
            },
            // Digest algorithm, chain, dates, purpose: the signer is not accepted.
            other => ApiError::forbidden(other.code(), other.to_string()),
        },
    )?;
    store::deposit_licence(
        &mut client,
        &NewLicence {
            licence: &licence,
            body: &bytes,
            signature: &signature,
            actor: &principal.party_id,
            application_id: None,
        },
    )
    .await?;
    let view = store::get_licence(&client, &licence.number)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/licences/{}", licence.number.replace('/', "%2F")),
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
