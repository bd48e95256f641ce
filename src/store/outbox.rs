//! The outbox of messages to partner windows. Rows are written in the caller's transaction
//! (the decision that caused them); workers claim them with `FOR UPDATE SKIP LOCKED` and a
//! lease, so several instances on one database never send the same message at the same time.
//! Status changes follow the state machine that `outbox_guard()` enforces in the database.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{audit, StoreError};
use crate::domain::message_state::Status;

pub const STATUSES: [&str; 6] = [
    Status::Pending.as_str(),
    Status::Sending.as_str(),
    Status::RetryWait.as_str(),
    Status::Delivered.as_str(),
    Status::Rejected.as_str(),
    Status::DeadLetter.as_str(),
];

/// Refuses a status change the code's state machine does not allow, before the statement
/// that makes it, so the code and the `outbox_guard()` trigger must agree for it to run.
fn transition(from: Status, to: Status) -> Result<(), StoreError> {
    if from.can_become(to) {
        Ok(())
    } else {
        Err(StoreError::Transition(format!(
            "outbox: transition {} -> {} is not allowed",
            from.as_str(),
            to.as_str()
        )))
    }
}

pub struct NewOutbound<'a> {
    /// What produced the message (`acdd:<declaration id>` …): unique, so a second message for
    /// the same cause is refused by the database.
    pub cause: &'a str,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub receiver: &'a str,
    pub document_type: &'a str,
    pub function: &'a str,
    pub reference: &'a str,
    pub previous_reference: Option<&'a str>,
    pub envelope: &'a [u8],
    /// The window's detached CMS signature over `envelope`, made at enqueue; `None` leaves
    /// signing to the worker's first attempt.
    pub signature: Option<&'a [u8]>,
    pub max_attempts: i32,
    pub ttl_secs: f64,
}

/// Inserts a pending message in the caller's transaction, with its audit entry.
pub async fn insert<C: GenericClient>(
    tx: &C,
    m: &NewOutbound<'_>,
    actor: &str,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let sha = Sha256::digest(m.envelope).to_vec();
    // Prepared once per connection: this runs once per message, in the decision's transaction.
    let stmt = tx
        .prepare_cached(
            "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type, function,
            reference, previous_reference, envelope, sha256, max_attempts, expires_at, cause,
            signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                 now() + make_interval(secs => $12), $13, $14)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &id,
            &m.message_id,
            &m.conversation_id,
            &m.receiver,
            &m.document_type,
            &m.function,
            &m.reference,
            &m.previous_reference,
            &m.envelope,
            &sha,
            &m.max_attempts,
            &m.ttl_secs,
            &m.cause,
            &m.signature,
        ],
    )
    .await?;
    audit::append(
        tx,
        actor,
        "exchange.enqueued",
        &m.message_id.to_string(),
        &serde_json::json!({
            "cause": m.cause,
            "receiver": m.receiver,
            "document_type": m.document_type,
            "function": m.function,
            "reference": m.reference,
            "sha256": hex::encode(&sha),
        }),
    )
    .await?;
    Ok(id)
}

pub struct Claimed {
    pub id: Uuid,
    pub message_id: Uuid,
    pub receiver: String,
    pub envelope: Vec<u8>,
    pub sha256: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub expired: bool,
    /// Seconds since the message was enqueued, at the claim.
    pub queued_secs: f64,
}

/// Claims up to `limit` due messages for `worker`, leasing them for `lease_secs`.
pub async fn claim<C: GenericClient>(
    client: &C,
    worker: Uuid,
    lease_secs: f64,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    transition(Status::Pending, Status::Sending)?;
    transition(Status::RetryWait, Status::Sending)?;
    // The audit entries go in with the claim itself: one statement, one transaction.
    let stmt = client
        .prepare_cached(
            "WITH claimed AS (
                UPDATE outbox SET status = 'sending', attempts = attempts + 1, locked_by = $1,
                       locked_until = now() + make_interval(secs => $2), updated_at = now()
                 WHERE id IN (SELECT id FROM outbox
                               WHERE status IN ('pending', 'retry_wait') AND available_at <= now()
                               ORDER BY available_at, id
                               FOR UPDATE SKIP LOCKED LIMIT $3)
                 RETURNING id, message_id, receiver, envelope, sha256, signature, attempts,
                           max_attempts, expires_at <= now() AS expired,
                           extract(epoch FROM now() - created_at)::float8 AS queued_secs),
             audited AS (
                INSERT INTO audit_log (actor, action, subject, details)
                SELECT 'exchange-worker', 'exchange.sending', message_id::text,
                       jsonb_build_object('attempt', attempts, 'worker', $1::uuid::text)
                  FROM claimed)
             SELECT * FROM claimed",
        )
        .await?;
    let rows = client.query(&stmt, &[&worker, &lease_secs, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            message_id: r.get(1),
            receiver: r.get::<_, String>(2),
            envelope: r.get(3),
            sha256: r.get(4),
            signature: r.get(5),
            attempts: r.get(6),
            max_attempts: r.get(7),
            expired: r.get(8),
            queued_secs: r.get::<_, f64>(9).max(0.0),
        })
        .collect())
}

