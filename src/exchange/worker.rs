//! The outbox worker: claims due messages (FOR UPDATE SKIP LOCKED, with a lease), posts each
//! with the signature made at enqueue (or signs it once, for a message stored unsigned), and
//! settles it only on a receipt whose signature, message id and digest all check out. Anything else is a failed attempt, retried with exponential
//! backoff and jitter until the attempts or the time to live run out (dead letter).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use deadpool_postgres::Pool;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::fault::Fault;
use super::{receipt, signature, Exchange, SIGNATURE_HEADER};
use crate::store::outbox::{self as store, Claimed, Outcome};
use crate::xml::{DocKind, Limits, Tree};

/// Delay before attempt `attempts + 1`: base·2^(attempts-1), capped, then drawn uniformly
/// from its upper half so that many failed messages do not all come back at once.
pub fn backoff_secs(base_ms: u64, max_ms: u64, attempts: i32) -> f64 {
    let exp = attempts.clamp(1, 32) as u32 - 1;
    let ceiling = base_ms
        .saturating_mul(1u64 << exp.min(40))
        .min(max_ms)
        .max(1) as f64;
    rand::thread_rng().gen_range(ceiling / 2.0..=ceiling) / 1000.0
}

/// The outbox delivery job: what one pass needs. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    pool: Pool,
    ex: Arc<Exchange>,
    limits: Limits,
}

impl Outbox {
    pub fn new(pool: Pool, ex: Arc<Exchange>, limits: Limits) -> Outbox {
        Outbox { pool, ex, limits }
    }

    fn poll(&self) -> Duration {
        Duration::from_millis(self.ex.policy.poll_ms.max(10))
    }

    /// Claims and delivers until cancelled. A full batch means more are probably due: it
    /// claims again at once rather than letting a backlog wait a poll interval per batch. A
    /// message this pass sent back to wait for a retry sooner than the poll interval is
    /// claimed when it falls due, not up to a poll interval later.
    pub async fn run(self, cancel: CancellationToken) {
        let batch = self.ex.policy.batch.max(1);
        while !cancel.is_cancelled() {
            let (claimed, next_retry) = self.pass().await;
            if claimed as i64 >= batch {
                continue;
            }
            let wait = next_retry.map_or(self.poll(), |r| r.min(self.poll()));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Returns expired leases every poll interval until cancelled.
    pub async fn run_reaper(self, cancel: CancellationToken) {
        crate::jobs::repeat(cancel, self.poll(), || async {
            self.reap_once().await;
            false
        })
        .await;
    }

    /// One pass: claims a batch of due messages and delivers it concurrently; returns how many
    /// were claimed.
    pub async fn run_once(&self) -> usize {
        self.pass().await.0
    }

    /// One pass: how many were claimed, and in how long the soonest retry it scheduled falls
    /// due.
    async fn pass(&self) -> (usize, Option<Duration>) {
        let span = tracing::debug_span!("job.outbox", worker = %self.ex.worker_id);
        claim_and_deliver(&self.pool, &self.ex, &self.limits)
            .instrument(span)
            .await
    }

    /// One pass of the reaper: messages whose sending worker stopped mid-delivery (its lease
    /// ran out) go back to the queue or, out of attempts, to the dead letters.
    pub async fn reap_once(&self) -> u64 {
        let span = tracing::debug_span!("job.outbox_reap");
        async {
            let mut client = match self.pool.get().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox reaper: no database connection");
                    return 0;
                }
            };
            match store::reap(&mut client).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: reaping expired leases failed");
                    0
                }
            }
        }
        .instrument(span)
        .await
    }
}

