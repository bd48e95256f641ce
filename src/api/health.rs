//! `GET /health`: liveness plus a round trip to the database. Unauthenticated, reveals nothing.

use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AppState;

/// The probe's answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "ok", "country": "VN",
                          "database": {"status": "up", "latency_ms": 0.4}}))]
pub struct Health {
    /// `ok`, or `unavailable` when the database cannot be reached.
    pub status: &'static str,
    /// The window's country (absent when unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub database: DatabaseHealth,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatabaseHealth {
    /// `up` or `down`.
    pub status: &'static str,
    /// One `SELECT 1` round trip, in milliseconds (absent when down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    description = "Unauthenticated probe: the service answers and its database does one round trip.",
    security(()),
    responses(
        (status = 200, description = "The service and its database are up", body = Health),
        (status = 503, description = "The database cannot be reached", body = Health),
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let db = match state.pool.get().await {
        Ok(client) => client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match db {
        Ok(()) => HttpResponse::Ok().json(Health {
            status: "ok",
            country: Some(state.settings.country.clone()),
            database: DatabaseHealth {
                status: "up",
                latency_ms: Some(latency_ms),
            },
        }),
        Err(cause) => {
            tracing::warn!(%cause, "health check: database down");
            HttpResponse::ServiceUnavailable().json(Health {
                status: "unavailable",
                country: None,
                database: DatabaseHealth {
                    status: "down",
                    latency_ms: None,
                },
            })
        }
    }
}
