//! `GET /api/v1/events`: the caller's dossier events after a cursor, with long polling.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::AppState;
use crate::domain::party::Principal;
use crate::error::ApiError;
use crate::events::Hub;
use crate::store::events::{self as store, Scope};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Id of the last event received (`next_after` of the previous page); 0 or absent: from
    /// the beginning.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Seconds (0 to `events.max_wait_secs`, 30 by default) to hold the request when there is
    /// nothing after `after`.
    #[param(minimum = 0, maximum = 30)]
    wait: Option<u64>,
}

/// Events after the cursor, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    events: Vec<store::Event>,
    /// The id of the last event returned, or `after` again when there were none.
    next_after: i64,
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    description = "The caller's dossier events after a cursor, oldest first, with long polling. Enterprises see their own dossiers', ministries those routed to their agency, customs and admin all.",
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "`LIMIT_INVALID`, `WAIT_INVALID`, `AFTER_INVALID`, `QUERY_INVALID`"),
    )
)]
#[tracing::instrument(name = "events.feed", skip_all, fields(party = %principal.party_id, after, wait, returned))]
pub async fn feed(
    query: web::Query<FeedQuery>,
    principal: Principal,
    state: web::Data<AppState>,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "LIMIT_INVALID",
            "limit must be 1 to 500",
        ));
    }
    let max_wait = state.settings.events.max_wait_secs;
    let wait = query.wait.unwrap_or(0);
    if wait > max_wait {
        return Err(ApiError::bad_request(
            "WAIT_INVALID",
            format!("wait must be 0 to {max_wait} seconds"),
        ));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            "AFTER_INVALID",
            format!("after={after}: event ids are 0 (from the start) or more"),
        ));
    }
    let span = tracing::Span::current();
    span.record("after", after);
    span.record("wait", wait);
    let scope = Scope::of(&principal);

    // Subscribe before the first read so that a wake-up between the read and the wait is kept.
    let mut wake = hub.subscribe();
    let deadline = Instant::now() + Duration::from_secs(wait);
    let poll = Duration::from_millis(state.settings.events.poll_interval_ms.max(10));

    let from = {
        let client = state.pool.get().await?;
        // Events the caller's own requests committed are in the feed before it is read.
        store::seal(&client, true).await?;
        if after <= 0 {
            0
        } else {
            store::position_of(&client, &scope, after)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "AFTER_INVALID",
                        format!("after={after} is not the id of an event this feed gave you"),
                    )
                })?
        }
    };
    loop {
        wake.borrow_and_update();
        let events = {
            let client = state.pool.get().await?;
            store::after(&client, &scope, from, limit).await?
        };
        let now = Instant::now();
        if !events.is_empty() || now >= deadline {
            span.record("returned", events.len());
            let next_after = events.last().map_or(after.max(0), |e| e.id);
            return Ok(HttpResponse::Ok().json(EventPage { events, next_after }));
        }
        // No connection is held while waiting.
        let _ = tokio::time::timeout((deadline - now).min(poll), wake.changed()).await;
    }
}
