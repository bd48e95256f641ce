//! Reconciliation with the payment platform's settlement file, against a real in-process
//! platform (`nsw::paygate`, its own database and key) and a real window: fees paid through
//! the platform, then each kind of mismatch produced the way it happens (a notification lost,
//! a row left out of the file, an amount written wrong, a refund made outside the window, a
//! refund missing from the file); a day that agrees; a file that does not verify; the command
//! line with its exit statuses; the admin API; the daily job, once per day across instances;
//! the console page.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{FixedOffset, NaiveDate};
use nsw::config::Settings;
use nsw::domain::party::Role;
use nsw::paygate::{self, CertificateSource, Faults, Merchant, NotificationFault};
use nsw::payments::protocol::{self, Refund, RefundRequest, Signer, KEY_HEADER, SIGNATURE_HEADER};
use serde_json::{json, Value};

use crate::helpers::{empty_database, fixture, fresh_database, test_settings, TestApp};
use crate::portal::{person, Browser, PASSWORD};

const MERCHANT: &str = "NSW-VN";
/// A plant quarantine application: its routing rule has a fee (350,000 đồng).
const MAIZE: &str = "valid/licence-application/mard-plant-quarantine-maize.xml";
const APPLICANT: &str = "0312345678";
const ADMIN: &str = "VN-RECONCILER";
const RUNS: &str = "/api/v1/admin/payments/reconciliations";

/// A window and its payment platform, each pinning the other's certificate.
struct Pair {
    app: TestApp,
    gate: paygate::Running,
    /// The window's settings (as its test app has them).
    settings: Settings,
    dir: tempfile::TempDir,
    enterprise: String,
    admin: String,
    /// Applications submitted so far (each gets its own applicant reference).
    submitted: usize,
}

/// A fee paid at the platform.
struct Paid {
    application: String,
    /// The notice's reference, which is also its first order's reference at the platform.
    reference: String,
    transaction: String,
    amount: i64,
    day: NaiveDate,
}

fn platform_certificate(dir: &Path) -> PathBuf {
    dir.join("paygate.crt")
}

/// How the window of a [`Pair`] is configured: payments on, pointed at the platform, no
/// background jobs (the tests run each pass), the daily reconciliation due at once.
fn configure(dir: &Path, platform_url: &str) -> impl Fn(&mut Settings) + Send + Clone + 'static {
    let (dir, url) = (dir.to_owned(), platform_url.to_owned());
    move |s: &mut Settings| {
        s.data_dir = dir.join("nsw");
        s.payments.enabled = true;
        s.payments.platform_url = url.clone();
        s.payments.platform_certificate = platform_certificate(&dir);
        s.payments.query_after_secs = 86_400;
        s.payments.reconcile_after = "00:00".into();
        s.jobs.enabled = false;
    }
}

impl Pair {
    async fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let merchant_crt = dir.path().join("merchant.crt");
        let gate = paygate::start(paygate::Settings {
            listen: "127.0.0.1:0".into(),
            database_url: Some(empty_database().await),
            data_dir: dir.path().join("paygate"),
            merchants: vec![Merchant {
                id: MERCHANT.into(),
                certificate: CertificateSource::Path(merchant_crt.clone()),
            }],
            retry_max_secs: 0,
            run_jobs: false,
            ..paygate::Settings::default()
        })
        .await
        .expect("start the platform");
        std::fs::write(platform_certificate(dir.path()), gate.certificate_pem()).unwrap();

