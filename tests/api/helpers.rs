//! Spawns the real application on a random port against a real PostgreSQL: one shared cluster
//! per machine (started from the system binaries under `target/` unless
//! `NSW_TEST_DATABASE_URL` names a server), a migrated template database, and a fresh database
//! cloned from it for every test.

use std::path::PathBuf;
use std::sync::OnceLock;

use nsw::app::Application;
use nsw::config::Settings;
use nsw::db::embedded::EmbeddedCluster;
use nsw::domain::party::Role;
use reqwest::header::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `nsw loadtest <args> --json` on its own embedded cluster under `target/<data_dir>`
/// (apart from the one the other tests share) and answers its JSON report.
pub fn loadtest_report(data_dir: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nsw"))
        .arg("loadtest")
        .args(args)
        .arg("--json")
        .env("NSW_DATA_DIR", repo_root().join("target").join(data_dir))
        .env_remove("NSW_CONFIG")
        .env_remove("NSW_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("fixtures").join(rel))
        .unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// How to reach the test server: a base connection string to which `dbname` is appended.
enum Server {
    Embedded(EmbeddedCluster),
    Url(String),
}

impl Server {
    fn conn(&self, db: &str) -> String {
        match self {
            Server::Embedded(c) => c.connection_string(db),
            Server::Url(u) => {
                // postgres://user@host:port/dbname?params → swap dbname
                let (base, query) = u.split_once('?').unwrap_or((u.as_str(), ""));
                let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
                let path_start = base[scheme_end..]
                    .find('/')
                    .map(|i| i + scheme_end)
                    .unwrap_or(base.len());
                let q = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                };
                format!("{}/{db}{q}", &base[..path_start])
            }
        }
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("NSW_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server::Url(url),
        _ => {
            let root = repo_root().join("target").join("nsw-test-pg");
            Server::Embedded(
                EmbeddedCluster::start(&root).expect("start the test PostgreSQL cluster"),
            )
        }
    })
}

fn template_name() -> String {
    let mut h = Sha256::new();
    for m in nsw::db::migrate::MIGRATIONS {
        h.update(m.sql.as_bytes());
    }
    format!("nsw_tpl_{}", &hex::encode(h.finalize())[..16])
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&server().conn("postgres"), NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    client
}

/// Creates the migrated template once per schema version (safe across test processes).
async fn ensure_template() -> String {
    static READY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let name = template_name();
            let admin = admin().await;
            admin
                .execute("SELECT pg_advisory_lock(4242999)", &[])
                .await
                .unwrap();
            let exists = admin
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .unwrap()
                .is_some();
            prune_old_databases(&admin, &name).await;
            if !exists {
                let building = format!("{name}_building");
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {building}"))
                    .await
                    .unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .unwrap();
                {
                    let (mut c, conn) = tokio_postgres::connect(&server().conn(&building), NoTls)
                        .await
                        .unwrap();
                    let task = tokio::spawn(conn);
                    nsw::db::migrate::run(&mut c)
                        .await
                        .expect("migrate template");
                    drop(c);
                    let _ = task.await;
                }
                admin
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .unwrap();
            }
            admin
                .execute("SELECT pg_advisory_unlock(4242999)", &[])
                .await
                .unwrap();
            name
        })
        .await
        .clone()
}

