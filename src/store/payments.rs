//! Fees paid online, SQL only (docs/payments.md): fee notices, orders at the payment platform,
//! payments (each platform transaction recorded once), refunds, e-receipts, the log of every
//! notification received, and alerts. Workflows live in `payments/`; the database's
//! constraints and state-machine triggers (migrations/0016_payments.sql) back every invariant
//! here, whatever the caller does.
//!
//! For the reconciliation and the portal: [`payments_between`] and [`refunds_between`] (what
//! the window recorded in a span of time, e.g. a local settlement day), [`notice_view`] (a
//! notice by application, scoped), [`list_notices`] (an enterprise's notices), [`alerts`]
//! (what the operator should look at).

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{audit, StoreError};
use crate::domain::fee_state::{OrderStatus, RefundStatus, Status};
use crate::store::licensing::AppScope;

/// A fee notice as the workflows use it.
#[derive(Debug, Clone)]
pub struct NoticeRow {
    pub id: Uuid,
    pub reference: String,
    pub application_id: Uuid,
    pub application_reference: String,
    pub applicant_id: String,
    /// The applicant's name as the application gives it (the e-receipt's payer).
    pub applicant_name: String,
    pub agency: String,
    pub agency_name: String,
    pub procedure_code: String,
    /// Whole đồng.
    pub amount: i64,
    pub currency: String,
    pub due_date: NaiveDate,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

const NOTICE: &str = "n.id, n.reference, n.application_id, a.reference, n.applicant_id,
    coalesce(a.details #>> '{applicant,name}', n.applicant_id), n.agency, n.agency_name,
    n.procedure_code, n.amount, n.currency, n.due_date, n.status, n.created_at, n.paid_at";

fn notice_row(r: &tokio_postgres::Row) -> Result<NoticeRow, StoreError> {
    let status: String = r.get(12);
    Ok(NoticeRow {
        id: r.get(0),
        reference: r.get(1),
        application_id: r.get(2),
        application_reference: r.get(3),
        applicant_id: r.get(4),
        applicant_name: r.get(5),
        agency: r.get(6),
        agency_name: r.get(7),
        procedure_code: r.get(8),
        amount: r.get(9),
        currency: r.get(10),
        due_date: r.get(11),
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Conflict(format!("unknown fee status {status}")))?,
        created_at: r.get(13),
        paid_at: r.get(14),
    })
}

/// A notice about to be issued with its application.
pub struct NewNotice<'a> {
    pub application_id: Uuid,
    pub applicant_id: &'a str,
    pub agency: &'a str,
    pub agency_name: &'a str,
    pub procedure_code: &'a str,
    /// Whole đồng, > 0.
    pub amount: i64,
    pub due_date: NaiveDate,
}

/// What an application's receipt says of its fee notice.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeeNoticeBrief {
    /// The payment reference, e.g. `FEE-2026-000001`.
    pub reference: String,
    /// Whole đồng.
    pub amount: i64,
    /// Always `VND`.
    pub currency: String,
    /// The last day to pay (the window's calendar); unpaid after it, the application is
    /// cancelled.
    pub due_date: NaiveDate,
    pub status: String,
}

/// Issues a fee notice inside the caller's transaction (the application's): reference
/// `FEE-<YYYY>-<NNNNNN>` from a sequence, status `due`, and its audit entry.
pub async fn insert_notice<C: GenericClient>(
    tx: &C,
    n: &NewNotice<'_>,
) -> Result<FeeNoticeBrief, StoreError> {
    let id = Uuid::now_v7();
    let reference: String = tx
        .query_one(
            "INSERT INTO fee_notices (id, application_id, reference, applicant_id, agency,
                agency_name, procedure_code, amount, currency, due_date, status, created_at,
                updated_at)
             VALUES ($1, $2, 'FEE-' || to_char(now() AT TIME ZONE 'UTC', 'YYYY') || '-'
                        || lpad(nextval('fee_notice_seq')::text, 6, '0'),
                     $3, $4, $5, $6, $7, 'VND', $8, 'due', now(), now())
             RETURNING reference",
            &[
                &id,
                &n.application_id,
                &n.applicant_id,
                &n.agency,
                &n.agency_name,
                &n.procedure_code,
                &n.amount,
                &n.due_date,
            ],
        )
        .await?
        .get(0);
    audit::append(
        tx,
        "system",
        "fee_notice.issued",
        &reference,
        &serde_json::json!({"id": id, "application": n.application_id, "amount": n.amount,
            "currency": "VND", "due_date": n.due_date, "agency": n.agency}),
    )
    .await?;
    Ok(FeeNoticeBrief {
        reference,
        amount: n.amount,
        currency: "VND".into(),
        due_date: n.due_date,
        status: Status::Due.as_str().into(),
    })
}

