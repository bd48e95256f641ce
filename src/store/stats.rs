//! Figures per agency and procedure: volumes, processing time in working hours (pauses while
//! the applicant owes a supplement excluded), and the share decided within the time limit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::StoreError;
use crate::calendar::Calendar;

#[derive(Debug, Serialize, PartialEq)]
pub struct ProcedureStats {
    pub agency: String,
    pub procedure_code: String,
    pub received: i64,
    pub decided: i64,
    pub issued: i64,
    pub refused: i64,
    pub withdrawn: i64,
    pub pending: i64,
    /// Working hours from receipt to decision, pauses excluded.
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
    /// Decided within the rule's time limit, among those decided.
    pub on_schedule_rate: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub procedures: Vec<ProcedureStats>,
    /// Licences issued through the window among all licences of the agencies in scope
    /// (the others were issued on paper or elsewhere and deposited).
    pub full_online_rate: Option<f64>,
    pub licences_issued_online: i64,
    pub licences_deposited: i64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

/// Working seconds an application spent with the agency: from receipt to decision, minus
/// the spans between a supplement request and the supplement.
pub fn processing_seconds(
    cal: &Calendar,
    received: DateTime<Utc>,
    decided: DateTime<Utc>,
    events: &[(String, DateTime<Utc>)],
) -> i64 {
    let mut pauses = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for (status, at) in events {
        match status.as_str() {
            "supplement_requested" if open.is_none() => open = Some(*at),
            "supplemented" | "issued" | "refused" | "withdrawn" => {
                if let Some(start) = open.take() {
                    pauses.push((start, *at));
                }
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        pauses.push((start, decided));
    }
    cal.working_seconds_excluding(received, decided, &pauses)
}

pub async fn compute<C: GenericClient>(
    client: &C,
    cal: &Calendar,
    agency: Option<&str>,
) -> Result<Stats, StoreError> {
    let rows = client
        .query(
            "SELECT a.agency, a.procedure_code, a.status, a.sla_minutes, a.received_at,
                    a.decided_at,
                    coalesce(array_agg(e.status ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}'),
                    coalesce(array_agg(e.at ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}')
               FROM licence_applications a
               LEFT JOIN dossier_events e ON e.dossier_id = a.id
              WHERE ($1::text IS NULL OR a.agency = $1)
              GROUP BY a.id ORDER BY a.agency, a.procedure_code",
            &[&agency],
        )
        .await?;
    struct Acc {
        s: ProcedureStats,
        hours: Vec<f64>,
        on_time: i64,
    }
    let mut by: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for r in &rows {
        let key: (String, String) = (r.get(0), r.get(1));
        let acc = by.entry(key.clone()).or_insert_with(|| Acc {
            s: ProcedureStats {
                agency: key.0.clone(),
                procedure_code: key.1.clone(),
                received: 0,
                decided: 0,
                issued: 0,
                refused: 0,
                withdrawn: 0,
                pending: 0,
                median_hours: None,
                p90_hours: None,
                on_schedule_rate: None,
            },
            hours: Vec::new(),
            on_time: 0,
        });
        let status: String = r.get(2);
        let sla_minutes: i32 = r.get(3);
        let received: DateTime<Utc> = r.get(4);
        let decided: Option<DateTime<Utc>> = r.get(5);
        let statuses: Vec<String> = r.get(6);
        let ats: Vec<DateTime<Utc>> = r.get(7);
        acc.s.received += 1;
        match status.as_str() {
            "issued" => acc.s.issued += 1,
            "refused" => acc.s.refused += 1,
            "withdrawn" => acc.s.withdrawn += 1,
            _ => acc.s.pending += 1,
        }
        if let Some(decided) = decided {
            acc.s.decided += 1;
            let events: Vec<(String, DateTime<Utc>)> = statuses.into_iter().zip(ats).collect();
            let secs = processing_seconds(cal, received, decided, &events);
            acc.hours.push(secs as f64 / 3600.0);
            if secs <= i64::from(sla_minutes) * 60 {
                acc.on_time += 1;
            }
        }
    }
    let procedures = by
        .into_values()
        .map(|mut a| {
            a.hours.sort_by(f64::total_cmp);
            a.s.median_hours = percentile(&a.hours, 50.0);
            a.s.p90_hours = percentile(&a.hours, 90.0);
            a.s.on_schedule_rate = (a.s.decided > 0).then(|| a.on_time as f64 / a.s.decided as f64);
            a.s
        })
        .collect();
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE origin = 'issued'),
                    count(*) FILTER (WHERE origin = 'deposited')
               FROM licences WHERE ($1::text IS NULL OR agency = $1)",
            &[&agency],
        )
        .await?;
    let (online, deposited): (i64, i64) = (row.get(0), row.get(1));
    Ok(Stats {
        procedures,
        full_online_rate: (online + deposited > 0)
            .then(|| online as f64 / (online + deposited) as f64),
        licences_issued_online: online,
        licences_deposited: deposited,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&[3.0], 90.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
