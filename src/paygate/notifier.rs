//! The notifier: sends queued notifications, signed, to each order's `notify_url`, and
//! retries with exponential back-off (1 s, 2 s, 4 s …, capped at `retry_max_secs`) until the
//! merchant answers 2xx. Rows are claimed with `FOR UPDATE SKIP LOCKED` under a lease, so
//! several notifiers never send the same row at once, and one that dies mid-send leaves its
//! rows to be claimed again when the lease ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::store::{self, Claimed};
use super::State;
use crate::payments::protocol::{
    Notification, NotificationKind, CURRENCY, KEY_HEADER, SIGNATURE_HEADER,
};

/// Rows claimed per pass.
const BATCH: i64 = 32;
/// How long a claimed row is the claimer's (longer than an attempt's HTTP timeout).
const LEASE_SECS: i64 = 60;
/// How often the loop looks for due rows when nothing wakes it.
const TICK: Duration = Duration::from_millis(500);
/// The amount taken off by the `wrong_amount` fault, đồng.
pub const WRONG_AMOUNT_DELTA: i64 = 1000;

/// Runs passes until `cancel`: at every tick, or at once when a notification is queued.
pub async fn run(state: Arc<State>, cancel: CancellationToken) {
    loop {
        deliver_once(&state).await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = state.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// One pass: claims the due rows and sends each once (concurrently). Answers how many the
/// merchants acknowledged.
pub async fn deliver_once(state: &State) -> usize {
    let span = tracing::info_span!("paygate.notifier", claimed = tracing::field::Empty);
    async {
        let claimed = match state.pool.get().await {
            Ok(client) => match store::claim_due(&client, BATCH, LEASE_SECS).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming notifications failed");
                    return 0;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "notifier: database unavailable");
                return 0;
            }
        };
        tracing::Span::current().record("claimed", claimed.len());
        let results =
            futures_util::future::join_all(claimed.iter().map(|c| attempt(state, c))).await;
        results.into_iter().filter(|ok| *ok).count()
    }
    .instrument(span)
    .await
}

/// Back-off before attempt `attempts + 1`: 2^(attempts-1) s, capped.
fn backoff_secs(attempts: i32, cap: u64) -> i64 {
    let exp = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let secs = 1u64 << exp;
    i64::try_from(secs.min(cap)).unwrap_or(i64::MAX)
}

/// The body sent for `c` (a new `notification_id` each sending), as its faults say.
fn body(c: &Claimed) -> Notification {
    let kind = match c.kind.as_str() {
        "paid" => NotificationKind::Paid,
        "cancelled" => NotificationKind::Cancelled,
        _ => NotificationKind::Refunded,
    };
    let amount = if c.fault.as_deref() == Some("wrong_amount") {
        c.amount - WRONG_AMOUNT_DELTA
    } else {
        c.amount
    };
    Notification {
        notification_id: format!("NT{}", uuid::Uuid::now_v7().simple()).to_uppercase(),
        kind,
        merchant_id: c.merchant_id.clone(),
        reference: c.reference.clone(),
        order_id: c.order_id.clone(),
        transaction_id: c.transaction_id.clone(),
        amount,
        currency: CURRENCY.into(),
        refund_reference: c.refund_reference.clone(),
        at: c.at,
    }
}

/// Sends one claimed notification and records the outcome. `true` when acknowledged.
async fn attempt(state: &State, c: &Claimed) -> bool {
    let span = tracing::info_span!("paygate.notify", id = c.id, kind = %c.kind,
        reference = %c.reference, attempt = c.attempts);
    async {
        let notification = body(c);
        let bytes = match serde_json::to_vec(&notification) {
            Ok(b) => b,
            Err(e) => return record(state, c, Err(e.to_string())).await,
        };
        let signature = if c.fault.as_deref() == Some("bad_signature") {
            // A real signature, but over other bytes: it can never verify this body.
            let mut other = bytes.clone();
            other.extend_from_slice(b" ");
            state.signer.sign(&other)
        } else {
            state.signer.sign(&bytes)
        };
        let signature = match signature {
            Ok(s) => s,
            Err(e) => return record(state, c, Err(e.to_string())).await,
        };
        let sent = state
            .http
            .post(&c.notify_url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(KEY_HEADER, state.signer.fingerprint())
            .body(bytes)
            .send()
            .await;
        let outcome = match sent {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(crate::error::cause_chain(&e)),
        };
        record(state, c, outcome).await
    }
    .instrument(span)
    .await
}

async fn record(state: &State, c: &Claimed, outcome: Result<(), String>) -> bool {
    let client = match state.pool.get().await {
        Ok(client) => client,
        // The lease runs out and the row is sent again: at least once.
        Err(e) => {
            tracing::warn!(error = %e, "recording a notification attempt failed");
            return false;
        }
    };
    match outcome {
        Ok(()) => {
            if let Err(e) = store::mark_delivered(&client, c.id).await {
                tracing::warn!(error = %e, "recording a delivery failed");
            }
            tracing::info!(transaction_id = %c.transaction_id, at = %Utc::now(), "notification acknowledged");
            true
        }
        Err(error) => {
            let retry = backoff_secs(c.attempts, state.retry_max_secs);
            tracing::info!(%error, retry_in_secs = retry, "notification not acknowledged");
            if let Err(e) = store::mark_failed(&client, c.id, &error, retry).await {
                tracing::warn!(error = %e, "recording a failed attempt failed");
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn back_off_doubles_and_is_capped() {
        assert_eq!(backoff_secs(1, 60), 1);
        assert_eq!(backoff_secs(2, 60), 2);
        assert_eq!(backoff_secs(3, 60), 4);
        assert_eq!(backoff_secs(7, 60), 60);
        assert_eq!(backoff_secs(1000, 60), 60);
        assert_eq!(backoff_secs(5, 0), 0);
    }
}
