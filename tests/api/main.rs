//! Integration tests through HTTP against a real PostgreSQL.

mod helpers;

mod audit;
mod auth;
mod backup;
mod browser;
mod certificates;
mod cli;
mod console;
mod dashboard;
mod decisions;
mod declarations;
mod events;
mod exchange;
mod exchange_fail_ratio;
mod field_inputs;
mod fixtures;
mod group_commit;
mod intake_rules;
mod jobs;
mod loadtest_documents;
mod loadtest_exchange;
mod metrics;
mod openapi;
mod paygate;
mod payments;
mod payments_faults;
mod payments_reconcile;
mod portal;
mod portal_desk;
mod portal_fees;
mod portal_trader;
mod restart;
mod throttle;
mod trust;

mod ministries;
mod support;