/// The notice of an application, if it has one; with `lock`, locked until the end of the
/// caller's transaction (every change of a notice's status takes this lock first).
pub async fn notice_of_application<C: GenericClient>(
    client: &C,
    application_id: Uuid,
    lock: bool,
) -> Result<Option<NoticeRow>, StoreError> {
    let sql = format!(
        "SELECT {NOTICE} FROM fee_notices n JOIN licence_applications a ON a.id = n.application_id
          WHERE n.application_id = $1 {}",
        if lock { "FOR UPDATE OF n" } else { "" }
    );
    client
        .query_opt(&sql, &[&application_id])
        .await?
        .map(|r| notice_row(&r))
        .transpose()
}

/// A notice by id, locked until the end of the caller's transaction.
pub async fn lock_notice<C: GenericClient>(tx: &C, id: Uuid) -> Result<NoticeRow, StoreError> {
    let sql = format!(
        "SELECT {NOTICE} FROM fee_notices n JOIN licence_applications a ON a.id = n.application_id
          WHERE n.id = $1 FOR UPDATE OF n"
    );
    notice_row(
        &tx.query_opt(&sql, &[&id])
            .await?
            .ok_or(StoreError::NotFound)?,
    )
}

/// Moves a locked notice to `to`, judged by the code's machine and again by the database's
/// trigger; a paid notice records when.
pub async fn set_notice_status<C: GenericClient>(
    tx: &C,
    notice: &NoticeRow,
    to: Status,
    actor: &str,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    if !notice.status.can_become(to) {
        return Err(StoreError::Transition(format!(
            "fee notice: transition {} -> {} is not allowed",
            notice.status.as_str(),
            to.as_str()
        )));
    }
    tx.execute(
        "UPDATE fee_notices SET status = $2, updated_at = now(),
                paid_at = CASE WHEN $2 = 'paid' THEN now() ELSE paid_at END
          WHERE id = $1",
        &[&notice.id, &to.as_str()],
    )
    .await?;
    audit::append(
        tx,
        actor,
        &format!("fee_notice.{}", to.as_str()),
        &notice.reference,
        &details,
    )
    .await?;
    Ok(())
}

/// Fee notices still due whose due date is before `today`, oldest due first.
pub async fn overdue_notices<C: GenericClient>(
    client: &C,
    today: NaiveDate,
    limit: i64,
) -> Result<Vec<NoticeRow>, StoreError> {
    let sql = format!(
        "SELECT {NOTICE} FROM fee_notices n JOIN licence_applications a ON a.id = n.application_id
          WHERE n.status = 'due' AND n.due_date < $1
          ORDER BY n.due_date, n.id LIMIT $2"
    );
    client
        .query(&sql, &[&today, &limit])
        .await?
        .iter()
        .map(notice_row)
        .collect()
}

/// Whether the application ever went under review (a paid fee is refunded on withdrawal only
/// if it did not).
pub async fn ever_reviewed<C: GenericClient>(
    client: &C,
    application_id: Uuid,
) -> Result<bool, StoreError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM dossier_events
                             WHERE dossier_id = $1 AND status = 'under_review')",
            &[&application_id],
        )
        .await?
        .get(0))
}

// ---------------------------------------------------------------------------------------
// Orders

/// An order at the platform, as stored.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub id: Uuid,
    pub notice_id: Uuid,
    pub attempt: i32,
    /// The reference the platform knows the order by: the notice's for the first order,
    /// `<reference>-<attempt>` for later ones.
    pub platform_reference: String,
    /// The platform's id of the order.
    pub order_id: String,
    pub pay_url: String,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
    pub status: OrderStatus,
    pub transaction_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_queried_at: Option<DateTime<Utc>>,
}

const ORDER: &str = "o.id, o.notice_id, o.attempt, o.platform_reference, o.order_id, o.pay_url,
    o.amount, o.expires_at, o.status, o.transaction_id, o.created_at, o.last_queried_at";

fn order_row(r: &tokio_postgres::Row) -> Result<OrderRow, StoreError> {
    let status: String = r.get(8);
    Ok(OrderRow {
        id: r.get(0),
        notice_id: r.get(1),
        attempt: r.get(2),
        platform_reference: r.get(3),
        order_id: r.get(4),
        pay_url: r.get(5),
        amount: r.get(6),
        expires_at: r.get(7),
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Conflict(format!("unknown order status {status}")))?,
        transaction_id: r.get(9),
        created_at: r.get(10),
        last_queried_at: r.get(11),
    })
}

/// The notice's latest order (highest attempt), if any.
pub async fn latest_order<C: GenericClient>(
    client: &C,
    notice_id: Uuid,
) -> Result<Option<OrderRow>, StoreError> {
    let sql = format!(
        "SELECT {ORDER} FROM payment_orders o WHERE o.notice_id = $1
          ORDER BY o.attempt DESC LIMIT 1"
    );
    client
        .query_opt(&sql, &[&notice_id])
        .await?
        .map(|r| order_row(&r))
        .transpose()
}

/// Every order of a notice, first attempt first.
pub async fn orders_of_notice<C: GenericClient>(
    client: &C,
    notice_id: Uuid,
) -> Result<Vec<OrderRow>, StoreError> {
    let sql =
        format!("SELECT {ORDER} FROM payment_orders o WHERE o.notice_id = $1 ORDER BY o.attempt");
    client
        .query(&sql, &[&notice_id])
        .await?
        .iter()
        .map(order_row)
        .collect()
}

