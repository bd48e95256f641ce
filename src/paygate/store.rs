//! The platform's SQL: orders, refunds, the notification queue, settlement rows. SQL only; the
//! decisions around it are in `workflow`.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient, Transaction};
use tokio_postgres::Row;

use super::{Faults, NotificationFault, PaygateError};
use crate::db::embedded::EmbeddedCluster;
use crate::payments::protocol::{Order, OrderStatus, CURRENCY};

const SCHEMA: &str = include_str!("schema.sql");

/// Creates the tables if they are not there, under an advisory lock (two platforms starting
/// on one database at once do not race).
pub async fn ensure_schema(client: &mut Client) -> Result<(), PaygateError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('nsw paygate schema'))",
        &[],
    )
    .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await?;
    Ok(())
}

/// Creates database `name` in the embedded cluster unless it exists.
pub async fn ensure_database(cluster: &EmbeddedCluster, name: &str) -> Result<(), PaygateError> {
    let (client, conn) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    let task = tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // `name` is our own constant, not input.
        if let Err(e) = client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
        {
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(e.into());
            }
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// An order as stored.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order_id: String,
    pub merchant_id: String,
    pub reference: String,
    pub amount: i64,
    pub description: String,
    pub return_url: String,
    pub notify_url: String,
    pub expires_at: DateTime<Utc>,
    /// `pending`, `paid`, `cancelled` or `refunded`.
    pub status: String,
    pub pay_token: String,
    pub transaction_id: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub refunded_amount: i64,
}

const ORDER_COLUMNS: &str = "order_id, merchant_id, reference, amount, description, return_url, \
     notify_url, expires_at, status, pay_token, transaction_id, paid_at, cancelled_at, \
     refunded_amount";

impl OrderRow {
    fn from_row(r: &Row) -> OrderRow {
        OrderRow {
            order_id: r.get(0),
            merchant_id: r.get(1),
            reference: r.get(2),
            amount: r.get(3),
            description: r.get(4),
            return_url: r.get(5),
            notify_url: r.get(6),
            expires_at: r.get(7),
            status: r.get(8),
            pay_token: r.get(9),
            transaction_id: r.get(10),
            paid_at: r.get(11),
            cancelled_at: r.get(12),
            refunded_amount: r.get(13),
        }
    }

    /// Pending and past its expiry.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.status == "pending" && now > self.expires_at
    }

    pub fn status_at(&self, now: DateTime<Utc>) -> OrderStatus {
        match self.status.as_str() {
            "paid" => OrderStatus::Paid,
            "cancelled" => OrderStatus::Cancelled,
            "refunded" => OrderStatus::Refunded,
            _ if self.is_expired(now) => OrderStatus::Expired,
            _ => OrderStatus::Pending,
        }
    }

    /// The wire form; `public_url` is the base of `pay_url`.
    pub fn to_order(&self, public_url: &str, now: DateTime<Utc>) -> Order {
        Order {
            merchant_id: self.merchant_id.clone(),
            reference: self.reference.clone(),
            order_id: self.order_id.clone(),
            amount: self.amount,
            currency: CURRENCY.into(),
            status: self.status_at(now),
            pay_url: format!("{public_url}/pay/{}", self.order_id),
            transaction_id: self.transaction_id.clone(),
            paid_at: self.paid_at,
        }
    }
}

/// A new order's fields.
pub struct NewOrder<'a> {
    pub order_id: &'a str,
    pub merchant_id: &'a str,
    pub reference: &'a str,
    pub amount: i64,
    pub description: &'a str,
    pub return_url: &'a str,
    pub notify_url: &'a str,
    pub expires_at: DateTime<Utc>,
    pub pay_token: &'a str,
}