/// Records the signature made for a claimed message (once; the database refuses a change).
pub async fn set_signature<C: GenericClient>(
    client: &C,
    id: Uuid,
    worker: Uuid,
    signature: &[u8],
) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "UPDATE outbox SET signature = $3
              WHERE id = $1 AND status = 'sending' AND locked_by = $2 AND signature IS NULL",
            &[&id, &worker, &signature],
        )
        .await?;
    Ok(n == 1)
}

/// Records the signatures made for a claimed batch in one statement (each once; the database
/// refuses a change). Returns the ids whose signature was written; a message missing from it
/// was no longer this worker's, or already signed.
pub async fn set_signatures<C: GenericClient>(
    client: &C,
    worker: Uuid,
    signed: &[(Uuid, Vec<u8>)],
) -> Result<Vec<Uuid>, StoreError> {
    if signed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = signed.iter().map(|(id, _)| *id).collect();
    let sigs: Vec<&[u8]> = signed.iter().map(|(_, s)| s.as_slice()).collect();
    let rows = client
        .query(
            "UPDATE outbox o SET signature = s.sig
               FROM unnest($1::uuid[], $2::bytea[]) AS s(id, sig)
              WHERE o.id = s.id AND o.status = 'sending' AND o.locked_by = $3
                AND o.signature IS NULL
              RETURNING o.id",
            &[&ids, &sigs, &worker],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How one delivery attempt ended.
pub enum Outcome<'a> {
    /// A verified, signed receipt: accepted → delivered, rejected → rejected.
    Receipt {
        accepted: bool,
        receipt: &'a [u8],
        signature: &'a [u8],
    },
    /// No valid receipt: retry after `retry_in_secs`, or dead letter when `None`.
    Failed {
        error: &'a str,
        retry_in_secs: Option<f64>,
    },
}

/// Ends this worker's lease on several messages in one transaction: one statement for the
/// receipts, one for the failures, each writing its audit entries in the same statement (as
/// the claim does), and one commit for all. Returns the ids settled; a message missing from
/// it was no longer this worker's (the reaper returned it after its lease), and nothing
/// changed for it. If the process dies before the commit, none is settled: the reaper
/// returns them after the lease, and the partner answers a repeat with the same receipt.
pub async fn settle(
    client: &mut deadpool_postgres::Object,
    worker: Uuid,
    outcomes: &[(Uuid, Outcome<'_>)],
) -> Result<Vec<Uuid>, StoreError> {
    let mut receipts = (
        Vec::new(),
        Vec::new(),
        Vec::<&[u8]>::new(),
        Vec::<&[u8]>::new(),
    );
    let mut failures = (Vec::new(), Vec::new(), Vec::<&str>::new(), Vec::new());
    for (id, outcome) in outcomes {
        match outcome {
            Outcome::Receipt {
                accepted,
                receipt,
                signature,
            } => {
                let to = if *accepted {
                    Status::Delivered
                } else {
                    Status::Rejected
                };
                transition(Status::Sending, to)?;
                receipts.0.push(*id);
                receipts.1.push(to.as_str());
                receipts.2.push(receipt);
                receipts.3.push(signature);
            }
            Outcome::Failed {
                error,
                retry_in_secs,
            } => {
                let (to, delay) = match retry_in_secs {
                    Some(s) => (Status::RetryWait, *s),
                    None => (Status::DeadLetter, 0.0),
                };
                transition(Status::Sending, to)?;
                failures.0.push(*id);
                failures.1.push(to.as_str());
                failures.2.push(error);
                failures.3.push(delay);
            }
        }
    }
    let tx = client.transaction().await?;
    let mut settled = Vec::with_capacity(outcomes.len());
    if !receipts.0.is_empty() {
        let stmt = tx
            .prepare_cached(
                "WITH s AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[])
                                AS s(id, status, receipt, signature)),
                      u AS (UPDATE outbox o SET status = s.status, receipt = s.receipt,
                                   receipt_signature = s.signature, locked_by = NULL,
                                   locked_until = NULL, last_error = NULL,
                                   delivered_at = now(), updated_at = now()
                              FROM s
                             WHERE o.id = s.id AND o.status = $5 AND o.locked_by = $6
                             RETURNING o.id, o.message_id, o.status, o.attempts),
                      a AS (INSERT INTO audit_log (actor, action, subject, details)
                            SELECT 'exchange-worker', 'exchange.' || status, message_id::text,
                                   jsonb_build_object('attempts', attempts, 'error', NULL)
                              FROM u ORDER BY id)
                 SELECT id FROM u",
            )
            .await?;
        let rows = tx
            .query(
                &stmt,
                &[
                    &receipts.0,
                    &receipts.1,
                    &receipts.2,
                    &receipts.3,
                    &Status::Sending.as_str(),
                    &worker,
                ],
            )
            .await?;
        settled.extend(rows.iter().map(|r| r.get::<_, Uuid>(0)));
    }
    if !failures.0.is_empty() {
        let stmt = tx
            .prepare_cached(
                "WITH s AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[])
                                AS s(id, status, error, delay)),
                      u AS (UPDATE outbox o SET status = s.status, last_error = s.error,
                                   available_at = now() + make_interval(secs => s.delay),
                                   locked_by = NULL, locked_until = NULL, updated_at = now()
                              FROM s
                             WHERE o.id = s.id AND o.status = $5 AND o.locked_by = $6
                             RETURNING o.id, o.message_id, o.status, o.attempts, s.error),
                      a AS (INSERT INTO audit_log (actor, action, subject, details)
                            SELECT 'exchange-worker', 'exchange.' || status, message_id::text,
                                   jsonb_build_object('attempts', attempts, 'error', error)
                              FROM u ORDER BY id)
                 SELECT id FROM u",
            )
            .await?;
        let rows = tx
            .query(
                &stmt,
                &[
                    &failures.0,
                    &failures.1,
                    &failures.2,
                    &failures.3,
                    &Status::Sending.as_str(),
                    &worker,
                ],
            )
            .await?;
        settled.extend(rows.iter().map(|r| r.get::<_, Uuid>(0)));
    }
    tx.commit().await?;
    Ok(settled)
}

/// Returns messages whose lease ran out (a worker died mid-delivery) to the retry queue, or
/// to the dead letters when their attempts or time are used up.
pub async fn reap(client: &mut deadpool_postgres::Object) -> Result<u64, StoreError> {
    // One statement picks either outcome per row, so both must be allowed.
    transition(Status::Sending, Status::DeadLetter)?;
    transition(Status::Sending, Status::RetryWait)?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "UPDATE outbox SET
                    status = CASE WHEN attempts >= max_attempts OR expires_at <= now()
                                  THEN $2::text ELSE $3::text END,
                    last_error = 'lease expired: the sending worker stopped mid-delivery',
                    available_at = now(), locked_by = NULL, locked_until = NULL, updated_at = now()
              WHERE id IN (SELECT id FROM outbox WHERE status = $1::text AND locked_until < now()
                            FOR UPDATE SKIP LOCKED)
              RETURNING message_id, status",
            &[
                &Status::Sending.as_str(),
                &Status::DeadLetter.as_str(),
                &Status::RetryWait.as_str(),
            ],
        )
        .await?;
    for r in &rows {
        let message_id: Uuid = r.get(0);
        let status: String = r.get(1);
        audit::append(
            &tx,
            "exchange-reaper",
            &format!("exchange.{status}"),
            &message_id.to_string(),
            &serde_json::json!({ "error": "lease expired" }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OutboxMessage)]
pub struct OutboxRow {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub receiver: String,
    pub document_type: String,
    pub function: String,
    pub reference: String,
    pub previous_reference: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub available_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub receipt: Option<String>,
}

const COLUMNS: &str = "message_id, conversation_id, receiver, document_type, function, reference,
    previous_reference, status, attempts, max_attempts, available_at, expires_at, last_error,
    sha256, created_at, delivered_at, receipt";

fn row(r: &tokio_postgres::Row) -> OutboxRow {
    OutboxRow {
        message_id: r.get(0),
        conversation_id: r.get(1),
        receiver: r.get::<_, String>(2),
        document_type: r.get(3),
        function: r.get(4),
        reference: r.get(5),
        previous_reference: r.get(6),
        status: r.get(7),
        attempts: r.get(8),
        max_attempts: r.get(9),
        available_at: r.get(10),
        expires_at: r.get(11),
        last_error: r.get(12),
        sha256: hex::encode(r.get::<_, Vec<u8>>(13)),
        created_at: r.get(14),
        delivered_at: r.get(15),
        receipt: r
            .get::<_, Option<Vec<u8>>>(16)
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    }
}

pub async fn list<C: GenericClient>(
    client: &C,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM outbox WHERE ($1::text IS NULL OR status = $1)
                  ORDER BY id DESC LIMIT $2"
            ),
            &[&status, &limit],
        )
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn get<C: GenericClient>(
    client: &C,
    message_id: Uuid,
) -> Result<Option<OutboxRow>, StoreError> {
    let r = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM outbox WHERE message_id = $1"),
            &[&message_id],
        )
        .await?;
    Ok(r.as_ref().map(row))
}

