//! Customs officers' inbox and decisions on declarations, and the submitter's withdrawal.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{auth, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::exchange::acdd;
use crate::store::customs::{self as store, Action};

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
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if action == Action::Reject && reason.is_none() {
        return Err(ApiError::bad_request(
            "REASON_REQUIRED",
            "'reject' needs a reason",
        ));
    }
    if reason.is_some_and(|r| r.chars().count() > 2000) {
        return Err(ApiError::bad_request(
            "REASON_TOO_LONG",
            "reason: at most 2000 characters",
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let decided = store::decide(&tx, id, None, &principal.party_id, action, reason).await?;
    // Clearing an export to a connected partner's country sends it its ACDD: written to the
    // outbox in this same transaction, so the clearance and the message stand or fall together.
    let acdd = match state.exchange.as_deref() {
        Some(ex)
            if decided.status == "cleared"
                && decided.direction == "EX"
                && ex.takes_acdd_for(&decided.destination_country, &decided.export_country) =>
        {
            acdd::enqueue_for_declaration(&tx, ex, &state.settings, id, &principal.party_id).await?
        }
        _ => None,
    };
    tx.commit().await?;
    let mut body = serde_json::to_value(&decided).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let (Some(q), Some(obj)) = (acdd, body.as_object_mut()) {
        obj.insert(
            "acdd".into(),
            serde_json::to_value(q).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
    }
    Ok(HttpResponse::Ok().json(body))
}

#[tracing::instrument(name = "declaration.withdraw", skip_all, fields(party = %principal.party_id))]
pub async fn withdraw(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Enterprise])?;
    let id = json::parse_id(&path)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let decided = store::decide(
        &tx,
        id,
        Some(&principal.party_id),
        &principal.party_id,
        Action::Withdraw,
        Some("withdrawn by the declarant"),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(decided))
}
