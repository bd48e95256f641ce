//! `/api/v1/licence-applications` and `/api/v1/inbox`: enterprises apply, supplement and
//! withdraw; officers of the agency the application was routed to review and decide.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{auth, body, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::licensing::{self, Action, Decided, Terms};
use crate::store::licensing::{self as store, AppScope};

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
    let receipt =
        licensing::submit(&licensing_context(&state), &principal.party_id, &bytes).await?;
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

/// The licensing workflows' view of the window.
pub fn licensing_context(state: &AppState) -> licensing::Context<'_> {
    licensing::Context {
        pool: &state.pool,
        routing: &state.routing,
        settings: &state.settings,
        limits: &state.validator.limits,
        today: state.today(),
        partners: state.exchange.as_deref().map(|ex| &ex.partners),
        calendar: &state.calendar,
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
    let action = Action::parse(&body.action).ok_or_else(|| {
        ApiError::bad_request(
            "ACTION_INVALID",
            format!(
                "unknown action '{}'; one of review, request_supplement, issue, refuse",
                body.action
            ),
        )
    })?;
    let decided = licensing::decide(
        &licensing_context(&state),
        &agency,
        &principal.party_id,
        id,
        action,
        &Terms {
            reason: body.reason.as_deref(),
            conditions: body.conditions.as_deref(),
            valid_from: body.valid_from,
            valid_until: body.valid_until,
        },
    )
    .await?;
    let location = match &decided {
        Decided::Licence { licence_number, .. } => Some(format!(
            "/api/v1/licences/{}",
            licence_number.replace('/', "%2F")
        )),
        Decided::Certificate {
            certificate_reference,
            ..
        } => Some(format!(
            "/api/v1/certificates-of-origin/{certificate_reference}"
        )),
        Decided::Moved(_) => None,
    };
    let mut resp = HttpResponse::Ok();
    if let Some(location) = location {
        resp.insert_header((header::LOCATION, location));
    }
    Ok(resp.json(decided))
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
    let s = licensing::supplement(&state.pool, id, &principal.party_id, &body.note).await?;
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
    let s = licensing::withdraw(&state.pool, id, &principal.party_id).await?;
    Ok(HttpResponse::Ok().json(s))
}
