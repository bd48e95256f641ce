//! Customs officers' inbox and decisions on declarations, and the submitter's withdrawal.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{auth, json, AppState};
use crate::customs::{self, Action};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::store::customs as store;

#[derive(Deserialize)]
pub struct InboxQuery {
    status: Option<String>,
    limit: Option<i64>,
}

#[tracing::instrument(name = "customs.inbox", skip_all, fields(party = %principal.party_id))]
pub async fn inbox(
    query: web::Query<InboxQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Customs])?;
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    action: String,
    reason: Option<String>,
}

#[tracing::instrument(name = "customs.decide", skip_all, fields(party = %principal.party_id, action))]
pub async fn decide(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Customs])?;
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

#[tracing::instrument(name = "declaration.withdraw", skip_all, fields(party = %principal.party_id))]
pub async fn withdraw(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Enterprise])?;
    let id = json::parse_id(&path)?;
    let decided = customs::withdraw(&state.pool, id, &principal.party_id).await?;
    Ok(HttpResponse::Ok().json(decided))
}
