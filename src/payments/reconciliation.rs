//! A reconciliation run: the settlement file of one local day (fetched from the platform and
//! verified, or given by an operator), the window's records of that day, [`compare`] between
//! them, and the run recorded (`reconciliations`, with an audit entry) whatever its outcome.
//! A file that cannot be had, does not verify or does not parse is recorded as a failed run
//! with the reason, and never compared.
//!
//! Called by `nsw payments reconcile`, `POST /api/v1/admin/payments/reconciliations`, the
//! console's form, and once a day by the payments job ([`Reconciler::daily`]).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use super::protocol::Verifier;
use super::reconcile::{compare, Comparison, Outcome, Run, Source};
use super::settlement::{self, File, FileError};
use crate::calendar::Clock;
use crate::config::Settings;
use crate::store::reconciliations::{self as store, NewRun};
use crate::store::stats::Period;
use crate::workflow::WorkflowError;

/// Who the daily job acts as in the audit trail and the runs it records.
pub const JOB_ACTOR: &str = "payments";
/// How long the daily job's claim on a day lasts while its run is under way: longer than the
/// platform request takes (its timeout), so an instance that died is taken over afterwards.
const LEASE_SECS: i64 = 300;
/// After a failed daily run, the day is tried again this much later, doubled at each further
/// failure of the day up to [`RETRY_MAX_SECS`] (every attempt is a recorded run).
pub const RETRY_SECS: i64 = 900;
/// The longest wait between two daily attempts at a day.
pub const RETRY_MAX_SECS: i64 = 6 * 3600;

/// Where the file of a run comes from.
pub enum Input {
    /// Fetched from the platform and verified with the pinned certificate.
    Platform,
    /// The bytes of a file an operator downloaded: its signature cannot be checked.
    Given(Vec<u8>),
}

/// What a run needs: the window's database, its time zone (day boundaries), the platform and
/// the window's merchant id there.
pub struct Reconciler {
    pool: Pool,
    /// The window's date ("yesterday" of the daily run) and time zone (day boundaries).
    clock: Clock,
    merchant_id: String,
    /// The platform's base URL, no trailing slash.
    platform_url: String,
    /// The platform's pinned certificate(s), PEM; read at every run (once a day), so a
    /// replaced certificate is used at once.
    certificate: PathBuf,
    /// `payments.reconcile_after`: the daily job runs once the local time is past it.
    after: NaiveTime,
    http: reqwest::Client,
}

impl Reconciler {
    /// From the window's settings: `[payments]` (platform, its certificate, merchant id,
    /// `request_timeout_ms` for the request for the file, `reconcile_after`) and the calendar's
    /// clock.
    pub fn from_settings(pool: Pool, s: &Settings) -> Result<Reconciler, String> {
        let after = parse_time_of_day(&s.payments.reconcile_after).ok_or_else(|| {
            format!(
                "payments.reconcile_after '{}' is not HH:MM",
                s.payments.reconcile_after
            )
        })?;
        Reconciler::new(
            pool,
            s.clock()?,
            s.merchant_id(),
            &s.payments.platform_url,
            s.payments.platform_certificate.clone(),
            after,
            Duration::from_millis(s.payments.request_timeout_ms.max(1)),
        )
    }

