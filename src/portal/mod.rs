//! The web portal for people: traders, ministry officers and customs officers, in Vietnamese
//! and English, served by `nsw serve` on the API's listener at `/` (the API keeps `/api/v1`).
//!
//! Pages are rendered on the server from askama templates (`templates/`, compiled in), with
//! the stylesheet embedded (`assets/`) and no script. Like the JSON API, the portal is a thin
//! face: each form calls the same workflow function as its API endpoint (`workflow.rs` lists
//! them), so no business rule lives here. See `docs/portal.md`.

pub mod account;
pub mod assets;
pub mod console;
pub mod customs_desk;
pub mod dashboard;
pub mod dashboard_cache;
pub mod error;
pub mod fee_block;
pub mod forms;
pub mod i18n;
pub mod officer;
pub mod page;
pub mod session;
pub mod trader;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

pub use error::PortalError;
pub use page::{render, render_with, see_other, Page};
pub use session::Person;

use crate::api::AppState;

/// Every portal route. The API's routes are registered before these and none overlap.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/assets/{name}", web::get().to(assets::serve));
    account::routes(cfg);
    trader::routes(cfg);
    officer::routes(cfg);
    customs_desk::routes(cfg);
    console::routes(cfg);
    dashboard::routes(cfg);
}

/// Whether `path` belongs to the machine interfaces (JSON API, partner exchange, health,
/// metrics) rather than to the portal.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/")
        || path == "/api"
        || path.starts_with("/exchange/")
        || path == "/health"
        || path.starts_with("/health/")
        || path == "/metrics"
}

/// The Content-Security-Policy of every answer: nothing but our own stylesheet and images,
/// no script at all, no framing, forms posting only to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every answer of the listener (pages, assets, API alike). A
/// Content-Security-Policy the handler set is kept: the API reference page
/// (`api::openapi::REFERENCE_CSP`) allows its own script; every other answer gets
/// [`CONTENT_SECURITY_POLICY`].
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    Ok(res)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Page,
    message: String,
    code: &'static str,
    detail: Option<String>,
}

/// Renders a portal error as a page in the request's language (a log-in redirect stays a
/// redirect). Internal causes are logged, never shown.
pub async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let Some(err) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<PortalError>())
    else {
        return Ok(res);
    };
    let (code, detail, message_key) = (err.code(), shown_detail(err), err.message_key());
    if matches!(err, PortalError::LoginRequired { .. }) {
        return Ok(res);
    }
    if matches!(err, PortalError::Internal(_) | PortalError::Unavailable(_)) {
        tracing::error!(code, cause = %err, "portal page failed");
    }
    let (http_req, resp) = res.into_parts();
    let Some(state) = http_req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(ServiceResponse::new(http_req, resp));
    };
    let person = session::current(&http_req, &state).await.ok().flatten();
    let page = Page::new(&http_req, &state, person.as_ref(), message_key);
    let message = page.t(&format!("{message_key}-text"));
    let body = ErrorPage {
        page,
        message,
        code,
        detail,
    }
    .render()
    .unwrap_or_else(|_| code.to_owned());
    let mut new = HttpResponse::build(resp.status());
    for (name, value) in resp.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    let new = new
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body);
    Ok(ServiceResponse::new(http_req, new))
}

/// What of an error's detail a person may read: a conflict's workflow message (which names
/// the state), nothing for the rest.
fn shown_detail(e: &PortalError) -> Option<String> {
    match e {
        PortalError::Conflict { detail, .. } => Some(detail.clone()),
        _ => None,
    }
}

/// The listener's answer to a path nothing serves: problem+json under the API's paths, a
/// page elsewhere.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    if is_api_path(req.path()) {
        Err(crate::error::ApiError::NotFound.into())
    } else {
        Err(PortalError::NotFound.into())
    }
}