/// The order the platform knows by `platform_reference`, with its notice's id.
pub async fn order_by_platform_reference<C: GenericClient>(
    client: &C,
    platform_reference: &str,
) -> Result<Option<OrderRow>, StoreError> {
    let sql = format!("SELECT {ORDER} FROM payment_orders o WHERE o.platform_reference = $1");
    client
        .query_opt(&sql, &[&platform_reference])
        .await?
        .map(|r| order_row(&r))
        .transpose()
}

/// An order the platform created, to store.
pub struct NewOrder<'a> {
    pub notice_id: Uuid,
    pub attempt: i32,
    pub platform_reference: &'a str,
    pub order_id: &'a str,
    pub pay_url: &'a str,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
}

/// Stores an order the platform answered with. Two concurrent creations of the same attempt
/// (the platform answers both with the same order, being idempotent per reference) store it
/// once: the second finds the first's row, which is returned.
pub async fn insert_order<C: GenericClient>(
    client: &C,
    n: &NewOrder<'_>,
) -> Result<OrderRow, StoreError> {
    client
        .execute(
            "INSERT INTO payment_orders (id, notice_id, attempt, platform_reference, order_id,
                pay_url, amount, expires_at, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', now(), now())
             ON CONFLICT DO NOTHING",
            &[
                &Uuid::now_v7(),
                &n.notice_id,
                &n.attempt,
                &n.platform_reference,
                &n.order_id,
                &n.pay_url,
                &n.amount,
                &n.expires_at,
            ],
        )
        .await?;
    let sql =
        format!("SELECT {ORDER} FROM payment_orders o WHERE o.notice_id = $1 AND o.attempt = $2");
    let row = client
        .query_opt(&sql, &[&n.notice_id, &n.attempt])
        .await?
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "order {} of {} is stored under another attempt",
                n.order_id, n.platform_reference
            ))
        })?;
    order_row(&row)
}

/// Moves an order to `to` if its machine allows it from the stored status (a guarded UPDATE:
/// concurrent reports of the same change write once); returns whether it moved.
pub async fn mark_order<C: GenericClient>(
    client: &C,
    id: Uuid,
    to: OrderStatus,
    transaction_id: Option<&str>,
) -> Result<bool, StoreError> {
    let from: Vec<&str> = OrderStatus::ALL
        .into_iter()
        .filter(|s| s.can_become(to))
        .map(OrderStatus::as_str)
        .collect();
    let n = client
        .execute(
            "UPDATE payment_orders SET status = $2, updated_at = now(),
                    transaction_id = coalesce($3, transaction_id)
              WHERE id = $1 AND status = ANY($4)",
            &[&id, &to.as_str(), &transaction_id, &from],
        )
        .await?;
    Ok(n == 1)
}

/// Claims pending orders not heard of for `quiet_secs` (since creation or the last question):
/// stamps them asked-about now, so that other instances leave them alone, and returns them.
pub async fn claim_orders_to_query<C: GenericClient>(
    client: &C,
    quiet_secs: i64,
    limit: i64,
) -> Result<Vec<OrderRow>, StoreError> {
    let sql = format!(
        "UPDATE payment_orders o SET last_queried_at = now()
          WHERE o.id IN (SELECT id FROM payment_orders
                          WHERE status = 'pending'
                            AND created_at <= now() - make_interval(secs => $1)
                            AND (last_queried_at IS NULL
                                 OR last_queried_at <= now() - make_interval(secs => $1))
                          ORDER BY created_at
                          FOR UPDATE SKIP LOCKED LIMIT $2)
          RETURNING {ORDER}"
    );
    client
        .query(&sql, &[&(quiet_secs as f64), &limit])
        .await?
        .iter()
        .map(order_row)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Payments

/// Where the window learnt of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Notification,
    StatusQuery,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Notification => "notification",
            Source::StatusQuery => "status_query",
        }
    }
}

/// A platform transaction to record.
pub struct NewPayment<'a> {
    pub notice_id: Uuid,
    pub order: Uuid,
    pub transaction_id: &'a str,
    pub amount: i64,
    pub paid_at: DateTime<Utc>,
    pub source: Source,
    /// Applied to the notice (it was due), or owing a refund.
    pub applied: bool,
}

