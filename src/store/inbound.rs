//! Messages received from partner windows, stored as received (envelope and signature bytes)
//! together with the receipt we answered, deduplicated by the database on (sender, message id).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use super::{audit, StoreError};

pub struct NewInbound<'a> {
    pub sender: &'a str,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub document_type: &'a str,
    pub function: &'a str,
    pub reference: &'a str,
    pub previous_reference: Option<&'a str>,
    pub envelope: &'a [u8],
    pub sha256: &'a [u8],
    pub signature: &'a [u8],
    pub signer_subject: &'a str,
    pub receipt: &'a [u8],
    pub receipt_signature: &'a [u8],
}

/// An earlier delivery of the same (sender, message id).
pub struct Earlier {
    pub sha256: Vec<u8>,
    pub receipt: Vec<u8>,
    pub receipt_signature: Vec<u8>,
}

pub async fn find<C: GenericClient>(
    client: &C,
    sender: &str,
    message_id: Uuid,
) -> Result<Option<Earlier>, StoreError> {
    // Prepared once per connection: every delivery is looked up before it is checked.
    let stmt = client
        .prepare_cached(
            "SELECT sha256, receipt, receipt_signature FROM inbound_messages
              WHERE sender = $1 AND message_id = $2",
        )
        .await?;
    let r = client.query_opt(&stmt, &[&sender, &message_id]).await?;
    Ok(r.map(|r| Earlier {
        sha256: r.get(0),
        receipt: r.get(1),
        receipt_signature: r.get(2),
    }))
}

pub enum Stored {
    New(Uuid),
    /// Another delivery of the same message won the race; its row.
    AlreadyThere(Earlier),
}

/// Stores a verified, valid message and its receipt with an audit entry, in one transaction.
pub async fn insert(
    client: &mut deadpool_postgres::Object,
    m: &NewInbound<'_>,
) -> Result<Stored, StoreError> {
    let id = Uuid::now_v7();
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            "INSERT INTO inbound_messages (id, sender, message_id, conversation_id, document_type,
                function, reference, previous_reference, envelope, sha256, signature,
                signer_subject, receipt, receipt_signature)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (sender, message_id) DO NOTHING",
            &[
                &id,
                &m.sender,
                &m.message_id,
                &m.conversation_id,
                &m.document_type,
                &m.function,
                &m.reference,
                &m.previous_reference,
                &m.envelope,
                &m.sha256,
                &m.signature,
                &m.signer_subject,
                &m.receipt,
                &m.receipt_signature,
            ],
        )
        .await?;
    if n == 0 {
        drop(tx);
        return find(&*client, m.sender, m.message_id)
            .await?
            .map(Stored::AlreadyThere)
            .ok_or(StoreError::NotFound);
    }
    audit::append(
        &tx,
        &format!("partner:{}", m.sender),
        "exchange.received",
        &m.message_id.to_string(),
        &serde_json::json!({
            "id": id,
            "document_type": m.document_type,
            "function": m.function,
            "reference": m.reference,
            "previous_reference": m.previous_reference,
            "sha256": hex::encode(m.sha256),
            "signer": m.signer_subject,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Stored::New(id))
}

/// Stores several verified, valid messages with their receipts and audit entries in one
/// transaction (one multi-row statement for the messages and their entries, one commit).
/// Answers in the order given: `Stored::New` for a message whose row this call wrote,
/// `Stored::AlreadyThere` for one stored before (or by an earlier member of the same call).
/// An error leaves nothing written. Concurrent callers should give their messages in one order
/// (the committers sort them by sender and message id), so that two transactions storing the
/// same messages never wait on each other in opposite orders.
pub async fn insert_many(
    client: &mut deadpool_postgres::Object,
    messages: &[NewInbound<'_>],
) -> Result<Vec<Stored>, StoreError> {
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::now_v7()).collect();
    fn col<'a, T: ?Sized>(
        m: &'a [NewInbound<'a>],
        f: impl Fn(&NewInbound<'a>) -> &'a T,
    ) -> Vec<&'a T> {
        m.iter().map(f).collect()
    }
    let message_ids: Vec<Uuid> = messages.iter().map(|m| m.message_id).collect();
    let conversations: Vec<Uuid> = messages.iter().map(|m| m.conversation_id).collect();
    let previous: Vec<Option<&str>> = messages.iter().map(|m| m.previous_reference).collect();
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "WITH m AS (
                INSERT INTO inbound_messages (id, sender, message_id, conversation_id,
                    document_type, function, reference, previous_reference, envelope, sha256,
                    signature, signer_subject, receipt, receipt_signature)
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[],
                    $6::text[], $7::text[], $8::text[], $9::bytea[], $10::bytea[], $11::bytea[],
                    $12::text[], $13::bytea[], $14::bytea[])
                ON CONFLICT (sender, message_id) DO NOTHING
                RETURNING id, sender, message_id, document_type, function, reference,
                          previous_reference, sha256, signer_subject),
             a AS (
                INSERT INTO audit_log (actor, action, subject, details)
                SELECT 'partner:' || sender, 'exchange.received', message_id::text,
                       jsonb_build_object('id', id, 'document_type', document_type,
                           'function', function, 'reference', reference,
                           'previous_reference', previous_reference,
                           'sha256', encode(sha256, 'hex'), 'signer', signer_subject)
                  FROM m ORDER BY id)
             SELECT id FROM m",
        )
        .await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &ids,
                &col(messages, |m| m.sender),
                &message_ids,
                &conversations,
                &col(messages, |m| m.document_type),
                &col(messages, |m| m.function),
                &col(messages, |m| m.reference),
                &previous,
                &col(messages, |m| m.envelope),
                &col(messages, |m| m.sha256),
                &col(messages, |m| m.signature),
                &col(messages, |m| m.signer_subject),
                &col(messages, |m| m.receipt),
                &col(messages, |m| m.receipt_signature),
            ],
        )
        .await?;
    let written: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let mut stored = Vec::with_capacity(messages.len());
    // The rows that were there already, read before the commit: once it succeeds, every answer
    // is known, so a stored message is never answered as anything else.
    for (m, id) in messages.iter().zip(ids) {
        if written.contains(&id) {
            stored.push(Stored::New(id));
        } else {
            let earlier = find(&tx, m.sender, m.message_id)
                .await?
                .ok_or(StoreError::NotFound)?;
            stored.push(Stored::AlreadyThere(earlier));
        }
    }
    tx.commit().await?;
    Ok(stored)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = InboundMessage)]
