//! The platform's errors, and in one place how each becomes an HTTP status and a stable code.

use crate::db::DbError;

/// Why the platform could not start or did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PaygateError {
    /// Refused for a reason the caller caused or can see: `status` is the HTTP status, `code`
    /// the stable code of the signed `PlatformError` body (e.g. 409 `ORDER_CONFLICT`).
    #[error("{message} ({code})")]
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
    #[error("paygate configuration: {0}")]
    Config(String),
    #[error("paygate key {path}: {message}")]
    Key { path: String, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("paygate: {0}")]
    Io(#[from] std::io::Error),
}

impl From<tokio_postgres::Error> for PaygateError {
    fn from(e: tokio_postgres::Error) -> Self {
        PaygateError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for PaygateError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PaygateError::Db(DbError::Pool(e))
    }
}

impl PaygateError {
    pub(crate) fn refused(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        PaygateError::Refused {
            status,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status, the stable code and the message shown to the caller. Internal causes
    /// are not shown (they are logged where the error is answered).
    pub(crate) fn public(&self) -> (u16, &'static str, String) {
        match self {
            PaygateError::Refused {
                status,
                code,
                message,
            } => (*status, code, message.clone()),
            PaygateError::Db(DbError::Pool(_)) => (
                503,
                "PLATFORM_UNAVAILABLE",
                "the platform's database is unavailable; try again".into(),
            ),
            _ => (500, "INTERNAL", "the platform failed; try again".into()),
        }
    }
}
