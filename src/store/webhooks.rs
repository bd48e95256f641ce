//! Webhook subscriptions, their durable cursors and the delivery log. A worker claims a
//! subscription with a lease (`FOR UPDATE SKIP LOCKED`, so instances sharing the database never
//! deliver for the same subscription at once), delivers events one by one in feed order, and
//! moves the cursor only past events the receiver acknowledged.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use super::events::{event, party_sees, Event, EVENT_COLUMNS, EVENT_JOINS};
use super::{audit, StoreError};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Webhook)]
pub struct Subscription {
    pub id: Uuid,
    pub party_id: String,
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// Consecutive failed attempts at the next event.
    pub failures: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Id of the last event delivered, if any.
    pub last_delivered_event: Option<i64>,
}

/// Whose subscriptions a caller may manage.
pub enum Owner<'a> {
    Party(&'a str),
    /// Administrators: every subscription.
    Any,
}

impl Owner<'_> {
    fn params(&self) -> (bool, &str) {
        match self {
            Owner::Party(p) => (false, p),
            Owner::Any => (true, ""),
        }
    }
}

// The last acknowledged delivery, not the event at the cursor: a new subscription's cursor is
// the head of the whole feed, whose event may be another party's.
const SUB_COLUMNS: &str = "w.id, w.party_id, w.url, w.created_at, w.failures, w.next_attempt_at,
    (SELECT d.event_id FROM webhook_deliveries d
      WHERE d.webhook_id = w.id AND d.delivered ORDER BY d.id DESC LIMIT 1)";

fn subscription(r: &tokio_postgres::Row) -> Subscription {
    Subscription {
        id: r.get(0),
        party_id: r.get(1),
        url: r.get(2),
        created_at: r.get(3),
        failures: r.get(4),
        next_attempt_at: r.get(5),
        last_delivered_event: r.get(6),
    }
}

/// Registers a subscription that receives the party's events from now on.
pub async fn create(
    client: &mut deadpool_postgres::Object,
    party: &str,
    url: &str,
    secret: &str,
    max_per_party: i64,
) -> Result<Subscription, StoreError> {
    let id = Uuid::now_v7();
    let tx = client.transaction().await?;
    // Serialises concurrent creations by one party so the limit holds.
    tx.execute("SELECT 1 FROM parties WHERE id = $1 FOR UPDATE", &[&party])
        .await?;
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM webhooks WHERE party_id = $1 AND deleted_at IS NULL",
            &[&party],
        )
        .await?
        .get(0);
    if count >= max_per_party {
        return Err(StoreError::Conflict(format!(
            "you already have {count} webhook subscriptions, the most allowed; delete one first"
        )));
    }
    tx.execute(
        "INSERT INTO webhooks (id, party_id, url, secret, cursor_pos)
         VALUES ($1, $2, $3, $4, (SELECT coalesce(max(pos), 0) FROM event_feed))",
        &[&id, &party, &url, &secret],
    )
    .await?;
    audit::append(
        &tx,
        party,
        "webhook.created",
        &id.to_string(),
        &serde_json::json!({"url": url}),
    )
    .await?;
    let sql = format!("SELECT {SUB_COLUMNS} FROM webhooks w WHERE w.id = $1");
    let row = tx.query_one(&sql, &[&id]).await?;
    tx.commit().await?;
    Ok(subscription(&row))
}

pub async fn list<C: GenericClient>(
    client: &C,
    owner: &Owner<'_>,
) -> Result<Vec<Subscription>, StoreError> {
    let (all, party) = owner.params();
    let sql = format!(
        "SELECT {SUB_COLUMNS} FROM webhooks w
          WHERE w.deleted_at IS NULL AND ($1 OR w.party_id = $2)
          ORDER BY w.created_at, w.id"
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query(&stmt, &[&all, &party])
        .await?
        .iter()
        .map(subscription)
        .collect())
}

