//! Every fault the payment platform can be told to produce, and those of the messages
//! themselves, against the window: no payment is lost (a lost, forged or wrong notification is
//! made good by the status query), none is counted twice (a duplicated notification, the same
//! one posted ten times at once), and no application proceeds unpaid. Also the platform down
//! at order creation, an unpaid application cancelled after its due date, a payment after that
//! cancellation refunded, and a withdrawal before review refunded.

use std::time::Duration;

use crate::helpers::TestApp;
use crate::payments::{history, ok, paid_notification, PayWorld, MAIZE_FEE};
use nsw::paygate::{Faults, NotificationFault};
use nsw::payments::protocol::NotificationKind;

/// Counts that show a payment recorded once: payments, e-receipts, `received` events.
async fn once(w: &PayWorld) -> [i64; 3] {
    [
        w.scalar("SELECT count(*) FROM payments").await,
        w.scalar("SELECT count(*) FROM e_receipts").await,
        w.scalar("SELECT count(*) FROM dossier_events WHERE status = 'received'")
            .await,
    ]
}

#[tokio::test]
async fn a_lost_notification_is_made_good_by_the_status_query() {
    let w = PayWorld::start().await;
    w.gate().set_faults(Faults {
        notification: Some(NotificationFault::Lost),
        ..Faults::default()
    });
    let (id, _) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 0);
    assert_eq!(
        w.gate().pending_notifications().await,
        0,
        "lost: never sent"
    );
    assert_eq!(w.status(&id).await, "awaiting_payment");
    let pass = w.app.run_payments_once().await;
    assert_eq!((pass.queried, pass.applied), (1, 1), "{pass:?}");
    assert_eq!(w.status(&id).await, "received");
    assert_eq!(w.fee(&id).await["status"], "paid");
    assert_eq!(once(&w).await, [1, 1, 1]);
    let source = w
        .scalar("SELECT count(*) FROM payments WHERE source = 'status_query'")
        .await;
    assert_eq!(source, 1);
    // Nothing left to ask about.
    assert_eq!(w.app.run_payments_once().await.queried, 0);
    w.stop().await;
}

#[tokio::test]
async fn a_duplicated_notification_is_applied_once() {
    let w = PayWorld::start().await;
    w.gate().set_faults(Faults {
        notification: Some(NotificationFault::Duplicated),
        ..Faults::default()
    });
    let (id, _) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 2, "both acknowledged");
    assert_eq!(w.status(&id).await, "received");
    assert_eq!(once(&w).await, [1, 1, 1]);
    let outcomes = w
        .scalar(
            "SELECT count(*) FROM payment_notifications
              WHERE outcome = 'ALREADY_APPLIED' AND http_status = 200",
        )
        .await;
    assert_eq!(outcomes, 1);
    w.stop().await;
}

#[tokio::test]
async fn a_delayed_notification_applies_when_it_comes() {
    let w = PayWorld::start().await;
    w.gate().set_faults(Faults {
        notification: Some(NotificationFault::Delayed),
        delay_secs: 1,
        ..Faults::default()
    });
    let (id, _) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 0, "not before its delay");
    assert_eq!(w.status(&id).await, "awaiting_payment");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(w.gate().deliver_once().await, 1);
    assert_eq!(w.status(&id).await, "received");
    assert_eq!(once(&w).await, [1, 1, 1]);
    w.stop().await;
}

