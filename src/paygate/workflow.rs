//! What the platform does, called by its HTTP API, its payer's page and [`super::Running`]:
//! create an order, pay or cancel it, refund it. Each change and the notification it causes
//! are one transaction.

use chrono::Utc;

use super::store::{self, NewNotification, NewOrder, OrderRow, RefundRow};
use super::{PaygateError, State};
use crate::payments::protocol::{OrderRequest, RefundRequest, StatusQuery, CURRENCY};

/// The longest description shown on the payer's page, in characters.
pub const MAX_DESCRIPTION: usize = 500;

/// A merchant's reference or refund reference: 1 to 40 of `A-Z a-z 0-9 - _`.
pub fn valid_reference(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_url(s: &str) -> bool {
    reqwest::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple()).to_uppercase()
}

fn not_found(reference: &str) -> PaygateError {
    PaygateError::refused(
        404,
        "ORDER_NOT_FOUND",
        format!("no order with reference {reference}"),
    )
}

/// Creates the order, or answers the one the merchant already has for this reference (`false`:
/// not created now). Errors: 422 `CURRENCY_UNSUPPORTED`, `AMOUNT_INVALID`,
/// `REFERENCE_INVALID`, `URL_INVALID`, `DESCRIPTION_INVALID`; 409 `ORDER_CONFLICT` (same
/// reference, another amount).
pub async fn create_order(
    state: &State,
    req: &OrderRequest,
) -> Result<(OrderRow, bool), PaygateError> {
    if req.currency != CURRENCY {
        return Err(PaygateError::refused(
            422,
            "CURRENCY_UNSUPPORTED",
            format!("currency must be {CURRENCY}"),
        ));
    }
    if req.amount <= 0 {
        return Err(PaygateError::refused(
            422,
            "AMOUNT_INVALID",
            "amount must be a positive number of đồng",
        ));
    }
    if !valid_reference(&req.reference) {
        return Err(PaygateError::refused(
            422,
            "REFERENCE_INVALID",
            "reference must be 1 to 40 characters of A-Z a-z 0-9 - _",
        ));
    }
    if !valid_url(&req.return_url) || !valid_url(&req.notify_url) {
        return Err(PaygateError::refused(
            422,
            "URL_INVALID",
            "return_url and notify_url must be absolute http(s) URLs",
        ));
    }
    if req.description.trim().is_empty() || req.description.chars().count() > MAX_DESCRIPTION {
        return Err(PaygateError::refused(
            422,
            "DESCRIPTION_INVALID",
            format!("description must be 1 to {MAX_DESCRIPTION} characters"),
        ));
    }
    let client = state.pool.get().await?;
    let order_id = new_id("PG");
    let pay_token = {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        hex::encode(b)
    };
    let (order, created) = store::insert_order(
        &client,
        &NewOrder {
            order_id: &order_id,
            merchant_id: &req.merchant_id,
            reference: &req.reference,
            amount: req.amount,
            description: &req.description,
            return_url: &req.return_url,
            notify_url: &req.notify_url,
            expires_at: req.expires_at,
            pay_token: &pay_token,
        },
    )
    .await?;
    if !created && order.amount != req.amount {
        return Err(PaygateError::refused(
            409,
            "ORDER_CONFLICT",
            format!(
                "reference {} already has an order of {} VND",
                order.reference, order.amount
            ),
        ));
    }
    if created {
        tracing::info!(order_id = %order.order_id, merchant = %order.merchant_id,
            reference = %order.reference, amount = order.amount, "order created");
    }
    Ok((order, created))
}

/// The merchant's order for the query's reference. Errors: 404 `ORDER_NOT_FOUND`.
pub async fn query(state: &State, q: &StatusQuery) -> Result<OrderRow, PaygateError> {
    let client = state.pool.get().await?;
    store::find_order(&client, &q.merchant_id, &q.reference)
        .await?
        .ok_or_else(|| not_found(&q.reference))
}

