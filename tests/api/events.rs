//! The events feed (paging, visibility, long polling) and signed webhook delivery to a real
//! HTTP receiver that is down, failing, then up.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use nsw::domain::party::Role;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde_json::{json, Value};

use crate::helpers::{fixture, with_reference, TestApp, TestAppBuilder};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";
const GARMENTS: &str = "valid/declaration/23-export-garments-to-sg-sea.xml";
const GARMENTS_EXPORTER: &str = "3701234565";

/// An app whose retries and polls are fast enough for a test to watch them happen.
fn fast() -> TestAppBuilder {
    TestApp::builder().settings(|s| {
        s.webhooks.retry_base_ms = 50;
        s.webhooks.retry_max_ms = 400;
        s.events.poll_interval_ms = 200;
    })
}

/// Submits the fixture under a fresh declarant reference; returns the declaration id.
async fn declare(app: &TestApp, token: &str, file: &str, lrn: &str) -> String {
    let resp = app.submit(token, with_reference(&fixture(file), lrn)).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["id"].as_str().unwrap().to_owned()
}

async fn feed(app: &TestApp, token: &str, query: &str) -> Value {
    let resp = app.get(token, &format!("/api/v1/events?{query}")).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()
}

fn ids(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

/// Waits (bounded) until `check` holds; the bound only turns a hang into a failure.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// Customs sees every event: waiting for `n` there means all of them are in the feed.
async fn wait_for_feed(app: &TestApp, customs: &str, n: usize) -> Vec<i64> {
    for _ in 0..1200 {
        let seen = ids(&feed(app, customs, "limit=500").await);
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {n} events in the feed");
}

#[tokio::test]
async fn feed_returns_only_own_events_paged_with_after_and_limit() {
    let app = TestApp::builder().without_jobs().spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let b = app.add_party(Role::Enterprise, GARMENTS_EXPORTER).await;
    let customs = app.add_party(Role::Customs, "vn-customs-hq").await;
    let ministry = app
        .add_party_with_agency(Role::Ministry, "moit-officer", "MOIT")
        .await;
    let partner = app.add_party(Role::Partner, "sg-window").await;

    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(declare(&app, &a, LAPTOPS, &format!("SV-FEED-{i}")).await);
    }
    let theirs = declare(&app, &b, GARMENTS, "GARMENTS-FEED-1").await;
    app.run_events_once().await;
    let all = ids(&feed(&app, &customs, "limit=500").await);
    assert_eq!(all.len(), 4);

    // A's events, two at a time.
    let p1 = feed(&app, &a, "limit=2").await;
    assert_eq!(ids(&p1).len(), 2);
    let first = &p1["events"][0];
    assert_eq!(first["kind"], "declaration");
    assert_eq!(first["status"], "accepted");
    assert_eq!(first["actor"], LAPTOPS_IMPORTER);
    assert_eq!(first["dossier_id"], mine[0].as_str());
    assert!(first["reference"].as_str().unwrap().starts_with("VN-DEC-"));
    assert!(first["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(p1["next_after"], p1["events"][1]["id"]);

    let p2 = feed(&app, &a, &format!("after={}&limit=2", p1["next_after"])).await;
    assert_eq!(ids(&p2).len(), 1);
    assert_eq!(p2["events"][0]["dossier_id"], mine[2].as_str());
    let p3 = feed(&app, &a, &format!("after={}", p2["next_after"])).await;
    assert!(ids(&p3).is_empty());
    assert_eq!(
        p3["next_after"], p2["next_after"],
        "an empty page keeps the cursor"
    );

    let dossiers: Vec<&str> = p1["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["events"].as_array().unwrap())
        .map(|e| e["dossier_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        dossiers,
        mine.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // B sees only its own, and cannot use A's event ids as a cursor.
    let pb = feed(&app, &b, "").await;
    assert_eq!(ids(&pb).len(), 1);
    assert_eq!(pb["events"][0]["dossier_id"], theirs.as_str());
    let probe = app
        .get(&b, &format!("/api/v1/events?after={}", ids(&p1)[0]))
        .await;
    assert_eq!(probe.status, 400);
    assert_eq!(probe.json()["code"], "AFTER_INVALID");

    // Customs sees everything, in the feed's order; a ministry only what was routed to its
    // agency (no declaration is), a partner window nothing.
    let pc = feed(&app, &customs, "").await;
    assert_eq!(ids(&pc), all);
    assert!(ids(&feed(&app, &ministry, "").await).is_empty());
    assert!(ids(&feed(&app, &partner, "").await).is_empty());

    // Bad requests say what is wrong.
    for (query, code) in [
        ("limit=0", "LIMIT_INVALID"),
        ("limit=501", "LIMIT_INVALID"),
        ("wait=31", "WAIT_INVALID"),
        ("after=abc", "QUERY_INVALID"),
        ("after=999999", "AFTER_INVALID"),
    ] {
        let r = app.get(&a, &format!("/api/v1/events?{query}")).await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.json()["code"], code, "{query}");
    }
    let anon = app.get_anonymously("/api/v1/events").await;
    assert_eq!(anon.status, 401);
}

#[tokio::test]
async fn an_event_committed_late_with_a_smaller_id_is_not_skipped() {
    let app = TestApp::spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let first = declare(&app, &a, LAPTOPS, "SV-GAP-0").await;
    let page = feed(&app, &a, "wait=30").await;
    let cursor = page["next_after"].as_i64().unwrap();

    // A status change whose transaction takes its event id now but commits later.
    let mut slow = app.pool.get().await.unwrap();
    let tx = slow.transaction().await.unwrap();
    let dossier = uuid::Uuid::parse_str(&first).unwrap();
    let late_id: i64 = tx
        .query_one(
            "INSERT INTO dossier_events (dossier_id, status, at, actor, note)
             VALUES ($1, 'under_inspection', now(), 'vn-customs-hq', 'late commit')
             RETURNING id",
            &[&dossier],
        )
        .await
        .unwrap()
        .get(0);

    // Meanwhile a later event commits, and the client moves past it.
    let second = declare(&app, &a, LAPTOPS, "SV-GAP-1").await;
    let page = feed(&app, &a, &format!("after={cursor}&wait=30")).await;
    assert_eq!(ids(&page).len(), 1);
    assert_eq!(page["events"][0]["dossier_id"], second.as_str());
    let moved_past = page["next_after"].as_i64().unwrap();
    assert!(late_id < moved_past, "the late event has the smaller id");

    tx.commit().await.unwrap();
    let page = feed(&app, &a, &format!("after={moved_past}&wait=30")).await;
    assert_eq!(
        ids(&page),
        vec![late_id],
        "the late event must still be delivered"
    );
    assert_eq!(page["events"][0]["status"], "under_inspection");
    assert_eq!(page["events"][0]["dossier_id"], first.as_str());

    // The whole feed, read again from the start, has every event exactly once.
    let all = feed(&app, &a, "").await;
    let mut got = ids(&all);
    assert_eq!(got.len(), 3);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn long_poll_wakes_when_a_declaration_is_submitted_during_the_wait() {
    // Two instances on one database. The waiting request is on `app`, which neither seals nor
    // polls for ten minutes; declarations go to `intake`, whose sequencer seals them. Only the
    // database notification can end the wait early.
    let intake = fast().spawn().await;
    let app = fast()
        .database(&intake.database_url)
        .settings(|s| {
            s.events.seal_interval_ms = 600_000;
            s.events.poll_interval_ms = 600_000;
            s.events.max_wait_secs = 600;
        })
        .spawn()
        .await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let b = app.add_party(Role::Enterprise, GARMENTS_EXPORTER).await;

    let first = declare(&intake, &a, LAPTOPS, "SV-POLL-0").await;
    let page = feed(&app, &a, "wait=30").await;
    assert_eq!(page["events"][0]["dossier_id"], first.as_str());
    let cursor = page["next_after"].clone();

    let waiting = {
        let (address, token) = (app.address.clone(), a.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!("{address}/api/v1/events?after={cursor}&wait=600"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    // Another enterprise's event must not end A's wait with an empty answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    declare(&intake, &b, GARMENTS, "GARMENTS-POLL-1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the request should still be waiting"
    );
    let second = declare(&intake, &a, LAPTOPS, "SV-POLL-1").await;

    // The bound only turns "never woken" into a failure instead of a ten-minute hang.
    let woke = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the long poll was not woken by the notification")
        .unwrap();
    let events = woke["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{woke}");
    assert_eq!(events[0]["dossier_id"], second.as_str());
    assert_eq!(woke["next_after"], events[0]["id"]);
}

/// A webhook receiver: answers every POST with the current `status` and records what came.
#[derive(Default)]
struct Receiver {
    status: AtomicU16,
    got: Mutex<Vec<Received>>,
    /// Requests that arrived at a path listed in `hold` wait until it is emptied.
    hold: Mutex<Vec<String>>,
    arrived: Mutex<Vec<String>>,
}

#[derive(Clone, Debug)]
struct Received {
    path: String,
    event_id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Receiver {
    fn on(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Event ids acknowledged at `path`, in arrival order, duplicates removed (the receiver
    /// dedupes by event id as docs/events.md asks).
    fn delivered(&self, path: &str) -> Vec<i64> {
        let mut out: Vec<i64> = Vec::new();
        for r in self.on(path) {
            let id: i64 = r.event_id.parse().unwrap();
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, rx: web::Data<Receiver>) -> HttpResponse {
    rx.arrived.lock().unwrap().push(req.path().to_owned());
    while rx.hold.lock().unwrap().iter().any(|p| p == req.path()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = rx.status.load(Ordering::SeqCst);
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if (200..300).contains(&status) {
        rx.got.lock().unwrap().push(Received {
            path: req.path().to_owned(),
            event_id: h("x-nsw-event-id"),
            timestamp: h("x-nsw-timestamp"),
            signature: h("x-nsw-signature"),
            body: body.to_vec(),
        });
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// Serves `rx` on `listener`; returns a handle to stop it.
fn serve(listener: TcpListener, rx: Arc<Receiver>) -> actix_web::dev::ServerHandle {
    let data = web::Data::from(rx);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(receive))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

fn up_receiver() -> (Arc<Receiver>, u16) {
    let rx = Arc::new(Receiver::default());
    rx.status.store(200, Ordering::SeqCst);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener, rx.clone());
    (rx, port)
}

async fn register(app: &TestApp, token: &str, url: &str) -> Value {
    let resp = app
        .post_json(token, "/api/v1/webhooks", json!({ "url": url }))
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let body = resp.json();
    assert_eq!(
        resp.header("location"),
        Some(format!("/api/v1/webhooks/{}", body["id"].as_str().unwrap()).as_str())
    );
    body
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let key = PKey::hmac(secret.as_bytes()).unwrap();
    let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
    signer.update(message).unwrap();
    hex::encode(signer.sign_to_vec().unwrap())
}

async fn deliveries(app: &TestApp, token: &str, webhook: &str) -> Vec<Value> {
    let r = app
        .get(token, &format!("/api/v1/webhooks/{webhook}/deliveries"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["items"].as_array().unwrap().clone()
}

/// The delivery log once it records `n` acknowledgements: the receiver sees a POST a moment
/// before the worker records the answer.
async fn acknowledged(app: &TestApp, token: &str, webhook: &str, n: usize) -> Vec<Value> {
    for _ in 0..1200 {
        let log = deliveries(app, token, webhook).await;
        if log.iter().filter(|d| d["delivered"] == true).count() >= n {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {n} acknowledged deliveries logged");
}

#[tokio::test]
async fn webhook_delivers_events_signed_with_an_hmac_the_receiver_can_verify() {
    let app = fast().without_jobs().spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let (rx, port) = up_receiver();
    let hook = register(&app, &a, &format!("http://127.0.0.1:{port}/nsw")).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32);

    // The secret is shown once: the list does not carry it.
    let list = app.get(&a, "/api/v1/webhooks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], hook_id.as_str());
    assert!(list["items"][0].get("secret").is_none());
    assert!(
        !String::from_utf8_lossy(&app.get(&a, "/api/v1/webhooks").await.body).contains(&secret)
    );

    let dossier = declare(&app, &a, LAPTOPS, "SV-HOOK-1").await;
    assert_eq!(app.run_events_once().await, 1);
    assert_eq!(app.run_webhooks_once().await, 1);
    assert_eq!(rx.delivered("/nsw").len(), 1, "the receiver got the event");
    let got = rx.on("/nsw").remove(0);
    let expected = format!(
        "sha256={}",
        hmac_hex(
            &secret,
            &[got.timestamp.as_bytes(), b".", &got.body[..]].concat()
        )
    );
    assert_eq!(got.signature, expected);
    let wrong = format!("sha256={}", hmac_hex("whsec_other", &got.body));
    assert_ne!(got.signature, wrong);
    let event: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(event["id"].to_string(), got.event_id);
    assert_eq!(event["dossier_id"], dossier.as_str());
    assert_eq!(event["status"], "accepted");
    assert_eq!(event["kind"], "declaration");

    // The feed shows the same event; the delivery log records the acknowledgement.
    let page = feed(&app, &a, "").await;
    assert_eq!(page["events"][0], event);
    let log = acknowledged(&app, &a, &hook_id, 1).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["delivered"], true);
    assert_eq!(log[0]["http_status"], 200);
    assert_eq!(log[0]["event_id"], event["id"]);
}

#[tokio::test]
async fn webhook_delivery_survives_the_receiver_being_down_for_a_while() {
    let app = fast().spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let customs = app.add_party(Role::Customs, "vn-customs-hq").await;
    // A port with nothing listening: connections are refused.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let hook = register(&app, &a, &format!("http://127.0.0.1:{port}/nsw")).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();

    let mut dossiers = Vec::new();
    for i in 0..3 {
        dossiers.push(declare(&app, &a, LAPTOPS, &format!("SV-DOWN-{i}")).await);
    }
    eventually("several refused attempts", || async {
        let log = deliveries(&app, &a, &hook_id).await;
        log.iter().filter(|d| d["http_status"].is_null()).count() >= 3
    })
    .await;

    // Up, but failing.
    let rx = Arc::new(Receiver::default());
    rx.status.store(503, Ordering::SeqCst);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = serve(listener, rx.clone());
    eventually("several 503 answers", || async {
        let log = deliveries(&app, &a, &hook_id).await;
        log.iter().filter(|d| d["http_status"] == 503).count() >= 2
    })
    .await;
    assert!(rx.delivered("/nsw").is_empty());

    // Healthy again; more events arrive meanwhile.
    rx.status.store(200, Ordering::SeqCst);
    for i in 3..5 {
        dossiers.push(declare(&app, &a, LAPTOPS, &format!("SV-DOWN-{i}")).await);
    }
    eventually("all five delivered", || async {
        rx.delivered("/nsw").len() >= 5
    })
    .await;

    // Every event, in the feed's order, none lost, none invented.
    let expected = wait_for_feed(&app, &customs, 5).await;
    assert_eq!(rx.delivered("/nsw"), expected);
    let bodies: Vec<String> = rx
        .on("/nsw")
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["dossier_id"].as_str().unwrap().to_owned()
        })
        .fold(Vec::new(), |mut acc, d| {
            if !acc.contains(&d) {
                acc.push(d);
            }
            acc
        });
    assert_eq!(bodies, dossiers);

    // The log tells the story: failures first (the first event only: nothing is skipped),
    // then one acknowledgement per event.
    let log = acknowledged(&app, &a, &hook_id, 5).await;
    let first_event = expected[0];
    for d in log.iter().filter(|d| d["delivered"] == false) {
        assert_eq!(d["event_id"], first_event, "a later event was tried first");
    }
    let ok: Vec<i64> = log
        .iter()
        .rev()
        .filter(|d| d["delivered"] == true)
        .map(|d| d["event_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ok, expected);
    let list = app.get(&a, "/api/v1/webhooks").await.json();
    assert_eq!(list["items"][0]["failures"], 0);
    assert_eq!(list["items"][0]["last_delivered_event"], expected[4]);
    server.stop(false).await;
}

#[tokio::test]
async fn retry_now_ends_a_long_backoff_once_the_receiver_is_repaired() {
    // Backoff so long that only the retry request can bring the next attempt within the test.
    let app = fast()
        .settings(|s| {
            s.webhooks.retry_base_ms = 3_600_000;
            s.webhooks.retry_max_ms = 3_600_000;
        })
        .spawn()
        .await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let b = app.add_party(Role::Enterprise, GARMENTS_EXPORTER).await;
    let rx = Arc::new(Receiver::default());
    rx.status.store(500, Ordering::SeqCst);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve(listener, rx.clone());
    let hook = register(&app, &a, &format!("http://127.0.0.1:{port}/nsw")).await;
    let hook_id = hook["id"].as_str().unwrap();

    declare(&app, &a, LAPTOPS, "SV-RETRY-1").await;
    eventually("a failed attempt", || async {
        !deliveries(&app, &a, hook_id).await.is_empty()
    })
    .await;
    let list = app.get(&a, "/api/v1/webhooks").await.json();
    assert_eq!(list["items"][0]["failures"], 1);
    rx.status.store(200, Ordering::SeqCst);

    // Another enterprise cannot hurry someone else's subscription.
    let path = format!("/api/v1/webhooks/{hook_id}/retry");
    let r = app
        .request(reqwest::Method::POST, &path, Some(&b), &[], None)
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .request(reqwest::Method::POST, &path, Some(&a), &[], None)
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    eventually("delivered after the retry request", || async {
        rx.delivered("/nsw").len() == 1
    })
    .await;
    let log = acknowledged(&app, &a, hook_id, 1).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["delivered"], true);
    assert_eq!(log[0]["attempt"], 2);
    assert_eq!(log[1]["http_status"], 500);
    server.stop(false).await;
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_each_event_once() {
    let one = fast().spawn().await;
    let two = fast().database(&one.database_url).spawn().await;
    let a = one.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let (rx, port) = up_receiver();
    let hook = register(&one, &a, &format!("http://127.0.0.1:{port}/nsw")).await;
    let hook_id = hook["id"].as_str().unwrap();

    let mut dossiers = Vec::new();
    for i in 0..8 {
        // Alternate the instances that accept the declarations.
        let app = if i % 2 == 0 { &one } else { &two };
        dossiers.push(declare(app, &a, LAPTOPS, &format!("SV-TWO-{i}")).await);
    }
    eventually("all eight delivered", || async {
        rx.delivered("/nsw").len() == 8
    })
    .await;
    // Both instances run a worker; the claims keep them off each other's subscription.
    let got = rx.on("/nsw");
    assert_eq!(got.len(), 8, "an event was delivered twice");
    let order: Vec<String> = got
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["dossier_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(order, dossiers);
    let log = acknowledged(&two, &a, hook_id, 8).await;
    assert_eq!(log.iter().filter(|d| d["delivered"] == true).count(), 8);
    // Both feeds agree.
    assert_eq!(
        ids(&feed(&one, &a, "").await),
        ids(&feed(&two, &a, "").await)
    );
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_other_subscriptions() {
    // No timeout within the test: only concurrent delivery lets B through while A hangs.
    let app = fast()
        .settings(|s| s.webhooks.timeout_ms = 600_000)
        .spawn()
        .await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let b = app.add_party(Role::Enterprise, GARMENTS_EXPORTER).await;
    let (rx, port) = up_receiver();
    rx.hold.lock().unwrap().push("/slow".into());
    register(&app, &a, &format!("http://127.0.0.1:{port}/slow")).await;
    register(&app, &b, &format!("http://127.0.0.1:{port}/fast")).await;

    declare(&app, &a, LAPTOPS, "SV-SLOW-1").await;
    eventually("the slow receiver is hanging", || async {
        rx.arrived.lock().unwrap().iter().any(|p| p == "/slow")
    })
    .await;
    declare(&app, &b, GARMENTS, "GARMENTS-FAST-1").await;
    eventually("the fast receiver got its event", || async {
        rx.delivered("/fast").len() == 1
    })
    .await;
    assert!(rx.delivered("/slow").is_empty());
    rx.hold.lock().unwrap().clear();
    eventually("the slow receiver got its event too", || async {
        rx.delivered("/slow").len() == 1
    })
    .await;
}

#[tokio::test]
async fn deleting_a_subscription_stops_its_deliveries() {
    let app = fast().spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let (rx, port) = up_receiver();
    let gone = register(&app, &a, &format!("http://127.0.0.1:{port}/gone")).await;
    let kept = register(&app, &a, &format!("http://127.0.0.1:{port}/kept")).await;
    let gone_id = gone["id"].as_str().unwrap();

    declare(&app, &a, LAPTOPS, "SV-DEL-1").await;
    eventually("both receive the first event", || async {
        rx.delivered("/gone").len() == 1 && rx.delivered("/kept").len() == 1
    })
    .await;

    let del = app.delete(&a, &format!("/api/v1/webhooks/{gone_id}")).await;
    assert_eq!(del.status, 204);
    let again = app.delete(&a, &format!("/api/v1/webhooks/{gone_id}")).await;
    assert_eq!(again.status, 404);

    declare(&app, &a, LAPTOPS, "SV-DEL-2").await;
    declare(&app, &a, LAPTOPS, "SV-DEL-3").await;
    // The remaining subscription is the witness that delivery went on.
    eventually(
        "the kept subscription receives the later events",
        || async { rx.delivered("/kept").len() == 3 },
    )
    .await;
    assert_eq!(rx.delivered("/gone").len(), 1);
    let list = app.get(&a, "/api/v1/webhooks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], kept["id"]);
    // Its log stays readable.
    assert_eq!(acknowledged(&app, &a, gone_id, 1).await.len(), 1);
    let audit: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook.deleted' AND subject = $1",
            &[&gone_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 1);
}

#[tokio::test]
async fn another_enterprise_never_receives_your_events() {
    let app = fast().spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let b = app.add_party(Role::Enterprise, GARMENTS_EXPORTER).await;
    let (rx, port) = up_receiver();
    let ha = register(&app, &a, &format!("http://127.0.0.1:{port}/a")).await;
    let hb = register(&app, &b, &format!("http://127.0.0.1:{port}/b")).await;

    let a1 = declare(&app, &a, LAPTOPS, "SV-ISO-1").await;
    let b1 = declare(&app, &b, GARMENTS, "GARMENTS-ISO-1").await;
    let a2 = declare(&app, &a, LAPTOPS, "SV-ISO-2").await;
    eventually("each receives its own", || async {
        rx.delivered("/a").len() == 2 && rx.delivered("/b").len() == 1
    })
    .await;
    let dossiers = |path: &str| -> Vec<String> {
        rx.on(path)
            .iter()
            .map(|r| {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                v["dossier_id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(dossiers("/a"), vec![a1, a2]);
    assert_eq!(dossiers("/b"), vec![b1]);

    // B can neither see, read the log of, nor delete A's subscription.
    let ha_id = ha["id"].as_str().unwrap();
    let lb = app.get(&b, "/api/v1/webhooks").await.json();
    assert_eq!(lb["items"].as_array().unwrap().len(), 1);
    assert_eq!(lb["items"][0]["id"], hb["id"]);
    let r = app
        .get(&b, &format!("/api/v1/webhooks/{ha_id}/deliveries"))
        .await;
    assert_eq!(r.status, 404);
    let r = app.delete(&b, &format!("/api/v1/webhooks/{ha_id}")).await;
    assert_eq!(r.status, 404);
    // An administrator reads any delivery log.
    let admin = app.add_party(Role::Admin, "nsw-operator").await;
    assert_eq!(acknowledged(&app, &admin, ha_id, 2).await.len(), 2);
}

/// (cursor, scan mark, head of the feed) of subscription `id`.
async fn marks(app: &TestApp, id: &str) -> (i64, i64, i64) {
    let db = app.pool.get().await.unwrap();
    let r = db
        .query_one(
            "SELECT cursor_pos, scanned_pos, (SELECT coalesce(max(pos), 0) FROM event_feed)
               FROM webhooks WHERE id::text = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn skip(app: &TestApp, lag: i64, step: i64) -> u64 {
    let db = app.pool.get().await.unwrap();
    nsw::store::webhooks::skip_others_events(&db, lag, step)
        .await
        .unwrap()
}

/// A quiet party's subscription moves its scan mark past other parties' events in bounded
/// steps (so a claim does not read them all again at every poll), never past one of its own
/// party's, and still gets that event, once. A new subscription shows no last delivered event,
/// though the head of the feed it starts from is another party's.
#[tokio::test]
async fn a_quiet_subscription_skips_other_parties_events_but_never_its_own() {
    let app = fast().without_jobs().spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let b = app.add_party(Role::Enterprise, GARMENTS_EXPORTER).await;
    declare(&app, &b, GARMENTS, "GARMENTS-SKIP-0").await;
    assert_eq!(app.run_events_once().await, 1);
    let (rx, port) = up_receiver();
    let hook = register(&app, &a, &format!("http://127.0.0.1:{port}/a")).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(
        hook["last_delivered_event"],
        Value::Null,
        "the head is B's event"
    );
    let (start, _, _) = marks(&app, &id).await;
    assert!(start > 0);

    for i in 1..=5 {
        declare(&app, &b, GARMENTS, &format!("GARMENTS-SKIP-{i}")).await;
    }
    assert_eq!(app.run_events_once().await, 5);
    // Two positions per step, up to the head, then nothing more to skip.
    let mut seen = Vec::new();
    for _ in 0..3 {
        assert_eq!(skip(&app, 1, 2).await, 1);
        seen.push(marks(&app, &id).await.1);
    }
    assert_eq!(seen, vec![start + 2, start + 4, start + 5]);
    assert_eq!(skip(&app, 1, 2).await, 0);
    // Not that far behind the head: left alone.
    declare(&app, &b, GARMENTS, "GARMENTS-SKIP-6").await;
    assert_eq!(app.run_events_once().await, 1);
    assert_eq!(skip(&app, 2, 100).await, 0);
    assert_eq!(marks(&app, &id).await.1, start + 5);

    // An event of A's between others' stops the mark before it.
    let mine = declare(&app, &a, LAPTOPS, "SV-SKIP-1").await;
    declare(&app, &b, GARMENTS, "GARMENTS-SKIP-7").await;
    declare(&app, &b, GARMENTS, "GARMENTS-SKIP-8").await;
    assert_eq!(app.run_events_once().await, 3);
    assert_eq!(skip(&app, 1, 100).await, 0);
    assert_eq!(marks(&app, &id).await.1, start + 5);
    assert_eq!(app.run_webhooks_once().await, 1);
    let got = rx.delivered("/a");
    assert_eq!(got.len(), 1);
    let event: Value = serde_json::from_slice(&rx.on("/a")[0].body).unwrap();
    assert_eq!(event["dossier_id"], mine.as_str());
    let (cursor, _, head) = marks(&app, &id).await;
    assert_eq!(cursor, start + 7, "the cursor is A's event");

    // Past it, only B's: skipped, and nothing more to deliver.
    assert_eq!(skip(&app, 1, 100).await, 1);
    assert_eq!(marks(&app, &id).await, (cursor, head, head));
    assert_eq!(app.run_webhooks_once().await, 0);
    assert_eq!(rx.delivered("/a").len(), 1);
    let list = app.get(&a, "/api/v1/webhooks").await.json();
    assert_eq!(list["items"][0]["last_delivered_event"], event["id"]);
}

#[tokio::test]
async fn webhook_registration_refuses_bad_urls_and_other_roles() {
    let app = TestApp::spawn().await;
    let a = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let customs = app.add_party(Role::Customs, "vn-customs-hq").await;
    let before = app.count("webhooks").await;
    for (body, code) in [
        (
            json!({"url": "http://hooks.example.vn/nsw"}),
            "WEBHOOK_URL_INVALID",
        ),
        (
            json!({"url": "ftp://hooks.example.vn/nsw"}),
            "WEBHOOK_URL_INVALID",
        ),
        (
            json!({"url": "https://u:p@hooks.example.vn/"}),
            "WEBHOOK_URL_INVALID",
        ),
        (json!({"url": "nowhere"}), "WEBHOOK_URL_INVALID"),
        (json!({"uri": "https://hooks.example.vn/"}), "BODY_INVALID"),
    ] {
        let r = app.post_json(&a, "/api/v1/webhooks", body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["code"], code, "{body}");
    }
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            Some(&customs),
            &[("content-type", "application/json")],
            Some(
                json!({"url": "https://hooks.example.vn/"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "ROLE_FORBIDDEN");
    let r = app.get_anonymously("/api/v1/webhooks").await;
    assert_eq!(r.status, 401);
    assert_eq!(app.count("webhooks").await, before);

    // https is accepted anywhere; the registration is audited.
    let ok = register(&app, &a, "https://hooks.example.vn/nsw").await;
    assert_eq!(ok["url"], "https://hooks.example.vn/nsw");
    assert_eq!(app.count("webhooks").await, before + 1);
    let audit: i64 = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook.created'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 1);
}