pub struct InboundRow {
    pub id: Uuid,
    pub sender: String,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub document_type: String,
    pub function: String,
    pub reference: String,
    pub previous_reference: Option<String>,
    pub sha256: String,
    pub signer: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, sender, message_id, conversation_id, document_type, function,
    reference, previous_reference, sha256, signer_subject, status, received_at";

fn row(r: &tokio_postgres::Row) -> InboundRow {
    InboundRow {
        id: r.get(0),
        sender: r.get::<_, String>(1),
        message_id: r.get(2),
        conversation_id: r.get(3),
        document_type: r.get(4),
        function: r.get(5),
        reference: r.get(6),
        previous_reference: r.get(7),
        sha256: hex::encode(r.get::<_, Vec<u8>>(8)),
        signer: r.get(9),
        status: r.get(10),
        received_at: r.get(11),
    }
}

/// Received messages, newest first, optionally of one document type.
pub async fn list<C: GenericClient>(
    client: &C,
    document_type: Option<&str>,
    limit: i64,
) -> Result<Vec<InboundRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM inbound_messages
                  WHERE ($1::text IS NULL OR document_type = $1) ORDER BY id DESC LIMIT $2"
            ),
            &[&document_type, &limit],
        )
        .await?;
    Ok(rows.iter().map(row).collect())
}

/// What `partner` sent back in answer to our message `reference` (its business responses),
/// oldest first: the same conversation seen from the sending side.
pub async fn answers_to<C: GenericClient>(
    client: &C,
    partner: &str,
    reference: &str,
) -> Result<Vec<InboundRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM inbound_messages
                  WHERE sender = $1 AND previous_reference = $2 ORDER BY id"
            ),
            &[&partner, &reference],
        )
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn get<C: GenericClient>(client: &C, id: Uuid) -> Result<Option<InboundRow>, StoreError> {
    let r = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM inbound_messages WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(r.as_ref().map(row))
}

/// Envelope, signature, receipt and receipt signature as stored.
pub async fn raw<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Option<[Vec<u8>; 4]>, StoreError> {
    let r = client
        .query_opt(
            "SELECT envelope, signature, receipt, receipt_signature FROM inbound_messages WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(r.map(|r| [r.get(0), r.get(1), r.get(2), r.get(3)]))
}

/// Marks a received document answered, in the transaction that enqueues the answer. The move
/// is judged by `domain::answer_state` (and again by the `inbound_guard()` trigger): a document
/// is answered once.
pub async fn mark_answered<C: GenericClient>(
    tx: &C,
    id: Uuid,
    actor: &str,
    response_message: Uuid,
) -> Result<(), StoreError> {
    use crate::domain::answer_state::Status;
    let current: String = tx
        .query_opt(
            "SELECT status FROM inbound_messages WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or(StoreError::NotFound)?
        .get(0);
    let from = Status::parse(&current)
        .ok_or_else(|| StoreError::Transition(format!("unknown status {current}")))?;
    if !from.can_become(Status::Answered) {
        return Err(StoreError::Transition(format!(
            "inbound message: transition {} -> answered is not allowed: it has already been answered",
            from.as_str()
        )));
    }
    tx.execute(
        "UPDATE inbound_messages SET status = 'answered' WHERE id = $1",
        &[&id],
    )
    .await?;
    audit::append(
        tx,
        actor,
        "exchange.answered",
        &id.to_string(),
        &serde_json::json!({ "response_message_id": response_message }),
    )
    .await?;
    Ok(())
}

/// A certificate of origin received from a partner window, by its reference: the proof of
/// origin an import declaration's item can quote.
pub async fn certificate_of_origin<C: GenericClient>(
    client: &C,
    reference: &str,
) -> Result<Option<InboundRow>, StoreError> {
    let r = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM inbound_messages
                  WHERE reference = $1 AND document_type IN ('FORM_D', 'CERTIFICATE_OF_ORIGIN_KR')
                  ORDER BY id DESC LIMIT 1"
            ),
            &[&reference],
        )
        .await?;
    Ok(r.as_ref().map(row))
}