async fn claim_and_deliver(
    pool: &Pool,
    ex: &Arc<Exchange>,
    limits: &Limits,
) -> (usize, Option<Duration>) {
    let client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "outbox: no database connection");
            return (0, None);
        }
    };
    // The lease is measured on this process's monotonic clock from before the claim, so it
    // ends here no later than `locked_until` in the database, whatever the clocks' skew.
    let lease_ends = Instant::now() + Duration::from_secs(ex.policy.lease_secs);
    let claimed = match store::claim(
        &client,
        ex.worker_id,
        ex.policy.lease_secs as f64,
        ex.policy.batch,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "outbox: claim failed");
            return (0, None);
        }
    };
    let claimed = sign_batch(&client, ex, claimed).await;
    drop(client);
    let n = claimed.len();
    let (finished, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    // The deliveries run on while outcomes are recorded (both halves are polled together), so
    // a post is never held up by the recording of another.
    let deliveries = async move {
        let mut pending: FuturesUnordered<_> = claimed
            .into_iter()
            .map(|c| {
                let span = tracing::info_span!("job.outbox.deliver", message_id = %c.message_id, receiver = %c.receiver, attempt = c.attempts);
                deliver(pool, ex, limits, c, lease_ends).instrument(span)
            })
            .collect();
        while let Some(d) = pending.next().await {
            let _ = finished.send(d);
        }
    };
    // Outcomes are recorded as they come, together with every other one ready by then: one
    // transaction for those instead of one per message.
    let recording = async {
        let mut next_retry: Option<f64> = None;
        while let Some(first) = outcomes.recv().await {
            let mut done = vec![first];
            while let Ok(d) = outcomes.try_recv() {
                done.push(d);
            }
            if let Some(soonest) = record(pool, ex, done).await {
                next_retry = Some(next_retry.map_or(soonest, |r| r.min(soonest)));
            }
        }
        next_retry
    };
    let ((), next_retry) = tokio::join!(deliveries, recording);
    (n, next_retry.map(Duration::from_secs_f64))
}

