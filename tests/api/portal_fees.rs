//! Fees in the portal, through HTTP as a browser uses it, against a real payment platform
//! (`nsw paygate` in process, its own database and key): the trader sees the fee due on its
//! application and in its list of fees, "Pay now" sends it to the platform's page, the return
//! page believes only what the platform signed (a `result=paid` the browser brings back changes
//! nothing), the notification makes the fee paid with an e-receipt to download; the officer
//! sees an unpaid application and cannot decide it, even with a forged form; a platform that
//! is down gives a message beside the button and loses nothing; another trader gets 404.

use std::process::Command;

use nsw::domain::party::Role;
use nsw::paygate::{Faults, NotificationFault};

use crate::helpers::TestApp;
use crate::payments::{PayWorld, MAIZE_APPLICANT as APPLICANT};
use crate::portal_trader::{Browser, PASSWORD};

const OTHER_TRADER: &str = "0301234567";
/// The officer of MARD-PPD that [`PayWorld`] adds.
const OFFICER: &str = "ppd-officer-1";

async fn set_password(app: &TestApp, id: &str) {
    let mut client = app.pool.get().await.unwrap();
    let phc = nsw::passwords::hash(PASSWORD).unwrap();
    nsw::store::parties::set_password(&mut client, id, &phc, "test")
        .await
        .unwrap();
}

/// [`PayWorld`] (a window collecting fees online, the payment platform it pins and that pins
/// it, the maize importer and an officer of MARD-PPD; nothing runs on its own: the test
/// delivers the platform's notifications with `gate().deliver_once()`), with passwords for the
/// portal and another trader.
async fn world() -> PayWorld {
    let w = PayWorld::start().await;
    w.app.add_party(Role::Enterprise, OTHER_TRADER).await;
    for id in [APPLICANT, OFFICER, OTHER_TRADER] {
        set_password(&w.app, id).await;
    }
    w
}

/// Files the maize import application (a fee of 350,000 đồng to MARD-PPD) through the API;
/// answers its id.
async fn apply(w: &PayWorld) -> String {
    w.apply().await["id"].as_str().unwrap().to_owned()
}

/// The application's status and its fee notice, as the API tells the applicant.
async fn recorded(w: &PayWorld, id: &str) -> (String, serde_json::Value) {
    (w.status(id).await, w.fee(id).await)
}

/// The payment reference on a page: `FEE-<year>-<six digits>`.
fn fee_reference(text: &str) -> String {
    let i = text.find("FEE-").expect("a payment reference on the page");
    text[i..i + 15].to_owned()
}

