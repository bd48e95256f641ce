//! Every decision takes effect exactly once: repeating one that already took effect answers
//! `409 TRANSITION_FORBIDDEN` and writes nothing (no event, no audit entry, no outbox row);
//! whatever leaves the window is keyed by its cause, which the database holds unique; and the
//! state machines declared in `src/domain/` are the ones the database enforces.

use nsw::domain::party::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::exchange::{declarant_of, Plan, Window};
use crate::helpers::{fixture, with_reference, Resp, TestApp};

const GARMENTS_TO_SG: &str = "valid/declaration/23-export-garments-to-sg-sea.xml";
const MAIZE_APPLICATION: &str = "valid/licence-application/mard-plant-quarantine-maize.xml";
const MAIZE_APPLICANT: &str = "0312345678";
const FORM_D: &str = "valid/certificate-of-origin/vn-sg-form-d.xml";
const FORM_D_EXPORTER: &str = "0301234567";

/// What a decision by `actor` writes: dossier events, outbox rows, and the actor's audit
/// entries (the outbox worker and the receiving side write their own, under other actors, at
/// any time; they are not the decision's).
async fn footprint(app: &TestApp, actor: &str) -> [i64; 3] {
    let client = app.pool.get().await.unwrap();
    let events: i64 = client
        .query_one("SELECT count(*) FROM dossier_events", &[])
        .await
        .unwrap()
        .get(0);
    let outbox: i64 = client
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    let audit: i64 = client
        .query_one("SELECT count(*) FROM audit_log WHERE actor = $1", &[&actor])
        .await
        .unwrap()
        .get(0);
    [events, outbox, audit]
}

