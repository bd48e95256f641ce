//! Messages travel between running windows: both ways in one conversation, sent by customs
//! clearance in the same transaction, claimed once by concurrent senders, moved only as the
//! message state machine allows.

use nsw::domain::party::Role;
use serde_json::json;
use uuid::Uuid;

use super::{declarant_of, form_d, Plan};
use crate::helpers::{fixture, fresh_database};

/// A window whose key files are PEM in clear (as windows wrote them before keys were sealed,
/// with no key-encryption key yet) seals them in place when it starts, under a key-encryption
/// key it makes, and signs as before: its messages verify at the partner.
#[tokio::test]
async fn a_window_with_key_files_in_clear_seals_them_at_start_and_still_signs() {
    use nsw::exchange::keys::{self, KeyDir};
    use std::os::unix::fs::PermissionsExt;
    let plan = Plan::new(&["VN", "SG"]);
    let dir = plan.dir.path().join("VN");
    let names = [keys::CA_KEY, keys::SIGNING_KEY, keys::TLS_KEY];
    let mut clear = Vec::new();
    for name in names {
        let pem = KeyDir::at(&dir).private_key_pem(name).unwrap();
        std::fs::write(dir.join(name), &pem).unwrap();
        clear.push(pem);
    }
    std::fs::remove_file(dir.join(nsw::secrets::KEK_FILE)).unwrap();
    assert!(String::from_utf8_lossy(&clear[1]).contains("PRIVATE KEY"));

    // The keys directory inside the data directory: the window's own.
    let data_dir = plan.dir.path().to_path_buf();
    let vn = plan
        .window("VN")
        .settings(move |s| s.data_dir = data_dir)
        .start()
        .await;
    let sg = plan.start("SG").await;
    for (name, pem) in names.iter().zip(&clear) {
        let stored = std::fs::read(dir.join(name)).unwrap();
        let text = String::from_utf8_lossy(&stored);
        assert!(text.starts_with("nswkek1:"), "{name} sealed: {text}");
        assert!(!text.contains("PRIVATE KEY"), "{name}");
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
        assert_eq!(
            &KeyDir::at(&dir).private_key_pem(name).unwrap(),
            pem,
            "{name}: the same key"
        );
    }
    let kek = std::fs::metadata(dir.join(nsw::secrets::KEK_FILE)).unwrap();
    assert_eq!(kek.permissions().mode() & 0o777, 0o600);

    let acdd = vn
        .export_acdd("valid/declaration/23-export-garments-to-sg-sea.xml")
        .await;
    let delivered = vn
        .wait_status(acdd["message_id"].as_str().unwrap(), "delivered")
        .await;
    assert!(delivered["receipt"]
        .as_str()
        .unwrap()
        .contains("<Status>accepted</Status>"));
    let inbox = sg.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["sender"], "VN");
}

