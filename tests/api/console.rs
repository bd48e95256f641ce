//! The operator console through HTTP as a browser uses it: alerts, dead-letter requeue,
//! routing upload and difference, parties and tokens, deactivation, the audit check, ping
//! between two windows, and the role check.

use nsw::domain::party::Role;
use serde_json::json;

use crate::exchange::{form_d, Plan};
use crate::helpers::{fixture, TestApp};
use crate::portal::{person, Browser, Page, PASSWORD};

const RICE_APPLICATION: &str = "valid/licence-application/moit-export-licence-rice.xml";

/// An operator logged in, reading English pages.
async fn operator(app: &TestApp, id: &str) -> Browser {
    person(app, Role::Admin, id, None).await;
    let mut b = Browser::new(app);
    b.accept_language = Some("en".into());
    let r = b.log_in(id, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    b
}

/// The body of the table row that contains `needle`.
fn row_of<'a>(page: &'a Page, needle: &str) -> &'a str {
    let at = page
        .body
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not on the page: {}", page.body));
    let start = page.body[..at].rfind("<tr").unwrap();
    let end = at + page.body[at..].find("</tr>").unwrap();
    &page.body[start..end]
}

/// The text of the element with `id`.
fn text_of(page: &Page, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id}: {}", page.body))
        + marker.len();
    let end = start + page.body[start..].find('<').unwrap();
    page.body[start..end].trim().to_owned()
}

