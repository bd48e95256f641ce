//! HTTP routes. Handlers parse requests, call validation and the store, and shape responses;
//! they hold no SQL.

pub mod auth;
pub mod body;
pub mod declarations;
pub mod events;
pub mod health;
pub mod webhooks;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use deadpool_postgres::Pool;
use tracing_actix_web::RequestId;

use crate::config::Settings;
use crate::error::ApiError;
use crate::validation::Validator;

pub struct AppState {
    pub pool: Pool,
    pub validator: Validator,
    pub settings: Settings,
    pub tokens: auth::TokenCache,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health)).service(
        web::scope("/api/v1")
            .route("/declarations", web::post().to(declarations::submit))
            .route("/declarations", web::get().to(declarations::list))
            .route("/declarations/{id}", web::get().to(declarations::get))
            .route(
                "/declarations/{id}/document",
                web::get().to(declarations::document),
            )
            .route("/events", web::get().to(events::feed))
            .route("/webhooks", web::post().to(webhooks::create))
            .route("/webhooks", web::get().to(webhooks::list))
            .route("/webhooks/{id}", web::delete().to(webhooks::delete))
            .route(
                "/webhooks/{id}/deliveries",
                web::get().to(webhooks::deliveries),
            )
            .route("/webhooks/{id}/retry", web::post().to(webhooks::retry_now)),
    );
}

/// Unknown paths and methods answer in problem+json like everything else.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Echoes the request id (also in every log line of the request) as `X-Request-Id`.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().map(|r| r.to_string());
    let mut res = next.call(req).await?;
    if let Some(id) = id.and_then(|i| HeaderValue::from_str(&i).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(res)
}
