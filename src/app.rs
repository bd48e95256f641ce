//! Builds the running service: database (embedded or configured), migrations, compiled
//! schemas, HTTP server and background jobs. `nsw serve` and the tests both start it here.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use deadpool_postgres::Pool;
use tracing::Instrument;
use tracing_actix_web::TracingLogger;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::db::{self, embedded::EmbeddedCluster, DbError};
use crate::store::audit;
use crate::validation::Validator;
use crate::xml::{self, XmlError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Schemas(#[from] XmlError),
    #[error("{0}")]
    Other(String),
}

/// A database connection pool, plus the embedded cluster when we use one.
pub struct Database {
    pub pool: Pool,
    pub cluster: Option<Arc<EmbeddedCluster>>,
}

impl Database {
    /// Stops the embedded cluster if this process started it.
    pub fn shutdown(&self) {
        if let Some(c) = self.cluster.as_ref().filter(|c| c.started_here()) {
            if let Err(e) = c.stop() {
                tracing::warn!(error = %e, "stopping the embedded database failed");
            }
        }
    }
}

/// Connects to the configured database, or starts the embedded one, and applies migrations.
pub async fn connect(settings: &Settings) -> Result<Database, StartError> {
    let (url, cluster) = match &settings.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let root = settings.data_dir.join("postgres");
            let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root))
                .await
                .map_err(|e| StartError::Other(e.to_string()))?
                .map_err(DbError::from)?;
            ensure_database(&cluster, "nsw").await?;
            (cluster.connection_string("nsw"), Some(Arc::new(cluster)))
        }
    };
    let pool = db::pool(&url, settings.pool_size)?;
    let mut client = pool.get().await.map_err(DbError::from)?;
    db::migrate::run(&mut client).await?;
    Ok(Database { pool, cluster })
}

async fn ensure_database(cluster: &EmbeddedCluster, name: &str) -> Result<(), DbError> {
    let (client, conn) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    let task = tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // Identifier from our own constant, not user input.
        if let Err(e) = client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
        {
            // Another process may have created it a moment ago.
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(e.into());
            }
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

pub struct Application {
    port: u16,
    server: Server,
    database: Database,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let database = connect(&settings).await?;
        Self::with_database(settings, database).await
    }

    pub async fn with_database(
        settings: Settings,
        database: Database,
    ) -> Result<Application, StartError> {
        xml::schema::preload()?;
        let listener = TcpListener::bind(&settings.listen).map_err(|source| StartError::Bind {
            addr: settings.listen.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError::Other(e.to_string()))?
            .port();
        let workers = settings
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        // The dedicated LISTEN connection needs the address the pool was built from.
        let listen_url = settings.database_url.clone().or_else(|| {
            database
                .cluster
                .as_ref()
                .map(|c| c.connection_string("nsw"))
        });
        let hub = crate::events::spawn(
            database.pool.clone(),
            listen_url,
            Duration::from_millis(settings.events.seal_interval_ms.max(10)),
        );
        crate::webhooks::spawn(
            database.pool.clone(),
            hub.clone(),
            settings.webhooks.clone(),
        )
        .map_err(|e| StartError::Other(format!("webhook client: {e}")))?;
        let hub = web::Data::from(hub);
        let state = web::Data::new(AppState {
            pool: database.pool.clone(),
            validator: Validator::new(settings.limits(), settings.country.clone()),
            settings,
            tokens: api::auth::TokenCache::default(),
        });
        spawn_audit_sealer(database.pool.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(hub.clone())
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|_, _| crate::error::ApiError::NotFound.into()),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    crate::error::ApiError::bad_request("QUERY_INVALID", e.to_string()).into()
                }))
                .wrap(from_fn(api::request_id_header))
                .wrap(TracingLogger::default())
                .configure(api::routes)
                .default_service(web::to(api::not_found))
        })
        .workers(workers)
        .listen(listener)
        .map_err(|e| StartError::Other(e.to_string()))?
        .run();
        Ok(Application {
            port,
            server,
            database,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (signal or handle), then stops an embedded cluster we started.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.database.shutdown();
        result
    }
}

/// Links committed audit entries into the hash chain a few times a second.
fn spawn_audit_sealer(pool: Pool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let span = tracing::debug_span!("job.audit_seal");
            async {
                match pool.get().await {
                    Ok(client) => match audit::seal(&client, 10_000).await {
                        Ok(n) if n > 0 => tracing::debug!(sealed = n, "audit entries sealed"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "audit sealing failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "audit sealer: no connection"),
                }
            }
            .instrument(span)
            .await;
        }
    });
}
