//! Persistence. Knows SQL, not HTTP.

pub mod audit;
pub mod declarations;
pub mod events;
pub mod parties;
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
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Db(DbError::Pool(e))
    }
}