/// Records a platform transaction once: `Some(id)` when new, `None` when the transaction was
/// recorded before (a repeated notification, or the status answer after it). A second applied
/// payment for one notice is refused by the database (unique index), never dropped.
pub async fn record_payment<C: GenericClient>(
    tx: &C,
    p: &NewPayment<'_>,
) -> Result<Option<Uuid>, StoreError> {
    let id = Uuid::now_v7();
    let disposition = if p.applied { "applied" } else { "refund_due" };
    let row = tx
        .query_opt(
            "INSERT INTO payments (id, notice_id, order_id, transaction_id, amount, currency,
                paid_at, recorded_at, source, disposition)
             VALUES ($1, $2, $3, $4, $5, 'VND', $6, now(), $7, $8)
             ON CONFLICT (transaction_id) DO NOTHING
             RETURNING id",
            &[
                &id,
                &p.notice_id,
                &p.order,
                &p.transaction_id,
                &p.amount,
                &p.paid_at,
                &p.source.as_str(),
                &disposition,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The payment applied to a notice, if any: (payment id, amount, the paid order's platform
/// reference).
pub async fn applied_payment<C: GenericClient>(
    client: &C,
    notice_id: Uuid,
) -> Result<Option<(Uuid, i64, String)>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT p.id, p.amount, o.platform_reference
               FROM payments p JOIN payment_orders o ON o.id = p.order_id
              WHERE p.notice_id = $1 AND p.disposition = 'applied'",
            &[&notice_id],
        )
        .await?
        .map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// A payment as recorded, for reconciliation.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentRecord {
    pub transaction_id: String,
    /// The reference the platform knows the order by (what its settlement file names).
    pub platform_reference: String,
    /// The fee notice's reference.
    pub notice_reference: String,
    pub amount: i64,
    pub paid_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// `applied` or `refund_due`.
    pub disposition: String,
}

/// Every payment the platform took in `[start, end)` (its `paid_at`) that the window
/// recorded, whatever became of it; oldest first.
pub async fn payments_between<C: GenericClient>(
    client: &C,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<PaymentRecord>, StoreError> {
    Ok(client
        .query(
            "SELECT p.transaction_id, o.platform_reference, n.reference, p.amount, p.paid_at,
                    p.recorded_at, p.disposition
               FROM payments p
               JOIN payment_orders o ON o.id = p.order_id
               JOIN fee_notices n ON n.id = p.notice_id
              WHERE p.paid_at >= $1 AND p.paid_at < $2
              ORDER BY p.paid_at, p.id",
            &[&start, &end],
        )
        .await?
        .iter()
        .map(|r| PaymentRecord {
            transaction_id: r.get(0),
            platform_reference: r.get(1),
            notice_reference: r.get(2),
            amount: r.get(3),
            paid_at: r.get(4),
            recorded_at: r.get(5),
            disposition: r.get(6),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Refunds

/// A refund as stored.
#[derive(Debug, Clone)]
pub struct RefundRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub notice_id: Uuid,
    pub refund_reference: String,
    /// The paid order's platform reference (what the refund request names).
    pub platform_reference: String,
    pub amount: i64,
    pub reason: String,
    pub status: RefundStatus,
    pub attempts: i32,
    /// The refund's own transaction, once the platform's answer named it.
    pub transaction_id: Option<String>,
    /// The refunded payment's transaction (what the platform's refund notification names).
    pub payment_transaction_id: String,
}

const REFUND: &str = "f.id, f.payment_id, f.notice_id, f.refund_reference,
    (SELECT o.platform_reference FROM payments p JOIN payment_orders o ON o.id = p.order_id
      WHERE p.id = f.payment_id),
    f.amount, f.reason, f.status, f.attempts, f.transaction_id,
    (SELECT p.transaction_id FROM payments p WHERE p.id = f.payment_id)";

fn refund_row(r: &tokio_postgres::Row) -> Result<RefundRow, StoreError> {
    let status: String = r.get(7);
    Ok(RefundRow {
        id: r.get(0),
        payment_id: r.get(1),
        notice_id: r.get(2),
        refund_reference: r.get(3),
        platform_reference: r.get(4),
        amount: r.get(5),
        reason: r.get(6),
        status: RefundStatus::parse(&status)
            .ok_or_else(|| StoreError::Conflict(format!("unknown refund status {status}")))?,
        attempts: r.get(8),
        transaction_id: r.get(9),
        payment_transaction_id: r.get(10),
    })
}

/// A refund to ask for.
pub struct NewRefund<'a> {
    pub payment_id: Uuid,
    pub notice_id: Uuid,
    /// The paid order's platform reference; the refund reference is it with `-R`.
    pub platform_reference: &'a str,
    pub amount: i64,
    pub reason: &'a str,
    pub actor: &'a str,
}

/// Stores a refund request (one per payment) inside the caller's transaction, due at once;
/// returns its id and reference (those of the one already there, if any).
pub async fn insert_refund<C: GenericClient>(
    tx: &C,
    n: &NewRefund<'_>,
) -> Result<(Uuid, String), StoreError> {
    let reference = format!("{}-R", n.platform_reference);
    tx.execute(
        "INSERT INTO refunds (id, payment_id, notice_id, refund_reference, amount, reason,
            status, next_attempt_at, requested_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'requested', now(), now(), now())
         ON CONFLICT (payment_id) DO NOTHING",
        &[
            &Uuid::now_v7(),
            &n.payment_id,
            &n.notice_id,
            &reference,
            &n.amount,
            &n.reason,
        ],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT id, refund_reference FROM refunds WHERE payment_id = $1",
            &[&n.payment_id],
        )
        .await?;
    let (id, reference): (Uuid, String) = (row.get(0), row.get(1));
    audit::append(
        tx,
        n.actor,
        "refund.requested",
        &reference,
        &serde_json::json!({"id": id, "payment": n.payment_id, "amount": n.amount,
            "reason": n.reason}),
    )
    .await?;
    Ok((id, reference))
}

/// Claims refunds due to be sent (requested, or refunded by a notification that did not name
/// the refund's transaction; their next attempt due): pushes their next attempt `lease_secs`
/// ahead and counts the attempt, so other instances leave them alone while this one sends them.
pub async fn claim_refunds_due<C: GenericClient>(
    client: &C,
    lease_secs: i64,
    limit: i64,
    only: Option<Uuid>,
) -> Result<Vec<RefundRow>, StoreError> {
    let sql = format!(
        "UPDATE refunds f SET next_attempt_at = now() + make_interval(secs => $1),
                attempts = f.attempts + 1, updated_at = now()
          WHERE f.id IN (SELECT id FROM refunds
                          WHERE (status = 'requested'
                                 OR (status = 'refunded' AND transaction_id IS NULL))
                            AND next_attempt_at <= now()
                            AND ($3::uuid IS NULL OR id = $3)
                          ORDER BY next_attempt_at
                          FOR UPDATE SKIP LOCKED LIMIT $2)
          RETURNING {REFUND}"
    );
    client
        .query(&sql, &[&(lease_secs as f64), &limit, &only])
        .await?
        .iter()
        .map(refund_row)
        .collect()
}

/// The platform accepted the refund request: its notification follows.
pub async fn refund_accepted<C: GenericClient>(client: &C, id: Uuid) -> Result<bool, StoreError> {
    Ok(client
        .execute(
            "UPDATE refunds SET status = 'accepted', last_error = NULL, updated_at = now()
              WHERE id = $1 AND status = 'requested'",
            &[&id],
        )
        .await?
        == 1)
}

/// Sending the refund request failed: tried again after `retry_secs`.
pub async fn refund_failed<C: GenericClient>(
    client: &C,
    id: Uuid,
    error: &str,
    retry_secs: i64,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE refunds SET last_error = $2, updated_at = now(),
                    next_attempt_at = now() + make_interval(secs => $3)
              WHERE id = $1 AND (status = 'requested' OR transaction_id IS NULL)",
            &[&id, &error, &(retry_secs as f64)],
        )
        .await?;
    Ok(())
}

/// A refund by its reference, locked until the end of the caller's transaction.
pub async fn lock_refund<C: GenericClient>(
    tx: &C,
    refund_reference: &str,
) -> Result<Option<RefundRow>, StoreError> {
    let sql = format!("SELECT {REFUND} FROM refunds f WHERE f.refund_reference = $1 FOR UPDATE");
    tx.query_opt(&sql, &[&refund_reference])
        .await?
        .map(|r| refund_row(&r))
        .transpose()
}

/// Records a locked refund as paid back; `transaction_id` is the refund's own transaction when
/// known (the platform's answer names it, its notification does not), `at` the platform's time
/// when known (its notification says it; now otherwise).
pub async fn complete_refund<C: GenericClient>(
    tx: &C,
    refund: &RefundRow,
    transaction_id: Option<&str>,
    at: Option<DateTime<Utc>>,
    actor: &str,
) -> Result<(), StoreError> {
    if !refund.status.can_become(RefundStatus::Refunded) {
        return Err(StoreError::Transition(format!(
            "refund: transition {} -> refunded is not allowed",
            refund.status.as_str()
        )));
    }
    tx.execute(
        "UPDATE refunds SET status = 'refunded', transaction_id = $2,
                refunded_at = coalesce($3, now()), last_error = NULL, updated_at = now()
          WHERE id = $1",
        &[&refund.id, &transaction_id, &at],
    )
    .await?;
    audit::append(
        tx,
        actor,
        "refund.refunded",
        &refund.refund_reference,
        &serde_json::json!({"id": refund.id, "transaction_id": transaction_id,
            "amount": refund.amount}),
    )
    .await?;
    Ok(())
}

/// Records the transaction of a refund already refunded without it; returns whether it was
/// missing.
pub async fn set_refund_transaction<C: GenericClient>(
    tx: &C,
    refund: &RefundRow,
    transaction_id: &str,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "UPDATE refunds SET transaction_id = $2, last_error = NULL, updated_at = now()
              WHERE id = $1 AND status = 'refunded' AND transaction_id IS NULL",
            &[&refund.id, &transaction_id],
        )
        .await?
        == 1)
}

