//! `/api/v1/admin/routing-rules`: the routing table, listed and replaced without a restart.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{auth, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::routing::{RoutingError, TableSpec};
use crate::store::routing as store;
use crate::xml::Violation;

#[derive(Deserialize)]
pub struct GetQuery {
    version: Option<i32>,
}

#[tracing::instrument(name = "routing.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    query: web::Query<GetQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Admin])?;
    let client = state.pool.get().await?;
    let table = match query.version {
        Some(v) => store::load(&client, v).await?.ok_or(ApiError::NotFound)?,
        None => (*state.routing.current(&client).await?).clone(),
    };
    let versions = store::versions(&client).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "version": table.version,
        "agencies": table.spec.agencies,
        "rules": table.spec.rules,
        "versions": versions,
    })))
}

#[derive(Deserialize)]
pub struct PutQuery {
    note: Option<String>,
}

#[tracing::instrument(name = "routing.replace", skip_all, fields(party = %principal.party_id, version))]
pub async fn replace(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<PutQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::require(&principal, &[Role::Admin])?;
    let spec: TableSpec = json::read(&req, payload).await?;
    if let Err(e) = spec.validate() {
        return Err(match e {
            RoutingError::Invalid(errors) => ApiError::Invalid {
                violations: errors
                    .into_iter()
                    .map(|r| Violation {
                        line: 0,
                        column: 0,
                        path: r
                            .rule
                            .map(|id| format!("/rules/{id}"))
                            .unwrap_or_else(|| "/".into()),
                        code: "ROUTING_RULE_INVALID",
                        message: r.message,
                    })
                    .collect(),
            },
            RoutingError::Syntax(m) => ApiError::bad_request("BODY_INVALID", m),
        });
    }
    let mut client = state.pool.get().await?;
    let version = store::replace(
        &mut client,
        &spec,
        &principal.party_id,
        query.note.as_deref(),
    )
    .await?;
    tracing::Span::current().record("version", version);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "version": version,
        "rules": spec.rules.len(),
        "agencies": spec.agencies.len(),
    })))
}
