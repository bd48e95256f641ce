//! Customs officers' inbox and decisions on declarations, and the submitter's withdrawal.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{json, AppState};
use crate::customs::{self, Action};
use crate::domain::party::Principal;
use crate::error::ApiError;
use crate::store::customs as store;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Only declarations in this status (default: accepted and under inspection).
    #[param(value_type = Option<crate::domain::declaration_state::Status>)]
    status: Option<String>,
    /// At most this many, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Declarations awaiting customs, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomsInbox {
    items: Vec<store::InboxEntry>,
}

#[utoipa::path(
    get,
    path = "/api/v1/customs/inbox",
    tag = "customs",
    description = "Declarations awaiting customs (accepted and under inspection, or those in `status`), oldest first. Role: customs.",
    params(InboxQuery),
    responses(
        (status = 200, description = "The inbox", body = CustomsInbox),
        (status = 400, description = "`STATUS_INVALID`, `LIMIT_INVALID`, `QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
    )
)]
#[tracing::instrument(name = "customs.inbox", skip_all, fields(party = %principal.party_id))]
pub async fn inbox(
    query: web::Query<InboxQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "LIMIT_INVALID",
            "limit must be 1 to 500",
        ));
    }
    let client = state.pool.get().await?;
    let items = store::inbox(&client, query.status.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(CustomsInbox { items }))
}

/// Customs' decision on a declaration.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeclarationDecisionBody, example = json!({"action": "reject", "reason": "HS code does not match the goods inspected"}))]
pub struct DecisionBody {
    /// `clear`, `reject` or `hold`.
    #[schema(pattern = "^(clear|reject|hold)$")]
    action: String,
    /// Required to reject; at most 2000 characters.
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/declarations/{id}/decision",
    tag = "customs",
    description = "Customs clears, holds (inspection) or rejects a declaration; clearing an export to an ASEAN partner also sends its ACDD. Every decision takes effect once. Role: customs.",
    params(("id" = String, Path, description = "The declaration's id")),
    request_body(content = DecisionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The declaration after the decision (and the ACDD it sent)", body = crate::customs::Decision),
        (status = 400, description = "`ACTION_INVALID`, `REASON_REQUIRED`, `REASON_TOO_LONG`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`TRANSITION_FORBIDDEN` (also the same decision again), `CONFLICT`, `NOT_AN_EXPORT`, `NOT_TO_ASEAN`, `DECLARATION_STATE`, `DECLARATION_UNREADABLE`, `NO_PARTNER`"),
    )
)]
#[tracing::instrument(name = "customs.decide", skip_all, fields(party = %principal.party_id, action))]
pub async fn decide(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let body: DecisionBody = json::read(&req, payload).await?;
    tracing::Span::current().record("action", body.action.as_str());
    let action = Action::parse(&body.action).ok_or_else(|| {
        ApiError::bad_request(
            "ACTION_INVALID",
            format!(
                "unknown action '{}'; one of clear, reject, hold",
                body.action
            ),
        )
    })?;
    let decision = customs::decide(
        &state.pool,
        state.exchange.as_deref(),
        &state.settings,
        id,
        &principal.party_id,
        action,
        body.reason.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(decision))
}

#[utoipa::path(
    post,
    path = "/api/v1/declarations/{id}/withdrawal",
    tag = "declarations",
    description = "The submitter, declarant or trader withdraws a declaration customs has not decided. Role: enterprise.",
    params(("id" = String, Path, description = "The declaration's id")),
    responses(
        (status = 200, description = "The declaration, `withdrawn`", body = crate::store::customs::Decided),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`TRANSITION_FORBIDDEN`, `CONFLICT`"),
    )
)]
#[tracing::instrument(name = "declaration.withdraw", skip_all, fields(party = %principal.party_id))]
pub async fn withdraw(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let decided = customs::withdraw(&state.pool, id, &principal.party_id).await?;
    Ok(HttpResponse::Ok().json(decided))
}
