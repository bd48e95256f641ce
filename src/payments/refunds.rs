//! Refunds: a request is a row (`refunds`), stored in the transaction that decided it (a
//! withdrawal before review, a payment that came when it should not have), then sent — at once
//! after that commit, and by the payments job until the platform accepts it. The platform is
//! idempotent per refund reference (`<paid order's reference>-R`), so sending twice asks once.
//! The platform's `refunded` report (its notification, or its answer when it refunds at once)
//! completes the refund exactly once (`UNIQUE (transaction_id)`, a guarded status change).

use chrono::Utc;
use uuid::Uuid;

use super::client::CallError;
use super::protocol::{RefundRequest, RefundStatus, CURRENCY};
use super::{Payments, ACTOR};
use crate::domain::fee_state::{OrderStatus, RefundStatus as Stored, Status};
use crate::store::payments::{self as store, RefundRow};
use crate::workflow::WorkflowError;

/// How long a claimed refund is left to the instance sending it.
const LEASE_SECS: i64 = 60;
/// Refunds claimed per pass.
const BATCH: i64 = 16;

/// Delay before the next attempt after `attempts` failed ones: 10 s, doubling, at most an hour.
fn backoff_secs(attempts: i32) -> i64 {
    let exp = attempts.clamp(1, 10) as u32 - 1;
    (10i64 << exp).min(3600)
}

/// Sends refund `id` now if it is due (best effort: a failure is left to the payments job).
pub async fn send_now(p: &Payments, id: Uuid) {
    match p.pool.get().await {
        Ok(client) => match store::claim_refunds_due(&client, LEASE_SECS, 1, Some(id)).await {
            Ok(rows) => {
                for row in rows {
                    send(p, &row).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "refund not sent now; the payments job will"),
        },
        Err(e) => tracing::warn!(error = %e, "refund not sent now; the payments job will"),
    }
}

/// Sends every refund due (one pass of the payments job); returns how many were sent.
pub async fn send_due(p: &Payments) -> usize {
    let rows = match p.pool.get().await {
        Ok(client) => store::claim_refunds_due(&client, LEASE_SECS, BATCH, None).await,
        Err(e) => Err(e.into()),
    };
    match rows {
        Ok(rows) => {
            let n = rows.len();
            for row in rows {
                send(p, &row).await;
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "refunds: cannot claim");
            0
        }
    }
}

/// One attempt: the signed request, its signed answer judged, the outcome recorded.
async fn send(p: &Payments, row: &RefundRow) {
    let result = attempt(p, row).await;
    let client = match p.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, refund = %row.refund_reference, "refund outcome not recorded");
            return;
        }
    };
    let recorded = match result {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(refund = %row.refund_reference, error = %e, "refund not accepted yet");
            if let CallError::Refused { code, message, .. } = &e {
                let detail = format!(
                    "the platform refused refund {}: {code} {message}",
                    row.refund_reference
                );
                let _ = store::raise_alert(
                    &client,
                    &store::NewAlert {
                        kind: "PAYMENT_REFUND_REFUSED",
                        reference: Some(&row.refund_reference),
                        transaction_id: None,
                        detail: &detail,
                        body: None,
                    },
                )
                .await;
            }
            store::refund_failed(&client, row.id, &e.to_string(), backoff_secs(row.attempts)).await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, refund = %row.refund_reference, "refund outcome not recorded");
    }
}

async fn attempt(p: &Payments, row: &RefundRow) -> Result<(), CallError> {
    let signer = p
        .signer()
        .await
        .map_err(|e| CallError::Unavailable(e.to_string()))?;
    let request = RefundRequest {
        merchant_id: p.merchant_id.clone(),
        reference: row.platform_reference.clone(),
        refund_reference: row.refund_reference.clone(),
        amount: row.amount,
        currency: CURRENCY.into(),
        reason: row.reason.clone(),
        requested_at: Utc::now(),
    };
    let answer = p.platform.refund(&signer, &request).await?;
    if answer.merchant_id != p.merchant_id
        || answer.refund_reference != row.refund_reference
        || answer.amount != row.amount
        || answer.currency != CURRENCY
    {
        return Err(CallError::Untrusted(format!(
            "the answer to refund {} names {} {} {} {}",
            row.refund_reference,
            answer.merchant_id,
            answer.refund_reference,
            answer.amount,
            answer.currency
        )));
    }
    let client = p
        .pool
        .get()
        .await
        .map_err(|e| CallError::Unavailable(e.to_string()))?;
    match (answer.status, answer.transaction_id.as_deref()) {
        (RefundStatus::Refunded, Some(txn)) => {
            drop(client);
            complete(
                p,
                &row.refund_reference,
                row.amount,
                Report::Answer {
                    refund_transaction: txn,
                },
            )
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        }
        _ => {
            store::refund_accepted(&client, row.id)
                .await
                .map_err(|e| CallError::Unavailable(e.to_string()))?;
        }
    }
    Ok(())
}

