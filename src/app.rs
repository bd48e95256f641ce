//! Builds the running service: database (embedded or configured), migrations, compiled
//! schemas, HTTP server and background jobs. `nsw serve` and the tests both start it here.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use deadpool_postgres::Pool;
use tracing_actix_web::TracingLogger;

use crate::api::{self, AppState};
use crate::config::{Secret, Settings};
use crate::db::{self, embedded::EmbeddedCluster, DbError};
use crate::events::Sequencer;
use crate::exchange::worker::Outbox;
use crate::jobs::{AuditSealer, Drained, Jobs, Live, Supervisor};
use crate::validation::Validator;
use crate::webhooks::Deliverer;
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
    #[error(transparent)]
    Exchange(#[from] crate::exchange::ExchangeError),
    #[error("{0}")]
    Other(String),
}

/// A database connection pool, plus the embedded cluster when we use one.
pub struct Database {
    pub pool: Pool,
    /// Where `pool` connects; HTTP workers open their own intake connections here.
    pub url: String,
    pub cluster: Option<Arc<EmbeddedCluster>>,
    /// The pool's connection tasks, to close them before the database goes away.
    pub connections: db::Connections,
}

/// Committer tasks per HTTP worker for messages received from partner windows: two, so one
/// group gathers while the other commits.
const INBOUND_COMMITTERS: usize = 2;
/// At most this many received messages per transaction.
const INBOUND_MAX_GROUP: usize = 64;

/// This HTTP worker's committers of received partner messages (called on the worker's thread,
/// so they run on its runtime, as intake's do); none without exchange keys.
fn inbound_committers(state: &web::Data<AppState>) -> api::Inbound {
    api::Inbound(state.exchange.as_ref().map(|_| {
        crate::store::inbound_group_commit::InboundCommit::spawn(
            state.pool.clone(),
            INBOUND_COMMITTERS,
            INBOUND_MAX_GROUP,
        )
    }))
}

/// Longest wait for the pool's connections to end on shutdown.
const CONNECTIONS_CLOSE: Duration = Duration::from_secs(5);

impl Database {
    /// Closes the pool and waits (bounded) until its connections have ended cleanly.
    pub async fn close(&self) {
        if !self.connections.close(&self.pool, CONNECTIONS_CLOSE).await {
            tracing::warn!(
                open = self.connections.open(),
                "database connections still open after {CONNECTIONS_CLOSE:?}"
            );
        }
    }

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
    connect_with(settings, true).await
}