/// Inserts the order unless the merchant already has one with this reference; answers the
/// stored order and whether it was created now.
pub async fn insert_order(
    client: &Client,
    o: &NewOrder<'_>,
) -> Result<(OrderRow, bool), PaygateError> {
    let sql = format!(
        "INSERT INTO paygate_orders (order_id, merchant_id, reference, amount, currency, \
         description, return_url, notify_url, expires_at, pay_token) \
         VALUES ($1, $2, $3, $4, 'VND', $5, $6, $7, $8, $9) \
         ON CONFLICT (merchant_id, reference) DO NOTHING RETURNING {ORDER_COLUMNS}"
    );
    let inserted = client
        .query_opt(
            &sql,
            &[
                &o.order_id,
                &o.merchant_id,
                &o.reference,
                &o.amount,
                &o.description,
                &o.return_url,
                &o.notify_url,
                &o.expires_at,
                &o.pay_token,
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok((OrderRow::from_row(&row), true));
    }
    let existing = find_order(client, o.merchant_id, o.reference)
        .await?
        .ok_or_else(|| PaygateError::Config("order vanished after a conflict".into()))?;
    Ok((existing, false))
}

pub async fn find_order(
    client: &impl GenericClient,
    merchant_id: &str,
    reference: &str,
) -> Result<Option<OrderRow>, PaygateError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM paygate_orders WHERE merchant_id = $1 AND reference = $2"
    );
    Ok(client
        .query_opt(&sql, &[&merchant_id, &reference])
        .await?
        .map(|r| OrderRow::from_row(&r)))
}

pub async fn find_order_by_id(
    client: &impl GenericClient,
    order_id: &str,
) -> Result<Option<OrderRow>, PaygateError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM paygate_orders WHERE order_id = $1");
    Ok(client
        .query_opt(&sql, &[&order_id])
        .await?
        .map(|r| OrderRow::from_row(&r)))
}

/// Every merchant's order with this reference (at most one per merchant).
pub async fn find_orders_by_reference(
    client: &impl GenericClient,
    reference: &str,
) -> Result<Vec<OrderRow>, PaygateError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM paygate_orders WHERE reference = $1");
    Ok(client
        .query(&sql, &[&reference])
        .await?
        .iter()
        .map(OrderRow::from_row)
        .collect())
}

/// Locks the order for the rest of the transaction.
pub async fn lock_order(
    tx: &Transaction<'_>,
    order_id: &str,
) -> Result<Option<OrderRow>, PaygateError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM paygate_orders WHERE order_id = $1 FOR UPDATE");
    Ok(tx
        .query_opt(&sql, &[&order_id])
        .await?
        .map(|r| OrderRow::from_row(&r)))
}

/// Marks a pending order paid with `transaction_id`; `None` when it was not pending (the
/// guard: one payment per order whatever the callers do).
pub async fn mark_paid(
    tx: &Transaction<'_>,
    order_id: &str,
    transaction_id: &str,
) -> Result<Option<OrderRow>, PaygateError> {
    let sql = format!(
        "UPDATE paygate_orders SET status = 'paid', transaction_id = $2, paid_at = now() \
         WHERE order_id = $1 AND status = 'pending' AND now() <= expires_at \
         RETURNING {ORDER_COLUMNS}"
    );
    Ok(tx
        .query_opt(&sql, &[&order_id, &transaction_id])
        .await?
        .map(|r| OrderRow::from_row(&r)))
}

/// Marks a pending order cancelled; `None` when it was not pending.
pub async fn mark_cancelled(
    tx: &Transaction<'_>,
    order_id: &str,
) -> Result<Option<OrderRow>, PaygateError> {
    let sql = format!(
        "UPDATE paygate_orders SET status = 'cancelled', cancelled_at = now() \
         WHERE order_id = $1 AND status = 'pending' AND now() <= expires_at \
         RETURNING {ORDER_COLUMNS}"
    );
    Ok(tx
        .query_opt(&sql, &[&order_id])
        .await?
        .map(|r| OrderRow::from_row(&r)))
}

/// A refund as stored.
#[derive(Debug, Clone)]
pub struct RefundRow {
    pub merchant_id: String,
    pub refund_reference: String,
    /// The order's reference.
    pub reference: String,
    pub amount: i64,
    pub transaction_id: String,
    pub refunded_at: DateTime<Utc>,
}

const REFUND_SELECT: &str = "SELECT r.merchant_id, r.refund_reference, o.reference, r.amount, r.transaction_id, r.refunded_at \
     FROM paygate_refunds r JOIN paygate_orders o USING (order_id)";

impl RefundRow {
    fn from_row(r: &Row) -> RefundRow {
        RefundRow {
            merchant_id: r.get(0),
            refund_reference: r.get(1),
            reference: r.get(2),
            amount: r.get(3),
            transaction_id: r.get(4),
            refunded_at: r.get(5),
        }
    }
}

