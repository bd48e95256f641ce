//! Fee notices: when one falls due, and what becomes of it when its application is withdrawn.
//! A notice is issued in the application's own transaction
//! (`store::licensing::submit_application`, given a `NewFee` by `licensing::submit`).

use chrono::{Days, NaiveDate};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::calendar::Calendar;
use crate::domain::fee_state::Status;
use crate::store::payments as store;
use crate::workflow::WorkflowError;

/// The `working_days`-th working day after `today` on `calendar` (weekends and holidays
/// skipped): the last day a fee notice issued on `today` may be paid.
pub fn due_date(calendar: &Calendar, today: NaiveDate, working_days: u32) -> NaiveDate {
    let mut day = today;
    let mut left = working_days.max(1);
    // A calendar has at most a few dozen holidays a year: ten years of days always suffice.
    for _ in 0..3660 {
        day = day + Days::new(1);
        if calendar.is_working_day(day) {
            left -= 1;
            if left == 0 {
                return day;
            }
        }
    }
    day
}

/// What a withdrawal did to the application's fee.
#[derive(Debug, PartialEq, Eq)]
pub enum Withdrawn {
    /// No fee notice, or nothing to do (cancelled or refunded already, or paid and reviewed:
    /// the agency did its work and keeps the fee).
    Nothing,
    /// Unpaid: the notice is cancelled.
    NoticeCancelled,
    /// Paid and never reviewed: the refund is asked for (its row id).
    RefundRequested(Uuid),
}

/// Inside the withdrawal's transaction (the application already moved to `withdrawn`): an
/// unpaid notice is cancelled; a paid one is refunded when the application never went under
/// review (withdrawn from `received`, `supplement_requested` or `supplemented` without any
/// review), its notice moving to `refund_requested` and a durable refund request stored for the
/// payments job (or sent at once by the caller after commit).
pub async fn on_withdrawal<C: GenericClient>(
    tx: &C,
    application_id: Uuid,
    actor: &str,
) -> Result<Withdrawn, WorkflowError> {
    let Some(notice) = store::notice_of_application(tx, application_id, true).await? else {
        return Ok(Withdrawn::Nothing);
    };
    match notice.status {
        Status::Due => {
            store::set_notice_status(
                tx,
                &notice,
                Status::Cancelled,
                actor,
                serde_json::json!({"why": "application withdrawn unpaid"}),
            )
            .await?;
            Ok(Withdrawn::NoticeCancelled)
        }
        Status::Paid if !store::ever_reviewed(tx, application_id).await? => {
            let (payment_id, amount, platform_reference) = store::applied_payment(tx, notice.id)
                .await?
                .ok_or_else(|| {
                    WorkflowError::Internal(format!(
                        "fee notice {} is paid but has no applied payment",
                        notice.reference
                    ))
                })?;
            store::set_notice_status(
                tx,
                &notice,
                Status::RefundRequested,
                actor,
                serde_json::json!({"why": "application withdrawn before review"}),
            )
            .await?;
            let (id, _) = store::insert_refund(
                tx,
                &store::NewRefund {
                    payment_id,
                    notice_id: notice.id,
                    platform_reference: &platform_reference,
                    amount,
                    reason: "application withdrawn before review",
                    actor,
                },
            )
            .await?;
            Ok(Withdrawn::RefundRequested(id))
        }
        _ => Ok(Withdrawn::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::tests::cal;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_due_date_counts_working_days_only() {
        // Monday 2026-09-07 + 5 working days: Monday 2026-09-14.
        assert_eq!(due_date(&cal(), d("2026-09-07"), 5), d("2026-09-14"));
        // Friday + 1: the next Monday.
        assert_eq!(due_date(&cal(), d("2026-09-04"), 1), d("2026-09-07"));
        // Tuesday 2026-09-01 + 1: Wednesday is National Day, so Thursday.
        assert_eq!(due_date(&cal(), d("2026-09-01"), 1), d("2026-09-03"));
        // Issued on a Saturday: Monday is the first working day after it.
        assert_eq!(due_date(&cal(), d("2026-09-05"), 1), d("2026-09-07"));
    }
}
