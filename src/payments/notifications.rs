//! The platform's notifications (`POST /api/v1/payments/notifications`): the only proof of a
//! payment the window accepts besides a signed status answer. Each one is judged in this order:
//! the signature over the exact bytes against the pinned platform certificate, the body, the
//! merchant, the currency, the transaction id's shape, the reference (an order the window
//! made), the order id, the amount; then it is applied (payment: exactly once; cancellation;
//! refund). Every notification is logged with its exact bytes and the answer's code, and every
//! refusal raises an alert (counted, not repeated, when the platform retries it).

use serde::Serialize;

use super::apply::{self, Evidence, Outcome};
use super::protocol::{Notification, NotificationKind, ProtocolError, CURRENCY};
use super::refunds::{self, Completed, RefundReportError};
use super::Payments;
use crate::domain::fee_state::OrderStatus;
use crate::store::payments::{self as store, Source};
use crate::workflow::WorkflowError;

/// Largest notification accepted, in bytes (a real one is well under 1 KiB): 413 beyond.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The answer to a notification the window took.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NotificationAcknowledged, example = json!({"acknowledged": true, "outcome": "ACKNOWLEDGED"}))]
pub struct Ack {
    /// Always true: the platform may stop sending this notification.
    pub acknowledged: bool,
    /// `ACKNOWLEDGED` (taken into account now) or `ALREADY_APPLIED` (a repeat: nothing
    /// changed).
    pub outcome: &'static str,
}

const ACKNOWLEDGED: &str = "ACKNOWLEDGED";
const ALREADY_APPLIED: &str = "ALREADY_APPLIED";

/// What the claimed body says, read without trusting it: for the log and alerts only.
#[derive(Default, serde::Deserialize)]
struct Claimed {
    reference: Option<String>,
    transaction_id: Option<String>,
}

/// A refusal: the answer, and the alert it raises (`None` for refusals that are no one's
/// fault but the window's, e.g. its platform certificate missing).
struct Refusal {
    error: WorkflowError,
    alert: Option<&'static str>,
}

fn refused(code: &'static str, detail: String) -> Refusal {
    Refusal {
        error: WorkflowError::Unprocessable {
            code,
            detail: detail.clone(),
        },
        alert: Some(code),
    }
}

fn status_of(e: &WorkflowError) -> u16 {
    match e {
        WorkflowError::Unprocessable { .. } => 422,
        WorkflowError::SignatureInvalid { .. } => 401,
        WorkflowError::BadRequest { .. } => 400,
        WorkflowError::Unavailable { .. } => 503,
        WorkflowError::Conflict { .. } => 409,
        WorkflowError::BadGateway { .. } => 502,
        WorkflowError::Forbidden { .. } => 403,
        _ => 500,
    }
}

fn code_of(e: &WorkflowError) -> &'static str {
    match e {
        WorkflowError::Unprocessable { code, .. }
        | WorkflowError::SignatureInvalid { code, .. }
        | WorkflowError::BadRequest { code, .. }
        | WorkflowError::Unavailable { code, .. }
        | WorkflowError::Conflict { code, .. }
        | WorkflowError::BadGateway { code, .. }
        | WorkflowError::Forbidden { code, .. } => code,
        _ => "INTERNAL",
    }
}

