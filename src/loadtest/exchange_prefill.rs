//! `nsw loadtest --exchange --prefill N`: fills both windows' databases with N exchanged
//! messages, as the exchange would have left them (VN: a delivered outbox row with its
//! envelope, signature and SG's receipt, and its three audit entries; SG: the stored message
//! with the receipt it answered, and its audit entry, all sealed), so the same load can be
//! measured again against a full history in the same run.
//!
//! Every prefilled message copies the bytes of one message that really went through in the
//! run (same sizes, same compression), under its own ids and reference. Rows are written
//! set-wise by SQL (`generate_series`) in chunks; their ids are UUIDv7 of their times, spread
//! over the year before the run, as real history would be.

use std::time::Instant;

use deadpool_postgres::{Client, Pool};
use uuid::Uuid;

use super::BoxError;

/// Messages written per statement group (one transaction per window each).
const CHUNK: i64 = 50_000;

/// The prefilled messages are spread evenly over the year before the run (milliseconds).
const HISTORY_MS: i64 = 365 * 24 * 3600 * 1000;

pub struct Prefilled {
    pub messages: i64,
    pub seconds: f64,
}

/// Writes `n` delivered messages into VN's database and the same `n` stored messages into
/// SG's, copying the bytes of `template`, a message VN delivered to SG in this run. The
/// prefilled rows' times are spread evenly over the year that ends at `end_ms` (milliseconds
/// since the epoch). References start with `VNACDD-XB-prefill-`.
pub async fn run(
    vn: &Pool,
    sg: &Pool,
    template: Uuid,
    n: i64,
    end_ms: i64,
) -> Result<Prefilled, BoxError> {
    let started = Instant::now();
    let step_ms = (HISTORY_MS / n.max(1)).max(1);
    let mut vc = vn.get().await?;
    let mut sc = sg.get().await?;
    let mut done = 0i64;
    while done < n {
        let count = CHUNK.min(n - done);
        let (first, last) = (done + 1, done + count);
        // Message g was made at $3 - ($4 - g) * $5 milliseconds: a year of history, evenly.
        let ids = "CREATE TEMP TABLE prefill_ids ON COMMIT DROP AS
             SELECT g,
                    (lpad(to_hex(ms), 12, '0') || '7000' || '8000'
                        || lpad(to_hex(g), 12, '0'))::uuid AS id,
                    (lpad(to_hex(g), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid
                        AS message_id,
                    'VNACDD-XB-prefill-' || lpad(g::text, 9, '0') AS reference,
                    to_timestamp(ms / 1000.0) AS at
               FROM generate_series($1::bigint, $2::bigint) AS g,
                    LATERAL (SELECT $3::bigint - ($4::bigint - g) * $5::bigint AS ms) AS t";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&first, &last, &end_ms, &n, &step_ms];

        let tx = vc.transaction().await?;
        tx.execute(ids, &params).await?;
        tx.execute(
            "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type,
                function, reference, envelope, sha256, signature, status, attempts, max_attempts,
                available_at, expires_at, receipt, receipt_signature, created_at, updated_at,
                delivered_at, cause)
             SELECT p.id, p.message_id, p.message_id, t.receiver, t.document_type, t.function,
                    p.reference, t.envelope, t.sha256, t.signature, 'delivered', 1,
                    t.max_attempts, p.at, p.at + (t.expires_at - t.created_at), t.receipt,
                    t.receipt_signature, p.at, p.at, p.at + interval '20 ms',
                    'operator:' || p.message_id
               FROM prefill_ids p, (SELECT * FROM outbox WHERE message_id = $1) t",
            &[&template],
        )
        .await?;
        // The three entries the exchange writes for a message delivered at its first attempt.
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, subject, details)
             SELECT p.at + e.after, e.actor, e.action, p.message_id::text,
                    CASE e.action
                        WHEN 'exchange.enqueued' THEN jsonb_build_object('cause',
                            'operator:' || p.message_id, 'receiver', 'SG', 'document_type',
                            'ACDD', 'function', 'submit', 'reference', p.reference, 'sha256',
                            encode(t.sha256, 'hex'))
                        WHEN 'exchange.sending' THEN jsonb_build_object('attempt', 1, 'worker',
                            '00000000-0000-4000-8000-000000000000')
                        ELSE jsonb_build_object('attempts', 1, 'error', NULL)
                    END
               FROM prefill_ids p, (SELECT sha256 FROM outbox WHERE message_id = $1) t,
                    (VALUES (interval '0 ms', 'loadtest', 'exchange.enqueued'),
                            (interval '5 ms', 'exchange-worker', 'exchange.sending'),
                            (interval '20 ms', 'exchange-worker', 'exchange.delivered'))
                        AS e(after, actor, action)
              ORDER BY p.g, e.after",
            &[&template],
        )
        .await?;
        tx.commit().await?;

        // SG's side of the same messages, with the bytes it stored for the template.
        let template_row = sc
            .query_one(
                "SELECT id FROM inbound_messages WHERE sender = 'VN' AND message_id = $1",
                &[&template],
            )
            .await?;
        let stored: Uuid = template_row.get(0);
        let tx = sc.transaction().await?;
        tx.execute(ids, &params).await?;
        tx.execute(
            "INSERT INTO inbound_messages (id, sender, message_id, conversation_id,
                document_type, function, reference, envelope, sha256, signature, signer_subject,
                receipt, receipt_signature, status, received_at)
             SELECT p.id, 'VN', p.message_id, p.message_id, t.document_type, t.function,
                    p.reference, t.envelope, t.sha256, t.signature, t.signer_subject, t.receipt,
                    t.receipt_signature, t.status, p.at + interval '10 ms'
               FROM prefill_ids p, (SELECT * FROM inbound_messages WHERE id = $1) t",
            &[&stored],
        )
        .await?;
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, subject, details)
             SELECT p.at + interval '10 ms', 'partner:VN', 'exchange.received',
                    p.message_id::text,
                    jsonb_build_object('id', p.id, 'document_type', t.document_type,
                        'function', t.function, 'reference', p.reference,
                        'previous_reference', NULL, 'sha256', encode(t.sha256, 'hex'),
                        'signer', t.signer_subject)
               FROM prefill_ids p, (SELECT * FROM inbound_messages WHERE id = $1) t
              ORDER BY p.g",
            &[&stored],
        )
        .await?;
        tx.commit().await?;
        done = last;
        eprintln!(
            "loadtest --exchange: prefilled {done} of {n} messages ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    for (window, client) in [("VN", &mut vc), ("SG", &mut sc)] {
        eprintln!("loadtest --exchange: sealing {window}'s audit chain");
        settle(client, window).await?;
    }
    Ok(Prefilled {
        messages: n,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a running window would have done meanwhile: audit chain links, statistics, a
/// checkpoint, so the measured phase starts from a settled database.
async fn settle(client: &mut Client, window: &str) -> Result<(), BoxError> {
    // Statistics first: the sealer plans its statements once per session, and a plan made
    // while the planner believed these tables empty would scan them whole at every batch.
    client
        .batch_execute("ANALYZE audit_log, outbox, inbound_messages")
        .await?;
    super::prefill::seal_audit(client).await?;
    client
        .batch_execute("VACUUM ANALYZE audit_log, outbox, inbound_messages")
        .await?;
    super::prefill::checkpoint(client, &format!("{window}'s database")).await;
    Ok(())
}
