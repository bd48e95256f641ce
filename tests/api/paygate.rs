//! The payment platform simulator (`nsw paygate`) as the window sees it: a merchant signing
//! with its own key, the platform on a fresh database, and a small HTTP server in the test
//! that receives the platform's notifications (refusing the first ones when asked to).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{Duration, Utc};
use nsw::paygate::{self, CertificateSource, Faults, Merchant, NotificationFault, Running};
use nsw::payments::protocol::{
    generate, read_settlement, Notification, NotificationKind, Order, OrderRequest, OrderStatus,
    PlatformError, Refund, RefundRequest, SettlementStatus, Signer, StatusQuery, Verifier,
    KEY_HEADER, SIGNATURE_HEADER,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::helpers::empty_database;

const MERCHANT: &str = "NSW-VN";

/// A request body with its signature header.
type Received = (Vec<u8>, Option<String>);

/// What the test's notification endpoint received: each body with its signature header.
#[derive(Clone, Default)]
struct Inbox {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many requests first.
    refuse_first: Arc<AtomicUsize>,
    /// Requests seen (refused ones included).
    seen: Arc<AtomicUsize>,
}

impl Inbox {
    fn bodies(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn notify(inbox: web::Data<Inbox>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    inbox.seen.fetch_add(1, Ordering::SeqCst);
    let refused = inbox
        .refuse_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refused {
        return HttpResponse::InternalServerError().finish();
    }
    let sig = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    inbox.received.lock().unwrap().push((body.to_vec(), sig));
    HttpResponse::Ok().finish()
}

struct Gate {
    running: Option<Running>,
    merchant: Signer,
    /// Verifies what the platform signs (pinned from `certificate_pem()`).
    platform: Verifier,
    http: reqwest::Client,
    url: String,
    inbox: Inbox,
    /// Where the inbox listens: `{inbox_url}/notify`.
    inbox_url: String,
    inbox_server: actix_web::dev::ServerHandle,
    /// The platform's own database.
    database_url: String,
    _dir: tempfile::TempDir,
}

impl Gate {
    async fn start() -> Gate {
        Gate::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut paygate::Settings)) -> Gate {
        let (key, cert) = generate("window", "VN").unwrap();
        let merchant = Signer::from_pem(&key, &cert).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let database_url = empty_database().await;
        let mut settings = paygate::Settings {
            listen: "127.0.0.1:0".into(),
            database_url: Some(database_url.clone()),
            data_dir: dir.path().join("paygate"),
            merchants: vec![Merchant {
                id: MERCHANT.into(),
                certificate: CertificateSource::Pem(cert),
            }],
            retry_max_secs: 0,
            run_jobs: false,
            ..paygate::Settings::default()
        };
        tweak(&mut settings);
        let running = paygate::start(settings).await.expect("start the paygate");
        let platform = Verifier::from_pem(&running.certificate_pem()).unwrap();

        let inbox = Inbox::default();
        let data = web::Data::new(inbox.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inbox_url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/notify", web::post().to(notify))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let inbox_server = server.handle();
        tokio::spawn(server);
        Gate {
            url: running.url().to_owned(),
            running: Some(running),
            merchant,
            platform,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            inbox,
            inbox_url,
            inbox_server,
            database_url,
            _dir: dir,
        }
    }

    fn gate(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.inbox_server.stop(false).await;
    }

    fn order_request(&self, reference: &str, amount: i64) -> OrderRequest {
        OrderRequest {
            merchant_id: MERCHANT.into(),
            reference: reference.into(),
            amount,
            currency: "VND".into(),
            description: "Phí cấp giấy phép nhập khẩu / import licence fee".into(),
            return_url: "https://window.example/fees/return".into(),
            notify_url: format!("{}/notify", self.inbox_url),
            expires_at: Utc::now() + Duration::hours(1),
            requested_at: Utc::now(),
        }
    }

    /// POSTs `body` signed by `signer` (None: unsigned); answers status, bytes, signature.
    async fn post_raw(
        &self,
        path: &str,
        body: &[u8],
        signer: Option<&Signer>,
    ) -> (u16, Vec<u8>, Option<String>) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(s) = signer {
            req = req
                .header(SIGNATURE_HEADER, s.sign(body).unwrap())
                .header(KEY_HEADER, s.fingerprint());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let sig = resp
            .headers()
            .get(SIGNATURE_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        (status, resp.bytes().await.unwrap().to_vec(), sig)
    }

    /// POSTs `msg` signed by the merchant; the answer must verify with the platform's
    /// certificate, and is parsed as `T`.
    async fn call<T: DeserializeOwned>(&self, path: &str, msg: &impl Serialize) -> (u16, T) {
        let body = serde_json::to_vec(msg).unwrap();
        let (status, bytes, sig) = self.post_raw(path, &body, Some(&self.merchant)).await;
        let value = self
            .platform
            .open(&bytes, sig.as_deref())
            .unwrap_or_else(|e| {
                panic!(
                    "answer to {path} ({status}) does not verify: {e}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
        (status, value)
    }

    async fn create(&self, reference: &str, amount: i64) -> Order {
        let (status, order): (u16, Order) = self
            .call("/api/orders", &self.order_request(reference, amount))
            .await;
        assert_eq!(status, 201);
        order
    }

    /// A count straight from the platform's database.
    async fn count(&self, sql: &str) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        drop(client);
        let _ = task.await;
        n
    }

    async fn query(&self, reference: &str) -> (u16, serde_json::Value) {
        self.call(
            "/api/orders/query",
            &StatusQuery {
                merchant_id: MERCHANT.into(),
                reference: reference.into(),
                requested_at: Utc::now(),
            },
        )
        .await
    }

    /// The notifications received, verified with the platform's certificate.
    fn notifications(&self) -> Vec<Notification> {
        self.inbox
            .bodies()
            .iter()
            .map(|(b, s)| {
                self.platform
                    .open(b, s.as_deref())
                    .expect("a notification that verifies")
            })
            .collect()
    }
}

fn form_token(page: &str) -> String {
    let at = page.find("name=\"token\" value=\"").expect("a token field") + 20;
    page[at..at + 32].to_owned()
}

#[tokio::test]
async fn orders_are_created_once_per_reference_and_a_different_amount_conflicts() {
    let g = Gate::start().await;
    let first = g.create("FEE-2026-0001", 150_000).await;
    assert_eq!(first.status, OrderStatus::Pending);
    assert_eq!(first.amount, 150_000);
    assert_eq!(first.currency, "VND");
    assert!(first.transaction_id.is_none());
    assert_eq!(first.pay_url, format!("{}/pay/{}", g.url, first.order_id));

    // The same request again (an answer lost on the way): the same order, 200.
    let (status, again): (u16, Order) = g
        .call("/api/orders", &g.order_request("FEE-2026-0001", 150_000))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again, first);

    // Same reference, another amount: 409 ORDER_CONFLICT, the order unchanged.
    let (status, err): (u16, PlatformError) = g
        .call("/api/orders", &g.order_request("FEE-2026-0001", 200_000))
        .await;
    assert_eq!(status, 409);
    assert_eq!(err.code, "ORDER_CONFLICT");
    let (status, now) = g.query("FEE-2026-0001").await;
    assert_eq!(status, 200);
    assert_eq!(now["amount"], 150_000);

    // Validation: each refused with its code, nothing stored.
    let mut bad = g.order_request("FEE-BAD-1", 150_000);
    bad.currency = "USD".into();
    let (status, err): (u16, PlatformError) = g.call("/api/orders", &bad).await;
    assert_eq!((status, err.code.as_str()), (422, "CURRENCY_UNSUPPORTED"));
    let bad = g.order_request("FEE-BAD-1", 0);
    let (status, err): (u16, PlatformError) = g.call("/api/orders", &bad).await;
    assert_eq!((status, err.code.as_str()), (422, "AMOUNT_INVALID"));
    let bad = g.order_request("FEE BAD/1", 1000);
    let (status, err): (u16, PlatformError) = g.call("/api/orders", &bad).await;
    assert_eq!((status, err.code.as_str()), (422, "REFERENCE_INVALID"));
    let bad = g.order_request(&"X".repeat(41), 1000);
    let (status, err): (u16, PlatformError) = g.call("/api/orders", &bad).await;
    assert_eq!((status, err.code.as_str()), (422, "REFERENCE_INVALID"));
    let mut bad = g.order_request("FEE-BAD-1", 1000);
    bad.notify_url = "ftp://window.example/notify".into();
    let (status, err): (u16, PlatformError) = g.call("/api/orders", &bad).await;
    assert_eq!((status, err.code.as_str()), (422, "URL_INVALID"));
    let (status, _) = g.query("FEE-BAD-1").await;
    assert_eq!(status, 404);
    g.stop().await;
}

#[tokio::test]
async fn unsigned_forged_and_unknown_merchant_requests_are_refused_and_store_nothing() {
    let g = Gate::start().await;
    let body = serde_json::to_vec(&g.order_request("FEE-SIG-1", 150_000)).unwrap();

    let (status, bytes, sig) = g.post_raw("/api/orders", &body, None).await;
    assert_eq!(status, 401);
    let err: PlatformError = g.platform.open(&bytes, sig.as_deref()).unwrap();
    assert_eq!(err.code, "SIGNATURE_INVALID");

    // Signed by another key.
    let (k, c) = generate("intruder", "VN").unwrap();
    let intruder = Signer::from_pem(&k, &c).unwrap();
    let (status, bytes, sig) = g.post_raw("/api/orders", &body, Some(&intruder)).await;
    assert_eq!(status, 401);
    let err: PlatformError = g.platform.open(&bytes, sig.as_deref()).unwrap();
    assert_eq!(err.code, "SIGNATURE_INVALID");

    // Signed by the merchant, then one byte changed.
    let sig_ok = g.merchant.sign(&body).unwrap();
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("150000", "150001");
    let resp = g
        .http
        .post(format!("{}/api/orders", g.url))
        .header(SIGNATURE_HEADER, sig_ok)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // A merchant the platform does not know, validly signed by its own key.
    let mut other = g.order_request("FEE-SIG-1", 150_000);
    other.merchant_id = "SOMEONE-ELSE".into();
    let body = serde_json::to_vec(&other).unwrap();
    let (status, bytes, sig) = g.post_raw("/api/orders", &body, Some(&intruder)).await;
    assert_eq!(status, 401);
    let err: PlatformError = g.platform.open(&bytes, sig.as_deref()).unwrap();
    assert_eq!(err.code, "MERCHANT_UNKNOWN");

    // Not JSON at all.
    let (status, _, _) = g.post_raw("/api/orders", b"hello", None).await;
    assert_eq!(status, 400);

    let (status, _) = g.query("FEE-SIG-1").await;
    assert_eq!(status, 404);
    assert_eq!(
        g.count("SELECT count(*) FROM paygate_orders").await,
        0,
        "no order was stored"
    );
    g.stop().await;
}

#[tokio::test]
async fn paying_on_the_page_redirects_back_and_the_signed_notification_is_retried_until_acknowledged(
) {
    let g = Gate::start().await;
    let order = g.create("FEE-PAY-1", 150_000).await;

    let page = g.http.get(&order.pay_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("<html lang=\"vi\">"));
    assert_eq!(page.matches("<h1>").count(), 1);
    assert!(page.contains("<main>"));
    assert!(page.contains("150.000 ₫"), "{page}");
    assert!(page.contains("FEE-PAY-1"));
    assert!(page.contains(MERCHANT));
    assert!(page.contains("import licence fee"));
    assert_eq!(page.matches("<button").count(), 2);
    assert!(!page.contains("<script"));
    assert!(!page.contains("style="));
    let token = form_token(&page);

    // A form without the order's token changes nothing.
    let resp = g
        .http
        .post(format!("{}/pay", order.pay_url))
        .form(&[("token", "0".repeat(32))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (_, now) = g.query("FEE-PAY-1").await;
    assert_eq!(now["status"], "pending");

    let resp = g
        .http
        .post(format!("{}/pay", order.pay_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"],
        "https://window.example/fees/return?reference=FEE-PAY-1&result=paid"
    );

    let (_, paid): (u16, Order) = g
        .call(
            "/api/orders/query",
            &StatusQuery {
                merchant_id: MERCHANT.into(),
                reference: "FEE-PAY-1".into(),
                requested_at: Utc::now(),
            },
        )
        .await;
    assert_eq!(paid.status, OrderStatus::Paid);
    let transaction = paid.transaction_id.clone().expect("a transaction id");
    assert!(paid.paid_at.is_some());

    // The window answers 500 twice: the notification is sent again until it answers 200.
    g.inbox.refuse_first.store(2, Ordering::SeqCst);
    assert_eq!(g.gate().pending_notifications().await, 1);
    assert_eq!(g.gate().deliver_once().await, 0);
    assert_eq!(g.gate().deliver_once().await, 0);
    assert_eq!(g.gate().pending_notifications().await, 1);
    assert_eq!(g.gate().deliver_once().await, 1);
    assert_eq!(g.gate().pending_notifications().await, 0);
    assert_eq!(g.inbox.seen.load(Ordering::SeqCst), 3);
    assert_eq!(g.gate().deliver_once().await, 0, "nothing left to send");

    let got = g.notifications();
    assert_eq!(got.len(), 1);
    let n = &got[0];
    assert_eq!(n.kind, NotificationKind::Paid);
    assert_eq!(n.merchant_id, MERCHANT);
    assert_eq!(n.reference, "FEE-PAY-1");
    assert_eq!(n.order_id, order.order_id);
    assert_eq!(n.transaction_id, transaction);
    assert_eq!(n.amount, 150_000);
    assert_eq!(n.currency, "VND");
    assert!(n.refund_reference.is_none());

    // Paying again (the page's form, then the test API) changes nothing.
    let resp = g
        .http
        .post(format!("{}/pay", order.pay_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let again = g.gate().pay("FEE-PAY-1").await.unwrap();
    assert_eq!(again.transaction_id.as_deref(), Some(transaction.as_str()));
    assert_eq!(
        g.gate().pending_notifications().await,
        0,
        "no second notification"
    );

    // The page now says paid, with no buttons.
    let page = g
        .http
        .get(&order.pay_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Đã thanh toán"));
    assert_eq!(page.matches("<button").count(), 0);
    g.stop().await;
}

/// Creates an order and pays it as a payer would (no browser); answers its transaction id.
async fn paid(g: &Gate, reference: &str, amount: i64) -> String {
    g.create(reference, amount).await;
    let order = g.gate().pay(reference).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    order.transaction_id.unwrap()
}

#[tokio::test]
async fn an_expired_or_cancelled_order_cannot_be_paid_and_nothing_changes() {
    let g = Gate::start().await;
    let mut req = g.order_request("FEE-EXP-1", 150_000);
    req.expires_at = Utc::now() + Duration::milliseconds(1500);
    let (status, order): (u16, Order) = g.call("/api/orders", &req).await;
    assert_eq!(status, 201);
    let page = g
        .http
        .get(&order.pay_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_token(&page);
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;

    let resp = g
        .http
        .post(format!("{}/pay", order.pay_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let text = resp.text().await.unwrap();
    assert!(text.contains("expired"), "{text}");
    let err = g.gate().pay("FEE-EXP-1").await.unwrap_err();
    assert!(
        matches!(
            err,
            paygate::PaygateError::Refused {
                status: 409,
                code: "ORDER_EXPIRED",
                ..
            }
        ),
        "{err}"
    );
    let (_, now) = g.query("FEE-EXP-1").await;
    assert_eq!(now["status"], "expired");
    assert!(now["transaction_id"].is_null());
    assert_eq!(g.gate().pending_notifications().await, 0);
    let page = g
        .http
        .get(&order.pay_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        page.matches("<button").count(),
        0,
        "no buttons on an expired order"
    );

    // Cancelled on the page: back with result=cancelled, a `cancelled` notification; paying
    // afterwards is refused.
    let order = g.create("FEE-CAN-1", 80_000).await;
    let page = g
        .http
        .get(&order.pay_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = form_token(&page);
    let resp = g
        .http
        .post(format!("{}/cancel", order.pay_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"],
        "https://window.example/fees/return?reference=FEE-CAN-1&result=cancelled"
    );
    let resp = g
        .http
        .post(format!("{}/pay", order.pay_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let err = g.gate().pay("FEE-CAN-1").await.unwrap_err();
    assert!(matches!(
        err,
        paygate::PaygateError::Refused {
            code: "ORDER_CANCELLED",
            ..
        }
    ));
    assert_eq!(g.gate().deliver_once().await, 1);
    let got = g.notifications();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, NotificationKind::Cancelled);
    assert_eq!(got[0].transaction_id, order.order_id);
    assert_eq!(got[0].reference, "FEE-CAN-1");
    let (_, now) = g.query("FEE-CAN-1").await;
    assert_eq!(now["status"], "cancelled");

    // A paid order cannot be cancelled.
    paid(&g, "FEE-CAN-2", 10_000).await;
    let err = g.gate().cancel("FEE-CAN-2").await.unwrap_err();
    assert!(matches!(
        err,
        paygate::PaygateError::Refused {
            code: "ORDER_PAID",
            ..
        }
    ));

    // A return_url with a query gets `&`.
    let mut req = g.order_request("FEE-QRY-1", 5_000);
    req.return_url = "https://window.example/back?lang=vi".into();
    let (_, order): (u16, Order) = g.call("/api/orders", &req).await;
    let page = g
        .http
        .get(&order.pay_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resp = g
        .http
        .post(format!("{}/pay", order.pay_url))
        .form(&[("token", form_token(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["location"],
        "https://window.example/back?lang=vi&reference=FEE-QRY-1&result=paid"
    );
    assert_eq!(
        g.count("SELECT count(*) FROM paygate_orders WHERE transaction_id IS NOT NULL")
            .await,
        2
    );
    g.stop().await;
}

#[tokio::test]
async fn paying_twice_at_once_makes_one_transaction_and_one_notification() {
    let g = Gate::start().await;
    g.create("FEE-RACE-1", 150_000).await;
    let gate = g.gate();
    let (a, b, c) = tokio::join!(
        gate.pay("FEE-RACE-1"),
        gate.pay("FEE-RACE-1"),
        gate.pay("FEE-RACE-1")
    );
    let ids: Vec<_> = [a, b, c]
        .into_iter()
        .map(|r| r.unwrap().transaction_id.unwrap())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(
        g.count("SELECT count(*) FROM paygate_notifications").await,
        1
    );
    g.stop().await;
}

#[tokio::test]
async fn fault_lost_the_notification_never_arrives_and_is_not_pending() {
    let g = Gate::start().await;
    g.gate().set_faults(Faults {
        notification: Some(NotificationFault::Lost),
        ..Faults::default()
    });
    let tx = paid(&g, "FEE-LOST-1", 150_000).await;
    assert_eq!(g.gate().pending_notifications().await, 0);
    assert_eq!(g.gate().deliver_once().await, 0);
    assert_eq!(g.inbox.seen.load(Ordering::SeqCst), 0);
    // The status query still tells the truth: that is how the window finds the payment.
    let (_, order) = g.query("FEE-LOST-1").await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["transaction_id"], tx);

    // The fault applies to notifications queued while it is set, not after.
    g.gate().set_faults(Faults::default());
    paid(&g, "FEE-LOST-2", 150_000).await;
    assert_eq!(g.gate().deliver_once().await, 1);
    let got = g.notifications();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].reference, "FEE-LOST-2");
    g.stop().await;
}

#[tokio::test]
async fn fault_duplicated_two_valid_notifications_with_one_transaction() {
    let g = Gate::start().await;
    g.gate().set_faults(Faults {
        notification: Some(NotificationFault::Duplicated),
        ..Faults::default()
    });
    let tx = paid(&g, "FEE-DUP-1", 150_000).await;
    assert_eq!(g.gate().pending_notifications().await, 2);
    assert_eq!(g.gate().deliver_once().await, 2);
    let got = g.notifications();
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|n| n.transaction_id == tx && n.amount == 150_000));
    assert_ne!(got[0].notification_id, got[1].notification_id);
    g.stop().await;
}

#[tokio::test]
async fn fault_delayed_the_first_attempt_waits_for_the_delay() {
    let g = Gate::start().await;
    g.gate().set_faults(Faults {
        notification: Some(NotificationFault::Delayed),
        delay_secs: 1,
        ..Faults::default()
    });
    paid(&g, "FEE-DLY-1", 150_000).await;
    assert_eq!(g.gate().deliver_once().await, 0, "not before the delay");
    assert_eq!(g.inbox.seen.load(Ordering::SeqCst), 0);
    assert_eq!(g.gate().pending_notifications().await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(g.gate().deliver_once().await, 1);
    assert_eq!(g.notifications()[0].reference, "FEE-DLY-1");
    g.stop().await;
}

#[tokio::test]
async fn fault_bad_signature_arrives_never_verifies_and_is_retried_the_same_way() {
    let g = Gate::start().await;
    g.gate().set_faults(Faults {
        notification: Some(NotificationFault::BadSignature),
        ..Faults::default()
    });
    paid(&g, "FEE-BADSIG-1", 150_000).await;
    // The window refuses the first (as it should, the signature being bad): sent again, bad
    // again.
    g.inbox.refuse_first.store(1, Ordering::SeqCst);
    assert_eq!(g.gate().deliver_once().await, 0);
    assert_eq!(g.gate().deliver_once().await, 1);
    let got = g.inbox.bodies();
    assert_eq!(got.len(), 1);
    let (body, sig) = &got[0];
    assert!(sig.is_some(), "signed, but not over these bytes");
    assert!(g.platform.verify(body, sig.as_deref()).is_err());
    let n: Notification = serde_json::from_slice(body).unwrap();
    assert_eq!(n.amount, 150_000);
    g.stop().await;
}

#[tokio::test]
async fn fault_wrong_amount_is_validly_signed_with_1000_dong_less() {
    let g = Gate::start().await;
    g.gate().set_faults(Faults {
        notification: Some(NotificationFault::WrongAmount),
        ..Faults::default()
    });
    let tx = paid(&g, "FEE-AMT-1", 150_000).await;
    assert_eq!(g.gate().deliver_once().await, 1);
    let got = g.notifications();
    assert_eq!(got[0].amount, 149_000);
    assert_eq!(got[0].transaction_id, tx);
    // The order itself is unchanged.
    let (_, order) = g.query("FEE-AMT-1").await;
    assert_eq!(order["amount"], 150_000);
    g.stop().await;
}

#[tokio::test]
async fn fault_create_down_answers_503_and_stores_nothing() {
    let g = Gate::start().await;
    g.gate().set_faults(Faults {
        create_down: true,
        ..Faults::default()
    });
    let (status, err): (u16, PlatformError) = g
        .call("/api/orders", &g.order_request("FEE-DOWN-1", 150_000))
        .await;
    assert_eq!(status, 503);
    assert_eq!(err.code, "PLATFORM_UNAVAILABLE");
    assert_eq!(g.count("SELECT count(*) FROM paygate_orders").await, 0);
    // Back up: the same request succeeds.
    g.gate().set_faults(Faults::default());
    let order = g.create("FEE-DOWN-1", 150_000).await;
    assert_eq!(order.status, OrderStatus::Pending);
    g.stop().await;
}

#[tokio::test]
async fn refunds_pay_back_at_once_once_per_refund_reference_and_never_more_than_paid() {
    let g = Gate::start().await;
    let payment = paid(&g, "FEE-REF-1", 150_000).await;
    assert_eq!(g.gate().deliver_once().await, 1);

    let refund = |refund_reference: &str, amount: i64| RefundRequest {
        merchant_id: MERCHANT.into(),
        reference: "FEE-REF-1".into(),
        refund_reference: refund_reference.into(),
        amount,
        currency: "VND".into(),
        reason: "application withdrawn before review".into(),
        requested_at: Utc::now(),
    };
    let (status, first): (u16, Refund) = g.call("/api/refunds", &refund("RF-1", 50_000)).await;
    assert_eq!(status, 201);
    assert_eq!(first.amount, 50_000);
    assert_eq!(first.reference, "FEE-REF-1");
    let refund_tx = first
        .transaction_id
        .clone()
        .expect("the refund's transaction");
    assert_ne!(refund_tx, payment);
    // Repeated: the same refund, nothing more paid back.
    let (status, again): (u16, Refund) = g.call("/api/refunds", &refund("RF-1", 50_000)).await;
    assert_eq!((status, &again), (200, &first));
    let (status, err): (u16, PlatformError) = g.call("/api/refunds", &refund("RF-1", 60_000)).await;
    assert_eq!((status, err.code.as_str()), (409, "REFUND_CONFLICT"));
    // More than is left.
    let (status, err): (u16, PlatformError) =
        g.call("/api/refunds", &refund("RF-2", 100_001)).await;
    assert_eq!((status, err.code.as_str()), (409, "REFUND_EXCEEDS_PAID"));
    let (_, order) = g.query("FEE-REF-1").await;
    assert_eq!(order["status"], "paid", "partly refunded is still paid");

    // The rest: the order is refunded in full.
    let (status, _): (u16, Refund) = g.call("/api/refunds", &refund("RF-2", 100_000)).await;
    assert_eq!(status, 201);
    let (_, order) = g.query("FEE-REF-1").await;
    assert_eq!(order["status"], "refunded");
    let (status, err): (u16, PlatformError) = g.call("/api/refunds", &refund("RF-3", 1)).await;
    assert_eq!((status, err.code.as_str()), (409, "REFUND_EXCEEDS_PAID"));

    assert_eq!(g.gate().deliver_once().await, 2);
    let got = g.notifications();
    let mut refunds: Vec<_> = got
        .iter()
        .filter(|n| n.kind == NotificationKind::Refunded)
        .collect();
    // One pass delivers its notifications concurrently: they may arrive in either order.
    refunds.sort_by(|a, b| a.refund_reference.cmp(&b.refund_reference));
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0].refund_reference.as_deref(), Some("RF-1"));
    assert_eq!(refunds[0].amount, 50_000);
    assert_eq!(
        refunds[0].transaction_id, payment,
        "names the payment refunded"
    );
    assert_eq!(refunds[1].refund_reference.as_deref(), Some("RF-2"));
    assert_eq!(refunds[1].amount, 100_000);

    // Only a paid order can be refunded.
    g.create("FEE-REF-2", 10_000).await;
    let mut r = refund("RF-9", 10_000);
    r.reference = "FEE-REF-2".into();
    let (status, err): (u16, PlatformError) = g.call("/api/refunds", &r).await;
    assert_eq!((status, err.code.as_str()), (409, "ORDER_NOT_PAID"));
    r.reference = "FEE-NONE".into();
    let (status, err): (u16, PlatformError) = g.call("/api/refunds", &r).await;
    assert_eq!((status, err.code.as_str()), (404, "ORDER_NOT_FOUND"));
    assert_eq!(
        g.count("SELECT count(*) FROM paygate_refunds").await,
        2,
        "two refunds, whatever was asked"
    );
    g.stop().await;
}

/// GETs a settlement file: status, bytes, signature.
async fn settlement(g: &Gate, day: &str, merchant: &str) -> (u16, Vec<u8>, Option<String>) {
    let resp = g
        .http
        .get(format!(
            "{}/api/settlements/{day}.csv?merchant_id={merchant}",
            g.url
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
    }
    let sig = resp
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.bytes().await.unwrap().to_vec(), sig)
}

#[tokio::test]
async fn the_settlement_file_lists_the_days_payments_and_refunds_signed_with_its_faults() {
    let g = Gate::start().await;
    let t1 = paid(&g, "FEE-SET-1", 150_000).await;
    let t2 = paid(&g, "FEE-SET-2", 80_000).await;
    g.create("FEE-SET-3", 20_000).await; // never paid: not in the file
    let (status, r): (u16, Refund) = g
        .call(
            "/api/refunds",
            &RefundRequest {
                merchant_id: MERCHANT.into(),
                reference: "FEE-SET-2".into(),
                refund_reference: "RF-SET-2".into(),
                amount: 30_000,
                currency: "VND".into(),
                reason: "withdrawn".into(),
                requested_at: Utc::now(),
            },
        )
        .await;
    assert_eq!(status, 201);
    // The day of the payments in Viet Nam (the default settlement zone, UTC+7).
    let (_, first): (u16, Order) = g
        .call(
            "/api/orders/query",
            &StatusQuery {
                merchant_id: MERCHANT.into(),
                reference: "FEE-SET-1".into(),
                requested_at: Utc::now(),
            },
        )
        .await;
    let today = (first.paid_at.unwrap() + Duration::hours(7))
        .format("%Y-%m-%d")
        .to_string();

    let (status, csv, sig) = settlement(&g, &today, MERCHANT).await;
    assert_eq!(status, 200);
    g.platform.verify(&csv, sig.as_deref()).expect("signed");
    let rows = read_settlement(&csv).unwrap();
    let lines: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.transaction_id.as_str(),
                r.reference.as_str(),
                r.amount,
                r.status,
            )
        })
        .collect();
    let refund_tx = r.transaction_id.unwrap();
    assert_eq!(
        lines,
        vec![
            (t1.as_str(), "FEE-SET-1", 150_000, SettlementStatus::Paid),
            (t2.as_str(), "FEE-SET-2", 80_000, SettlementStatus::Paid),
            (
                refund_tx.as_str(),
                "FEE-SET-2",
                30_000,
                SettlementStatus::Refunded
            ),
        ]
    );
    assert!(rows.iter().all(|r| (Utc::now() - r.time).num_minutes() < 5));

    // Another day: an empty file, still signed.
    let (status, csv, sig) = settlement(&g, "2020-01-01", MERCHANT).await;
    assert_eq!(status, 200);
    g.platform.verify(&csv, sig.as_deref()).unwrap();
    assert!(read_settlement(&csv).unwrap().is_empty());

    // Faults: one payment left out, another's amount changed (its refund row keeps its own).
    g.gate().set_faults(Faults {
        settlement_omit: vec!["FEE-SET-1".into()],
        settlement_amounts: [("FEE-SET-2".to_owned(), 79_000)].into_iter().collect(),
        ..Faults::default()
    });
    let (_, csv, sig) = settlement(&g, &today, MERCHANT).await;
    g.platform.verify(&csv, sig.as_deref()).unwrap();
    let rows = read_settlement(&csv).unwrap();
    let lines: Vec<_> = rows
        .iter()
        .map(|r| (r.reference.as_str(), r.amount, r.status))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("FEE-SET-2", 79_000, SettlementStatus::Paid),
            ("FEE-SET-2", 30_000, SettlementStatus::Refunded),
        ]
    );

    // Unknown merchant, bad date: signed errors.
    let (status, body, sig) = settlement(&g, &today, "SOMEONE-ELSE").await;
    assert_eq!(status, 401);
    let err: PlatformError = g.platform.open(&body, sig.as_deref()).unwrap();
    assert_eq!(err.code, "MERCHANT_UNKNOWN");
    let (status, body, sig) = settlement(&g, "2026-13-45", MERCHANT).await;
    assert_eq!(status, 404);
    let err: PlatformError = g.platform.open(&body, sig.as_deref()).unwrap();
    assert_eq!(err.code, "DATE_INVALID");
    g.stop().await;
}

#[tokio::test]
async fn the_status_query_answers_the_order_as_it_is_now_or_404() {
    let g = Gate::start().await;
    let (status, err): (u16, PlatformError) = g
        .call(
            "/api/orders/query",
            &StatusQuery {
                merchant_id: MERCHANT.into(),
                reference: "FEE-Q-1".into(),
                requested_at: Utc::now(),
            },
        )
        .await;
    assert_eq!((status, err.code.as_str()), (404, "ORDER_NOT_FOUND"));
    let created = g.create("FEE-Q-1", 42_000).await;
    let (status, pending): (u16, Order) = g
        .call(
            "/api/orders/query",
            &StatusQuery {
                merchant_id: MERCHANT.into(),
                reference: "FEE-Q-1".into(),
                requested_at: Utc::now(),
            },
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(pending, created);
    let tx = g.gate().pay("FEE-Q-1").await.unwrap().transaction_id;
    let (_, now): (u16, Order) = g
        .call(
            "/api/orders/query",
            &StatusQuery {
                merchant_id: MERCHANT.into(),
                reference: "FEE-Q-1".into(),
                requested_at: Utc::now(),
            },
        )
        .await;
    assert_eq!(now.status, OrderStatus::Paid);
    assert_eq!(now.transaction_id, tx);
    // Unsigned: 401, whatever is asked.
    let body = serde_json::to_vec(&StatusQuery {
        merchant_id: MERCHANT.into(),
        reference: "FEE-Q-1".into(),
        requested_at: Utc::now(),
    })
    .unwrap();
    let (status, _, _) = g.post_raw("/api/orders/query", &body, None).await;
    assert_eq!(status, 401);
    g.stop().await;
}

#[tokio::test]
async fn the_faults_endpoint_needs_the_control_token_and_is_off_without_one() {
    let g = Gate::start_with(|s| s.control_token = Some("s3cret-token".into())).await;
    let faults = Faults {
        notification: Some(NotificationFault::Duplicated),
        create_down: true,
        ..Faults::default()
    };
    let url = format!("{}/api/faults", g.url);
    let resp = g.http.put(&url).json(&faults).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = g
        .http
        .put(&url)
        .bearer_auth("wrong-token!")
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = g
        .http
        .put(&url)
        .bearer_auth("s3cret-token")
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let now: Faults = g
        .http
        .get(&url)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now, faults);
    // In effect: creation is down.
    let (status, _): (u16, PlatformError) = g
        .call("/api/orders", &g.order_request("FEE-F-1", 1_000))
        .await;
    assert_eq!(status, 503);
    // JSON with snake_case names, as documented.
    let resp = g
        .http
        .put(&url)
        .bearer_auth("s3cret-token")
        .header("content-type", "application/json")
        .body(r#"{"notification":"wrong_amount"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    g.stop().await;

    let g = Gate::start().await;
    let resp = g
        .http
        .get(format!("{}/api/faults", g.url))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = g
        .http
        .get(format!("{}/health", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    g.stop().await;
}

#[tokio::test]
async fn a_merchant_certificate_file_may_appear_later_and_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("merchant.crt");
    let path = cert_path.clone();
    let g = Gate::start_with(move |s| {
        s.merchants = vec![Merchant {
            id: MERCHANT.into(),
            certificate: CertificateSource::Path(path),
        }];
    })
    .await;
    let (status, err): (u16, PlatformError) = g
        .call("/api/orders", &g.order_request("FEE-CERT-1", 1_000))
        .await;
    assert_eq!(
        (status, err.code.as_str()),
        (401, "MERCHANT_CERTIFICATE_MISSING")
    );

    // Another key's certificate: the merchant's signature does not verify.
    let (_, other) = generate("other", "VN").unwrap();
    std::fs::write(&cert_path, &other).unwrap();
    let (status, err): (u16, PlatformError) = g
        .call("/api/orders", &g.order_request("FEE-CERT-1", 1_000))
        .await;
    assert_eq!((status, err.code.as_str()), (401, "SIGNATURE_INVALID"));

    // The merchant's own certificate (as the window writes it at its first start).
    std::fs::write(&cert_path, g.merchant.certificate_pem().unwrap()).unwrap();
    let order = g.create("FEE-CERT-1", 1_000).await;
    assert_eq!(order.amount, 1_000);
    g.stop().await;
}

#[tokio::test]
async fn its_key_is_made_once_kept_private_and_a_readable_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let g = Gate::start().await;
    let dir = g._dir.path().join("paygate");
    let pem = g.gate().certificate_pem();
    let key = dir.join("paygate.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read(dir.join("paygate.crt")).unwrap(), pem);
    let database_url = g.database_url.clone();
    let mk = |dir: std::path::PathBuf, db: String| paygate::Settings {
        listen: "127.0.0.1:0".into(),
        database_url: Some(db),
        data_dir: dir,
        merchants: vec![],
        run_jobs: false,
        ..paygate::Settings::default()
    };
    // Started again on the same directory (and database): the same key.
    let again = paygate::start(mk(dir.clone(), database_url.clone()))
        .await
        .unwrap();
    assert_eq!(again.certificate_pem(), pem);
    again.stop().await;

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = paygate::start(mk(dir.clone(), database_url)).await;
    match refused {
        Err(paygate::PaygateError::Key { message, .. }) => {
            assert!(message.contains("chmod 600"), "{message}")
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("started with a key others can read"),
    }
    g.stop().await;
}

#[tokio::test]
async fn nsw_paygate_runs_as_a_process_until_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("control-token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nsw"))
        .current_dir(dir.path())
        .args(["paygate", "--listen", "127.0.0.1:0", "--data-dir", "gate"])
        .args(["--database-url", &empty_database().await])
        .args(["--merchant", "NSW-VN=nsw-data/payments/merchant.crt"])
        .arg("--control-token-file")
        .arg(&token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        if let Some(rest) = line.split("serving on ").nth(1) {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        seen.push(line);
        if seen.iter().any(|l| l.contains("paygate.crt")) && url.is_some() {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no URL printed: {seen:#?}"));
    assert!(
        seen.iter().any(|l| l.contains("gate/paygate.crt")),
        "{seen:#?}"
    );
    let http = reqwest::Client::new();
    let health = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let faults = http
        .get(format!("{url}/api/faults"))
        .bearer_auth("tok-123")
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status().as_u16(), 200);
    // The merchant's certificate is not there yet: its requests are answered, not fatal.
    let resp = http
        .post(format!("{url}/api/orders"))
        .body(r#"{"merchant_id":"NSW-VN"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let err: PlatformError = resp.json().await.unwrap();
    assert_eq!(err.code, "MERCHANT_CERTIFICATE_MISSING");
    assert!(dir.path().join("gate/paygate.key").exists());

    // SAFETY: signalling the child we started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
