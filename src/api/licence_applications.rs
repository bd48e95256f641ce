//! `/api/v1/licence-applications` and `/api/v1/inbox`: enterprises apply, supplement and
//! withdraw; officers of the agency the application was routed to review and decide.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{auth, body, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::licensing::documents::{self, Issue};
use crate::licensing::{route_application, signing, RouteError};
use crate::store::licensing::{self as store, AppScope, NewApplication, NewLicence};
use crate::store::{keys, StoreError};
use crate::xml::{self, DocKind, Violation};

/// The agency a ministry officer acts for.
pub fn officer_agency(p: &Principal) -> Result<&str, ApiError> {
    auth::require(p, &[Role::Ministry])?;
    p.agency.as_deref().ok_or_else(|| {
        ApiError::forbidden("AGENCY_UNSET", "this officer is not bound to an agency")
    })
}

fn scope(p: &Principal) -> Option<AppScope<'_>> {
    match p.role {
        Role::Enterprise => Some(AppScope::Applicant(&p.party_id)),
        Role::Ministry => p.agency.as_deref().map(AppScope::Agency),
        Role::Admin => Some(AppScope::All),
        Role::Customs | Role::Partner => None,
    }
}

fn schema_outcome<'a>(
    bytes: &'a [u8],
    state: &AppState,
    kind: DocKind,
) -> Result<xml::Tree<'a>, ApiError> {
    match xml::check(bytes, &state.validator.limits, Some(kind)) {
        Err(e) => Err(ApiError::Xml(e)),
        Ok(Err(refused)) => Err(ApiError::Invalid {
            violations: refused.violations,
        }),
        Ok(Ok(valid)) => Ok(valid.tree),
    }
}

#[tracing::instrument(name = "licence_application.submit", skip_all, fields(party = %principal.party_id, reference))]
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Enterprise])?;
    body::require_xml(&req)?;
    let bytes = body::read_limited(&req, payload, state.validator.limits.max_bytes).await?;
    let tree = schema_outcome(&bytes, &state, DocKind::LicenceApplication)?;
    let app = documents::read_application(&tree)
        .map_err(|violations| ApiError::Invalid { violations })?;
    if app.applicant.id != principal.party_id {
        return Err(ApiError::forbidden(
            "PARTY_MISMATCH",
            format!(
                "you ({}) may apply only in your own name, not for {}",
                principal.party_id, app.applicant.id
            ),
        ));
    }
    let mut client = state.pool.get().await?;
    let table = state.routing.current(&client).await?;
    let rule = route_application(&table, &app).map_err(|e| {
        let (line, code) = match &e {
            RouteError::NoRule { line, .. } => (*line, "ROUTING_NO_RULE"),
            RouteError::Split { line, .. } => (*line, "ROUTING_SPLIT"),
        };
        let node = tree
            .children(xml::tree::ROOT, "Line")
            .nth((line.max(1) - 1) as usize)
            .unwrap_or(xml::tree::ROOT);
        let pos = tree.position(node);
        ApiError::Invalid {
            violations: vec![Violation {
                line: pos.line,
                column: pos.column,
                path: tree.path(node),
                code,
                message: e.to_string(),
            }],
        }
    })?;
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let receipt = store::submit_application(
        &mut client,
        NewApplication {
            applicant: &principal.party_id,
            document_kind: DocKind::LicenceApplication.name(),
            body: &bytes,
            sha256,
            application: &app,
            rule,
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

#[tracing::instrument(name = "licence_application.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let scope = scope(&principal).ok_or(ApiError::NotFound)?;
    let client = state.pool.get().await?;
    let detail = store::get_application(&client, &scope, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(detail))
}

#[derive(Deserialize)]
pub struct InboxQuery {
    status: Option<String>,
    limit: Option<i64>,
}

const STATUSES: [&str; 8] = [
    "submitted",
    "received",
    "supplement_requested",
    "supplemented",
    "under_review",
    "issued",
    "refused",
    "withdrawn",
];

#[tracing::instrument(name = "inbox.list", skip_all, fields(party = %principal.party_id))]
pub async fn inbox(
    query: web::Query<InboxQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let agency = officer_agency(&principal)?;
    if let Some(s) = query.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::bad_request(
            "STATUS_INVALID",
            format!("unknown status '{s}'; one of {}", STATUSES.join(", ")),
        ));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "LIMIT_INVALID",
            "limit must be 1 to 500",
        ));
    }
    let client = state.pool.get().await?;
    let items = store::inbox(&client, agency, query.status.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "agency": agency, "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    action: String,
    reason: Option<String>,
    /// Conditions written into an issued licence.
    conditions: Option<String>,
    /// The officer's validity for an issued licence, in place of the one applied for.
    valid_from: Option<chrono::NaiveDate>,
    valid_until: Option<chrono::NaiveDate>,
}

fn reason_required(reason: Option<&str>, action: &str) -> Result<String, ApiError> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() <= 2000 => Ok(r.to_owned()),
        Some(_) => Err(ApiError::bad_request(
            "REASON_TOO_LONG",
            "reason: at most 2000 characters",
        )),
        None => Err(ApiError::bad_request(
            "REASON_REQUIRED",
            format!("'{action}' needs a reason"),
        )),
    }
}