/// As [`connect`]; without `migrate` the database is left as found (a restore needs it empty).
pub async fn connect_with(settings: &Settings, migrate: bool) -> Result<Database, StartError> {
    let (url, cluster) = match &settings.database_url {
        Some(url) => (url.expose().clone(), None),
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
    let (pool, connections) =
        db::service_pool(&url, settings.pool_size, tokio::runtime::Handle::current())?;
    if migrate {
        let mut client = pool.get().await.map_err(DbError::from)?;
        db::migrate::run(&mut client).await?;
    }
    Ok(Database {
        pool,
        url,
        cluster,
        connections,
    })
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
    /// Background jobs, stopped after the servers and before the database.
    supervisor: Supervisor,
    /// Each job's one pass, for tests.
    jobs: Jobs,
    /// How long jobs may take to stop.
    grace: Duration,
    /// The mutual-TLS listener for partner windows, when configured: (port, server).
    tls: Option<(u16, Server)>,
}

/// The partner endpoint alone, on its own mutual-TLS listener.
fn partner_listener(
    addr: &str,
    state: &web::Data<AppState>,
    workers: usize,
) -> Result<(u16, Server), StartError> {
    let ex = state.exchange.as_ref().ok_or_else(|| {
        StartError::Other("exchange.tls_listen is set but this window has no exchange keys".into())
    })?;
    let files = ex.tls.as_ref().ok_or_else(|| {
        StartError::Other(
            "exchange.tls_listen is set but the keys directory has no tls.crt/tls.key".into(),
        )
    })?;
    let policy = crate::exchange::trust::Policy::from_settings(&ex.policy);
    let acceptor = crate::exchange::tls::acceptor(files, &ex.partners, &policy)?;
    let listener = TcpListener::bind(addr).map_err(|source| StartError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?
        .port();
    let state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(inbound_committers(&state)))
            .wrap(from_fn(api::request_id_header))
            .wrap(TracingLogger::default())
            .wrap(from_fn(crate::metrics::track_requests))
            .configure(api::partner_routes)
            .default_service(web::to(api::not_found))
    })
    .on_connect(crate::exchange::tls::on_connect)
    .workers(workers)
    .listen_openssl(listener, acceptor)
    .map_err(|e| StartError::Other(e.to_string()))?
    .run();
    Ok((port, server))
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
        crate::metrics::parse_allow_list(&settings.metrics.allow_from)
            .map_err(|m| StartError::Other(format!("metrics.allow_from: {m}")))?;
        crate::metrics::install();
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
        let calendar = settings.calendar().map_err(StartError::Other)?;
        let clock = settings.clock().map_err(StartError::Other)?;
        install_routing(&database.pool, &settings).await?;
        let exchange = crate::exchange::Exchange::from_settings(&settings)?.map(Arc::new);
        let tls_listen = settings.exchange.tls_listen.clone();
        let hub = Arc::new(crate::events::Hub::new());
        let payments = Arc::new(
            crate::payments::Payments::new(
                database.pool.clone(),
                &settings,
                payments_public_url(&settings, &listener)?,
            )
            .map_err(|e| StartError::Other(format!("payments: {e}")))?,
        );
        let jobs = Jobs {
            outbox: exchange
                .as_ref()
                .map(|ex| Outbox::new(database.pool.clone(), ex.clone(), settings.limits())),
            webhooks: Deliverer::new(database.pool.clone(), settings.webhooks.clone())
                .map_err(|e| StartError::Other(format!("webhook client: {e}")))?,
            events: Sequencer::new(database.pool.clone(), hub.clone()),
            audit: AuditSealer::new(database.pool.clone()),
            tallies: crate::jobs::TallyFolder::new(database.pool.clone()),
            payments: crate::payments::jobs::PaymentJob::new(payments.clone()),
        };
        let mut supervisor = Supervisor::new();
        if settings.jobs.enabled {
            start_jobs(&mut supervisor, &jobs, &settings, &database, &hub);
        }
        let hub = web::Data::from(hub);
        let routing: Arc<crate::store::routing::RoutingCache> = Default::default();
        // Each HTTP worker starts its own committers and intake connections (see
        // `group_commit::Setup`), so a submission stays on the worker's thread end to end.
        let intake = settings.intake.group_commit.then(|| {
            Arc::new(crate::store::group_commit::Setup {
                url: database.url.clone(),
                routing: routing.clone(),
                country: settings.country.clone(),
                origin_checked_from: exchange
                    .as_ref()
                    .map(|ex| ex.partners.exchanging("FORM_D"))
                    .unwrap_or_default(),
                committers: settings.intake.committers.div_ceil(workers.max(1)),
                max_group: settings.intake.max_group,
            })
        });
        let grace = Duration::from_millis(settings.jobs.grace_ms);
        let throttle = api::throttle::Throttle::new(&settings.throttle);
        let dashboard = crate::portal::dashboard_cache::DashboardCache::new(&settings.portal);
        let state = web::Data::new(AppState {
            pool: database.pool.clone(),
            validator: Validator::new(settings.limits(), settings.country.clone())
                .with_clock(clock),
            settings,
            tokens: api::auth::TokenCache::default(),
            throttle,
            routing,
            calendar,
            clock,
            exchange,
            payments,
            dashboard,
        });
        let main_state = state.clone();
        let expect_table = Arc::new(api::expect::Table::new(&api::endpoints()));
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Other(e.to_string()))?;
        // Built as actix-web's HttpServer builds it, plus an expect service: a request that
        // carries `Expect: 100-continue` is answered from its headers when they decide it.
        let server = actix_server::Server::build()
            .workers(workers)
            .listen("nsw-http", listener, move || {
                let intake = api::Intake(intake.as_ref().and_then(|setup| match setup.start() {
                    Ok(committers) => Some(committers),
                    Err(e) => {
                        tracing::error!(error = %e, "intake committers not started");
                        None
                    }
                }));
                let inbound = inbound_committers(&main_state);
                let app = App::new()
                    .app_data(main_state.clone())
                    .app_data(web::Data::new(intake))
                    .app_data(web::Data::new(inbound))
                    .app_data(hub.clone())
                    .app_data(
                        web::PathConfig::default()
                            .error_handler(|_, _| crate::error::ApiError::NotFound.into()),
                    )
                    .app_data(web::QueryConfig::default().error_handler(|e, _| {
                        crate::error::ApiError::bad_request("QUERY_INVALID", e.to_string()).into()
                    }))
                    .app_data(web::JsonConfig::default().error_handler(|e, _| {
                        crate::error::ApiError::bad_request("BODY_INVALID", e.to_string()).into()
                    }))
                    .app_data(crate::portal::forms::config())
                    .wrap(from_fn(crate::portal::error_pages))
                    .wrap(from_fn(crate::portal::security_headers))
                    .wrap(from_fn(api::request_id_header))
                    .wrap(TracingLogger::default())
                    .wrap(from_fn(crate::metrics::track_requests))
                    .configure(api::routes)
                    .configure(crate::portal::routes)
                    .default_service(web::to(crate::portal::not_found));
                let (state, table) = (main_state.clone(), expect_table.clone());
                let expect = actix_service::fn_service(move |req: actix_http::Request| {
                    api::expect::check(state.clone(), table.clone(), req)
                });
                use actix_service::ServiceFactoryExt;
                let factory = actix_service::IntoServiceFactory::into_factory(app)
                    .map_err(|err: actix_web::Error| err.error_response());
                actix_http::HttpService::build()
                    .local_addr(addr)
                    .expect(expect)
                    .finish(actix_service::map_config(factory, move |_| {
                        actix_web::dev::AppConfig::__priv_test_new(false, addr.to_string(), addr)
                    }))
                    .tcp()
            })
            .map_err(|e| StartError::Other(e.to_string()))?
            .run();
        let tls = match tls_listen {
            Some(addr) => Some(partner_listener(&addr, &state, workers)?),
            None => None,
        };
        Ok(Application {
            port,
            server,
            database,
            supervisor,
            jobs,
            grace,
            tls,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's connection pool (for start-up tasks such as publishing the merchant
    /// certificate).
    pub fn pool(&self) -> &Pool {
        &self.database.pool
    }

    /// Port of the mutual-TLS partner listener, when configured.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|(p, _)| *p)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Each background job's one pass (`run_once`), whether or not the jobs run on their own.
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    /// Which background jobs are running; empty once `run_until_stopped` has returned.
    pub fn live_jobs(&self) -> Live {
        self.supervisor.live()
    }

    /// Serves until stopped (signal or handle). Then, in this order: the HTTP servers stop
    /// (requests under way are finished), the background jobs are cancelled and awaited
    /// (within `jobs.grace_ms`), the pool's connections are closed and awaited, and an embedded
    /// cluster this process started is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_and_drain().await.0
    }

    /// As [`Application::run_until_stopped`], also telling how the jobs ended.
    pub async fn run_and_drain(self) -> (std::io::Result<()>, Drained) {
        let tls = self.tls.map(|(_, s)| (s.handle(), tokio::spawn(s)));
        let result = self.server.await;
        if let Some((handle, task)) = tls {
            handle.stop(true).await;
            let _ = task.await;
        }
        let drained = self.supervisor.shutdown(self.grace).await;
        drop(self.jobs);
        self.database.close().await;
        self.database.shutdown();
        (result, drained)
    }
}