#[tokio::test]
async fn a_notification_with_a_bad_signature_is_refused_and_alerted_and_the_query_pays() {
    let w = PayWorld::start().await;
    w.gate().set_faults(Faults {
        notification: Some(NotificationFault::BadSignature),
        ..Faults::default()
    });
    let (id, reference) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 0, "refused");
    assert_eq!(w.gate().deliver_once().await, 0, "refused again");
    assert_eq!(w.status(&id).await, "awaiting_payment");
    assert_eq!(once(&w).await, [0, 0, 0]);
    // Logged with its bytes, unverified; one alert, counted twice.
    let logged = w
        .scalar(
            "SELECT count(*) FROM payment_notifications
              WHERE NOT verified AND http_status = 401 AND outcome = 'PAYMENT_SIGNATURE_INVALID'
                AND length(body) > 0",
        )
        .await;
    assert_eq!(logged, 2);
    assert_eq!(w.alerts().await, ["PAYMENT_SIGNATURE_INVALID"]);
    let client = w.app.pool.get().await.unwrap();
    let row = client
        .query_one("SELECT reference, occurrences FROM payment_alerts", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), reference);
    assert_eq!(row.get::<_, i32>(1), 2);
    let audited = w
        .scalar("SELECT count(*) FROM audit_log WHERE action = 'payment.alert'")
        .await;
    assert_eq!(audited, 1);
    // The platform's signed status answer is believed.
    assert_eq!(w.app.run_payments_once().await.applied, 1);
    assert_eq!(w.status(&id).await, "received");
    assert_eq!(once(&w).await, [1, 1, 1]);
    w.stop().await;
}

#[tokio::test]
async fn a_notification_with_a_wrong_amount_is_refused_until_the_query_shows_the_real_one() {
    let w = PayWorld::start().await;
    w.gate().set_faults(Faults {
        notification: Some(NotificationFault::WrongAmount),
        ..Faults::default()
    });
    let (id, _) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 0);
    assert_eq!(w.status(&id).await, "awaiting_payment");
    assert_eq!(once(&w).await, [0, 0, 0]);
    assert_eq!(w.alerts().await, ["PAYMENT_AMOUNT_MISMATCH"]);
    let refused = w
        .scalar(
            "SELECT count(*) FROM payment_notifications
              WHERE verified AND http_status = 422 AND outcome = 'PAYMENT_AMOUNT_MISMATCH'",
        )
        .await;
    assert_eq!(refused, 1);
    // An officer still cannot decide it.
    let r = w
        .app
        .post_json(
            &w.officer,
            &format!("/api/v1/licence-applications/{id}/decision"),
            serde_json::json!({"action": "review"}),
        )
        .await;
    assert_eq!(r.json()["code"], "FEE_UNPAID");
    assert_eq!(w.app.run_payments_once().await.applied, 1);
    assert_eq!(w.status(&id).await, "received");
    let amount = w.scalar("SELECT amount FROM payments").await;
    assert_eq!(amount, MAIZE_FEE);
    w.stop().await;
}

#[tokio::test]
async fn with_the_platform_down_nothing_is_stored_and_a_later_try_works() {
    let w = PayWorld::start().await;
    let receipt = w.apply().await;
    let id = receipt["id"].as_str().unwrap();
    w.gate().set_faults(Faults {
        create_down: true,
        ..Faults::default()
    });
    let r = w.start_payment(id).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "PAYMENT_PLATFORM_UNAVAILABLE");
    assert!(r.header("retry-after").is_some());
    assert_eq!(w.scalar("SELECT count(*) FROM payment_orders").await, 0);
    assert_eq!(w.fee(id).await["status"], "due");
    w.gate().set_faults(Faults::default());
    let r = w.start_payment(id).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(w.scalar("SELECT count(*) FROM payment_orders").await, 1);

    // A platform that does not answer at all: the same.
    let url = w.database_url.clone();
    let unreachable = TestApp::builder()
        .database(&url)
        .without_jobs()
        .settings(|s| {
            s.payments.enabled = true;
            s.payments.platform_url = "http://127.0.0.1:9".into();
            s.payments.platform_certificate = std::path::PathBuf::from("/nonexistent/platform.crt");
        })
        .spawn()
        .await;
    let second = w.apply().await;
    let r = unreachable
        .request(
            reqwest::Method::POST,
            &format!(
                "/api/v1/licence-applications/{}/fee/payment",
                second["id"].as_str().unwrap()
            ),
            Some(&w.applicant),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "PAYMENT_PLATFORM_UNAVAILABLE");
    assert_eq!(w.scalar("SELECT count(*) FROM payment_orders").await, 1);
    w.stop().await;
}

