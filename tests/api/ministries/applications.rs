//! Licence applications and their state machine: from application to clearance, supplement
//! loops pausing the clock, withdrawal, forbidden transitions, and officers deciding only their
//! own agency's dossiers.

use nsw::domain::party::Role;
use serde_json::json;

use super::{
    apply, balance, customs, decide, enc, replace, FAR_AHEAD, MAIZE_APPLICATION, RICE_APPLICATION,
    RICE_DECLARATION,
};
use crate::helpers::{fixture, TestApp};

#[tokio::test]
async fn the_full_flow_from_application_to_clearance() {
    // The window's date is fixed: the day the rice application's validity had long ended.
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let mard = app
        .add_party_with_agency(Role::Ministry, "PPD-OFFICER-1", "MARD-PPD")
        .await;
    let officer = app.add_party(Role::Customs, "CUSTOMS-HCM-1").await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;

    // The application is routed to MOIT's inbox by the table.
    let receipt = apply(&app, &enterprise, RICE_APPLICATION).await;
    assert_eq!(receipt["status"], "received");
    assert_eq!(receipt["agency"], "MOIT");
    assert_eq!(receipt["procedure_code"], "MOIT-EXL-RICE");
    assert_eq!(receipt["routing_version"], 1);
    // moit-rice-export: no fee, 5 working days of 8 hours
    assert_eq!(receipt["fee_vnd"], 0);
    assert_eq!(receipt["sla_minutes"], 5 * 8 * 60);
    let id = receipt["id"].as_str().unwrap().to_owned();
    let inbox = app.get(&moit, "/api/v1/inbox").await.json();
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    assert!(app.get(&mard, "/api/v1/inbox").await.json()["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // MOIT reviews and issues: the window writes and signs the licence.
    assert_eq!(
        decide(&app, &moit, &id, json!({"action": "review"}))
            .await
            .status,
        200
    );
    // The validity applied for (2026-02-01 to 2026-07-31) ended before the window's date: the
    // licence is not issued as it is, and nothing is stored.
    let ended = decide(&app, &moit, &id, json!({"action": "issue"})).await;
    assert_eq!(
        ended.status,
        409,
        "{}",
        String::from_utf8_lossy(&ended.body)
    );
    assert_eq!(ended.json()["code"], "LICENCE_VALIDITY_ENDED");
    assert_eq!(app.count("licences").await, 0);
    // The officer gives dates that cannot end before they start.
    let r = decide(
        &app,
        &moit,
        &id,
        json!({"action": "issue", "valid_from": "2026-12-01", "valid_until": "2026-11-30"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "VALIDITY_INVALID");
    let issued = decide(
        &app,
        &moit,
        &id,
        json!({"action": "issue", "conditions": "Export to PH only",
               "valid_from": "2026-11-30", "valid_until": "2027-11-29"}),
    )
    .await;
    assert_eq!(
        issued.status,
        200,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );
    let number = issued.json()["licence_number"].as_str().unwrap().to_owned();
    assert!(number.starts_with("MOIT-"), "{number}");
    let detail = app
        .get(&enterprise, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json();
    assert_eq!(detail["status"], "issued");
    assert_eq!(detail["licence_number"], number.as_str());
    let statuses: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["submitted", "received", "under_review", "issued"]
    );

    // The licence verifies with the openssl command line against the agency's certificate.
    let doc = app
        .get(
            &enterprise,
            &format!("/api/v1/licences/{}/document", enc(&number)),
        )
        .await;
    assert_eq!(doc.status, 200);
    let sig = app
        .get(
            &enterprise,
            &format!("/api/v1/licences/{}/signature", enc(&number)),
        )
        .await;
    assert_eq!(sig.status, 200);
    let cert = app
        .get(&enterprise, "/api/v1/agencies/MOIT/certificates")
        .await;
    assert_eq!(cert.status, 200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("licence.xml"), &doc.body).unwrap();
    std::fs::write(dir.path().join("sig.der"), &sig.body).unwrap();
    std::fs::write(dir.path().join("agency.pem"), &cert.body).unwrap();
    let verify = |content: &str| {
        std::process::Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "sig.der",
                "-content",
                content,
                "-CAfile",
                "agency.pem",
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let ok = verify("licence.xml");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut tampered = doc.body.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    std::fs::write(dir.path().join("tampered.xml"), &tampered).unwrap();
    assert!(!verify("tampered.xml").status.success());

    // The enterprise declares, quoting the licence; the declaration reserves its quantities.
    let declaration = replace(&fixture(RICE_DECLARATION), "045/GCN-XKG", &number);
    let resp = app.submit(&enterprise, declaration).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let decl_id = resp.json()["id"].as_str().unwrap().to_owned();
    let line1 = balance(&app, &enterprise, &number, 0).await;
    assert_eq!(line1["allowance"], "12000.000");
    assert_eq!(line1["remaining"], "10000.000"); // items 1 and 2: 1500 + 500 TNE
    assert_eq!(line1["reserved"], "2000.000");

    // Customs sees it, clears it: the reservation becomes a drawing.
    let inbox = app.get(&officer, "/api/v1/customs/inbox").await.json();
    let entry = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == decl_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["agencies"], json!(["MARD-PPD", "MOIT"]));
    let cleared = customs(&app, &officer, &decl_id, json!({"action": "clear"})).await;
    assert_eq!(
        cleared.status,
        200,
        "{}",
        String::from_utf8_lossy(&cleared.body)
    );
    assert_eq!(cleared.json()["status"], "cleared");
    let line1 = balance(&app, &officer, &number, 0).await;
    assert_eq!(line1["remaining"], "10000.000");
    assert_eq!(line1["reserved"], "0.000");
    assert_eq!(line1["committed"], "2000.000");
    let line2 = balance(&app, &moit, &number, 1).await;
    assert_eq!(line2["committed"], "200.000");

    // Every status change is an event of the dossier.
    let history = app
        .get(&enterprise, &format!("/api/v1/declarations/{decl_id}"))
        .await
        .json();
    let statuses: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "cleared"]);

    // Figures: one decision by MOIT, fully online.
    let stats = app.get(&admin, "/api/v1/stats").await.json();
    let moit_row = stats["procedures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["agency"] == "MOIT")
        .cloned()
        .unwrap();
    assert_eq!(moit_row["received"], 1);
    assert_eq!(moit_row["decided"], 1);
    assert_eq!(moit_row["pending"], 0);
    assert_eq!(stats["full_online_rate"], 1.0);
    assert_eq!(stats["licences_issued_online"], 1);
    // An officer sees only the figures of their agency.
    let own = app.get(&mard, "/api/v1/stats").await.json();
    assert!(own["procedures"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn supplement_loops_pause_the_clock_and_refusal_needs_a_reason() {
    let app = TestApp::spawn().await;
    let enterprise = app.add_party(Role::Enterprise, "0312345678").await;
    let mard = app
        .add_party_with_agency(Role::Ministry, "PPD-OFFICER-1", "MARD-PPD")
        .await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let receipt = apply(&app, &enterprise, MAIZE_APPLICATION).await;
    assert_eq!(receipt["agency"], "MARD-PPD");
    assert_eq!(receipt["procedure_code"], "PPD-PQC-IM");
    // mardppd-cereals-import-pqc: 350,000 đồng, 24 working hours
    assert_eq!(receipt["fee_vnd"], 350_000);
    assert_eq!(receipt["sla_minutes"], 24 * 60);
    let id = receipt["id"].as_str().unwrap().to_owned();
    let detail = app
        .get(&enterprise, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json();
    assert_eq!(detail["fee_vnd"], 350_000);
    assert_eq!(detail["sla_minutes"], 24 * 60);
    let inbox = app.get(&mard, "/api/v1/inbox").await.json();
    assert_eq!(inbox["items"][0]["fee_vnd"], 350_000);
    let sup = format!("/api/v1/licence-applications/{id}/supplement");

    // No reason, no request.
    let r = decide(&app, &mard, &id, json!({"action": "request_supplement"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "REASON_REQUIRED");
    for round in 0..2 {
        let r = decide(&app, &mard, &id, json!({"action": "request_supplement", "reason": format!("round {round}: send the fumigation certificate")})).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["status"], "supplement_requested");
        // The officer cannot review while the applicant owes the supplement.
        assert_eq!(
            decide(&app, &mard, &id, json!({"action": "review"}))
                .await
                .status,
            409
        );
        let r = app
            .post_json(
                &enterprise,
                &sup,
                json!({"note": format!("fumigation certificate FC-{round}")}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["status"], "supplemented");
    }
    assert_eq!(
        decide(&app, &mard, &id, json!({"action": "review"}))
            .await
            .status,
        200
    );
    let r = decide(&app, &mard, &id, json!({"action": "refuse"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "REASON_REQUIRED");
    let r = decide(
        &app,
        &mard,
        &id,
        json!({"action": "refuse", "reason": "pest risk: Prostephanus truncatus found"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "refused");
    assert_eq!(
        r.json()["decision_reason"],
        "pest risk: Prostephanus truncatus found"
    );

    let detail = app
        .get(&enterprise, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json();
    assert_eq!(detail["supplements"].as_array().unwrap().len(), 2);
    let statuses: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "submitted",
            "received",
            "supplement_requested",
            "supplemented",
            "supplement_requested",
            "supplemented",
            "under_review",
            "refused"
        ]
    );
    // Decided: nothing more may happen to it.
    assert_eq!(
        decide(&app, &mard, &id, json!({"action": "review"}))
            .await
            .status,
        409
    );
    assert_eq!(
        app.post_json(
            &enterprise,
            &format!("/api/v1/licence-applications/{id}/withdrawal"),
            json!({})
        )
        .await
        .status,
        409
    );

    let stats = app.get(&admin, "/api/v1/stats").await.json();
    let row = &stats["procedures"][0];
    assert_eq!(row["agency"], "MARD-PPD");
    assert_eq!(row["refused"], 1);
    assert_eq!(row["decided"], 1);
    assert!(row["median_hours"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn withdrawal_before_decision_and_forbidden_transitions() {
    let app = TestApp::spawn().await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let id = apply(&app, &enterprise, RICE_APPLICATION).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Issue straight from received skips the review: refused, with a stable code.
    let r = decide(&app, &moit, &id, json!({"action": "issue"})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "TRANSITION_FORBIDDEN");
    let r = decide(&app, &moit, &id, json!({"action": "refuse", "reason": "x"})).await;
    assert_eq!(r.json()["code"], "TRANSITION_FORBIDDEN");
    // A supplement nobody asked for.
    let r = app
        .post_json(
            &enterprise,
            &format!("/api/v1/licence-applications/{id}/supplement"),
            json!({"note": "here"}),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = decide(&app, &moit, &id, json!({"action": "approve"})).await;
    assert_eq!(r.json()["code"], "ACTION_INVALID");

    let r = app
        .post_json(
            &enterprise,
            &format!("/api/v1/licence-applications/{id}/withdrawal"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "withdrawn");
    assert_eq!(
        decide(&app, &moit, &id, json!({"action": "review"}))
            .await
            .status,
        409
    );

    // The database itself refuses a transition outside the table, whoever asks.
    let client = app.pool.get().await.unwrap();
    let err = client
        .execute("UPDATE licence_applications SET status = 'issued', decided_at = now() WHERE id = $1::text::uuid", &[&id])
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "NS409");
}

#[tokio::test]
async fn an_officer_sees_and_decides_only_their_agencys_dossiers() {
    let app = TestApp::spawn().await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    let stranger = app.add_party(Role::Enterprise, "0999999999").await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let mard = app
        .add_party_with_agency(Role::Ministry, "PPD-OFFICER-1", "MARD-PPD")
        .await;
    let customs_officer = app.add_party(Role::Customs, "CUSTOMS-1").await;
    let id = apply(&app, &enterprise, RICE_APPLICATION).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/licence-applications/{id}");

    assert_eq!(app.get(&moit, &path).await.status, 200);
    for token in [&mard, &stranger, &customs_officer] {
        let r = app.get(token, &path).await;
        assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = decide(&app, &mard, &id, json!({"action": "review"})).await;
    assert_eq!(r.status, 404);
    // Roles: an enterprise has no inbox, customs no licence decisions.
    assert_eq!(app.get(&enterprise, "/api/v1/inbox").await.status, 403);
    assert_eq!(
        decide(&app, &customs_officer, &id, json!({"action": "review"}))
            .await
            .status,
        403
    );
    assert_eq!(app.get(&moit, "/api/v1/customs/inbox").await.status, 403);
    // Unauthenticated: 401.
    let r = app.get_anonymously("/api/v1/inbox").await;
    assert_eq!(r.status, 401);

    decide(&app, &moit, &id, json!({"action": "review"})).await;
    let number = decide(
        &app,
        &moit,
        &id,
        json!({"action": "issue", "valid_until": FAR_AHEAD}),
    )
    .await
    .json()["licence_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let lpath = format!("/api/v1/licences/{}", enc(&number));
    assert_eq!(app.get(&enterprise, &lpath).await.status, 200);
    assert_eq!(app.get(&moit, &lpath).await.status, 200);
    assert_eq!(app.get(&customs_officer, &lpath).await.status, 200);
    assert_eq!(app.get(&mard, &lpath).await.status, 404);
    assert_eq!(app.get(&stranger, &lpath).await.status, 404);
    assert_eq!(
        app.get(&stranger, &format!("{lpath}/signature"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn an_application_s_lines_are_stored_once_and_read_back_as_submitted() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    // Quantities come back as the window read them (the value, without trailing zeros), as
    // they did when the lines were kept in the details: not with the three decimals of a
    // numeric(18, 3) column.
    let body = String::from_utf8(fixture(RICE_APPLICATION))
        .unwrap()
        .replace(">12000</Quantity>", ">12000.50</Quantity>")
        .replace(">3000</Quantity>", ">3000.000</Quantity>");
    let r = app
        .post_xml(
            &enterprise,
            "/api/v1/licence-applications",
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let detail = app
        .get(&enterprise, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json();
    let lines = detail["application"]["lines"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 2, "{detail}");
    assert_eq!(lines[0]["number"], 1);
    assert_eq!(lines[0]["hs_code"], "10063099");
    assert_eq!(lines[0]["quantity"], "12000.5");
    assert_eq!(lines[0]["unit"], "TNE");
    assert!(lines[0]["description"]
        .as_str()
        .unwrap()
        .starts_with("Gạo trắng hạt dài 5% tấm"));
    assert_eq!(lines[1]["number"], 2);
    assert_eq!(lines[1]["quantity"], "3000");
    assert_eq!(detail["application"]["applicant"]["id"], "1401234568");

    let client = app.pool.get().await.unwrap();
    let in_details: bool = client
        .query_one(
            "SELECT details ? 'lines' FROM licence_applications WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!in_details, "the lines are stored once, in their own table");

    // An application stored before, its lines inside its details, reads the same.
    client
        .execute(
            "UPDATE licence_applications SET details = details || jsonb_build_object('lines',
                    jsonb_build_array(jsonb_build_object('number', 1, 'hs_code', '10063099',
                        'description', 'as stored before', 'quantity', '7', 'unit', 'TNE')))
              WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let before = app
        .get(&moit, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json();
    let lines = before["application"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{before}");
    assert_eq!(lines[0]["description"], "as stored before");
    assert_eq!(lines[0]["quantity"], "7");
}
