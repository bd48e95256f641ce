//! Background jobs under one supervisor: the outbox worker and its lease reaper, the webhook
//! deliverer, the event sequencer and its LISTEN connection, the audit sealer and the payments
//! job (status queries, cancellations of unpaid applications, refunds).
//!
//! Every job is a thin loop around a `run_once` pass (one pass: claim and deliver, reap,
//! seal …) that tests call directly. The [`Supervisor`] starts each loop as a named task under
//! a `job` span with a cancellation token; on shutdown it cancels them all, lets a pass under
//! way finish within a grace period, aborts what is still running after it, and reports which
//! jobs ended. [`Application::run_until_stopped`](crate::app::Application::run_until_stopped)
//! stops the HTTP servers first, then the jobs, then closes the connection pool, and only then
//! stops an embedded database, so no job ever outlives the database it uses.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::events::Sequencer;
use crate::exchange::worker::Outbox;
use crate::store::audit;
use crate::webhooks::Deliverer;

/// `[jobs]` in the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Start the background jobs in this process. Off: nothing runs on its own (tests call
    /// each job's `run_once` instead; an instance may also serve HTTP only).
    pub enabled: bool,
    /// On shutdown, how long jobs may take to finish the pass they are in before they are
    /// aborted (an aborted delivery is taken up again once its lease runs out).
    pub grace_ms: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            enabled: true,
            grace_ms: 10_000,
        }
    }
}

/// Names of the jobs whose tasks are still alive; cheap to clone.
#[derive(Clone, Default)]
pub struct Live(Arc<Mutex<Vec<&'static str>>>);

impl Live {
    /// The jobs still running (a name appears once per task).
    pub fn running(&self) -> Vec<&'static str> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn enter(&self, name: &'static str) -> LiveGuard {
        if let Ok(mut v) = self.0.lock() {
            v.push(name);
        }
        LiveGuard {
            live: self.clone(),
            name,
        }
    }
}

/// Takes its job off the live list when the task ends, however it ends (returned, aborted,
/// panicked).
struct LiveGuard {
    live: Live,
    name: &'static str,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut v) = self.live.0.lock() {
            if let Some(i) = v.iter().position(|n| *n == self.name) {
                v.remove(i);
            }
        }
    }
}

/// How the jobs ended on shutdown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    /// Ended on their own after cancellation, within the grace period.
    pub joined: Vec<&'static str>,
    /// Still running when the grace period ran out, then aborted.
    pub aborted: Vec<&'static str>,
    /// Ended by a panic (a bug).
    pub panicked: Vec<&'static str>,
}

/// Starts the background jobs and stops them all together.
pub struct Supervisor {
    cancel: CancellationToken,
    jobs: Vec<(&'static str, JoinHandle<()>)>,
    live: Live,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor {
            cancel: CancellationToken::new(),
            jobs: Vec::new(),
            live: Live::default(),
        }
    }

    /// Starts `job` as a task named `name`, under a `job` span; the job gets a token that is
    /// cancelled on shutdown and must end soon after it is.
    pub fn start<F, Fut>(&mut self, name: &'static str, job: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let guard = self.live.enter(name);
        let run = job(self.cancel.child_token());
        let span = tracing::info_span!("job", job = name);
        let handle = tokio::spawn(
            async move {
                let _guard = guard;
                tracing::debug!("job started");
                run.await;
                tracing::debug!("job stopped");
            }
            .instrument(span),
        );
        self.jobs.push((name, handle));
    }

    /// The names of the jobs started (each once per task).
    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|(n, _)| *n).collect()
    }

    /// A view of which jobs are still running, usable after the supervisor is gone.
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    /// Cancels every job and waits for all of them, at most `grace` in all; what is still
    /// running then is aborted (and awaited, so that it has let go of its connections).
    pub async fn shutdown(self, grace: Duration) -> Drained {
        self.cancel.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let mut drained = Drained::default();
        for (name, mut handle) in self.jobs {
            let ended = match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(r) => r,
                Err(_) => {
                    handle.abort();
                    drained.aborted.push(name);
                    let _ = handle.await;
                    continue;
                }
            };
            match ended {
                Ok(()) => drained.joined.push(name),
                Err(e) if e.is_panic() => drained.panicked.push(name),
                Err(_) => drained.aborted.push(name),
            }
        }
        if drained.aborted.is_empty() && drained.panicked.is_empty() {
            tracing::info!(jobs = drained.joined.len(), "background jobs stopped");
        } else {
            tracing::warn!(
                aborted = ?drained.aborted,
                panicked = ?drained.panicked,
                "background jobs did not all stop cleanly"
            );
        }
        drained
    }
}