#[tokio::test]
async fn the_same_notification_posted_ten_times_at_once_pays_once() {
    let w = PayWorld::start().await;
    let receipt = w.apply().await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    let order = ok(&w.start_payment(&id).await);
    let reference = order["reference"].as_str().unwrap();
    let n = paid_notification(
        reference,
        order["order_id"].as_str().unwrap(),
        "TXN-CONCURRENT-1",
        MAIZE_FEE,
    );
    let body = serde_json::to_vec(&n).unwrap();
    let signer = w.platform_signer();
    let answers =
        futures_util::future::join_all((0..10).map(|_| w.notify(&body, Some(&signer)))).await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|r| {
            let v = ok(r);
            assert_eq!(v["acknowledged"], true);
            v["outcome"].as_str().unwrap().to_owned()
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ACKNOWLEDGED").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ALREADY_APPLIED").count(),
        9
    );
    assert_eq!(once(&w).await, [1, 1, 1]);
    assert_eq!(w.status(&id).await, "received");
    assert_eq!(
        w.scalar("SELECT count(*) FROM payment_notifications").await,
        10
    );
    assert!(w.alerts().await.is_empty());
    w.stop().await;
}

#[tokio::test]
async fn notifications_the_window_did_not_ask_for_are_refused_and_alerted() {
    let w = PayWorld::start().await;
    let receipt = w.apply().await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    let order = ok(&w.start_payment(&id).await);
    let reference = order["reference"].as_str().unwrap();
    let order_id = order["order_id"].as_str().unwrap();
    let signer = w.platform_signer();
    let send = |n: nsw::payments::protocol::Notification| {
        let body = serde_json::to_vec(&n).unwrap();
        let signer = &signer;
        let w = &w;
        async move { w.notify(&body, Some(signer)).await }
    };

    let r = send(paid_notification(
        "FEE-2099-999999",
        "ORD-X",
        "TXN-U1",
        MAIZE_FEE,
    ))
    .await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (422, "PAYMENT_REFERENCE_UNKNOWN".into())
    );
    let mut n = paid_notification(reference, order_id, "TXN-U2", MAIZE_FEE);
    n.currency = "USD".into();
    let r = send(n).await;
    assert_eq!(r.json()["code"], "PAYMENT_CURRENCY_MISMATCH");
    let mut n = paid_notification(reference, order_id, "TXN-U3", MAIZE_FEE);
    n.merchant_id = "NSW-SG".into();
    let r = send(n).await;
    assert_eq!(r.json()["code"], "PAYMENT_MERCHANT_MISMATCH");
    let r = send(paid_notification(
        reference,
        "ORD-OTHER",
        "TXN-U4",
        MAIZE_FEE,
    ))
    .await;
    assert_eq!(r.json()["code"], "PAYMENT_ORDER_MISMATCH");
    let r = send(paid_notification(
        reference,
        order_id,
        "TXN-U5",
        MAIZE_FEE + 1,
    ))
    .await;
    assert_eq!(r.json()["code"], "PAYMENT_AMOUNT_MISMATCH");
    let mut n = paid_notification(reference, order_id, "TXN-U6", MAIZE_FEE);
    n.kind = NotificationKind::Refunded;
    n.refund_reference = Some("FEE-2099-999999-R".into());
    let r = send(n).await;
    assert_eq!(r.json()["code"], "PAYMENT_REFUND_UNKNOWN");
    // Unsigned, or signed by someone else: 401.
    let body =
        serde_json::to_vec(&paid_notification(reference, order_id, "TXN-U7", MAIZE_FEE)).unwrap();
    let r = w.notify(&body, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "PAYMENT_SIGNATURE_INVALID");
    let (key, cert) = nsw::payments::protocol::generate("forger", "VN").unwrap();
    let forger = nsw::payments::protocol::Signer::from_pem(&key, &cert).unwrap();
    assert_eq!(w.notify(&body, Some(&forger)).await.status, 401);
    // Too large: 413, before it is read.
    let big = vec![b' '; 65 * 1024];
    let r = w.notify(&big, Some(&signer)).await;
    assert_eq!(r.status, 413);

    assert_eq!(
        w.alerts().await,
        [
            "PAYMENT_REFERENCE_UNKNOWN",
            "PAYMENT_CURRENCY_MISMATCH",
            "PAYMENT_MERCHANT_MISMATCH",
            "PAYMENT_ORDER_MISMATCH",
            "PAYMENT_AMOUNT_MISMATCH",
            "PAYMENT_REFUND_UNKNOWN",
            "PAYMENT_SIGNATURE_INVALID",
        ]
    );
    assert_eq!(
        w.scalar("SELECT count(*) FROM payment_notifications").await,
        8
    );
    assert_eq!(once(&w).await, [0, 0, 0]);
    assert_eq!(w.status(&id).await, "awaiting_payment");
    w.stop().await;
}