pub async fn find_refund(
    client: &impl GenericClient,
    merchant_id: &str,
    refund_reference: &str,
) -> Result<Option<RefundRow>, PaygateError> {
    let sql = format!("{REFUND_SELECT} WHERE r.merchant_id = $1 AND r.refund_reference = $2");
    Ok(client
        .query_opt(&sql, &[&merchant_id, &refund_reference])
        .await?
        .map(|r| RefundRow::from_row(&r)))
}

/// A new refund's fields.
pub struct NewRefund<'a> {
    pub refund_id: &'a str,
    pub merchant_id: &'a str,
    pub refund_reference: &'a str,
    pub order_id: &'a str,
    /// Đồng.
    pub amount: i64,
    pub reason: &'a str,
    /// The refund's own transaction id.
    pub transaction_id: &'a str,
}

/// Records a refund of `amount` on a paid order and adds it to the order's refunded amount
/// (the order becomes `refunded` when that reaches its amount). `None` when the order is not
/// paid or the amount exceeds what is left: the guarded UPDATE and the CHECK on
/// `refunded_amount` make over-refunding impossible.
pub async fn insert_refund(
    tx: &Transaction<'_>,
    r: &NewRefund<'_>,
) -> Result<Option<RefundRow>, PaygateError> {
    let NewRefund {
        refund_id,
        merchant_id,
        refund_reference,
        order_id,
        amount,
        reason,
        transaction_id,
    } = *r;
    let updated = tx
        .execute(
            "UPDATE paygate_orders SET refunded_amount = refunded_amount + $2, \
             status = CASE WHEN refunded_amount + $2 = amount THEN 'refunded' ELSE status END \
             WHERE order_id = $1 AND status = 'paid' AND refunded_amount + $2 <= amount",
            &[&order_id, &amount],
        )
        .await?;
    if updated == 0 {
        return Ok(None);
    }
    let inserted = tx
        .execute(
            "INSERT INTO paygate_refunds (refund_id, merchant_id, refund_reference, order_id, \
         amount, reason, transaction_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &refund_id,
                &merchant_id,
                &refund_reference,
                &order_id,
                &amount,
                &reason,
                &transaction_id,
            ],
        )
        .await;
    match inserted {
        Ok(_) => {}
        // The same refund reference committed meanwhile for another order of the merchant.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Err(PaygateError::refused(
                409,
                "REFUND_CONFLICT",
                format!("refund reference {refund_reference} is already used"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    find_refund(tx, merchant_id, refund_reference).await
}

/// A notification to queue.
pub struct NewNotification<'a> {
    /// `paid:<order_id>`, `cancelled:<order_id>`, `refunded:<refund_id>`.
    pub event_key: String,
    pub kind: &'static str,
    pub order: &'a OrderRow,
    pub transaction_id: &'a str,
    pub amount: i64,
    pub refund_reference: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Queues a notification in the caller's transaction, as the faults say: lost (stored, never
/// sent), duplicated (two rows), delayed (first attempt after `delay_secs`), or marked to be
/// sent with a bad signature or a wrong amount.
pub async fn enqueue(
    tx: &Transaction<'_>,
    n: &NewNotification<'_>,
    faults: &Faults,
) -> Result<(), PaygateError> {
    let (status, copies, delay, fault): (&str, i16, i64, Option<&str>) = match faults.notification {
        None => ("pending", 1, 0, None),
        Some(NotificationFault::Lost) => ("lost", 1, 0, None),
        Some(NotificationFault::Duplicated) => ("pending", 2, 0, None),
        Some(NotificationFault::Delayed) => (
            "pending",
            1,
            i64::try_from(faults.delay_secs).unwrap_or(i64::MAX / 1000),
            None,
        ),
        Some(NotificationFault::BadSignature) => ("pending", 1, 0, Some("bad_signature")),
        Some(NotificationFault::WrongAmount) => ("pending", 1, 0, Some("wrong_amount")),
    };
    for copy in 1..=copies {
        tx.execute(
            "INSERT INTO paygate_notifications (event_key, copy, kind, merchant_id, reference, \
             order_id, transaction_id, amount, refund_reference, at, notify_url, fault, status, \
             available_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             now() + make_interval(secs => $14::bigint))",
            &[
                &n.event_key,
                &copy,
                &n.kind,
                &n.order.merchant_id,
                &n.order.reference,
                &n.order.order_id,
                &n.transaction_id,
                &n.amount,
                &n.refund_reference,
                &n.at,
                &n.order.notify_url,
                &fault,
                &status,
                &delay,
            ],
        )
        .await?;
    }
    Ok(())
}

/// A queued notification claimed for one attempt.
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub merchant_id: String,
    pub reference: String,
    pub order_id: String,
    pub transaction_id: String,
    pub amount: i64,
    pub refund_reference: Option<String>,
    pub at: DateTime<Utc>,
    pub notify_url: String,
    pub fault: Option<String>,
    /// This attempt's number, from 1.
    pub attempts: i32,
}