/// What completing a refund did.
#[derive(Debug, PartialEq, Eq)]
pub enum Completed {
    /// Recorded now: the notice (when it was waiting for this refund) is refunded.
    Refunded,
    /// Recorded before: nothing changed (but the refund's own transaction, if this report is
    /// the first to name it).
    AlreadyRecorded,
}

/// Who reports a refund paid back, and what its report names.
#[derive(Debug, Clone, Copy)]
pub enum Report<'a> {
    /// The platform's signed answer to the refund request: it names the refund's own
    /// transaction.
    Answer { refund_transaction: &'a str },
    /// The platform's signed `refunded` notification: it names the refunded payment's
    /// transaction (protocol: `transaction_id` is the payment's) and when the refund took
    /// effect at the platform (`at`), which settles on that day.
    Notification {
        payment_transaction: &'a str,
        at: chrono::DateTime<chrono::Utc>,
    },
}

/// Why a `refunded` report was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RefundReportError {
    #[error("no refund {0} was asked for")]
    Unknown(String),
    #[error("refund {reference} is of {expected} VND, not {got}")]
    AmountMismatch {
        reference: String,
        expected: i64,
        got: i64,
    },
    #[error("refund {reference} does not match transaction {got} ({why})")]
    OtherTransaction {
        reference: String,
        got: String,
        why: &'static str,
    },
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

impl From<crate::store::StoreError> for RefundReportError {
    fn from(e: crate::store::StoreError) -> Self {
        RefundReportError::Workflow(e.into())
    }
}

impl From<tokio_postgres::Error> for RefundReportError {
    fn from(e: tokio_postgres::Error) -> Self {
        RefundReportError::Workflow(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for RefundReportError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RefundReportError::Workflow(e.into())
    }
}

/// Records refund `refund_reference` of `amount` as paid back, exactly once: the refund, the
/// refunded order and (when it waited for this refund) the fee notice, in one transaction. A
/// second report (the notification after the answer, or the other way round) changes nothing,
/// except that an answer names the refund's own transaction if it was not known yet.
pub async fn complete(
    p: &Payments,
    refund_reference: &str,
    amount: i64,
    report: Report<'_>,
) -> Result<Completed, RefundReportError> {
    let mut client = p.pool.get().await?;
    let tx = client.transaction().await?;
    let refund = store::lock_refund(&tx, refund_reference)
        .await?
        .ok_or_else(|| RefundReportError::Unknown(refund_reference.to_owned()))?;
    if refund.amount != amount {
        return Err(RefundReportError::AmountMismatch {
            reference: refund_reference.to_owned(),
            expected: refund.amount,
            got: amount,
        });
    }
    // The platform's time when it says it (payments keep theirs too), else the time we learn
    // it: the answer completes the refund at once and carries no time.
    let refunded_at = match report {
        Report::Notification { at, .. } => Some(at),
        Report::Answer { .. } => None,
    };
    let refund_transaction = match report {
        Report::Notification {
            payment_transaction,
            ..
        } => {
            if payment_transaction != refund.payment_transaction_id {
                return Err(RefundReportError::OtherTransaction {
                    reference: refund_reference.to_owned(),
                    got: payment_transaction.to_owned(),
                    why: "not the refunded payment's transaction",
                });
            }
            None
        }
        Report::Answer { refund_transaction } => {
            if let Some(known) = refund.transaction_id.as_deref() {
                if known != refund_transaction {
                    return Err(RefundReportError::OtherTransaction {
                        reference: refund_reference.to_owned(),
                        got: refund_transaction.to_owned(),
                        why: "the refund was recorded with another transaction",
                    });
                }
            }
            Some(refund_transaction)
        }
    };
    if refund.status == Stored::Refunded {
        if let Some(t) = refund_transaction {
            store::set_refund_transaction(&tx, &refund, t).await?;
        }
        if let Some(at) = refunded_at {
            store::set_refunded_at(&tx, &refund, at).await?;
        }
        tx.commit().await?;
        return Ok(Completed::AlreadyRecorded);
    }
    store::complete_refund(&tx, &refund, refund_transaction, refunded_at, ACTOR).await?;
    if let Some(order) = store::order_by_platform_reference(&tx, &refund.platform_reference).await?
    {
        store::mark_order(&tx, order.id, OrderStatus::Refunded, None).await?;
    }
    let notice = store::lock_notice(&tx, refund.notice_id).await?;
    if notice.status == Status::RefundRequested
        && store::applied_payment(&tx, notice.id)
            .await?
            .is_some_and(|(id, _, _)| id == refund.payment_id)
    {
        store::set_notice_status(
            &tx,
            &notice,
            Status::Refunded,
            ACTOR,
            serde_json::json!({"refund": refund_reference, "transaction_id": refund_transaction}),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(refund = %refund_reference, "refund recorded");
    Ok(Completed::Refunded)
}

#[cfg(test)]
mod tests {
    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(super::backoff_secs(1), 10);
        assert_eq!(super::backoff_secs(2), 20);
        assert_eq!(super::backoff_secs(4), 80);
        assert_eq!(super::backoff_secs(50), 3600);
    }
}
