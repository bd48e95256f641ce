//! HTTP routes. Handlers parse requests, call validation and the store, and shape responses;
//! they hold no SQL.

pub mod auth;
pub mod body;
pub mod declarations;
pub mod exchange;
pub mod health;

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
    /// Partner-window exchange; `None` when this window has no keys.
    pub exchange: Option<std::sync::Arc<crate::exchange::Exchange>>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/exchange/v1/messages", web::post().to(exchange::receive))
        .service(
            web::scope("/api/v1")
                .route("/admin/exchange/send", web::post().to(exchange::send_acdd))
                .route(
                    "/admin/exchange/form-d",
                    web::post().to(exchange::send_form_d),
                )
                .route(
                    "/admin/exchange/outbox",
                    web::get().to(exchange::outbox_list),
                )
                .route(
                    "/admin/exchange/outbox/{id}",
                    web::get().to(exchange::outbox_get),
                )
                .route(
                    "/admin/exchange/outbox/{id}/requeue",
                    web::post().to(exchange::requeue),
                )
                .route(
                    "/admin/exchange/outbox/{id}/{part}",
                    web::get().to(exchange::outbox_raw),
                )
                .route("/admin/exchange/fault", web::put().to(exchange::set_fault))
                .route("/exchange/inbox", web::get().to(exchange::inbox))
                .route("/exchange/inbox/{id}", web::get().to(exchange::inbox_get))
                .route(
                    "/exchange/inbox/{id}/{part}",
                    web::get().to(exchange::inbox_raw),
                )
                .route(
                    "/exchange/messages/{id}/response",
                    web::post().to(exchange::respond),
                )
                .route("/declarations", web::post().to(declarations::submit))
                .route("/declarations", web::get().to(declarations::list))
                .route("/declarations/{id}", web::get().to(declarations::get))
                .route(
                    "/declarations/{id}/document",
                    web::get().to(declarations::document),
                ),
        );
}

/// What the mutual-TLS partner listener serves.
pub fn partner_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/exchange/v1/messages", web::post().to(exchange::receive));
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
