//! Fees paid online: fee notices for licence applications, orders at the national payment
//! platform, its signed server-to-server notifications (the only proof of payment), e-receipts,
//! refunds and the daily reconciliation against the platform's settlement file.
//! `docs/payments.md` describes the flow, the messages and the states.

pub mod protocol;
pub mod reconcile;
pub mod reconciliation;
pub mod settlement;