/// Records the platform's time of a refund recorded before its notification said it (the
/// answer carries none), so the refund falls on the platform's settlement day.
pub async fn set_refunded_at<C: GenericClient>(
    tx: &C,
    refund: &RefundRow,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE refunds SET refunded_at = $2, updated_at = now()
          WHERE id = $1 AND status = 'refunded' AND refunded_at IS DISTINCT FROM $2",
        &[&refund.id, &at],
    )
    .await?;
    Ok(())
}

/// A refund as recorded, for reconciliation.
#[derive(Debug, Clone, Serialize)]
pub struct RefundRecord {
    /// The refund's own transaction at the platform (null while only its notification, which
    /// does not name it, is known).
    pub transaction_id: Option<String>,
    pub refund_reference: String,
    /// The refunded order's platform reference (what the settlement file names).
    pub platform_reference: String,
    pub notice_reference: String,
    pub amount: i64,
    pub refunded_at: DateTime<Utc>,
}

/// Every refund the window recorded as paid back in `[start, end)` (when it learnt so).
pub async fn refunds_between<C: GenericClient>(
    client: &C,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<RefundRecord>, StoreError> {
    Ok(client
        .query(
            "SELECT f.transaction_id, f.refund_reference, o.platform_reference, n.reference,
                    f.amount, f.refunded_at
               FROM refunds f
               JOIN payments p ON p.id = f.payment_id
               JOIN payment_orders o ON o.id = p.order_id
               JOIN fee_notices n ON n.id = f.notice_id
              WHERE f.status = 'refunded' AND f.refunded_at >= $1 AND f.refunded_at < $2
              ORDER BY f.refunded_at, f.id",
            &[&start, &end],
        )
        .await?
        .iter()
        .map(|r| RefundRecord {
            transaction_id: r.get(0),
            refund_reference: r.get(1),
            platform_reference: r.get(2),
            notice_reference: r.get(3),
            amount: r.get(4),
            refunded_at: r.get(5),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// E-receipts

/// The next e-receipt number, e.g. `RCPT-2026-000042`.
pub async fn next_receipt_number<C: GenericClient>(tx: &C) -> Result<String, StoreError> {
    Ok(tx
        .query_one(
            "SELECT 'RCPT-' || to_char(now() AT TIME ZONE 'UTC', 'YYYY') || '-'
                    || lpad(nextval('e_receipt_seq')::text, 6, '0')",
            &[],
        )
        .await?
        .get(0))
}

/// An e-receipt to store: its exact bytes and detached signature.
pub struct NewReceipt<'a> {
    pub number: &'a str,
    pub notice_id: Uuid,
    pub payment_id: Uuid,
    pub body: &'a [u8],
    pub signature: &'a [u8],
    pub issued_at: DateTime<Utc>,
}

/// Stores an e-receipt (document bytes with their SHA-256, and its row) inside the caller's
/// transaction, with its audit entry.
pub async fn insert_receipt<C: GenericClient>(
    tx: &C,
    n: &NewReceipt<'_>,
) -> Result<(), StoreError> {
    let document_id = Uuid::now_v7();
    let sha: [u8; 32] = Sha256::digest(n.body).into();
    let size = i32::try_from(n.body.len())
        .map_err(|_| StoreError::Conflict("an e-receipt over 2 GiB".into()))?;
    tx.execute(
        "INSERT INTO documents (id, kind, sha256, size, body, received_at)
         VALUES ($1, 'e-receipt', $2, $3, $4, $5)",
        &[&document_id, &&sha[..], &size, &n.body, &n.issued_at],
    )
    .await?;
    let id = Uuid::now_v7();
    tx.execute(
        "INSERT INTO e_receipts (id, number, notice_id, payment_id, document_id, signature,
            issued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &id,
            &n.number,
            &n.notice_id,
            &n.payment_id,
            &document_id,
            &n.signature,
            &n.issued_at,
        ],
    )
    .await?;
    audit::append(
        tx,
        "system",
        "e_receipt.issued",
        n.number,
        &serde_json::json!({"id": id, "notice": n.notice_id, "payment": n.payment_id,
            "sha256": hex::encode(sha)}),
    )
    .await?;
    Ok(())
}

/// A notice's e-receipt: its bytes, its detached signature, and who may see it (applicant,
/// agency).
pub struct ReceiptDocument {
    pub number: String,
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
    pub applicant_id: String,
    pub agency: String,
}

/// The e-receipt of the notice with payment reference `reference`, if it has one.
pub async fn receipt_document<C: GenericClient>(
    client: &C,
    reference: &str,
) -> Result<Option<ReceiptDocument>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT r.number, d.body, r.signature, n.applicant_id, n.agency
               FROM fee_notices n
               JOIN e_receipts r ON r.notice_id = n.id
               JOIN documents d ON d.id = r.document_id
              WHERE n.reference = $1",
            &[&reference],
        )
        .await?
        .map(|r| ReceiptDocument {
            number: r.get(0),
            body: r.get(1),
            signature: r.get(2),
            applicant_id: r.get(3),
            agency: r.get(4),
        }))
}

