//! Group commit for declarations. Concurrent submissions share one transaction, so a group of N
//! accepted documents costs one durable commit (one WAL flush) instead of N; most are written
//! together, one multi-row statement per table, the others each inside its own savepoint. Each caller is answered only after the commit that holds its rows: a 201 still
//! means committed. A submission that fails (licence exhausted, key conflict, any database
//! error) rolls back to its savepoint and leaves the rest of its group untouched.
//!
//! Groups form by themselves: a committer takes whatever is queued when it becomes free, so an
//! idle service commits each request alone (no added wait) and a busy one commits in groups.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::Instrument;

use super::declarations::{self, Inserted, Submission, Submitted};
use super::routing::RoutingCache;
use super::StoreError;
use crate::db::DbError;
use crate::domain::declaration::Declaration;
use crate::domain::party::Principal;

/// A submission that can travel to a committer task.
pub struct OwnedSubmission {
    pub principal: Principal,
    pub body: Bytes,
    pub sha256: [u8; 32],
    pub declaration: Box<Declaration>,
    pub idempotency_key: Option<String>,
    /// The window's date when the request arrived.
    pub today: chrono::NaiveDate,
}

struct Job {
    submission: OwnedSubmission,
    reply: oneshot::Sender<Result<Submitted, StoreError>>,
}

/// What every submission of this window is held to, shared by the committers.
pub struct Context {
    pub pool: deadpool_postgres::Pool,
    pub routing: Arc<RoutingCache>,
    pub country: String,
    pub origin_checked_from: Vec<String>,
}

/// What an HTTP worker needs to start committers of its own: called on the worker's thread,
/// `start` opens a small pool there and spawns the committers on that thread's runtime, so a
/// submission, its committer and the connection's I/O task wake one another without crossing
/// threads (cross-thread wake-ups dominated the server's profile under load).
pub struct Setup {
    pub url: String,
    pub routing: Arc<RoutingCache>,
    pub country: String,
    pub origin_checked_from: Vec<String>,
    /// Committers (and connections) of each worker.
    pub committers: usize,
    pub max_group: usize,
}

impl Setup {
    pub fn start(&self) -> Result<GroupCommit, DbError> {
        let committers = self.committers.max(1);
        let pool = crate::db::pool(&self.url, committers)?;
        Ok(GroupCommit::spawn(
            Context {
                pool,
                routing: self.routing.clone(),
                country: self.country.clone(),
                origin_checked_from: self.origin_checked_from.clone(),
            },
            committers,
            self.max_group,
        ))
    }
}

/// The handle requests submit through; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

/// How many times a submission chosen as a deadlock victim is tried again within its group.
const DEADLOCK_RETRIES: u32 = 3;

impl GroupCommit {
    /// Starts `committers` tasks (each holds one pool connection while it commits), grouping
    /// at most `max_group` submissions per transaction.
    pub fn spawn(ctx: Context, committers: usize, max_group: usize) -> GroupCommit {
        let (queue, rx) = mpsc::channel::<Job>(committers.max(1) * max_group.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        let ctx = Arc::new(ctx);
        for n in 0..committers.max(1) {
            let (rx, ctx) = (rx.clone(), ctx.clone());
            tokio::spawn(async move { committer(n, rx, ctx, max_group.max(1)).await });
        }
        GroupCommit { queue }
    }

    /// Stores one declaration; returns once its group has committed (or it was refused).
    pub async fn submit(&self, submission: OwnedSubmission) -> Result<Submitted, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the intake committers have stopped".into());
        self.queue
            .send(Job { submission, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// A committer's next group: waits for one job, then takes whatever else is queued, up to
/// `max` in all. `None` once every sender is gone.
pub(crate) async fn gather<T>(rx: &Mutex<mpsc::Receiver<T>>, max: usize) -> Option<Vec<T>> {
    let mut rx = rx.lock().await;
    let mut jobs = Vec::with_capacity(max);
    jobs.push(rx.recv().await?);
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

async fn committer(n: usize, rx: Arc<Mutex<mpsc::Receiver<Job>>>, ctx: Arc<Context>, max: usize) {
    while let Some(jobs) = gather(&rx, max).await {
        let size = jobs.len();
        let span = tracing::info_span!("job.group_commit", committer = n, size);
        let started = std::time::Instant::now();
        commit_group(&ctx, jobs).instrument(span).await;
        crate::metrics::group_commit(size, started.elapsed());
    }
}

async fn commit_group(ctx: &Context, jobs: Vec<Job>) {
    let (subs, replies): (Vec<_>, Vec<_>) =
        jobs.into_iter().map(|j| (j.submission, j.reply)).unzip();
    match run_group(ctx, &subs).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            // Nothing of the group is committed: every caller may safely try again.
            tracing::warn!(error = %e, size = replies.len(), "group commit failed");
            let cause = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(cause.clone())));
            }
        }
    }
}

