//! `nsw loadtest`: drives a real `nsw serve` process over HTTP and, in the same run, measures the
//! machine's own limits (database commits, libxml2 validation), printing the service's figures
//! as ratios of those baselines.

mod baseline;
pub mod docgen;
pub mod documents;
mod driver;
pub mod exchange;
pub mod exchange_prefill;
pub mod prefill;
mod stats;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::db::embedded::EmbeddedCluster;
use crate::store::parties;
use crate::validation::{Valid, Validator, Verdict};
use crate::xml::Limits;
use driver::{Mix, Target};
use stats::Outcome;

pub struct Options {
    pub connections: usize,
    pub duration: Duration,
    /// Item counts of the documents in the mix.
    pub sizes: Vec<usize>,
    /// An existing database to load (already migrated or empty); none = a fresh database in the
    /// embedded cluster under `data_dir`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub json: bool,
    /// Dossiers to store before measuring intake a second time (0: skip that phase).
    pub prefill: i64,
}

#[derive(Serialize)]
struct Report {
    cores: usize,
    connections: usize,
    seconds_per_phase: f64,
    mix: Vec<(usize, usize)>,
    intake_closed_loop: Outcome,
    intake_open_loop_half_rate: Outcome,
    db_commit_limit_per_second: f64,
    /// Transactions of the same document bytes plus one row each, one statement and one commit
    /// per transaction, on the same connections, right after the same-rows baseline.
    minimal_durable_transactions_per_second: f64,
    libxml2_alone_per_second: f64,
    nsw_validation_per_second: f64,
    intake_over_db_limit: f64,
    intake_over_minimal_transaction: f64,
    validation_over_libxml2: f64,
    server_peak_rss_mb: f64,
    large_document_bytes: usize,
    large_document_status: u16,
    large_document_rss_growth_mb: f64,
    /// Dossiers written by `--prefill` before the second closed loop.
    prefilled_dossiers: i64,
    prefill_seconds: f64,
    intake_closed_loop_prefilled: Option<Outcome>,
    intake_prefilled_over_empty: Option<f64>,
    /// The database baseline again, measured right after the loop on the full database.
    db_commit_limit_prefilled_per_second: Option<f64>,
    /// The minimal durable transaction again, right after that.
    minimal_durable_transactions_prefilled_per_second: Option<f64>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub async fn run(opts: Options) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (database_url, cluster) = match &opts.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let (url, cluster) = fresh_embedded_database(&opts.data_dir).await?;
            (url, Some(cluster))
        }
    };
    let pool = crate::db::pool(&database_url, opts.connections + 4)?;
    {
        let mut client = pool.get().await?;
        crate::db::migrate::run(&mut client).await?;
    }
    let token = {
        let mut client = pool.get().await?;
        match parties::add(
            &mut client,
            docgen::DECLARANT,
            crate::domain::party::Role::Enterprise,
            "Hoa Binh Household Goods Trading Co., Ltd",
            None,
        )
        .await
        {
            Ok(t) => t,
            Err(_) => parties::issue_token(&mut client, docgen::DECLARANT).await?,
        }
    };

    let templates: Vec<(usize, Vec<u8>)> = opts
        .sizes
        .iter()
        .map(|&n| (n, docgen::declaration(n, n as u64)))
        .collect();
    let mix = Arc::new(Mix {
        templates: templates.clone(),
    });
    eprintln!(
        "loadtest: {} cores, {} connections, {:.0} s per phase, mix {:?} items ({:?} bytes)",
        cores,
        opts.connections,
        opts.duration.as_secs_f64(),
        opts.sizes,
        templates.iter().map(|(_, b)| b.len()).collect::<Vec<_>>()
    );

    // The database's commit limit is measured right after each intake loop, on the database
    // as that loop left it (same rows, same indexes, same cache), so each ratio compares like
    // with like.
    let validator = Validator::new(Limits::default(), "VN");
    let typed: Vec<_> = templates
        .iter()
        .filter_map(|(_, b)| match validator.validate(b, None) {
            Verdict::Valid(Valid::Declaration(d)) => Some((b.clone(), *d)),
            _ => None,
        })
        .collect();
    let bodies: Vec<Vec<u8>> = typed.iter().map(|(b, _)| b.clone()).collect();
    // Both database baselines, one after the other: (same rows, minimal transaction) per second.
    let db_baseline = || async {
        eprintln!("loadtest: baseline, database commits");
        let same_rows = baseline::db_commits(
            &pool,
            &typed,
            docgen::DECLARANT,
            opts.connections,
            opts.duration,
        )
        .await;
        eprintln!("loadtest: baseline, minimal durable transactions");
        let minimal =
            baseline::minimal_commits(&pool, &bodies, opts.connections, opts.duration).await;
        (same_rows, minimal)
    };

    let mut server = Server::start(&database_url)?;
    let target = Arc::new(Target {
        url: format!("{}/api/v1/declarations", server.address),
        token,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(opts.connections * 2)
            .build()?,
    });
    let seq = Arc::new(AtomicU64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() * 1_000_000),
    ));

    // Every closed loop runs the same mix on the same connections; only its length differs.
    let closed_loop = |duration| {
        driver::closed_loop(
            target.clone(),
            mix.clone(),
            opts.connections,
            duration,
            seq.clone(),
        )
    };
    let warm_up = Duration::from_secs(2);

    eprintln!("loadtest: warming up");
    closed_loop(warm_up).await;

    eprintln!("loadtest: intake, closed loop");
    let sampler = server.sample_rss();
    let closed = closed_loop(opts.duration).await;
    let peak_rss = sampler.stop().await;

    let half = closed.per_second / 2.0;
    eprintln!("loadtest: intake, open loop at {half:.0}/s");
    let open = driver::open_loop(
        target.clone(),
        mix.clone(),
        half,
        opts.duration,
        seq.clone(),
    )
    .await;

    // After the open loop, whose latencies would otherwise carry the autovacuum and checkpoint
    // work the baseline's burst of writes leaves behind.
    let (db_limit, minimal) = db_baseline().await;

    eprintln!("loadtest: a ~10 MB declaration");
    let large = docgen::large_declaration(999, 10 * 1024 * 1024, 1);
    let before = server.rss_kb("VmHWM");
    let large_status = target
        .client
        .post(&target.url)
        .bearer_auth(&target.token)
        .header("content-type", "application/xml")
        .body(large.clone())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    let after = server.rss_kb("VmHWM");

    let (prefilled, prefilled_closed) = if opts.prefill > 0 {
        eprintln!("loadtest: storing {} dossiers", opts.prefill);
        let (items, body) = templates
            .iter()
            .find(|(n, _)| *n == 10)
            .unwrap_or(&templates[0]);
        let p = prefill::run(&pool, opts.prefill, body, *items as i32, docgen::DECLARANT).await?;
        eprintln!(
            "loadtest: intake, closed loop with {} stored dossiers",
            p.dossiers
        );
        // The same warm-up as the empty database had, so both loops start alike.
        closed_loop(warm_up).await;
        let full = closed_loop(opts.duration).await;
        let full_db = db_baseline().await;
        (Some(p), Some((full, full_db)))
    } else {
        (None, None)
    };
    server.stop();

    eprintln!("loadtest: baseline, validation");
    let docs: Vec<Vec<u8>> = templates.iter().map(|(_, b)| b.clone()).collect();
    let duration = opts.duration;
    let v =
        tokio::task::spawn_blocking(move || baseline::validation(docs, cores, duration)).await?;

    let report = Report {
        cores,
        connections: opts.connections,
        seconds_per_phase: opts.duration.as_secs_f64(),
        mix: templates.iter().map(|(n, b)| (*n, b.len())).collect(),
        intake_over_db_limit: closed.per_second / db_limit.max(1e-9),
        intake_over_minimal_transaction: closed.per_second / minimal.max(1e-9),
        validation_over_libxml2: v.pipeline_per_second / v.libxml2_per_second.max(1e-9),
        prefilled_dossiers: prefilled.as_ref().map_or(0, |p| p.dossiers),
        prefill_seconds: prefilled.as_ref().map_or(0.0, |p| p.seconds),
        intake_prefilled_over_empty: prefilled_closed
            .as_ref()
            .map(|(full, _)| full.per_second / closed.per_second.max(1e-9)),
        db_commit_limit_prefilled_per_second: prefilled_closed.as_ref().map(|(_, db)| db.0),
        minimal_durable_transactions_prefilled_per_second: prefilled_closed
            .as_ref()
            .map(|(_, db)| db.1),
        intake_closed_loop_prefilled: prefilled_closed.map(|(full, _)| full),
        intake_closed_loop: closed,
        intake_open_loop_half_rate: open,
        db_commit_limit_per_second: db_limit,
        minimal_durable_transactions_per_second: minimal,
        libxml2_alone_per_second: v.libxml2_per_second,
        nsw_validation_per_second: v.pipeline_per_second,
        server_peak_rss_mb: peak_rss as f64 / 1024.0,
        large_document_bytes: large.len(),
        large_document_status: large_status,
        large_document_rss_growth_mb: after.saturating_sub(before) as f64 / 1024.0,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    drop(pool);
    // Leave the machine as we found it: a cluster this run started is stopped.
    if let Some(c) = cluster.filter(|c| c.started_here()) {
        c.stop()?;
    }
    Ok(())
}