// ---------------------------------------------------------------------------------------
// What clients see

/// The order a payer is sent to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PaymentOrder)]
pub struct OrderView {
    /// The platform's id of the order.
    pub order_id: String,
    /// The reference the platform knows it by (the notice's, or `<reference>-<n>` for a later
    /// order after one was cancelled).
    pub platform_reference: String,
    /// The platform's page the payer's browser is sent to.
    pub pay_url: String,
    #[schema(value_type = crate::domain::fee_state::OrderStatus)]
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A paid fee's e-receipt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EReceiptInfo)]
pub struct ReceiptView {
    /// `RCPT-2026-000001`.
    pub number: String,
    pub issued_at: DateTime<Utc>,
    /// The platform's transaction that paid the fee.
    pub transaction_id: String,
    /// Where to download it (`application/xml`); its signature is at the same path + `.p7s`.
    pub href: String,
}

/// A refund of the fee.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FeeRefund)]
pub struct RefundView {
    pub refund_reference: String,
    /// Whole đồng.
    pub amount: i64,
    #[schema(value_type = crate::domain::fee_state::RefundStatus)]
    pub status: String,
    pub requested_at: DateTime<Utc>,
    pub refunded_at: Option<DateTime<Utc>>,
}

/// A fee notice as the applicant, its agency and administrators see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FeeNotice)]
pub struct NoticeView {
    /// The payment reference, e.g. `FEE-2026-000001`.
    pub reference: String,
    pub application_id: Uuid,
    pub application_reference: String,
    pub applicant_id: String,
    pub agency: String,
    pub agency_name: String,
    pub procedure_code: String,
    /// Whole đồng.
    pub amount: i64,
    /// Always `VND`.
    pub currency: String,
    /// The last day to pay, on the window's calendar.
    pub due_date: NaiveDate,
    #[schema(value_type = crate::domain::fee_state::Status)]
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    /// The latest order at the platform, if a payment was started.
    pub order: Option<OrderView>,
    /// The e-receipt, once paid.
    pub receipt: Option<ReceiptView>,
    /// The refund, if one was asked for.
    pub refund: Option<RefundView>,
}

const VIEW: &str = "SELECT n.id, n.reference, n.application_id, a.reference, n.applicant_id,
        n.agency, n.agency_name, n.procedure_code, n.amount, n.currency, n.due_date, n.status,
        n.created_at, n.paid_at,
        o.order_id, o.platform_reference, o.pay_url, o.status, o.expires_at, o.created_at,
        r.number, r.issued_at, p.transaction_id,
        f.refund_reference, f.amount, f.status, f.requested_at, f.refunded_at
   FROM fee_notices n
   JOIN licence_applications a ON a.id = n.application_id
   LEFT JOIN LATERAL (SELECT * FROM payment_orders x WHERE x.notice_id = n.id
                       ORDER BY x.attempt DESC LIMIT 1) o ON true
   LEFT JOIN e_receipts r ON r.notice_id = n.id
   LEFT JOIN payments p ON p.id = r.payment_id
   LEFT JOIN LATERAL (SELECT * FROM refunds y WHERE y.notice_id = n.id
                       ORDER BY y.requested_at DESC, y.id DESC LIMIT 1) f ON true";

fn view(r: &tokio_postgres::Row) -> NoticeView {
    let reference: String = r.get(1);
    let order = r.get::<_, Option<String>>(14).map(|order_id| OrderView {
        order_id,
        platform_reference: r.get(15),
        pay_url: r.get(16),
        status: r.get(17),
        expires_at: r.get(18),
        created_at: r.get(19),
    });
    let receipt = r.get::<_, Option<String>>(20).map(|number| ReceiptView {
        number,
        issued_at: r.get(21),
        transaction_id: r.get(22),
        href: format!("/api/v1/fees/{reference}/receipt"),
    });
    let refund = r
        .get::<_, Option<String>>(23)
        .map(|refund_reference| RefundView {
            refund_reference,
            amount: r.get(24),
            status: r.get(25),
            requested_at: r.get(26),
            refunded_at: r.get(27),
        });
    NoticeView {
        reference,
        application_id: r.get(2),
        application_reference: r.get(3),
        applicant_id: r.get(4),
        agency: r.get(5),
        agency_name: r.get(6),
        procedure_code: r.get(7),
        amount: r.get(8),
        currency: r.get(9),
        due_date: r.get(10),
        status: r.get(11),
        created_at: r.get(12),
        paid_at: r.get(13),
        order,
        receipt,
        refund,
    }
}

/// The fee notice of application `application_id` as `scope` may see it (the applicant, the
/// agency it was routed to, everyone for administrators); `None` when there is none or it is
/// not the caller's.
pub async fn notice_view<C: GenericClient>(
    client: &C,
    scope: &AppScope<'_>,
    application_id: Uuid,
) -> Result<Option<NoticeView>, StoreError> {
    let (applicant, agency) = match scope {
        AppScope::Applicant(p) => (Some(*p), None),
        AppScope::Agency(a) => (None, Some(*a)),
        AppScope::All => (None, None),
    };
    let sql = format!(
        "{VIEW} WHERE n.application_id = $1 AND ($2::text IS NULL OR n.applicant_id = $2)
                AND ($3::text IS NULL OR n.agency = $3)"
    );
    Ok(client
        .query_opt(&sql, &[&application_id, &applicant, &agency])
        .await?
        .map(|r| view(&r)))
}

/// An enterprise's fee notices, newest first, in `status` if given, after the notice
/// `before` (a page's cursor: the last notice's id of the previous page). Returns the page and
/// the cursor of the next one.
pub async fn list_notices<C: GenericClient>(
    client: &C,
    applicant: &str,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<NoticeView>, Option<Uuid>), StoreError> {
    let sql = format!(
        "{VIEW} WHERE n.applicant_id = $1 AND ($2::text IS NULL OR n.status = $2)
                AND ($3::uuid IS NULL OR n.id < $3)
          ORDER BY n.id DESC LIMIT $4"
    );
    let rows = client
        .query(&sql, &[&applicant, &status, &before, &(limit + 1)])
        .await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let next = if more {
        rows.last().map(|r| r.get::<_, Uuid>(0))
    } else {
        None
    };
    Ok((rows.iter().map(view).collect(), next))
}

// ---------------------------------------------------------------------------------------
// Notifications and alerts

/// A notification as received, to log.
pub struct LoggedNotification<'a> {
    pub body: &'a [u8],
    pub signature: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub verified: bool,
    /// The answer's code: `ACKNOWLEDGED`, `ALREADY_APPLIED`, or the problem's code.
    pub outcome: &'a str,
    pub http_status: u16,
    pub reference: Option<&'a str>,
    pub transaction_id: Option<&'a str>,
}

