//! `/api/v1/webhooks`: enterprises register URLs that receive their events by signed POST.

use std::net::IpAddr;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{body, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::store::webhooks::{self as store, Owner};

/// A registration body is a small JSON object.
const MAX_BODY: usize = 8 * 1024;

/// A webhook registration.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.vn/nsw"}))]
struct NewWebhook {
    /// `https://` (or `http://` to a loopback address), at most 2000 characters, no
    /// credentials, no fragment.
    url: String,
}

/// A new subscription with its signing secret, shown only in this answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookCreated)]
struct Created {
    #[serde(flatten)]
    subscription: store::Subscription,
    /// `whsec_…`: verifies `X-NSW-Signature`. Keep it.
    secret: String,
}

/// Subscriptions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    items: Vec<store::Subscription>,
}

/// Delivery attempts, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    items: Vec<store::Delivery>,
    /// Set when the page is full: pass as `before`.
    next_before: Option<i64>,
}

fn owner(p: &Principal) -> Owner<'_> {
    match p.role {
        Role::Admin => Owner::Any,
        _ => Owner::Party(&p.party_id),
    }
}

fn url_invalid(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("WEBHOOK_URL_INVALID", detail)
}

/// https to anywhere; http only to this machine unless the operator allows it.
fn check_url(raw: &str, allow_http: bool) -> Result<String, ApiError> {
    if raw.len() > 2000 {
        return Err(url_invalid("the URL is longer than 2000 characters"));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| url_invalid(format!("not a URL: {e}")))?;
    if url.fragment().is_some() {
        return Err(url_invalid("the URL may not have a #fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(url_invalid(
            "the URL may not carry credentials; verify the signature instead",
        ));
    }
    let Some(host) = url.host_str() else {
        return Err(url_invalid("the URL has no host"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_http => {}
        "http" => {
            return Err(url_invalid(
                "http:// is accepted only for loopback addresses; use https://",
            ))
        }
        other => return Err(url_invalid(format!("scheme '{other}' is not http(s)"))),
    }
    Ok(url.to_string())
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "events",
    description = "Registers a URL that receives the caller's events by signed POST. Role: enterprise. Body at most 8 KiB.",
    request_body(content = NewWebhook, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered; the secret appears only here", body = Created,
            headers(("Location" = String, description = "`/api/v1/webhooks/{id}`"))),
        (status = 400, description = "`WEBHOOK_URL_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 409, description = "`WEBHOOK_LIMIT_REACHED`"),
    )
)]
#[tracing::instrument(name = "webhook.create", skip_all, fields(party = %principal.party_id, webhook))]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read_limited(&req, payload, MAX_BODY).await?;
    let new: NewWebhook = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "BODY_INVALID",
            format!("expected {{\"url\": \"https://…\"}}: {e}"),
        )
    })?;
    let url = check_url(new.url.trim(), state.settings.webhooks.allow_http)?;
    let secret = crate::webhooks::new_secret();
    let mut client = state.pool.get().await?;
    let sub = store::create(
        &mut client,
        &principal.party_id,
        &url,
        &secret,
        state.settings.webhooks.max_per_party,
    )
    .await
    .map_err(|e| match e {
        crate::store::StoreError::Conflict(detail) => {
            ApiError::conflict("WEBHOOK_LIMIT_REACHED", detail)
        }
        other => other.into(),
    })?;
    tracing::Span::current().record("webhook", sub.id.to_string());
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/webhooks/{}", sub.id)))
        .json(Created {
            subscription: sub,
            secret,
        }))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "events",
    description = "The caller's active subscriptions (administrators: everyone's), without secrets. Roles: enterprise, admin.",
    responses(
        (status = 200, description = "The subscriptions", body = WebhookList),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
    )
)]
#[tracing::instrument(name = "webhook.list", skip_all, fields(party = %principal.party_id))]
pub async fn list(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let items = store::list(&client, &owner(&principal)).await?;
    Ok(HttpResponse::Ok().json(WebhookList { items }))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "events",
    description = "Ends a subscription; its delivery log stays. Roles: the owning enterprise, admin.",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`: unknown, already deleted or someone else's"),
    )
)]
#[tracing::instrument(name = "webhook.delete", skip_all, fields(party = %principal.party_id))]
pub async fn delete(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let mut client = state.pool.get().await?;
    store::delete(&mut client, &owner(&principal), &principal.party_id, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/retry",
    tag = "events",
    description = "Makes a subscription waiting out its retry backoff due now. Roles: the owning enterprise, admin.",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 202, description = "Due now", body = crate::store::webhooks::Subscription),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "webhook.retry_now", skip_all, fields(party = %principal.party_id))]
pub async fn retry_now(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let mut client = state.pool.get().await?;
    let sub = store::retry_now(&mut client, &owner(&principal), &principal.party_id, id).await?;
    Ok(HttpResponse::Accepted().json(sub))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// A delivery id: the page before it (`next_before` of the previous page).
    before: Option<i64>,
    /// At most this many, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "events",
    description = "The delivery attempts of a subscription (deleted ones included), newest first. Roles: the owning enterprise, admin.",
    params(("id" = String, Path, description = "The subscription's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "A page of attempts", body = DeliveryPage),
        (status = 400, description = "`LIMIT_INVALID`, `QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "webhook.deliveries", skip_all, fields(party = %principal.party_id))]
pub async fn deliveries(
    path: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "LIMIT_INVALID",
            "limit must be 1 to 500",
        ));
    }
    let client = state.pool.get().await?;
    let items = store::deliveries(&client, &owner(&principal), id, query.before, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    let next = if items.len() as i64 == limit {
        items.last().map(|d| d.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(DeliveryPage {
        items,
        next_before: next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("https://hooks.example.vn/nsw", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", false).is_ok());
        assert!(check_url("http://[::1]:9000/hook", false).is_ok());
        assert!(check_url("http://localhost/hook", false).is_ok());
        assert!(check_url("http://hooks.example.vn/nsw", false).is_err());
        assert!(check_url("http://hooks.example.vn/nsw", true).is_ok());
        assert!(check_url("ftp://hooks.example.vn/nsw", true).is_err());
        assert!(check_url("https://user:pw@hooks.example.vn/", false).is_err());
        assert!(check_url("https://hooks.example.vn/#x", false).is_err());
        assert!(check_url("not a url", false).is_err());
    }
}