/// Signs the claimed messages not signed yet and records their signatures in one statement,
/// before any is posted, so that every message is still signed once and sent with the
/// signature stored for it, at one commit per batch instead of one per message. A message
/// whose signature could not be made or recorded here keeps `None`, and its attempt signs and
/// records it alone (or finds its lease lost), as before.
async fn sign_batch(
    client: &deadpool_postgres::Object,
    ex: &Exchange,
    mut claimed: Vec<Claimed>,
) -> Vec<Claimed> {
    let signed: Vec<(uuid::Uuid, Vec<u8>)> = claimed
        .iter()
        .filter(|c| c.signature.is_none() && !c.expired)
        .filter_map(|c| {
            signature::sign(&ex.identity, &c.envelope)
                .ok()
                .map(|s| (c.id, s))
        })
        .collect();
    if signed.is_empty() {
        return claimed;
    }
    match store::set_signatures(client, ex.worker_id, &signed).await {
        Ok(written) => {
            let mut by_id: std::collections::HashMap<uuid::Uuid, Vec<u8>> =
                signed.into_iter().collect();
            for c in &mut claimed {
                if written.contains(&c.id) {
                    c.signature = by_id.remove(&c.id);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "outbox: recording the batch's signatures failed"),
    }
    claimed
}

/// One attempt's end, waiting to be recorded.
struct Attempted {
    c: Claimed,
    outcome: Result<Verified, String>,
    /// For a failure: the delay before the next attempt, or `None` for the dead letters.
    retry_in_secs: Option<f64>,
    started: Instant,
}

async fn deliver(
    pool: &Pool,
    ex: &Exchange,
    limits: &Limits,
    c: Claimed,
    lease_ends: Instant,
) -> Attempted {
    let started = Instant::now();
    let outcome = attempt(pool, ex, limits, &c, lease_ends)
        .await
        .map_err(|e| recordable(&e));
    let took = started.elapsed();
    let can_retry = c.attempts < c.max_attempts && !c.expired;
    let counted = match &outcome {
        Ok((true, ..)) => "delivered",
        Ok((false, ..)) => "rejected",
        Err(_) => "failed",
    };
    crate::metrics::outbox_attempt(&c.receiver, counted, took);
    let mut retry_in_secs = None;
    match &outcome {
        Ok((accepted, ..)) => tracing::info!(accepted, "receipt verified"),
        Err(error) => {
            retry_in_secs = can_retry
                .then(|| backoff_secs(ex.policy.retry_base_ms, ex.policy.retry_max_ms, c.attempts));
            tracing::warn!(%error, retry_in_secs = ?retry_in_secs, "delivery attempt failed");
        }
    }
    Attempted {
        c,
        outcome,
        retry_in_secs,
        started,
    }
}

/// Longest error text kept for an attempt, in characters.
const ERROR_CHARS: usize = 1000;

/// An attempt's error as it can be stored: without NUL (which PostgreSQL's text refuses, and
/// which a partner's answer could carry into it), at most `ERROR_CHARS` characters.
fn recordable(error: &str) -> String {
    error
        .chars()
        .filter(|&c| c != '\0')
        .take(ERROR_CHARS)
        .collect()
}

/// Records the outcomes of finished attempts in one transaction (`store::settle`); if that
/// fails, each alone, so one outcome the database refuses does not cost the others theirs.
/// When even that fails, nothing is lost: the leases run out and the reaper puts the
/// messages back. Returns the soonest retry delay recorded, in seconds.
async fn record(pool: &Pool, ex: &Exchange, done: Vec<Attempted>) -> Option<f64> {
    let outcomes: Vec<(uuid::Uuid, Outcome)> = done
        .iter()
        .map(|d| {
            let outcome = match &d.outcome {
                Ok((accepted, body, sig)) => Outcome::Receipt {
                    accepted: *accepted,
                    receipt: body,
                    signature: sig,
                },
                Err(error) => Outcome::Failed {
                    error,
                    retry_in_secs: d.retry_in_secs,
                },
            };
            (d.c.id, outcome)
        })
        .collect();
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, messages = done.len(), "outbox: no database connection to record the outcomes");
            return None;
        }
    };
    let settled = match store::settle(&mut client, ex.worker_id, &outcomes).await {
        Ok(ids) => ids,
        Err(e) if outcomes.len() > 1 => {
            tracing::warn!(error = %e, messages = done.len(), "outbox: recording the outcomes together failed; recording each alone");
            let mut ids = Vec::new();
            for one in outcomes.chunks(1) {
                match store::settle(&mut client, ex.worker_id, one).await {
                    Ok(settled) => ids.extend(settled),
                    Err(e) => tracing::warn!(error = %e, "outbox: recording an outcome failed"),
                }
            }
            ids
        }
        Err(e) => {
            tracing::warn!(error = %e, "outbox: recording the outcome failed");
            return None;
        }
    };
    let mut soonest: Option<f64> = None;
    for d in &done {
        let c = &d.c;
        if !settled.contains(&c.id) {
            tracing::warn!(message_id = %c.message_id, "outbox: lease lost before the outcome was recorded");
            continue;
        }
        let status = match (&d.outcome, d.retry_in_secs) {
            (Ok((true, ..)), _) => "delivered",
            (Ok((false, ..)), _) => "rejected",
            (Err(_), Some(retry)) => {
                soonest = Some(soonest.map_or(retry, |s| s.min(retry)));
                continue;
            }
            (Err(_), None) => "dead_letter",
        };
        let latency = c.queued_secs + d.started.elapsed().as_secs_f64();
        crate::metrics::outbox_settled(&c.receiver, status, latency);
    }
    soonest
}

type Verified = (bool, Vec<u8>, Vec<u8>);

