//! The public dashboard's figures, computed once per period and shared for a short while.
//!
//! The dashboard is open to everyone, and its figures cost what the period holds: a year of a
//! busy window reads every application and message of that year. One page view also asks for
//! them several times (the page, then each of its charts), and a refresh asks again. So the
//! figures of a period are kept for `portal.dashboard_cache_secs` seconds: every request for
//! that period meanwhile, including those that arrive while the figures are being computed,
//! shares one computation. At most `portal.dashboard_computations` periods are computed at
//! once per instance; a request that cannot start its computation within [`WAIT`] is answered
//! 503 (`UNAVAILABLE`), so requests for many different periods cannot pile work onto the
//! database. A computation runs in a read-only transaction whose statements may take at most
//! [`STATEMENT_LIMIT`] each, so a slot is always given back and the requests sharing a
//! computation wait a bounded time; one that runs over is answered 503 as well. A failed
//! computation is not kept: the next request computes again.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use deadpool_postgres::Pool;
use tokio::sync::Semaphore;

use super::PortalError;
use crate::calendar::Calendar;
use crate::config::PortalSettings;
use crate::store::dashboard::{self as store, Dashboard};
use crate::store::stats::Period;

/// Longest wait for a computation slot before the request is answered 503.
pub const WAIT: Duration = Duration::from_secs(5);

/// Longest a computation's statements may each run (a year of a busy window: about 1 s).
pub const STATEMENT_LIMIT: &str = "SET LOCAL statement_timeout = '20s'";

/// Periods kept at once (each a few hundred rows of figures at most).
const CAPACITY: u64 = 256;

/// A period: first and last local day, and the calendar's offset from UTC in seconds.
type Key = (NaiveDate, NaiveDate, i32);

/// Shared by every HTTP worker of the instance.
pub struct DashboardCache {
    /// `None` when `portal.dashboard_cache_secs` is 0: every request computes.
    kept: Option<moka::future::Cache<Key, Arc<Dashboard>>>,
    slots: Semaphore,
}

impl DashboardCache {
    pub fn new(settings: &PortalSettings) -> DashboardCache {
        let kept = (settings.dashboard_cache_secs > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(Duration::from_secs(settings.dashboard_cache_secs))
                .build()
        });
        DashboardCache {
            kept,
            slots: Semaphore::new(settings.dashboard_computations.max(1)),
        }
    }

    /// The figures of `period`: kept ones if they are recent enough, otherwise computed (or
    /// awaited, when another request is computing them). Errors: `Unavailable` when no
    /// computation slot freed within [`WAIT`] or the database is down; what
    /// `store::dashboard::load` refuses.
    pub async fn get(
        &self,
        pool: &Pool,
        cal: &Calendar,
        period: Period,
    ) -> Result<Arc<Dashboard>, PortalError> {
        let compute = async {
            let _slot = tokio::time::timeout(WAIT, self.slots.acquire())
                .await
                .map_err(|_| {
                    PortalError::Unavailable(
                        "the dashboard is busy computing other periods; try again shortly".into(),
                    )
                })?
                .map_err(|e| PortalError::Internal(e.to_string()))?;
            let mut client = pool.get().await?;
            let tx = client.build_transaction().read_only(true).start().await?;
            tx.batch_execute(STATEMENT_LIMIT).await?;
            let figures = match store::load(&tx, cal, period).await {
                Err(e) if ran_over(&e) => {
                    return Err(PortalError::Unavailable(
                        "the dashboard's figures took too long to compute; try again later".into(),
                    ))
                }
                other => other?,
            };
            tx.commit().await?;
            Ok::<_, PortalError>(Arc::new(figures))
        };
        let Some(kept) = &self.kept else {
            return compute.await;
        };
        let key = (period.from, period.to, period.offset.local_minus_utc());
        kept.try_get_with(key, compute)
            .await
            .map_err(|e| shared(&e))
    }
}

/// Whether a statement of the computation was cancelled by [`STATEMENT_LIMIT`].
fn ran_over(e: &crate::store::StoreError) -> bool {
    match e {
        crate::store::StoreError::Db(crate::db::DbError::Postgres(pg)) => {
            pg.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        }
        _ => false,
    }
}

/// A computation's error, for each request that awaited it: a computation fails only as
/// unavailable (busy, over its time, database down) or internally.
fn shared(e: &PortalError) -> PortalError {
    match e {
        PortalError::Unavailable(m) => PortalError::Unavailable(m.clone()),
        other => PortalError::Internal(other.to_string()),
    }
}
