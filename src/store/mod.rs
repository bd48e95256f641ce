//! Persistence. Knows SQL, not HTTP.

pub mod audit;
pub mod certificates;
pub mod console;
pub mod customs;
pub mod dashboard;
pub mod declarations;
pub mod desk;
pub mod documents;
pub mod dossiers;
pub mod events;
pub mod fees;
pub mod group_commit;
pub mod inbound;
pub mod inbound_group_commit;
pub mod keys;
pub mod ledger;
pub mod licensing;
pub mod metrics;
pub mod origin;
pub mod outbox;
pub mod parties;
pub mod payments;
pub mod reconciliations;
pub mod routing;
pub mod sessions;
pub mod stats;
pub mod tallies;
pub mod time_ids;
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

/// SQLSTATE raised by every state-machine trigger: the dossiers' (migrations 0002, 0011) and
/// the outbox's (0013).
const FORBIDDEN_TRANSITION: &str = "NS409";

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e
            .as_db_error()
            .filter(|d| d.code().code() == FORBIDDEN_TRANSITION)
        {
            return StoreError::Transition(db.message().to_owned());
        }
        StoreError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Db(DbError::Pool(e))
    }
}
