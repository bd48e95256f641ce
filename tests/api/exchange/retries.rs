//! Delivery that fails: partners down, faults retried, lost receipts resent, duplicates stored
//! once, dead letters requeued by an operator, signed rejections final.

use serde_json::{json, Value};

use super::{form_d, Plan};

#[tokio::test]
async fn a_partner_down_for_a_while_gets_the_message_once_when_it_comes_up() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    // SG is not running yet: connections are refused.
    let sent = vn.send_form_d(form_d()).await;
    let id = sent["message_id"].as_str().unwrap();
    let failing = vn
        .wait_until(id, |m| m["attempts"].as_i64().unwrap() >= 2)
        .await;
    assert!(
        failing["last_error"]
            .as_str()
            .unwrap()
            .starts_with("transport"),
        "{failing}"
    );
    assert_ne!(failing["status"], "delivered");

    let sg = plan.start("SG").await;
    let done = vn.wait_status(id, "delivered").await;
    assert_eq!(done["message_id"], sent["message_id"]);
    assert_eq!(sg.inbound_count().await, 1);
    let inbox = sg.inbox().await;
    assert_eq!(inbox[0]["message_id"], sent["message_id"]);
}

#[tokio::test]
async fn faults_are_retried_and_the_message_is_stored_once() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    for (fault, error) in [
        (json!({ "mode": "status", "status": 503 }), "HTTP 503"),
        (json!({ "mode": "status", "status": 500 }), "HTTP 500"),
        (json!({ "mode": "drop_connection" }), "transport"),
        (
            json!({ "mode": "bad_receipt_signature" }),
            "receipt refused: SIGNATURE_INVALID",
        ),
        (json!({ "mode": "lost_receipt" }), "transport"),
    ] {
        let before = sg.inbound_count().await;
        sg.fault(fault.clone(), Some(1)).await;
        let sent = vn.send_form_d(form_d()).await;
        let id = sent["message_id"].as_str().unwrap();
        let done = vn.wait_status(id, "delivered").await;
        assert_eq!(done["attempts"], 2, "{fault}: {done}");
        assert_eq!(sg.inbound_count().await, before + 1, "{fault}");
        // The failed attempt is in the audit trail with its reason.
        let client = vn.app.pool.get().await.unwrap();
        let err: Value = client
            .query_one(
                "SELECT details FROM audit_log WHERE subject = $1 AND action = 'exchange.retry_wait'",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            err["error"].as_str().unwrap().contains(error),
            "{fault}: {err}"
        );
    }
}

#[tokio::test]
async fn a_lost_receipt_is_resent_and_the_same_receipt_comes_back() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;
    sg.fault(json!({ "mode": "lost_receipt" }), Some(1)).await;
    let sent = vn.send_form_d(form_d()).await;
    let id = sent["message_id"].as_str().unwrap();
    let done = vn.wait_status(id, "delivered").await;
    assert_eq!(done["attempts"], 2);
    assert_eq!(sg.inbound_count().await, 1);
    let row = &sg.inbox().await[0];
    let stored_receipt = sg
        .app
        .get(
            &sg.customs,
            &format!(
                "/api/v1/exchange/inbox/{}/receipt",
                row["id"].as_str().unwrap()
            ),
        )
        .await
        .body;
    assert_eq!(
        done["receipt"].as_str().unwrap().as_bytes(),
        &stored_receipt[..]
    );
}

#[tokio::test]
async fn duplicate_deliveries_are_stored_once() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.window("VN").without_jobs().start().await;
    let sg = plan.start("SG").await;
    vn.fault(json!({ "mode": "duplicate_delivery" }), None)
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            vn.send_form_d(form_d()).await["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(vn.app.run_outbox_once().await, 3);
    for id in &ids {
        let done = vn.outbox(id).await;
        assert_eq!(done["status"], "delivered", "{done}");
        assert_eq!(done["attempts"], 1);
    }
    assert_eq!(sg.inbound_count().await, 3);
}

#[tokio::test]
async fn dead_letters_are_requeued_by_an_operator_with_the_same_id() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan
        .window("VN")
        .settings(|s| s.exchange.max_attempts = 2)
        .start()
        .await;
    let sg = plan.start("SG").await;
    sg.fault(json!({ "mode": "status", "status": 503 }), None)
        .await;

    let sent = vn.send_form_d(form_d()).await;
    let id = sent["message_id"].as_str().unwrap();
    let dead = vn.wait_status(id, "dead_letter").await;
    assert_eq!(dead["attempts"], 2);
    let listed = vn
        .app
        .get(
            &vn.admin,
            "/api/v1/admin/exchange/outbox?status=dead_letter",
        )
        .await
        .json();
    assert_eq!(listed["items"][0]["message_id"], sent["message_id"]);

    // The database refuses to deliver a failed message behind the state machine's back.
    let client = vn.app.pool.get().await.unwrap();
    let err = client
        .execute(
            "UPDATE outbox SET status = 'delivered', receipt = 'x', receipt_signature = 'x' WHERE message_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not allowed") || format!("{err:?}").contains("not allowed"),
        "{err:?}"
    );
    assert!(client.execute("DELETE FROM outbox", &[]).await.is_err());

    sg.fault(json!({ "mode": "none" }), None).await;
    let r = vn
        .post_json(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{id}/requeue"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = vn.wait_status(id, "delivered").await;
    assert_eq!(done["message_id"], sent["message_id"]);
    assert_eq!(sg.inbox().await[0]["message_id"], sent["message_id"]);

    // Only dead letters can be requeued.
    let r = vn
        .post_json(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{id}/requeue"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/admin/exchange/outbox/{id}/requeue"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_signed_rejection_ends_the_message_without_retries() {
    let plan = Plan::new(&["VN", "SG"]);
    // SG takes only ACDDs from VN: a Form D is refused with a signed receipt.
    std::fs::write(
        plan.dir.path().join("SG-partners.toml"),
        format!(
            "[[partner]]\ncountry = \"VN\"\nendpoint = \"http://127.0.0.1:{}/exchange/v1/messages\"\nca_cert = \"VN/ca.crt\"\ndocuments = [\"ACDD\"]\nprofile = \"asw\"\n",
            plan.port("VN")
        ),
    )
    .unwrap();
    let vn = plan.window("VN").without_jobs().start().await;
    let sg = plan.start("SG").await;
    let sent = vn.send_form_d(form_d()).await;
    assert_eq!(vn.app.run_outbox_once().await, 1);
    let done = vn.outbox(sent["message_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert_eq!(done["attempts"], 1);
    let receipt = done["receipt"].as_str().unwrap();
    assert!(
        receipt.contains("<Code>DOCUMENT_NOT_EXCHANGED</Code>"),
        "{receipt}"
    );
    assert_eq!(sg.inbound_count().await, 0);
    // A rejected message is final: not even an operator requeues it.
    let r = vn
        .post_json(
            &vn.admin,
            &format!(
                "/api/v1/admin/exchange/outbox/{}/requeue",
                sent["message_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
}
