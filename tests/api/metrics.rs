//! `/metrics` (Prometheus text format: who may read it, what it counts, that promtool accepts
//! it) and the health probes (`/health/live`, `/health/ready`, `/health`).
//!
//! The metrics recorder is one per process and the tests of this binary run concurrently, so
//! counters are compared before and after this test's own requests (they must have grown by at
//! least what it did), never against fixed totals. The gauges computed at scrape time belong to
//! the scraped app alone and are compared exactly.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use nsw::domain::party::Role;

use crate::helpers::{fixture, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";
const HS_UNKNOWN: &str = "invalid/declaration/hs-unknown-6-digit.xml";

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a text exposition (the writer escapes only `\`, `"` and newlines in label
/// values, which our values do not contain).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name.to_owned(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the series `name` whose labels include `labels`, summed over the others
/// (0 when there is none).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn has(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> bool {
    samples.iter().any(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

async fn scrape(app: &TestApp, token: &str) -> (String, Vec<Sample>) {
    let r = app.get(token, "/metrics").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("content-type")
    );
    let text = String::from_utf8(r.body).expect("UTF-8");
    let samples = parse(&text);
    (text, samples)
}

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool(text: &str) -> (bool, String) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is needed to check the /metrics output ({e}): install the Debian package \
             `prometheus` (apt-get install prometheus), or run the tests through `./dev test`, \
             which installs it"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// A PEM certificate for an agency, valid for `days`.
fn agency_certificate(days: i64) -> String {
    use nsw::exchange::keys;
    let (ca, ca_key) = keys::make_ca("VN", 3650).unwrap();
    let (cert, _) = keys::issue(
        &ca,
        &ca_key,
        "VN",
        "Plant Protection Department signing",
        &keys::Validity::days_from_now(days),
    )
    .unwrap();
    String::from_utf8(cert.to_pem().unwrap()).unwrap()
}

#[tokio::test]
async fn metrics_count_requests_and_intake_outcomes_and_promtool_accepts_them() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "OPS-ADMIN").await;
    let trader = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let (_, before) = scrape(&app, &admin).await;

    let accepted = app.submit(&trader, fixture(LAPTOPS)).await;
    assert_eq!(accepted.status, 201);
    let refused = app.submit(&trader, fixture(HS_UNKNOWN)).await;
    assert_eq!(refused.status, 422);
    assert!(refused
        .error_codes()
        .iter()
        .any(|(code, _)| code == "HS_UNKNOWN"));
    // An agency certificate expiring in 20 days, for the expiry gauge.
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/agencies/MARD-PPD/certificates",
            Some(&admin),
            &[("content-type", "application/x-pem-file")],
            Some(agency_certificate(20).into_bytes()),
        )
        .await;
    assert!(
        r.status == 201 || r.status == 200,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let (text, after) = scrape(&app, &admin).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (b, a) = (value(&before, name, labels), value(&after, name, labels));
        assert!(
            a >= b + 1.0,
            "{name}{labels:?}: {b} before, {a} after\n{text}"
        );
    };

    // Requests by route pattern, method and status, with their latency histogram.
    let route = [("route", "/api/v1/declarations"), ("method", "POST")];
    for status in ["201", "422"] {
        let labels = [route[0], route[1], ("status", status)];
        grew("nsw_http_requests_total", &labels);
        grew("nsw_http_request_duration_seconds_count", &labels);
        let le_inf = [route[0], route[1], ("status", status), ("le", "+Inf")];
        grew("nsw_http_request_duration_seconds_bucket", &le_inf);
    }
    // Never the raw path: the id of a declaration is not a label.
    assert!(
        !text.contains("route=\"/api/v1/declarations/0"),
        "a raw path became a label"
    );

    // Intake outcomes by problem code, and each violation's code.
    let decl = ("document", "declaration");
    grew(
        "nsw_intake_submissions_total",
        &[decl, ("outcome", "accepted")],
    );
    grew(
        "nsw_intake_submissions_total",
        &[decl, ("outcome", "DOCUMENT_INVALID")],
    );
    grew(
        "nsw_intake_violations_total",
        &[decl, ("code", "HS_UNKNOWN")],
    );

    // Validation time, and the group commit that stored the accepted declaration.
    let kind = ("kind", "declaration");
    grew(
        "nsw_validation_duration_seconds_count",
        &[kind, ("verdict", "valid")],
    );
    grew(
        "nsw_validation_duration_seconds_count",
        &[kind, ("verdict", "invalid")],
    );
    grew("nsw_intake_group_commit_submissions_count", &[]);
    assert!(has(
        &after,
        "nsw_intake_group_commit_submissions_bucket",
        &[("le", "1")]
    ));

    // This app's own gauges, computed at the scrape.
    assert_eq!(value(&after, "nsw_db_pool_max_connections", &[]), 16.0);
    let open = value(&after, "nsw_db_pool_connections", &[]);
    let idle = value(&after, "nsw_db_pool_available_connections", &[]);
    assert!(open >= 1.0 && idle <= open, "{open} open, {idle} idle");
    assert!(has(&after, "nsw_db_pool_waiting_requests", &[]));
    assert_eq!(value(&after, "nsw_database_up", &[]), 1.0);
    assert!(has(&after, "nsw_audit_unsealed_entries", &[]));
    assert!(has(&after, "nsw_audit_oldest_unsealed_age_seconds", &[]));
    assert_eq!(value(&after, "nsw_webhook_subscriptions", &[]), 0.0);
    assert_eq!(value(&after, "nsw_webhook_backlog_events", &[]), 0.0);
    let expiry = value(
        &after,
        "nsw_certificate_expiry_seconds",
        &[("kind", "agency"), ("owner", "MARD-PPD")],
    );
    assert!(
        expiry > 19.0 * 86_400.0 && expiry <= 20.0 * 86_400.0,
        "{expiry}\n{text}"
    );
    // No exchange keys in this window: no outbox partner, no window certificate.
    assert!(!has(&after, "nsw_outbox_messages", &[]));
    assert!(!has(
        &after,
        "nsw_certificate_expiry_seconds",
        &[("kind", "window_signing")]
    ));

    // Every family has HELP and TYPE, counters end in _total, units are base units.
    for family in [
        "nsw_http_requests_total counter",
        "nsw_http_request_duration_seconds histogram",
        "nsw_db_pool_connections gauge",
        "nsw_certificate_expiry_seconds gauge",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}")),
            "{family}\n{text}"
        );
    }
    let (ok, said) = promtool(&text);
    assert!(
        ok,
        "promtool check metrics refused the output: {said}\n{text}"
    );
}