/// Drops what earlier runs left in the shared cluster: test databases (`t_…` clones, `e_…`
/// empty ones such as the payment platform's) more than six hours old (their names carry a
/// UUIDv7, hence their creation time) and templates of older schemas.
/// Without this the cluster under target/ grows by every run until the disk is full.
async fn prune_old_databases(admin: &tokio_postgres::Client, template: &str) {
    let cutoff_ms = (chrono::Utc::now() - chrono::Duration::hours(6)).timestamp_millis() as u64;
    let names: Vec<String> = admin
        .query(
            "SELECT datname FROM pg_database
              WHERE datname LIKE 't\\_%' OR datname LIKE 'e\\_%' OR datname LIKE 'nsw\\_tpl\\_%'",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    for name in names {
        let run = name.strip_prefix("t_").or_else(|| name.strip_prefix("e_"));
        let stale = match run.map(uuid::Uuid::parse_str) {
            Some(Ok(id)) => id
                .get_timestamp()
                .map(|ts| {
                    let (secs, nanos) = ts.to_unix();
                    secs * 1000 + u64::from(nanos / 1_000_000) < cutoff_ms
                })
                .unwrap_or(false),
            Some(Err(_)) => false,
            None => name != template && !name.ends_with("_building"),
        };
        if stale {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// A fresh database cloned from the migrated template; returns its connection string.
pub async fn fresh_database() -> String {
    let template = ensure_template().await;
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let admin = admin().await;
    // Concurrent clones of one template can collide on its lock: retry briefly.
    let mut attempt = 0;
    loop {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
        {
            Ok(()) => break,
            Err(e) if attempt < 50 => {
                attempt += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    server().conn(&name)
}

/// A new database with nothing in it (not even migrations), e.g. to restore a backup into.
pub async fn empty_database() -> String {
    let name = format!("e_{}", uuid::Uuid::now_v7().simple());
    admin()
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create an empty database");
    server().conn(&name)
}

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub pool: deadpool_postgres::Pool,
    pub client: reqwest::Client,
    /// Each background job's one pass, when the app runs in this process.
    pub jobs: Option<nsw::jobs::Jobs>,
}

/// The settings every test app starts from. Fees are not collected online
/// (`payments.enabled = false`: applications go straight to `received`, as an operator who
/// collects fees outside the window configures it); the payment tests turn it on, with a
/// platform of their own (`tests/api/payments.rs`).
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: Some(database_url.into()),
        pool_size: 16,
        workers: Some(2),
        ..Settings::default()
    };
    settings.payments.enabled = false;
    settings
}

/// A settings change a test asks of its app, applied after the defaults.
type Tweak = Box<dyn FnOnce(&mut Settings) + Send>;

/// Builds a test app: `TestApp::builder().today("2026-11-30").without_jobs().spawn().await`.
/// Unless told otherwise the app runs on a fresh database, with the window's real clock and all
/// its background jobs.
#[must_use = "a builder does nothing until spawned"]
#[derive(Default)]
pub struct TestAppBuilder {
    database: Option<String>,
    tweaks: Vec<Tweak>,
}

impl TestAppBuilder {
    /// Runs on this database instead of a fresh one (e.g. a second instance on the same data).
    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.to_owned());
        self
    }

    /// The window's clock fixed at `today` (`YYYY-MM-DD`), as `NSW_CLOCK_TODAY` does.
    pub fn today(self, today: &str) -> Self {
        let today = today.to_owned();
        self.settings(move |s| s.calendar.today = Some(today))
    }

    /// No background job runs: nothing happens on its own, and a test runs each job when it
    /// wants it (`app.run_outbox_once()` …), waiting for nothing.
    pub fn without_jobs(self) -> Self {
        self.settings(|s| s.jobs.enabled = false)
    }

    /// Any other setting; changes apply in the order given, after the defaults.
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// The settings the app will start with, on `database_url`.
    fn build(self, database_url: &str) -> Settings {
        let mut settings = test_settings(database_url);
        for tweak in self.tweaks {
            tweak(&mut settings);
        }
        settings
    }

    pub async fn spawn(self) -> TestApp {
        let database_url = match &self.database {
            Some(url) => url.clone(),
            None => fresh_database().await,
        };
        spawn(self.build(&database_url)).await
    }
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// The app with every default: a fresh database, the real clock, all background jobs.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    /// The app served by another process (the `nsw` binary) at `address`, on `database_url`:
    /// its jobs cannot be run from the test.
    pub fn external(address: &str, database_url: &str) -> TestApp {
        TestApp {
            address: address.to_owned(),
            database_url: database_url.to_owned(),
            pool: nsw::db::pool(database_url, 2).unwrap(),
            client: reqwest::Client::new(),
            jobs: None,
        }
    }
}

async fn spawn(settings: Settings) -> TestApp {
    let database_url = settings
        .database_url
        .clone()
        .expect("a database URL")
        .into_inner();
    let database_url = database_url.as_str();
    let pool = nsw::db::pool(database_url, 8).unwrap();
    let database = nsw::app::connect(&settings).await.expect("connect");
    let app = Application::with_database(settings, database)
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let jobs = Some(app.jobs());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        database_url: database_url.to_owned(),
        pool,
        client: reqwest::Client::new(),
        jobs,
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    }
    /// The (code, path) pairs of a 422's `errors`.
    pub fn error_codes(&self) -> Vec<(String, String)> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["code"].as_str().unwrap_or("").to_owned(),
                            e["path"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    fn jobs(&self) -> &nsw::jobs::Jobs {
        self.jobs
            .as_ref()
            .expect("the app runs in another process: its jobs cannot be run from here")
    }

    /// One outbox pass: claims due messages and delivers them; returns how many it claimed.
    pub async fn run_outbox_once(&self) -> usize {
        self.jobs().outbox_once().await
    }

    /// One reaper pass: returns expired outbox leases; returns how many.
    pub async fn run_reaper_once(&self) -> u64 {
        self.jobs().reap_once().await
    }

    /// One webhook pass: delivers due events to their subscriptions; returns how many served.
    pub async fn run_webhooks_once(&self) -> usize {
        self.jobs().webhooks_once().await
    }

    /// One sequencer pass: committed events enter the feed; returns how many.
    pub async fn run_events_once(&self) -> u64 {
        self.jobs().events_once().await
    }

    /// One audit sealer pass: committed entries join the chain; returns how many.
    pub async fn run_audit_once(&self) -> u64 {
        self.jobs().audit_once().await
    }

    /// One payments pass: status queries, cancellations of unpaid applications, refunds.
    pub async fn run_payments_once(&self) -> nsw::payments::jobs::Pass {
        self.jobs().payments_once().await
    }

    pub async fn add_party(&self, role: Role, id: &str) -> String {
        let mut client = self.pool.get().await.unwrap();
        nsw::store::parties::add(&mut client, id, role, &format!("{id} test party"), None)
            .await
            .expect("add party")
    }

    pub async fn add_party_with_agency(&self, role: Role, id: &str, agency: &str) -> String {
        let mut client = self.pool.get().await.unwrap();
        nsw::store::parties::add(&mut client, id, role, id, Some(agency))
            .await
            .expect("add party")
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut rb = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn submit(&self, token: &str, xml: Vec<u8>) -> Resp {
        self.submit_with(token, xml, &[]).await
    }

    pub async fn submit_with(&self, token: &str, xml: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("content-type", "application/xml")];
        h.extend_from_slice(headers);
        self.request(
            reqwest::Method::POST,
            "/api/v1/declarations",
            Some(token),
            &h,
            Some(xml),
        )
        .await
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.request(reqwest::Method::GET, path, Some(token), &[], None)
            .await
    }

    /// A GET without credentials.
    pub async fn get_anonymously(&self, path: &str) -> Resp {
        self.request(reqwest::Method::GET, path, None, &[], None)
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Resp {
        self.request(reqwest::Method::DELETE, path, Some(token), &[], None)
            .await
    }

    /// A request with a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Resp {
        self.request(
            method,
            path,
            Some(token),
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    pub async fn post_json(&self, token: &str, path: &str, body: serde_json::Value) -> Resp {
        self.send_json(reqwest::Method::POST, token, path, body)
            .await
    }

    pub async fn put_json(&self, token: &str, path: &str, body: serde_json::Value) -> Resp {
        self.send_json(reqwest::Method::PUT, token, path, body)
            .await
    }

    pub async fn post_xml(&self, token: &str, path: &str, xml: Vec<u8>) -> Resp {
        self.request(
            reqwest::Method::POST,
            path,
            Some(token),
            &[("content-type", "application/xml")],
            Some(xml),
        )
        .await
    }

    pub async fn count(&self, table: &str) -> i64 {
        let client = self.pool.get().await.unwrap();
        client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Row counts of every table intake writes: nothing may change on a refused request.
    pub async fn footprint(&self) -> [i64; 6] {
        [
            self.count("documents").await,
            self.count("declarations").await,
            self.count("declaration_items").await,
            self.count("dossier_events").await,
            self.count("audit_log").await,
            self.count("idempotency_keys").await,
        ]
    }
}

/// Gives a fixture another declarant reference (the first `<Reference>`), so one document can be
/// submitted several times as distinct declarations.
pub fn with_reference(xml: &[u8], new_ref: &str) -> Vec<u8> {
    let s = String::from_utf8(xml.to_vec()).unwrap();
    let start = s.find("<Reference>").expect("Reference") + "<Reference>".len();
    let end = start + s[start..].find("</Reference>").unwrap();
    format!("{}{}{}", &s[..start], new_ref, &s[end..]).into_bytes()
}