/// Ends a subscription. Its delivery log stays; a delivery already in flight may still land.
pub async fn delete(
    client: &mut deadpool_postgres::Object,
    owner: &Owner<'_>,
    actor: &str,
    id: Uuid,
) -> Result<(), StoreError> {
    let (all, party) = owner.params();
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE webhooks SET deleted_at = now(), lease = NULL, locked_until = NULL
              WHERE id = $1 AND deleted_at IS NULL AND ($2 OR party_id = $3)
             RETURNING party_id, url",
            &[&id, &all, &party],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let owner_id: String = row.get(0);
    let url: String = row.get(1);
    audit::append(
        &tx,
        actor,
        "webhook.deleted",
        &id.to_string(),
        &serde_json::json!({"party": owner_id, "url": url}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Makes a waiting subscription due now (after the receiver was repaired, say), keeping its
/// failure count. Returns the new schedule.
pub async fn retry_now(
    client: &mut deadpool_postgres::Object,
    owner: &Owner<'_>,
    actor: &str,
    id: Uuid,
) -> Result<Subscription, StoreError> {
    let (all, party) = owner.params();
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            "UPDATE webhooks SET next_attempt_at = now()
              WHERE id = $1 AND deleted_at IS NULL AND ($2 OR party_id = $3)",
            &[&id, &all, &party],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(
        &tx,
        actor,
        "webhook.retry_now",
        &id.to_string(),
        &serde_json::json!({}),
    )
    .await?;
    let sql = format!("SELECT {SUB_COLUMNS} FROM webhooks w WHERE w.id = $1");
    let row = tx.query_one(&sql, &[&id]).await?;
    tx.commit().await?;
    Ok(subscription(&row))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub delivered: bool,
}

/// Delivery attempts of a subscription (deleted ones included), newest first; None when the
/// caller may not see the subscription.
pub async fn deliveries<C: GenericClient>(
    client: &C,
    owner: &Owner<'_>,
    id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Option<Vec<Delivery>>, StoreError> {
    let (all, party) = owner.params();
    let visible = client
        .query_opt(
            "SELECT 1 FROM webhooks WHERE id = $1 AND ($2 OR party_id = $3)",
            &[&id, &all, &party],
        )
        .await?;
    if visible.is_none() {
        return Ok(None);
    }
    let stmt = client
        .prepare_cached(
            "SELECT id, event_id, attempt, at, http_status, error, delivered
               FROM webhook_deliveries
              WHERE webhook_id = $1 AND ($2::bigint IS NULL OR id < $2)
              ORDER BY id DESC LIMIT $3",
        )
        .await?;
    Ok(Some(
        client
            .query(&stmt, &[&id, &before, &limit])
            .await?
            .iter()
            .map(|r| Delivery {
                id: r.get(0),
                event_id: r.get(1),
                attempt: r.get(2),
                at: r.get(3),
                http_status: r.get(4),
                error: r.get(5),
                delivered: r.get(6),
            })
            .collect(),
    ))
}

/// A subscription claimed by one worker until its lease ends.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: Uuid,
    pub party_id: String,
    pub url: String,
    pub secret: String,
    pub failures: i32,
    pub lease: Uuid,
}

/// Moves each active subscription's `scanned_pos` past the events that are not its party's,
/// `step` feed positions at most per subscription and call, and only for subscriptions at least
/// `lag` positions behind the head (so a subscription is not rewritten at every new event).
/// After it, the claim and [`next_event`] read at most about `lag + step` positions of other
/// parties' events per subscription, however long ago its party's last event was.
/// Returns how many subscriptions moved.
///
/// Safe against every race: positions are assigned in order and committed before larger ones
/// become visible, so everything up to the head this statement sees is already there, and an
/// event of the party in the range keeps the subscription where it is.
pub async fn skip_others_events<C: GenericClient>(
    client: &C,
    lag: i64,
    step: i64,
) -> Result<u64, StoreError> {
    let sql = format!(
        "WITH head AS (SELECT coalesce(max(pos), 0) AS pos FROM event_feed)
         UPDATE webhooks w
            SET scanned_pos = least(h.pos, greatest(w.cursor_pos, w.scanned_pos) + $2)
           FROM head h
          WHERE w.deleted_at IS NULL
            AND greatest(w.cursor_pos, w.scanned_pos) <= h.pos - $1
            AND NOT EXISTS (SELECT 1 FROM event_feed f
                             WHERE f.pos > greatest(w.cursor_pos, w.scanned_pos)
                               AND f.pos <= least(h.pos, greatest(w.cursor_pos, w.scanned_pos) + $2)
                               AND {})",
        party_sees("w.party_id")
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client.execute(&stmt, &[&lag, &step]).await?)
}

/// Claims up to `limit` subscriptions that are due and have an event waiting.
pub async fn claim<C: GenericClient>(
    client: &C,
    limit: i64,
    lease_secs: f64,
) -> Result<Vec<Claim>, StoreError> {
    let sql = format!(
        "UPDATE webhooks w SET lease = gen_random_uuid(),
                locked_until = now() + make_interval(secs => $2)
          WHERE w.id IN (
                SELECT s.id FROM webhooks s
                 WHERE s.deleted_at IS NULL AND s.next_attempt_at <= now()
                   AND (s.locked_until IS NULL OR s.locked_until < now())
                   AND EXISTS (SELECT 1 FROM event_feed f
                                WHERE f.pos > greatest(s.cursor_pos, s.scanned_pos)
                                  AND {})
                 ORDER BY s.next_attempt_at
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
         RETURNING w.id, w.party_id, w.url, w.secret, w.failures, w.lease",
        party_sees("s.party_id")
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query(&stmt, &[&limit, &lease_secs])
        .await?
        .iter()
        .map(|r| Claim {
            id: r.get(0),
            party_id: r.get(1),
            url: r.get(2),
            secret: r.get(3),
            failures: r.get(4),
            lease: r.get(5),
        })
        .collect())
}

/// The next event for a claimed subscription, while the claim still holds.
pub async fn next_event<C: GenericClient>(
    client: &C,
    c: &Claim,
) -> Result<Option<Event>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM webhooks w
           JOIN event_feed f ON f.pos > greatest(w.cursor_pos, w.scanned_pos) {EVENT_JOINS}
          WHERE w.id = $1 AND w.lease = $2 AND w.deleted_at IS NULL
            AND {}
          ORDER BY f.pos LIMIT 1",
        party_sees("w.party_id")
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query_opt(&stmt, &[&c.id, &c.lease])
        .await?
        .as_ref()
        .map(event))
}

/// Records an acknowledged delivery and moves the cursor past it, extending the lease.
/// Returns false when the claim was lost (lease expired and taken over, or subscription
/// deleted): the worker then stops.
pub async fn delivered(
    client: &mut deadpool_postgres::Object,
    c: &Claim,
    e: &Event,
    http_status: i32,
    lease_secs: f64,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await?;
    // The attempt happened whatever became of the claim: the log says so.
    tx.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, http_status, delivered)
         VALUES ($1, $2, $3, $4, true)",
        &[&c.id, &e.id, &(c.failures + 1), &http_status],
    )
    .await?;
    let moved = tx
        .execute(
            "UPDATE webhooks SET cursor_pos = $3, failures = 0, next_attempt_at = now(),
                    locked_until = now() + make_interval(secs => $4)
              WHERE id = $1 AND lease = $2 AND deleted_at IS NULL AND cursor_pos < $3",
            &[&c.id, &c.lease, &e.pos, &lease_secs],
        )
        .await?;
    tx.commit().await?;
    Ok(moved == 1)
}

/// Records a failed attempt, schedules the retry `retry_in_ms` from now and releases the claim.
pub async fn failed(
    client: &mut deadpool_postgres::Object,
    c: &Claim,
    e: &Event,
    http_status: Option<i32>,
    error: &str,
    retry_in_ms: i64,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, http_status, error, delivered)
         VALUES ($1, $2, $3, $4, $5, false)",
        &[&c.id, &e.id, &(c.failures + 1), &http_status, &error],
    )
    .await?;
    let ms = retry_in_ms as f64 / 1000.0;
    tx.execute(
        "UPDATE webhooks SET failures = failures + 1,
                next_attempt_at = now() + make_interval(secs => $3),
                lease = NULL, locked_until = NULL
          WHERE id = $1 AND lease = $2",
        &[&c.id, &c.lease, &ms],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Gives up a claim with nothing (more) to deliver now.
pub async fn release<C: GenericClient>(client: &C, c: &Claim) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE webhooks SET lease = NULL, locked_until = NULL WHERE id = $1 AND lease = $2",
            &[&c.id, &c.lease],
        )
        .await?;
    Ok(())
}
