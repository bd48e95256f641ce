//! Operations endpoints: health probes and Prometheus metrics.
//!
//! - `GET /health/live`: the process is up and serving HTTP. Touches no dependency, so an
//!   orchestrator restarts the process only when it is itself stuck, never because the
//!   database is down (a restart would not bring it back).
//! - `GET /health/ready`: the window can do its work: the database answers, the XML schemas
//!   are compiled, and the exchange keys are loaded when the exchange is configured. Otherwise
//!   `503` problem+json listing what is not ready, so a load balancer sends traffic elsewhere.
//! - `GET /health`: the same as `/health/ready` (what it always answered).
//!
//! The probes are unauthenticated: load balancers and orchestrators call them without
//! credentials, and they reveal nothing beyond up or down (no versions, no causes; the cause
//! goes to the log).
//!
//! - `GET /metrics`: Prometheus text format, for an admin bearer token or, without
//!   credentials, a client address in `metrics.allow_from`.

use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::AppState;
use crate::domain::party::Role;
use crate::error::ApiError;

/// Longest a readiness probe waits for the database.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /health/live`.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    description = "Liveness: answers whenever the process serves HTTP; consults no dependency.",
    security(()),
    responses((status = 200, description = "The process is up", body = Object,
               example = json!({"status": "ok"})))
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"status": "ok"}))
}

/// `GET /health`: readiness, as `/health/ready`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    description = "Readiness, as `/health/ready` (kept for existing monitors). Problem codes: \
        `NOT_READY`.",
    security(()),
    responses(
        (status = 200, description = "Ready: each check with its status", body = Object),
        (status = 503, description = "Not ready: `not_ready` lists what failed",
         content_type = "application/problem+json", body = crate::error::Problem),
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    ready(state).await
}

/// `GET /health/ready`.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    description = "Readiness: the database answers (within 3 s), the schemas are compiled, the \
        exchange keys are loaded when the exchange is configured. Problem codes: `NOT_READY`.",
    security(()),
    responses(
        (status = 200, description = "Ready: each check with its status", body = Object),
        (status = 503, description = "Not ready: `not_ready` lists what failed",
         content_type = "application/problem+json", body = crate::error::Problem),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = Map::new();
    let mut not_ready = Vec::new();

    let started = Instant::now();
    let db = match tokio::time::timeout(DB_TIMEOUT, database(&state)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {DB_TIMEOUT:?}")),
    };
    match db {
        Ok(()) => {
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            checks.insert(
                "database".into(),
                json!({"status": "up", "latency_ms": latency_ms}),
            );
        }
        Err(cause) => {
            tracing::warn!(%cause, "readiness: database down");
            checks.insert("database".into(), json!({"status": "down"}));
            not_ready.push("database");
        }
    }

    match crate::xml::schema::preload() {
        Ok(()) => {
            checks.insert("schemas".into(), json!({"status": "up"}));
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: schemas not compiled");
            checks.insert("schemas".into(), json!({"status": "down"}));
            not_ready.push("schemas");
        }
    }

    let ex = &state.settings.exchange;
    let configured = ex.partners_file.is_some()
        || ex.tls_listen.is_some()
        || state
            .settings
            .exchange_keys_dir()
            .join(crate::exchange::keys::SIGNING_KEY)
            .exists();
    let exchange = match (configured, state.exchange.is_some()) {
        (false, _) => "not_configured",
        (true, true) => "up",
        (true, false) => {
            not_ready.push("exchange");
            "down"
        }
    };
    checks.insert("exchange".into(), json!({ "status": exchange }));

    if not_ready.is_empty() {
        let mut body = Map::new();
        body.insert("status".into(), json!("ok"));
        body.insert("country".into(), json!(state.settings.country));
        body.insert("checks".into(), Value::Object(checks.clone()));
        // What `/health` answered before the checks had a member of their own.
        if let Some(db) = checks.get("database") {
            body.insert("database".into(), db.clone());
        }
        return HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Value::Object(body));
    }
    // A problem document like every other (`ApiError`'s shape), with what is not ready.
    let problem = json!({
        "type": "urn:nsw:problem:not-ready",
        "title": "Not ready",
        "status": 503,
        "code": "NOT_READY",
        "detail": format!("not ready: {}", not_ready.join(", ")),
        "not_ready": not_ready,
        "checks": checks,
        "database": checks.get("database"),
    });
    HttpResponse::ServiceUnavailable()
        .insert_header((header::CONTENT_TYPE, "application/problem+json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::RETRY_AFTER, "5"))
        .body(problem.to_string())
}

async fn database(state: &AppState) -> Result<(), String> {
    let client = state.pool.get().await.map_err(|e| e.to_string())?;
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `GET /metrics`: an address in `metrics.allow_from` reads without credentials; anyone else
/// needs an admin bearer token (401 without or with an unknown token, 403 for another role).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    description = "Prometheus text format. Readable without credentials from an address in \
        `metrics.allow_from`, else with an admin bearer token. Problem codes: `UNAUTHORIZED`, \
        `ROLE_FORBIDDEN`.",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain", body = String),
        (status = 401, description = "No or an unknown token, from an address not allowed",
         content_type = "application/problem+json", body = crate::error::Problem),
        (status = 403, description = "A token of another role than admin",
         content_type = "application/problem+json", body = crate::error::Problem),
    )
)]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trusted = match (
        crate::metrics::parse_allow_list(&state.settings.metrics.allow_from),
        req.peer_addr(),
    ) {
        (Ok(list), Some(peer)) => crate::metrics::allowed(&list, peer.ip()),
        _ => false,
    };
    if !trusted {
        let principal = super::auth::authenticate(&state, req.headers()).await?;
        super::auth::require(&principal, &[Role::Admin])?;
    }
    let body = crate::metrics::render(&state).await;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