/// Receives one notification: `body` as received, `signature` and `key_id` the
/// `x-payment-signature` and `x-payment-key` headers. Answers `Ack` when applied or already
/// applied (the platform stops retrying); errors: `401 PAYMENT_SIGNATURE_INVALID`,
/// `400 BODY_INVALID`, `422 PAYMENT_MERCHANT_MISMATCH`, `PAYMENT_CURRENCY_MISMATCH`,
/// `PAYMENT_TRANSACTION_INVALID`, `PAYMENT_REFERENCE_UNKNOWN`, `PAYMENT_ORDER_MISMATCH`,
/// `PAYMENT_AMOUNT_MISMATCH`, `PAYMENT_REFUND_UNKNOWN`, `PAYMENT_REFUND_MISMATCH` (each also an
/// alert), `503 PAYMENT_PLATFORM_UNTRUSTED` (no platform certificate to check it with: the
/// platform retries later).
pub async fn receive(
    p: &Payments,
    body: &[u8],
    signature: Option<&str>,
    key_id: Option<&str>,
) -> Result<Ack, WorkflowError> {
    let claimed: Claimed = serde_json::from_slice(body).unwrap_or_default();
    let (verified, result) = judge(p, body, signature).await;
    let (outcome, http_status) = match &result {
        Ok(ack) => (ack.outcome, 200),
        Err(r) => (code_of(&r.error), status_of(&r.error)),
    };
    let client = p.pool.get().await?;
    if let Err(Refusal {
        error,
        alert: Some(kind),
    }) = &result
    {
        let detail = error.to_string();
        store::raise_alert(
            &client,
            &store::NewAlert {
                kind,
                reference: claimed.reference.as_deref(),
                transaction_id: claimed.transaction_id.as_deref(),
                detail: &detail,
                body: Some(body),
            },
        )
        .await?;
    }
    store::log_notification(
        &client,
        &store::LoggedNotification {
            body,
            signature,
            key_id,
            verified,
            outcome,
            http_status,
            reference: claimed.reference.as_deref(),
            transaction_id: claimed.transaction_id.as_deref(),
        },
    )
    .await?;
    match result {
        Ok(ack) => {
            tracing::info!(outcome = ack.outcome, reference = ?claimed.reference, "notification");
            Ok(ack)
        }
        Err(r) => {
            tracing::warn!(code = code_of(&r.error), reference = ?claimed.reference,
                error = %r.error, "notification refused");
            Err(r.error)
        }
    }
}

/// Whether the signature verified, and the answer.
async fn judge(p: &Payments, body: &[u8], signature: Option<&str>) -> (bool, Result<Ack, Refusal>) {
    let bad_signature = |e: ProtocolError| Refusal {
        error: WorkflowError::SignatureInvalid {
            code: "PAYMENT_SIGNATURE_INVALID",
            detail: format!("the notification is refused: {e}"),
        },
        alert: Some("PAYMENT_SIGNATURE_INVALID"),
    };
    // No signature, or one that cannot be one, is refused before anything else: it needs no
    // certificate to judge.
    if let Err(e) = well_formed(signature) {
        return (false, Err(bad_signature(e)));
    }
    let verifier = match p.platform.trust.verifier() {
        Ok(v) => v,
        Err(e) => {
            return (
                false,
                Err(Refusal {
                    error: WorkflowError::Unavailable {
                        code: "PAYMENT_PLATFORM_UNTRUSTED",
                        detail: format!(
                            "the window cannot check the platform's signatures now ({e}); \
                             send again later"
                        ),
                        retry_after_secs: super::orders::RETRY_AFTER_SECS,
                    },
                    alert: None,
                }),
            )
        }
    };
    if let Err(e) = verifier.verify(body, signature) {
        return (false, Err(bad_signature(e)));
    }
    let n: Notification = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return (
                true,
                Err(Refusal {
                    error: WorkflowError::bad_request(
                        "BODY_INVALID",
                        format!("a signed body that is not a notification: {e}"),
                    ),
                    alert: Some("PAYMENT_NOTIFICATION_INVALID"),
                }),
            )
        }
    };
    (true, apply(p, &n).await)
}

/// Whether the signature header is there and reads as base64 DER ECDSA.
fn well_formed(signature: Option<&str>) -> Result<(), ProtocolError> {
    use base64::Engine;
    let sig = signature.ok_or(ProtocolError::Unsigned)?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig.trim())
        .map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    openssl::ecdsa::EcdsaSig::from_der(&der)
        .map(|_| ())
        .map_err(|e| ProtocolError::Malformed(e.to_string()))
}

fn transaction_id_ok(t: &str) -> bool {
    (1..=200).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic())
}

