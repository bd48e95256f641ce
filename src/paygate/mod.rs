//! `nsw paygate`: a simulator of the national public-service payment platform, a separate
//! process (or, in tests, a separate server in the same process) with its own key and its own
//! database. It speaks [`crate::payments::protocol`]: merchants (the window) create orders
//! server-to-server with signed requests, the payer pays or cancels on the platform's page
//! (`GET /pay/{order_id}`), and the platform sends signed notifications to the merchant,
//! retried until acknowledged; it answers status queries and refunds and publishes a daily
//! settlement file. It can be told to misbehave ([`Faults`]) so that the window's handling of
//! lost, duplicated, delayed, forged or wrong notifications can be tested.
//!
//! `docs/paygate.md` describes how to run it, its HTTP surface and its faults.

mod api;
mod error;
mod keys;
mod merchants;
mod notifier;
mod page;
mod store;
mod workflow;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::db::{self, embedded::EmbeddedCluster, Connections};
use crate::payments::protocol::{Order, Signer};

pub use error::PaygateError;

/// How to run the platform. [`Settings::default`] gives the local pair of `nsw serve` run from
/// the same directory: merchant `NSW-VN` whose certificate is `nsw-data/payments/merchant.crt`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on, `host:port` (`"127.0.0.1:0"`: any free port).
    pub listen: String,
    /// Base URL of the payer's pages in `Order.pay_url` (no trailing slash); default
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    /// The platform's database; `None`: an embedded PostgreSQL cluster in `<data_dir>/pg`,
    /// database `paygate`.
    pub database_url: Option<String>,
    /// Holds `paygate.key` (the private key, mode 0600, made on first start) and `paygate.crt`
    /// (its certificate, what merchants pin).
    pub data_dir: PathBuf,
    /// The merchants allowed to create orders.
    pub merchants: Vec<Merchant>,
    /// Bearer token of `PUT/GET /api/faults`; `None`: those answer 404.
    pub control_token: Option<String>,
    /// The settlement day's time zone, minutes east of UTC (+420: Viet Nam).
    pub utc_offset_minutes: i32,
    /// Cap of the notification retry back-off, seconds (1 s, 2 s, 4 s … capped); 0 retries at
    /// every notifier pass.
    pub retry_max_secs: u64,
    /// Run the notifier loop; off, notifications go only when [`Running::deliver_once`] is
    /// called.
    pub run_jobs: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8090".into(),
            public_url: None,
            database_url: None,
            data_dir: PathBuf::from("paygate-data"),
            merchants: vec![Merchant {
                id: "NSW-VN".into(),
                certificate: CertificateSource::Path(PathBuf::from(
                    "nsw-data/payments/merchant.crt",
                )),
            }],
            control_token: None,
            utc_offset_minutes: 420,
            retry_max_secs: 60,
            run_jobs: true,
        }
    }
}

/// A merchant the platform knows: its id (`merchant_id` of its requests) and the certificate
/// its requests are verified with.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: String,
    pub certificate: CertificateSource,
}

/// Where a merchant's certificate (PEM, one or more during a rollover) comes from.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// Given at start.
    Pem(Vec<u8>),
    /// A file, read again whenever it changes; while it is missing the merchant's requests are
    /// answered 401 `MERCHANT_CERTIFICATE_MISSING` (so the window and the platform can start in
    /// any order).
    Path(PathBuf),
}

/// Misbehaviour the platform is told to produce (`PUT /api/faults`, [`Running::set_faults`]).
/// Held in memory; the default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Applies to the notifications queued while it is set.
    pub notification: Option<NotificationFault>,
    /// Seconds before the first attempt, for [`NotificationFault::Delayed`].
    pub delay_secs: u64,
    /// `POST /api/orders` answers 503 `PLATFORM_UNAVAILABLE` and stores nothing.
    pub create_down: bool,
    /// References left out of settlement files.
    pub settlement_omit: Vec<String>,
    /// Reference → amount (đồng) written in the settlement file instead of the paid amount
    /// (on the payment's row; refund rows keep theirs).
    pub settlement_amounts: std::collections::BTreeMap<String, i64>,
}

/// What goes wrong with the notifications queued while it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationFault {
    /// Never sent at all (the row is kept, marked lost).
    Lost,
    /// Queued twice: two sendings, both validly signed, with the same `transaction_id`.
    Duplicated,
    /// The first attempt not before `delay_secs` after the event.
    Delayed,
    /// Signed over other bytes: never verifies, retried like any other until a 2xx.
    BadSignature,
    /// `amount` in the body is the real amount minus 1 000 đồng, validly signed.
    WrongAmount,
}

/// What every handler and the notifier share.
pub(crate) struct State {
    pub pool: deadpool_postgres::Pool,
    pub signer: Signer,
    pub merchants: merchants::Registry,
    pub faults: RwLock<Faults>,
    /// Base of `pay_url`, no trailing slash.
    pub public_url: String,
    pub control_token: Option<String>,
    pub utc_offset_minutes: i32,
    pub retry_max_secs: u64,
    pub http: reqwest::Client,
    /// Poked when a notification is queued, so the loop sends it without waiting for its tick.
    pub wake: tokio::sync::Notify,
}

impl State {
    pub fn faults(&self) -> Faults {
        self.faults.read().map(|f| f.clone()).unwrap_or_default()
    }
}

/// A started platform. Stop it with [`Running::stop`].
pub struct Running {
    url: String,
    certificate_pem: Vec<u8>,
    state: Arc<State>,
    server: ServerHandle,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    notifier: Option<tokio::task::JoinHandle<()>>,
    cancel: CancellationToken,
    connections: Connections,
    cluster: Option<EmbeddedCluster>,
}