/// Sends `path` + `body` as `token` (party `actor`) once more and checks that the answer is
/// `409 TRANSITION_FORBIDDEN` and that nothing was written.
async fn repeat_is_refused(app: &TestApp, token: &str, actor: &str, path: &str, body: Value) {
    let before = footprint(app, actor).await;
    let r = app.post_json(token, path, body.clone()).await;
    assert_eq!(
        r.status,
        409,
        "{path} {body}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["code"], "TRANSITION_FORBIDDEN", "{path} {body}");
    assert_eq!(
        footprint(app, actor).await,
        before,
        "{path} {body}: a refused repeat wrote something"
    );
}

fn ok(r: &Resp) -> Value {
    assert!(
        (200..300).contains(&r.status),
        "{}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

async fn party(w: &Window, role: Role, id: &str) -> String {
    w.app.add_party(role, id).await
}

async fn officer(w: &Window, id: &str, agency: &str) -> String {
    w.app
        .add_party_with_agency(Role::Ministry, id, agency)
        .await
}

#[tokio::test]
async fn every_decision_repeated_changes_nothing_and_is_refused_alike() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;
    let customs_id = "VN-CUSTOMS-DECIDER";
    let customs = party(&vn, Role::Customs, customs_id).await;

    // Customs: hold, hold again; clear, clear again; reject after the clearance.
    let xml = fixture(GARMENTS_TO_SG);
    let exporter_id = declarant_of(&xml);
    let exporter = party(&vn, Role::Enterprise, &exporter_id).await;
    let id = ok(&vn.app.submit(&exporter, xml.clone()).await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let decision = format!("/api/v1/declarations/{id}/decision");
    ok(&vn
        .app
        .post_json(&customs, &decision, json!({"action": "hold"}))
        .await);
    repeat_is_refused(
        &vn.app,
        &customs,
        customs_id,
        &decision,
        json!({"action": "hold"}),
    )
    .await;
    let cleared = ok(&vn
        .app
        .post_json(&customs, &decision, json!({"action": "clear"}))
        .await);
    let acdd_id = cleared["acdd"]["message_id"].as_str().unwrap().to_owned();
    repeat_is_refused(
        &vn.app,
        &customs,
        customs_id,
        &decision,
        json!({"action": "clear"}),
    )
    .await;
    repeat_is_refused(
        &vn.app,
        &customs,
        customs_id,
        &decision,
        json!({"action": "reject", "reason": "too late"}),
    )
    .await;

    // A declaration rejected, then rejected again.
    let second = with_reference(&xml, "DEC-REPEAT-2");
    let id2 = ok(&vn.app.submit(&exporter, second).await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let decision2 = format!("/api/v1/declarations/{id2}/decision");
    let reject = json!({"action": "reject", "reason": "documents missing"});
    ok(&vn.app.post_json(&customs, &decision2, reject.clone()).await);
    repeat_is_refused(&vn.app, &customs, customs_id, &decision2, reject).await;

    // The declarant's withdrawal, twice.
    let third = with_reference(&xml, "DEC-REPEAT-3");
    let id3 = ok(&vn.app.submit(&exporter, third).await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let withdrawal = format!("/api/v1/declarations/{id3}/withdrawal");
    ok(&vn.app.post_json(&exporter, &withdrawal, json!({})).await);
    repeat_is_refused(&vn.app, &exporter, &exporter_id, &withdrawal, json!({})).await;

    // Licence applications: review, request_supplement, supplement, issue, refuse, withdrawal.
    let mard_id = "VN-MARD-DECIDER";
    let mard = officer(&vn, mard_id, "MARD-PPD").await;
    let applicant = party(&vn, Role::Enterprise, MAIZE_APPLICANT).await;
    let apply = || async {
        let r = vn
            .app
            .post_xml(
                &applicant,
                "/api/v1/licence-applications",
                fixture(MAIZE_APPLICATION),
            )
            .await;
        ok(&r)["id"].as_str().unwrap().to_owned()
    };
    let a = apply().await;
    let on_a = format!("/api/v1/licence-applications/{a}/decision");
    ok(&vn
        .app
        .post_json(&mard, &on_a, json!({"action": "review"}))
        .await);
    repeat_is_refused(&vn.app, &mard, mard_id, &on_a, json!({"action": "review"})).await;
    let ask = json!({"action": "request_supplement", "reason": "send the fumigation certificate"});
    ok(&vn.app.post_json(&mard, &on_a, ask.clone()).await);
    repeat_is_refused(&vn.app, &mard, mard_id, &on_a, ask).await;
    let supplement = format!("/api/v1/licence-applications/{a}/supplement");
    let note = json!({"note": "attached"});
    ok(&vn
        .app
        .post_json(&applicant, &supplement, note.clone())
        .await);
    repeat_is_refused(&vn.app, &applicant, MAIZE_APPLICANT, &supplement, note).await;
    ok(&vn
        .app
        .post_json(&mard, &on_a, json!({"action": "review"}))
        .await);
    let issue = json!({"action": "issue", "valid_until": "2099-12-31"});
    let issued = ok(&vn.app.post_json(&mard, &on_a, issue.clone()).await);
    assert!(issued["licence_number"].is_string(), "{issued}");
    let licences = vn.app.count("licences").await;
    repeat_is_refused(&vn.app, &mard, mard_id, &on_a, issue).await;
    assert_eq!(vn.app.count("licences").await, licences);

    let b = apply().await;
    let on_b = format!("/api/v1/licence-applications/{b}/decision");
    ok(&vn
        .app
        .post_json(&mard, &on_b, json!({"action": "review"}))
        .await);
    let refuse = json!({"action": "refuse", "reason": "not eligible"});
    ok(&vn.app.post_json(&mard, &on_b, refuse.clone()).await);
    repeat_is_refused(&vn.app, &mard, mard_id, &on_b, refuse).await;

    let c = apply().await;
    let withdraw_c = format!("/api/v1/licence-applications/{c}/withdrawal");
    ok(&vn.app.post_json(&applicant, &withdraw_c, json!({})).await);
    repeat_is_refused(&vn.app, &applicant, MAIZE_APPLICANT, &withdraw_c, json!({})).await;

    // A certificate of origin: issued once, its e-Form D enqueued once.
    let moit_id = "VN-MOIT-DECIDER";
    let moit = officer(&vn, moit_id, "MOIT").await;
    let exporter_coo = party(&vn, Role::Enterprise, FORM_D_EXPORTER).await;
    let coo = ok(&vn
        .app
        .post_xml(
            &exporter_coo,
            "/api/v1/certificates-of-origin",
            fixture(FORM_D),
        )
        .await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_coo = format!("/api/v1/licence-applications/{coo}/decision");
    ok(&vn
        .app
        .post_json(&moit, &on_coo, json!({"action": "review"}))
        .await);
    let issued = ok(&vn
        .app
        .post_json(&moit, &on_coo, json!({"action": "issue"}))
        .await);
    assert!(issued["e_form_d"]["message_id"].is_string(), "{issued}");
    let certificates = vn.app.count("certificates_of_origin").await;
    repeat_is_refused(&vn.app, &moit, moit_id, &on_coo, json!({"action": "issue"})).await;
    assert_eq!(vn.app.count("certificates_of_origin").await, certificates);

    // The partner's business response to the ACDD it received, answered twice.
    vn.wait_status(&acdd_id, "delivered").await;
    let received = sg
        .inbox()
        .await
        .into_iter()
        .find(|m| m["message_id"] == acdd_id.as_str())
        .expect("the ACDD in SG's inbox");
    let sg_customs_id = "SG-CUSTOMS-DECIDER";
    let sg_customs = party(&sg, Role::Customs, sg_customs_id).await;
    let respond = format!(
        "/api/v1/exchange/messages/{}/response",
        received["id"].as_str().unwrap()
    );
    ok(&sg
        .app
        .post_json(&sg_customs, &respond, json!({"decision": "accepted"}))
        .await);
    repeat_is_refused(
        &sg.app,
        &sg_customs,
        sg_customs_id,
        &respond,
        json!({"decision": "accepted"}),
    )
    .await;

    // An operator's requeue of a dead letter, twice. The message is made a dead letter behind
    // the state machine's back, as only a test may.
    let admin_id = "VN-ADMIN-DECIDER";
    let admin = party(&vn, Role::Admin, admin_id).await;
    {
        let client = vn.app.pool.get().await.unwrap();
        client
            .batch_execute(&format!(
                "ALTER TABLE outbox DISABLE TRIGGER outbox_state_machine;
                 UPDATE outbox SET status = 'dead_letter', receipt = NULL,
                        receipt_signature = NULL, locked_by = NULL, locked_until = NULL
                  WHERE message_id = '{acdd_id}';
                 ALTER TABLE outbox ENABLE TRIGGER outbox_state_machine;"
            ))
            .await
            .unwrap();
    }
    let requeue = format!("/api/v1/admin/exchange/outbox/{acdd_id}/requeue");
    ok(&vn.app.post_json(&admin, &requeue, json!({})).await);
    repeat_is_refused(&vn.app, &admin, admin_id, &requeue, json!({})).await;
}

#[tokio::test]
async fn a_second_message_for_one_cause_is_refused_by_the_database() {
    let app = TestApp::spawn().await;
    let client = app.pool.get().await.unwrap();
    let insert = "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type,
                    function, reference, envelope, sha256, max_attempts, expires_at, cause)
                  VALUES ($1, $1, $1, 'SG', 'ACDD', 'submit', 'R', 'x', sha256('x'), 3, now(), $2)";
    let cause = format!("acdd:{}", Uuid::now_v7());
    client
        .execute(insert, &[&Uuid::now_v7(), &cause])
        .await
        .unwrap();
    // Another message id, the same cause: the unique constraint says no, whatever the code does.
    let err = client
        .execute(insert, &[&Uuid::now_v7(), &cause])
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23505", "{db:?}");
    assert_eq!(db.constraint(), Some("outbox_cause_unique"));
    assert_eq!(app.count("outbox").await, 1);
    // A message keeps its cause.
    let err = client
        .execute(
            "UPDATE outbox SET cause = 'acdd:other' WHERE cause = $1",
            &[&cause],
        )
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "23514");
    // And a message without a cause cannot be written.
    let err = client
        .execute(
            "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type,
                function, reference, envelope, sha256, max_attempts, expires_at)
             VALUES ($1, $1, $1, 'SG', 'ACDD', 'submit', 'R', 'x', sha256('x'), 3, now())",
            &[&Uuid::now_v7()],
        )
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "23502");
}

#[tokio::test]
async fn a_clearance_retried_after_a_lost_answer_sends_one_acdd() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;
    let xml = fixture(GARMENTS_TO_SG);
    let exporter = party(&vn, Role::Enterprise, &declarant_of(&xml)).await;
    let id = ok(&vn.app.submit(&exporter, xml).await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let declaration: Uuid = id.parse().unwrap();

    // The window commits the clearance and dies before answering: the workflow runs to its
    // commit, and its answer never reaches the officer.
    let settings = plan.settings("VN", &vn.app.database_url);
    let pool = nsw::db::pool(&vn.app.database_url, 2).unwrap();
    let exchange = nsw::exchange::Exchange::from_settings(&settings)
        .unwrap()
        .expect("VN has an exchange");
    let lost = nsw::customs::decide(
        &pool,
        Some(&exchange),
        &settings,
        declaration,
        "VN-CUSTOMS-OFFICER",
        nsw::customs::Action::Clear,
        None,
    )
    .await
    .unwrap();
    let message_id = lost.acdd.expect("an ACDD").message_id.to_string();

    // The officer retries, twice at once: neither clears again, neither sends anything.
    let decision = format!("/api/v1/declarations/{id}/decision");
    let (a, b) = tokio::join!(
        vn.app
            .post_json(&vn.customs, &decision, json!({"action": "clear"})),
        vn.app
            .post_json(&vn.customs, &decision, json!({"action": "clear"})),
    );
    for r in [a, b] {
        assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], "TRANSITION_FORBIDDEN");
    }

    // One ACDD for the declaration, under the cause's message id, and one at the partner.
    let client = vn.app.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT message_id FROM outbox WHERE cause = $1",
            &[&format!("acdd:{declaration}")],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, Uuid>(0).to_string(), message_id);
    let acdds: i64 = client
        .query_one(
            "SELECT count(*) FROM outbox WHERE document_type = 'ACDD'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(acdds, 1);
    let events: i64 = client
        .query_one(
            "SELECT count(*) FROM dossier_events WHERE dossier_id = $1 AND status = 'cleared'",
            &[&declaration],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1);

    vn.wait_status(&message_id, "delivered").await;
    let at_partner = sg
        .inbox()
        .await
        .into_iter()
        .filter(|m| m["document_type"] == "ACDD")
        .count();
    assert_eq!(at_partner, 1);
    assert_eq!(sg.inbound_count().await, 1);
}