fn print_report(r: &Report) {
    let line = |name: &str, o: &Outcome| {
        println!(
            "{name:<44} {:>8.0}/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {} {:?}",
            o.per_second, o.p50_ms, o.p90_ms, o.p99_ms, o.max_ms, o.errors, o.statuses
        )
    };
    println!(
        "nsw loadtest: {} cores, {} connections, {:.0} s per phase; mix (items, bytes): {:?}",
        r.cores, r.connections, r.seconds_per_phase, r.mix
    );
    line("intake, closed loop", &r.intake_closed_loop);
    line(
        "intake, open loop at half that rate",
        &r.intake_open_loop_half_rate,
    );
    println!(
        "{:<44} {:>8.0}/s",
        "baseline: database commits (same rows)", r.db_commit_limit_per_second
    );
    println!(
        "{:<44} {:>8.0}/s",
        "baseline: minimal durable transaction", r.minimal_durable_transactions_per_second
    );
    println!(
        "{:<44} {:>8.0}/s",
        "baseline: libxml2 alone (parse + XSD)", r.libxml2_alone_per_second
    );
    println!(
        "{:<44} {:>8.0}/s",
        "nsw validation (checks, tree, XSD, rules)", r.nsw_validation_per_second
    );
    if let Some(full) = &r.intake_closed_loop_prefilled {
        line(
            &format!(
                "intake, closed loop, {} stored dossiers",
                r.prefilled_dossiers
            ),
            full,
        );
        println!(
            "{:<44} {:>8.0} s",
            "  (time to store them, seal and analyze)", r.prefill_seconds
        );
        if let Some(db) = r.db_commit_limit_prefilled_per_second {
            println!(
                "{:<44} {:>8.0}/s",
                "baseline: database commits, full database", db
            );
        }
        if let Some(m) = r.minimal_durable_transactions_prefilled_per_second {
            println!(
                "{:<44} {:>8.0}/s",
                "baseline: minimal durable transaction, full", m
            );
        }
    }
    println!(
        "ratio intake / database commit limit:        {:.2}",
        r.intake_over_db_limit
    );
    println!(
        "ratio intake / minimal durable transaction:  {:.2}",
        r.intake_over_minimal_transaction
    );
    if let Some(ratio) = r.intake_prefilled_over_empty {
        println!(
            "ratio intake with {} stored / empty: {ratio:.2}",
            r.prefilled_dossiers
        );
    }
    if let (Some(full), Some(db)) = (
        &r.intake_closed_loop_prefilled,
        r.db_commit_limit_prefilled_per_second,
    ) {
        println!(
            "ratio intake / database commit limit, full: {:.2}",
            full.per_second / db.max(1e-9)
        );
    }
    if let (Some(full), Some(m)) = (
        &r.intake_closed_loop_prefilled,
        r.minimal_durable_transactions_prefilled_per_second,
    ) {
        println!(
            "ratio intake / minimal transaction, full:   {:.2}",
            full.per_second / m.max(1e-9)
        );
    }
    println!(
        "ratio nsw validation / libxml2 alone:        {:.2}",
        r.validation_over_libxml2
    );
    println!(
        "server peak RSS under load:                  {:.0} MB",
        r.server_peak_rss_mb
    );
    println!(
        "large document: {:.1} MB → HTTP {}, server peak RSS grew {:.0} MB ({:.1}× the document)",
        r.large_document_bytes as f64 / 1048576.0,
        r.large_document_status,
        r.large_document_rss_growth_mb,
        r.large_document_rss_growth_mb / (r.large_document_bytes as f64 / 1048576.0)
    );
}