#[tokio::test]
async fn promtool_is_a_real_check() {
    // What the test above relies on: promtool refuses what breaks the conventions.
    let (ok, said) = promtool("# TYPE nsw_things counter\nnsw_things 1\n");
    assert!(
        !ok,
        "promtool accepted a counter without _total or HELP: {said}"
    );
    let (ok, said) = promtool(
        "# HELP nsw_things_total Things.\n# TYPE nsw_things_total counter\nnsw_things_total 1\n",
    );
    assert!(ok, "{said}");
}

#[tokio::test]
async fn metrics_need_an_admin_token_or_an_allowed_address() {
    // Nobody is allowed by default; the test client connects from 127.0.0.1.
    let app = TestApp::spawn().await;
    let anonymous = app.get_anonymously("/metrics").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(anonymous.json()["code"], "UNAUTHORIZED");
    let unknown = app.get("not-a-token", "/metrics").await;
    assert_eq!(unknown.status, 401);
    let trader = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let forbidden = app.get(&trader, "/metrics").await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.json()["code"], "ROLE_FORBIDDEN");
    let customs = app.add_party(Role::Customs, "CUSTOMS-HQ").await;
    assert_eq!(app.get(&customs, "/metrics").await.status, 403);
    let admin = app.add_party(Role::Admin, "OPS-ADMIN").await;
    assert_eq!(app.get(&admin, "/metrics").await.status, 200);

    // An allow-list that does not include the client's address changes nothing.
    let elsewhere = TestApp::builder()
        .settings(|s| s.metrics.allow_from = vec!["192.0.2.0/24".into(), "::1".into()])
        .spawn()
        .await;
    let r = elsewhere.get_anonymously("/metrics").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "UNAUTHORIZED");

    // One that does lets the client read without credentials.
    let local = TestApp::builder()
        .settings(|s| s.metrics.allow_from = vec!["127.0.0.0/8".into()])
        .spawn()
        .await;
    let r = local.get_anonymously("/metrics").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("# TYPE nsw_db_pool_connections gauge"),
        "{text}"
    );
}

