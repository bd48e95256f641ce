//! Database access: the connection pool, migrations and the embedded cluster.

pub mod embedded;
pub mod migrate;

use std::time::Duration;

use deadpool_postgres::{Connect, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_util::task::TaskTracker;

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

/// Builds a pool from a URL (`postgres://…`) or a key=value connection string. Each
/// connection is driven by a task on the runtime that opens it.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        parse(url)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    build(manager, size)
}

/// The service's own pool: its connections are driven by tasks on `runtime` whatever thread
/// opens them (so that they outlive the HTTP workers, which jobs still need while draining),
/// carry the application name `nsw` unless the URL sets one, and can be closed and awaited
/// ([`Connections::close`]) before the database is stopped.
pub fn service_pool(
    url: &str,
    size: usize,
    runtime: tokio::runtime::Handle,
) -> Result<(Pool, Connections), DbError> {
    let mut config = parse(url)?;
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    let connections = Connections::default();
    let manager = Manager::from_connect(
        config,
        Tracked {
            runtime,
            tasks: connections.tasks.clone(),
        },
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok((build(manager, size)?, connections))
}

/// `application_name` of the service's connections (see `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "nsw";

fn parse(url: &str) -> Result<tokio_postgres::Config, DbError> {
    url.parse()
        .map_err(|e: tokio_postgres::Error| DbError::Config(e.to_string()))
}

fn build(manager: Manager, size: usize) -> Result<Pool, DbError> {
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// The connection tasks of a [`service_pool`].
#[derive(Clone, Default)]
pub struct Connections {
    tasks: TaskTracker,
}

impl Connections {
    /// Connections still open.
    pub fn open(&self) -> usize {
        self.tasks.len()
    }

    /// Closes `pool` (idle connections end at once, those in use when given back) and waits,
    /// at most `within`, until every connection has ended cleanly. Returns whether all did.
    pub async fn close(&self, pool: &Pool, within: Duration) -> bool {
        pool.close();
        self.tasks.close();
        tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_ok()
    }
}

/// Opens connections whose tasks run on one runtime and are tracked. The pool aborts the
/// handle it is given when it drops a connection; the connection itself then sees its client
/// gone and ends cleanly (it sends Terminate), which its tracked task waits for.
struct Tracked {
    runtime: tokio::runtime::Handle,
    tasks: TaskTracker,
}

impl Connect for Tracked {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let config = config.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(NoTls).await?;
            self.tasks.spawn_on(
                async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "database connection lost");
                    }
                },
                &self.runtime,
            );
            // Nothing for the pool to abort: the connection ends with its client.
            Ok((client, self.runtime.spawn(async {})))
        })
    }
}