/// The second instance of the window, on the same database, whose clock says `today`.
async fn window_on(w: &PayWorld, today: &str) -> TestApp {
    let platform_url = w.gate().url().to_owned();
    let pinned = w.dir.path().join("platform.crt");
    TestApp::builder()
        .database(&w.database_url)
        .without_jobs()
        .today(today)
        .settings(move |s| {
            s.payments.enabled = true;
            s.payments.platform_url = platform_url;
            s.payments.platform_certificate = pinned;
            s.payments.query_after_secs = 0;
        })
        .spawn()
        .await
}

#[tokio::test]
async fn unpaid_after_its_due_date_an_application_is_cancelled_and_a_late_payment_refunded() {
    let w = PayWorld::start().await;
    let receipt = w.apply().await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    let reference = receipt["fee_notice"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let due: chrono::NaiveDate = receipt["fee_notice"]["due_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    ok(&w.start_payment(&id).await);

    // On its due date nothing happens; the day after, the job cancels it.
    let on_due = window_on(&w, &due.to_string()).await;
    assert_eq!(on_due.run_payments_once().await.cancelled, 0);
    assert_eq!(w.status(&id).await, "awaiting_payment");
    let late = window_on(&w, &(due + chrono::Days::new(1)).to_string()).await;
    let r = late
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/licence-applications/{id}/fee/payment"),
            Some(&w.applicant),
            &[],
            None,
        )
        .await;
    assert_eq!(r.json()["code"], "FEE_OVERDUE");
    let pass = late.run_payments_once().await;
    assert_eq!(pass.cancelled, 1, "{pass:?}");
    assert!(
        pass.queried >= 1,
        "the order was asked about first: {pass:?}"
    );
    let app = w.application(&id).await;
    assert_eq!(app["status"], "cancelled");
    assert_eq!(history(&app).last().unwrap(), "cancelled");
    assert_eq!(w.fee(&id).await["status"], "cancelled");
    for action in ["fee_notice.cancelled", "licence_application.cancelled"] {
        let n = w
            .scalar(&format!(
                "SELECT count(*) FROM audit_log WHERE action = '{action}'"
            ))
            .await;
        assert_eq!(n, 1, "{action}");
    }
    assert_eq!(late.run_payments_once().await.cancelled, 0, "once");

    // The payer pays the order at the platform anyway: the money is recorded, alerted and
    // refunded; the application stays cancelled.
    w.gate().pay(&reference).await.unwrap();
    assert_eq!(w.gate().deliver_once().await, 1);
    assert_eq!(w.status(&id).await, "cancelled");
    assert_eq!(w.fee(&id).await["status"], "cancelled");
    assert_eq!(w.alerts().await, ["PAYMENT_AFTER_CANCELLATION"]);
    assert_eq!(
        w.scalar("SELECT count(*) FROM payments WHERE disposition = 'refund_due'")
            .await,
        1
    );
    assert_eq!(w.scalar("SELECT count(*) FROM e_receipts").await, 0);
    // Refunded at once (the platform refunds on request); its notification then changes
    // nothing.
    assert_eq!(
        w.scalar("SELECT count(*) FROM refunds WHERE status = 'refunded'")
            .await,
        1
    );
    assert_eq!(w.gate().deliver_once().await, 1);
    assert_eq!(
        w.scalar("SELECT count(*) FROM audit_log WHERE action = 'refund.refunded'")
            .await,
        1
    );
    w.stop().await;
}

#[tokio::test]
async fn a_paid_application_withdrawn_before_review_is_refunded_once() {
    let w = PayWorld::start().await;
    let (id, reference) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 1);
    assert_eq!(w.status(&id).await, "received");

    // Withdrawn through a window that cannot reach the platform: the refund request waits, a
    // row, until the payments job gets it through.
    let cut_off = TestApp::builder()
        .database(&w.database_url)
        .without_jobs()
        .settings(|s| {
            s.payments.enabled = true;
            s.payments.platform_url = "http://127.0.0.1:9".into();
            s.payments.platform_certificate = std::path::PathBuf::from("/nonexistent/platform.crt");
        })
        .spawn()
        .await;
    let r = cut_off
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/licence-applications/{id}/withdrawal"),
            Some(&w.applicant),
            &[],
            None,
        )
        .await;
    assert_eq!(ok(&r)["status"], "withdrawn");
    let fee = w.fee(&id).await;
    assert_eq!(fee["status"], "refund_requested");
    assert_eq!(fee["refund"]["status"], "requested");
    assert_eq!(fee["refund"]["refund_reference"], format!("{reference}-R"));
    let client = w.app.pool.get().await.unwrap();
    let row = client
        .query_one("SELECT attempts, last_error FROM refunds", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert!(row.get::<_, Option<String>>(1).is_some());
    // Due again at once for the test's sake (its back-off would wait ten seconds).
    client
        .execute("UPDATE refunds SET next_attempt_at = now()", &[])
        .await
        .unwrap();

    let pass = w.app.run_payments_once().await;
    assert_eq!(pass.refunds_sent, 1);
    let fee = w.fee(&id).await;
    assert_eq!(fee["status"], "refunded");
    assert_eq!(fee["refund"]["status"], "refunded");
    assert_eq!(fee["order"]["status"], "refunded");
    // The platform's refunded notification is a repeat of what its answer said.
    assert_eq!(w.gate().deliver_once().await, 1);
    let repeated = w
        .scalar(
            "SELECT count(*) FROM payment_notifications
              WHERE outcome = 'ALREADY_APPLIED' AND position('refunded' in convert_from(body, 'UTF8')) > 0",
        )
        .await;
    assert_eq!(repeated, 1);
    // The answer carried no time; the notification's time is the refund's.
    assert_eq!(
        w.scalar(
            "SELECT count(*) FROM refunds r JOIN payment_notifications n
                ON position('refunded' in convert_from(n.body, 'UTF8')) > 0
             WHERE abs(extract(epoch FROM r.refunded_at
                     - (convert_from(n.body, 'UTF8')::jsonb->>'at')::timestamptz)) < 0.001",
        )
        .await,
        1
    );
    assert_eq!(
        w.scalar("SELECT count(*) FROM audit_log WHERE action = 'fee_notice.refunded'")
            .await,
        1
    );
    assert_eq!(w.app.run_payments_once().await.refunds_sent, 0);
    // The e-receipt stays as issued.
    assert_eq!(
        w.app
            .get(&w.applicant, &format!("/api/v1/fees/{reference}/receipt"))
            .await
            .status,
        200
    );
    w.stop().await;
}

