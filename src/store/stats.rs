//! Figures per agency and procedure: volumes, processing time in working hours (pauses while
//! the applicant owes a supplement excluded), and the share decided within the time limit.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::StoreError;
use crate::calendar::Calendar;

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
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
/// the spans between a supplement request and the supplement, and minus the wait for its fee
/// (from the `awaiting_payment` event to the `received` event that records the payment: the
/// agency's time limit starts when the fee is paid).
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
            "supplement_requested" | "awaiting_payment" if open.is_none() => open = Some(*at),
            "supplemented" | "received" | "issued" | "refused" | "withdrawn" | "cancelled" => {
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

/// Whether a decision that took `processing_secs` working seconds met a time limit of
/// `sla_minutes` working minutes (a decision in the limit's last second still counts).
pub fn on_schedule(processing_secs: i64, sla_minutes: i32) -> bool {
    processing_secs <= i64::from(sla_minutes) * 60
}

/// A span of local calendar days, both ends included, in the window's time zone. Received
/// figures count the applications received in it; decided figures (decisions, processing time,
/// on-schedule rate) count the decisions taken in it, whenever the application came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub offset: FixedOffset,
}

impl Period {
    /// The first instant of `from`, local midnight.
    pub fn start(&self) -> DateTime<Utc> {
        local_midnight(self.from, self.offset)
    }

    /// The first instant after `to` (the next local midnight): the period is `[start, end)`.
    pub fn end(&self) -> DateTime<Utc> {
        local_midnight(self.to + chrono::Days::new(1), self.offset)
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        t >= self.start() && t < self.end()
    }
}

fn local_midnight(d: NaiveDate, offset: FixedOffset) -> DateTime<Utc> {
    let naive = d.and_time(chrono::NaiveTime::MIN)
        - chrono::Duration::seconds(offset.local_minus_utc().into());
    DateTime::from_naive_utc_and_offset(naive, Utc)
}

/// Licences of an agency: issued through the window, or issued elsewhere and deposited.
#[derive(Debug, Serialize, PartialEq)]
pub struct AgencyLicences {
    pub agency: String,
    pub issued_online: i64,
    pub deposited: i64,
}

impl AgencyLicences {
    pub fn full_online_rate(&self) -> Option<f64> {
        let all = self.issued_online + self.deposited;
        (all > 0).then(|| self.issued_online as f64 / all as f64)
    }
}

/// The figures per procedure, the same per agency (all its procedures together, with
/// `procedure_code` empty), and the agencies' licences.
#[derive(Debug)]
pub struct Figures {
    pub procedures: Vec<ProcedureStats>,
    pub agencies: Vec<ProcedureStats>,
    pub licences: Vec<AgencyLicences>,
}

pub async fn compute<C: GenericClient>(
    client: &C,
    cal: &Calendar,
    agency: Option<&str>,
) -> Result<Stats, StoreError> {
    let f = figures(client, cal, agency, None).await?;
    let online: i64 = f.licences.iter().map(|l| l.issued_online).sum();
    let deposited: i64 = f.licences.iter().map(|l| l.deposited).sum();
    Ok(Stats {
        procedures: f.procedures,
        full_online_rate: (online + deposited > 0)
            .then(|| online as f64 / (online + deposited) as f64),
        licences_issued_online: online,
        licences_deposited: deposited,
    })
}

struct Acc {
    s: ProcedureStats,
    hours: Vec<f64>,
    on_time: i64,
}

