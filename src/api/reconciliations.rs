//! `/api/v1/admin/payments/reconciliations`: reconciliation of the payment platform's daily
//! settlement file with the window's records (docs/payments.md, "Reconciliation") — run one
//! for a day, list the recent runs, read one.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{json, AppState};
use crate::domain::party::Principal;
use crate::error::ApiError;
use crate::payments::reconcile::{Counts, Outcome, Run, Source};
use crate::payments::reconciliation::{Input, Reconciler};
use crate::store::reconciliations as store;

/// What to reconcile.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The local day (the window's time zone) whose settlement file is compared; today at the
    /// latest (today's file holds the day so far).
    #[schema(value_type = String, format = Date, example = "2026-11-30")]
    date: NaiveDate,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/payments/reconciliations",
    tag = "payments",
    description = "Reconciles one day: fetches the platform's settlement file for `date`, \
        verifies its signature with the pinned platform certificate, compares it with the \
        payments and refunds the window recorded, and records the run (kept for good, audited). \
        A file that cannot be fetched, does not verify or does not parse is not compared: the \
        run is recorded with outcome `failed` and its reason, and answered all the same. \
        Role: admin.",
    request_body(content = RunRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The run, as recorded (`outcome`: matched, mismatches or failed)", body = Run,
            headers(("Location" = String, description = "The run's address"))),
        (status = 400, description = "`RECONCILIATION_DATE_INVALID`: a day after today"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
    )
)]
#[tracing::instrument(name = "reconciliation.run", skip_all, fields(party = %principal.party_id))]
pub async fn run(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: RunRequest = json::read(&req, payload).await?;
    let run = run_for(&state, body.date, &principal.party_id).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/admin/payments/reconciliations/{}", run.id),
        ))
        .json(run))
}

/// Reconciles `date` from the platform as `actor` (the API's and the console's way in).
/// Errors: `RECONCILIATION_DATE_INVALID` for a day after the window's today.
pub async fn run_for(state: &AppState, date: NaiveDate, actor: &str) -> Result<Run, ApiError> {
    let reconciler = Reconciler::from_settings(state.pool.clone(), &state.settings)
        .map_err(ApiError::Internal)?;
    reconciler
        .check_date(date)
        .map_err(|m| ApiError::bad_request("RECONCILIATION_DATE_INVALID", m))?;
    Ok(reconciler.run(date, Input::Platform, actor).await?)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many, 1 to 200 (default 30).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A run without its mismatches (read them with the run's own address).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    id: Uuid,
    #[schema(value_type = String, format = Date, example = "2026-11-30")]
    settlement_date: NaiveDate,
    ran_at: DateTime<Utc>,
    actor: String,
    source: Source,
    outcome: Outcome,
    failure: Option<String>,
    counts: Counts,
    mismatch_count: usize,
    file_sha256: Option<String>,
}

impl From<Run> for RunSummary {
    fn from(r: Run) -> Self {
        RunSummary {
            id: r.id,
            settlement_date: r.settlement_date,
            ran_at: r.ran_at,
            actor: r.actor,
            source: r.source,
            outcome: r.outcome,
            failure: r.failure,
            counts: r.counts,
            mismatch_count: r.mismatches.len(),
            file_sha256: r.file_sha256,
        }
    }
}

/// The latest runs, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunList {
    items: Vec<RunSummary>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/payments/reconciliations",
    tag = "payments",
    description = "The latest reconciliation runs, newest first, whoever ran them (the daily \
        job, `nsw payments reconcile`, an administrator). Role: admin.",
    params(ListQuery),
    responses(
        (status = 200, description = "The runs", body = RunList),
        (status = 400, description = "`LIMIT_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
    )
)]
#[tracing::instrument(name = "reconciliation.list", skip_all, fields(party = %principal.party_id))]
pub async fn list(
    query: web::Query<ListQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(30);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(
            "LIMIT_INVALID",
            "limit must be 1 to 200",
        ));
    }
    let client = state.pool.get().await?;
    let mut runs = store::recent(&client, 0, limit).await?;
    runs.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(HttpResponse::Ok().json(RunList {
        items: runs.into_iter().map(RunSummary::from).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/payments/reconciliations/{id}",
    tag = "payments",
    description = "One reconciliation run with every mismatch. Role: admin.",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = Run),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "reconciliation.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let client = state.pool.get().await?;
    let run = store::get(&client, id).await?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(run))
}
