//! Fees paid online: fee notices for licence applications, orders at the national payment
//! platform, its signed server-to-server notifications (the only proof of payment), e-receipts,
//! refunds and the daily reconciliation against the platform's settlement file.
//! `docs/payments.md` describes the flow, the messages and the states.
//!
//! | module | what it does |
//! |---|---|
//! | [`protocol`] | the messages and their signatures (both sides of the wire) |
//! | [`client`] | the window's HTTP client to the platform, and the platform's pinned certificate |
//! | [`keys`] | the window's merchant key and e-receipt key, sealed in the database |
//! | [`notices`] | due dates, and what a withdrawal does to a notice |
//! | [`orders`] | [`start_payment`]: an order at the platform for a due notice |
//! | [`apply`] | applying a payment, exactly once (notifications and status answers alike) |
//! | [`notifications`] | the platform's signed notifications: checked, logged, applied |
//! | [`receipts`] | the e-receipt: written, schema-checked, signed, stored |
//! | [`refunds`] | refund requests (durable rows), sent and completed |
//! | [`jobs`] | the `payments` job: status queries, cancellations after the due date, refunds, the daily reconciliation |
//! | [`settlement`] | the platform's daily settlement file: fetched, verified, parsed |
//! | [`reconcile`] | the comparison of a settlement file with the window's records (pure) |
//! | [`reconciliation`] | a reconciliation run: file, records, comparison, recorded; the daily step |
//!
//! SQL lives in `store::payments`.

pub mod apply;
pub mod client;
pub mod jobs;
pub mod keys;
pub mod notices;
pub mod notifications;
pub mod orders;
pub mod protocol;
pub mod receipts;
pub mod reconcile;
pub mod reconciliation;
pub mod refunds;
pub mod settlement;

use std::sync::Arc;

use chrono::NaiveDate;
use deadpool_postgres::Pool;

use crate::calendar::{Calendar, Clock};
use crate::config::Settings;

pub use orders::start_payment;

/// Who the payment workflows act as in events and the audit trail.
pub const ACTOR: &str = "payments";

/// What the payment workflows and the `payments` job need of the window: its database, its
/// settings, calendar and clock, the platform client and the merchant key (loaded once).
pub struct Payments {
    pub(crate) pool: Pool,
    pub(crate) settings: Settings,
    pub(crate) merchant_id: String,
    /// Base URL of this window for the platform and browsers, without a trailing slash.
    pub(crate) public_url: String,
    pub(crate) calendar: Calendar,
    pub(crate) clock: Clock,
    pub(crate) platform: client::Platform,
    merchant: tokio::sync::OnceCell<Arc<protocol::Signer>>,
}

impl Payments {
    /// From the settings; `public_url` is `payments.public_url`, or the address the service
    /// listens on when it is unset.
    pub fn new(pool: Pool, settings: &Settings, public_url: String) -> Result<Payments, String> {
        let calendar = settings.calendar()?;
        let clock = settings.clock()?;
        let platform = client::Platform::new(&settings.payments)?;
        Ok(Payments {
            pool,
            merchant_id: settings.merchant_id(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            settings: settings.clone(),
            calendar,
            clock,
            platform,
            merchant: tokio::sync::OnceCell::new(),
        })
    }

    /// Whether fees are collected online (`payments.enabled`).
    pub fn enabled(&self) -> bool {
        self.settings.payments.enabled
    }

    /// The due date of a notice issued on `today`.
    pub fn due_date(&self, today: NaiveDate) -> NaiveDate {
        notices::due_date(
            &self.calendar,
            today,
            self.settings.payments.due_working_days,
        )
    }

    /// Where the platform POSTs its notifications.
    pub fn notify_url(&self) -> String {
        format!("{}/api/v1/payments/notifications", self.public_url)
    }

    /// Where the platform sends the payer's browser back (a portal page).
    pub fn return_url(&self) -> String {
        format!("{}/payments/return", self.public_url)
    }

    /// The merchant key, made on first use and kept for the life of the process.
    pub async fn signer(&self) -> Result<Arc<protocol::Signer>, crate::workflow::WorkflowError> {
        self.merchant
            .get_or_try_init(|| async {
                let pem = keys::merchant_key(&self.pool, &self.settings).await?;
                protocol::Signer::from_pem(&pem.private_key_pem, pem.certificate_pem.as_bytes())
                    .map(Arc::new)
                    .map_err(|e| {
                        crate::workflow::WorkflowError::Internal(format!("merchant key: {e}"))
                    })
            })
            .await
            .cloned()
    }
}
