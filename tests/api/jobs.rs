//! Background jobs: started under one supervisor, stopped before the database connections
//! close, and runnable one pass at a time from tests.

use std::time::Duration;

use nsw::app::Application;
use nsw::domain::party::Role;
use tokio_postgres::NoTls;

use crate::exchange::Plan;
use crate::helpers::{fixture, fresh_database, with_reference, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";

/// Sessions on the probe's database other than the probe itself.
async fn sessions(probe: &tokio_postgres::Client) -> Vec<(String, String)> {
    probe
        .query(
            "SELECT coalesce(application_name, ''), coalesce(state, '')
               FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Waits (bounded) until nobody but the probe is connected: a backend leaves
/// `pg_stat_activity` a moment after its client has gone.
async fn until_alone(probe: &tokio_postgres::Client) -> Vec<(String, String)> {
    let mut left = sessions(probe).await;
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = sessions(probe).await;
    }
    left
}

#[tokio::test]
async fn a_stopped_app_leaves_no_job_running_and_no_connection_open() {
    let url = fresh_database().await;
    let (probe, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    // An enterprise to submit as, added before the app starts, on a pool closed at once.
    let token = {
        let pool = nsw::db::pool(&url, 1).unwrap();
        let mut client = pool.get().await.unwrap();
        nsw::store::parties::add(&mut client, LAPTOPS_IMPORTER, Role::Enterprise, "x", None)
            .await
            .unwrap()
    };
    assert_eq!(until_alone(&probe).await, vec![], "connected before start");

    // A window that exchanges with partners runs every kind of job.
    let plan = Plan::new(&["VN", "SG"]);
    let settings = plan.settings("VN", &url);
    let database = nsw::app::connect(&settings).await.unwrap();
    let app = Application::with_database(settings, database)
        .await
        .unwrap();
    let live = app.live_jobs();
    let mut running = live.running();
    running.sort();
    assert_eq!(
        running,
        [
            "audit.sealer",
            "events.listener",
            "events.sequencer",
            "outbox",
            "outbox.reaper",
            "payments",
            "tallies",
            "webhooks"
        ]
    );
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let stopped = tokio::spawn(app.run_and_drain());

    // Some work through every layer: intake, events, audit.
    let r = reqwest::Client::new()
        .post(format!("{address}/api/v1/declarations"))
        .bearer_auth(&token)
        .header("content-type", "application/xml")
        .body(with_reference(&fixture(LAPTOPS), "JOBS-STOP-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(!sessions(&probe).await.is_empty(), "the app is connected");

    handle.stop(true).await;
    let (result, drained) = stopped.await.unwrap();
    result.unwrap();
    assert!(drained.aborted.is_empty(), "{drained:?}");
    assert!(drained.panicked.is_empty(), "{drained:?}");
    assert_eq!(drained.joined.len(), 8, "{drained:?}");
    assert_eq!(live.running(), Vec::<&str>::new());

    // The service pool's connections ended before run_and_drain returned; the database sees
    // every session of the app go, and none come back.
    assert_eq!(until_alone(&probe).await, vec![], "still connected");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sessions(&probe).await, vec![], "a job reconnected");
}

#[tokio::test]
async fn without_jobs_nothing_moves_until_a_pass_is_run() {
    let app: TestApp = TestApp::builder().without_jobs().spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let r = app
        .submit(&token, with_reference(&fixture(LAPTOPS), "JOBS-ONCE-1"))
        .await;
    assert_eq!(r.status, 201);
    let unsealed = |table: &'static str| {
        let pool = app.pool.clone();
        async move {
            let client = pool.get().await.unwrap();
            let sql = match table {
                "audit" => "SELECT count(*) FROM audit_log WHERE hash IS NULL",
                _ => "SELECT count(*) FROM event_pending",
            };
            client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
        }
    };
    assert!(unsealed("audit").await > 0);
    assert!(app.run_audit_once().await > 0);
    assert_eq!(unsealed("audit").await, 0);

    assert!(unsealed("events").await > 0);
    assert!(app.run_events_once().await > 0);
    assert_eq!(unsealed("events").await, 0);

    // No exchange configured: the outbox passes have nothing to do.
    assert_eq!(app.run_outbox_once().await, 0);
    assert_eq!(app.run_reaper_once().await, 0);
    assert_eq!(app.run_webhooks_once().await, 0);
}