        let database = fresh_database().await;
        let tweak = configure(dir.path(), gate.url());
        let mut settings = test_settings(&database);
        tweak(&mut settings);
        let app = TestApp::builder()
            .database(&database)
            .settings(tweak)
            .spawn()
            .await;
        // The platform pins the window's merchant certificate (as `nsw serve` publishes it).
        let pem = nsw::payments::keys::merchant_certificate(&app.pool, &settings)
            .await
            .unwrap();
        std::fs::write(&merchant_crt, pem).unwrap();
        let enterprise = app.add_party(Role::Enterprise, APPLICANT).await;
        let admin = person(&app, Role::Admin, ADMIN, None).await;
        Pair {
            app,
            gate,
            settings,
            dir,
            enterprise,
            admin,
            submitted: 0,
        }
    }

    /// A new application with a fee; returns its id.
    async fn apply(&mut self) -> String {
        self.submitted += 1;
        let xml = String::from_utf8(fixture(MAIZE)).unwrap().replace(
            "<Reference>PQ-APP-2026-00873</Reference>",
            &format!("<Reference>PQ-REC-{:05}</Reference>", self.submitted),
        );
        let r = self
            .app
            .post_xml(
                &self.enterprise,
                "/api/v1/licence-applications",
                xml.into_bytes(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()["id"].as_str().unwrap().to_owned()
    }

    /// A new application whose fee the payer pays at the platform (notifications are queued
    /// there; delivered by [`Pair::deliver`]).
    async fn pay(&mut self) -> Paid {
        let application = self.apply().await;
        let r = self
            .app
            .post_json(
                &self.enterprise,
                &format!("/api/v1/licence-applications/{application}/fee/payment"),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let reference = r.json()["reference"].as_str().unwrap().to_owned();
        let order = self
            .gate
            .pay(&reference)
            .await
            .expect("paid at the platform");
        let paid_at = order.paid_at.expect("paid_at");
        Paid {
            application,
            reference,
            transaction: order.transaction_id.expect("a transaction id"),
            amount: order.amount,
            day: local_day(paid_at),
        }
    }

    /// Delivers every notification due at the platform to the window.
    async fn deliver(&self) -> usize {
        self.gate.deliver_once().await
    }

    async fn reconcile(&self, day: NaiveDate) -> Value {
        let r = self
            .app
            .post_json(&self.admin, RUNS, json!({ "date": day.to_string() }))
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let run = r.json();
        assert_eq!(
            r.header("location"),
            Some(format!("{RUNS}/{}", run["id"].as_str().unwrap()).as_str())
        );
        run
    }

    /// The merchant's own signer (for a refund made outside the window's workflows).
    async fn merchant(&self) -> Signer {
        let kp = nsw::payments::keys::merchant_key(&self.app.pool, &self.settings)
            .await
            .unwrap();
        Signer::from_pem(&kp.private_key_pem, kp.certificate_pem.as_bytes()).unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        let client = self.app.pool.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }
}

/// The window's local day (UTC+07:00) of an instant.
fn local_day(t: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    t.with_timezone(&FixedOffset::east_opt(7 * 3600).unwrap())
        .date_naive()
}

/// (kind, transaction id) of every mismatch of a run.
fn kinds(run: &Value) -> BTreeSet<(String, String)> {
    run["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_owned(),
                m["transaction_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(k, t)| ((*k).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test]
async fn every_kind_of_mismatch_is_reported_and_a_day_that_agrees_matches() {
    let mut p = Pair::start().await;
    // A: paid and notified. D: paid, notified, withdrawn before review and refunded.
    let a = p.pay().await;
    let d = p.pay().await;
    assert_eq!(p.deliver().await, 2);
    let r = p
        .app
        .post_json(
            &p.enterprise,
            &format!("/api/v1/licence-applications/{}/withdrawal", d.application),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // (The pass also reconciles yesterday, the daily job's day, which had no payment.)
    let pass = p.app.jobs.as_ref().unwrap().payments_once().await;
    assert_eq!(
        pass.reconciled,
        Some(nsw::payments::reconcile::Outcome::Matched)
    );
    p.deliver().await;
    let d_refund: String = {
        let client = p.app.pool.get().await.unwrap();
        client
            .query_one(
                "SELECT transaction_id FROM refunds WHERE status = 'refunded'",
                &[],
            )
            .await
            .expect("D's refund recorded by the window")
            .get(0)
    };
    let day = a.day;
    assert_eq!(d.day, day);

    // The day agrees with the platform.
    let matched = p.reconcile(day).await;
    assert_eq!(matched["outcome"], "matched", "{matched:#}");
    assert_eq!(matched["source"], "platform");
    assert_eq!(matched["actor"], ADMIN);
    assert_eq!(matched["mismatches"], json!([]));
    let c = &matched["counts"];
    assert_eq!(c["settled_payments"], 2);
    assert_eq!(c["settled_refunds"], 1);
    assert_eq!(c["recorded_payments"], 2);
    assert_eq!(c["recorded_refunds"], 1);
    assert_eq!(c["matched"], 3);
    assert_eq!(c["settled_paid_amount"], a.amount + d.amount);
    assert_eq!(c["recorded_refunded_amount"], d.amount);
    assert_eq!(matched["file_sha256"].as_str().unwrap().len(), 64);

    // B: paid at the platform, its notification lost (and no status query has run).
    p.gate.set_faults(Faults {
        notification: Some(NotificationFault::Lost),
        ..Faults::default()
    });
    let b = p.pay().await;
    p.gate.set_faults(Faults::default());
    // C: paid and notified; the file will carry another amount for it.
    let c = p.pay().await;
    assert_eq!(p.deliver().await, 1);
    // E: part of A refunded at the platform by the merchant outside the window's workflows;
    // its notification is never delivered.
    let request = RefundRequest {
        merchant_id: MERCHANT.into(),
        reference: a.reference.clone(),
        refund_reference: format!("{}-BACKOFFICE", a.reference),
        amount: 50_000,
        currency: protocol::CURRENCY.into(),
        reason: "refunded at the counter".into(),
        requested_at: chrono::Utc::now(),
    };
    let body = serde_json::to_vec(&request).unwrap();
    let signer = p.merchant().await;
    let answer = reqwest::Client::new()
        .post(format!("{}/api/refunds", p.gate.url()))
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signer.sign(&body).unwrap())
        .header(KEY_HEADER, signer.fingerprint())
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let e: Refund = answer.json().await.unwrap();
    let e_tx = e.transaction_id.expect("refunded at once");
    // The file leaves D out (its payment and its refund) and writes C's amount wrong.
    p.gate.set_faults(Faults {
        settlement_omit: vec![d.reference.clone()],
        settlement_amounts: [(c.reference.clone(), c.amount - 1000)].into(),
        ..Faults::default()
    });

    let run = p.reconcile(day).await;
    assert_eq!(run["outcome"], "mismatches", "{run:#}");
    assert_eq!(
        kinds(&run),
        set(&[
            ("paid_not_recorded", &b.transaction),
            ("amount_differs", &c.transaction),
            ("recorded_not_settled", &d.transaction),
            ("refund_not_settled", &d_refund),
            ("refund_not_recorded", &e_tx),
        ]),
        "{run:#}"
    );
    let by_kind = |kind: &str| {
        run["mismatches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == kind)
            .unwrap()
            .clone()
    };
    let amount = by_kind("amount_differs");
    assert_eq!(amount["settled_amount"], c.amount - 1000);
    assert_eq!(amount["recorded_amount"], c.amount);
    assert_eq!(amount["settled_reference"], c.reference.as_str());
    let lost = by_kind("paid_not_recorded");
    assert_eq!(lost["settled_amount"], b.amount);
    assert_eq!(lost["recorded_amount"], Value::Null);
    assert_eq!(by_kind("refund_not_recorded")["settled_amount"], 50_000);
    assert_eq!(by_kind("refund_not_settled")["recorded_amount"], d.amount);
    // Only A's payment still agrees.
    assert_eq!(run["counts"]["matched"], 1);
    assert_eq!(run["counts"]["settled_payments"], 3);
    assert_eq!(run["counts"]["settled_refunds"], 1);
    assert_eq!(run["counts"]["recorded_payments"], 3);
    assert_eq!(run["counts"]["recorded_refunds"], 1);

    // Every run is kept, newest first, and read back as answered.
    let list = p.app.get(&p.admin, RUNS).await;
    assert_eq!(list.status, 200);
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], run["id"]);
    assert_eq!(items[0]["mismatch_count"], 5);
    assert_eq!(items[1]["id"], matched["id"]);
    assert_eq!(items[1]["outcome"], "matched");
    assert_eq!(
        items[2]["actor"], "payments",
        "the daily job's run of yesterday"
    );
    let one = p
        .app
        .get(&p.admin, &format!("{RUNS}/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), run);
    assert_eq!(
        p.count("SELECT count(*) FROM audit_log WHERE action = 'payments.reconciliation'")
            .await,
        3
    );
    // A run is never changed.
    let client = p.app.pool.get().await.unwrap();
    assert!(client
        .execute("UPDATE reconciliations SET outcome = 'matched'", &[])
        .await
        .is_err());

    // What may not be asked.
    let missing = p
        .app
        .get(&p.admin, &format!("{RUNS}/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, 404);
    let forbidden = p.app.get(&p.enterprise, RUNS).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.json()["code"], "ROLE_FORBIDDEN");
    let forbidden = p
        .app
        .post_json(&p.enterprise, RUNS, json!({"date": day.to_string()}))
        .await;
    assert_eq!(forbidden.status, 403);
    let future = p
        .app
        .post_json(&p.admin, RUNS, json!({"date": "2999-01-01"}))
        .await;
    assert_eq!(future.status, 400);
    assert_eq!(future.json()["code"], "RECONCILIATION_DATE_INVALID");
    let bad = p
        .app
        .post_json(&p.admin, RUNS, json!({"date": "30/11/2026"}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "BODY_INVALID");
    let bad = p.app.get(&p.admin, &format!("{RUNS}?limit=0")).await;
    assert_eq!(bad.json()["code"], "LIMIT_INVALID");
    assert_eq!(
        p.count("SELECT count(*) FROM reconciliations").await,
        3,
        "a refused request recorded a run"
    );
    p.gate.stop().await;
}

#[tokio::test]
async fn a_settlement_file_that_does_not_verify_is_refused_and_the_run_fails() {
    let mut p = Pair::start().await;
    let a = p.pay().await;
    assert_eq!(p.deliver().await, 1);
    // The window pins another platform certificate: the file's signature cannot be the
    // platform's it knows.
    let (_, other) = protocol::generate("impostor platform", "VN").unwrap();
    std::fs::write(platform_certificate(p.dir.path()), other).unwrap();
    let run = p.reconcile(a.day).await;
    assert_eq!(run["outcome"], "failed", "{run:#}");
    assert_eq!(run["source"], "platform");
    let why = run["failure"].as_str().unwrap();
    assert!(why.contains("signature"), "{why}");
    assert_eq!(run["mismatches"], json!([]));
    assert_eq!(run["counts"]["settled_payments"], 0);
    assert_eq!(
        run["counts"]["recorded_payments"], 0,
        "nothing was compared"
    );
    // The refused bytes are identified.
    assert_eq!(run["file_sha256"].as_str().unwrap().len(), 64);
    // Pinned right again, the same day matches.
    std::fs::write(platform_certificate(p.dir.path()), p.gate.certificate_pem()).unwrap();
    assert_eq!(p.reconcile(a.day).await["outcome"], "matched");
    let Pair { gate, .. } = p;
    gate.stop().await;
}

/// `nsw payments reconcile` against the window's database, in `dir`, with `env`; waited for
/// off the test's runtime, which also runs the platform the command may ask.
async fn cli(
    dir: &Path,
    database_url: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nsw"));
    c.current_dir(dir)
        .env("NSW_DATABASE_URL", database_url)
        .env("RUST_LOG", "error")
        .args(["payments", "reconcile"])
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_command_line_reconciles_from_the_platform_or_a_file_with_its_exit_status() {
    let mut p = Pair::start().await;
    let a = p.pay().await;
    assert_eq!(p.deliver().await, 1);
    let day = a.day.to_string();
    let dir = p.dir.path().to_owned();
    let db = p.app.database_url.clone();
    let runs = || async { p.count("SELECT count(*) FROM reconciliations").await };

    // An operator downloads the day's file.
    let file = reqwest::Client::new()
        .get(format!("{}/api/settlements/{day}.csv", p.gate.url()))
        .query(&[("merchant_id", MERCHANT)])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&file).contains(&a.transaction));
    let given = dir.join("settlement.csv");
    std::fs::write(&given, &file).unwrap();
    let given = given.to_str().unwrap().to_owned();

    let (code, out) = cli(&dir, &db, &["--date", &day, "--file", &given], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("MATCHED"), "{out}");
    assert!(out.contains("NOT checked"), "{out}");
    assert!(out.contains("matched:  1"), "{out}");

    // The same file with another amount: exit 1, the mismatch on its line.
    let tampered = dir.join("tampered.csv");
    std::fs::write(
        &tampered,
        String::from_utf8_lossy(&file).replace(&format!(",{},", a.amount), ",1000,"),
    )
    .unwrap();
    let tampered = tampered.to_str().unwrap().to_owned();
    let (code, out) = cli(&dir, &db, &["--date", &day, "--file", &tampered], &[]).await;
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("amount_differs"))
        .unwrap_or_else(|| panic!("no mismatch line: {out}"));
    assert!(
        line.contains(&a.transaction) && line.contains(&a.reference),
        "{line}"
    );
    assert!(
        line.contains("settled 1000") && line.contains(&format!("recorded {}", a.amount)),
        "{line}"
    );
    let (code, out) = cli(
        &dir,
        &db,
        &["--date", &day, "--file", &tampered, "--json"],
        &[],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    let json: Value = serde_json::from_str(out.split("\n--- stderr").next().unwrap()).unwrap();
    assert_eq!(json["outcome"], "mismatches");
    assert_eq!(json["source"], "file");
    assert_eq!(json["actor"], "cli");
    assert_eq!(json["mismatches"][0]["kind"], "amount_differs");

    // A file that is not a settlement file: a failed run, exit 2.
    let garbage = dir.join("garbage.csv");
    std::fs::write(&garbage, "this is not,a settlement file\n").unwrap();
    let (code, out) = cli(
        &dir,
        &db,
        &["--date", &day, "--file", garbage.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("FAILED"), "{out}");
    assert_eq!(runs().await, 4);

    // Nothing to run: exit 2, nothing recorded.
    let (code, out) = cli(
        &dir,
        &db,
        &["--date", &day, "--file", "/nonexistent.csv"],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{out}");
    let (code, out) = cli(&dir, &db, &["--date", "2999-01-01"], &[]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("after today"), "{out}");
    assert_eq!(runs().await, 4);

    // From the platform itself: verified, exit 0.
    let platform = [
        ("NSW_PAYMENTS__PLATFORM_URL", p.gate.url().to_owned()),
        (
            "NSW_PAYMENTS__PLATFORM_CERTIFICATE",
            platform_certificate(&dir).to_str().unwrap().to_owned(),
        ),
    ];
    let (code, out) = cli(&dir, &db, &["--date", &day], &platform).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signature verified"), "{out}");
    // The platform unreachable: a failed run, exit 2.
    let down = [
        (
            "NSW_PAYMENTS__PLATFORM_URL",
            "http://127.0.0.1:9".to_owned(),
        ),
        platform[1].clone(),
    ];
    let (code, out) = cli(&dir, &db, &["--date", &day], &down).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unavailable"), "{out}");
    let client = p.app.pool.get().await.unwrap();
    let sources: Vec<(String, String)> = client
        .query(
            "SELECT source, outcome FROM reconciliations ORDER BY ran_at, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        ("file", "matched"),
        ("file", "mismatches"),
        ("file", "mismatches"),
        ("file", "failed"),
        ("platform", "matched"),
        ("platform", "failed"),
    ]
    .iter()
    .map(|(s, o)| ((*s).to_owned(), (*o).to_owned()))
    .collect();
    assert_eq!(sources, expected);
    drop(client);
    let Pair { gate, .. } = p;
    gate.stop().await;
}

#[tokio::test]
async fn the_daily_job_reconciles_yesterday_once_across_instances_and_retries_a_failure() {
    let p = Pair::start().await;
    let yesterday = local_day(chrono::Utc::now()) - chrono::Days::new(1);
    let jobs = p.app.jobs.clone().unwrap();
    let runs_of_yesterday = || async {
        let client = p.app.pool.get().await.unwrap();
        let rows = client
            .query(
                "SELECT outcome, actor FROM reconciliations WHERE settlement_date = $1::date
                  ORDER BY ran_at",
                &[&yesterday],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };

    // The platform's certificate is not the one pinned: the first run fails …
    let good = std::fs::read(platform_certificate(p.dir.path())).unwrap();
    let (_, other) = protocol::generate("impostor platform", "VN").unwrap();
    std::fs::write(platform_certificate(p.dir.path()), other).unwrap();
    let pass = jobs.payments_once().await;
    assert_eq!(
        pass.reconciled,
        Some(nsw::payments::reconcile::Outcome::Failed)
    );
    // … and is not tried again before its retry delay (15 minutes after a first failure).
    assert_eq!(jobs.payments_once().await.reconciled, None);
    let wait: f64 = p
        .app
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT extract(epoch FROM claimed_until - now())::float8 FROM reconciliation_claims",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((800.0..=900.0).contains(&wait), "{wait}");
    assert_eq!(
        runs_of_yesterday().await,
        vec![("failed".to_owned(), "payments".to_owned())]
    );

    // Its delay over and the certificate right, two instances pass at the same time: one
    // reconciles the day.
    std::fs::write(platform_certificate(p.dir.path()), good).unwrap();
    p.app
        .pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE reconciliation_claims SET claimed_until = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let tweak = configure(p.dir.path(), p.gate.url());
    let second = TestApp::builder()
        .database(&p.app.database_url)
        .settings(tweak)
        .spawn()
        .await;
    let other_jobs = second.jobs.clone().unwrap();
    let (x, y) = tokio::join!(jobs.payments_once(), other_jobs.payments_once());
    let outcomes: Vec<_> = [x.reconciled, y.reconciled].into_iter().flatten().collect();
    assert_eq!(
        outcomes,
        vec![nsw::payments::reconcile::Outcome::Matched],
        "exactly one instance reconciles"
    );
    // Done for the day: no instance runs it again.
    let (x, y) = tokio::join!(jobs.payments_once(), other_jobs.payments_once());
    assert_eq!((x.reconciled, y.reconciled), (None, None));
    assert_eq!(
        runs_of_yesterday().await,
        vec![
            ("failed".to_owned(), "payments".to_owned()),
            ("matched".to_owned(), "payments".to_owned())
        ]
    );
    let Pair { gate, .. } = p;
    gate.stop().await;
}

#[tokio::test]
async fn the_console_shows_the_last_reconciliation_and_runs_one() {
    let mut p = Pair::start().await;
    let a = p.pay().await;
    assert_eq!(p.deliver().await, 1);
    p.gate.set_faults(Faults {
        notification: Some(NotificationFault::Lost),
        ..Faults::default()
    });
    let b = p.pay().await;
    // Something the window refused: an unsigned notification.
    let refused = p
        .app
        .request(
            reqwest::Method::POST,
            "/api/v1/payments/notifications",
            None,
            &[("content-type", "application/json")],
            Some(br#"{"reference":"FEE-FORGED"}"#.to_vec()),
        )
        .await;
    assert_eq!(refused.status, 401);

    let mut browser = Browser::new(&p.app);
    browser.accept_language = Some("en".into());
    assert_eq!(browser.log_in(ADMIN, PASSWORD).await.status, 303);
    let page = browser.get("/console/payments").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"no-reconciliation\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/console/payments\""));
    assert!(
        page.body.contains("PAYMENT_SIGNATURE_INVALID"),
        "{}",
        page.body
    );

    // The form runs one and shows it.
    let csrf = page.hidden("csrf").unwrap();
    let day = a.day.to_string();
    let ran = browser
        .post_form(
            "/console/payments/reconciliations",
            &[("csrf", csrf.as_str()), ("date", day.as_str())],
        )
        .await;
    assert_eq!(ran.status, 303, "{}", ran.body);
    let to = ran.location().unwrap().to_owned();
    assert!(to.starts_with("/console/payments/reconciliations/"), "{to}");
    let shown = browser.get(&to).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(
        shown.body.contains("data-outcome=\"mismatches\""),
        "{}",
        shown.body
    );
    let row = shown
        .body
        .split("<tr data-kind=\"paid_not_recorded\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no mismatch row: {}", shown.body));
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(&b.transaction) && row.contains(&b.reference),
        "{row}"
    );
    assert!(row.contains("Paid at the platform, not recorded"), "{row}");
    // The page itself shows the same run as the last one, with the runs and the alerts.
    let page = browser.get("/console/payments").await;
    assert!(page.body.contains("Last reconciliation"), "{}", page.body);
    assert!(page.body.contains(&b.transaction));
    assert!(page.body.contains("id=\"recent-runs\""));
    // The overview raises it.
    let overview = browser.get("/console").await;
    assert!(
        overview
            .body
            .contains("class=\"alert-reconciliation_mismatches\""),
        "{}",
        overview.body
    );
    assert!(overview.body.contains(&to), "{}", overview.body);
    let vi = {
        let mut b = Browser::new(&p.app);
        b.accept_language = Some("vi".into());
        assert_eq!(b.log_in(ADMIN, PASSWORD).await.status, 303);
        b.get(&to).await
    };
    assert!(
        vi.body
            .contains("Đã thanh toán tại nền tảng, Cổng chưa ghi nhận"),
        "{}",
        vi.body
    );

    // A day after today is refused on the form; a form without its token is refused.
    let csrf = page.hidden("csrf").unwrap();
    let future = browser
        .post_form(
            "/console/payments/reconciliations",
            &[("csrf", csrf.as_str()), ("date", "2999-01-01")],
        )
        .await;
    assert_eq!(future.status, 422, "{}", future.body);
    assert!(future.body.contains("id=\"date-error\""), "{}", future.body);
    let no_token = browser
        .post_form(
            "/console/payments/reconciliations",
            &[("date", day.as_str())],
        )
        .await;
    assert_eq!(no_token.status, 403);
    assert_eq!(
        p.count("SELECT count(*) FROM reconciliations").await,
        1,
        "only the valid form ran"
    );
    // An enterprise may not see the page.
    person(&p.app, Role::Enterprise, "0399999999", None).await;
    let mut trader = Browser::new(&p.app);
    assert_eq!(trader.log_in("0399999999", PASSWORD).await.status, 303);
    assert_eq!(trader.get("/console/payments").await.status, 403);
    let Pair { gate, .. } = p;
    gate.stop().await;
}