#[tokio::test]
async fn an_invalid_allow_list_stops_the_start() {
    let url = crate::helpers::fresh_database().await;
    let mut settings = crate::helpers::test_settings(&url);
    settings.metrics.allow_from = vec!["10.0.0.0/8".into(), "prometheus.local".into()];
    let database = nsw::app::connect(&settings).await.expect("connect");
    let err = nsw::app::Application::with_database(settings, database)
        .await
        .err()
        .expect("the start is refused");
    let err = err.to_string();
    assert!(
        err.contains("metrics.allow_from") && err.contains("prometheus.local"),
        "{err}"
    );
}

#[tokio::test]
async fn liveness_needs_nothing_and_readiness_needs_the_database() {
    let app = TestApp::spawn().await;
    let live = app.get_anonymously("/health/live").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json()["status"], "ok");
    for path in ["/health/ready", "/health"] {
        let r = app.get_anonymously(path).await;
        assert_eq!(r.status, 200, "{path}");
        let body = r.json();
        assert_eq!(body["status"], "ok", "{path}");
        assert_eq!(body["checks"]["database"]["status"], "up", "{path}");
        assert_eq!(body["checks"]["schemas"]["status"], "up", "{path}");
        assert_eq!(
            body["checks"]["exchange"]["status"], "not_configured",
            "{path}"
        );
    }

    // The database goes away: dropped, its open connections (the app's pool among them) ended.
    let mut config: tokio_postgres::Config = app.database_url.parse().unwrap();
    let name = config.get_dbname().expect("a database name").to_owned();
    config.dbname("postgres");
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;

    for path in ["/health/ready", "/health"] {
        let r = app.get_anonymously(path).await;
        assert_eq!(
            r.status,
            503,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        let problem = r.json();
        assert_eq!(problem["code"], "NOT_READY", "{path}");
        assert_eq!(problem["status"], 503, "{path}");
        assert_eq!(
            problem["not_ready"],
            serde_json::json!(["database"]),
            "{path}"
        );
        assert_eq!(problem["checks"]["database"]["status"], "down", "{path}");
        assert_eq!(problem["checks"]["schemas"]["status"], "up", "{path}");
    }
    // The process itself is fine: no reason to restart it.
    let live = app.get_anonymously("/health/live").await;
    assert_eq!(live.status, 200);
}

