//! Fees paid online, the window's side, against a real payment platform (`nsw paygate` in
//! process, on its own database, with its own key): a fee application waits for its payment
//! and cannot be decided; paying through the platform and its signed notification make it
//! received, with an e-receipt that `openssl cms -verify` and `xmllint` accept; the browser's
//! return alone changes nothing; a free application goes straight on. The faults are in
//! `payments_faults.rs`, on the same harness ([`PayWorld`]).

use std::process::Command;

use nsw::domain::party::Role;
use nsw::paygate::{self, CertificateSource, Merchant, Running};
use nsw::payments::protocol::{Notification, NotificationKind, Signer};
use serde_json::{json, Value};

use crate::helpers::{empty_database, fixture, fresh_database, test_settings, Resp, TestApp};

pub const MAIZE_APPLICATION: &str = "valid/licence-application/mard-plant-quarantine-maize.xml";
pub const MAIZE_APPLICANT: &str = "0312345678";
/// The rule `mardppd-cereals-import-pqc`: 350,000 đồng to MARD-PPD.
pub const MAIZE_FEE: i64 = 350_000;
const RICE_APPLICATION: &str = "valid/licence-application/moit-export-licence-rice.xml";

/// A window collecting fees online, a payment platform it pins (and that pins it), an
/// applicant and an officer of the maize application's agency. No background job runs on
/// either side: the test runs the window's payments job (`app.run_payments_once()`) and the
/// platform's notifier (`gate().deliver_once()`) when it wants them.
pub struct PayWorld {
    pub app: TestApp,
    pub gate: Option<Running>,
    pub database_url: String,
    pub applicant: String,
    pub officer: String,
    /// The platform's key and certificate, and the window's copy of the certificate.
    pub dir: tempfile::TempDir,
}

impl PayWorld {
    pub async fn start() -> PayWorld {
        PayWorld::start_with(|_| {}).await
    }

    /// As [`start`](Self::start), with the window's settings changed by `tweak`.
    pub async fn start_with(
        tweak: impl FnOnce(&mut nsw::config::Settings) + Send + 'static,
    ) -> PayWorld {
        let database_url = fresh_database().await;
        let dir = tempfile::tempdir().unwrap();
        // The window's merchant key is made before it starts, so the platform can pin it.
        let merchant = {
            let pool = nsw::db::pool(&database_url, 2).unwrap();
            nsw::payments::keys::merchant_certificate(&pool, &test_settings(&database_url))
                .await
                .expect("the merchant certificate")
        };
        let gate = paygate::start(paygate::Settings {
            listen: "127.0.0.1:0".into(),
            database_url: Some(empty_database().await),
            data_dir: dir.path().join("paygate"),
            merchants: vec![Merchant {
                id: "NSW-VN".into(),
                certificate: CertificateSource::Pem(merchant),
            }],
            retry_max_secs: 0,
            run_jobs: false,
            ..paygate::Settings::default()
        })
        .await
        .expect("start the payment platform");
        let pinned = dir.path().join("platform.crt");
        std::fs::write(&pinned, gate.certificate_pem()).unwrap();
        let platform_url = gate.url().to_owned();
        let app = TestApp::builder()
            .database(&database_url)
            .without_jobs()
            .settings(move |s| {
                s.payments.enabled = true;
                s.payments.platform_url = platform_url;
                s.payments.platform_certificate = pinned;
                s.payments.query_after_secs = 0;
                tweak(s);
            })
            .spawn()
            .await;
        let applicant = app.add_party(Role::Enterprise, MAIZE_APPLICANT).await;
        let officer = app
            .add_party_with_agency(Role::Ministry, "ppd-officer-1", "MARD-PPD")
            .await;
        PayWorld {
            app,
            gate: Some(gate),
            database_url,
            applicant,
            officer,
            dir,
        }
    }

    pub fn gate(&self) -> &Running {
        self.gate.as_ref().expect("the platform runs")
    }

