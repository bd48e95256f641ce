//! Persistence. Knows SQL, not HTTP.

pub mod audit;
pub mod certificates;
pub mod customs;
pub mod declarations;
pub mod events;
pub mod group_commit;
pub mod inbound;
pub mod keys;
pub mod ledger;
pub mod licensing;
pub mod origin;
pub mod outbox;
pub mod parties;
pub mod routing;
pub mod stats;
pub mod webhooks;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("idempotency key reused with another body")]
    IdempotencyConflict,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// The database refused a change of status its state machine does not allow.
    #[error("{0}")]
    Transition(String),
    /// A document that passed its schema and rules fails a check against stored data
    /// (licences, routing); every violation at once.
    #[error("{} violation(s)", .0.len())]
    Rejected(Vec<crate::xml::Violation>),
    /// The declarant already used this reference for another declaration: the first one.
    #[error(
        "declarant {declarant} already used reference {lrn} for declaration {reference} ({id})"
    )]
    ReferenceReused {
        declarant: String,
        lrn: String,
        id: uuid::Uuid,
        reference: String,
    },
    /// Nothing was stored and the caller may try again (e.g. the group commit holding the
    /// request failed as a whole).
    #[error("{0}")]
    Unavailable(String),
}

/// SQLSTATE raised by the state-machine triggers of migrations/0002_ministries.sql and
/// migrations/0011_decisions_once.sql.
const FORBIDDEN_TRANSITION: &str = "NS409";

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            if db.code().code() == FORBIDDEN_TRANSITION {
                return StoreError::Transition(db.message().to_owned());
            }
            // A second outbox message for a cause that already produced one (the message id
            // is derived from the cause, so either key may be the one that trips): the
            // decision behind it already took effect.
            if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                && matches!(
                    db.constraint(),
                    Some("outbox_cause_unique" | "outbox_message_id_key")
                )
            {
                return StoreError::Transition(
                    "outbox: a message for this cause was already enqueued".to_owned(),
                );
            }
            // The outbox guard (migrations/0003_exchange.sql) refuses a change of status with
            // check_violation from its RAISE; a CHECK constraint's violation comes from the
            // executor instead and stays an internal error.
            if db.code() == &tokio_postgres::error::SqlState::CHECK_VIOLATION
                && db.routine() == Some("exec_stmt_raise")
                && db.message().starts_with("outbox: ")
            {
                return StoreError::Transition(db.message().to_owned());
            }
        }
        StoreError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Db(DbError::Pool(e))
    }
}