/// Runs `pass` until `cancel` fires: again at once when it reports more work due, otherwise
/// after `period`. A pass under way is never interrupted here; the supervisor's grace period
/// bounds it.
pub async fn repeat<F, Fut>(cancel: CancellationToken, period: Duration, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    while !cancel.is_cancelled() {
        if pass().await {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// Folds the exchange's tallies (`store::tallies`) every few seconds, on every instance, so
/// that what metrics and the console read stays a few hundred rows.
#[derive(Clone)]
pub struct TallyFolder {
    pool: Pool,
}

impl TallyFolder {
    pub fn new(pool: Pool) -> TallyFolder {
        TallyFolder { pool }
    }

    /// One pass: folds each tally that has grown to `store::tallies::FOLD_FROM` rows.
    pub async fn run_once(&self) {
        let span = tracing::debug_span!("job.tally_fold");
        async {
            match self.pool.get().await {
                Ok(client) => {
                    if let Err(e) =
                        crate::store::tallies::fold(&client, crate::store::tallies::FOLD_FROM).await
                    {
                        tracing::warn!(error = %e, "folding the exchange tallies failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "tally folder: no connection"),
            }
        }
        .instrument(span)
        .await
    }

    /// Folds every 5 s until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        repeat(cancel, Duration::from_secs(5), || async {
            self.run_once().await;
            false
        })
        .await;
    }
}

/// The audit sealer: links committed audit entries into the hash chain.
#[derive(Clone)]
pub struct AuditSealer {
    pool: Pool,
}

/// Entries linked per pass; a full pass runs again at once.
const AUDIT_SEAL_BATCH: i32 = 10_000;

impl AuditSealer {
    pub fn new(pool: Pool) -> AuditSealer {
        AuditSealer { pool }
    }

    /// One pass: seals what has been committed; returns how many entries it linked.
    pub async fn run_once(&self) -> u64 {
        let span = tracing::debug_span!("job.audit_seal");
        async {
            match self.pool.get().await {
                Ok(client) => match audit::seal(&client, AUDIT_SEAL_BATCH).await {
                    Ok(n) => {
                        if n > 0 {
                            tracing::debug!(sealed = n, "audit entries sealed");
                        }
                        n as u64
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "audit sealing failed");
                        0
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "audit sealer: no connection");
                    0
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Seals a few times a second until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        repeat(cancel, Duration::from_millis(250), || async {
            self.run_once().await >= AUDIT_SEAL_BATCH as u64
        })
        .await;
    }
}

/// Every job's one-pass entry point, for tests and operators' tools: what the loops call.
#[derive(Clone)]
pub struct Jobs {
    /// Present when this window exchanges with partners (keys and partner table).
    pub outbox: Option<Outbox>,
    pub webhooks: Deliverer,
    pub events: Sequencer,
    pub audit: AuditSealer,
    pub tallies: TallyFolder,
    pub payments: crate::payments::jobs::PaymentJob,
}

impl Jobs {
    /// Claims due outbox messages and delivers them; returns how many were claimed.
    pub async fn outbox_once(&self) -> usize {
        match &self.outbox {
            Some(o) => o.run_once().await,
            None => 0,
        }
    }

    /// Returns expired outbox leases to the queue; returns how many.
    pub async fn reap_once(&self) -> u64 {
        match &self.outbox {
            Some(o) => o.reap_once().await,
            None => 0,
        }
    }

    /// Claims due webhook subscriptions and delivers to them; returns how many were served.
    pub async fn webhooks_once(&self) -> usize {
        self.webhooks.run_once().await
    }

    /// Gives committed events their feed positions and wakes waiters; returns how many.
    pub async fn events_once(&self) -> u64 {
        self.events.run_once().await
    }

    /// Links committed audit entries into the chain; returns how many.
    pub async fn audit_once(&self) -> u64 {
        self.audit.run_once().await
    }

    /// Asks the platform about quiet pending orders, cancels applications unpaid after their
    /// due date, sends due refunds; returns what it did.
    pub async fn payments_once(&self) -> crate::payments::jobs::Pass {
        self.payments.run_once().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_cancels_and_joins_every_job() {
        let mut s = Supervisor::new();
        s.start("a", |cancel| async move { cancel.cancelled().await });
        s.start("b", |cancel| async move {
            repeat(cancel, Duration::from_millis(5), || async { false }).await
        });
        let live = s.live();
        assert_eq!(live.running().len(), 2);
        let drained = s.shutdown(Duration::from_secs(5)).await;
        assert_eq!(drained.joined, vec!["a", "b"]);
        assert!(drained.aborted.is_empty());
        assert!(live.running().is_empty());
    }

    #[tokio::test]
    async fn a_job_that_ignores_cancellation_is_aborted_after_the_grace_period() {
        let mut s = Supervisor::new();
        s.start("stubborn", |_| std::future::pending::<()>());
        s.start("polite", |cancel| async move { cancel.cancelled().await });
        let live = s.live();
        let drained = s.shutdown(Duration::from_millis(50)).await;
        assert_eq!(drained.aborted, vec!["stubborn"]);
        assert_eq!(drained.joined, vec!["polite"]);
        assert!(live.running().is_empty());
    }
}