/// Logs a notification with its exact bytes.
pub async fn log_notification<C: GenericClient>(
    client: &C,
    n: &LoggedNotification<'_>,
) -> Result<i64, StoreError> {
    let sha: [u8; 32] = Sha256::digest(n.body).into();
    Ok(client
        .query_one(
            "INSERT INTO payment_notifications (received_at, body, body_sha256, signature,
                key_id, verified, outcome, http_status, reference, transaction_id)
             VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                &n.body,
                &&sha[..],
                &n.signature,
                &n.key_id,
                &n.verified,
                &n.outcome,
                &i32::from(n.http_status),
                &n.reference,
                &n.transaction_id,
            ],
        )
        .await?
        .get(0))
}

/// An alert to raise.
pub struct NewAlert<'a> {
    /// A stable code, e.g. `PAYMENT_AMOUNT_MISMATCH`, `PAYMENT_AFTER_CANCELLATION`.
    pub kind: &'a str,
    pub reference: Option<&'a str>,
    pub transaction_id: Option<&'a str>,
    pub detail: &'a str,
    /// SHA-256 of the message that raised it, when one did.
    pub body: Option<&'a [u8]>,
}

/// Raises an alert: a new row (with an audit entry) the first time for its kind, reference and
/// transaction, a counted repeat afterwards (the platform retries what the window refuses).
/// Returns whether it is new.
pub async fn raise_alert<C: GenericClient>(
    client: &C,
    a: &NewAlert<'_>,
) -> Result<bool, StoreError> {
    let sha = a.body.map(|b| Sha256::digest(b).to_vec());
    let new: bool = client
        .query_one(
            "INSERT INTO payment_alerts (kind, reference, transaction_id, detail, body_sha256,
                first_at, last_at)
             VALUES ($1, coalesce($2, ''), coalesce($3, ''), $4, $5, now(), now())
             ON CONFLICT (kind, reference, transaction_id)
             DO UPDATE SET occurrences = payment_alerts.occurrences + 1, last_at = now(),
                           detail = EXCLUDED.detail,
                           body_sha256 = coalesce(EXCLUDED.body_sha256, payment_alerts.body_sha256)
             RETURNING occurrences = 1",
            &[&a.kind, &a.reference, &a.transaction_id, &a.detail, &sha],
        )
        .await?
        .get(0);
    if new {
        audit::append(
            client,
            "payments",
            "payment.alert",
            a.reference.unwrap_or(""),
            &serde_json::json!({"kind": a.kind, "transaction_id": a.transaction_id,
                "detail": a.detail, "body_sha256": sha.as_ref().map(hex::encode)}),
        )
        .await?;
    }
    Ok(new)
}

/// An alert, for the operator.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub kind: String,
    pub reference: String,
    pub transaction_id: String,
    pub detail: String,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub occurrences: i32,
}

/// The latest alerts (by their last occurrence), newest first.
pub async fn alerts<C: GenericClient>(client: &C, limit: i64) -> Result<Vec<AlertRow>, StoreError> {
    Ok(client
        .query(
            "SELECT id, kind, reference, transaction_id, detail, first_at, last_at, occurrences
               FROM payment_alerts ORDER BY last_at DESC, id DESC LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| AlertRow {
            id: r.get(0),
            kind: r.get(1),
            reference: r.get(2),
            transaction_id: r.get(3),
            detail: r.get(4),
            first_at: r.get(5),
            last_at: r.get(6),
            occurrences: r.get(7),
        })
        .collect())
}
