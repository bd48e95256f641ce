//! Database access: the connection pool, migrations and the embedded cluster.

pub mod embedded;
pub mod migrate;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Shown with the server's SQLSTATE, message, detail and constraint, wherever it is logged.
    #[error("database error: {}", crate::error::cause_chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("embedded database: {0}")]
    Embedded(#[from] embedded::EmbeddedError),
}

/// Builds a pool from a URL (`postgres://…`) or a key=value connection string.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbError::Config(e.to_string()))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}
