//! `/api/v1/stats`: per agency and procedure volumes, processing times and on-schedule rates.

use actix_web::{web, HttpResponse};

use super::AppState;
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::store::stats;

#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "stats",
    description = "Volumes, processing times (working hours) and on-schedule rates per agency and procedure. Roles: admin, customs, ministry (own agency).",
    responses(
        (status = 200, description = "The figures", body = crate::store::stats::Stats),
        (status = 403, description = "`ROLE_FORBIDDEN`, `AGENCY_UNSET`"),
    )
)]
#[tracing::instrument(name = "stats.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // An agency's officers see their own agency's figures.
    let agency = match principal.role {
        Role::Ministry => Some(principal.agency.as_deref().ok_or_else(|| {
            ApiError::forbidden("AGENCY_UNSET", "this officer is not bound to an agency")
        })?),
        _ => None,
    };
    let client = state.pool.get().await?;
    let s = stats::compute(&client, &state.calendar, agency).await?;
    Ok(HttpResponse::Ok().json(s))
}