async fn attempt(
    pool: &Pool,
    ex: &Exchange,
    limits: &Limits,
    c: &Claimed,
    lease_ends: Instant,
) -> Result<Verified, String> {
    if c.expired {
        return Err("time to live exceeded".into());
    }
    let partner = ex
        .partners
        .get(&c.receiver)
        .ok_or_else(|| format!("{} is not in the partner table", c.receiver))?;
    let sig = match &c.signature {
        Some(s) => s.clone(),
        None => {
            let s = signature::sign(&ex.identity, &c.envelope).map_err(|e| e.to_string())?;
            let client = pool.get().await.map_err(|e| e.to_string())?;
            if !store::set_signature(&client, c.id, ex.worker_id, &s)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err("lease lost before signing".into());
            }
            s
        }
    };
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
    let times = if ex.fault.outbound() == Fault::DuplicateDelivery {
        2
    } else {
        1
    };
    let timeout = Duration::from_millis(ex.policy.request_timeout_ms);
    let mut last = Err(String::new());
    for _ in 0..times {
        // Once the lease may run out mid-post, the reaper can hand the message to another
        // worker while this post is still in flight: two sends at once. Leave it to them.
        if !post_fits_lease(Instant::now(), timeout, lease_ends) {
            return Err(
                "lease too close to its end to start a post; left to the next attempt".into(),
            );
        }
        last = post(ex, limits, c, &partner.endpoint, &sig_b64, partner).await;
    }
    last
}

/// Whether a post started at `now`, bounded by `timeout`, ends before the lease does.
fn post_fits_lease(now: Instant, timeout: Duration, lease_ends: Instant) -> bool {
    now.checked_add(timeout).is_some_and(|end| end < lease_ends)
}

async fn post(
    ex: &Exchange,
    limits: &Limits,
    c: &Claimed,
    endpoint: &str,
    sig_b64: &str,
    partner: &super::partners::Partner,
) -> Result<Verified, String> {
    let http = ex
        .clients
        .get(&partner.country)
        .ok_or_else(|| format!("no client for {}", partner.country))?;
    let resp = http
        .post(endpoint)
        .header("content-type", "application/xml")
        .header(SIGNATURE_HEADER, sig_b64)
        .body(c.envelope.clone())
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = resp.status().as_u16();
    let rsig = resp
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("transport: answer cut off: {e}"))?
        .to_vec();
    if status != 200 && status != 422 {
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(format!("HTTP {status} {code}").trim_end().to_owned());
    }
    let rsig = rsig.ok_or("the receipt carries no signature")?;
    let rsig = base64::engine::general_purpose::STANDARD
        .decode(rsig.trim())
        .map_err(|e| format!("receipt signature is not base64: {e}"))?;
    let policy = super::trust::Policy::from_settings(&ex.policy);
    signature::verify_with(&rsig, &body, &partner.ca, &partner.country, &policy)
        .map_err(|e| format!("receipt refused: {} ({e})", e.code()))?;
    match crate::xml::check(&body, limits, Some(DocKind::Receipt)) {
        Ok(Ok(_)) => {}
        _ => return Err("receipt refused: not a valid receipt document".into()),
    }
    let tree = Tree::parse(&body, limits).map_err(|e| format!("receipt unreadable: {e}"))?;
    let r = receipt::parse(&tree).ok_or("receipt unreadable")?;
    if r.received_message_id != c.message_id {
        return Err(format!(
            "receipt is for message {}, not {}",
            r.received_message_id, c.message_id
        ));
    }
    if r.digest_hex != hex::encode(&c.sha256) {
        return Err("receipt digest does not match the bytes sent".into());
    }
    if r.sender != partner.country || r.receiver != ex.country {
        return Err(format!("receipt is from {} to {}", r.sender, r.receiver));
    }
    Ok((r.accepted, body, rsig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_starts_only_if_it_ends_within_the_lease() {
        let now = Instant::now();
        let timeout = Duration::from_secs(5);
        assert!(post_fits_lease(now, timeout, now + Duration::from_secs(12)));
        assert!(!post_fits_lease(now, timeout, now + timeout));
        // A lease that has already passed.
        assert!(!post_fits_lease(
            now + Duration::from_secs(13),
            timeout,
            now + Duration::from_secs(12)
        ));
    }
}