async fn fresh_embedded_database(
    data_dir: &std::path::Path,
) -> Result<(String, EmbeddedCluster), BoxError> {
    let root = data_dir.join("postgres");
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root)).await??;
    let (client, conn) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    let task = tokio::spawn(conn);
    // Separate statements: a multi-statement string runs as one transaction, which DROP refuses.
    client
        .batch_execute("DROP DATABASE IF EXISTS nsw_loadtest WITH (FORCE)")
        .await?;
    client.batch_execute("CREATE DATABASE nsw_loadtest").await?;
    drop(client);
    let _ = task.await;
    Ok((cluster.connection_string("nsw_loadtest"), cluster))
}

/// The service under test, as its own process (so its memory can be read apart from ours).
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(database_url: &str) -> Result<Server, BoxError> {
        Server::start_with(database_url, &[])
    }

    /// With more `NSW_*` settings (later ones win over the defaults set here).
    fn start_with(database_url: &str, env: &[(&str, String)]) -> Result<Server, BoxError> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .env("NSW_DATABASE_URL", database_url)
            .env("NSW_LISTEN", "127.0.0.1:0")
            .env("NSW_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            // One party sends every request of the load: the per-party write throttle would
            // measure itself, not the window.
            .env("NSW_THROTTLE__WRITES_PER_SECOND", "0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let line = lines.next().ok_or("the server exited before serving")??;
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, address })
    }

    fn rss_kb(&self, field: &str) -> u64 {
        read_status_kb(self.child.id(), field)
    }

    fn sample_rss(&self) -> RssSampler {
        let pid = self.child.id();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let mut rx = rx;
            loop {
                peak = peak.max(read_status_kb(pid, "VmRSS"));
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            peak
        });
        RssSampler { stop: tx, task }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    async fn stop(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}

fn read_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
