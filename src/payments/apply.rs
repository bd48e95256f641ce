//! Applying a payment the platform reported (in a signed notification or a signed status
//! answer: the same function for both), exactly once. In one transaction: the notice is
//! locked, the platform transaction recorded (`UNIQUE (transaction_id)`: a repeat records
//! nothing and changes nothing), and then either
//!
//! - the notice was due: it becomes paid, its application moves from `awaiting_payment` to
//!   `received` (event "fee paid, transaction …", audit entry; the agency's time limit starts)
//!   and its e-receipt is issued; or
//! - it was not (cancelled after its due date, or already paid by another transaction): the
//!   money is recorded all the same (`refund_due`), an alert is raised and a refund is
//!   requested, sent at once after commit and by the payments job until accepted.

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{refunds, Payments, ACTOR};
use crate::domain::application_state::Status as AppStatus;
use crate::domain::fee_state::{OrderStatus, Status};
use crate::store::licensing::{self as applications, AppScope};
use crate::store::payments::{self as store, OrderRow, Source};
use crate::workflow::WorkflowError;

/// A payment as the platform reported it, already checked against the order (reference,
/// merchant, currency, amount).
pub struct Evidence<'a> {
    pub order: &'a OrderRow,
    pub transaction_id: &'a str,
    pub amount: i64,
    pub paid_at: DateTime<Utc>,
    pub source: Source,
}

/// What applying a payment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The notice is paid by it; the e-receipt has this number.
    Applied { receipt: String },
    /// The transaction was recorded before: nothing changed.
    AlreadyRecorded,
    /// Recorded, alerted, and a refund requested (the notice was not due).
    RefundDue { refund_reference: String },
}

/// Applies the payment `ev` exactly once (see the module's documentation).
pub async fn apply_payment(p: &Payments, ev: Evidence<'_>) -> Result<Outcome, WorkflowError> {
    let span = tracing::info_span!("payments.apply", reference = %ev.order.platform_reference,
        transaction = %ev.transaction_id, source = ev.source.as_str());
    apply(p, ev).instrument(span).await
}

async fn apply(p: &Payments, ev: Evidence<'_>) -> Result<Outcome, WorkflowError> {
    let mut client = p.pool.get().await?;
    let tx = client.transaction().await?;
    let notice = store::lock_notice(&tx, ev.order.notice_id).await?;
    let applies = notice.status == Status::Due;
    let Some(payment_id) = store::record_payment(
        &tx,
        &store::NewPayment {
            notice_id: notice.id,
            order: ev.order.id,
            transaction_id: ev.transaction_id,
            amount: ev.amount,
            paid_at: ev.paid_at,
            source: ev.source,
            applied: applies,
        },
    )
    .await?
    else {
        // Dropping the transaction rolls it back: it wrote nothing.
        return Ok(Outcome::AlreadyRecorded);
    };
    store::mark_order(&tx, ev.order.id, OrderStatus::Paid, Some(ev.transaction_id)).await?;
    if applies {
        store::set_notice_status(
            &tx,
            &notice,
            Status::Paid,
            ACTOR,
            serde_json::json!({"transaction_id": ev.transaction_id, "amount": ev.amount,
                "order": ev.order.order_id, "source": ev.source.as_str()}),
        )
        .await?;
        applications::transition(
            &tx,
            &AppScope::All,
            notice.application_id,
            AppStatus::Received,
            ACTOR,
            Some(&format!(
                "fee paid, transaction {} ({} VND, {})",
                ev.transaction_id, ev.amount, notice.reference
            )),
        )
        .await?;
        let receipt =
            super::receipts::issue(&tx, p, &notice, payment_id, ev.transaction_id, ev.paid_at)
                .await?;
        tx.commit().await?;
        tracing::info!(reference = %notice.reference, %receipt, "fee paid");
        return Ok(Outcome::Applied { receipt });
    }
    let (kind, why) = if notice.status == Status::Cancelled {
        (
            "PAYMENT_AFTER_CANCELLATION",
            format!(
                "transaction {} paid fee notice {} after it was cancelled",
                ev.transaction_id, notice.reference
            ),
        )
    } else {
        (
            "PAYMENT_DUPLICATE",
            format!(
                "transaction {} paid fee notice {}, which is {} already",
                ev.transaction_id,
                notice.reference,
                notice.status.as_str()
            ),
        )
    };
    let (refund_id, refund_reference) = store::insert_refund(
        &tx,
        &store::NewRefund {
            payment_id,
            notice_id: notice.id,
            platform_reference: &ev.order.platform_reference,
            amount: ev.amount,
            reason: if notice.status == Status::Cancelled {
                "paid after the fee notice was cancelled"
            } else {
                "paid twice"
            },
            actor: ACTOR,
        },
    )
    .await?;
    store::raise_alert(
        &tx,
        &store::NewAlert {
            kind,
            reference: Some(&notice.reference),
            transaction_id: Some(ev.transaction_id),
            detail: &why,
            body: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(reference = %notice.reference, %refund_reference, "{why}; refund requested");
    refunds::send_now(p, refund_id).await;
    Ok(Outcome::RefundDue { refund_reference })
}
