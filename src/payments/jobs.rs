//! The `payments` job: one pass ([`PaymentJob::run_once`]) asks the platform about orders
//! still pending after `payments.query_after_secs` (a notification may have been lost), cancels
//! applications whose fee is unpaid after its due date (after asking the platform about every
//! order of the notice: one that was paid is applied, never cancelled), sends refund requests
//! that are due, and, once a day past `payments.reconcile_after`, reconciles the day before
//! against the platform's settlement file (`reconciliation::Reconciler::daily`). Every step
//! claims its rows (`FOR UPDATE SKIP LOCKED`, a lease, or a per-day claim) so several instances
//! may run it; every change it makes is exactly once by the database's guards, whoever else
//! makes it at the same time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::orders::{settle, Settled};
use super::reconciliation::Reconciler;
use super::{refunds, Payments, ACTOR};
use crate::domain::application_state::Status as AppStatus;
use crate::domain::fee_state::{OrderStatus, Status};
use crate::store::licensing::{self as applications, AppScope};
use crate::store::payments::{self as store, NoticeRow};
use crate::workflow::WorkflowError;

/// Orders asked about, and overdue notices looked at, per pass; a full pass runs again at once.
const BATCH: i64 = 32;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Orders asked about at the platform.
    pub queried: usize,
    /// Payments applied from status answers (this pass's queries and cancellation checks).
    pub applied: usize,
    /// Applications cancelled, unpaid after their due date.
    pub cancelled: usize,
    /// Refund requests sent.
    pub refunds_sent: usize,
    /// The outcome of the daily reconciliation, when this pass ran it.
    pub reconciled: Option<super::reconcile::Outcome>,
}

/// The payments job; cheap to clone.
#[derive(Clone)]
pub struct PaymentJob {
    payments: Arc<Payments>,
    reconciler: Option<Arc<Reconciler>>,
}

impl PaymentJob {
    pub fn new(payments: Arc<Payments>) -> PaymentJob {
        let reconciler = Reconciler::from_settings(payments.pool.clone(), &payments.settings)
            .map_err(|e| tracing::error!(error = %e, "payments: no daily reconciliation"))
            .ok()
            .map(Arc::new);
        PaymentJob {
            payments,
            reconciler,
        }
    }

    /// One pass (see the module's documentation).
    pub async fn run_once(&self) -> Pass {
        let span = tracing::debug_span!("job.payments");
        async {
            let p = &self.payments;
            let mut pass = Pass::default();
            query_pending(p, &mut pass).await;
            cancel_overdue(p, &mut pass).await;
            pass.refunds_sent = refunds::send_due(p).await;
            if let (Some(r), true) = (&self.reconciler, p.enabled()) {
                match r.daily(chrono::Utc::now()).await {
                    Ok(run) => pass.reconciled = run.map(|r| r.outcome),
                    Err(e) => tracing::warn!(error = %e, "payments: daily reconciliation failed"),
                }
            }
            if pass != Pass::default() {
                tracing::info!(?pass, "payments pass");
            }
            pass
        }
        .instrument(span)
        .await
    }

    /// Runs a pass every `payments.poll_ms` until cancelled (at once again after a full one).
    pub async fn run(self, cancel: CancellationToken) {
        let period = Duration::from_millis(self.payments.settings.payments.poll_ms.max(100));
        crate::jobs::repeat(cancel, period, || async {
            let pass = self.run_once().await;
            pass.queried as i64 >= BATCH || pass.cancelled as i64 >= BATCH
        })
        .await;
    }
}

async fn query_pending(p: &Payments, pass: &mut Pass) {
    let quiet = i64::try_from(p.settings.payments.query_after_secs).unwrap_or(i64::MAX);
    let orders = match p.pool.get().await {
        Ok(client) => store::claim_orders_to_query(&client, quiet, BATCH).await,
        Err(e) => Err(e.into()),
    };
    let orders = match orders {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "payments: cannot claim orders to ask about");
            return;
        }
    };
    for order in orders {
        pass.queried += 1;
        match settle(p, &order).await {
            Settled::Paid(Some(super::apply::Outcome::Applied { .. })) => pass.applied += 1,
            Settled::Unknown(why) => {
                tracing::warn!(reference = %order.platform_reference, %why, "order status unknown")
            }
            _ => {}
        }
    }
}

async fn cancel_overdue(p: &Payments, pass: &mut Pass) {
    let today = p.clock.today();
    let notices = match p.pool.get().await {
        Ok(client) => store::overdue_notices(&client, today, BATCH).await,
        Err(e) => Err(e.into()),
    };
    let notices = match notices {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "payments: cannot list overdue notices");
            return;
        }
    };
    for notice in notices {
        match cancel_if_unpaid(p, &notice, pass).await {
            Ok(true) => pass.cancelled += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(reference = %notice.reference, error = %e, "not cancelled this pass")
            }
        }
    }
}

/// Asks the platform about every order of the overdue `notice` that may have been paid; if
/// none was (and the platform could be asked about each), cancels the notice and its
/// application in one transaction (event and audit entries). Returns whether it cancelled.
async fn cancel_if_unpaid(
    p: &Payments,
    notice: &NoticeRow,
    pass: &mut Pass,
) -> Result<bool, WorkflowError> {
    let orders = store::orders_of_notice(&p.pool.get().await?, notice.id).await?;
    for order in orders.iter().filter(|o| o.status == OrderStatus::Pending) {
        pass.queried += 1;
        match settle(p, order).await {
            Settled::Unpaid => {}
            Settled::Paid(outcome) => {
                if matches!(outcome, Some(super::apply::Outcome::Applied { .. })) {
                    pass.applied += 1;
                }
                return Ok(false);
            }
            Settled::Unknown(why) => {
                // Never cancel what may have been paid: try again next pass.
                return Err(WorkflowError::Internal(format!(
                    "order {} could not be checked: {why}",
                    order.platform_reference
                )));
            }
        }
    }
    let mut client = p.pool.get().await?;
    let tx = client.transaction().await?;
    let locked = store::lock_notice(&tx, notice.id).await?;
    if locked.status != Status::Due {
        return Ok(false);
    }
    // An order marked pending since the check above was made by a payer meanwhile: look again
    // next pass rather than cancel it unasked.
    let fresh = store::orders_of_notice(&tx, notice.id).await?;
    if fresh
        .iter()
        .any(|o| o.status == OrderStatus::Pending && !orders.iter().any(|x| x.id == o.id))
    {
        return Ok(false);
    }
    store::set_notice_status(
        &tx,
        &locked,
        Status::Cancelled,
        ACTOR,
        serde_json::json!({"why": "unpaid after the due date", "due_date": locked.due_date}),
    )
    .await?;
    applications::transition(
        &tx,
        &AppScope::All,
        locked.application_id,
        AppStatus::Cancelled,
        ACTOR,
        Some(&format!(
            "fee {} unpaid after its due date {}",
            locked.reference, locked.due_date
        )),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(reference = %locked.reference, "application cancelled: fee unpaid");
    Ok(true)
}