/// Tries every (from, to) pair of statuses, `from == to` included, on a real row: the status is
/// set to `from` with the guard off, then moved to `to` with the guard on.
async fn db_allows(
    client: &deadpool_postgres::Object,
    table: &str,
    trigger: &str,
    id: Uuid,
    from: &str,
    to: &str,
    extra: &str,
) -> bool {
    client
        .batch_execute(&format!("ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
        .await
        .unwrap();
    client
        .execute(
            &format!("UPDATE {table} SET status = $2 {extra} WHERE id = $1"),
            &[&id, &from],
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!("ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
        .await
        .unwrap();
    client
        .execute(
            &format!("UPDATE {table} SET status = $2 {extra} WHERE id = $1"),
            &[&id, &to],
        )
        .await
        .is_ok()
}

#[tokio::test]
async fn the_database_and_the_code_agree_on_the_dossier_state_machines() {
    use nsw::domain::{answer_state, application_state, declaration_state};
    let app = TestApp::spawn().await;

    // Declarations.
    let xml = fixture(GARMENTS_TO_SG);
    let exporter = app.add_party(Role::Enterprise, &declarant_of(&xml)).await;
    let r = app.submit(&exporter, xml).await;
    let declaration: Uuid = ok(&r)["id"].as_str().unwrap().parse().unwrap();
    let client = app.pool.get().await.unwrap();
    for from in declaration_state::Status::ALL {
        for to in declaration_state::Status::ALL {
            let db = db_allows(
                &client,
                "declarations",
                "declarations_state_machine",
                declaration,
                from.as_str(),
                to.as_str(),
                "",
            )
            .await;
            assert_eq!(db, from.can_become(to), "declaration {from:?} -> {to:?}");
        }
    }

    // Licence applications.
    let applicant = app.add_party(Role::Enterprise, MAIZE_APPLICANT).await;
    let r = app
        .post_xml(
            &applicant,
            "/api/v1/licence-applications",
            fixture(MAIZE_APPLICATION),
        )
        .await;
    let application: Uuid = ok(&r)["id"].as_str().unwrap().parse().unwrap();
    let fields = ", decided_at = CASE WHEN $2 IN ('issued', 'refused') THEN now() END,
                  decision_reason = CASE WHEN $2 = 'refused' THEN 'r' END";
    for from in application_state::Status::ALL {
        for to in application_state::Status::ALL {
            let db = db_allows(
                &client,
                "licence_applications",
                "licence_applications_state_machine",
                application,
                from.as_str(),
                to.as_str(),
                fields,
            )
            .await;
            assert_eq!(db, from.can_become(to), "application {from:?} -> {to:?}");
        }
    }

    // Answers to partners' documents.
    for from in answer_state::Status::ALL {
        for to in answer_state::Status::ALL {
            let id = Uuid::now_v7();
            client
                .execute(
                    "INSERT INTO inbound_messages (id, sender, message_id, conversation_id,
                        document_type, function, reference, envelope, sha256, signature,
                        signer_subject, receipt, receipt_signature, status)
                     VALUES ($1, 'SG', $1, $1, 'ACDD', 'submit', 'R', 'x', sha256('x'), 's',
                             'C=SG', 'r', 'rs', $2)",
                    &[&id, &from.as_str()],
                )
                .await
                .unwrap();
            let db = client
                .execute(
                    "UPDATE inbound_messages SET status = $2 WHERE id = $1",
                    &[&id, &to.as_str()],
                )
                .await
                .is_ok();
            assert_eq!(db, from.can_become(to), "answer {from:?} -> {to:?}");
        }
    }
}