impl Acc {
    fn new(agency: &str, procedure_code: &str) -> Acc {
        Acc {
            s: ProcedureStats {
                agency: agency.to_owned(),
                procedure_code: procedure_code.to_owned(),
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
        }
    }

    fn finish(mut self) -> ProcedureStats {
        self.hours.sort_by(f64::total_cmp);
        self.s.median_hours = percentile(&self.hours, 50.0);
        self.s.p90_hours = percentile(&self.hours, 90.0);
        self.s.on_schedule_rate =
            (self.s.decided > 0).then(|| self.on_time as f64 / self.s.decided as f64);
        self.s
    }
}

/// The figures of `agency` (or all agencies), over `period` (or all time: what
/// `/api/v1/stats` shows).
pub async fn figures<C: GenericClient>(
    client: &C,
    cal: &Calendar,
    agency: Option<&str>,
    period: Option<&Period>,
) -> Result<Figures, StoreError> {
    let (start, end) = (period.map(Period::start), period.map(Period::end));
    let (low, high) = period.map_or((None, None), |p| {
        let (low, high) = super::time_ids::id_range(p.start(), p.end());
        (Some(low), high)
    });
    let rows = client
        .query(
            "SELECT a.agency, a.procedure_code, a.status, a.sla_minutes, a.received_at,
                    a.decided_at,
                    coalesce(array_agg(e.status ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}'),
                    coalesce(array_agg(e.at ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}')
               FROM licence_applications a
               LEFT JOIN dossier_events e ON e.dossier_id = a.id
              WHERE ($1::text IS NULL OR a.agency = $1)
                -- Received in the period: ids are UUIDv7, so a primary-key range
                -- (`time_ids`); decided in it: the decisions' own index (migration 0019).
                AND ($2::timestamptz IS NULL
                     OR (a.id >= $4 AND ($5::uuid IS NULL OR a.id < $5)
                         AND a.received_at >= $2 AND a.received_at < $3)
                     OR (a.decided_at >= $2 AND a.decided_at < $3))
              GROUP BY a.id ORDER BY a.agency, a.procedure_code",
            &[&agency, &start, &end, &low, &high],
        )
        .await?;
    let in_period = |t: DateTime<Utc>| period.is_none_or(|p| p.contains(t));
    let mut by: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut agencies: BTreeMap<String, Acc> = BTreeMap::new();
    for r in &rows {
        let (ag, code): (String, String) = (r.get(0), r.get(1));
        let status: String = r.get(2);
        let sla_minutes: i32 = r.get(3);
        let received: DateTime<Utc> = r.get(4);
        let decided: Option<DateTime<Utc>> = r.get(5);
        let statuses: Vec<String> = r.get(6);
        let ats: Vec<DateTime<Utc>> = r.get(7);
        let received_in = in_period(received);
        let decision = decided.filter(|d| in_period(*d)).map(|decided| {
            let events: Vec<(String, DateTime<Utc>)> = statuses.into_iter().zip(ats).collect();
            processing_seconds(cal, received, decided, &events)
        });
        let procedure = by
            .entry((ag.clone(), code.clone()))
            .or_insert_with(|| Acc::new(&ag, &code));
        let whole = agencies
            .entry(ag.clone())
            .or_insert_with(|| Acc::new(&ag, ""));
        for acc in [procedure, whole] {
            if received_in {
                acc.s.received += 1;
                match status.as_str() {
                    "issued" => acc.s.issued += 1,
                    "refused" => acc.s.refused += 1,
                    "withdrawn" => acc.s.withdrawn += 1,
                    // Not with the agency: its fee is unpaid, or it was never paid.
                    "awaiting_payment" | "cancelled" => {}
                    _ => acc.s.pending += 1,
                }
            }
            if let Some(secs) = decision {
                acc.s.decided += 1;
                acc.hours.push(secs as f64 / 3600.0);
                if on_schedule(secs, sla_minutes) {
                    acc.on_time += 1;
                }
            }
        }
    }
    let (from, to) = (period.map(|p| p.from), period.map(|p| p.to));
    let licences = client
        .query(
            "SELECT agency, count(*) FILTER (WHERE origin = 'issued'),
                    count(*) FILTER (WHERE origin = 'deposited')
               FROM licences
              WHERE ($1::text IS NULL OR agency = $1)
                AND ($2::date IS NULL OR issue_date BETWEEN $2 AND $3)
              GROUP BY agency ORDER BY agency",
            &[&agency, &from, &to],
        )
        .await?
        .iter()
        .map(|r| AgencyLicences {
            agency: r.get(0),
            issued_online: r.get(1),
            deposited: r.get(2),
        })
        .collect();
    Ok(Figures {
        procedures: by.into_values().map(Acc::finish).collect(),
        agencies: agencies.into_values().map(Acc::finish).collect(),
        licences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};

    use crate::calendar::tests::cal;

    /// Local (UTC+7) wall-clock time.
    fn at(d: u32, h: u32, min: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2026, 9, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The events intake and the officers write, in order.
    fn events(list: &[(&str, DateTime<Utc>)]) -> Vec<(String, DateTime<Utc>)> {
        list.iter().map(|(s, t)| (s.to_string(), *t)).collect()
    }

    const HOUR: i64 = 3600;

    #[test]
    fn a_weekend_does_not_count() {
        // Friday 14:00 to Monday 10:00: two hours on Friday, two on Monday.
        let (received, decided) = (at(4, 14, 0), at(7, 10, 0));
        let ev = events(&[
            ("submitted", received),
            ("received", received),
            ("under_review", at(7, 8, 30)),
            ("issued", decided),
        ]);
        assert_eq!(processing_seconds(&cal(), received, decided, &ev), 4 * HOUR);
    }

    #[test]
    fn a_configured_holiday_does_not_count() {
        // Tuesday 15:00, over the holiday, to Thursday 09:30.
        let (received, decided) = (at(1, 15, 0), at(3, 9, 30));
        let ev = events(&[("received", received), ("refused", decided)]);
        let secs = processing_seconds(&cal(), received, decided, &ev);
        assert_eq!(secs, HOUR + HOUR + 30 * 60);
        // the same span without the holiday has a full working day more
        let plain = Calendar::new(
            FixedOffset::east_opt(7 * 3600).unwrap(),
            NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(16, 0, 0).unwrap(),
            [],
        );
        assert_eq!(
            processing_seconds(&plain, received, decided, &ev),
            secs + 8 * HOUR
        );
    }

    #[test]
    fn the_clock_starts_with_the_next_working_hour() {
        // Submitted Monday 18:30, after closing: decided Tuesday 09:15.
        let (received, decided) = (at(7, 18, 30), at(8, 9, 15));
        let ev = events(&[("received", received), ("issued", decided)]);
        assert_eq!(processing_seconds(&cal(), received, decided, &ev), 75 * 60);
        // Submitted on Saturday, decided Monday 07:59, before opening: no working time at all.
        let (received, decided) = (at(5, 11, 0), at(7, 7, 59));
        let ev = events(&[("received", received), ("issued", decided)]);
        assert_eq!(processing_seconds(&cal(), received, decided, &ev), 0);
        // Submitted at 06:00 UTC+7 the day before the holiday, which is 23:00 UTC the day
        // before that: the local calendar decides, not UTC.
        let received = at(1, 6, 0);
        assert_eq!(
            received.date_naive(),
            NaiveDate::from_ymd_opt(2026, 8, 31).unwrap()
        );
        let decided = at(1, 12, 0);
        let ev = events(&[("received", received), ("issued", decided)]);
        assert_eq!(processing_seconds(&cal(), received, decided, &ev), 4 * HOUR);
    }

    #[test]
    fn the_clock_stops_while_a_supplement_is_owed() {
        // Monday 09:00 to Thursday 12:00 is 7 + 8 + 8 + 4 = 27 working hours; the supplement was
        // owed from Monday 11:00 to Wednesday 10:00, 5 + 8 + 2 = 15 of them.
        let (received, decided) = (at(7, 9, 0), at(10, 12, 0));
        let ev = events(&[
            ("submitted", received),
            ("received", received),
            ("supplement_requested", at(7, 11, 0)),
            ("supplemented", at(9, 10, 0)),
            ("under_review", at(9, 11, 0)),
            ("issued", decided),
        ]);
        assert_eq!(
            processing_seconds(&cal(), received, decided, &ev),
            12 * HOUR
        );
    }

    #[test]
    fn every_supplement_loop_pauses_and_weekends_inside_a_pause_count_once() {
        // Received Thursday 2026-09-03 08:00. Supplement owed Thursday 10:00 to Monday 09:00
        // (Thursday 6 h + Friday 8 h + Monday 1 h = 15 h), then again Monday 12:00 to 14:00
        // (2 h). Decided Tuesday 16:00. Total Thursday 08:00 to Tuesday 16:00: 4 days x 8 h.
        let (received, decided) = (at(3, 8, 0), at(8, 16, 0));
        let ev = events(&[
            ("received", received),
            ("supplement_requested", at(3, 10, 0)),
            ("supplemented", at(7, 9, 0)),
            ("supplement_requested", at(7, 12, 0)),
            ("supplemented", at(7, 14, 0)),
            ("under_review", at(7, 15, 0)),
            ("refused", decided),
        ]);
        assert_eq!(
            processing_seconds(&cal(), received, decided, &ev),
            (32 - 15 - 2) * HOUR
        );
    }

    #[test]
    fn the_clock_starts_when_the_fee_is_paid() {
        // Submitted Monday 09:00 with a fee; paid Tuesday 14:00; issued Wednesday 10:00. The
        // agency's time is Tuesday 14:00-16:00 and Wednesday 08:00-10:00: 4 hours.
        let submitted = at(7, 9, 0);
        let decided = at(9, 10, 0);
        let ev = events(&[
            ("submitted", submitted),
            ("awaiting_payment", submitted),
            ("received", at(8, 14, 0)),
            ("under_review", at(9, 8, 30)),
            ("issued", decided),
        ]);
        assert_eq!(
            processing_seconds(&cal(), submitted, decided, &ev),
            4 * HOUR
        );
    }

    #[test]
    fn a_fee_wait_and_a_supplement_pause_the_clock_each() {
        // Submitted Monday 08:00, paid Monday 12:00 (4 h not counted); supplement owed Tuesday
        // 09:00 to Tuesday 15:00 (6 h); refused Wednesday 16:00. Monday 08:00 to Wednesday
        // 16:00 is 24 working hours, 14 of them the agency's.
        let submitted = at(7, 8, 0);
        let decided = at(9, 16, 0);
        let ev = events(&[
            ("submitted", submitted),
            ("awaiting_payment", submitted),
            ("received", at(7, 12, 0)),
            ("supplement_requested", at(8, 9, 0)),
            ("supplemented", at(8, 15, 0)),
            ("under_review", at(8, 15, 30)),
            ("refused", decided),
        ]);
        assert_eq!(
            processing_seconds(&cal(), submitted, decided, &ev),
            14 * HOUR
        );
    }

    #[test]
    fn an_application_cancelled_unpaid_used_none_of_the_agency_time() {
        let submitted = at(7, 8, 0);
        let cancelled = at(14, 8, 0);
        let ev = events(&[
            ("submitted", submitted),
            ("awaiting_payment", submitted),
            ("cancelled", cancelled),
        ]);
        assert_eq!(processing_seconds(&cal(), submitted, cancelled, &ev), 0);
        // Still unpaid when looked at: nothing used either.
        let ev = events(&[("submitted", submitted), ("awaiting_payment", submitted)]);
        assert_eq!(processing_seconds(&cal(), submitted, cancelled, &ev), 0);
    }

    #[test]
    fn a_supplement_still_owed_at_the_decision_pauses_until_it() {
        let (received, decided) = (at(7, 8, 0), at(7, 15, 0));
        let ev = events(&[
            ("received", received),
            ("supplement_requested", at(7, 9, 0)),
        ]);
        assert_eq!(processing_seconds(&cal(), received, decided, &ev), HOUR);
    }

    #[test]
    fn on_schedule_is_judged_in_working_time_against_the_limit() {
        let c = cal();
        // A one-day limit (480 working minutes): Friday 15:00 to Monday 15:00 is one working
        // day, so on schedule although three calendar days passed.
        let sla = 480;
        let (received, decided) = (at(4, 15, 0), at(7, 15, 0));
        let ev = events(&[("received", received), ("issued", decided)]);
        let secs = processing_seconds(&c, received, decided, &ev);
        assert_eq!(secs, 8 * HOUR);
        assert!(on_schedule(secs, sla));
        // one second later it is late
        let late = decided + chrono::Duration::seconds(1);
        let secs = processing_seconds(&c, received, late, &ev);
        assert_eq!(secs, 8 * HOUR + 1);
        assert!(!on_schedule(secs, sla));
        // the supplement pause gives the agency its time back: Monday 08:00 to Tuesday 12:00 is
        // 12 working hours, of which 5 owed by the applicant
        let (received, decided) = (at(7, 8, 0), at(8, 12, 0));
        let ev = events(&[
            ("received", received),
            ("supplement_requested", at(7, 10, 0)),
            ("supplemented", at(7, 15, 0)),
            ("under_review", at(7, 15, 0)),
            ("issued", decided),
        ]);
        let secs = processing_seconds(&c, received, decided, &ev);
        assert_eq!(secs, 7 * HOUR);
        assert!(on_schedule(secs, sla));
        assert!(!on_schedule(secs, 6 * 60));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&[3.0], 90.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
