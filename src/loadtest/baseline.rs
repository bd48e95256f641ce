//! The machine's own limits, measured in the same run as the service: how many durable
//! declaration transactions PostgreSQL commits without HTTP or validation in front, how many
//! minimal durable transactions (the same document bytes plus one row) it commits, and how many
//! documents libxml2 alone parses and validates.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use crate::domain::declaration::Declaration;
use crate::domain::party::{Principal, Role};
use crate::store::declarations::{self, Submission};
use crate::validation::{Valid, Validator, Verdict};
use crate::xml::{schema, DocKind};

/// Concurrent transactions writing exactly what an accepted declaration writes (document bytes,
/// dossier, items, event, audit), through the same store code the service uses.
pub async fn db_commits(
    pool: &Pool,
    docs: &[(Vec<u8>, Declaration)],
    party: &str,
    connections: usize,
    duration: Duration,
) -> f64 {
    let principal = Arc::new(Principal {
        party_id: party.to_owned(),
        role: Role::Enterprise,
        agency: None,
    });
    let routing = {
        let Ok(client) = pool.get().await else {
            return 0.0;
        };
        match crate::store::routing::RoutingCache::default()
            .current(&client)
            .await
        {
            Ok(t) => t,
            Err(_) => return 0.0,
        }
    };
    let docs = Arc::new(docs.to_vec());
    // A declarant's reference identifies one declaration, also across runs on one database
    // (the baseline runs again on the prefilled database, and `--database-url` may name one
    // loaded before): a reference taken by an earlier run would be refused, not counted.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000_000);
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..connections {
        let (pool, docs, count, principal, routing) = (
            pool.clone(),
            docs.clone(),
            count.clone(),
            principal.clone(),
            routing.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let Ok(mut client) = pool.get().await else {
                return;
            };
            let mut i = w;
            while Instant::now() < deadline {
                let (bytes, decl) = &docs[i % docs.len()];
                i += 1;
                // Each submission its own reference.
                let mut decl = decl.clone();
                decl.reference = format!("BL-{run}-{w}-{i}-{}", decl.reference);
                let sha256: [u8; 32] = Sha256::digest(bytes).into();
                let r = declarations::submit(
                    &mut client,
                    Submission {
                        principal: &principal,
                        body: bytes,
                        sha256,
                        declaration: &decl,
                        idempotency_key: None,
                        country: "VN",
                        routing: &routing,
                        origin_checked_from: &[],
                        today: chrono::Utc::now().date_naive(),
                    },
                )
                .await;
                if r.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The minimal durable transaction next to which intake is also measured: per transaction, the
/// same document bytes (with their digest, in a table compressed like `documents`) plus one
/// event row, in one statement committed on its own — one round trip and one WAL flush each,
/// on `connections` connections. The scratch tables are created here and dropped afterwards
/// (they are no part of the schema). Returns transactions per second, 0 when the tables could
/// not be made.
pub async fn minimal_commits(
    pool: &Pool,
    docs: &[Vec<u8>],
    connections: usize,
    duration: Duration,
) -> f64 {
    const CREATE: &str = "
        DROP TABLE IF EXISTS loadtest_minimal_events, loadtest_minimal_documents;
        CREATE TABLE loadtest_minimal_documents (
            id uuid PRIMARY KEY, sha256 bytea NOT NULL, body bytea NOT NULL);
        ALTER TABLE loadtest_minimal_documents ALTER COLUMN body SET COMPRESSION lz4;
        CREATE TABLE loadtest_minimal_events (
            id bigserial PRIMARY KEY, document_id uuid NOT NULL, at timestamptz NOT NULL);";
    const DROP: &str = "DROP TABLE IF EXISTS loadtest_minimal_events, loadtest_minimal_documents";
    {
        let Ok(client) = pool.get().await else {
            return 0.0;
        };
        if client.batch_execute(CREATE).await.is_err() {
            return 0.0;
        }
    }
    let docs: Arc<Vec<(Vec<u8>, Vec<u8>)>> = Arc::new(
        docs.iter()
            .map(|b| (b.clone(), Sha256::digest(b).to_vec()))
            .collect(),
    );
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..connections {
        let (pool, docs, count) = (pool.clone(), docs.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(client) = pool.get().await else {
                return;
            };
            let Ok(stmt) = client
                .prepare(
                    "WITH d AS (INSERT INTO loadtest_minimal_documents (id, sha256, body)
                                VALUES ($1, $2, $3) RETURNING id)
                     INSERT INTO loadtest_minimal_events (document_id, at) SELECT id, now() FROM d",
                )
                .await
            else {
                return;
            };
            let mut i = w;
            while Instant::now() < deadline {
                let (body, sha) = &docs[i % docs.len()];
                i += 1;
                let id = uuid::Uuid::now_v7();
                if client.execute(&stmt, &[&id, sha, body]).await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let per_second = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    if let Ok(client) = pool.get().await {
        let _ = client.batch_execute(DROP).await;
    }
    per_second
}

/// Documents per second over all cores, for a validation function.
fn per_second(
    threads: usize,
    duration: Duration,
    docs: Arc<Vec<Vec<u8>>>,
    f: fn(&[u8]) -> bool,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, count, docs) = (stop.clone(), count.clone(), docs.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    if f(&docs[i % docs.len()]) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn libxml2_alone(doc: &[u8]) -> bool {
    schema::libxml2_only(DocKind::Declaration, doc).unwrap_or(false)
}

fn full_pipeline(doc: &[u8]) -> bool {
    thread_local!(static V: Validator = Validator::new(crate::xml::Limits::default(), "VN"));
    V.with(|v| {
        matches!(
            v.validate(doc, Some(DocKind::Declaration)),
            Verdict::Valid(Valid::Declaration(_))
        )
    })
}

pub struct ValidationFigures {
    pub libxml2_per_second: f64,
    pub pipeline_per_second: f64,
}

pub fn validation(docs: Vec<Vec<u8>>, threads: usize, duration: Duration) -> ValidationFigures {
    let docs = Arc::new(docs);
    ValidationFigures {
        libxml2_per_second: per_second(threads, duration, docs.clone(), libxml2_alone),
        pipeline_per_second: per_second(threads, duration, docs, full_pipeline),
    }
}
