//! The public dashboard's figures over a period: the agency and procedure figures of
//! `stats::figures`, applications received and decided per day, and the messages exchanged
//! with each partner window. Nothing here names a party.

use chrono::{NaiveDate, Utc};
use deadpool_postgres::GenericClient;

use super::stats::{self, Figures, Period};
use super::{time_ids, StoreError};
use crate::calendar::Calendar;

/// Applications received and decided on one local day.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub date: NaiveDate,
    pub received: i64,
    pub decided: i64,
}

/// Messages exchanged with one partner window for one document type.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerVolume {
    /// The partner window's country (ISO 3166-1 alpha-2).
    pub partner: String,
    pub document_type: String,
    /// Messages queued to the partner in the period (whatever became of them).
    pub sent: i64,
    /// Of those, acknowledged by the partner.
    pub delivered: i64,
    /// Of those, refused by the partner or given up after the last retry.
    pub failed: i64,
    /// Messages the partner sent us in the period.
    pub received: i64,
}

#[derive(Debug)]
pub struct Dashboard {
    pub period: Period,
    pub figures: Figures,
    /// Every day of the period, in order (days with nothing included).
    pub days: Vec<Day>,
    pub exchange: Vec<PartnerVolume>,
}

/// Everything the dashboard shows for `period`. The cost is bounded by the period's length,
/// which the caller limits.
pub async fn load<C: GenericClient>(
    client: &C,
    cal: &Calendar,
    period: Period,
) -> Result<Dashboard, StoreError> {
    let figures = stats::figures(client, cal, None, Some(&period)).await?;
    let days = per_day(client, &period).await?;
    let exchange = exchange(client, &period).await?;
    Ok(Dashboard {
        period,
        figures,
        days,
        exchange,
    })
}

async fn per_day<C: GenericClient>(client: &C, p: &Period) -> Result<Vec<Day>, StoreError> {
    let (start, end) = (p.start(), p.end());
    let offset = p.offset.local_minus_utc();
    let (low, high) = time_ids::id_range(start, end);
    // The local day of a moment: shift UTC by the window's offset, then take the date.
    let rows = client
        .query(
            "WITH moments AS (
                 SELECT received_at AS at, 1 AS received, 0 AS decided
                   FROM licence_applications
                  -- Ids are UUIDv7: the period is a primary-key range (`time_ids`).
                  WHERE id >= $4 AND ($5::uuid IS NULL OR id < $5)
                    AND received_at >= $1 AND received_at < $2
                 UNION ALL
                 SELECT decided_at, 0, 1
                   FROM licence_applications WHERE decided_at >= $1 AND decided_at < $2)
             SELECT ((at AT TIME ZONE 'UTC') + make_interval(secs => $3::int))::date AS day,
                    sum(received)::bigint, sum(decided)::bigint
               FROM moments GROUP BY day ORDER BY day",
            &[&start, &end, &offset, &low, &high],
        )
        .await?;
    let mut counted = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, NaiveDate>(0),
                (r.get::<_, i64>(1), r.get::<_, i64>(2)),
            )
        })
        .collect::<std::collections::BTreeMap<_, _>>();
    Ok(p.from
        .iter_days()
        .take_while(|d| *d <= p.to)
        .map(|date| {
            let (received, decided) = counted.remove(&date).unwrap_or((0, 0));
            Day {
                date,
                received,
                decided,
            }
        })
        .collect())
}

async fn exchange<C: GenericClient>(
    client: &C,
    p: &Period,
) -> Result<Vec<PartnerVolume>, StoreError> {
    let (start, end): (chrono::DateTime<Utc>, chrono::DateTime<Utc>) = (p.start(), p.end());
    let (low, high) = time_ids::id_range(start, end);
    let rows = client
        .query(
            "WITH sent AS (
                 SELECT receiver::text AS partner, document_type, count(*) AS sent,
                        count(*) FILTER (WHERE status = 'delivered') AS delivered,
                        count(*) FILTER (WHERE status IN ('rejected', 'dead_letter')) AS failed
                   FROM outbox
                  -- Ids are UUIDv7: the period is a primary-key range (`time_ids`).
                  WHERE id >= $3 AND ($4::uuid IS NULL OR id < $4)
                    AND created_at >= $1 AND created_at < $2
                  GROUP BY 1, 2),
             received AS (
                 SELECT sender::text AS partner, document_type, count(*) AS received
                   FROM inbound_messages
                  WHERE id >= $3 AND ($4::uuid IS NULL OR id < $4)
                    AND received_at >= $1 AND received_at < $2
                  GROUP BY 1, 2)
             SELECT partner, document_type, coalesce(s.sent, 0), coalesce(s.delivered, 0),
                    coalesce(s.failed, 0), coalesce(r.received, 0)
               FROM sent s FULL JOIN received r USING (partner, document_type)
              ORDER BY partner, document_type",
            &[&start, &end, &low, &high],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PartnerVolume {
            partner: r.get(0),
            document_type: r.get(1),
            sent: r.get(2),
            delivered: r.get(3),
            failed: r.get(4),
            received: r.get(5),
        })
        .collect())
}
