//! The `fail_ratio` fault: a partner that answers a share of deliveries with 503, set through
//! the admin API, and what the sender makes of it (retries, the message stored once).

use serde_json::{json, Value};

use crate::exchange::Plan;
use crate::helpers::fixture;

#[tokio::test]
async fn fail_ratio_out_of_range_is_refused() {
    let plan = Plan::new(&["VN", "SG"]);
    let sg = plan.start("SG").await;
    for ratio in [1.5, -0.1] {
        let r = sg
            .app
            .request(
                reqwest::Method::PUT,
                "/api/v1/admin/exchange/fault",
                Some(&sg.admin),
                &[("content-type", "application/json")],
                Some(
                    json!({ "fault": { "mode": "fail_ratio", "ratio": ratio } })
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], "FAULT_RATIO");
    }
    // A customs officer may not set faults at all.
    let r = sg
        .app
        .request(
            reqwest::Method::PUT,
            "/api/v1/admin/exchange/fault",
            Some(&sg.customs),
            &[("content-type", "application/json")],
            Some(
                json!({ "fault": { "mode": "fail_ratio", "ratio": 0.1 } })
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn failed_shares_are_retried_and_each_message_is_stored_once() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    // Ratio 1 for the next two requests: deterministic, so the attempts can be counted.
    sg.fault(json!({ "mode": "fail_ratio", "ratio": 1.0 }), Some(2))
        .await;
    let sent = vn
        .send_form_d(fixture("valid/certificate-of-origin/vn-sg-form-d.xml"))
        .await;
    let id = sent["message_id"].as_str().unwrap();
    let done = vn.wait_status(id, "delivered").await;
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(sg.inbound_count().await, 1);
    let client = vn.app.pool.get().await.unwrap();
    let errors: Vec<Value> = client
        .query(
            "SELECT details FROM audit_log WHERE subject = $1 AND action = 'exchange.retry_wait'
              ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(e["error"].as_str().unwrap().starts_with("HTTP 503"), "{e}");
    }
}
