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

/// What the test's notification endpoint received: each body with its signature header.
#[derive(Clone, Default)]
struct Inbox {
    received: Arc<Mutex<Vec<(Vec<u8>, Option<String>)>>>,
    /// Answer 500 to this many requests first.
    refuse_first: Arc<AtomicUsize>,
    /// Requests seen (refused ones included).
    seen: Arc<AtomicUsize>,
}

impl Inbox {
    fn bodies(&self) -> Vec<(Vec<u8>, Option<String>)> {
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
        let mut settings = paygate::Settings {
            listen: "127.0.0.1:0".into(),
            database_url: Some(empty_database().await),
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

    async fn order_count(&self) -> i64 {
        // The platform's state as its own status query sees it.
        let (status, _): (u16, serde_json::Value) = self
            .call(
                "/api/orders/query",
                &StatusQuery {
                    merchant_id: MERCHANT.into(),
                    reference: "NONE".into(),
                    requested_at: Utc::now(),
                },
            )
            .await;
        assert_eq!(status, 404);
        0
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
    assert_eq!(status, 404, "no order was stored");
    assert_eq!(g.order_count().await, 0);
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