#[tokio::test]
async fn acdd_form_d_and_business_response_travel_both_ways() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    let acdd = vn
        .export_acdd("valid/declaration/23-export-garments-to-sg-sea.xml")
        .await;
    let acdd_id = acdd["message_id"].as_str().unwrap();
    let delivered = vn.wait_status(acdd_id, "delivered").await;
    assert_eq!(delivered["receiver"], "SG");
    assert!(delivered["receipt"]
        .as_str()
        .unwrap()
        .contains("<Status>accepted</Status>"));

    let form = vn.send_form_d(form_d()).await;
    let form_id = form["message_id"].as_str().unwrap();
    vn.wait_status(form_id, "delivered").await;

    let inbox = sg.inbox().await;
    assert_eq!(inbox.len(), 2);
    let got_acdd = inbox.iter().find(|m| m["document_type"] == "ACDD").unwrap();
    assert_eq!(got_acdd["message_id"], acdd["message_id"]);
    assert_eq!(got_acdd["sender"], "VN");
    assert_eq!(got_acdd["reference"], acdd["reference"]);
    let got_form = inbox
        .iter()
        .find(|m| m["document_type"] == "FORM_D")
        .unwrap();
    assert_eq!(got_form["reference"], "VN-SG-26-02-0045218");

    // The envelope is stored byte for byte as VN sent it.
    let sent = vn
        .app
        .get(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{acdd_id}/envelope"),
        )
        .await
        .body;
    let stored = sg
        .app
        .get(
            &sg.customs,
            &format!(
                "/api/v1/exchange/inbox/{}/envelope",
                got_acdd["id"].as_str().unwrap()
            ),
        )
        .await
        .body;
    assert_eq!(sent, stored);

    // SG customs answers the Form D; the response travels back in the same conversation.
    let r = sg
        .post_json(
            &sg.customs,
            &format!("/api/v1/exchange/messages/{}/response", got_form["id"].as_str().unwrap()),
            json!({ "decision": "preference-not-granted",
                    "reasons": [{ "code": "ORIGIN_CRITERION_NOT_MET", "text": "RVC not substantiated",
                                  "path": "/CertificateOfOrigin/Item[2]/OriginCriterion" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let response_id = r.json()["message_id"].as_str().unwrap().to_owned();
    sg.wait_status(&response_id, "delivered").await;
    let back = vn.inbox().await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["document_type"], "BUSINESS_RESPONSE");
    assert_eq!(back[0]["function"], "response");
    assert_eq!(back[0]["previous_reference"], "VN-SG-26-02-0045218");
    assert_eq!(back[0]["conversation_id"], form["conversation_id"]);
    // The operator finds the answer from the message it answers.
    let sent = vn
        .app
        .get(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{form_id}"),
        )
        .await
        .json();
    let answers = sent["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 1, "{sent}");
    assert_eq!(answers[0]["message_id"], back[0]["message_id"]);
    assert_eq!(answers[0]["document_type"], "BUSINESS_RESPONSE");
    // The ACDD, not answered, lists none.
    let acdd_view = vn
        .app
        .get(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{acdd_id}"),
        )
        .await
        .json();
    assert_eq!(acdd_view["answers"], json!([]));

    // Answered once only.
    let again = sg
        .post_json(
            &sg.customs,
            &format!(
                "/api/v1/exchange/messages/{}/response",
                got_form["id"].as_str().unwrap()
            ),
            json!({ "decision": "preference-granted" }),
        )
        .await;
    assert_eq!(again.status, 409);

    // Roles: an enterprise sees no inbox; customs cannot use the operator console.
    let ent = sg.app.add_party(Role::Enterprise, "SG-ENT-1").await;
    assert_eq!(sg.app.get(&ent, "/api/v1/exchange/inbox").await.status, 403);
    assert_eq!(
        sg.app
            .get(&sg.customs, "/api/v1/admin/exchange/outbox")
            .await
            .status,
        403
    );
    assert_eq!(
        sg.app
            .get_anonymously("/api/v1/exchange/inbox")
            .await
            .status,
        401
    );

    // Every state change is in the audit trail.
    let client = vn.app.pool.get().await.unwrap();
    let actions: Vec<String> = client
        .query(
            "SELECT action FROM audit_log WHERE subject = $1 ORDER BY id",
            &[&acdd_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        [
            "exchange.enqueued",
            "exchange.sending",
            "exchange.delivered"
        ]
    );
}

#[tokio::test]
async fn two_sender_instances_on_one_database_never_send_a_message_twice() {
    let plan = Plan::new(&["VN", "SG"]);
    let db = fresh_database().await;
    // Two VN instances: the second on another port, same database and keys.
    let a = plan.window("VN").database(&db).start().await;
    let b = plan
        .window("VN")
        .database(&db)
        .settings(|s| s.listen = "127.0.0.1:0".into())
        .start()
        .await;
    let sg = plan.start("SG").await;
    sg.fault(json!({ "mode": "slow", "delay_ms": 100 }), None)
        .await;

    let mut ids = Vec::new();
    for i in 0..24 {
        let w = if i % 2 == 0 { &a } else { &b };
        ids.push(
            w.send_form_d(form_d()).await["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        let done = a.wait_status(id, "delivered").await;
        // Claimed once, sent once: a second concurrent claim would have shown as an attempt.
        assert_eq!(done["attempts"], 1, "{done}");
    }
    assert_eq!(sg.inbound_count().await, 24);
    let _ = b;
}

#[tokio::test]
async fn the_database_and_the_code_agree_on_the_message_state_machine() {
    use nsw::exchange::state::Status;
    let db = fresh_database().await;
    let pool = nsw::db::pool(&db, 2).unwrap();
    {
        let mut c = pool.get().await.unwrap();
        nsw::db::migrate::run(&mut c).await.unwrap();
    }
    let client = pool.get().await.unwrap();
    // Columns each state needs, so that only the trigger can say no.
    let fields = "locked_by = CASE WHEN $2 = 'sending' THEN gen_random_uuid() END,
                  locked_until = CASE WHEN $2 = 'sending' THEN now() END,
                  receipt = CASE WHEN $2 IN ('delivered', 'rejected') THEN 'r'::bytea END,
                  receipt_signature = CASE WHEN $2 IN ('delivered', 'rejected') THEN 's'::bytea END";
    for from in Status::ALL {
        for to in Status::ALL.into_iter().filter(|&t| t != from) {
            let id = Uuid::now_v7();
            // Rows are created as pending; reach `from` without the trigger in the way.
            client
                .batch_execute("ALTER TABLE outbox DISABLE TRIGGER outbox_state_machine")
                .await
                .unwrap();
            client
                .execute(
                    "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type,
                        function, reference, envelope, sha256, max_attempts, expires_at, cause)
                     VALUES ($1, $1, $1, 'SG', 'ACDD', 'submit', 'R', 'x', sha256('x'), 3, now(),
                             'operator:' || $1::uuid::text)",
                    &[&id],
                )
                .await
                .unwrap();
            client
                .execute(
                    &format!("UPDATE outbox SET status = $2, {fields} WHERE id = $1"),
                    &[&id, &from.as_str()],
                )
                .await
                .unwrap();
            client
                .batch_execute("ALTER TABLE outbox ENABLE TRIGGER outbox_state_machine")
                .await
                .unwrap();
            let db_allows = client
                .execute(
                    &format!("UPDATE outbox SET status = $2, {fields} WHERE id = $1"),
                    &[&id, &to.as_str()],
                )
                .await
                .is_ok();
            assert_eq!(
                db_allows,
                from.can_become(to),
                "{from:?} -> {to:?}: database and code disagree"
            );
        }
    }
}

#[tokio::test]
async fn clearing_an_export_sends_its_acdd_in_the_same_transaction() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    let xml = fixture("valid/declaration/23-export-garments-to-sg-sea.xml");
    let exporter = vn
        .app
        .add_party(Role::Enterprise, &declarant_of(&xml))
        .await;
    let r = vn.app.submit(&exporter, xml).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let before = vn.app.count("outbox").await;

    // Holding for inspection sends nothing; clearing sends the ACDD.
    let hold = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/declarations/{id}/decision"),
            json!({"action": "hold"}),
        )
        .await;
    assert_eq!(hold.status, 200, "{}", String::from_utf8_lossy(&hold.body));
    assert!(hold.json().get("acdd").is_none());
    assert_eq!(vn.app.count("outbox").await, before);

    let clear = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/declarations/{id}/decision"),
            json!({"action": "clear"}),
        )
        .await;
    assert_eq!(
        clear.status,
        200,
        "{}",
        String::from_utf8_lossy(&clear.body)
    );
    let acdd = clear.json()["acdd"].clone();
    assert_eq!(acdd["receiver"], "SG");
    assert_eq!(vn.app.count("outbox").await, before + 1);

    let message_id = acdd["message_id"].as_str().unwrap();
    vn.wait_status(message_id, "delivered").await;
    let inbox = sg.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(sg.inbound_count().await, 1);

    // An import is cleared without any message.
    let laptops = fixture("valid/declaration/01-import-laptops-10-items.xml");
    let importer = vn
        .app
        .add_party(Role::Enterprise, &declarant_of(&laptops))
        .await;
    let r = vn.app.submit(&importer, laptops).await;
    let import_id = r.json()["id"].as_str().unwrap().to_owned();
    let clear = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/declarations/{import_id}/decision"),
            json!({"action": "clear"}),
        )
        .await;
    assert_eq!(clear.status, 200);
    assert!(clear.json().get("acdd").is_none());
    assert_eq!(vn.app.count("outbox").await, before + 1);
}

/// The outbox guard's refusal of a change of status is NS409, which the store answers as a
/// forbidden transition (409 `TRANSITION_FORBIDDEN`), like the dossier machines' refusals.
#[tokio::test]
async fn a_forbidden_message_transition_from_the_database_is_a_transition_error() {
    let db = fresh_database().await;
    let pool = nsw::db::pool(&db, 1).unwrap();
    let mut client = pool.get().await.unwrap();
    nsw::db::migrate::run(&mut client).await.unwrap();
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type,
                function, reference, envelope, sha256, max_attempts, expires_at, cause)
             VALUES ($1, $1, $1, 'SG', 'ACDD', 'submit', 'R', 'x', sha256('x'), 3, now(),
                     'operator:' || $1::uuid::text)",
            &[&id],
        )
        .await
        .unwrap();
    let err = client
        .execute(
            "UPDATE outbox SET status = 'delivered', receipt = 'r', receipt_signature = 's'
              WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "NS409");
    assert!(matches!(
        nsw::store::StoreError::from(err),
        nsw::store::StoreError::Transition(_)
    ));
}