fn openssl_verifies(dir: &std::path::Path, xml: &[u8], p7s: &[u8], pem: &[u8]) -> bool {
    std::fs::write(dir.join("r.xml"), xml).unwrap();
    std::fs::write(dir.join("r.p7s"), p7s).unwrap();
    std::fs::write(dir.join("ca.pem"), pem).unwrap();
    Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(dir.join("r.p7s"))
        .arg("-content")
        .arg(dir.join("r.xml"))
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .args(["-out", "/dev/null"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_trader_pays_a_fee_through_the_platform_and_downloads_its_e_receipt() {
    let w = world().await;
    let id = apply(&w).await;
    let mut b = Browser::login(&w.app, APPLICANT).await;

    // The application page shows the fee due, with "Pay now"; its policy lets that form's
    // answer take the browser to the platform, and nowhere else.
    let page = b.get(&format!("/applications/{id}")).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    let reference = fee_reference(&text);
    assert!(text.contains("id=\"fee-title\""), "the fee block");
    assert!(text.contains("350.000 ₫"), "the amount");
    assert!(text.contains("Chưa nộp"), "the fee is due");
    assert!(
        text.contains("Chờ nộp phí"),
        "the application awaits payment"
    );
    assert!(text.contains(&format!("action=\"/applications/{id}/pay\"")));
    assert!(text.contains("Nộp phí trực tuyến"));
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains(&format!("form-action 'self' {};", w.gate().url())),
        "{csp}"
    );
    let csrf = page.csrf();

    // The list of fees has it, with a link to its application; a filter narrows it.
    let fees = b.get("/fees").await;
    assert_eq!(fees.status, 200);
    assert!(fees.text().contains(&reference));
    assert!(fees
        .text()
        .contains(&format!("href=\"/applications/{id}\"")));
    assert!(!b.get("/fees?status=paid").await.text().contains(&reference));
    assert!(b.get("/fees?q=FEE-").await.text().contains(&reference));
    assert!(
        b.get("/").await.text().contains("href=\"/fees\""),
        "navigation"
    );

    // "Pay now" without the form's token does nothing; with it, the browser goes to the
    // platform's page for this fee.
    let forged = b
        .post_form(&format!("/applications/{id}/pay"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, 403);
    let paying = b
        .post_form(&format!("/applications/{id}/pay"), &[("csrf", &csrf)])
        .await;
    assert_eq!(paying.status, 303, "{}", paying.text());
    let pay_url = paying.location.clone().unwrap();
    assert!(
        pay_url.starts_with(&format!("{}/pay/", w.gate().url())),
        "{pay_url}"
    );
    let platform_page = reqwest::get(&pay_url).await.unwrap().text().await.unwrap();
    assert!(platform_page.contains(&reference), "{platform_page}");

    // Back from the platform claiming "paid" before anything was paid: the page asks the
    // platform, which says pending, and shows "waiting"; nothing changed.
    let back = b
        .get(&format!(
            "/payments/return?reference={reference}&result=paid"
        ))
        .await;
    assert_eq!(back.status, 200);
    assert!(
        back.text().contains("data-outcome=\"waiting\""),
        "{}",
        back.text()
    );
    assert!(back.text().contains("Chờ xác nhận thanh toán"));
    let (status, fee) = recorded(&w, &id).await;
    assert_eq!(status, "awaiting_payment");
    assert_eq!(fee["status"], "due");

    // The payer pays at the platform; until its notification arrives the application page
    // (which asks no one) still shows the fee due.
    w.gate().pay(&reference).await.unwrap();
    let page = b.get(&format!("/applications/{id}")).await;
    assert!(page.text().contains("Chưa nộp"));
    assert_eq!(
        w.gate().deliver_once().await,
        1,
        "the notification is acknowledged"
    );
    let (status, fee) = recorded(&w, &id).await;
    assert_eq!(status, "received");
    assert_eq!(fee["status"], "paid");
    let receipt = fee["receipt"]["number"].as_str().unwrap().to_owned();
    let transaction = fee["receipt"]["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let page = b.get(&format!("/applications/{id}")).await;
    let text = page.text();
    assert!(text.contains("Đã nộp"), "paid");
    assert!(text.contains(&transaction), "with its transaction");
    assert!(text.contains(&receipt));
    assert!(text.contains(&format!("href=\"/fees/{reference}/receipt.xml\"")));
    assert!(text.contains(&format!("href=\"/fees/{reference}/receipt.p7s\"")));
    assert!(
        !text.contains(&format!("action=\"/applications/{id}/pay\"")),
        "nothing to pay"
    );

    // The return page now says so, with the receipt.
    let back = b
        .get(&format!(
            "/payments/return?reference={reference}&result=paid"
        ))
        .await;
    assert!(
        back.text().contains("data-outcome=\"paid\""),
        "{}",
        back.text()
    );
    assert!(back.text().contains(&receipt));
    assert!(b.get("/fees?status=paid").await.text().contains(&receipt));

    // The downloads are the API's bytes, and the signature verifies with the certificate the
    // portal offers.
    let xml = b.get(&format!("/fees/{reference}/receipt.xml")).await;
    assert_eq!(xml.status, 200);
    assert_eq!(xml.header("content-type"), "application/xml");
    assert!(xml
        .header("content-disposition")
        .contains(&format!("{receipt}.xml")));
    let p7s = b.get(&format!("/fees/{reference}/receipt.p7s")).await;
    assert_eq!(p7s.header("content-type"), "application/pkcs7-signature");
    let api_xml = w
        .app
        .get(&w.applicant, &format!("/api/v1/fees/{reference}/receipt"))
        .await;
    assert_eq!(xml.body, api_xml.body, "the same bytes as the API");
    let pem = b.get("/fees/receipt-certificate.pem").await;
    assert_eq!(pem.status, 200);
    let tmp = tempfile::tempdir().unwrap();
    assert!(openssl_verifies(
        tmp.path(),
        &xml.body,
        &p7s.body,
        &pem.body
    ));
    let mut altered = xml.body.clone();
    let i = altered.len() / 2;
    altered[i] ^= 1;
    assert!(!openssl_verifies(
        tmp.path(),
        &altered,
        &p7s.body,
        &pem.body
    ));

    // Another trader sees none of it.
    let mut other = Browser::login(&w.app, OTHER_TRADER).await;
    for path in [
        format!("/applications/{id}"),
        format!("/fees/{reference}/receipt.xml"),
        format!("/fees/{reference}/receipt.p7s"),
        format!("/payments/return?reference={reference}&result=paid"),
    ] {
        assert_eq!(other.get(&path).await.status, 404, "{path}");
    }
    let csrf = other.get("/fees").await.csrf();
    let r = other
        .post_form(&format!("/applications/{id}/pay"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 404);
    assert!(!other.get("/fees").await.text().contains(&reference));

    w.stop().await;
}

#[tokio::test]
async fn a_lost_notification_is_learnt_from_the_platform_on_the_payers_return() {
    let w = world().await;
    let id = apply(&w).await;
    let mut b = Browser::login(&w.app, APPLICANT).await;
    let page = b.get(&format!("/applications/{id}")).await;
    let reference = fee_reference(&page.text());
    let paying = b
        .post_form(
            &format!("/applications/{id}/pay"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(paying.status, 303);

    w.gate().set_faults(Faults {
        notification: Some(NotificationFault::Lost),
        ..Faults::default()
    });
    w.gate().pay(&reference).await.unwrap();
    assert_eq!(w.gate().deliver_once().await, 0, "nothing is sent");
    // The page asks the platform (a signed answer), which says paid.
    let back = b
        .get(&format!(
            "/payments/return?reference={reference}&result=paid"
        ))
        .await;
    assert!(
        back.text().contains("data-outcome=\"paid\""),
        "{}",
        back.text()
    );
    let (status, fee) = recorded(&w, &id).await;
    assert_eq!(status, "received");
    assert_eq!(fee["status"], "paid");
    w.stop().await;
}

#[tokio::test]
async fn a_cancelled_payment_can_be_paid_again_and_a_platform_that_is_down_loses_nothing() {
    let w = world().await;
    let id = apply(&w).await;
    let mut b = Browser::login(&w.app, APPLICANT).await;
    let page = b.get(&format!("/applications/{id}")).await;
    let reference = fee_reference(&page.text());
    let csrf = page.csrf();

    // The platform is down: the page again, the reason beside the button, 503; no order kept.
    w.gate().set_faults(Faults {
        create_down: true,
        ..Faults::default()
    });
    let down = b
        .post_form(&format!("/applications/{id}/pay"), &[("csrf", &csrf)])
        .await;
    assert_eq!(down.status, 503, "{}", down.text());
    assert!(down.header("retry-after").parse::<u64>().is_ok());
    let text = down.text();
    assert!(text.contains("id=\"pay-error\""));
    assert!(text.contains("Hiện không kết nối được Cổng thanh toán"));
    assert!(
        text.find("id=\"pay-now\"").unwrap() < text.find("id=\"pay-error\"").unwrap(),
        "the message comes right after the button"
    );
    assert_eq!(w.app.count("payment_orders").await, 0);
    let (status, fee) = recorded(&w, &id).await;
    assert_eq!(status, "awaiting_payment");
    assert_eq!(fee["status"], "due");

    // Back up: pressing again works.
    w.gate().set_faults(Faults::default());
    let first = b
        .post_form(&format!("/applications/{id}/pay"), &[("csrf", &csrf)])
        .await;
    assert_eq!(first.status, 303, "{}", first.text());
    let first_url = first.location.unwrap();

    // The payer cancels at the platform; the notification says so; the return page says the
    // fee is still to pay and offers to pay again, which makes a new order.
    w.gate().cancel(&reference).await.unwrap();
    assert_eq!(w.gate().deliver_once().await, 1);
    let back = b
        .get(&format!(
            "/payments/return?reference={reference}&result=cancelled"
        ))
        .await;
    let text = back.text();
    assert!(text.contains("data-outcome=\"not-paid\""), "{text}");
    assert!(text.contains("bạn có thể nộp lại") || text.contains("Bạn có thể nộp lại"));
    assert!(text.contains(&format!("action=\"/applications/{id}/pay\"")));
    let again = b
        .post_form(&format!("/applications/{id}/pay"), &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status, 303);
    let second_url = again.location.unwrap();
    assert_ne!(first_url, second_url, "a new order");
    assert_eq!(w.app.count("payment_orders").await, 2);

    // The second order is paid; the payer comes back with its own platform reference.
    let second_reference = format!("{reference}-2");
    w.gate().pay(&second_reference).await.unwrap();
    assert_eq!(w.gate().deliver_once().await, 1);
    let back = b
        .get(&format!(
            "/payments/return?reference={second_reference}&result=paid"
        ))
        .await;
    assert!(
        back.text().contains("data-outcome=\"paid\""),
        "{}",
        back.text()
    );
    assert!(
        back.text().contains(&reference),
        "the notice's own reference"
    );
    w.stop().await;
}

#[tokio::test]
async fn the_return_page_without_a_session_offers_a_link_back_to_itself() {
    let w = world().await;
    let mut anonymous = Browser::new(&w.app);
    let path = "/payments/return?reference=FEE-2026-000001&result=paid";
    let r = anonymous.get(path).await;
    // A browser coming back from a platform on another site does not send the SameSite=Strict
    // session cookie: a link on this site brings it.
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("href=\"/payments/return?reference=FEE-2026-000001&#38;result=paid\""),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains("FEE-2026-000001</"),
        "nothing about the fee is shown"
    );
    w.stop().await;
}

#[tokio::test]
async fn the_officer_sees_an_unpaid_application_and_cannot_decide_it() {
    let w = world().await;
    let id = apply(&w).await;
    let mut officer = Browser::login(&w.app, OFFICER).await;

    let inbox = officer.get("/inbox?status=awaiting_payment").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.text().contains(&format!("/inbox/{id}")));
    assert!(inbox
        .text()
        .contains("<option value=\"awaiting_payment\" selected"));

    let page = officer.get(&format!("/inbox/{id}")).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("id=\"fee-unpaid\""));
    assert!(text.contains("chưa thể xử lý hay quyết định hồ sơ này"));
    assert!(text.contains("Chưa nộp"), "the fee's status");
    assert!(!text.contains("name=\"action\""), "no decision form");
    assert!(!text.contains("/pay\""), "no pay form for the officer");

    // A forged decision is refused on the page (409), and nothing changes.
    let csrf = page.csrf();
    for action in ["review", "issue", "refuse", "request_supplement"] {
        let r = officer
            .post_form(
                &format!("/inbox/{id}/decision"),
                &[("csrf", &csrf), ("action", action), ("reason", "x")],
            )
            .await;
        assert_eq!(r.status, 409, "{action}: {}", r.text());
        assert!(r.text().contains("id=\"refusal\""), "{action}");
        assert!(r.text().contains("chưa thể xử lý hay quyết định hồ sơ này"));
    }
    let (status, fee) = recorded(&w, &id).await;
    assert_eq!(status, "awaiting_payment");
    assert_eq!(fee["status"], "due");

    // Once paid, the officer sees when, and may review it.
    let reference = fee["reference"].as_str().unwrap().to_owned();
    let mut b = Browser::login(&w.app, APPLICANT).await;
    let csrf_t = b.get(&format!("/applications/{id}")).await.csrf();
    let r = b
        .post_form(&format!("/applications/{id}/pay"), &[("csrf", &csrf_t)])
        .await;
    assert_eq!(r.status, 303);
    w.gate().pay(&reference).await.unwrap();
    assert_eq!(w.gate().deliver_once().await, 1);
    let text = officer.get(&format!("/inbox/{id}")).await.text();
    assert!(!text.contains("id=\"fee-unpaid\""));
    assert!(text.contains("Đã nộp"));
    assert!(text.contains("Thời điểm nộp"));
    assert!(
        !text.contains("receipt.xml"),
        "the receipt links are the applicant's"
    );
    let r = officer
        .post_form(
            &format!("/inbox/{id}/decision"),
            &[("csrf", &csrf), ("action", "review")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(recorded(&w, &id).await.0, "under_review");
    w.stop().await;
}