#[tokio::test]
async fn an_operator_sees_alerts_and_requeues_a_dead_letter() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan
        .window("VN")
        .settings(|s| {
            s.exchange.max_attempts = 2;
            s.console.partner_failing_minutes = 0;
        })
        .start()
        .await;
    let sg = plan.start("SG").await;
    sg.fault(json!({ "mode": "status", "status": 503 }), None)
        .await;
    let sent = vn.send_form_d(form_d()).await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    let reference = sent["reference"].as_str().unwrap().to_owned();
    vn.wait_status(&id, "dead_letter").await;

    // An application received 30 days ago is past its time limit.
    let enterprise = vn.app.add_party(Role::Enterprise, "1401234568").await;
    let r = vn
        .app
        .post_xml(
            &enterprise,
            "/api/v1/licence-applications",
            fixture(RICE_APPLICATION),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let application = r.json();
    let app_ref = application["reference"].as_str().unwrap().to_owned();
    let client = vn.app.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE licence_applications SET received_at = received_at - interval '30 days'
              WHERE id = $1::text::uuid",
            &[&application["id"].as_str().unwrap()],
        )
        .await
        .unwrap();

    let mut op = operator(&vn.app, "VN-OPERATOR").await;
    let home = op.get("/console").await;
    assert_eq!(home.status, 200, "{}", home.body);
    let dead = row_of(&home, &id);
    assert!(dead.contains("Dead letter"), "{dead}");
    assert!(dead.contains(&reference), "{dead}");
    assert!(dead.contains("HTTP 503"), "{dead}");
    let overdue = row_of(&home, &app_ref);
    assert!(overdue.contains("Application overdue"), "{overdue}");
    assert!(overdue.contains("MOIT: overdue by"), "{overdue}");
    let failing = row_of(&home, "Partner failing");
    assert!(failing.contains(">SG<"), "{failing}");
    // Keys made today are far from expiry: no certificate alert within 30 days.
    assert!(!home.body.contains("Certificate expiring"));

    // The message search finds it by status and partner; its page shows the attempts.
    let found = op
        .get("/console/messages?direction=out&status=dead_letter&partner=SG")
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(row_of(&found, &reference).contains("dead letter"));
    let none = op
        .get("/console/messages?direction=out&status=delivered")
        .await;
    assert!(!none.body.contains(&reference));
    let page = op.get(&format!("/console/messages/out/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body.matches("exchange.retry_wait").count(), 1);
    assert_eq!(page.body.matches("exchange.dead_letter").count(), 1);
    assert!(page.body.contains("Retry this dead letter"));

    // Requeued with the form (the API's store function): delivered, the same message id.
    sg.fault(json!({ "mode": "none" }), None).await;
    let forged = op
        .post_form(&format!("/console/messages/out/{id}/requeue"), &[])
        .await;
    assert_eq!(forged.status, 403);
    let csrf = op.csrf().await;
    let requeued = op
        .post_form(
            &format!("/console/messages/out/{id}/requeue"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(requeued.status, 303, "{}", requeued.body);
    let done = vn.wait_status(&id, "delivered").await;
    assert_eq!(done["message_id"], sent["message_id"]);
    let page = op.get(&format!("/console/messages/out/{id}")).await;
    assert!(page.body.contains("exchange.requeued"));
    assert!(!page.body.contains("Retry this dead letter"));
    let home = op.get("/console").await;
    assert!(!home.body.contains(&id), "{}", home.body);
    assert!(!home.body.contains("Partner failing"), "{}", home.body);
    // The receiving window's console finds it among the messages received, with its receipt.
    let mut sg_op = operator(&sg.app, "SG-OPERATOR").await;
    let received = sg_op
        .get("/console/messages?direction=in&partner=VN&document_type=FORM_D")
        .await;
    assert_eq!(received.status, 200, "{}", received.body);
    let row = row_of(&received, &reference);
    let href = &row[row.find("/console/messages/in/").unwrap()..];
    let href = &href[..href.find('"').unwrap()];
    let message = sg_op.get(href).await;
    assert_eq!(message.status, 200, "{}", message.body);
    assert!(message.body.contains(&id));
    assert!(message.body.contains("urn:nsw:receipt:1"));
    let other_day = sg_op
        .get("/console/messages?direction=in&from=2001-01-01&to=2001-01-31")
        .await;
    assert!(!other_day.body.contains(&reference));

    // Requeuing a delivered message is refused by the state machine.
    let again = op
        .post_form(
            &format!("/console/messages/out/{id}/requeue"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, 409);
}

/// `POST /console/routing/file` as a browser sends a file: multipart, the token first.
async fn upload_table(b: &Browser, csrf: &str, file: &[u8]) -> (u16, Option<String>, String) {
    let boundary = "----nswconsoletestboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nfrom a file\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"rules.toml\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let cookies = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/console/routing/file", b.base))
        .header("cookie", cookies)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, location, r.text().await.unwrap())
}

#[tokio::test]
async fn a_routing_table_is_uploaded_with_its_errors_shown_per_rule() {
    let app = TestApp::spawn().await;
    let mut op = operator(&app, "OPERATOR-1").await;
    let csrf = op.csrf().await;
    let table = nsw::routing::DEFAULT_TABLE;
    let spec = nsw::routing::TableSpec::from_toml(table).unwrap();
    let first_export = spec.rules.iter().find(|r| r.direction == "EX").unwrap();
    let broken = table.replacen("direction = \"EX\"", "direction = \"XX\"", 1);
    let refused = op
        .post_form(
            "/console/routing",
            &[("csrf", &csrf), ("toml", &broken), ("note", "broken")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let problems = &refused.body[refused.body.find("id=\"routing-problems\"").unwrap()..];
    let row = &problems[problems
        .find(&format!("<th scope=\"row\">{}</th>", first_export.id))
        .unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("XX"), "{row}");
    assert!(refused.body.contains("aria-invalid=\"true\""));
    // What was typed is kept.
    assert!(
        refused.body.contains("direction = &quot;XX&quot;")
            || refused.body.contains("direction = &#34;XX&#34;")
    );
    let syntax = op
        .post_form(
            "/console/routing",
            &[("csrf", &csrf), ("toml", "[[rules]\n")],
        )
        .await;
    assert_eq!(syntax.status, 422);
    assert!(syntax.body.contains("toml-error"));

    // A valid table becomes version 2; the difference to version 1 is the one field changed.
    let first = &spec.rules[0];
    let changed = table.replacen(
        &format!("title = \"{}\"", first.title),
        "title = \"Changed title\"",
        1,
    );
    let saved = op
        .post_form(
            "/console/routing",
            &[("csrf", &csrf), ("toml", &changed), ("note", "retitled")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location(), Some("/console/routing?saved=2"));
    let diff = op.get("/console/routing?a=1&b=2").await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    let table_html = &diff.body[diff.body.find("id=\"routing-diff\"").unwrap()..];
    let table_html = &table_html[..table_html.find("</table>").unwrap()];
    assert_eq!(table_html.matches("<tr>").count(), 2, "{table_html}");
    assert!(table_html.contains(&first.id));
    assert!(table_html.contains("Changed title"));
    assert!(table_html.contains(">changed<"));
    // The API serves the new version.
    let admin = app.add_party(Role::Admin, "ADMIN-API").await;
    let current = app.get(&admin, "/api/v1/admin/routing-rules").await.json();
    assert_eq!(current["version"], 2);

    // The same as a file: the shipped table again is version 3, the title back as it was.
    let (status, _, body) = upload_table(&op, &csrf, broken.as_bytes()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(&format!("<th scope=\"row\">{}</th>", first_export.id)));
    let (status, location, body) = upload_table(&op, &csrf, table.as_bytes()).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location.as_deref(), Some("/console/routing?saved=3"));
    let diff = op.get("/console/routing?a=2&b=3").await;
    assert!(diff.body.contains(&first.title), "{}", diff.body);
    let versions = op.get("/console/routing").await;
    assert!(row_of(&versions, "from a file").contains(">3 ("));
}

#[tokio::test]
async fn an_operator_adds_a_party_revokes_a_token_and_deactivates_the_party() {
    let app = TestApp::spawn().await;
    let mut op = operator(&app, "OPERATOR-1").await;
    let csrf = op.csrf().await;
    let added = op
        .post_form(
            "/console/parties",
            &[
                ("csrf", &csrf),
                ("role", "enterprise"),
                ("id", "0312345678"),
                ("name", "Công ty TNHH Thương mại Sài Gòn Xanh"),
                ("street", "Số 5 Nguyễn Huệ"),
                ("city", "Thành phố Hồ Chí Minh"),
                ("post_code", "700000"),
                ("country", "VN"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let first = text_of(&added, "new-token");
    assert!(first.starts_with("nsw_"), "{first}");
    assert_eq!(app.get(&first, "/api/v1/declarations").await.status, 200);
    // Shown once: no page shows it again.
    let list = op.get("/console/parties?q=Sài Gòn").await;
    assert!(list.body.contains("0312345678"));
    assert!(!list.body.contains(&first));
    let taken = op
        .post_form(
            "/console/parties",
            &[
                ("csrf", &csrf),
                ("role", "enterprise"),
                ("id", "0312345678"),
                ("name", "X"),
            ],
        )
        .await;
    assert_eq!(taken.status, 422);
    assert!(taken.body.contains("A party with this id exists already."));

    // A second token, then the first revoked: the API refuses it at once.
    let issued = op
        .post_form("/console/parties/0312345678/tokens", &[("csrf", &csrf)])
        .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    let second = text_of(&issued, "new-token");
    let page = op.get("/console/parties/0312345678").await;
    assert!(!page.body.contains(&first) && !page.body.contains(&second));
    let digest = nsw::store::parties::token_digest(&first);
    let first_id = nsw::store::console::token_id(&digest);
    assert!(page.body.contains(&first_id), "{}", page.body);
    let revoked = op
        .post_form(
            &format!("/console/parties/0312345678/tokens/{first_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(app.get(&first, "/api/v1/declarations").await.status, 401);
    assert_eq!(app.get(&second, "/api/v1/declarations").await.status, 200);

    // A password set on the console; the party logs in.
    let short = op
        .post_form(
            "/console/parties/0312345678/password",
            &[("csrf", &csrf), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, 422);
    let set = op
        .post_form(
            "/console/parties/0312345678/password",
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    let mut trader = Browser::new(&app);
    assert_eq!(trader.log_in("0312345678", PASSWORD).await.status, 303);
    assert_eq!(trader.get("/declarations").await.status, 200);

    // Deactivated: its session ends at once, its token fails, it cannot log in again; its
    // row stays.
    let gone = op
        .post_form("/console/parties/0312345678/deactivate", &[("csrf", &csrf)])
        .await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    let after = trader.get("/declarations").await;
    assert_eq!(after.status, 303);
    assert!(after.location().unwrap().starts_with("/login"));
    assert_eq!(app.get(&second, "/api/v1/declarations").await.status, 401);
    let mut again = Browser::new(&app);
    assert_ne!(again.log_in("0312345678", PASSWORD).await.status, 303);
    let page = op.get("/console/parties/0312345678").await;
    assert!(text_of(&page, "party-state").starts_with("deactivated"));
    let client = app.pool.get().await.unwrap();
    let reason: String = client
        .query_one(
            "SELECT end_reason FROM portal_sessions WHERE party_id = '0312345678'
              ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "deactivated");
    for action in [
        "party.added",
        "token.issued",
        "token.revoked",
        "party.password_set",
        "party.deactivated",
    ] {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM audit_log WHERE action = $1 AND subject = '0312345678'
                   AND actor = 'OPERATOR-1'",
                &[&action],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{action}");
    }
}

#[tokio::test]
async fn the_audit_check_shows_the_result_and_the_head() {
    let app = TestApp::spawn().await;
    let mut op = operator(&app, "OPERATOR-1").await;
    app.run_audit_once().await;
    let page = op.get("/console/audit?run=1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(text_of(&page, "audit-result").starts_with("The chain is intact"));
    let client = app.pool.get().await.unwrap();
    let nsw::store::audit::Verification::Intact {
        head: Some((pos, hash)),
        ..
    } = nsw::store::audit::verify(&client, None).await.unwrap()
    else {
        panic!("the chain is not intact or empty");
    };
    assert_eq!(text_of(&page, "audit-head-pos"), pos.to_string());
    assert_eq!(text_of(&page, "audit-head-hash"), hex::encode(&hash));

    // Given a wrong anchor for that position, the check says the chain was rewritten.
    let wrong = format!(
        "/console/audit?run=1&anchor_pos={pos}&anchor_hash={}",
        "ab".repeat(32)
    );
    let page = op.get(&wrong).await;
    assert!(text_of(&page, "audit-result").starts_with("The chain is broken"));
    let right = format!(
        "/console/audit?run=1&anchor_pos={pos}&anchor_hash={}",
        hex::encode(&hash)
    );
    assert!(text_of(&op.get(&right).await, "audit-result").starts_with("The chain is intact"));
}

#[tokio::test]
async fn ping_shows_a_round_trip_between_windows_and_the_failure_of_a_down_partner() {
    // TH is in VN's partner table but never started: nothing listens on its port.
    let plan = Plan::new(&["VN", "SG", "TH"]);
    let vn = plan
        .window("VN")
        .settings(|s| s.console.certificate_warning_days = 36_500)
        .start()
        .await;
    let sg = plan.start("SG").await;
    let mut op = operator(&vn.app, "VN-OPERATOR").await;
    let partners = op.get("/console/partners").await;
    assert_eq!(partners.status, 200, "{}", partners.body);
    assert!(partners
        .body
        .contains(&format!("127.0.0.1:{}", plan.port("SG"))));
    assert!(partners.body.contains("C=SG"), "{}", partners.body);
    // Within a century every certificate expires: ours and the partners' pinned CAs alert.
    let home = op.get("/console").await;
    assert!(row_of(&home, "SG partner CA").contains("Certificate expiring"));
    assert!(row_of(&home, "TH partner CA").contains("Certificate expiring"));
    assert!(row_of(&home, "VN signing").contains("Certificate expiring"));
    let csrf = op.csrf().await;
    let pong = op
        .post_form("/console/partners/SG/ping", &[("csrf", &csrf)])
        .await;
    assert_eq!(pong.status, 200, "{}", pong.body);
    let result = text_of(&pong, "ping-result");
    assert!(result.contains("Ping to SG: signed receipt in"), "{result}");
    // A ping is stored on neither side.
    assert_eq!(sg.inbound_count().await, 0);
    assert_eq!(vn.app.count("outbox").await, 0);

    let down = op
        .post_form("/console/partners/TH/ping", &[("csrf", &csrf)])
        .await;
    let result = text_of(&down, "ping-result");
    assert!(
        result.starts_with("Ping to TH failed: transport"),
        "{result}"
    );

    // A partner answering 503 is named with its status.
    sg.fault(json!({ "mode": "status", "status": 503 }), None)
        .await;
    let failed = op
        .post_form("/console/partners/SG/ping", &[("csrf", &csrf)])
        .await;
    let result = text_of(&failed, "ping-result");
    assert!(result.contains("failed: HTTP 503"), "{result}");
}

#[tokio::test]
async fn only_operators_open_the_console() {
    let app = TestApp::spawn().await;
    person(&app, Role::Enterprise, "1401234568", None).await;
    let mut trader = Browser::new(&app);
    assert_eq!(trader.log_in("1401234568", PASSWORD).await.status, 303);
    for path in [
        "/console",
        "/console/partners",
        "/console/messages",
        "/console/routing",
        "/console/parties",
        "/console/audit",
    ] {
        let r = trader.get(path).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.body.contains("ROLE_FORBIDDEN"));
    }
    let csrf = trader.csrf().await;
    let r = trader
        .post_form(
            "/console/parties",
            &[
                ("csrf", &csrf),
                ("role", "admin"),
                ("id", "X1"),
                ("name", "X"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    let home = trader.get("/").await;
    assert!(!home.body.contains("/console"));
    // Nobody logged in is sent to the log-in page.
    let mut anonymous = Browser::new(&app);
    let r = anonymous.get("/console").await;
    assert_eq!(r.status, 303);
}
