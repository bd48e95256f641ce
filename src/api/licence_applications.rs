//! `/api/v1/licence-applications` and `/api/v1/inbox`: enterprises apply, supplement and
//! withdraw; officers of the agency the application was routed to review and decide.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

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

#[utoipa::path(
    post,
    path = "/api/v1/licence-applications",
    tag = "licensing",
    description = "An enterprise applies for a licence (`urn:nsw:licence-application:1`); the routing table names the agency and procedure, its fee and time limit. Role: enterprise (the applicant).",
    request_body(
        content = String,
        content_type = "application/xml",
        description = "The licence application (also `text/xml`, `application/*+xml`)",
        example = json!(include_str!("../../fixtures/valid/licence-application/mard-plant-quarantine-maize.xml")),
    ),
    responses(
        (status = 201, description = "Received; `Location` names the application", body = crate::store::licensing::ApplicationReceipt,
            headers(("Location" = String, description = "`/api/v1/licence-applications/{id}`"))),
        (status = 400, description = "`XML_EMPTY`, `XML_ENCODING`, `XML_DOCTYPE`, `XML_TOO_DEEP`, `XML_TOO_MANY_ELEMENTS`, `XML_TOO_MANY_ATTRIBUTES`, `XML_TOO_MANY_NAMESPACES`, `XML_TOO_MANY_NAMES`, `XML_NAME_TOO_LONG`, `XML_TOO_COSTLY`, `XML_MALFORMED`"),
        (status = 403, description = "`ROLE_FORBIDDEN`, `PARTY_MISMATCH`"),
        (status = 409, description = "`CONFLICT`"),
        (status = 422, description = "`DOCUMENT_INVALID`: schema and rule errors, `ROUTING_NO_RULE`, `ROUTING_SPLIT` in `errors`"),
    )
)]
#[tracing::instrument(name = "licence_application.submit", skip_all, fields(party = %principal.party_id, reference))]
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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

#[utoipa::path(
    get,
    path = "/api/v1/licence-applications/{id}",
    tag = "licensing",
    description = "An application with its document as read, supplements and history. The applicant, officers of its agency, admin; others get 404.",
    params(("id" = String, Path, description = "The application's id")),
    responses(
        (status = 200, description = "The application", body = crate::store::licensing::ApplicationDetail),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Only applications in this status (default: those awaiting a decision).
    #[param(value_type = Option<crate::domain::application_state::Status>)]
    status: Option<String>,
    /// At most this many, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// An agency's inbox, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgencyInbox {
    agency: String,
    items: Vec<store::ApplicationSummary>,
}

const STATUSES: [&str; 10] = [
    "submitted",
    "awaiting_payment",
    "received",
    "supplement_requested",
    "supplemented",
    "under_review",
    "issued",
    "refused",
    "withdrawn",
    "cancelled",
];

#[utoipa::path(
    get,
    path = "/api/v1/inbox",
    tag = "licensing",
    description = "The officer's agency's applications awaiting a decision (received, supplement_requested, supplemented, under_review), oldest first, or those in `status`. Role: ministry.",
    params(InboxQuery),
    responses(
        (status = 200, description = "The inbox", body = AgencyInbox),
        (status = 400, description = "`STATUS_INVALID`, `LIMIT_INVALID`, `QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`, `AGENCY_UNSET`"),
    )
)]
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
    Ok(HttpResponse::Ok().json(AgencyInbox {
        agency: agency.to_owned(),
        items,
    }))
}

/// An officer's decision on an application.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApplicationDecisionBody, example = json!({"action": "issue", "conditions": "Fumigate before loading"}))]
pub struct DecisionBody {
    /// `review`, `request_supplement`, `issue` or `refuse`.
    #[schema(pattern = "^(review|request_supplement|issue|refuse)$")]
    action: String,
    /// Required for `request_supplement` and `refuse`; at most 2000 characters.
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
        exchange: state.exchange.as_deref(),
        calendar: &state.calendar,
        payments: &state.payments,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/licence-applications/{id}/decision",
    tag = "licensing",
    description = "An officer of the application's agency reviews, requests a supplement, issues (a licence, or a certificate of origin and its e-Form D) or refuses. Every decision takes effect once. Role: ministry.",
    params(("id" = String, Path, description = "The application's id")),
    request_body(content = DecisionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The application after the decision; for `issue`, the licence number or certificate reference too, and `Location` of it", body = crate::licensing::Decided,
            headers(("Location" = String, description = "The issued licence or certificate (on `issue`)"))),
        (status = 400, description = "`ACTION_INVALID`, `REASON_REQUIRED`, `REASON_TOO_LONG`, `CONDITIONS_TOO_LONG`, `VALIDITY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`, `AGENCY_UNSET`, `AGENCY_MISMATCH`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`TRANSITION_FORBIDDEN` (also the same decision again), `CONFLICT`, `LICENCE_VALIDITY_ENDED`, `NO_PARTNER`, `EXCHANGE_NOT_CONFIGURED`"),
        (status = 422, description = "`DOCUMENT_INVALID`"),
    )
)]
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

/// The applicant's answer to a supplement request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "Phytosanitary certificate no. 2026/1187 attached to the dossier"}))]
pub struct SupplementBody {
    /// 1 to 4000 characters.
    note: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/licence-applications/{id}/supplement",
    tag = "licensing",
    description = "The applicant supplements an application after the agency requested it. Role: enterprise (the applicant).",
    params(("id" = String, Path, description = "The application's id")),
    request_body(content = SupplementBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The application, `supplemented`", body = crate::store::licensing::ApplicationSummary),
        (status = 400, description = "`NOTE_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`TRANSITION_FORBIDDEN` (no supplement requested, or already supplemented), `CONFLICT`"),
    )
)]
#[tracing::instrument(name = "licence_application.supplement", skip_all, fields(party = %principal.party_id))]
pub async fn supplement(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let body: SupplementBody = json::read(&req, payload).await?;
    let s = licensing::supplement(&state.pool, id, &principal.party_id, &body.note).await?;
    Ok(HttpResponse::Ok().json(s))
}

#[utoipa::path(
    post,
    path = "/api/v1/licence-applications/{id}/withdrawal",
    tag = "licensing",
    description = "The applicant withdraws an application not yet decided. Role: enterprise (the applicant).",
    params(("id" = String, Path, description = "The application's id")),
    responses(
        (status = 200, description = "The application, `withdrawn`", body = crate::store::licensing::ApplicationSummary),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`TRANSITION_FORBIDDEN`, `CONFLICT`"),
    )
)]
#[tracing::instrument(name = "licence_application.withdraw", skip_all, fields(party = %principal.party_id))]
pub async fn withdraw(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let s = licensing::withdraw(&licensing_context(&state), id, &principal.party_id).await?;
    Ok(HttpResponse::Ok().json(s))
}