/// The order for `reference`, whichever merchant's. Errors: 404 `ORDER_NOT_FOUND`, 409
/// `ORDER_AMBIGUOUS` (several merchants use it).
pub async fn find_by_reference(state: &State, reference: &str) -> Result<OrderRow, PaygateError> {
    let client = state.pool.get().await?;
    let mut orders = store::find_orders_by_reference(&client, reference).await?;
    match orders.len() {
        0 => Err(not_found(reference)),
        1 => Ok(orders.remove(0)),
        _ => Err(PaygateError::refused(
            409,
            "ORDER_AMBIGUOUS",
            format!("several merchants have an order with reference {reference}"),
        )),
    }
}

/// The payer pays: a pending order becomes paid with a new transaction id and a `paid`
/// notification is queued, in one transaction. A paid (or refunded) order is answered as it
/// is (`false`: nothing changed). Errors: 404 `ORDER_NOT_FOUND`, 409 `ORDER_CANCELLED`,
/// 409 `ORDER_EXPIRED`.
pub async fn pay(state: &State, order_id: &str) -> Result<(OrderRow, bool), PaygateError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let order = store::lock_order(&tx, order_id)
        .await?
        .ok_or_else(|| not_found(order_id))?;
    match order.status.as_str() {
        "paid" | "refunded" => return Ok((order, false)),
        "cancelled" => return Err(cancelled(&order)),
        _ if order.is_expired(Utc::now()) => return Err(expired(&order)),
        _ => {}
    }
    let transaction_id = new_id("TX");
    let paid = store::mark_paid(&tx, order_id, &transaction_id)
        .await?
        .ok_or_else(|| expired(&order))?;
    store::enqueue(
        &tx,
        &NewNotification {
            event_key: format!("paid:{order_id}"),
            kind: "paid",
            order: &paid,
            transaction_id: &transaction_id,
            amount: paid.amount,
            refund_reference: None,
            at: paid.paid_at.unwrap_or_else(Utc::now),
        },
        &state.faults(),
    )
    .await?;
    tx.commit().await?;
    state.wake.notify_one();
    tracing::info!(order_id, reference = %paid.reference, %transaction_id, amount = paid.amount,
        "order paid");
    Ok((paid, true))
}

/// The payer cancels: a pending order becomes cancelled and a `cancelled` notification is
/// queued (its `transaction_id` is the order id). A cancelled order is answered as it is.
/// Errors: 404 `ORDER_NOT_FOUND`, 409 `ORDER_PAID`, 409 `ORDER_EXPIRED`.
pub async fn cancel(state: &State, order_id: &str) -> Result<(OrderRow, bool), PaygateError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let order = store::lock_order(&tx, order_id)
        .await?
        .ok_or_else(|| not_found(order_id))?;
    match order.status.as_str() {
        "cancelled" => return Ok((order, false)),
        "paid" | "refunded" => {
            return Err(PaygateError::refused(
                409,
                "ORDER_PAID",
                format!("order {} is already paid", order.reference),
            ))
        }
        _ if order.is_expired(Utc::now()) => return Err(expired(&order)),
        _ => {}
    }
    let done = store::mark_cancelled(&tx, order_id)
        .await?
        .ok_or_else(|| expired(&order))?;
    store::enqueue(
        &tx,
        &NewNotification {
            event_key: format!("cancelled:{order_id}"),
            kind: "cancelled",
            order: &done,
            transaction_id: &done.order_id,
            amount: done.amount,
            refund_reference: None,
            at: done.cancelled_at.unwrap_or_else(Utc::now),
        },
        &state.faults(),
    )
    .await?;
    tx.commit().await?;
    state.wake.notify_one();
    tracing::info!(order_id, reference = %done.reference, "order cancelled");
    Ok((done, true))
}

fn cancelled(order: &OrderRow) -> PaygateError {
    PaygateError::refused(
        409,
        "ORDER_CANCELLED",
        format!("order {} was cancelled", order.reference),
    )
}

fn expired(order: &OrderRow) -> PaygateError {
    PaygateError::refused(
        409,
        "ORDER_EXPIRED",
        format!(
            "order {} expired at {}",
            order.reference,
            order.expires_at.to_rfc3339()
        ),
    )
}