#[tracing::instrument(name = "licence_application.decide", skip_all, fields(party = %principal.party_id, action))]
pub async fn decide(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let agency = officer_agency(&principal)?.to_owned();
    let id = json::parse_id(&path)?;
    let body: DecisionBody = json::read(&req, payload).await?;
    tracing::Span::current().record("action", body.action.as_str());
    let scope = AppScope::Agency(&agency);
    let mut client = state.pool.get().await?;
    let actor = principal.party_id.as_str();
    let summary = match body.action.as_str() {
        "review" => {
            let tx = client.transaction().await?;
            let s = store::transition(&tx, &scope, id, "under_review", actor, Some("under review"))
                .await?;
            tx.commit().await?;
            s
        }
        "request_supplement" => {
            let reason = reason_required(body.reason.as_deref(), &body.action)?;
            let tx = client.transaction().await?;
            let s = store::transition(
                &tx,
                &scope,
                id,
                "supplement_requested",
                actor,
                Some(&reason),
            )
            .await?;
            tx.commit().await?;
            s
        }
        "refuse" => {
            let reason = reason_required(body.reason.as_deref(), &body.action)?;
            let tx = client.transaction().await?;
            let s = store::transition(&tx, &scope, id, "refused", actor, Some(&reason)).await?;
            tx.commit().await?;
            s
        }
        "issue" => {
            return issue(
                &mut client,
                &state,
                &agency,
                actor,
                id,
                &IssueTerms {
                    conditions: body.conditions.as_deref(),
                    valid_from: body.valid_from,
                    valid_until: body.valid_until,
                },
            )
            .await
        }
        other => {
            return Err(ApiError::bad_request(
                "ACTION_INVALID",
                format!(
                    "unknown action '{other}'; one of review, request_supplement, issue, refuse"
                ),
            ))
        }
    };
    Ok(HttpResponse::Ok().json(summary))
}

/// What the officer decides beyond "issue".
struct IssueTerms<'a> {
    conditions: Option<&'a str>,
    valid_from: Option<chrono::NaiveDate>,
    valid_until: Option<chrono::NaiveDate>,
}

/// Writes the licence from the application, checks it against licence.xsd, signs it with the
/// agency's key and stores it, all in one transaction.
async fn issue(
    client: &mut deadpool_postgres::Object,
    state: &AppState,
    agency: &str,
    actor: &str,
    id: uuid::Uuid,
    terms: &IssueTerms<'_>,
) -> Result<HttpResponse, ApiError> {
    let conditions = terms.conditions;
    if conditions.is_some_and(|c| c.chars().count() > 2000) {
        return Err(ApiError::bad_request(
            "CONDITIONS_TOO_LONG",
            "conditions: at most 2000 characters",
        ));
    }
    let table = state.routing.current(&*client).await?;
    let agency_name = table
        .agency(agency)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| agency.to_owned());
    let tx = client.transaction().await?;
    let (summary, app) = store::application_for_issue(&tx, id, agency).await?;
    if summary.status != "under_review" {
        return Err(StoreError::Transition(format!(
            "transition {} -> issued is not allowed",
            summary.status
        ))
        .into());
    }
    if app.application_type == crate::licensing::certificates::APPLICATION_TYPE {
        return super::certificates::issue(tx, state, agency, &agency_name, actor, &app, id).await;
    }
    let today = state.today();
    let (valid_from, valid_to) =
        crate::licensing::issue_validity(&app, terms.valid_from, terms.valid_until, today)
            .map_err(|e| match e {
                crate::licensing::ValidityError::Ended { .. } => {
                    ApiError::conflict("LICENCE_VALIDITY_ENDED", e.to_string())
                }
                crate::licensing::ValidityError::Invalid(_) => {
                    ApiError::bad_request("VALIDITY_INVALID", e.to_string())
                }
            })?;
    let app = documents::Application {
        valid_from,
        valid_to,
        ..app
    };
    let number = store::next_licence_number(&tx, agency).await?;
    let xml_bytes = documents::write_licence(
        &app,
        &Issue {
            number: &number,
            agency,
            agency_name: &agency_name,
            issue_date: today,
            conditions,
        },
    );
    let tree = schema_outcome(&xml_bytes, state, DocKind::Licence).map_err(|e| {
        ApiError::Internal(format!(
            "generated licence {number} is not schema-valid: {e:?}"
        ))
    })?;
    let licence = documents::read_licence(&tree).map_err(|v| {
        ApiError::Internal(format!("generated licence {number} breaks a rule: {v:?}"))
    })?;
    let key = keys::agency_key(&tx, agency, &state.settings.country).await?;
    let signature = signing::sign_detached(&key.private_key_pem, &key.certificate_pem, &xml_bytes)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let summary = store::issue_licence(
        &tx,
        &NewLicence {
            licence: &licence,
            body: &xml_bytes,
            signature: &signature,
            actor,
            application_id: Some(id),
        },
        agency,
    )
    .await?;
    tx.commit().await?;
    let location = format!("/api/v1/licences/{}", number.replace('/', "%2F"));
    Ok(HttpResponse::Ok()
        .insert_header((header::LOCATION, location))
        .json(serde_json::json!({
            "application": summary,
            "licence_number": number,
        })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplementBody {
    note: String,
}

#[tracing::instrument(name = "licence_application.supplement", skip_all, fields(party = %principal.party_id))]
pub async fn supplement(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Enterprise])?;
    let id = json::parse_id(&path)?;
    let body: SupplementBody = json::read(&req, payload).await?;
    let note = body.note.trim();
    if note.is_empty() || note.chars().count() > 4000 {
        return Err(ApiError::bad_request(
            "NOTE_INVALID",
            "note: 1 to 4000 characters",
        ));
    }
    let mut client = state.pool.get().await?;
    let s = store::supplement(&mut client, id, &principal.party_id, note).await?;
    Ok(HttpResponse::Ok().json(s))
}

#[tracing::instrument(name = "licence_application.withdraw", skip_all, fields(party = %principal.party_id))]
pub async fn withdraw(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Enterprise])?;
    let id = json::parse_id(&path)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let s = store::transition(
        &tx,
        &AppScope::Applicant(&principal.party_id),
        id,
        "withdrawn",
        &principal.party_id,
        Some("withdrawn by the applicant"),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(s))
}
