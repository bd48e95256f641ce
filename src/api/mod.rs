//! HTTP routes. Handlers parse requests, call validation and the store, and shape responses;
//! they hold no SQL.

pub mod admin_routing;
pub mod auth;
pub mod body;
pub mod certificates;
pub mod customs;
pub mod declarations;
pub mod events;
pub mod exchange;
pub mod health;
pub mod json;
pub mod licence_applications;
pub mod licences;
pub mod locate;
pub mod stats;
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

/// This HTTP worker's intake committers; `None` when `intake.group_commit` is off and every
/// request commits its own transaction.
pub struct Intake(pub Option<crate::store::group_commit::GroupCommit>);

pub struct AppState {
    pub pool: Pool,
    pub validator: Validator,
    pub settings: Settings,
    pub tokens: auth::TokenCache,
    pub routing: std::sync::Arc<crate::store::routing::RoutingCache>,
    pub calendar: crate::calendar::Calendar,
    /// The window's date (system clock in the calendar's time zone, or fixed by configuration).
    pub clock: crate::calendar::Clock,
    /// Partner-window exchange; `None` when this window has no keys.
    pub exchange: Option<std::sync::Arc<crate::exchange::Exchange>>,
}

impl AppState {
    /// The window's local time zone (licence issue dates are local dates).
    pub fn calendar_offset(&self) -> chrono::FixedOffset {
        self.clock.offset()
    }

    /// The window's local date: what licence validity and issue dates are judged by.
    pub fn today(&self) -> chrono::NaiveDate {
        self.clock.today()
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/exchange/v1/messages", web::post().to(exchange::receive))
        .service(
            web::scope("/api/v1")
                .route("/declarations", web::post().to(declarations::submit))
                .route("/declarations", web::get().to(declarations::list))
                .route("/declarations/{id}", web::get().to(declarations::get))
                .route(
                    "/declarations/{id}/document",
                    web::get().to(declarations::document),
                )
                .route(
                    "/certificates-of-origin",
                    web::post().to(certificates::apply),
                )
                .route(
                    "/certificates-of-origin/{reference}",
                    web::get().to(certificates::get),
                )
                .route(
                    "/certificates-of-origin/{reference}/{part}",
                    web::get().to(certificates::raw),
                )
                .configure(ministries_routes)
                .configure(exchange_routes)
                .configure(events_routes),
        );
}

/// Exchange with partner windows: operator and customs endpoints.
fn exchange_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/exchange/send", web::post().to(exchange::send_acdd))
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
        );
}

/// What the mutual-TLS partner listener serves.
pub fn partner_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/exchange/v1/messages", web::post().to(exchange::receive));
}

/// Ministries and customs: routing administration, licence applications, licences, customs.
fn ministries_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/routing-rules", web::get().to(admin_routing::get))
        .route(
            "/admin/routing-rules",
            web::put().to(admin_routing::replace),
        )
        .route(
            "/licence-applications",
            web::post().to(licence_applications::submit),
        )
        .route(
            "/licence-applications/{id}",
            web::get().to(licence_applications::get),
        )
        .route(
            "/licence-applications/{id}/decision",
            web::post().to(licence_applications::decide),
        )
        .route(
            "/licence-applications/{id}/supplement",
            web::post().to(licence_applications::supplement),
        )
        .route(
            "/licence-applications/{id}/withdrawal",
            web::post().to(licence_applications::withdraw),
        )
        .route("/inbox", web::get().to(licence_applications::inbox))
        .route("/licences", web::post().to(licences::deposit))
        .route("/licences/{number}", web::get().to(licences::get))
        .route(
            "/licences/{number}/document",
            web::get().to(licences::document),
        )
        .route(
            "/licences/{number}/signature",
            web::get().to(licences::signature),
        )
        .route(
            "/agencies/{code}/certificates",
            web::get().to(licences::certificates),
        )
        .route(
            "/agencies/{code}/certificates",
            web::post().to(licences::register_certificate),
        )
        .route("/customs/inbox", web::get().to(customs::inbox))
        .route(
            "/declarations/{id}/decision",
            web::post().to(customs::decide),
        )
        .route(
            "/declarations/{id}/withdrawal",
            web::post().to(customs::withdraw),
        )
        .route("/stats", web::get().to(stats::get));
}

/// Enterprise events: the long-poll feed and webhook subscriptions.
fn events_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(events::feed))
        .route("/webhooks", web::post().to(webhooks::create))
        .route("/webhooks", web::get().to(webhooks::list))
        .route("/webhooks/{id}", web::delete().to(webhooks::delete))
        .route(
            "/webhooks/{id}/deliveries",
            web::get().to(webhooks::deliveries),
        )
        .route("/webhooks/{id}/retry", web::post().to(webhooks::retry_now));
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