/// Pays back `amount` of a paid order at once (a new transaction id) and queues a `refunded`
/// notification (its `transaction_id` is the payment's, `refund_reference` names the refund);
/// the order becomes `refunded` when refunded in full. Repeated with the same
/// `refund_reference` it answers the refund it has (`false`). Errors: 422
/// `CURRENCY_UNSUPPORTED`, `AMOUNT_INVALID`, `REFERENCE_INVALID`; 404 `ORDER_NOT_FOUND`;
/// 409 `ORDER_NOT_PAID`, `REFUND_EXCEEDS_PAID`, `REFUND_CONFLICT` (the refund reference was
/// used for another order or amount).
pub async fn refund(state: &State, req: &RefundRequest) -> Result<(RefundRow, bool), PaygateError> {
    if req.currency != CURRENCY {
        return Err(PaygateError::refused(
            422,
            "CURRENCY_UNSUPPORTED",
            format!("currency must be {CURRENCY}"),
        ));
    }
    if req.amount <= 0 {
        return Err(PaygateError::refused(
            422,
            "AMOUNT_INVALID",
            "amount must be a positive number of đồng",
        ));
    }
    if !valid_reference(&req.reference) || !valid_reference(&req.refund_reference) {
        return Err(PaygateError::refused(
            422,
            "REFERENCE_INVALID",
            "reference and refund_reference must be 1 to 40 characters of A-Z a-z 0-9 - _",
        ));
    }
    let mut client = state.pool.get().await?;
    let same = |existing: RefundRow| {
        if existing.reference == req.reference && existing.amount == req.amount {
            Ok((existing, false))
        } else {
            Err(PaygateError::refused(
                409,
                "REFUND_CONFLICT",
                format!(
                    "refund {} is already a refund of {} VND on {}",
                    existing.refund_reference, existing.amount, existing.reference
                ),
            ))
        }
    };
    if let Some(existing) =
        store::find_refund(&client, &req.merchant_id, &req.refund_reference).await?
    {
        return same(existing);
    }
    let tx = client.transaction().await?;
    let order = match store::find_order(&tx, &req.merchant_id, &req.reference).await? {
        Some(o) => store::lock_order(&tx, &o.order_id)
            .await?
            .ok_or_else(|| not_found(&req.reference))?,
        None => return Err(not_found(&req.reference)),
    };
    // Under the order's lock: a concurrent request with the same refund reference has either
    // committed (found here) or waits for ours.
    if let Some(existing) = store::find_refund(&tx, &req.merchant_id, &req.refund_reference).await?
    {
        return same(existing);
    }
    let left = order.amount - order.refunded_amount;
    match order.status.as_str() {
        "paid" if req.amount <= left => {}
        "paid" | "refunded" => {
            return Err(PaygateError::refused(
                409,
                "REFUND_EXCEEDS_PAID",
                format!(
                    "{} VND is more than the {left} VND paid and not yet refunded",
                    req.amount
                ),
            ))
        }
        _ => {
            return Err(PaygateError::refused(
                409,
                "ORDER_NOT_PAID",
                format!("order {} is not paid", order.reference),
            ))
        }
    }
    let Some(payment) = order.transaction_id.clone() else {
        return Err(PaygateError::refused(
            409,
            "ORDER_NOT_PAID",
            format!("order {} is not paid", order.reference),
        ));
    };
    let refund_id = new_id("RF");
    let refund_tx = new_id("RT");
    let refund = store::insert_refund(
        &tx,
        &store::NewRefund {
            refund_id: &refund_id,
            merchant_id: &req.merchant_id,
            refund_reference: &req.refund_reference,
            order_id: &order.order_id,
            amount: req.amount,
            reason: &req.reason,
            transaction_id: &refund_tx,
        },
    )
    .await?
    .ok_or_else(|| {
        PaygateError::refused(
            409,
            "REFUND_EXCEEDS_PAID",
            format!("{} VND is more than is left to refund", req.amount),
        )
    })?;
    store::enqueue(
        &tx,
        &NewNotification {
            event_key: format!("refunded:{refund_id}"),
            kind: "refunded",
            order: &order,
            transaction_id: &payment,
            amount: refund.amount,
            refund_reference: Some(&refund.refund_reference),
            at: refund.refunded_at,
        },
        &state.faults(),
    )
    .await?;
    tx.commit().await?;
    state.wake.notify_one();
    tracing::info!(reference = %refund.reference, refund_reference = %refund.refund_reference,
        amount = refund.amount, transaction_id = %refund.transaction_id, "refund paid back");
    Ok((refund, true))
}