/// The stored envelope and its signature (made at enqueue; `None` only for a message enqueued
/// unsigned and not sent yet).
pub async fn envelope<C: GenericClient>(
    client: &C,
    message_id: Uuid,
) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>, StoreError> {
    let r = client
        .query_opt(
            "SELECT envelope, signature FROM outbox WHERE message_id = $1",
            &[&message_id],
        )
        .await?;
    Ok(r.map(|r| (r.get(0), r.get(1))))
}

/// An operator's retry of a dead letter: same message id, same bytes, attempts from zero.
pub async fn requeue(
    client: &mut deadpool_postgres::Object,
    message_id: Uuid,
    ttl_secs: f64,
    actor: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let status: Option<String> = tx
        .query_opt(
            "SELECT status FROM outbox WHERE message_id = $1 FOR UPDATE",
            &[&message_id],
        )
        .await?
        .map(|r| r.get(0));
    let status = status.ok_or(StoreError::NotFound)?;
    let can = Status::parse(&status).is_some_and(|s| s.can_become(Status::Pending));
    if !can {
        return Err(StoreError::Transition(format!(
            "outbox: only dead letters can be requeued; this message is {status}"
        )));
    }
    tx.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, available_at = now(),
                expires_at = now() + make_interval(secs => $2), updated_at = now()
          WHERE message_id = $1",
        &[&message_id, &ttl_secs],
    )
    .await?;
    audit::append(
        &tx,
        actor,
        "exchange.requeued",
        &message_id.to_string(),
        &serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What an ACDD is built from: the dossier and the declaration as submitted.
pub struct DeclarationSource {
    pub reference: String,
    pub direction: String,
    pub status: String,
    pub export_country: String,
    pub destination: String,
    pub body: Vec<u8>,
}

pub async fn declaration_source<C: GenericClient>(
    client: &C,
    declaration_id: Uuid,
) -> Result<Option<DeclarationSource>, StoreError> {
    let r = client
        .query_opt(
            "SELECT d.reference, d.direction, d.status, d.export_country, d.destination_country,
                    doc.body
               FROM declarations d JOIN documents doc ON doc.id = d.document_id
              WHERE d.id = $1",
            &[&declaration_id],
        )
        .await?;
    Ok(r.map(|r| DeclarationSource {
        reference: r.get(0),
        direction: r.get(1),
        status: r.get(2),
        export_country: r.get::<_, String>(3),
        destination: r.get::<_, String>(4),
        body: r.get(5),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_state_machine_transitions_pass() {
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    transition(from, to).is_ok(),
                    from.can_become(to),
                    "{from:?} -> {to:?}"
                );
            }
        }
        let err = transition(Status::DeadLetter, Status::Delivered).unwrap_err();
        assert!(matches!(err, StoreError::Transition(_)));
        assert_eq!(
            err.to_string(),
            "outbox: transition dead_letter -> delivered is not allowed"
        );
    }
}