async fn apply(p: &Payments, n: &Notification) -> Result<Ack, Refusal> {
    if n.merchant_id != p.merchant_id {
        return Err(refused(
            "PAYMENT_MERCHANT_MISMATCH",
            format!(
                "the notification is for merchant {}, this window is {}",
                n.merchant_id, p.merchant_id
            ),
        ));
    }
    if n.currency != CURRENCY {
        return Err(refused(
            "PAYMENT_CURRENCY_MISMATCH",
            format!(
                "the notification is in {}, fees are in {CURRENCY}",
                n.currency
            ),
        ));
    }
    if !transaction_id_ok(&n.transaction_id) {
        return Err(refused(
            "PAYMENT_TRANSACTION_INVALID",
            "the transaction id must be 1 to 200 visible ASCII characters".into(),
        ));
    }
    match n.kind {
        NotificationKind::Refunded => refunded(p, n).await,
        NotificationKind::Paid | NotificationKind::Cancelled => order_result(p, n).await,
    }
}

fn internal(e: WorkflowError) -> Refusal {
    Refusal {
        error: e,
        alert: None,
    }
}

/// A refund paid back.
async fn refunded(p: &Payments, n: &Notification) -> Result<Ack, Refusal> {
    let Some(refund_reference) = n.refund_reference.as_deref() else {
        return Err(refused(
            "PAYMENT_REFUND_UNKNOWN",
            "a refund notification without its refund reference".into(),
        ));
    };
    let report = refunds::Report::Notification {
        payment_transaction: &n.transaction_id,
        at: n.at,
    };
    match refunds::complete(p, refund_reference, n.amount, report).await {
        Ok(Completed::Refunded) => Ok(ack(ACKNOWLEDGED)),
        Ok(Completed::AlreadyRecorded) => Ok(ack(ALREADY_APPLIED)),
        Err(e @ RefundReportError::Unknown(_)) => {
            Err(refused("PAYMENT_REFUND_UNKNOWN", e.to_string()))
        }
        Err(e @ RefundReportError::AmountMismatch { .. }) => {
            Err(refused("PAYMENT_AMOUNT_MISMATCH", e.to_string()))
        }
        Err(e @ RefundReportError::OtherTransaction { .. }) => {
            Err(refused("PAYMENT_REFUND_MISMATCH", e.to_string()))
        }
        Err(RefundReportError::Workflow(e)) => Err(internal(e)),
    }
}

/// An order paid or cancelled.
async fn order_result(p: &Payments, n: &Notification) -> Result<Ack, Refusal> {
    let client = p.pool.get().await.map_err(|e| internal(e.into()))?;
    let order = store::order_by_platform_reference(&client, &n.reference)
        .await
        .map_err(|e| internal(e.into()))?
        .ok_or_else(|| {
            refused(
                "PAYMENT_REFERENCE_UNKNOWN",
                format!("the window made no order {}", n.reference),
            )
        })?;
    if order.order_id != n.order_id {
        return Err(refused(
            "PAYMENT_ORDER_MISMATCH",
            format!(
                "{} is order {} at the platform, not {}",
                n.reference, order.order_id, n.order_id
            ),
        ));
    }
    if n.kind == NotificationKind::Cancelled {
        let moved = store::mark_order(&client, order.id, OrderStatus::Cancelled, None)
            .await
            .map_err(|e| internal(e.into()))?;
        return Ok(ack(if moved { ACKNOWLEDGED } else { ALREADY_APPLIED }));
    }
    drop(client);
    if n.amount != order.amount {
        return Err(refused(
            "PAYMENT_AMOUNT_MISMATCH",
            format!(
                "{} is for {} VND, the notification says {} VND",
                n.reference, order.amount, n.amount
            ),
        ));
    }
    let outcome = apply::apply_payment(
        p,
        Evidence {
            order: &order,
            transaction_id: &n.transaction_id,
            amount: n.amount,
            paid_at: n.at,
            source: Source::Notification,
        },
    )
    .await
    .map_err(internal)?;
    Ok(ack(match outcome {
        Outcome::AlreadyRecorded => ALREADY_APPLIED,
        Outcome::Applied { .. } | Outcome::RefundDue { .. } => ACKNOWLEDGED,
    }))
}

fn ack(outcome: &'static str) -> Ack {
    Ack {
        acknowledged: true,
        outcome,
    }
}
