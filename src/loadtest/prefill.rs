//! `nsw loadtest --prefill N`: fills the database with N accepted declarations, as intake would
//! have stored them (document bytes, dossier, items, event in the feed, sealed audit entry), so
//! the same load can be measured again against a full database in the same run.
//!
//! Rows are written set-wise by SQL (`generate_series`), in chunks, which is what makes a
//! million dossiers take minutes rather than hours; their ids are UUIDv7-shaped and older than
//! anything the load then adds, as the real history would be.

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::BoxError;

/// Dossiers written per statement group (one transaction each).
const CHUNK: i64 = 50_000;

pub struct Prefilled {
    pub dossiers: i64,
    pub seconds: f64,
}

/// Writes `n` declarations of `body` (a valid document with `items` items) for `submitter`.
pub async fn run(
    pool: &deadpool_postgres::Pool,
    n: i64,
    body: &[u8],
    items: i32,
    submitter: &str,
) -> Result<Prefilled, BoxError> {
    let started = Instant::now();
    let mut client = pool.get().await?;
    let sha = Sha256::digest(body).to_vec();
    let size = body.len() as i32;
    // Milliseconds since the epoch of the oldest prefilled dossier: one per millisecond, ending
    // before now.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut done = 0i64;
    while done < n {
        let count = CHUNK.min(n - done);
        let first = done + 1;
        let last = done + count;
        let tx = client.transaction().await?;
        tx.execute(
            "CREATE TEMP TABLE prefill_ids ON COMMIT DROP AS
             SELECT g,
                    (lpad(to_hex($3::bigint - $4::bigint + g), 12, '0') || '7000' || '8000'
                        || lpad(to_hex(g), 12, '0'))::uuid AS id,
                    (lpad(to_hex($3::bigint - $4::bigint + g), 12, '0') || '7001' || '8000'
                        || lpad(to_hex(g), 12, '0'))::uuid AS document_id,
                    to_timestamp(($3::bigint - $4::bigint + g) / 1000.0) AS at
               FROM generate_series($1::bigint, $2::bigint) AS g",
            &[&first, &last, &now_ms, &n],
        )
        .await?;
        tx.execute(
            "INSERT INTO documents (id, kind, sha256, size, body, received_at)
             SELECT document_id, 'declaration', $1, $2, $3, at FROM prefill_ids",
            &[&sha, &size, &body],
        )
        .await?;
        tx.execute(
            "INSERT INTO declarations (id, reference, document_id, submitter, status, direction,
                lrn, declarant_id, exporter_id, importer_id, trader_id, export_country,
                destination_country, customs_office, issue_date, currency, total_value,
                total_gross_mass, item_count, received_at, updated_at)
             SELECT id, 'VN-DEC-PRE-' || lpad(g::text, 9, '0'), document_id, $1, 'accepted',
                    'IM', 'PRE-' || g, $1, 'SG000000001', $1, $1, 'SG', 'VN', 'VNHCM01',
                    at::date, 'USD', 12345.67, 1000.000, $2, at, at
               FROM prefill_ids",
            &[&submitter, &items],
        )
        .await?;
        // The database lets a declaration start only as accepted; the decided share of the
        // history then moves on through the same transitions customs would make.
        tx.execute(
            "UPDATE declarations d
                SET status = CASE WHEN p.g % 5 = 4 THEN 'rejected' ELSE 'cleared' END
               FROM prefill_ids p
              WHERE d.id = p.id AND p.g % 5 <> 0",
            &[],
        )
        .await?;
        tx.execute(
            "INSERT INTO declaration_items (declaration_id, line, hs_code, description, origin,
                quantity, unit, net_mass, gross_mass, customs_value)
             SELECT id, l, '85171300', 'Prefilled goods line', 'SG', 10, 'PCE', 90, 100, 1234.56
               FROM prefill_ids, generate_series(1, $1::int) AS l",
            &[&items],
        )
        .await?;
        tx.execute(
            "INSERT INTO dossier_events (dossier_id, status, at, actor, note)
             SELECT id, 'accepted', at, $1, 'submitted and accepted' FROM prefill_ids",
            &[&submitter],
        )
        .await?;
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, subject, details)
             SELECT at, $1, 'declaration.accepted', 'VN-DEC-PRE-' || lpad(g::text, 9, '0'),
                    jsonb_build_object('id', id, 'size', $2::int)
               FROM prefill_ids",
            &[&submitter, &size],
        )
        .await?;
        tx.commit().await?;
        done = last;
        eprintln!(
            "loadtest: prefilled {done} of {n} dossiers ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    // What a running window would have done meanwhile: feed positions, audit chain links,
    // statistics. Measured load then starts from a settled database, as in production.
    eprintln!("loadtest: sealing the event feed and the audit chain");
    // Statistics first: the sealing functions plan their statements once per session, and a
    // plan made while the planner still believed these tables empty turns each batch into
    // nested scans of a million rows.
    client
        .batch_execute("ANALYZE declarations, dossier_events, event_pending, event_feed, audit_log")
        .await?;
    while client
        .query_one("SELECT event_feed_seal(50000, true)", &[])
        .await?
        .get::<_, i32>(0)
        > 0
    {}
    seal_audit(&client).await?;
    client
        .batch_execute(
            "VACUUM ANALYZE documents, declarations, declaration_items, dossier_events,
             event_pending, event_feed, audit_log",
        )
        .await?;
    checkpoint(&client, "the database").await;
    Ok(Prefilled {
        dossiers: n,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Links every unsealed audit entry into the chain, as the running window's sealer would,
/// in passes of 50,000.
pub(super) async fn seal_audit(client: &deadpool_postgres::Client) -> Result<(), BoxError> {
    while client
        .query_one("SELECT audit_seal(50000)", &[])
        .await?
        .get::<_, i32>(0)
        > 0
    {}
    Ok(())
}

/// Takes a checkpoint now. Bulk loading leaves gigabytes of WAL behind, and the checkpoint that
/// follows would land in the measured loop; a running window spreads that work over its
/// lifetime. It needs superuser or pg_checkpoint; without, the next loop carries it.
pub(super) async fn checkpoint(client: &deadpool_postgres::Client, what: &str) {
    if let Err(e) = client.batch_execute("CHECKPOINT").await {
        eprintln!(
            "loadtest: no checkpoint on {what} after prefilling ({e}); the next loop may carry it"
        );
    }
}