/// Messages enqueued by an earlier version were stored unsigned; the worker's first attempt
/// signs such a message once, records the signature, and sends it with that signature.
#[tokio::test]
async fn a_message_stored_unsigned_is_signed_once_by_its_first_attempt() {
    let plan = Plan::new(&["VN", "SG"]);
    let db = fresh_database().await;
    let vn = plan.window("VN").database(&db).start().await;
    let sg = plan.start("SG").await;
    let payload = crate::helpers::fixture("valid/acdd/vn-th-rice-export.xml");
    let (header, envelope) = super::acdd_envelope("VN", "SG", &payload);
    let cause = format!("operator:{}", Uuid::now_v7());
    let pool = nsw::db::pool(&db, 1).unwrap();
    let client = pool.get().await.unwrap();
    nsw::store::outbox::insert(
        &client,
        &nsw::store::outbox::NewOutbound {
            cause: &cause,
            message_id: header.message_id,
            conversation_id: header.conversation_id,
            receiver: "SG",
            document_type: "ACDD",
            function: "submit",
            reference: &header.reference,
            previous_reference: None,
            envelope: &envelope,
            signature: None,
            max_attempts: 5,
            ttl_secs: 3600.0,
        },
        "test",
    )
    .await
    .unwrap();

    let id = header.message_id.to_string();
    let done = vn.wait_status(&id, "delivered").await;
    assert_eq!(done["attempts"], 1, "{done}");
    let signature: Option<Vec<u8>> = client
        .query_one(
            "SELECT signature FROM outbox WHERE message_id = $1",
            &[&header.message_id],
        )
        .await
        .unwrap()
        .get(0);
    let signature = signature.expect("the first attempt recorded its signature");
    let vn_ca = plan.identity_of("VN").ca;
    nsw::exchange::signature::verify(&signature, &envelope, &vn_ca, "VN").unwrap();
    // SG holds it once, with the signature that was recorded.
    let stored: Vec<u8> = sg
        .app
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT signature FROM inbound_messages WHERE message_id = $1",
            &[&header.message_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, signature);
    assert_eq!(sg.inbound_count().await, 1);
}
