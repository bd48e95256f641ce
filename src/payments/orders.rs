//! Orders at the payment platform: [`start_payment`] (the workflow the API and the portal
//! call when an applicant pays) and [`settle`] (ask the platform about an order and act on its
//! signed answer, for the payments job).
//!
//! Nothing is stored before the platform answers: a creation that fails (platform down, a
//! timeout, an answer lost) leaves no row, and the retry asks for the same platform reference,
//! which the platform answers with the order it may have made the first time (it is idempotent
//! per reference). Two concurrent starts ask for the same reference too, and store the one
//! order once (`UNIQUE (notice_id, attempt)`).

use chrono::{DateTime, Days, NaiveTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::apply::{self, Evidence, Outcome};
use super::client::CallError;
use super::protocol::{Order, OrderRequest, OrderStatus as PlatformStatus, StatusQuery, CURRENCY};
use super::Payments;
use crate::domain::fee_state::{OrderStatus, Status};
use crate::store::payments::{self as store, NoticeRow, OrderRow, Source};
use crate::workflow::WorkflowError;

/// Seconds a client is asked to wait before trying again when the platform is down.
pub const RETRY_AFTER_SECS: u64 = 30;

/// An order the payer's browser may be sent to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PaymentStarted)]
pub struct Started {
    /// The fee notice's payment reference.
    pub reference: String,
    /// Whole đồng.
    pub amount: i64,
    /// Always `VND`.
    pub currency: String,
    /// The notice's status (`due` while the payer has not paid).
    #[schema(value_type = crate::domain::fee_state::Status)]
    pub status: String,
    /// The platform's page to send the payer's browser to.
    pub pay_url: String,
    /// The platform's id of the order.
    pub order_id: String,
    /// After this the platform refuses the payment (the end of the notice's due date).
    pub expires_at: DateTime<Utc>,
    /// Whether this call created the order (`false`: the pending order made before is
    /// still good and is answered again).
    #[serde(skip)]
    pub created: bool,
}

fn unavailable(e: CallError) -> WorkflowError {
    WorkflowError::Unavailable {
        code: "PAYMENT_PLATFORM_UNAVAILABLE",
        detail: format!("{e}; nothing was stored: try again later"),
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

/// The end of the notice's due date, the window's local time: when its orders expire.
fn expiry(p: &Payments, notice: &NoticeRow) -> DateTime<Utc> {
    let next = notice.due_date + Days::new(1);
    let local = next.and_time(NaiveTime::MIN)
        - chrono::Duration::seconds(p.clock.offset().local_minus_utc().into());
    DateTime::from_naive_utc_and_offset(local, Utc)
}

/// The platform reference of attempt `attempt` of a notice: its own reference first, then
/// `<reference>-<attempt>`.
pub fn platform_reference(notice_reference: &str, attempt: i32) -> String {
    if attempt <= 1 {
        notice_reference.to_owned()
    } else {
        format!("{notice_reference}-{attempt}")
    }
}

/// The applicant `applicant` starts paying the fee of application `application_id`: the
/// pending order made before is answered again while it has not expired; otherwise an order is
/// created at the platform (signed request, signed answer checked against what was asked) and
/// stored.
///
/// Errors: `NOT_FOUND` (no such application of the applicant, or no fee), `409 FEE_NOT_DUE`
/// (paid, cancelled or refunded), `409 FEE_OVERDUE` (past its due date: the payments job will
/// cancel it), `503 PAYMENT_PLATFORM_UNAVAILABLE` (with a delay to retry after; nothing
/// stored), `502 PAYMENT_PLATFORM_REFUSED` / `PAYMENT_PLATFORM_INVALID` (a refusal, or an
/// answer that does not verify or does not match the request; an alert is raised).
pub async fn start_payment(
    p: &Payments,
    applicant: &str,
    application_id: Uuid,
) -> Result<Started, WorkflowError> {
    let client = p.pool.get().await?;
    let notice = store::notice_of_application(&client, application_id, false)
        .await?
        .filter(|n| n.applicant_id == applicant)
        .ok_or(crate::store::StoreError::NotFound)?;
    if notice.status != Status::Due {
        return Err(WorkflowError::Conflict {
            code: "FEE_NOT_DUE",
            detail: format!(
                "fee notice {} is {}: there is nothing to pay",
                notice.reference,
                notice.status.as_str()
            ),
        });
    }
    if p.clock.today() > notice.due_date {
        return Err(WorkflowError::Conflict {
            code: "FEE_OVERDUE",
            detail: format!(
                "fee notice {} was due by {}; the application will be cancelled",
                notice.reference, notice.due_date
            ),
        });
    }
    let latest = store::latest_order(&client, notice.id).await?;
    drop(client);
    if let Some(o) = latest
        .as_ref()
        .filter(|o| o.status == OrderStatus::Pending && o.expires_at > Utc::now())
    {
        return Ok(started(&notice, o, false));
    }
    let first = latest.map_or(1, |o| o.attempt + 1);
    // A reference the platform already cancelled (the answer to an earlier creation was lost,
    // and the payer cancelled meanwhile) is skipped for the next one; a few at most.
    for attempt in first..first + 3 {
        let order = create(p, &notice, attempt).await?;
        if order.status == OrderStatus::Pending || order.status == OrderStatus::Paid {
            let notice_now = if order.status == OrderStatus::Paid {
                store::notice_of_application(&p.pool.get().await?, application_id, false)
                    .await?
                    .unwrap_or(notice)
            } else {
                notice
            };
            return Ok(started(&notice_now, &order, true));
        }
    }
    Err(WorkflowError::BadGateway {
        code: "PAYMENT_PLATFORM_INVALID",
        detail: "the platform answered only with orders that cannot be paid".into(),
    })
}

fn started(notice: &NoticeRow, o: &OrderRow, created: bool) -> Started {
    Started {
        reference: notice.reference.clone(),
        amount: notice.amount,
        currency: notice.currency.clone(),
        status: notice.status.as_str().into(),
        pay_url: o.pay_url.clone(),
        order_id: o.order_id.clone(),
        expires_at: o.expires_at,
        created,
    }
}

/// Creates order attempt `attempt` at the platform and stores it (with the status the
/// platform answered; a paid one is applied at once).
async fn create(p: &Payments, notice: &NoticeRow, attempt: i32) -> Result<OrderRow, WorkflowError> {
    let signer = p.signer().await?;
    let reference = platform_reference(&notice.reference, attempt);
    let request = OrderRequest {
        merchant_id: p.merchant_id.clone(),
        reference: reference.clone(),
        amount: notice.amount,
        currency: CURRENCY.into(),
        description: format!(
            "{} fee, application {} ({})",
            notice.procedure_code, notice.application_reference, notice.agency_name
        ),
        return_url: p.return_url(),
        notify_url: p.notify_url(),
        expires_at: expiry(p, notice),
        requested_at: Utc::now(),
    };
    let answer = match p.platform.create_order(&signer, &request).await {
        Ok(a) => a,
        Err(e @ (CallError::NotConfigured(_) | CallError::Unavailable(_))) => {
            return Err(unavailable(e))
        }
        Err(CallError::Refused {
            status,
            code,
            message,
        }) => {
            return Err(WorkflowError::BadGateway {
                code: "PAYMENT_PLATFORM_REFUSED",
                detail: format!(
                    "the payment platform refused the order ({status} {code}): {message}"
                ),
            })
        }
        Err(e @ (CallError::Untrusted(_) | CallError::NotFound)) => {
            alert_invalid(p, &reference, &e.to_string()).await;
            return Err(WorkflowError::BadGateway {
                code: "PAYMENT_PLATFORM_INVALID",
                detail: e.to_string(),
            });
        }
    };
    if let Some(wrong) = mismatch(p, &answer, &reference, notice.amount) {
        alert_invalid(p, &reference, &wrong).await;
        return Err(WorkflowError::BadGateway {
            code: "PAYMENT_PLATFORM_INVALID",
            detail: wrong,
        });
    }
    let client = p.pool.get().await?;
    let order = store::insert_order(
        &client,
        &store::NewOrder {
            notice_id: notice.id,
            attempt,
            platform_reference: &reference,
            order_id: &answer.order_id,
            pay_url: &answer.pay_url,
            amount: answer.amount,
            expires_at: request.expires_at,
        },
    )
    .await?;
    drop(client);
    // A creation repeated after its answer was lost may find the order paid or cancelled.
    act_on(p, &order, &answer, Source::StatusQuery).await?;
    let client = p.pool.get().await?;
    Ok(store::order_by_platform_reference(&client, &reference)
        .await?
        .unwrap_or(order))
}

/// What is wrong with a signed order answer for `reference` of `amount`, if anything.
fn mismatch(p: &Payments, o: &Order, reference: &str, amount: i64) -> Option<String> {
    if o.merchant_id != p.merchant_id {
        return Some(format!(
            "the platform answered for merchant {}",
            o.merchant_id
        ));
    }
    if o.reference != reference {
        return Some(format!(
            "the platform answered about {} when asked about {reference}",
            o.reference
        ));
    }
    if o.currency != CURRENCY {
        return Some(format!("the platform answered in {}", o.currency));
    }
    if o.amount != amount {
        return Some(format!(
            "the platform answered {} VND for {reference}, which is of {amount} VND",
            o.amount
        ));
    }
    None
}

async fn alert_invalid(p: &Payments, reference: &str, detail: &str) {
    if let Ok(client) = p.pool.get().await {
        if let Err(e) = store::raise_alert(
            &client,
            &store::NewAlert {
                kind: "PAYMENT_PLATFORM_INVALID",
                reference: Some(reference),
                transaction_id: None,
                detail,
                body: None,
            },
        )
        .await
        {
            tracing::warn!(error = %e, "alert not raised: {detail}");
        }
    }
}

/// Acts on a signed answer about `order`: a payment is applied (exactly once, as a
/// notification would be), a cancellation or expiry recorded.
async fn act_on(
    p: &Payments,
    order: &OrderRow,
    answer: &Order,
    source: Source,
) -> Result<Option<Outcome>, WorkflowError> {
    let client = p.pool.get().await?;
    match answer.status {
        PlatformStatus::Pending => Ok(None),
        PlatformStatus::Cancelled => {
            store::mark_order(&client, order.id, OrderStatus::Cancelled, None).await?;
            Ok(None)
        }
        PlatformStatus::Expired => {
            store::mark_order(&client, order.id, OrderStatus::Expired, None).await?;
            Ok(None)
        }
        PlatformStatus::Refunded => {
            // Refunds go through the window's own requests, so their payments are recorded;
            // a refunded order the window never saw paid is for the operator to look into.
            if !matches!(order.status, OrderStatus::Paid | OrderStatus::Refunded) {
                let detail = format!(
                    "the platform reports order {} refunded, which the window never saw paid",
                    answer.reference
                );
                store::raise_alert(
                    &client,
                    &store::NewAlert {
                        kind: "PAYMENT_STATE_UNEXPECTED",
                        reference: Some(&answer.reference),
                        transaction_id: answer.transaction_id.as_deref(),
                        detail: &detail,
                        body: None,
                    },
                )
                .await?;
            }
            Ok(None)
        }
        PlatformStatus::Paid => {
            let Some(txn) = answer.transaction_id.as_deref() else {
                return Err(WorkflowError::BadGateway {
                    code: "PAYMENT_PLATFORM_INVALID",
                    detail: format!("order {} is paid without a transaction", answer.reference),
                });
            };
            drop(client);
            let outcome = apply::apply_payment(
                p,
                Evidence {
                    order,
                    transaction_id: txn,
                    amount: answer.amount,
                    paid_at: answer.paid_at.unwrap_or_else(Utc::now),
                    source,
                },
            )
            .await?;
            Ok(Some(outcome))
        }
    }
}

/// What asking the platform about an order found.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Still pending, cancelled or expired: nothing paid.
    Unpaid,
    /// Paid: applied now, or recorded before.
    Paid(Option<Outcome>),
    /// The platform could not be asked, or its answer cannot be believed: nothing is known.
    Unknown(String),
}

/// Asks the platform about `order` (a signed status query) and acts on its signed answer: a
/// payment is applied exactly as a notification's would be (source `status_query`).
pub async fn settle(p: &Payments, order: &OrderRow) -> Settled {
    let signer = match p.signer().await {
        Ok(s) => s,
        Err(e) => return Settled::Unknown(e.to_string()),
    };
    let query = StatusQuery {
        merchant_id: p.merchant_id.clone(),
        reference: order.platform_reference.clone(),
        requested_at: Utc::now(),
    };
    let answer = match p.platform.query(&signer, &query).await {
        Ok(a) => a,
        Err(e) => return Settled::Unknown(e.to_string()),
    };
    if let Some(wrong) = mismatch(p, &answer, &order.platform_reference, order.amount) {
        alert_invalid(p, &order.platform_reference, &wrong).await;
        return Settled::Unknown(wrong);
    }
    if answer.order_id != order.order_id {
        let wrong = format!(
            "the platform answered order {} for {}, stored as order {}",
            answer.order_id, order.platform_reference, order.order_id
        );
        alert_invalid(p, &order.platform_reference, &wrong).await;
        return Settled::Unknown(wrong);
    }
    match act_on(p, order, &answer, Source::StatusQuery).await {
        Ok(Some(outcome)) => Settled::Paid(Some(outcome)),
        Ok(None) => Settled::Unpaid,
        Err(e) => Settled::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn later_orders_get_references_of_their_own() {
        assert_eq!(
            super::platform_reference("FEE-2026-000001", 1),
            "FEE-2026-000001"
        );
        assert_eq!(
            super::platform_reference("FEE-2026-000001", 2),
            "FEE-2026-000001-2"
        );
    }
}
