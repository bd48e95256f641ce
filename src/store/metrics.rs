//! What `/metrics` reads from the database at scrape time: outbox messages by status and
//! partner, the webhook backlog, the audit sealing lag and the agency certificates. Each is
//! one read-only query; none takes a lock a writer waits for.

use deadpool_postgres::GenericClient;

use super::StoreError;

/// Outbox messages of one (partner, status).
#[derive(Debug, Clone)]
pub struct OutboxCount {
    pub partner: String,
    pub status: String,
    pub messages: i64,
    /// Seconds since the oldest of them was enqueued, for the statuses that wait for the
    /// worker (`pending`, `sending`, `retry_wait`); 0 for the others.
    pub oldest_age_secs: f64,
}

/// Outbox messages by partner and status, from the outbox's tally (migration 0019), and the
/// age of the oldest message still waiting in each unsettled status: the cost is the tally's
/// few rows and the backlog, whatever the history.
pub async fn outbox<C: GenericClient>(client: &C) -> Result<Vec<OutboxCount>, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH tally AS (SELECT receiver, status, sum(messages)::bigint AS n
                              FROM outbox_tally GROUP BY 1, 2),
                  waiting AS (SELECT receiver, status, min(created_at) AS oldest FROM outbox
                               WHERE status IN ('pending', 'sending', 'retry_wait')
                               GROUP BY 1, 2)
             SELECT t.receiver::text, t.status, t.n,
                    extract(epoch FROM now() - w.oldest)::float8
               FROM tally t LEFT JOIN waiting w USING (receiver, status)
              WHERE t.n <> 0
              ORDER BY 1, 2",
        )
        .await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| OutboxCount {
            partner: r.get(0),
            status: r.get(1),
            messages: r.get(2),
            oldest_age_secs: r.get::<_, Option<f64>>(3).unwrap_or(0.0).max(0.0),
        })
        .collect())
}

/// Webhook subscriptions and the events waiting for them.
#[derive(Debug, Clone, Default)]
pub struct WebhookBacklog {
    /// Subscriptions not deleted.
    pub subscriptions: i64,
    /// Of these, those whose last attempt failed (waiting for a retry).
    pub failing: i64,
    /// Events in the feed past each subscription's cursor for its party, at most
    /// [`BACKLOG_COUNTED`] per subscription, summed.
    pub events: i64,
}

/// Events counted per subscription by [`webhook_backlog`]. A subscription whose receiver is
/// down cannot skip past its waiting event, so everything after it would be read again at
/// every scrape; past this many the figure only needs to say "a lot".
pub const BACKLOG_COUNTED: i64 = 10_000;

pub async fn webhook_backlog<C: GenericClient>(client: &C) -> Result<WebhookBacklog, StoreError> {
    let sql = format!(
        "SELECT count(*), count(*) FILTER (WHERE failures > 0), coalesce(sum(backlog), 0)::bigint
           FROM (SELECT w.failures,
                        (SELECT count(*) FROM (SELECT 1 FROM event_feed f
                          WHERE f.pos > greatest(w.cursor_pos, w.scanned_pos) AND {}
                          LIMIT {BACKLOG_COUNTED}) waiting) AS backlog
                   FROM webhooks w WHERE w.deleted_at IS NULL) s",
        super::events::party_sees("w.party_id")
    );
    let stmt = client.prepare_cached(&sql).await?;
    let r = client.query_one(&stmt, &[]).await?;
    Ok(WebhookBacklog {
        subscriptions: r.get(0),
        failing: r.get(1),
        events: r.get(2),
    })
}

/// Audit entries committed but not yet linked into the hash chain.
#[derive(Debug, Clone, Default)]
pub struct AuditLag {
    pub unsealed: i64,
    /// Seconds since the oldest unsealed entry was written; 0 when all are sealed.
    pub oldest_age_secs: f64,
}

pub async fn audit_lag<C: GenericClient>(client: &C) -> Result<AuditLag, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT count(*), extract(epoch FROM clock_timestamp() - min(at))::float8
               FROM audit_log WHERE hash IS NULL",
        )
        .await?;
    let r = client.query_one(&stmt, &[]).await?;
    Ok(AuditLag {
        unsealed: r.get(0),
        oldest_age_secs: r.get::<_, Option<f64>>(1).unwrap_or(0.0).max(0.0),
    })
}

/// Every registered agency certificate: (agency, PEM).
pub async fn agency_certificates<C: GenericClient>(
    client: &C,
) -> Result<Vec<(String, String)>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT agency, certificate_pem FROM agency_certificates ORDER BY id")
        .await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
