//! Group commit for messages received from partner windows. Deliveries that arrive together
//! share one transaction (`inbound::insert_many`: one multi-row statement for the messages and
//! their audit entries, one durable commit) instead of one each. A partner is answered only
//! after the commit that holds its message, so a receipt still means stored.
//!
//! Groups form by themselves: a committer takes whatever is queued when it becomes free, so a
//! lone delivery is committed at once and a burst is committed in groups. If a group's
//! transaction fails, each of its messages is tried alone, so one bad row does not refuse the
//! others.

use std::sync::Arc;

use bytes::Bytes;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::Instrument;
use uuid::Uuid;

use super::inbound::{self, NewInbound, Stored};
use super::StoreError;

/// A verified, valid message and its receipt, owned so it can travel to a committer.
pub struct OwnedInbound {
    pub sender: String,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub document_type: String,
    pub function: String,
    pub reference: String,
    pub previous_reference: Option<String>,
    pub envelope: Bytes,
    pub sha256: [u8; 32],
    pub signature: Vec<u8>,
    pub signer_subject: String,
    pub receipt: Vec<u8>,
    pub receipt_signature: Vec<u8>,
}

impl OwnedInbound {
    fn borrowed(&self) -> NewInbound<'_> {
        NewInbound {
            sender: &self.sender,
            message_id: self.message_id,
            conversation_id: self.conversation_id,
            document_type: &self.document_type,
            function: &self.function,
            reference: &self.reference,
            previous_reference: self.previous_reference.as_deref(),
            envelope: &self.envelope,
            sha256: &self.sha256,
            signature: &self.signature,
            signer_subject: &self.signer_subject,
            receipt: &self.receipt,
            receipt_signature: &self.receipt_signature,
        }
    }
}

struct Job {
    message: OwnedInbound,
    reply: oneshot::Sender<Result<Stored, StoreError>>,
}

/// The handle receiving requests store through; cheap to clone.
#[derive(Clone)]
pub struct InboundCommit {
    queue: mpsc::Sender<Job>,
}

impl InboundCommit {
    /// Starts `committers` tasks on the current runtime, each committing at most `max_group`
    /// messages per transaction on a connection of `pool`.
    pub fn spawn(pool: Pool, committers: usize, max_group: usize) -> InboundCommit {
        let max_group = max_group.max(1);
        let (queue, rx) = mpsc::channel::<Job>(committers.max(1) * max_group * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..committers.max(1) {
            let (rx, pool) = (rx.clone(), pool.clone());
            tokio::spawn(async move { committer(rx, pool, max_group).await });
        }
        InboundCommit { queue }
    }

    /// Stores one message; returns once its group has committed.
    pub async fn insert(&self, message: OwnedInbound) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the inbound committers have stopped".into());
        self.queue
            .send(Job { message, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn committer(rx: Arc<Mutex<mpsc::Receiver<Job>>>, pool: Pool, max: usize) {
    while let Some(jobs) = super::group_commit::gather(&rx, max).await {
        let span = tracing::debug_span!("job.inbound_commit", messages = jobs.len());
        commit(&pool, jobs).instrument(span).await;
    }
}

async fn commit(pool: &Pool, mut jobs: Vec<Job>) {
    // One order for every group, so two groups holding the same messages never wait on each
    // other in opposite orders (see `inbound::insert_many`).
    jobs.sort_by(|a, b| {
        (a.message.sender.as_str(), a.message.message_id)
            .cmp(&(b.message.sender.as_str(), b.message.message_id))
    });
    let mut client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::Unavailable(format!(
                    "no database connection: {e}"
                ))));
            }
            return;
        }
    };
    let messages: Vec<NewInbound> = jobs.iter().map(|j| j.message.borrowed()).collect();
    let result = inbound::insert_many(&mut client, &messages).await;
    drop(messages);
    match result {
        Ok(stored) => {
            for (job, s) in jobs.into_iter().zip(stored) {
                let _ = job.reply.send(Ok(s));
            }
        }
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(error = %e, messages = jobs.len(), "inbound group failed; storing its messages one by one");
            for job in jobs {
                let r = inbound::insert(&mut client, &job.message.borrowed()).await;
                let _ = job.reply.send(r);
            }
        }
        Err(e) => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
    }
}