#[tokio::test]
async fn a_paid_application_withdrawn_after_review_keeps_its_fee() {
    let w = PayWorld::start().await;
    let (id, _) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 1);
    let r = w
        .app
        .post_json(
            &w.officer,
            &format!("/api/v1/licence-applications/{id}/decision"),
            serde_json::json!({"action": "review"}),
        )
        .await;
    ok(&r);
    let r = w
        .app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/licence-applications/{id}/withdrawal"),
            Some(&w.applicant),
            &[],
            None,
        )
        .await;
    assert_eq!(ok(&r)["status"], "withdrawn");
    assert_eq!(w.fee(&id).await["status"], "paid");
    assert_eq!(w.scalar("SELECT count(*) FROM refunds").await, 0);

    // Withdrawn unpaid: the notice is cancelled, nothing to refund.
    let second = w.apply().await;
    let second_id = second["id"].as_str().unwrap();
    let r = w
        .app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/licence-applications/{second_id}/withdrawal"),
            Some(&w.applicant),
            &[],
            None,
        )
        .await;
    assert_eq!(ok(&r)["status"], "withdrawn");
    assert_eq!(w.fee(second_id).await["status"], "cancelled");
    w.stop().await;
}

#[tokio::test]
async fn a_refund_reported_by_its_notification_first_learns_its_transaction_from_the_platform() {
    let w = PayWorld::start().await;
    let (id, reference) = w.apply_and_pay_at_the_platform().await;
    assert_eq!(w.gate().deliver_once().await, 1);
    let payment_txn = w.fee(&id).await["receipt"]["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let order_id = w.fee(&id).await["order"]["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Withdrawn while the platform cannot be reached: the request waits.
    let cut_off = TestApp::builder()
        .database(&w.database_url)
        .without_jobs()
        .settings(|s| {
            s.payments.enabled = true;
            s.payments.platform_url = "http://127.0.0.1:9".into();
        })
        .spawn()
        .await;
    let r = cut_off
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/licence-applications/{id}/withdrawal"),
            Some(&w.applicant),
            &[],
            None,
        )
        .await;
    ok(&r);
    // The platform's refunded notification (it names the refunded payment's transaction).
    let mut n = paid_notification(&reference, &order_id, &payment_txn, MAIZE_FEE);
    n.kind = NotificationKind::Refunded;
    n.refund_reference = Some(format!("{reference}-R"));
    // Refunded at the platform just before midnight (Viet Nam time) two days ago: the refund
    // takes the platform's time, so it falls on the platform's settlement day.
    let platform_time = chrono::Utc::now() - chrono::Duration::days(2);
    let platform_time = chrono::DateTime::from_timestamp(platform_time.timestamp(), 0).unwrap();
    n.at = platform_time;
    let body = serde_json::to_vec(&n).unwrap();
    let signer = w.platform_signer();
    assert_eq!(
        ok(&w.notify(&body, Some(&signer)).await)["outcome"],
        "ACKNOWLEDGED"
    );
    assert_eq!(
        ok(&w.notify(&body, Some(&signer)).await)["outcome"],
        "ALREADY_APPLIED"
    );
    let fee = w.fee(&id).await;
    assert_eq!(fee["status"], "refunded");
    assert_eq!(
        w.scalar("SELECT count(*) FROM refunds WHERE transaction_id IS NULL")
            .await,
        1
    );
    let refunded_at: chrono::DateTime<chrono::Utc> = w
        .app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT refunded_at FROM refunds", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(refunded_at, platform_time);
    // One naming another payment's transaction is refused.
    n.transaction_id = "TXN-SOMEONE-ELSE".into();
    let r = w
        .notify(&serde_json::to_vec(&n).unwrap(), Some(&signer))
        .await;
    assert_eq!(r.json()["code"], "PAYMENT_REFUND_MISMATCH");
    // The job asks again under the same refund reference and records the refund's own
    // transaction; nothing else changes.
    let client = w.app.pool.get().await.unwrap();
    client
        .execute("UPDATE refunds SET next_attempt_at = now()", &[])
        .await
        .unwrap();
    assert_eq!(w.app.run_payments_once().await.refunds_sent, 1);
    assert_eq!(
        w.scalar("SELECT count(*) FROM refunds WHERE transaction_id IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        w.scalar("SELECT count(*) FROM audit_log WHERE action = 'refund.refunded'")
            .await,
        1
    );
    assert_eq!(w.app.run_payments_once().await.refunds_sent, 0);
    w.stop().await;
}
