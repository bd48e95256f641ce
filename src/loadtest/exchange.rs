//! `nsw loadtest --exchange`: signed messages per second from one window (VN) to a partner
//! window (SG), end to end. Each window is its own `nsw serve` process (VN optionally several,
//! sharing one database) with its own keys and database in the embedded cluster. This process
//! only enqueues, in one transaction per message as a customs clearance does. A message
//! counts when VN's outbox row is `delivered`: claimed by VN's worker, signed, posted,
//! verified, deduplicated and stored by SG, and SG's signed receipt verified and stored by VN.
//! The same run then makes SG fail a share of requests with 503 and checks that every message
//! is still stored exactly once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use serde::Serialize;
use sha2::Digest;
use uuid::Uuid;

use super::{BoxError, Server};
use crate::config::Settings;
use crate::db::embedded::EmbeddedCluster;
use crate::domain::party::Role;
use crate::exchange::outbox::{enqueue, NewMessage};
use crate::exchange::{keys, receipt, signature};
use crate::store::inbound::{self as inbound_store, NewInbound};
use crate::store::parties;

const ACDD: &str = include_str!("../../fixtures/valid/acdd/vn-th-rice-export.xml");
const ACDD_REFERENCE: &str = "VNACDD-2026-000418";
/// Longest a phase waits for its deliveries; what is not delivered by then counts as missing.
const PHASE_LIMIT: Duration = Duration::from_secs(120);
/// Concurrent enqueuing transactions (as many declarations being cleared at once).
const ENQUEUERS: usize = 8;

pub struct Options {
    /// Messages per phase.
    pub messages: usize,
    /// Length of each baseline.
    pub duration: Duration,
    /// Share of SG's answers that fail with 503 in the second phase.
    pub fail_ratio: f64,
    /// Outbox worker: messages claimed (and sent concurrently) per poll.
    pub batch: i64,
    /// VN `nsw serve` processes sharing VN's database, each with its outbox worker.
    pub senders: usize,
    /// Exchanged messages stored in both windows after the first two phases, before a third
    /// (clean) phase measured against that history; 0 for none.
    pub prefill: i64,
    pub data_dir: PathBuf,
    pub json: bool,
}

#[derive(Serialize)]
struct Phase {
    name: String,
    fail_ratio: f64,
    messages: usize,
    delivered: i64,
    undelivered: i64,
    /// First enqueue to last delivery, from the database's own timestamps.
    seconds: f64,
    per_second: f64,
    /// How fast the messages went into the outbox (first to last enqueue): when this is
    /// above `per_second`, a backlog forms and the latencies below are mostly queueing.
    enqueued_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    attempts_per_message: f64,
    max_attempts: i32,
    /// Rows in SG's inbound_messages for this phase.
    receiver_rows: i64,
    /// Rows at SG beyond one per message id (the database's unique key makes this 0).
    receiver_duplicates: i64,
    /// Message ids stored at SG that VN never sent.
    receiver_unknown: i64,
    /// Messages VN holds as delivered (receipt verified) that SG did not store.
    delivered_not_stored: i64,
    /// Every message delivered within the phase limit, each stored exactly once at SG.
    exactly_once: bool,
    /// CPU time per delivered message in each process group, over the phase.
    cpu_ms_per_message: Cpu,
}

/// CPU time (user + system) of the three parties to an exchange.
#[derive(Serialize, Default, Clone, Copy)]
struct Cpu {
    /// This process: the enqueuing transactions (the clearances that cause the messages).
    enqueue: f64,
    /// The VN `nsw serve` processes: outbox worker, audit sealer, events.
    vn: f64,
    /// The SG `nsw serve` process.
    sg: f64,
    /// Every PostgreSQL process of the cluster (both windows' databases).
    postgres: f64,
}

impl Cpu {
    fn minus(self, o: Cpu) -> Cpu {
        Cpu {
            enqueue: self.enqueue - o.enqueue,
            vn: self.vn - o.vn,
            sg: self.sg - o.sg,
            postgres: self.postgres - o.postgres,
        }
    }

    fn per(self, n: i64) -> Cpu {
        let n = n.max(1) as f64;
        Cpu {
            enqueue: self.enqueue / n,
            vn: self.vn / n,
            sg: self.sg / n,
            postgres: self.postgres / n,
        }
    }
}