    /// `timeout` bounds the whole request for the file.
    pub fn new(
        pool: Pool,
        clock: Clock,
        merchant_id: String,
        platform_url: &str,
        certificate: PathBuf,
        after: NaiveTime,
        timeout: Duration,
    ) -> Result<Reconciler, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("payment platform client: {e}"))?;
        Ok(Reconciler {
            pool,
            clock,
            merchant_id,
            platform_url: platform_url.trim_end_matches('/').to_owned(),
            certificate,
            after,
            http,
        })
    }

    /// The day `[start, end)` of local date `date`, in UTC.
    pub fn bounds(&self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let p = Period {
            from: date,
            to: date,
            offset: self.clock.offset(),
        };
        (p.start(), p.end())
    }

    /// The file of `date`, and the SHA-256 of the bytes received when there were any (kept
    /// with a failed run too, as evidence of what was refused).
    async fn file(
        &self,
        date: NaiveDate,
        input: Input,
    ) -> (Source, Option<[u8; 32]>, Result<File, FileError>) {
        match input {
            Input::Given(bytes) => {
                let sha: [u8; 32] = Sha256::digest(&bytes).into();
                (Source::File, Some(sha), File::parse(bytes))
            }
            Input::Platform => {
                let verifier = match std::fs::read(&self.certificate)
                    .map_err(|e| format!("{}: {e}", self.certificate.display()))
                    .and_then(|pem| {
                        Verifier::from_pem(&pem)
                            .map_err(|e| format!("{}: {e}", self.certificate.display()))
                    }) {
                    Ok(v) => v,
                    Err(e) => return (Source::Platform, None, Err(FileError::NoCertificate(e))),
                };
                match settlement::download(&self.http, &self.platform_url, &self.merchant_id, date)
                    .await
                {
                    Ok(d) => {
                        let sha = (200..300).contains(&d.status).then(|| d.sha256());
                        (Source::Platform, sha, d.open(&verifier))
                    }
                    Err(e) => (Source::Platform, None, Err(e)),
                }
            }
        }
    }

    /// Runs one reconciliation of local day `date` and records it, by `actor`. A file that
    /// cannot be used makes a failed run (recorded, returned); errors are the database's only.
    #[tracing::instrument(name = "payments.reconcile", skip_all, fields(%date, actor, outcome))]
    pub async fn run(
        &self,
        date: NaiveDate,
        input: Input,
        actor: &str,
    ) -> Result<Run, WorkflowError> {
        let (source, sha, file) = self.file(date, input).await;
        let (comparison, outcome, failure) = match &file {
            Ok(f) => {
                let recorded = {
                    let client = self.pool.get().await?;
                    let (start, end) = self.bounds(date);
                    let ids: Vec<String> =
                        f.rows.iter().map(|r| r.transaction_id.clone()).collect();
                    store::recorded(&client, start, end, &ids).await?
                };
                let c = compare(&f.rows, &recorded);
                let outcome = Outcome::of(&c);
                (c, outcome, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "settlement file refused: the run failed");
                (Comparison::default(), Outcome::Failed, Some(e.to_string()))
            }
        };
        tracing::Span::current().record("outcome", outcome.as_str());
        let mut client = self.pool.get().await?;
        let run = store::insert(
            &mut client,
            &NewRun {
                settlement_date: date,
                actor,
                source,
                outcome,
                failure: failure.as_deref(),
                counts: &comparison.counts,
                mismatches: &comparison.mismatches,
                file_sha256: sha.as_ref().map(|s| s.as_slice()),
            },
        )
        .await?;
        if outcome != Outcome::Matched {
            tracing::warn!(
                %date,
                outcome = outcome.as_str(),
                mismatches = run.mismatches.len(),
                "reconciliation did not match"
            );
        }
        Ok(run)
    }

    /// The day the daily job reconciles at `now`, if any: the day before the window's date,
    /// once the local time of day is past `payments.reconcile_after`.
    pub fn due_day(&self, now: DateTime<Utc>) -> Option<NaiveDate> {
        due_day(
            now.with_timezone(&self.clock.offset()).time(),
            self.after,
            self.clock.today(),
        )
    }

    /// The window's date.
    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    /// Refuses a day after the window's today: the platform has no file for it yet.
    pub fn check_date(&self, date: NaiveDate) -> Result<(), String> {
        let today = self.today();
        if date > today {
            Err(format!(
                "{date} is after today ({today}): there is no settlement file for it yet"
            ))
        } else {
            Ok(())
        }
    }

    /// The daily job's step: reconciles the due day from the platform unless it was already
    /// (a successful run by anyone) or another instance holds it; a failed run is tried again
    /// [`RETRY_SECS`] later, then at doubling intervals. Returns the run it made, if it made
    /// one.
    pub async fn daily(&self, now: DateTime<Utc>) -> Result<Option<Run>, WorkflowError> {
        let Some(day) = self.due_day(now) else {
            return Ok(None);
        };
        if !store::claim(&self.pool.get().await?, day, LEASE_SECS).await? {
            return Ok(None);
        }
        let run = self.run(day, Input::Platform, JOB_ACTOR).await?;
        store::release(
            &self.pool.get().await?,
            day,
            &run,
            RETRY_SECS,
            RETRY_MAX_SECS,
        )
        .await?;
        Ok(Some(run))
    }
}

