//! `/api/v1/admin/routing-rules`: the routing table, listed and replaced without a restart.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{json, AppState};
use crate::domain::party::Principal;
use crate::error::ApiError;
use crate::routing::{RoutingError, TableSpec};
use crate::store::routing as store;
use crate::xml::Violation;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// An earlier version of the table (default: the current one).
    version: Option<i32>,
}

/// A version of the routing table and the list of all versions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoutingTableVersion {
    version: i32,
    agencies: Vec<crate::routing::Agency>,
    rules: Vec<crate::routing::Rule>,
    /// Every version, newest first.
    versions: Vec<store::VersionInfo>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/routing-rules",
    tag = "routing",
    description = "The routing table (current, or `version`) and its versions. Role: admin.",
    params(GetQuery),
    responses(
        (status = 200, description = "The table", body = RoutingTableVersion),
        (status = 400, description = "`QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`: no such version"),
    )
)]
#[tracing::instrument(name = "routing.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    query: web::Query<GetQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let table = match query.version {
        Some(v) => store::load(&client, v).await?.ok_or(ApiError::NotFound)?,
        None => (*state.routing.current(&client).await?).clone(),
    };
    let versions = store::versions(&client).await?;
    Ok(HttpResponse::Ok().json(RoutingTableVersion {
        version: table.version,
        agencies: table.spec.agencies,
        rules: table.spec.rules,
        versions,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Why the table changed, kept with the version.
    note: Option<String>,
}

/// The version a replacement installed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoutingReplaced {
    version: i32,
    /// Number of rules.
    rules: usize,
    /// Number of agencies.
    agencies: usize,
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/routing-rules",
    tag = "routing",
    description = "Replaces the routing table (a new version; applications already received keep theirs). Role: admin. Format in docs/routing.md.",
    params(PutQuery),
    request_body(content = crate::routing::TableSpec, content_type = "application/json"),
    responses(
        (status = 200, description = "Installed", body = RoutingReplaced),
        (status = 400, description = "`QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 409, description = "`CONFLICT`"),
        (status = 422, description = "`DOCUMENT_INVALID`: one `ROUTING_RULE_INVALID` error per problem, `path` `/rules/<id>`"),
    )
)]
#[tracing::instrument(name = "routing.replace", skip_all, fields(party = %principal.party_id, version))]
pub async fn replace(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<PutQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let note = json::query_text("note", query.note.as_deref())?;
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
    let version = store::replace(&mut client, &spec, &principal.party_id, note).await?;
    tracing::Span::current().record("version", version);
    Ok(HttpResponse::Ok().json(RoutingReplaced {
        version,
        rules: spec.rules.len(),
        agencies: spec.agencies.len(),
    }))
}