/// Where the processes are, to read their CPU time from /proc.
struct Pids {
    vn: Vec<u32>,
    sg: u32,
    postmaster: Option<u32>,
}

/// utime + stime of a process, in milliseconds (0 when it is gone).
fn cpu_ms(pid: &str) -> (f64, Option<u32>) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0.0, None);
    };
    // The command name may hold spaces; the fields after it do not.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (0.0, None);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // After ")": state(0) ppid(1) … utime(11) stime(12).
    let ppid = f.get(1).and_then(|v| v.parse().ok());
    ((num(11) + num(12)) * 1000.0 / ticks, ppid)
}

fn cpu_now(p: &Pids) -> Cpu {
    let mut postgres = 0.0;
    if let Some(pm) = p.postmaster {
        postgres += cpu_ms(&pm.to_string()).0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            if let (ms, Some(ppid)) = cpu_ms(pid) {
                if ppid == pm {
                    postgres += ms;
                }
            }
        }
    }
    Cpu {
        enqueue: cpu_ms("self").0,
        vn: p.vn.iter().map(|v| cpu_ms(&v.to_string()).0).sum(),
        sg: cpu_ms(&p.sg.to_string()).0,
        postgres,
    }
}

#[derive(Serialize)]
struct Report {
    cores: usize,
    envelope_bytes: usize,
    batch: i64,
    senders: usize,
    phases: Vec<Phase>,
    /// Sign envelope + verify it + sign receipt + verify it, on every core.
    baseline_cms_per_second: f64,
    /// One core: CMS signatures made per second, and CMS signatures verified per second.
    cms_sign_per_second_one_core: f64,
    cms_verify_per_second_one_core: f64,
    /// One core: bare ECDSA P-256 verifications of the envelope's SHA-256 (no CMS, no
    /// certificate), the floor under a CMS verification.
    ecdsa_verify_per_second_one_core: f64,
    /// SG's inbound insert transaction alone (row + receipt + audit entry), 16 connections.
    baseline_receiver_insert_per_second: f64,
    /// VN's database work alone: enqueue, claim, signature update, settle.
    baseline_sender_db_per_second: f64,
    exchange_over_cms: f64,
    exchange_over_receiver_insert: f64,
    exchange_over_sender_db: f64,
    /// Messages stored in each window by `--prefill` before the third phase.
    prefilled_messages: i64,
    /// Time to store them, seal both audit chains and analyze.
    prefill_seconds: f64,
    /// Third phase (prefilled history) over the first (empty databases), when prefilled.
    prefilled_over_empty: Option<f64>,
}

fn acdd(reference: &str) -> Vec<u8> {
    ACDD.replacen(ACDD_REFERENCE, reference, 1).into_bytes()
}

async fn recreate_database(cluster: &EmbeddedCluster, name: &str) -> Result<String, BoxError> {
    let (client, conn) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    let task = tokio::spawn(conn);
    // Names are our own constants, not input.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(cluster.connection_string(name))
}

fn partner_table(dir: &Path, peer: &str, port: u16) -> Result<PathBuf, BoxError> {
    let path = dir.join(format!("partners-of-{}.toml", peer.to_ascii_lowercase()));
    std::fs::write(
        &path,
        format!(
            "[[partner]]\ncountry = \"{peer}\"\nendpoint = \"http://127.0.0.1:{port}/exchange/v1/messages\"\nca_cert = \"{peer}/{}\"\ndocuments = [\"ACDD\"]\nprofile = \"asw\"\n",
            keys::CA_CERT
        ),
    )?;
    Ok(path)
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn run(opts: Options) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = opts.data_dir.join("loadtest-exchange");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for c in ["VN", "SG"] {
        keys::init(&keys::KeyDir::at(&dir.join(c)), c, &[])?;
    }
    let root = opts.data_dir.join("postgres");
    let root_dir = root.clone();
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root)).await??;
    let result = scenario(&opts, &cluster, &root_dir, &dir, cores).await;
    if cluster.started_here() {
        let _ = cluster.stop();
    }
    result
}

