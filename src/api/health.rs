//! `GET /health`: liveness plus a round trip to the database. Unauthenticated, reveals nothing.

use std::time::Instant;

use actix_web::{web, HttpResponse};

use super::AppState;

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
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({
            "status": "ok",
            "country": state.settings.country,
            "database": {"status": "up", "latency_ms": latency_ms},
        })),
        Err(cause) => {
            tracing::warn!(%cause, "health check: database down");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({
                "status": "unavailable",
                "database": {"status": "down"},
            }))
        }
    }
}