/// The base URL the payment platform and browsers reach this window by: `payments.public_url`,
/// or `http://` and the address bound (loopback for an unspecified address).
fn payments_public_url(settings: &Settings, listener: &TcpListener) -> Result<String, StartError> {
    if let Some(u) = &settings.payments.public_url {
        return Ok(u.clone());
    }
    let mut addr = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("http://{addr}"))
}

/// Installs the configured (or shipped) routing table on a database that has none.
async fn install_routing(pool: &Pool, settings: &Settings) -> Result<(), StartError> {
    let text = match &settings.routing_rules {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| StartError::Other(format!("routing rules {}: {e}", path.display())))?,
        None => crate::routing::DEFAULT_TABLE.to_owned(),
    };
    let spec = crate::routing::TableSpec::from_toml(&text)
        .map_err(|e| StartError::Other(format!("routing rules: {e}")))?;
    let mut client = pool.get().await.map_err(DbError::from)?;
    if let Some(v) = crate::store::routing::install_if_empty(&mut client, &spec)
        .await
        .map_err(|e| StartError::Other(format!("installing the routing table: {e}")))?
    {
        tracing::info!(
            version = v,
            rules = spec.rules.len(),
            "routing table installed"
        );
    }
    Ok(())
}

/// Starts every background job this instance runs under `supervisor`.
fn start_jobs(
    supervisor: &mut Supervisor,
    jobs: &Jobs,
    settings: &Settings,
    database: &Database,
    hub: &Arc<crate::events::Hub>,
) {
    if let Some(outbox) = jobs.outbox.clone().filter(|_| settings.exchange.worker) {
        let reaper = outbox.clone();
        supervisor.start("outbox", |cancel| outbox.run(cancel));
        supervisor.start("outbox.reaper", |cancel| reaper.run_reaper(cancel));
    }
    let (notes_tx, notes) = tokio::sync::mpsc::unbounded_channel();
    // The dedicated LISTEN connection needs the address the pool was built from.
    let listen_url = settings
        .database_url
        .clone()
        .map(Secret::into_inner)
        .or_else(|| {
            database
                .cluster
                .as_ref()
                .map(|c| c.connection_string("nsw"))
        });
    if let Some(url) = listen_url {
        supervisor.start("events.listener", |cancel| {
            crate::events::listen(url, notes_tx, cancel)
        });
    }
    let interval = Duration::from_millis(settings.events.seal_interval_ms.max(10));
    let sequencer = jobs.events.clone();
    supervisor.start("events.sequencer", |cancel| {
        sequencer.run(interval, notes, cancel)
    });
    let webhooks = jobs.webhooks.clone();
    let wake = hub.subscribe();
    supervisor.start("webhooks", |cancel| webhooks.run(wake, cancel));
    let audit = jobs.audit.clone();
    supervisor.start("audit.sealer", |cancel| audit.run(cancel));
    let tallies = jobs.tallies.clone();
    supervisor.start("tallies", |cancel| tallies.run(cancel));
    let payments = jobs.payments.clone();
    supervisor.start("payments", |cancel| payments.run(cancel));
}