#[tokio::test]
async fn metrics_follow_the_outbox_and_the_exchange_certificates() {
    use crate::exchange::{form_d, Plan};
    use serde_json::json;

    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan
        .window("VN")
        .without_jobs()
        .settings(|s| s.exchange.max_attempts = 1)
        .start()
        .await;
    let sg = plan.start("SG").await;
    let (_, before) = scrape(&vn.app, &vn.admin).await;

    // One message delivered, one that fails its only attempt and becomes a dead letter.
    let delivered = vn.send_form_d(form_d()).await;
    assert_eq!(vn.app.run_outbox_once().await, 1);
    vn.wait_status(delivered["message_id"].as_str().unwrap(), "delivered")
        .await;
    sg.fault(json!({ "mode": "status", "status": 503 }), Some(1))
        .await;
    let dead = vn.send_form_d(form_d()).await;
    assert_eq!(vn.app.run_outbox_once().await, 1);
    vn.wait_status(dead["message_id"].as_str().unwrap(), "dead_letter")
        .await;

    let (text, after) = scrape(&vn.app, &vn.admin).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (b, a) = (value(&before, name, labels), value(&after, name, labels));
        assert!(
            a >= b + 1.0,
            "{name}{labels:?}: {b} before, {a} after\n{text}"
        );
    };
    let sg_label = ("partner", "SG");
    grew(
        "nsw_outbox_delivery_attempts_total",
        &[sg_label, ("outcome", "delivered")],
    );
    grew(
        "nsw_outbox_delivery_attempts_total",
        &[sg_label, ("outcome", "failed")],
    );
    grew(
        "nsw_outbox_attempt_duration_seconds_count",
        &[sg_label, ("outcome", "failed")],
    );
    grew(
        "nsw_outbox_delivery_latency_seconds_count",
        &[sg_label, ("status", "delivered")],
    );
    grew("nsw_outbox_dead_letters_total", &[sg_label]);

    // The outbox as the database holds it, every status shown for the partner.
    for (status, n) in [
        ("pending", 0.0),
        ("sending", 0.0),
        ("retry_wait", 0.0),
        ("delivered", 1.0),
        ("rejected", 0.0),
        ("dead_letter", 1.0),
    ] {
        assert!(
            has(
                &after,
                "nsw_outbox_messages",
                &[sg_label, ("status", status)]
            ),
            "{status}\n{text}"
        );
        assert_eq!(
            value(
                &after,
                "nsw_outbox_messages",
                &[sg_label, ("status", status)]
            ),
            n,
            "{status}"
        );
    }
    assert_eq!(
        value(
            &after,
            "nsw_outbox_oldest_unsettled_age_seconds",
            &[sg_label]
        ),
        0.0
    );

    // The window's own certificates and the partner's pinned CA, each with time left.
    for (kind, owner) in [
        ("window_ca", "VN"),
        ("window_signing", "VN"),
        ("partner_ca", "SG"),
    ] {
        let labels = [("kind", kind), ("owner", owner)];
        assert!(
            has(&after, "nsw_certificate_expiry_seconds", &labels),
            "{kind}\n{text}"
        );
        assert!(value(&after, "nsw_certificate_expiry_seconds", &labels) > 86_400.0);
    }

    let ready = vn.app.get_anonymously("/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["checks"]["exchange"]["status"], "up");

    let (ok, said) = promtool(&text);
    assert!(
        ok,
        "promtool check metrics refused the output: {said}\n{text}"
    );
}

#[tokio::test]
async fn metrics_show_the_webhook_backlog_and_failed_deliveries() {
    use serde_json::json;

    let app = TestApp::builder().without_jobs().spawn().await;
    let admin = app.add_party(Role::Admin, "OPS-ADMIN").await;
    let trader = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    // A receiver that is not there: every delivery fails (connection refused).
    let port = crate::exchange::free_port();
    let r = app
        .post_json(
            &trader,
            "/api/v1/webhooks",
            json!({ "url": format!("http://127.0.0.1:{port}/hook") }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let (_, before) = scrape(&app, &admin).await;
    assert_eq!(value(&before, "nsw_webhook_subscriptions", &[]), 1.0);
    assert_eq!(value(&before, "nsw_webhook_backlog_events", &[]), 0.0);

    assert_eq!(app.submit(&trader, fixture(LAPTOPS)).await.status, 201);
    assert_eq!(app.run_events_once().await, 1);
    let (_, waiting) = scrape(&app, &admin).await;
    assert_eq!(value(&waiting, "nsw_webhook_backlog_events", &[]), 1.0);
    assert_eq!(
        value(&waiting, "nsw_webhook_failing_subscriptions", &[]),
        0.0
    );
    // The jobs are off: the entries of the submission wait for the sealer.
    assert!(value(&waiting, "nsw_audit_unsealed_entries", &[]) >= 1.0);

    assert_eq!(app.run_webhooks_once().await, 1);
    assert!(app.run_audit_once().await >= 1);
    let (text, after) = scrape(&app, &admin).await;
    assert_eq!(value(&after, "nsw_webhook_backlog_events", &[]), 1.0);
    assert_eq!(value(&after, "nsw_webhook_failing_subscriptions", &[]), 1.0);
    let failed = [("outcome", "failed")];
    assert!(
        value(&after, "nsw_webhook_deliveries_total", &failed)
            >= value(&before, "nsw_webhook_deliveries_total", &failed) + 1.0,
        "{text}"
    );
    assert_eq!(value(&after, "nsw_audit_unsealed_entries", &[]), 0.0);
    assert_eq!(
        value(&after, "nsw_audit_oldest_unsealed_age_seconds", &[]),
        0.0
    );
}
