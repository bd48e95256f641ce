//! Webhook delivery: signs each event with the subscription's secret and POSTs it, in feed
//! order, at least once. Failures are retried with exponential backoff and jitter; an event is
//! never skipped, so a receiver that is down simply receives everything later.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use rand::Rng;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::WebhookSettings;
use crate::store::events::Event;
use crate::store::webhooks::{self as store, Claim};
use crate::store::StoreError;

/// Subscriptions one instance serves at once.
const CONCURRENT_DELIVERIES: usize = 32;
/// Events delivered per claim before the subscription is released for fairness.
const EVENTS_PER_CLAIM: usize = 100;
/// How often the worker looks for due retries when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// A subscription whose party has had no event for this many feed positions has its scan mark
/// moved past them before a claim (`store::webhooks::skip_others_events`), at most
/// [`SKIP_STEP`] positions per claim: so a claim reads at most about `SKIP_LAG + SKIP_STEP`
/// positions of other parties' events per subscription, rather than all of them since its
/// party's last event, and a busy feed rewrites a quiet subscription once per `SKIP_LAG`
/// events rather than at each.
const SKIP_LAG: i64 = 256;
const SKIP_STEP: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot compute the signature: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` keyed with the secret's bytes.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
    let key = PKey::hmac(secret.as_bytes())?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(timestamp.to_string().as_bytes())?;
    signer.update(b".")?;
    signer.update(body)?;
    Ok(format!("sha256={}", hex::encode(signer.sign_to_vec()?)))
}

/// Delay before retry number `failures` (1 = first retry): base·2^(failures−1), capped at
/// `max`, then drawn uniformly from its upper half so that many subscriptions failing together
/// do not retry in step.
pub fn retry_delay_ms(s: &WebhookSettings, failures: i32) -> u64 {
    let exp = failures.clamp(1, 40) as u32 - 1;
    let full = s
        .retry_base_ms
        .saturating_mul(1u64.checked_shl(exp).unwrap_or(u64::MAX))
        .min(s.retry_max_ms)
        .max(1);
    let half = full / 2;
    half + rand::thread_rng().gen_range(0..=full - half)
}

/// A secret for a new subscription: 32 random bytes, hex, with a recognisable prefix.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// The webhook deliverer: what a pass needs. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    pool: Pool,
    http: reqwest::Client,
    settings: Arc<WebhookSettings>,
}

impl Deliverer {
    pub fn new(pool: Pool, settings: WebhookSettings) -> Result<Deliverer, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("nsw-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Deliverer {
            pool,
            http,
            settings: Arc::new(settings),
        })
    }

    async fn claim(&self, limit: i64) -> Vec<Claim> {
        let span = tracing::debug_span!("job.webhook_claim");
        claim(&self.pool, &self.settings, limit)
            .instrument(span)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "webhook claim failed");
                Vec::new()
            })
    }

    /// Serves one claimed subscription: its due events in order, until it is caught up, a
    /// delivery fails, or `cancel` fires (then it releases the claim).
    async fn serve(&self, c: Claim, cancel: &CancellationToken) {
        let span = tracing::info_span!("job.webhook", webhook = %c.id, party = %c.party_id);
        deliver(&self.pool, &self.http, &self.settings, c, cancel)
            .instrument(span)
            .await;
    }

    /// One pass: claims the subscriptions with due events (as many as one instance serves at
    /// once) and delivers to them concurrently; returns how many subscriptions were served.
    pub async fn run_once(&self) -> usize {
        let claims = self.claim(CONCURRENT_DELIVERIES as i64).await;
        let n = claims.len();
        let never = CancellationToken::new();
        futures_util::future::join_all(claims.into_iter().map(|c| self.serve(c, &never))).await;
        n
    }

    /// Claims and delivers until cancelled, woken by new events (`wake`), by a delivery
    /// finishing, or every [`IDLE_POLL`]. Each claimed subscription is served by its own task,
    /// so one slow receiver never holds up the others; at most [`CONCURRENT_DELIVERIES`] run
    /// at once. On cancellation no more is claimed, and the deliveries under way stop after
    /// their current event and release their claims before this returns.
    pub async fn run(self, mut wake: watch::Receiver<u64>, cancel: CancellationToken) {
        let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
        let finished = Arc::new(Notify::new());
        let tasks = TaskTracker::new();
        while !cancel.is_cancelled() {
            let free = slots.available_permits();
            let claimed = if free == 0 {
                0
            } else {
                let claims = self.claim(free as i64).await;
                let n = claims.len();
                for c in claims {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        // Cannot happen (we claimed no more than the free slots); the lease
                        // expires and the subscription is claimed again.
                        break;
                    };
                    let (me, finished, cancel) = (self.clone(), finished.clone(), cancel.clone());
                    tasks.spawn(async move {
                        me.serve(c, &cancel).await;
                        drop(permit);
                        finished.notify_one();
                    });
                }
                n
            };
            if claimed > 0 && claimed == free {
                // Possibly more due: claim again as soon as a slot frees up.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = finished.notified() => continue,
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.changed() => {}
                _ = finished.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
        tasks.close();
        tasks.wait().await;
    }
}

async fn claim(pool: &Pool, s: &WebhookSettings, limit: i64) -> Result<Vec<Claim>, StoreError> {
    let client = pool.get().await?;
    let skipped = store::skip_others_events(&client, SKIP_LAG, SKIP_STEP).await?;
    if skipped > 0 {
        tracing::debug!(
            subscriptions = skipped,
            "webhook scan marks moved past others' events"
        );
    }
    store::claim(&client, limit, s.lease_secs as f64).await
}

async fn deliver(
    pool: &Pool,
    http: &reqwest::Client,
    s: &WebhookSettings,
    mut c: Claim,
    cancel: &CancellationToken,
) {
    let lease = s.lease_secs as f64;
    for _ in 0..EVENTS_PER_CLAIM {
        if cancel.is_cancelled() {
            break;
        }
        let next = match pool.get().await {
            Ok(client) => store::next_event(&client, &c).await,
            Err(e) => Err(e.into()),
        };
        let event = match next {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                // The lease runs out and another pass takes the subscription up again.
                tracing::warn!(error = %e, "webhook: cannot read the next event");
                return;
            }
        };
        let outcome = post(http, &c, &event).await;
        crate::metrics::webhook_delivery(if outcome.is_ok() {
            "delivered"
        } else {
            "failed"
        });
        let mut client = match pool.get().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "webhook: cannot record the attempt");
                return;
            }
        };
        match outcome {
            Ok(status) => match store::delivered(&mut client, &c, &event, status, lease).await {
                Ok(true) => {
                    tracing::debug!(event = event.id, status, "webhook delivered");
                    c.failures = 0;
                }
                Ok(false) => {
                    tracing::info!(event = event.id, "webhook claim lost; stopping");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: cannot record the delivery");
                    return;
                }
            },
            Err((status, error)) => {
                let delay = retry_delay_ms(s, c.failures + 1);
                tracing::info!(event = event.id, ?status, %error, retry_in_ms = delay, "webhook delivery failed");
                let delay = i64::try_from(delay).unwrap_or(i64::MAX);
                if let Err(e) = store::failed(&mut client, &c, &event, status, &error, delay).await
                {
                    tracing::warn!(error = %e, "webhook: cannot record the failure");
                }
                return;
            }
        }
    }
    if let Ok(client) = pool.get().await {
        if let Err(e) = store::release(&client, &c).await {
            tracing::warn!(error = %e, "webhook: cannot release the claim");
        }
    }
}

/// POSTs one event; Ok(status) for a 2xx answer, otherwise the status (if any) and why.
async fn post(
    http: &reqwest::Client,
    c: &Claim,
    event: &Event,
) -> Result<i32, (Option<i32>, String)> {
    let body = serde_json::to_vec(event).map_err(|e| (None, e.to_string()))?;
    let timestamp = chrono::Utc::now().timestamp();
    let sig = signature(&c.secret, timestamp, &body).map_err(|e| (None, e.to_string()))?;
    let resp = http
        .post(&c.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-NSW-Event-Id", event.id.to_string())
        .header("X-NSW-Timestamp", timestamp.to_string())
        .header("X-NSW-Signature", sig)
        .header("X-NSW-Webhook-Id", c.id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| (None, describe(&e)))?;
    let status = i32::from(resp.status().as_u16());
    if resp.status().is_success() {
        Ok(status)
    } else {
        Err((Some(status), format!("receiver answered {status}")))
    }
}

/// The reqwest error with its causes (connection refused, timeout …), kept short for the log.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // echo -n '1700000000.{"id":1}' | openssl dgst -sha256 -hmac 'whsec_test'
        let sig = signature("whsec_test", 1_700_000_000, br#"{"id":1}"#).unwrap();
        assert_eq!(
            sig,
            "sha256=2f441ba4b3b2d50d28a9ab9d9fd8880376ecd1eb5d0435401553f5d8d0a5dcf8"
        );
        assert_ne!(
            sig,
            signature("whsec_test", 1_700_000_001, br#"{"id":1}"#).unwrap()
        );
    }

    #[test]
    fn retry_delay_grows_and_stays_within_bounds() {
        let s = WebhookSettings {
            retry_base_ms: 100,
            retry_max_ms: 1000,
            ..WebhookSettings::default()
        };
        for _ in 0..100 {
            let d1 = retry_delay_ms(&s, 1);
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = retry_delay_ms(&s, 3);
            assert!((200..=400).contains(&d3), "{d3}");
            let d30 = retry_delay_ms(&s, 30);
            assert!((500..=1000).contains(&d30), "{d30}");
        }
    }
}