/// Starts the platform: its key (made on first start), its database and schema, the HTTP server
/// and (with `run_jobs`) the notifier. Errors: the key file readable by others, a merchant PEM
/// that does not parse, the address in use, the database unreachable.
pub async fn start(settings: Settings) -> Result<Running, PaygateError> {
    let data_dir = settings.data_dir.clone();
    let (signer, certificate_pem) =
        tokio::task::spawn_blocking(move || keys::load_or_create(&data_dir))
            .await
            .map_err(|e| PaygateError::Config(e.to_string()))??;
    let merchants = merchants::Registry::new(&settings.merchants)?;

    let (url, cluster) = match &settings.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let root = settings.data_dir.join("pg");
            let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root))
                .await
                .map_err(|e| PaygateError::Config(e.to_string()))?
                .map_err(db::DbError::from)?;
            store::ensure_database(&cluster, "paygate").await?;
            (cluster.connection_string("paygate"), Some(cluster))
        }
    };
    let (pool, connections) = db::service_pool(&url, 8, tokio::runtime::Handle::current())?;
    {
        let mut client = pool.get().await.map_err(db::DbError::from)?;
        store::ensure_schema(&mut client).await?;
    }

    let listener = TcpListener::bind(&settings.listen)
        .map_err(|e| PaygateError::Config(format!("listen on {}: {e}", settings.listen)))?;
    let bound = listener.local_addr()?;
    let url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"))
        .trim_end_matches('/')
        .to_owned();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| PaygateError::Config(e.to_string()))?;
    let state = Arc::new(State {
        pool,
        signer,
        merchants,
        faults: RwLock::new(Faults::default()),
        public_url: url.clone(),
        control_token: settings.control_token.clone(),
        utc_offset_minutes: settings.utc_offset_minutes,
        retry_max_secs: settings.retry_max_secs,
        http,
        wake: tokio::sync::Notify::new(),
    });

    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .wrap(TracingLogger::default())
            .configure(api::routes)
            .configure(page::routes)
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let server_task = tokio::spawn(server);

    let cancel = CancellationToken::new();
    let notifier = settings
        .run_jobs
        .then(|| tokio::spawn(notifier::run(state.clone(), cancel.clone())));
    tracing::info!(%url, %bound, "payment platform simulator started");
    Ok(Running {
        url,
        certificate_pem,
        state,
        server: handle,
        server_task,
        notifier,
        cancel,
        connections,
        cluster,
    })
}

impl Running {
    /// The platform's base URL (the public URL when one was set), e.g. `http://127.0.0.1:40123`:
    /// `{url}/api/orders` is where orders are created.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The platform's certificate, PEM: what the window pins to verify its answers,
    /// notifications and settlement files.
    pub fn certificate_pem(&self) -> Vec<u8> {
        self.certificate_pem.clone()
    }

    /// Replaces the faults (what `PUT /api/faults` does).
    pub fn set_faults(&self, f: Faults) {
        if let Ok(mut faults) = self.state.faults.write() {
            *faults = f;
        }
    }

    /// Pays the order for `reference` as a payer pressing "Pay" would, and answers it as the
    /// status query would. Errors (`Refused`): 404 `ORDER_NOT_FOUND`, 409 `ORDER_EXPIRED`,
    /// 409 `ORDER_CANCELLED`, 409 `ORDER_AMBIGUOUS` (two merchants use the reference). Paying a
    /// paid order changes nothing and answers it.
    pub async fn pay(&self, reference: &str) -> Result<Order, PaygateError> {
        let order = workflow::find_by_reference(&self.state, reference).await?;
        let (order, _) = workflow::pay(&self.state, &order.order_id).await?;
        Ok(order.to_order(&self.state.public_url, chrono::Utc::now()))
    }

    /// Cancels the order for `reference` as a payer pressing "Cancel" would. Errors as
    /// [`pay`](Self::pay), and 409 `ORDER_PAID` for a paid order.
    pub async fn cancel(&self, reference: &str) -> Result<Order, PaygateError> {
        let order = workflow::find_by_reference(&self.state, reference).await?;
        let (order, _) = workflow::cancel(&self.state, &order.order_id).await?;
        Ok(order.to_order(&self.state.public_url, chrono::Utc::now()))
    }

    /// One notifier pass: sends every notification due now, once each; answers how many were
    /// acknowledged (2xx) in it.
    pub async fn deliver_once(&self) -> usize {
        notifier::deliver_once(&self.state).await
    }

    /// Notifications queued and not acknowledged yet (lost ones excluded: they will never be
    /// sent). -1 when the database cannot be asked.
    pub async fn pending_notifications(&self) -> i64 {
        match self.state.pool.get().await {
            Ok(client) => store::pending_notifications(&client).await.unwrap_or(-1),
            Err(_) => -1,
        }
    }

    /// Stops the HTTP server (letting requests in flight finish), the notifier, the database
    /// connections and the embedded cluster if this process started it.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.server.stop(true).await;
        let _ = self.server_task.await;
        if let Some(n) = self.notifier {
            let _ = n.await;
        }
        self.connections
            .close(&self.state.pool, Duration::from_secs(5))
            .await;
        if let Some(cluster) = self.cluster.filter(|c| c.started_here()) {
            let stopped = tokio::task::spawn_blocking(move || cluster.stop()).await;
            if let Ok(Err(e)) = stopped {
                tracing::warn!(error = %e, "stopping the paygate's embedded database failed");
            }
        }
    }
}
