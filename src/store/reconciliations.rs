//! Reconciliation runs (`reconciliations`, append-only) and the daily job's per-day claim
//! (`reconciliation_claims`), migration 0017.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{audit, StoreError};
use crate::payments::reconcile::{Counts, Entry, Mismatch, Outcome, Recorded, Run, Source};

/// A run to record.
pub struct NewRun<'a> {
    pub settlement_date: NaiveDate,
    pub actor: &'a str,
    pub source: Source,
    pub outcome: Outcome,
    /// Required for a failed run, absent otherwise (a CHECK holds it).
    pub failure: Option<&'a str>,
    pub counts: &'a Counts,
    pub mismatches: &'a [Mismatch],
    pub file_sha256: Option<&'a [u8]>,
}

const COLUMNS: &str = "id, settlement_date, ran_at, actor, source, outcome, failure,
    settled_payments, settled_refunds, recorded_payments, recorded_refunds, matched,
    settled_paid_amount, settled_refunded_amount, recorded_paid_amount,
    recorded_refunded_amount, mismatches, file_sha256";

fn run(r: &Row) -> Result<Run, StoreError> {
    let source: String = r.get(4);
    let outcome: String = r.get(5);
    let mismatches: serde_json::Value = r.get(16);
    let sha: Option<Vec<u8>> = r.get(17);
    Ok(Run {
        id: r.get(0),
        settlement_date: r.get(1),
        ran_at: r.get(2),
        actor: r.get(3),
        source: Source::parse(&source)
            .ok_or_else(|| StoreError::Conflict(format!("unknown source {source}")))?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Conflict(format!("unknown outcome {outcome}")))?,
        failure: r.get(6),
        counts: Counts {
            settled_payments: r.get(7),
            settled_refunds: r.get(8),
            recorded_payments: r.get(9),
            recorded_refunds: r.get(10),
            matched: r.get(11),
            settled_paid_amount: r.get(12),
            settled_refunded_amount: r.get(13),
            recorded_paid_amount: r.get(14),
            recorded_refunded_amount: r.get(15),
        },
        mismatches: serde_json::from_value(mismatches)
            .map_err(|e| StoreError::Conflict(format!("stored mismatches unreadable: {e}")))?,
        file_sha256: sha.map(hex::encode),
    })
}

/// Records a run and its audit entry (`payments.reconciliation`, by `actor`) together;
/// returns it as stored.
pub async fn insert(
    client: &mut deadpool_postgres::Object,
    new: &NewRun<'_>,
) -> Result<Run, StoreError> {
    let tx = client.transaction().await?;
    let id = Uuid::now_v7();
    let c = new.counts;
    let mismatches = serde_json::to_value(new.mismatches)
        .map_err(|e| StoreError::Conflict(format!("mismatches: {e}")))?;
    let count = i32::try_from(new.mismatches.len()).unwrap_or(i32::MAX);
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO reconciliations (id, settlement_date, ran_at, actor, source, outcome,
                    failure, settled_payments, settled_refunds, recorded_payments,
                    recorded_refunds, matched, settled_paid_amount, settled_refunded_amount,
                    recorded_paid_amount, recorded_refunded_amount, mismatch_count, mismatches,
                    file_sha256)
                 VALUES ($1, $2, now(), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                    $15, $16, $17, $18)
                 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &new.settlement_date,
                &new.actor,
                &new.source.as_str(),
                &new.outcome.as_str(),
                &new.failure,
                &c.settled_payments,
                &c.settled_refunds,
                &c.recorded_payments,
                &c.recorded_refunds,
                &c.matched,
                &c.settled_paid_amount,
                &c.settled_refunded_amount,
                &c.recorded_paid_amount,
                &c.recorded_refunded_amount,
                &count,
                &mismatches,
                &new.file_sha256,
            ],
        )
        .await?;
    let stored = run(&row)?;
    audit::append(
        &tx,
        new.actor,
        "payments.reconciliation",
        &new.settlement_date.to_string(),
        &serde_json::json!({
            "id": id,
            "source": new.source.as_str(),
            "outcome": new.outcome.as_str(),
            "failure": new.failure,
            "mismatches": count,
            "matched": c.matched,
            "file_sha256": new.file_sha256.map(hex::encode),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(stored)
}

/// One run by id.
pub async fn get<C: GenericClient>(client: &C, id: Uuid) -> Result<Option<Run>, StoreError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM reconciliations WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(run)
        .transpose()
}

/// The latest runs, newest first; `limit + 1` are read so the caller knows whether there is a
/// next page.
pub async fn recent<C: GenericClient>(
    client: &C,
    offset: i64,
    limit: i64,
) -> Result<Vec<Run>, StoreError> {
    client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM reconciliations ORDER BY ran_at DESC, id DESC
                  OFFSET $1 LIMIT $2"
            ),
            &[&offset, &(limit + 1)],
        )
        .await?
        .iter()
        .map(run)
        .collect()
}