/// A run as people read it (`nsw payments reconcile`): the day, where the file came from, the
/// counts, the outcome, then each mismatch on a line (kind, transaction, reference, amounts in
/// đồng as the file and the window have them, `-` where one side has none).
pub fn text_report(run: &Run) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let source = match run.source {
        Source::Platform => "fetched from the platform, signature verified",
        Source::File => "given with --file: its signature was NOT checked",
    };
    let _ = writeln!(out, "Reconciliation of {} ({source})", run.settlement_date);
    let _ = writeln!(
        out,
        "run {} at {} by {}",
        run.id,
        run.ran_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        run.actor
    );
    if let Some(sha) = &run.file_sha256 {
        let _ = writeln!(out, "file SHA-256 {sha}");
    }
    if let Some(why) = &run.failure {
        let _ = writeln!(out, "FAILED, nothing was compared: {why}");
        return out;
    }
    let c = &run.counts;
    let _ = writeln!(
        out,
        "settled:  {} payment(s) {} VND, {} refund(s) {} VND",
        c.settled_payments, c.settled_paid_amount, c.settled_refunds, c.settled_refunded_amount
    );
    let _ = writeln!(
        out,
        "recorded: {} payment(s) {} VND, {} refund(s) {} VND",
        c.recorded_payments, c.recorded_paid_amount, c.recorded_refunds, c.recorded_refunded_amount
    );
    let _ = writeln!(out, "matched:  {}", c.matched);
    if run.mismatches.is_empty() {
        let _ = writeln!(out, "MATCHED: the file and the window agree");
        return out;
    }
    let _ = writeln!(out, "MISMATCHES: {}", run.mismatches.len());
    let amount = |a: Option<i64>| a.map_or("-".to_owned(), |a| a.to_string());
    for m in &run.mismatches {
        let reference = match (&m.settled_reference, &m.recorded_reference) {
            (Some(s), Some(r)) if s != r => format!("{s} (window: {r})"),
            _ => m.reference().to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<22} {}  {}  settled {}  recorded {}  at {}",
            m.kind.as_str(),
            if m.transaction_id.is_empty() {
                "-"
            } else {
                &m.transaction_id
            },
            reference,
            amount(m.settled_amount),
            amount(m.recorded_amount),
            m.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    out
}

/// Yesterday once `time` (local) is past `after`.
fn due_day(time: NaiveTime, after: NaiveTime, today: NaiveDate) -> Option<NaiveDate> {
    (time >= after).then(|| today.pred_opt()).flatten()
}

/// `HH:MM` (24-hour local time), as `payments.reconcile_after` is written.
pub fn parse_time_of_day(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::reconcile::{Counts, Mismatch, MismatchKind};

    #[test]
    fn the_text_report_puts_each_mismatch_on_a_line() {
        let mut run = Run {
            id: uuid::Uuid::nil(),
            settlement_date: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            ran_at: "2026-12-01T00:00:00Z".parse().unwrap(),
            actor: "cli".into(),
            source: Source::File,
            outcome: Outcome::Mismatches,
            failure: None,
            counts: Counts {
                settled_payments: 1,
                settled_paid_amount: 149_000,
                recorded_payments: 1,
                recorded_paid_amount: 150_000,
                ..Counts::default()
            },
            mismatches: vec![Mismatch {
                kind: MismatchKind::AmountDiffers,
                transaction_id: "T1".into(),
                settled_reference: Some("FEE-2026-000001".into()),
                recorded_reference: Some("FEE-2026-000001".into()),
                settled_amount: Some(149_000),
                recorded_amount: Some(150_000),
                time: "2026-11-30T03:00:00Z".parse().unwrap(),
            }],
            file_sha256: None,
        };
        let text = text_report(&run);
        assert!(text.contains("NOT checked"), "{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("amount_differs"))
            .unwrap();
        assert!(
            line.contains("T1") && line.contains("FEE-2026-000001"),
            "{line}"
        );
        assert!(
            line.contains("settled 149000") && line.contains("recorded 150000"),
            "{line}"
        );
        run.failure = Some("the settlement file's signature does not verify".into());
        run.outcome = Outcome::Failed;
        assert!(text_report(&run).contains("FAILED, nothing was compared"));
    }

    #[test]
    fn the_daily_run_is_for_yesterday_once_past_the_hour() {
        let after = parse_time_of_day("06:00").unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let t = |s: &str| parse_time_of_day(s).unwrap();
        assert_eq!(due_day(t("05:59"), after, today), None);
        assert_eq!(
            due_day(t("06:00"), after, today),
            NaiveDate::from_ymd_opt(2026, 11, 30)
        );
        assert_eq!(
            due_day(t("23:59"), after, today),
            NaiveDate::from_ymd_opt(2026, 11, 30)
        );
        assert!(parse_time_of_day("6h").is_none());
        assert!(parse_time_of_day("24:00").is_none());
    }
}