    pub async fn stop(mut self) {
        if let Some(g) = self.gate.take() {
            g.stop().await;
        }
    }

    /// Submits the maize application (fee 350,000 đồng); answers its receipt.
    pub async fn apply(&self) -> Value {
        let r = self
            .app
            .post_xml(
                &self.applicant,
                "/api/v1/licence-applications",
                fixture(MAIZE_APPLICATION),
            )
            .await;
        ok(&r)
    }

    /// Starts paying application `id`'s fee; answers the order (201 or 200).
    pub async fn start_payment(&self, id: &str) -> Resp {
        self.app
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/licence-applications/{id}/fee/payment"),
                Some(&self.applicant),
                &[],
                None,
            )
            .await
    }

    /// The application as its applicant sees it.
    pub async fn application(&self, id: &str) -> Value {
        ok(&self
            .app
            .get(
                &self.applicant,
                &format!("/api/v1/licence-applications/{id}"),
            )
            .await)
    }

    pub async fn status(&self, id: &str) -> String {
        self.application(id).await["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The fee notice as the applicant sees it.
    pub async fn fee(&self, id: &str) -> Value {
        ok(&self
            .app
            .get(
                &self.applicant,
                &format!("/api/v1/licence-applications/{id}/fee"),
            )
            .await)
    }

    /// Applies (maize), starts the payment and pays at the platform, without any notification
    /// delivered yet; answers (application id, platform reference).
    pub async fn apply_and_pay_at_the_platform(&self) -> (String, String) {
        let receipt = self.apply().await;
        let id = receipt["id"].as_str().unwrap().to_owned();
        let reference = receipt["fee_notice"]["reference"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self.start_payment(&id).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let paid = self
            .gate()
            .pay(&reference)
            .await
            .expect("paid at the platform");
        assert!(paid.transaction_id.is_some());
        (id, reference)
    }

    /// The platform's own signer (its key file): for notifications the test writes itself.
    pub fn platform_signer(&self) -> Signer {
        let key = std::fs::read(self.dir.path().join("paygate/paygate.key")).unwrap();
        let cert = std::fs::read(self.dir.path().join("paygate/paygate.crt")).unwrap();
        Signer::from_pem(&key, &cert).unwrap()
    }

    /// POSTs `body` to the window's notification endpoint, signed by `signer` (or unsigned).
    pub async fn notify(&self, body: &[u8], signer: Option<&Signer>) -> Resp {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(s) = signer {
            headers.push((
                nsw::payments::protocol::SIGNATURE_HEADER.into(),
                s.sign(body).unwrap(),
            ));
            headers.push((
                nsw::payments::protocol::KEY_HEADER.into(),
                s.fingerprint().into(),
            ));
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.app
            .request(
                reqwest::Method::POST,
                "/api/v1/payments/notifications",
                None,
                &headers,
                Some(body.to_vec()),
            )
            .await
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let client = self.app.pool.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// The kinds of the alerts raised, in order.
    pub async fn alerts(&self) -> Vec<String> {
        let client = self.app.pool.get().await.unwrap();
        client
            .query("SELECT kind FROM payment_alerts ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

/// A paid notification for `order`, as the platform would write it.
pub fn paid_notification(
    reference: &str,
    order_id: &str,
    transaction_id: &str,
    amount: i64,
) -> Notification {
    Notification {
        notification_id: uuid::Uuid::now_v7().to_string(),
        kind: NotificationKind::Paid,
        merchant_id: "NSW-VN".into(),
        reference: reference.into(),
        order_id: order_id.into(),
        transaction_id: transaction_id.into(),
        amount,
        currency: "VND".into(),
        refund_reference: None,
        at: chrono::Utc::now(),
    }
}

pub fn ok(r: &Resp) -> Value {
    assert!(
        (200..300).contains(&r.status),
        "{}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// The statuses of an application's history, oldest first.
pub fn history(app: &Value) -> Vec<String> {
    app["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

fn openssl_verifies(dir: &std::path::Path, content: &str) -> std::process::Output {
    Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(dir.join("receipt.p7s"))
        .arg("-content")
        .arg(dir.join(content))
        .arg("-CAfile")
        .arg(dir.join("receipt-cert.pem"))
        .args(["-out", "/dev/null"])
        .output()
        .unwrap()
}

/// What an officer's decision writes: events, audit entries.
async fn footprint(w: &PayWorld) -> [i64; 2] {
    [
        w.scalar("SELECT count(*) FROM dossier_events").await,
        w.scalar("SELECT count(*) FROM audit_log").await,
    ]
}

#[tokio::test]
async fn a_fee_application_waits_for_its_payment_and_no_officer_can_decide_it() {
    let w = PayWorld::start().await;
    let receipt = w.apply().await;
    assert_eq!(receipt["status"], "awaiting_payment");
    assert_eq!(receipt["fee_vnd"], MAIZE_FEE);
    let notice = &receipt["fee_notice"];
    let reference = notice["reference"].as_str().unwrap();
    assert!(
        reference.starts_with("FEE-") && reference.len() == "FEE-2026-000001".len(),
        "{reference}"
    );
    assert_eq!(notice["amount"], MAIZE_FEE);
    assert_eq!(notice["currency"], "VND");
    assert_eq!(notice["status"], "due");
    let id = receipt["id"].as_str().unwrap();
    // Due five working days after the window's today.
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
        .date_naive();
    let due: chrono::NaiveDate = notice["due_date"].as_str().unwrap().parse().unwrap();
    assert!(
        due > today + chrono::Days::new(4) && due <= today + chrono::Days::new(30),
        "{due}"
    );

    let app = w.application(id).await;
    assert_eq!(app["status"], "awaiting_payment");
    assert_eq!(history(&app), ["submitted", "awaiting_payment"]);

    // The notice: the applicant, the agency's officer and an administrator see it; another
    // enterprise, customs and another agency's officer get 404.
    let path = format!("/api/v1/licence-applications/{id}/fee");
    let fee = ok(&w.app.get(&w.applicant, &path).await);
    assert_eq!(fee["reference"], reference);
    assert_eq!(fee["status"], "due");
    assert_eq!(fee["agency"], "MARD-PPD");
    assert!(fee["order"].is_null());
    assert_eq!(w.app.get(&w.officer, &path).await.status, 200);
    let admin = w.app.add_party(Role::Admin, "admin-1").await;
    assert_eq!(w.app.get(&admin, &path).await.status, 200);
    let other = w.app.add_party(Role::Enterprise, "0399999999").await;
    let customs = w.app.add_party(Role::Customs, "customs-1").await;
    let moit = w
        .app
        .add_party_with_agency(Role::Ministry, "moit-1", "MOIT")
        .await;
    for token in [&other, &customs, &moit] {
        assert_eq!(w.app.get(token, &path).await.status, 404);
    }
    // Listed among the applicant's fees, not another's.
    let fees = ok(&w.app.get(&w.applicant, "/api/v1/fees").await);
    assert_eq!(fees["items"].as_array().unwrap().len(), 1);
    assert_eq!(fees["items"][0]["reference"], reference);
    let due_only = ok(&w.app.get(&w.applicant, "/api/v1/fees?status=paid").await);
    assert!(due_only["items"].as_array().unwrap().is_empty());
    assert_eq!(
        w.app
            .get(&w.applicant, "/api/v1/fees?status=owed")
            .await
            .json()["code"],
        "STATUS_INVALID"
    );
    assert!(ok(&w.app.get(&other, "/api/v1/fees").await)["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(w.app.get(&w.officer, "/api/v1/fees").await.status, 403);

    // The agency sees it when it asks for it, not among the applications awaiting it.
    let inbox = ok(&w.app.get(&w.officer, "/api/v1/inbox").await);
    assert!(inbox["items"].as_array().unwrap().is_empty(), "{inbox}");
    let unpaid = ok(&w
        .app
        .get(&w.officer, "/api/v1/inbox?status=awaiting_payment")
        .await);
    assert_eq!(unpaid["items"][0]["id"], id);

    // No decision of any kind: 409 FEE_UNPAID, and nothing written.
    let decision = format!("/api/v1/licence-applications/{id}/decision");
    for body in [
        json!({"action": "review"}),
        json!({"action": "request_supplement", "reason": "send the invoice"}),
        json!({"action": "refuse", "reason": "no"}),
        json!({"action": "issue"}),
    ] {
        let before = footprint(&w).await;
        let r = w.app.post_json(&w.officer, &decision, body.clone()).await;
        assert_eq!(
            r.status,
            409,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["code"], "FEE_UNPAID", "{body}");
        assert_eq!(footprint(&w).await, before, "{body} wrote something");
    }
    assert_eq!(w.status(id).await, "awaiting_payment");
    w.stop().await;
}

#[tokio::test]
async fn a_fee_paid_through_the_platform_opens_the_application_with_a_verifiable_e_receipt() {
    let w = PayWorld::start().await;
    let receipt = w.apply().await;
    let id = receipt["id"].as_str().unwrap();
    let reference = receipt["fee_notice"]["reference"].as_str().unwrap();

    // Only the applicant starts a payment.
    let pay_path = format!("/api/v1/licence-applications/{id}/fee/payment");
    let r = w
        .app
        .request(
            reqwest::Method::POST,
            &pay_path,
            Some(&w.officer),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let other = w.app.add_party(Role::Enterprise, "0399999999").await;
    let r = w
        .app
        .request(reqwest::Method::POST, &pay_path, Some(&other), &[], None)
        .await;
    assert_eq!(r.status, 404);

    let r = w.start_payment(id).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order = r.json();
    assert_eq!(order["reference"], reference);
    assert_eq!(order["amount"], MAIZE_FEE);
    assert_eq!(order["currency"], "VND");
    assert_eq!(order["status"], "due");
    let pay_url = order["pay_url"].as_str().unwrap();
    assert!(pay_url.starts_with(w.gate().url()), "{pay_url}");
    // Asked again, the same order (200), not a second one.
    let again = w.start_payment(id).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["order_id"], order["order_id"]);
    assert_eq!(w.scalar("SELECT count(*) FROM payment_orders").await, 1);

    // The payer's page at the platform shows the fee.
    let page = reqwest::get(pay_url).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(reference), "{html}");

    // Paid at the platform; the browser comes back: nothing changes until the platform's
    // signed notification arrives.
    let paid = w.gate().pay(reference).await.unwrap();
    let back = reqwest::Client::new()
        .get(format!(
            "{}/payments/return?reference={reference}&result=paid",
            w.app.address
        ))
        .send()
        .await
        .unwrap();
    let _ = back.status();
    assert_eq!(w.status(id).await, "awaiting_payment");
    assert_eq!(w.fee(id).await["status"], "due");
    assert_eq!(w.scalar("SELECT count(*) FROM payments").await, 0);

    assert_eq!(w.gate().deliver_once().await, 1);
    assert_eq!(w.gate().pending_notifications().await, 0);
    let app = w.application(id).await;
    assert_eq!(app["status"], "received");
    assert_eq!(history(&app), ["submitted", "awaiting_payment", "received"]);
    let note = app["history"][2]["note"].as_str().unwrap();
    let txn = paid.transaction_id.as_deref().unwrap();
    assert!(
        note.contains("fee paid, transaction") && note.contains(txn),
        "{note}"
    );
    let fee = w.fee(id).await;
    assert_eq!(fee["status"], "paid");
    assert_eq!(fee["order"]["status"], "paid");
    assert_eq!(fee["receipt"]["transaction_id"], txn);
    let number = fee["receipt"]["number"].as_str().unwrap();
    assert!(number.starts_with("RCPT-"), "{number}");

    // The e-receipt: schema-valid, signed by the window, verifiable with openssl.
    let xml = w
        .app
        .get(&w.applicant, &format!("/api/v1/fees/{reference}/receipt"))
        .await;
    assert_eq!(xml.status, 200);
    assert_eq!(xml.header("content-type"), Some("application/xml"));
    let text = String::from_utf8(xml.body.clone()).unwrap();
    for part in [
        &format!("<Number>{number}</Number>"),
        &format!("<PaymentReference>{reference}</PaymentReference>"),
        &format!("<PlatformTransactionId>{txn}</PlatformTransactionId>"),
        "<Amount currency=\"VND\">350000</Amount>",
        "<AgencyCode>MARD-PPD</AgencyCode>",
        &format!("<ID>{MAIZE_APPLICANT}</ID>"),
        &format!(
            "<ApplicationReference>{}</ApplicationReference>",
            receipt["reference"].as_str().unwrap()
        ),
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    let sig = w
        .app
        .get(
            &w.applicant,
            &format!("/api/v1/fees/{reference}/receipt.p7s"),
        )
        .await;
    assert_eq!(sig.status, 200);
    assert_eq!(
        sig.header("content-type"),
        Some("application/pkcs7-signature")
    );
    let cert = w
        .app
        .get(&w.applicant, "/api/v1/payments/receipt-certificate")
        .await;
    assert_eq!(cert.status, 200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("receipt.xml"), &xml.body).unwrap();
    std::fs::write(dir.path().join("receipt.p7s"), &sig.body).unwrap();
    std::fs::write(dir.path().join("receipt-cert.pem"), &cert.body).unwrap();
    let verified = openssl_verifies(dir.path(), "receipt.xml");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let mut tampered = xml.body.clone();
    let at = text.find("350000").unwrap();
    tampered[at] = b'9';
    std::fs::write(dir.path().join("tampered.xml"), &tampered).unwrap();
    assert!(!openssl_verifies(dir.path(), "tampered.xml")
        .status
        .success());
    let lint = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(crate::helpers::repo_root().join("schemas/e-receipt/1/e-receipt.xsd"))
        .arg(dir.path().join("receipt.xml"))
        .output()
        .expect("xmllint (libxml2-utils; ./dev test installs it)");
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    // Stored byte for byte, with its digest.
    let stored = w
        .scalar(
            "SELECT count(*) FROM documents d JOIN e_receipts r ON r.document_id = d.id
                  WHERE d.kind = 'e-receipt' AND d.sha256 = sha256(d.body)",
        )
        .await;
    assert_eq!(stored, 1);

    // The agency may see the receipt; others not.
    assert_eq!(
        w.app
            .get(&w.officer, &format!("/api/v1/fees/{reference}/receipt"))
            .await
            .status,
        200
    );
    assert_eq!(
        w.app
            .get(&other, &format!("/api/v1/fees/{reference}/receipt.p7s"))
            .await
            .status,
        404
    );
    // Paid: nothing more to pay.
    let r = w.start_payment(id).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "FEE_NOT_DUE");

    // The agency takes it from here: now it is pending with it, and it can be decided.
    let inbox = ok(&w.app.get(&w.officer, "/api/v1/inbox").await);
    assert_eq!(inbox["items"][0]["id"], id);
    let r = w
        .app
        .post_json(
            &w.officer,
            &format!("/api/v1/licence-applications/{id}/decision"),
            json!({"action": "review"}),
        )
        .await;
    assert_eq!(ok(&r)["status"], "under_review");
    w.stop().await;
}

#[tokio::test]
async fn a_cancelled_order_is_followed_by_a_new_one_under_its_own_reference() {
    let w = PayWorld::start().await;
    let receipt = w.apply().await;
    let id = receipt["id"].as_str().unwrap();
    let reference = receipt["fee_notice"]["reference"].as_str().unwrap();
    let first = ok(&w.start_payment(id).await);
    w.gate().cancel(reference).await.unwrap();
    assert_eq!(w.gate().deliver_once().await, 1);
    assert_eq!(w.fee(id).await["order"]["status"], "cancelled");
    assert_eq!(w.status(id).await, "awaiting_payment");

    let r = w.start_payment(id).await;
    assert_eq!(r.status, 201);
    let second = r.json();
    assert_ne!(second["order_id"], first["order_id"]);
    // The payer still quotes the notice's reference; the platform knows the order by its own.
    assert_eq!(second["reference"], reference);
    let fee = w.fee(id).await;
    let platform_reference = format!("{reference}-2");
    assert_eq!(
        fee["order"]["platform_reference"],
        platform_reference.as_str()
    );
    w.gate().pay(&platform_reference).await.unwrap();
    assert_eq!(w.gate().deliver_once().await, 1);
    assert_eq!(w.status(id).await, "received");
    assert_eq!(w.fee(id).await["status"], "paid");
    w.stop().await;
}

#[tokio::test]
async fn a_free_application_goes_straight_to_its_agency() {
    let w = PayWorld::start().await;
    let rice = fixture(RICE_APPLICATION);
    let text = String::from_utf8(rice.clone()).unwrap();
    let start = text.find("<Applicant>").unwrap();
    let id_start = start + text[start..].find("<ID>").unwrap() + 4;
    let id_end = id_start + text[id_start..].find("</ID>").unwrap();
    let exporter = w
        .app
        .add_party(Role::Enterprise, &text[id_start..id_end])
        .await;
    let r = w
        .app
        .post_xml(&exporter, "/api/v1/licence-applications", rice)
        .await;
    let receipt = ok(&r);
    assert_eq!(receipt["fee_vnd"], 0);
    assert_eq!(receipt["status"], "received");
    assert!(receipt.get("fee_notice").is_none(), "{receipt}");
    let id = receipt["id"].as_str().unwrap();
    assert_eq!(
        w.app
            .get(&exporter, &format!("/api/v1/licence-applications/{id}/fee"))
            .await
            .status,
        404
    );
    assert_eq!(w.scalar("SELECT count(*) FROM fee_notices").await, 0);
    w.stop().await;
}

#[tokio::test]
async fn with_fees_collected_elsewhere_a_fee_application_goes_straight_to_its_agency() {
    let app = TestApp::spawn().await;
    let applicant = app.add_party(Role::Enterprise, MAIZE_APPLICANT).await;
    let r = app
        .post_xml(
            &applicant,
            "/api/v1/licence-applications",
            fixture(MAIZE_APPLICATION),
        )
        .await;
    let receipt = ok(&r);
    assert_eq!(receipt["fee_vnd"], MAIZE_FEE);
    assert_eq!(receipt["status"], "received");
    assert!(receipt.get("fee_notice").is_none());
}

/// The state machines of notices, orders and refunds are the same in the code and the
/// database, and the database refuses a move its table does not list.
#[tokio::test]
async fn the_database_and_the_code_agree_on_the_payment_state_machines() {
    use nsw::domain::fee_state::{OrderStatus, RefundStatus, Status};
    let app = TestApp::spawn().await;
    let client = app.pool.get().await.unwrap();
    let pairs = |table: &str| {
        let sql = format!("SELECT from_status, to_status FROM {table} ORDER BY 1, 2");
        let client = &client;
        async move {
            client
                .query(&sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<std::collections::BTreeSet<_>>()
        }
    };
    let notices: std::collections::BTreeSet<_> = Status::ALL
        .iter()
        .flat_map(|f| Status::ALL.iter().map(move |t| (*f, *t)))
        .filter(|(f, t)| f.can_become(*t))
        .map(|(f, t)| (f.as_str().to_owned(), t.as_str().to_owned()))
        .collect();
    assert_eq!(pairs("fee_notice_transitions").await, notices);
    let orders: std::collections::BTreeSet<_> = OrderStatus::ALL
        .iter()
        .flat_map(|f| OrderStatus::ALL.iter().map(move |t| (*f, *t)))
        .filter(|(f, t)| f.can_become(*t))
        .map(|(f, t)| (f.as_str().to_owned(), t.as_str().to_owned()))
        .collect();
    assert_eq!(pairs("payment_order_transitions").await, orders);
    let refunds: std::collections::BTreeSet<_> = RefundStatus::ALL
        .iter()
        .flat_map(|f| RefundStatus::ALL.iter().map(move |t| (*f, *t)))
        .filter(|(f, t)| f.can_become(*t))
        .map(|(f, t)| (f.as_str().to_owned(), t.as_str().to_owned()))
        .collect();
    assert_eq!(pairs("refund_transitions").await, refunds);
    // The tables themselves are fixed.
    assert!(client
        .execute(
            "INSERT INTO fee_notice_transitions VALUES ('paid', 'due')",
            &[]
        )
        .await
        .is_err());
    // And the guard applies them: a notice made due, then moved back from paid, is refused.
    let applicant = app.add_party(Role::Enterprise, MAIZE_APPLICANT).await;
    let r = app
        .post_xml(
            &applicant,
            "/api/v1/licence-applications",
            fixture(MAIZE_APPLICATION),
        )
        .await;
    let application: uuid::Uuid = ok(&r)["id"].as_str().unwrap().parse().unwrap();
    let notice = uuid::Uuid::now_v7();
    client
        .execute(
            "INSERT INTO fee_notices (id, application_id, reference, applicant_id, agency,
                agency_name, procedure_code, amount, currency, due_date, status, created_at,
                updated_at)
             VALUES ($1, $2, 'FEE-TEST-1', $3, 'MARD-PPD', 'PPD', 'PPD-PQC-IM', 1000, 'VND',
                     '2026-12-31', 'due', now(), now())",
            &[&notice, &application, &MAIZE_APPLICANT],
        )
        .await
        .unwrap();
    for (to, allowed) in [("refunded", false), ("due", false), ("cancelled", true)] {
        let moved = client
            .execute(
                "UPDATE fee_notices SET status = $2 WHERE id = $1",
                &[&notice, &to],
            )
            .await;
        assert_eq!(moved.is_ok(), allowed, "due -> {to}");
    }
    // A notice never starts anywhere but due, and never changes what it asks for.
    assert!(client
        .execute(
            "UPDATE fee_notices SET amount = 1 WHERE id = $1",
            &[&notice]
        )
        .await
        .is_err());
}

/// `nsw payments certificate` prints the merchant certificate, made with its key on first use
/// and the same afterwards: what the platform pins.
#[tokio::test]
async fn the_merchant_certificate_is_printed_by_the_command_line() {
    let db = fresh_database().await;
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_nsw"))
            .args(["payments", "certificate"])
            .env_remove("NSW_CONFIG")
            .env("NSW_DATABASE_URL", &db)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let pem = String::from_utf8(first.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let cert = openssl::x509::X509::from_pem(pem.as_bytes()).unwrap();
    let subject = format!("{:?}", cert.subject_name());
    assert!(subject.contains("NSW-VN payments"), "{subject}");
    assert_eq!(String::from_utf8(run().stdout).unwrap(), pem, "made once");
    let pool = nsw::db::pool(&db, 1).unwrap();
    let stored = nsw::payments::keys::merchant_certificate(&pool, &test_settings(&db))
        .await
        .unwrap();
    assert_eq!(stored, pem.as_bytes());
    // The private key is stored sealed, never in clear.
    let client = pool.get().await.unwrap();
    let sealed: Vec<u8> = client
        .query_one(
            "SELECT private_key_pem FROM agency_keys WHERE agency = 'payments.merchant'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(sealed.starts_with(b"nswkek1:"));
}