/// The latest run, if any.
pub async fn latest<C: GenericClient>(client: &C) -> Result<Option<Run>, StoreError> {
    Ok(recent(client, 0, 1).await?.into_iter().next())
}

/// Whether `date` was reconciled against the platform's own (verified) file: a run from the
/// platform that did not fail.
pub async fn reconciled<C: GenericClient>(client: &C, date: NaiveDate) -> Result<bool, StoreError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM reconciliations
                             WHERE settlement_date = $1 AND source = 'platform'
                               AND outcome <> 'failed')",
            &[&date],
        )
        .await?
        .get(0))
}

/// Claims `date` for the daily job, for `lease_secs`: true when this caller may reconcile it
/// now. Nobody may while another holds an unexpired claim, nor once the day was reconciled
/// (a successful run by anyone, or a claim released as done). Several instances asking at once
/// get one true between them: the primary key and the guarded upsert decide.
pub async fn claim<C: GenericClient>(
    client: &C,
    date: NaiveDate,
    lease_secs: i64,
) -> Result<bool, StoreError> {
    if reconciled(client, date).await? {
        return Ok(false);
    }
    Ok(client
        .query_opt(
            "INSERT INTO reconciliation_claims (settlement_date, claimed_until)
             VALUES ($1, now() + make_interval(secs => $2))
             ON CONFLICT (settlement_date) DO UPDATE
                SET claimed_until = EXCLUDED.claimed_until,
                    attempts = reconciliation_claims.attempts + 1
              WHERE reconciliation_claims.claimed_until < now()
             RETURNING attempts",
            &[&date, &(lease_secs as f64)],
        )
        .await?
        .is_some())
}

/// Ends this caller's claim on `date` after `run`: done for good when it did not fail,
/// otherwise free to be claimed again after `retry_secs`, doubled at each failed attempt of
/// the day up to `retry_max_secs` (a platform down for long is not asked every few minutes).
pub async fn release<C: GenericClient>(
    client: &C,
    date: NaiveDate,
    run: &Run,
    retry_secs: i64,
    retry_max_secs: i64,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE reconciliation_claims
                SET claimed_until = CASE WHEN $3 THEN 'infinity'::timestamptz
                        ELSE now() + make_interval(secs => least(
                            $4 * power(2, least(attempts, 30) - 1), $5)) END,
                    last_run = $2
              WHERE settlement_date = $1",
            &[
                &date,
                &run.id,
                &(run.outcome != Outcome::Failed),
                &(retry_secs as f64),
                &(retry_max_secs as f64),
            ],
        )
        .await?;
    Ok(())
}

/// What the window recorded for a settlement day `[start, end)`: every payment the platform
/// took in it (by the platform's `paid_at`, whatever the window did with it: applied, or kept
/// to be refunded) and every refund recorded as paid back in it; plus, whatever their time,
/// those whose transaction id is in `also` (the file's), so a transaction the window dates a
/// little differently from the platform is still found rather than reported missing. A refund
/// completed by the platform's notification alone has no transaction id yet (see
/// `payments::refunds`).
pub async fn recorded<C: GenericClient>(
    client: &C,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    also: &[String],
) -> Result<Vec<Recorded>, StoreError> {
    let rows = client
        .query(
            "SELECT 'payment', p.transaction_id, o.platform_reference, p.amount, p.paid_at
               FROM payments p JOIN payment_orders o ON o.id = p.order_id
              WHERE (p.paid_at >= $1 AND p.paid_at < $2) OR p.transaction_id = ANY($3)
             UNION ALL
             SELECT 'refund', f.transaction_id, o.platform_reference, f.amount, f.refunded_at
               FROM refunds f
               JOIN payments p ON p.id = f.payment_id
               JOIN payment_orders o ON o.id = p.order_id
              WHERE f.status = 'refunded'
                AND ((f.refunded_at >= $1 AND f.refunded_at < $2) OR f.transaction_id = ANY($3))",
            &[&start, &end, &also],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let entry: &str = r.get(0);
            Recorded {
                entry: if entry == "refund" {
                    Entry::Refund
                } else {
                    Entry::Payment
                },
                transaction_id: r.get(1),
                reference: r.get(2),
                amount: r.get(3),
                time: r.get(4),
            }
        })
        .collect())
}

/// Per settlement date since `since`, the latest run, when it did not match: the days an
/// operator still has to look at (a day's alert ends when a later run of it matches).
pub async fn unsettled_days<C: GenericClient>(
    client: &C,
    since: NaiveDate,
) -> Result<Vec<Run>, StoreError> {
    client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM (
                    SELECT DISTINCT ON (settlement_date) *
                      FROM reconciliations WHERE settlement_date >= $1
                     ORDER BY settlement_date, ran_at DESC, id DESC) latest
                  WHERE outcome <> 'matched'
                  ORDER BY settlement_date DESC"
            ),
            &[&since],
        )
        .await?
        .iter()
        .map(run)
        .collect()
}