async fn scenario(
    opts: &Options,
    cluster: &EmbeddedCluster,
    cluster_root: &Path,
    dir: &Path,
    cores: usize,
) -> Result<(), BoxError> {
    let vn_identity = Arc::new(keys::load(&keys::KeyDir::at(&dir.join("VN")), "VN")?);
    let vn_url = recreate_database(cluster, "nsw_xbench_vn").await?;
    let sg_url = recreate_database(cluster, "nsw_xbench_sg").await?;
    let senders = opts.senders.max(1);
    let batch = opts.batch.clamp(1, crate::config::MAX_EXCHANGE_BATCH);
    let vn_pool = crate::db::pool(&vn_url, ENQUEUERS + 4)?;
    let sg_pool = crate::db::pool(&sg_url, 20)?;
    for pool in [&vn_pool, &sg_pool] {
        let mut client = pool.get().await?;
        crate::db::migrate::run(&mut client).await?;
    }
    let sg_admin = parties::add(
        &mut sg_pool.get().await?,
        "SG-OPERATOR",
        Role::Admin,
        "SG window operator",
        None,
    )
    .await?;

    let sg_port = free_port()?;
    let vn_partners = partner_table(dir, "SG", sg_port)?;
    // SG never sends here; VN's endpoint only has to be a valid loopback address.
    let sg_partners = partner_table(dir, "VN", free_port()?)?;
    let mut sg = Server::start_with(
        &sg_url,
        &[
            ("NSW_LISTEN", format!("127.0.0.1:{sg_port}")),
            ("NSW_COUNTRY", "SG".into()),
            (
                "NSW_EXCHANGE_KEYS_DIR",
                dir.join("SG").display().to_string(),
            ),
            ("NSW_EXCHANGE_PARTNERS", sg_partners.display().to_string()),
        ],
    )?;

    // VN's windows: `nsw serve` processes sharing VN's database, as instances behind one
    // address would; each runs an outbox worker (and the audit sealer, events, webhooks).
    let mut vns = Vec::new();
    for _ in 0..senders {
        vns.push(Server::start_with(
            &vn_url,
            &[
                ("NSW_COUNTRY", "VN".into()),
                (
                    "NSW_EXCHANGE_KEYS_DIR",
                    dir.join("VN").display().to_string(),
                ),
                ("NSW_EXCHANGE_PARTNERS", vn_partners.display().to_string()),
                ("NSW_EXCHANGE_BATCH", batch.to_string()),
                // Short retry delays: at the default 2 s base, the failing phase would mostly
                // measure the backoff.
                ("NSW_EXCHANGE_RETRY_BASE_MS", "50".into()),
                ("NSW_EXCHANGE_RETRY_MAX_MS", "1000".into()),
            ],
        )?);
    }
    // The enqueuing transactions run here, validated with VN's settings as the server would.
    let settings = Arc::new(Settings {
        database_url: Some(vn_url.clone().into()),
        country: "VN".into(),
        ..Settings::default()
    });
    let envelope_bytes = acdd("VNACDD-XB-0000000000").len();

    eprintln!(
        "loadtest --exchange: {cores} cores, {} messages per phase, batch {batch}, {senders} VN process(es), SG at {}",
        opts.messages, sg.address
    );
    let pids = Pids {
        vn: vns.iter().map(|v| v.child.id()).collect(),
        sg: sg.child.id(),
        postmaster: std::fs::read_to_string(cluster_root.join("pgdata/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok())),
    };
    let http = reqwest::Client::new();
    let set_fault = |ratio: f64| {
        let fault = if ratio > 0.0 {
            serde_json::json!({ "mode": "fail_ratio", "ratio": ratio })
        } else {
            serde_json::json!({ "mode": "none" })
        };
        http.put(format!("{}/api/v1/admin/exchange/fault", sg.address))
            .bearer_auth(&sg_admin)
            .json(&serde_json::json!({ "fault": fault }))
            .send()
    };
    // The prefilled history ends before the first phase, as real history would.
    let history_ends_ms = chrono::Utc::now().timestamp_millis() - 1_000;
    let mut phases = Vec::new();
    let mut prefilled = None;
    let pools = (&vn_pool, &sg_pool);
    for (name, ratio, after_prefill) in [
        ("clean", 0.0, false),
        ("fail", opts.fail_ratio, false),
        ("prefilled", 0.0, true),
    ] {
        if after_prefill {
            if opts.prefill <= 0 {
                break;
            }
            let template = delivered_message(&vn_pool).await?;
            eprintln!(
                "loadtest --exchange: storing {} exchanged messages in each window",
                opts.prefill
            );
            prefilled = Some(
                super::exchange_prefill::run(
                    &vn_pool,
                    &sg_pool,
                    template,
                    opts.prefill,
                    history_ends_ms,
                )
                .await?,
            );
        }
        let r = set_fault(ratio).await?;
        if !r.status().is_success() {
            return Err(format!("SG refused the fault mode: HTTP {}", r.status()).into());
        }
        eprintln!(
            "loadtest --exchange: phase '{name}' (SG fails {ratio:.0$} of requests)",
            2
        );
        phases.push(phase(name, ratio, opts, &settings, &vn_identity, pools, &pids).await?);
    }
    for mut v in vns {
        v.stop();
    }
    sg.stop();

    eprintln!("loadtest --exchange: baseline, CMS sign and verify");
    let identities = (
        keys::load(&keys::KeyDir::at(&dir.join("VN")), "VN")?,
        keys::load(&keys::KeyDir::at(&dir.join("SG")), "SG")?,
    );
    let duration = opts.duration;
    let (cms, sign1, verify1, ecdsa1) =
        tokio::task::spawn_blocking(move || cms_baseline(identities, cores, duration)).await??;
    eprintln!("loadtest --exchange: baseline, SG inbound insert");
    let insert = receiver_insert_baseline(&sg_pool, opts.duration).await?;
    eprintln!("loadtest --exchange: baseline, VN outbox database work");
    let sender_db =
        sender_db_baseline(&vn_pool, &settings, &vn_identity, batch, opts.duration).await?;

    let clean = phases[0].per_second;
    let full = phases.get(2).map(|p| p.per_second / clean.max(1e-9));
    let mut report = Report {
        cores,
        envelope_bytes,
        batch,
        senders,
        phases,
        baseline_cms_per_second: cms,
        cms_sign_per_second_one_core: sign1,
        cms_verify_per_second_one_core: verify1,
        ecdsa_verify_per_second_one_core: ecdsa1,
        baseline_receiver_insert_per_second: insert,
        baseline_sender_db_per_second: sender_db,
        exchange_over_cms: clean / cms.max(1e-9),
        exchange_over_receiver_insert: clean / insert.max(1e-9),
        exchange_over_sender_db: clean / sender_db.max(1e-9),
        prefilled_messages: prefilled.as_ref().map_or(0, |p| p.messages),
        prefill_seconds: prefilled.as_ref().map_or(0.0, |p| p.seconds),
        prefilled_over_empty: None,
    };
    report.prefilled_over_empty = full;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.phases.iter().all(|p| p.exactly_once) {
        Ok(())
    } else {
        Err("some messages were not delivered or not stored exactly once (see the table)".into())
    }
}

/// One phase: enqueues `opts.messages` ACDDs as VN's clearances would (built, validated and
/// signed with VN's key in the enqueuing transaction), then waits for them to settle.
async fn phase(
    name: &str,
    ratio: f64,
    opts: &Options,
    settings: &Arc<Settings>,
    identity: &Arc<keys::Identity>,
    (vn, sg): (&Pool, &Pool),
    pids: &Pids,
) -> Result<Phase, BoxError> {
    let started = Instant::now();
    let cpu_before = cpu_now(pids);
    let prefix = format!("VNACDD-XB-{name}-");
    // Both windows' ids are UUIDv7: bounding by the phase's start keeps the queries below on
    // the primary keys, whatever history the tables hold.
    let since =
        crate::store::time_ids::uuid7_floor(chrono::Utc::now() - chrono::Duration::seconds(1));
    let next = Arc::new(AtomicUsize::new(0));
    let enqueuers: Vec<_> = (0..ENQUEUERS)
        .map(|_| {
            let (next, pool, settings, prefix) =
                (next.clone(), vn.clone(), settings.clone(), prefix.clone());
            let identity = identity.clone();
            let n = opts.messages;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), BoxError>(());
                    }
                    let reference = format!("{prefix}{i:07}");
                    let mut client = pool.get().await?;
                    let tx = client.transaction().await?;
                    enqueue(
                        &tx,
                        &settings,
                        &identity,
                        NewMessage {
                            cause: crate::exchange::outbox::Cause::Operator(uuid::Uuid::now_v7()),
                            receiver: "SG".into(),
                            document_type: "ACDD".into(),
                            function: "submit".into(),
                            reference: reference.clone(),
                            previous_reference: None,
                            conversation_id: None,
                            payload: acdd(&reference),
                            actor: "loadtest".into(),
                        },
                    )
                    .await?;
                    tx.commit().await?;
                }
            })
        })
        .collect();
    for e in enqueuers {
        e.await??;
    }
    let like = format!("{prefix}%");
    let client = vn.get().await?;
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status IN ('delivered', 'rejected', 'dead_letter'))
                   FROM outbox WHERE id >= $2 AND reference LIKE $1",
                &[&like, &since],
            )
            .await?;
        let settled: i64 = row.get(0);
        if settled as usize >= opts.messages || started.elapsed() > PHASE_LIMIT {
            break;
        }
        // The figures come from the rows' own timestamps: polling often would only load the database.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let cpu = cpu_now(pids).minus(cpu_before);
    let r = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'delivered'),
                    count(*) FILTER (WHERE status <> 'delivered'),
                    COALESCE(EXTRACT(EPOCH FROM max(delivered_at) - min(created_at))::float8, 0),
                    COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY
                        EXTRACT(EPOCH FROM delivered_at - created_at)::float8), 0) * 1000,
                    COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY
                        EXTRACT(EPOCH FROM delivered_at - created_at)::float8), 0) * 1000,
                    COALESCE(max(EXTRACT(EPOCH FROM delivered_at - created_at)::float8), 0) * 1000,
                    COALESCE(avg(attempts)::float8, 0), COALESCE(max(attempts), 0),
                    COALESCE(EXTRACT(EPOCH FROM max(created_at) - min(created_at))::float8, 0)
               FROM outbox WHERE id >= $2 AND reference LIKE $1",
            &[&like, &since],
        )
        .await?;
    let delivered: i64 = r.get(0);
    let seconds: f64 = r.get(2);
    let delivered_ids: std::collections::HashSet<Uuid> = client
        .query(
            "SELECT message_id FROM outbox
              WHERE id >= $2 AND reference LIKE $1 AND status = 'delivered'",
            &[&like, &since],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sent: std::collections::HashSet<Uuid> = client
        .query(
            "SELECT message_id FROM outbox WHERE id >= $2 AND reference LIKE $1",
            &[&like, &since],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sgc = sg.get().await?;
    let stored: Vec<Uuid> = sgc
        .query(
            "SELECT message_id FROM inbound_messages
              WHERE id >= $2 AND sender = 'VN' AND reference LIKE $1",
            &[&like, &since],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let distinct: std::collections::HashSet<Uuid> = stored.iter().copied().collect();
    let duplicates = (stored.len() - distinct.len()) as i64;
    let foreign = distinct.difference(&sent).count() as i64;
    let lost = delivered_ids.difference(&distinct).count() as i64;
    Ok(Phase {
        name: name.to_owned(),
        fail_ratio: ratio,
        messages: opts.messages,
        delivered,
        undelivered: r.get(1),
        seconds,
        per_second: delivered as f64 / seconds.max(1e-9),
        enqueued_per_second: opts.messages as f64 / r.get::<_, f64>(8).max(1e-9),
        latency_p50_ms: r.get(3),
        latency_p99_ms: r.get(4),
        latency_max_ms: r.get(5),
        attempts_per_message: r.get(6),
        max_attempts: r.get(7),
        receiver_rows: stored.len() as i64,
        receiver_duplicates: duplicates,
        receiver_unknown: foreign,
        delivered_not_stored: lost,
        exactly_once: delivered as usize == opts.messages
            && duplicates == 0
            && foreign == 0
            && lost == 0,
        cpu_ms_per_message: cpu.per(delivered),
    })
}

/// A message VN delivered in this run, whose bytes the prefilled history copies.
async fn delivered_message(vn: &Pool) -> Result<Uuid, BoxError> {
    let client = vn.get().await?;
    let row = client
        .query_opt(
            "SELECT message_id FROM outbox WHERE status = 'delivered' ORDER BY id LIMIT 1",
            &[],
        )
        .await?
        .ok_or("no message was delivered before the prefill")?;
    Ok(row.get(0))
}

/// The cryptography of one exchanged message, with nothing else: VN signs the envelope, SG
/// verifies it, SG signs the receipt, VN verifies that.
fn cms_baseline(
    (vn, sg): (keys::Identity, keys::Identity),
    cores: usize,
    duration: Duration,
) -> Result<(f64, f64, f64, f64), BoxError> {
    let envelope = acdd("VNACDD-XB-BASELINE");
    let one_core = |f: &dyn Fn() -> Result<(), signature::SignatureError>| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < duration / 4 {
            f()?;
            n += 1;
        }
        Ok::<f64, signature::SignatureError>(n as f64 / start.elapsed().as_secs_f64())
    };
    let sig = signature::sign(&vn, &envelope)?;
    let sign1 = one_core(&|| signature::sign(&vn, &envelope).map(drop))?;
    let verify1 = one_core(&|| signature::verify(&sig, &envelope, &vn.ca, "VN").map(drop))?;
    let ecdsa1 = {
        use openssl::hash::MessageDigest;
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &vn.key)?;
        let raw = signer.sign_oneshot_to_vec(&envelope)?;
        let public = vn.cert.public_key()?;
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < duration / 4 {
            let mut v = openssl::sign::Verifier::new(MessageDigest::sha256(), &public)?;
            if !v.verify_oneshot(&raw, &envelope)? {
                return Err("ECDSA verification failed".into());
            }
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let receipt = receipt::build(&receipt::Receipt {
        message_id: Uuid::now_v7(),
        received_message_id: Uuid::now_v7(),
        sender: "SG".into(),
        receiver: "VN".into(),
        digest_hex: "00".repeat(32),
        accepted: true,
        reasons: Vec::new(),
        received_at: crate::exchange::envelope::now_rfc3339(),
    });
    let start = Instant::now();
    let counts: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        let one = || -> Result<(), signature::SignatureError> {
                            let sig = signature::sign(&vn, &envelope)?;
                            signature::verify(&sig, &envelope, &vn.ca, "VN")?;
                            let rsig = signature::sign(&sg, &receipt)?;
                            signature::verify(&rsig, &receipt, &sg.ca, "SG")?;
                            Ok(())
                        };
                        one().map_err(|e| e.to_string())?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok((
        total as f64 / start.elapsed().as_secs_f64(),
        sign1,
        verify1,
        ecdsa1,
    ))
}

/// SG's storing transaction alone, with the same bytes a delivery stores.
async fn receiver_insert_baseline(pool: &Pool, duration: Duration) -> Result<f64, BoxError> {
    let envelope = Arc::new(acdd("VNACDD-XB-BASELINE"));
    let digest: [u8; 32] = sha2::Sha256::digest(&*envelope).into();
    let start = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (pool, envelope) = (pool.clone(), envelope.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut client = pool.get().await?;
                while start.elapsed() < duration {
                    inbound_store::insert(
                        &mut client,
                        &NewInbound {
                            sender: "VN",
                            message_id: Uuid::now_v7(),
                            conversation_id: Uuid::now_v7(),
                            document_type: "ACDD",
                            function: "submit",
                            reference: "VNACDD-XB-BASELINE",
                            previous_reference: None,
                            envelope: &envelope,
                            sha256: &digest,
                            signature: &[0; 600],
                            signer_subject: "C=VN, O=National Single Window, CN=VN signing",
                            receipt: &[0; 700],
                            receipt_signature: &[0; 600],
                        },
                    )
                    .await?;
                    n += 1;
                }
                Ok::<u64, BoxError>(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// VN's own database work per message, without network or cryptography: the enqueue
/// transaction (with schema validation of the payload), the claim, the signature update and
/// the settling transaction, in batches like the worker's.
async fn sender_db_baseline(
    pool: &Pool,
    settings: &Arc<Settings>,
    identity: &Arc<keys::Identity>,
    batch: i64,
    duration: Duration,
) -> Result<f64, BoxError> {
    use crate::store::outbox::{self as store, Outcome};
    let start = Instant::now();
    let seq = Arc::new(AtomicUsize::new(0));
    let batch = batch.max(1) as usize;
    let worker = Uuid::now_v7();
    let tasks: Vec<_> = (0..ENQUEUERS)
        .map(|_| {
            let (pool, settings, seq) = (pool.clone(), settings.clone(), seq.clone());
            let identity = identity.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut client = pool.get().await?;
                while start.elapsed() < duration {
                    let mut ids = Vec::with_capacity(batch / ENQUEUERS + 1);
                    for _ in 0..(batch / ENQUEUERS).max(1) {
                        let reference =
                            format!("VNACDD-XB-DB-{:07}", seq.fetch_add(1, Ordering::Relaxed));
                        let tx = client.transaction().await?;
                        let e = enqueue(
                            &tx,
                            &settings,
                            &identity,
                            NewMessage {
                                cause: crate::exchange::outbox::Cause::Operator(
                                    uuid::Uuid::now_v7(),
                                ),
                                receiver: "TH".into(),
                                document_type: "ACDD".into(),
                                function: "submit".into(),
                                reference: reference.clone(),
                                previous_reference: None,
                                conversation_id: None,
                                payload: acdd(&reference),
                                actor: "loadtest".into(),
                            },
                        )
                        .await?;
                        tx.commit().await?;
                        ids.push(e.message_id);
                    }
                    // As the worker does: the rows come signed from the enqueue; one claim
                    // and one settling transaction per batch.
                    let claimed = store::claim(&client, worker, 60.0, ids.len() as i64).await?;
                    let outcomes: Vec<(Uuid, Outcome)> = claimed
                        .iter()
                        .map(|c| {
                            let receipt = Outcome::Receipt {
                                accepted: true,
                                receipt: &[0; 700],
                                signature: &[0; 600],
                            };
                            (c.id, receipt)
                        })
                        .collect();
                    n += store::settle(&mut client, worker, &outcomes).await?.len() as u64;
                }
                Ok::<u64, BoxError>(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn print_report(r: &Report) {
    println!(
        "nsw loadtest --exchange: {} cores, VN → SG, ACDD envelopes of {} bytes, batch {}, {} VN process(es)",
        r.cores, r.envelope_bytes, r.batch, r.senders
    );
    println!(
        "{:<24} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "phase",
        "msgs",
        "msg/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "attempts",
        "SG rows",
        "exactly once"
    );
    for p in &r.phases {
        println!(
            "{:<24} {:>7} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>9.2} {:>9} {:>12}",
            format!("{} (SG fails {:.0}%)", p.name, p.fail_ratio * 100.0),
            p.delivered,
            p.per_second,
            p.latency_p50_ms,
            p.latency_p99_ms,
            p.latency_max_ms,
            p.attempts_per_message,
            p.receiver_rows,
            if p.exactly_once { "yes" } else { "NO" }
        );
    }
    for p in &r.phases {
        println!(
            "  {}: enqueued at {:.0}/s; SG rows beyond one per message {}, unknown to VN {}; delivered but not stored {}",
            p.name, p.enqueued_per_second, p.receiver_duplicates, p.receiver_unknown, p.delivered_not_stored
        );
    }
    println!("CPU ms per delivered message (enqueue / VN serve / SG serve / PostgreSQL):");
    for p in &r.phases {
        let c = p.cpu_ms_per_message;
        println!(
            "  {:<20} {:>6.2} / {:>6.2} / {:>6.2} / {:>6.2}  = {:.2} ms",
            p.name,
            c.enqueue,
            c.vn,
            c.sg,
            c.postgres,
            c.enqueue + c.vn + c.sg + c.postgres
        );
    }
    println!(
        "{:<44} {:>8.0}/s",
        "baseline: CMS sign+verify ×2, all cores", r.baseline_cms_per_second
    );
    println!(
        "{:<44} {:>8.0}/s sign, {:.0}/s verify (bare ECDSA verify {:.0}/s)",
        "  one core, CMS:",
        r.cms_sign_per_second_one_core,
        r.cms_verify_per_second_one_core,
        r.ecdsa_verify_per_second_one_core
    );
    println!(
        "{:<44} {:>8.0}/s",
        "baseline: SG inbound insert alone", r.baseline_receiver_insert_per_second
    );
    println!(
        "{:<44} {:>8.0}/s",
        "baseline: VN outbox database work alone", r.baseline_sender_db_per_second
    );
    println!(
        "ratio exchange / CMS alone:                   {:.2}",
        r.exchange_over_cms
    );
    println!(
        "ratio exchange / SG inbound insert alone:     {:.2}",
        r.exchange_over_receiver_insert
    );
    println!(
        "ratio exchange / VN outbox database alone:    {:.2}",
        r.exchange_over_sender_db
    );
    if let Some(ratio) = r.prefilled_over_empty {
        println!(
            "prefilled: {} exchanged messages stored in each window in {:.0} s (stored, sealed, analyzed)",
            r.prefilled_messages, r.prefill_seconds
        );
        println!(
            "ratio exchange with {} stored / empty:   {:.2}",
            r.prefilled_messages, ratio
        );
    }
}