/// Claims up to `limit` notifications due now (and those whose earlier claim expired, its
/// sender having died), leasing them for `lease_secs`. Concurrent notifiers never claim the
/// same row.
pub async fn claim_due(
    client: &Client,
    limit: i64,
    lease_secs: i64,
) -> Result<Vec<Claimed>, PaygateError> {
    let rows = client
        .query(
            "UPDATE paygate_notifications SET status = 'sending', attempts = attempts + 1, \
             last_attempt_at = now(), locked_until = now() + make_interval(secs => $2::bigint) \
             WHERE id IN (SELECT id FROM paygate_notifications \
                 WHERE (status = 'pending' AND available_at <= now()) \
                    OR (status = 'sending' AND locked_until < now()) \
                 ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $1) \
             RETURNING id, kind, merchant_id, reference, order_id, transaction_id, amount, \
                 refund_reference, at, notify_url, fault, attempts",
            &[&limit, &lease_secs],
        )
        .await?;
    let mut claimed: Vec<Claimed> = rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            kind: r.get(1),
            merchant_id: r.get(2),
            reference: r.get(3),
            order_id: r.get(4),
            transaction_id: r.get(5),
            amount: r.get(6),
            refund_reference: r.get(7),
            at: r.get(8),
            notify_url: r.get(9),
            fault: r.get(10),
            attempts: r.get(11),
        })
        .collect();
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// The attempt was acknowledged (2xx).
pub async fn mark_delivered(client: &Client, id: i64) -> Result<(), PaygateError> {
    client
        .execute(
            "UPDATE paygate_notifications SET status = 'delivered', delivered_at = now(), \
             locked_until = NULL, last_error = NULL WHERE id = $1 AND status = 'sending'",
            &[&id],
        )
        .await?;
    Ok(())
}

/// The attempt failed: due again after `retry_in_secs`.
pub async fn mark_failed(
    client: &Client,
    id: i64,
    error: &str,
    retry_in_secs: i64,
) -> Result<(), PaygateError> {
    client
        .execute(
            "UPDATE paygate_notifications SET status = 'pending', locked_until = NULL, \
             last_error = $2, available_at = now() + make_interval(secs => $3::bigint) \
             WHERE id = $1 AND status = 'sending'",
            &[&id, &error, &retry_in_secs],
        )
        .await?;
    Ok(())
}

/// Notifications not acknowledged yet (lost ones are not counted: they are never sent).
pub async fn pending_notifications(client: &Client) -> Result<i64, PaygateError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM paygate_notifications WHERE status IN ('pending', 'sending')",
            &[],
        )
        .await?
        .get(0))
}

/// A settlement line before faults: (transaction id, reference, amount, time, is a refund).
pub struct SettlementLine {
    pub transaction_id: String,
    pub reference: String,
    pub amount: i64,
    pub time: DateTime<Utc>,
    pub refund: bool,
}

/// The merchant's payments paid and refunds paid back in `[from, to)`, by time.
pub async fn settlement(
    client: &Client,
    merchant_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<SettlementLine>, PaygateError> {
    let rows = client
        .query(
            "SELECT transaction_id, reference, amount, paid_at AS time, false AS refund \
               FROM paygate_orders \
              WHERE merchant_id = $1 AND paid_at >= $2 AND paid_at < $3 \
             UNION ALL \
             SELECT r.transaction_id, o.reference, r.amount, r.refunded_at, true \
               FROM paygate_refunds r JOIN paygate_orders o USING (order_id) \
              WHERE r.merchant_id = $1 AND r.refunded_at >= $2 AND r.refunded_at < $3 \
             ORDER BY time, transaction_id",
            &[&merchant_id, &from, &to],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SettlementLine {
            transaction_id: r.get(0),
            reference: r.get(1),
            amount: r.get(2),
            time: r.get(3),
            refund: r.get(4),
        })
        .collect())
}