/// Each submission's own outcome, or an error that undid the whole group.
///
/// The members that need no licence, routing or origin look-ups (`declarations::needs_lookups`)
/// are written set-wise, one multi-row statement per table for all of them
/// (`declarations::insert_many`), under a savepoint; a member that statement skipped (its key
/// already stored, its reference taken) is answered on its own. Every other member, and every
/// member of a group whose set-wise statement failed (the savepoint is rolled back), then runs
/// in its own savepoint as before, so one refused member never takes the others down.
async fn run_group(
    ctx: &Context,
    subs: &[OwnedSubmission],
) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    // Read inside the group's transaction: every member is held to the same routing version.
    let routing = ctx.routing.current(&tx).await?;
    let members: Vec<Submission<'_>> = subs
        .iter()
        .map(|sub| Submission {
            principal: &sub.principal,
            body: &sub.body,
            sha256: sub.sha256,
            declaration: &sub.declaration,
            idempotency_key: sub.idempotency_key.as_deref(),
            country: &ctx.country,
            routing: &routing,
            origin_checked_from: &ctx.origin_checked_from,
            today: sub.today,
        })
        .collect();
    let mut outcomes: Vec<Option<Result<Submitted, StoreError>>> =
        (0..members.len()).map(|_| None).collect();

    // Set-wise: members without look-ups, each Idempotency-Key once (a repeated key waits for
    // the per-member pass, where it finds the first one's record and replays it).
    let mut keys = std::collections::HashSet::new();
    let set: Vec<usize> = (0..members.len())
        .filter(|&i| {
            let s = &members[i];
            !declarations::needs_lookups(s)
                && s.idempotency_key
                    .is_none_or(|k| keys.insert((s.principal.party_id.as_str(), k)))
        })
        .collect();
    if !set.is_empty() {
        let batch: Vec<&Submission<'_>> = set.iter().map(|&i| &members[i]).collect();
        // Pipelined ahead of the statement, like a member's savepoint.
        let (marked, written) = futures_util::future::join(
            tx.batch_execute("SAVEPOINT grouped"),
            declarations::insert_many(&tx, &batch),
        )
        .await;
        marked?;
        match written {
            Ok(receipts) => {
                for (&i, receipt) in set.iter().zip(receipts) {
                    outcomes[i] = Some(match receipt {
                        Some(r) => Ok(Submitted::Created(r)),
                        // Nothing of it was written: a replay, a reused key or a taken reference.
                        None => declarations::reference_taken(&tx, &members[i]).await,
                    });
                }
            }
            Err(e) => {
                // Nothing of the set was written: every member goes the per-member way below.
                tracing::info!(error = %e, size = set.len(), "set-wise group insert fell back");
                tx.batch_execute("ROLLBACK TO SAVEPOINT grouped").await?;
            }
        }
    }

    let mut open = false;
    for (s, outcome) in members.iter().zip(outcomes.iter_mut()) {
        if outcome.is_none() {
            *outcome = Some(one(&tx, s, &mut open).await?);
        }
    }
    tx.commit().await?;
    Ok(outcomes.into_iter().flatten().collect())
}

/// One member of a group inside its savepoint. The outer error is for failures of the
/// savepoint machinery itself, which leave the transaction unusable. `open` says whether an
/// earlier member's savepoint is still there to release.
async fn one(
    tx: &deadpool_postgres::Transaction<'_>,
    s: &Submission<'_>,
    open: &mut bool,
) -> Result<Result<Submitted, StoreError>, StoreError> {
    let mut attempt = 0;
    loop {
        // Sent on the connection ahead of the member's first statements (tokio-postgres sends
        // a request when its future is first polled, and `join` polls in order), so releasing
        // the previous member's savepoint and opening this one cost no round trip of their own.
        let mark = if *open {
            "RELEASE SAVEPOINT member; SAVEPOINT member"
        } else {
            "SAVEPOINT member"
        };
        let (marked, inserted) =
            futures_util::future::join(tx.batch_execute(mark), declarations::insert(tx, s)).await;
        marked?;
        *open = true;
        let undo = || tx.batch_execute("ROLLBACK TO SAVEPOINT member");
        match inserted {
            Ok(Inserted::Done(outcome)) => return Ok(Ok(outcome)),
            Ok(Inserted::KeyTaken) => {
                undo().await?;
                return Ok(declarations::replay_after_race(tx, s).await);
            }
            Ok(Inserted::ReferenceTaken) => {
                // Only this member is undone: the rest of its group commits as it would have.
                undo().await?;
                return Ok(declarations::reference_taken(tx, s).await);
            }
            Err(e) if is_deadlock(&e) && attempt < DEADLOCK_RETRIES => {
                // Groups lock licence lines in their members' order, not one global order;
                // the loser of a deadlock runs again once the other group has moved on.
                undo().await?;
                attempt += 1;
            }
            Err(e) => {
                undo().await?;
                return Ok(Err(e));
            }
        }
    }
}

fn is_deadlock(e: &StoreError) -> bool {
    use tokio_postgres::error::SqlState;
    match e {
        StoreError::Db(DbError::Postgres(pg)) => matches!(
            pg.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
        ),
        _ => false,
    }
}
