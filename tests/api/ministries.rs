//! Ministries and customs through HTTP against real PostgreSQL: routing, licence applications
//! and their state machine, issued and deposited licences, the ledger, customs decisions.

use base64::Engine;
use nsw::domain::party::Role;
use serde_json::json;

use crate::helpers::{fixture, with_reference, TestApp};
use crate::support::{deposit, deposit_fixture_licences, register_signer};

/// The end of validity of licences made by these tests: ahead of the window's date, whatever
/// year the tests run in.
const FAR_AHEAD: &str = "2099-12-31";
const RICE_APPLICATION: &str = "valid/licence-application/moit-export-licence-rice.xml";
const MAIZE_APPLICATION: &str = "valid/licence-application/mard-plant-quarantine-maize.xml";
const TRANSIT_APPLICATION: &str =
    "valid/licence-application/gdvc-transit-notification-gasoil-sg-to-la.xml";
const DURIAN_TO_TH_APPLICATION: &str =
    "valid/licence-application/mard-phytosanitary-durian-export-to-th.xml";
const RICE_DECLARATION: &str = "valid/declaration/02-export-rice-to-ph-moit-licence.xml";
const GOLD_DECLARATION: &str = "valid/declaration/09-import-gold-sbv-1-item-air.xml";

fn replace(xml: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(xml.to_vec()).unwrap();
    assert!(s.contains(from), "{from} not in document");
    s.replace(from, to).into_bytes()
}

fn enc(number: &str) -> String {
    number.replace('/', "%2F")
}

async fn apply(app: &TestApp, token: &str, file: &str) -> serde_json::Value {
    let resp = app
        .post_xml(token, "/api/v1/licence-applications", fixture(file))
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()
}

async fn decide(
    app: &TestApp,
    token: &str,
    id: &str,
    body: serde_json::Value,
) -> crate::helpers::Resp {
    app.post_json(
        token,
        &format!("/api/v1/licence-applications/{id}/decision"),
        body,
    )
    .await
}

async fn customs(
    app: &TestApp,
    token: &str,
    id: &str,
    body: serde_json::Value,
) -> crate::helpers::Resp {
    app.post_json(token, &format!("/api/v1/declarations/{id}/decision"), body)
        .await
}

/// A licence document for the ledger tests, valid against licence.xsd.
#[allow(clippy::too_many_arguments)]
pub fn licence_xml(
    number: &str,
    agency: &str,
    holder: &str,
    direction: &str,
    from: &str,
    to: &str,
    hs: &str,
    unit: &str,
    qty: &str,
) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Licence xmlns="urn:nsw:licence:1">
  <Number>{number}</Number>
  <Type>IML</Type>
  <Agency><Code>{agency}</Code><Name>{agency} licensing</Name></Agency>
  <Holder><ID>{holder}</ID><Name>Holder {holder}</Name><Address><City>Hà Nội</City><Country>VN</Country></Address></Holder>
  <Direction>{direction}</Direction>
  <IssueDate>{from}</IssueDate>
  <ValidFrom>{from}</ValidFrom>
  <ValidTo>{to}</ValidTo>
  <Line><Number>1</Number><HSCode>{hs}</HSCode><Description>Gold</Description><QuantityAllowance unit="{unit}">{qty}</QuantityAllowance></Line>
</Licence>
"#
    )
    .into_bytes()
}

async fn balance(app: &TestApp, token: &str, number: &str, line: usize) -> serde_json::Value {
    let resp = app
        .get(token, &format!("/api/v1/licences/{}", enc(number)))
        .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["lines"][line].clone()
}

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
    let r = app
        .request(reqwest::Method::GET, "/api/v1/inbox", None, &[], None)
        .await;
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
async fn deposits_are_verified_against_the_agencys_registered_certificate() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let key = register_signer(&app, &admin, "SBV").await;
    let xml = licence_xml(
        "DEP-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "50",
    );

    // Signed by a key nobody registered: the signature matches the bytes, but its
    // certificate does not chain to anything registered for SBV.
    let rogue = nsw::licensing::signing::generate("SBV", "VN").unwrap();
    let before = app.count("licences").await;
    let r = deposit(&app, &sbv, &rogue, xml.clone()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "CERTIFICATE_UNTRUSTED");
    // The registered key, but other bytes than it signed: the signature does not match.
    let sig = nsw::licensing::signing::sign_detached(
        &key.private_key_pem,
        &key.certificate_pem,
        b"<Licence/>",
    )
    .unwrap();
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/licences",
            Some(&sbv),
            &[
                ("content-type", "application/xml"),
                (
                    "x-signature",
                    &base64::engine::general_purpose::STANDARD.encode(sig),
                ),
            ],
            Some(xml.clone()),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error_codes()[0].0, "SIGNATURE_INVALID");
    // No signature at all.
    let r = app.post_xml(&sbv, "/api/v1/licences", xml.clone()).await;
    assert_eq!(r.json()["code"], "SIGNATURE_MISSING");
    // Another agency's officer may not deposit SBV's licence.
    let r = deposit(&app, &moit, &key, xml.clone()).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.count("licences").await, before);

    let r = deposit(&app, &sbv, &key, xml.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["origin"], "deposited");
    assert_eq!(r.json()["lines"][0]["remaining"], "50.000");
    // Same number again: conflict, nothing stored twice.
    let r = deposit(&app, &sbv, &key, xml).await;
    assert_eq!(r.status, 409);
    // The stored bytes and signature come back exactly.
    let doc = app.get(&sbv, "/api/v1/licences/DEP-1/document").await;
    let sig = app.get(&sbv, "/api/v1/licences/DEP-1/signature").await;
    nsw::licensing::signing::verify_detached(
        &sig.body,
        &doc.body,
        std::slice::from_ref(&key.certificate_pem),
        "SBV",
        &Default::default(),
    )
    .unwrap();
}

#[tokio::test]
async fn a_declaration_is_refused_for_each_licence_problem() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let key = register_signer(&app, &admin, "SBV").await;
    let good = |n: &str| {
        licence_xml(
            n,
            "SBV",
            "0302468135",
            "IM",
            "2026-07-01",
            FAR_AHEAD,
            "71081210",
            "KGM",
            "50",
        )
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            // Not valid on the window's date (a licence whose validity has already ended cannot
            // be deposited; intake_rules has one that ended after its deposit).
            "EXPIRED-1",
            licence_xml(
                "EXPIRED-1",
                "SBV",
                "0302468135",
                "IM",
                "2099-01-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "50",
            ),
            "LICENCE_EXPIRED",
        ),
        (
            "OTHERS-1",
            licence_xml(
                "OTHERS-1",
                "SBV",
                "0300000001",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "50",
            ),
            "LICENCE_NOT_HOLDER",
        ),
        (
            "HS-1",
            licence_xml(
                "HS-1",
                "SBV",
                "0302468135",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "710813",
                "KGM",
                "50",
            ),
            "LICENCE_HS_MISMATCH",
        ),
        (
            "UNIT-1",
            licence_xml(
                "UNIT-1",
                "SBV",
                "0302468135",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "710812",
                "GRM",
                "50000",
            ),
            "LICENCE_UNIT_MISMATCH",
        ),
        (
            "DIR-1",
            licence_xml(
                "DIR-1",
                "SBV",
                "0302468135",
                "EX",
                "2026-07-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "50",
            ),
            "LICENCE_DIRECTION_MISMATCH",
        ),
        (
            "SHORT-1",
            licence_xml(
                "SHORT-1",
                "SBV",
                "0302468135",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "49.999",
            ),
            "LICENCE_BALANCE_INSUFFICIENT",
        ),
        ("NOWHERE-1", Vec::new(), "LICENCE_NOT_FOUND"),
    ];
    let decl = fixture(GOLD_DECLARATION);
    for (number, lic, _) in &cases {
        if !lic.is_empty() {
            let r = deposit(&app, &sbv, &key, lic.clone()).await;
            assert_eq!(
                r.status,
                201,
                "{number}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    let before = app.footprint().await;
    let ledger_before = app.count("licence_ledger").await;
    for (number, _, code) in &cases {
        let xml = replace(&decl, "215/GP-NHNN", number);
        let r = app.submit(&trader, xml).await;
        assert_eq!(
            r.status,
            422,
            "{number}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let body = r.json();
        let err = &body["errors"][0];
        assert_eq!(err["code"], *code, "{number}: {body}");
        assert_eq!(err["path"], "/Declaration/Item");
        assert_eq!(err["line"], 62);
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains("SBV") && msg.contains("SBV-GOLD") && msg.contains("item 1"),
            "{msg}"
        );
    }
    // The licence left out entirely.
    let s = String::from_utf8(decl.clone()).unwrap();
    let start = s.find("    <Document>").unwrap();
    let end = s.find("    </Document>").unwrap() + "    </Document>\n".len();
    let without = format!("{}{}", &s[..start], &s[end..]);
    let r = app.submit(&trader, without.into_bytes()).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.error_codes(),
        vec![("LICENCE_MISSING".to_owned(), "/Declaration/Item".to_owned())]
    );
    assert_eq!(
        app.footprint().await,
        before,
        "a refused declaration left something behind"
    );
    assert_eq!(app.count("licence_ledger").await, ledger_before);

    // The fitting licence is accepted, and exactly once per balance.
    let r = deposit(&app, &sbv, &key, good("GOOD-1")).await;
    assert_eq!(r.status, 201);
    let ok = app
        .submit(
            &trader,
            with_reference(&replace(&decl, "215/GP-NHNN", "GOOD-1"), "GOLD-A"),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
    let again = app
        .submit(
            &trader,
            with_reference(&replace(&decl, "215/GP-NHNN", "GOOD-1"), "GOLD-B"),
        )
        .await;
    assert_eq!(again.status, 422);
    assert_eq!(again.error_codes()[0].0, "LICENCE_BALANCE_INSUFFICIENT");
}

#[tokio::test]
async fn one_hundred_concurrent_declarations_draw_exactly_fifty_from_one_line() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let key = register_signer(&app, &admin, "SBV").await;
    // 50 declarations of 50 KGM each exhaust it exactly.
    let lic = licence_xml(
        "RACE-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "2500",
    );
    assert_eq!(deposit(&app, &sbv, &key, lic).await.status, 201);
    let decl = replace(&fixture(GOLD_DECLARATION), "215/GP-NHNN", "RACE-1");
    let requests = (0..100).map(|i| {
        let xml = with_reference(&decl, &format!("RACE-{i:03}"));
        let (app, trader) = (&app, &trader);
        async move { app.submit(trader, xml).await }
    });
    let results = futures_util::future::join_all(requests).await;
    let accepted = results.iter().filter(|r| r.status == 201).count();
    let short = results
        .iter()
        .filter(|r| {
            r.status == 422
                && r.error_codes()
                    .first()
                    .is_some_and(|(c, _)| c == "LICENCE_BALANCE_INSUFFICIENT")
        })
        .count();
    let others: Vec<String> = results
        .iter()
        .filter(|r| r.status != 201 && r.status != 422)
        .map(|r| format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(accepted, 50);
    assert_eq!(short, 50);
    let line = balance(&app, &trader, "RACE-1", 0).await;
    assert_eq!(line["remaining"], "0.000");
    assert_eq!(line["reserved"], "2500.000");
    assert_eq!(app.count("licence_ledger").await, 50);
    assert_eq!(app.count("declarations").await, 50);
}

#[tokio::test]
async fn customs_decisions_settle_the_ledger_once() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let officer = app.add_party(Role::Customs, "CUSTOMS-1").await;
    let key = register_signer(&app, &admin, "SBV").await;
    let lic = licence_xml(
        "LEDGER-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "200",
    );
    assert_eq!(deposit(&app, &sbv, &key, lic).await.status, 201);
    let decl = replace(&fixture(GOLD_DECLARATION), "215/GP-NHNN", "LEDGER-1");
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = app
            .submit(&trader, with_reference(&decl, &format!("LEDGER-{i}")))
            .await;
        assert_eq!(r.status, 201);
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        balance(&app, &trader, "LEDGER-1", 0).await["remaining"],
        "0.000"
    );

    // rejected: released; withdrawn: released; held then cleared: committed.
    let r = customs(&app, &officer, &ids[0], json!({"action": "reject"})).await;
    assert_eq!(r.json()["code"], "REASON_REQUIRED");
    let r = customs(
        &app,
        &officer,
        &ids[0],
        json!({"action": "reject", "reason": "undervalued"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = app
        .post_json(
            &trader,
            &format!("/api/v1/declarations/{}/withdrawal", ids[1]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        customs(&app, &officer, &ids[2], json!({"action": "hold"}))
            .await
            .json()["status"],
        "under_inspection"
    );
    assert_eq!(
        customs(&app, &officer, &ids[2], json!({"action": "clear"}))
            .await
            .json()["status"],
        "cleared"
    );
    let line = balance(&app, &trader, "LEDGER-1", 0).await;
    assert_eq!(line["remaining"], "100.000");
    assert_eq!(line["reserved"], "50.000");
    assert_eq!(line["committed"], "50.000");

    // Forbidden moves of the customs state machine.
    for (id, body) in [
        (&ids[2], json!({"action": "reject", "reason": "too late"})),
        (&ids[2], json!({"action": "hold"})),
        (&ids[0], json!({"action": "clear"})),
        (&ids[1], json!({"action": "clear"})),
    ] {
        let r = customs(&app, &officer, id, body).await;
        assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], "TRANSITION_FORBIDDEN");
    }
    let r = app
        .post_json(
            &trader,
            &format!("/api/v1/declarations/{}/withdrawal", ids[2]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    // Only customs decides; the trader cannot withdraw someone else's.
    assert_eq!(
        customs(&app, &trader, &ids[3], json!({"action": "clear"}))
            .await
            .status,
        403
    );
    let other = app.add_party(Role::Enterprise, "0300000009").await;
    let r = app
        .post_json(
            &other,
            &format!("/api/v1/declarations/{}/withdrawal", ids[3]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);

    // Settling again changes nothing (idempotent per declaration, item and line); the ledger
    // cannot be rewritten; the balance can never go below zero.
    let client = app.pool.get().await.unwrap();
    let entries = app.count("licence_ledger").await;
    let tx_sql = format!(
        "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
         SELECT licence_id, line, declaration_id, item, 'commit', quantity FROM licence_ledger
          WHERE declaration_id = '{}' AND kind = 'reserve'",
        ids[2]
    );
    client.execute(tx_sql.as_str(), &[]).await.unwrap();
    assert_eq!(app.count("licence_ledger").await, entries);
    assert!(client
        .execute("UPDATE licence_ledger SET quantity = 1", &[])
        .await
        .is_err());
    assert!(client
        .execute("UPDATE licence_lines SET remaining = -1", &[])
        .await
        .is_err());
    let release_committed = format!(
        "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
         SELECT licence_id, line, declaration_id, item, 'release', quantity FROM licence_ledger
          WHERE declaration_id = '{}' AND kind = 'reserve'",
        ids[2]
    );
    assert!(
        client
            .execute(release_committed.as_str(), &[])
            .await
            .is_err(),
        "a committed reservation cannot be released"
    );
    assert_eq!(
        balance(&app, &trader, "LEDGER-1", 0).await["remaining"],
        "100.000"
    );
}

#[tokio::test]
async fn every_routing_rule_kind_and_the_versioned_admin_api() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    deposit_fixture_licences(&app).await;

    let current = app.get(&admin, "/api/v1/admin/routing-rules").await;
    assert_eq!(current.status, 200);
    let current = current.json();
    assert_eq!(current["version"], 1);
    assert!(current["rules"].as_array().unwrap().len() >= 40);
    assert_eq!(
        app.get(&trader, "/api/v1/admin/routing-rules").await.status,
        403
    );

    let agency =
        |code: &str| json!({"code": code, "name": format!("{code} office"), "ministry": "Test"});
    let rule = |id: &str, hs: &str, dir: &str, country: Option<&str>, ag: &str, doc: &str| {
        let mut r = json!({"id": id, "hs": hs, "direction": dir, "agency": ag,
                           "procedure": format!("P-{id}"), "document": doc,
                           "title": id, "sla_days": 2, "fee_vnd": 0});
        if let Some(c) = country {
            r["country"] = json!(c);
        }
        r
    };
    // Gold (71081210) imported from AU, under every kind of rule.
    let table = json!({
        "agencies": [agency("SBV"), agency("AG-CHAPTER"), agency("AG-SUB"), agency("AG-NATIONAL"),
                     agency("AG-EXPORT"), agency("AG-AU"), agency("AG-JP")],
        "rules": [
            rule("sbv", "7108", "IM", None, "SBV", "LIC"),
            rule("chapter", "71", "IM", None, "AG-CHAPTER", "QIC"),
            rule("heading-wins", "7108", "IM", None, "AG-CHAPTER", "CAT"),
            rule("subheading", "710812", "IM", None, "AG-SUB", "FSN"),
            rule("national", "71081210", "IM", None, "AG-NATIONAL", "VHC"),
            rule("export-only", "7108", "EX", None, "AG-EXPORT", "PQC"),
            rule("from-au", "7108", "IM", Some("AU"), "AG-AU", "OTH"),
            rule("from-jp", "7108", "IM", Some("JP"), "AG-JP", "PQC"),
        ]
    });
    let put = |body: serde_json::Value| {
        let app = &app;
        let admin = &admin;
        async move {
            app.request(
                reqwest::Method::PUT,
                "/api/v1/admin/routing-rules?note=test",
                Some(admin),
                &[("content-type", "application/json")],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
        }
    };
    let r = put(table.clone()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["version"], 2);

    let r = app.submit(&trader, fixture(GOLD_DECLARATION)).await;
    assert_eq!(r.status, 422);
    let body = r.json();
    let mut got: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let msg = e["message"].as_str().unwrap();
            let agency = msg
                .split("agency ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_owned();
            (agency, e["code"].as_str().unwrap().to_owned())
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("AG-AU".to_owned(), "DOCUMENT_MISSING".to_owned()),
            ("AG-CHAPTER".to_owned(), "DOCUMENT_MISSING".to_owned()),
            ("AG-NATIONAL".to_owned(), "DOCUMENT_MISSING".to_owned()),
            ("AG-SUB".to_owned(), "DOCUMENT_MISSING".to_owned()),
        ],
        "{body}"
    );
    let chapter = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message"].as_str().unwrap().contains("AG-CHAPTER"))
        .unwrap();
    assert!(
        chapter["message"]
            .as_str()
            .unwrap()
            .contains("requires a CAT document"),
        "{chapter}"
    );

    // A broken table is refused whole, each problem named; the version stays.
    let mut broken = table.clone();
    broken["rules"][0]["hs"] = json!("7");
    broken["rules"][1]["agency"] = json!("NOBODY");
    let r = put(broken).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"].as_array().unwrap().len(), 2);

    // Back to the shipped rules (version 3): the declaration passes, recording that version.
    let r = put(json!({"agencies": current["agencies"], "rules": current["rules"]})).await;
    assert_eq!(r.json()["version"], 3);
    let r = app.submit(&trader, fixture(GOLD_DECLARATION)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let client = app.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT routing_version, (SELECT count(*) FROM declaration_routing) FROM declarations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(3));
    assert_eq!(row.get::<_, i64>(1), 1);
    let versions = app
        .get(&admin, "/api/v1/admin/routing-rules?version=2")
        .await
        .json();
    assert_eq!(versions["rules"].as_array().unwrap().len(), 8);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 3);
    let audited: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'routing.replaced'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 3);
}

#[tokio::test]
async fn an_application_no_rule_covers_is_refused_with_its_line() {
    let app = TestApp::spawn().await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    let xml = replace(
        &fixture(RICE_APPLICATION),
        "<Agency>MOIT</Agency>",
        "<Agency>MOH-VFA</Agency>",
    );
    let before = app.count("licence_applications").await;
    let r = app
        .post_xml(&enterprise, "/api/v1/licence-applications", xml)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.error_codes()[0],
        (
            "ROUTING_NO_RULE".to_owned(),
            "/LicenceApplication/Line[1]".to_owned()
        )
    );
    assert_eq!(app.count("licence_applications").await, before);
    // Someone else's application in my name: forbidden.
    let other = app.add_party(Role::Enterprise, "0312345678").await;
    let r = app
        .post_xml(
            &other,
            "/api/v1/licence-applications",
            fixture(RICE_APPLICATION),
        )
        .await;
    assert_eq!(r.status, 403);
}

/// The SQLSTATE of a refused statement.
fn sqlstate(r: Result<u64, tokio_postgres::Error>) -> String {
    r.expect_err("the database accepted it")
        .as_db_error()
        .expect("a database error")
        .code()
        .code()
        .to_owned()
}

#[tokio::test]
async fn the_database_moves_balances_only_through_the_ledger() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let key = register_signer(&app, &admin, "SBV").await;
    let lic = licence_xml(
        "GUARD-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "200",
    );
    assert_eq!(deposit(&app, &sbv, &key, lic).await.status, 201);
    let decl = replace(&fixture(GOLD_DECLARATION), "215/GP-NHNN", "GUARD-1");
    let r = app.submit(&trader, with_reference(&decl, "GUARD-A")).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let decl_id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        balance(&app, &trader, "GUARD-1", 0).await["remaining"],
        "150.000"
    );

    let mut client = app.pool.get().await.unwrap();
    // A direct change of the balance, even one the CHECK would allow, is refused.
    assert_eq!(
        sqlstate(
            client
                .execute("UPDATE licence_lines SET remaining = remaining + 1", &[])
                .await
        ),
        "42501"
    );
    // Raising the flag the ledger trigger raises does not help from outside a trigger.
    {
        let tx = client.transaction().await.unwrap();
        tx.execute("SELECT set_config('nsw.ledger', 'on', true)", &[])
            .await
            .unwrap();
        assert_eq!(
            sqlstate(
                tx.execute("UPDATE licence_lines SET remaining = allowance", &[])
                    .await
            ),
            "42501"
        );
    }
    // Nor does a ledger entry earlier in the same transaction leave the door open.
    {
        let tx = client.transaction().await.unwrap();
        let released = tx
            .execute(
                "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
                 SELECT licence_id, line, declaration_id, item, 'release', quantity
                   FROM licence_ledger WHERE declaration_id = $1::text::uuid AND kind = 'reserve'",
                &[&decl_id],
            )
            .await
            .unwrap();
        assert_eq!(released, 1, "the ledger itself still moves the balance");
        assert_eq!(
            sqlstate(
                tx.execute("UPDATE licence_lines SET remaining = remaining - 1", &[])
                    .await
            ),
            "42501"
        );
    }
    // The rest of a line is as immutable as its licence, and a line cannot be born drawn.
    for sql in [
        "UPDATE licence_lines SET allowance = allowance + 1",
        "UPDATE licence_lines SET hs_code = '710812'",
        "DELETE FROM licence_lines",
        "INSERT INTO licence_lines (licence_id, line, hs_code, description, unit, allowance,
            remaining)
         SELECT licence_id, 2, hs_code, description, unit, allowance, 0 FROM licence_lines",
    ] {
        assert_eq!(sqlstate(client.execute(sql, &[]).await), "42501", "{sql}");
    }
    // Both rolled-back transactions left the balance as the reservation set it.
    let line = balance(&app, &trader, "GUARD-1", 0).await;
    assert_eq!(line["remaining"], "150.000");
    assert_eq!(line["reserved"], "50.000");
}

#[tokio::test]
async fn a_declaration_can_only_be_born_accepted() {
    let app = TestApp::spawn().await;
    let trader = app.add_party(Role::Enterprise, "0301234567").await;
    let r = app
        .submit(
            &trader,
            fixture("valid/declaration/01-import-laptops-10-items.xml"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let mut client = app.pool.get().await.unwrap();
    // A copy of the stored declaration under a new id, reference and declarant's reference,
    // in a given status.
    let insert = |status: &'static str| {
        format!(
            "INSERT INTO declarations (id, reference, document_id, submitter, status, direction,
                lrn, declarant_id, exporter_id, importer_id, trader_id, export_country,
                destination_country, customs_office, issue_date, currency, total_value,
                total_gross_mass, item_count, received_at, updated_at)
             SELECT '00000000-0000-7000-8000-000000000002', reference || '-COPY',
                    '00000000-0000-7000-8000-000000000001', submitter, '{status}', direction,
                    lrn || '-COPY', declarant_id, exporter_id, importer_id, trader_id, export_country,
                    destination_country, customs_office, issue_date, currency, total_value,
                    total_gross_mass, item_count, received_at, updated_at
               FROM declarations WHERE id = '{id}'"
        )
    };
    let copy_document = "INSERT INTO documents (id, kind, sha256, size, body, received_at)
         SELECT '00000000-0000-7000-8000-000000000001', kind, sha256, size, body, received_at
           FROM documents d WHERE d.id = (SELECT document_id FROM declarations
                                           WHERE id = $1::text::uuid)";
    for status in ["cleared", "rejected", "under_inspection", "withdrawn"] {
        let tx = client.transaction().await.unwrap();
        tx.execute(copy_document, &[&id]).await.unwrap();
        assert_eq!(
            sqlstate(tx.execute(insert(status).as_str(), &[]).await),
            "NS409",
            "{status}"
        );
    }
    // The very same row as accepted goes in: the status alone was refused.
    let tx = client.transaction().await.unwrap();
    tx.execute(copy_document, &[&id]).await.unwrap();
    assert_eq!(
        tx.execute(insert("accepted").as_str(), &[]).await.unwrap(),
        1
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn the_loadtest_prefill_goes_through_the_state_machine() {
    let app = TestApp::spawn().await;
    let submitter = nsw::loadtest::docgen::DECLARANT;
    app.add_party(Role::Enterprise, submitter).await;
    let body = nsw::loadtest::docgen::declaration(3, 1);
    let done = nsw::loadtest::prefill::run(&app.pool, 10, &body, 3, submitter)
        .await
        .expect("prefill");
    assert_eq!(done.dossiers, 10);
    let client = app.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT status, count(*) FROM declarations GROUP BY status ORDER BY status",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            ("accepted".to_owned(), 2),
            ("cleared".to_owned(), 6),
            ("rejected".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn a_limit_in_days_counts_the_configured_working_day() {
    let app = TestApp::builder()
        .settings(|s| {
            s.calendar.day_start = "07:30".into();
            s.calendar.day_end = "17:00".into();
        })
        .spawn()
        .await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    // moit-rice-export: sla_days = 5, so five days of 9.5 working hours
    let receipt = apply(&app, &enterprise, RICE_APPLICATION).await;
    let client = app.pool.get().await.unwrap();
    let minutes: i32 = client
        .query_one(
            "SELECT sla_minutes FROM licence_applications WHERE id = $1::text::uuid",
            &[&receipt["id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(minutes, 5 * (9 * 60 + 30));
}

/// Stores an application of MOIT procedure `P-STATS` received at `received` (RFC 3339) that went
/// through `steps` (status, time), with the events an officer's actions would have written.
async fn stored_application(
    client: &deadpool_postgres::Object,
    applicant: &str,
    n: u32,
    received: &str,
    steps: &[(&str, &str)],
) {
    let id = format!("00000000-0000-7000-8000-{n:012}");
    let doc = format!("00000000-0000-7001-8000-{n:012}");
    let received: chrono::DateTime<chrono::Utc> = received.parse().unwrap();
    client
        .execute(
            "INSERT INTO documents (id, kind, sha256, size, body, received_at)
             VALUES ($1::text::uuid, 'licence-application', sha256('x'), 1, 'x', $2)",
            &[&doc, &received],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO licence_applications (id, reference, document_id, applicant_id, lrn,
                details, application_type, direction, country, valid_from, valid_to, agency,
                procedure_code, document_type, rule_id, routing_version, sla_minutes, fee_vnd,
                status, received_at, updated_at)
             VALUES ($1::text::uuid, 'VN-LA-STATS-' || $3::text, $2::text::uuid, $4, 'LRN',
                '{}', 'EXL', 'EX', 'PH', '2026-09-01', '2026-12-31', 'MOIT', 'P-STATS', 'LIC',
                'stats', 1, 480, 0, 'submitted', $5, $5)",
            &[&id, &doc, &n.to_string(), &applicant, &received],
        )
        .await
        .unwrap();
    for (status, at) in [("submitted", received), ("received", received)]
        .into_iter()
        .chain(steps.iter().map(|(s, t)| (*s, t.parse().unwrap())))
    {
        let decided = matches!(status, "issued" | "refused");
        // The row is inserted as submitted; a status never "moves" to itself.
        client
            .execute(
                "UPDATE licence_applications SET status = $2, updated_at = $3,
                        decided_at = CASE WHEN $4 THEN $3::timestamptz END,
                        decision_reason = CASE WHEN $2 = 'refused' THEN 'incomplete' END
                  WHERE id = $1::text::uuid AND status <> $2",
                &[&id, &status, &at, &decided],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO dossier_events (dossier_id, status, at, actor, note)
                 VALUES ($1::text::uuid, $2, $3, 'test', NULL)",
                &[&id, &status, &at],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn stats_count_working_hours_and_the_on_schedule_rate_exactly() {
    let app = TestApp::spawn().await;
    app.add_party(Role::Enterprise, "1401234568").await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let client = app.pool.get().await.unwrap();
    // Times in UTC+7, the default calendar (08:00-16:00, 2026-09-02 a public holiday).
    // Friday 14:00 to Monday 10:00: 4 working hours.
    stored_application(
        &client,
        "1401234568",
        1,
        "2026-09-04T14:00:00+07:00",
        &[
            ("under_review", "2026-09-07T08:30:00+07:00"),
            ("issued", "2026-09-07T10:00:00+07:00"),
        ],
    )
    .await;
    // Tuesday 15:00, over the holiday, to Thursday 09:30: 2.5 hours.
    stored_application(
        &client,
        "1401234568",
        2,
        "2026-09-01T15:00:00+07:00",
        &[
            ("under_review", "2026-09-03T09:00:00+07:00"),
            ("refused", "2026-09-03T09:30:00+07:00"),
        ],
    )
    .await;
    // Monday 09:00 to Thursday 12:00 (27 hours) less the supplement owed from Monday 11:00 to
    // Wednesday 10:00 (15 hours): 12 hours, late for an 8-hour limit.
    stored_application(
        &client,
        "1401234568",
        3,
        "2026-09-07T09:00:00+07:00",
        &[
            ("supplement_requested", "2026-09-07T11:00:00+07:00"),
            ("supplemented", "2026-09-09T10:00:00+07:00"),
            ("under_review", "2026-09-09T11:00:00+07:00"),
            ("issued", "2026-09-10T12:00:00+07:00"),
        ],
    )
    .await;
    // Still with the agency.
    stored_application(&client, "1401234568", 4, "2026-09-08T09:00:00+07:00", &[]).await;

    let stats = app.get(&admin, "/api/v1/stats").await.json();
    let row = stats["procedures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["procedure_code"] == "P-STATS")
        .cloned()
        .unwrap();
    assert_eq!(row["received"], 4);
    assert_eq!(row["decided"], 3);
    assert_eq!(row["issued"], 2);
    assert_eq!(row["refused"], 1);
    assert_eq!(row["pending"], 1);
    // nearest rank over [2.5, 4, 12]
    assert_eq!(row["median_hours"], 4.0);
    assert_eq!(row["p90_hours"], 12.0);
    assert_eq!(row["on_schedule_rate"], 2.0 / 3.0);
}

/// The id of the routing rule an application was routed by.
async fn rule_of(app: &TestApp, id: &str) -> String {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT rule_id FROM licence_applications WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_transit_application_is_routed_by_a_transit_rule() {
    let app = TestApp::spawn().await;
    let forwarder = app.add_party(Role::Enterprise, "3001234567").await;
    let gdvc = app
        .add_party_with_agency(Role::Ministry, "GDVC-OFFICER-1", "GDVC")
        .await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let receipt = apply(&app, &forwarder, TRANSIT_APPLICATION).await;
    assert_eq!(receipt["agency"], "GDVC");
    assert_eq!(receipt["procedure_code"], "GDVC-TRANSIT");
    assert_eq!(receipt["fee_vnd"], 0);
    assert_eq!(receipt["sla_minutes"], 8 * 60);
    let id = receipt["id"].as_str().unwrap().to_owned();
    assert_eq!(rule_of(&app, &id).await, "gdvc-petroleum-transit");
    let detail = app
        .get(&gdvc, &format!("/api/v1/licence-applications/{id}"))
        .await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.json()["direction"], "TR");
    let inbox = app.get(&gdvc, "/api/v1/inbox").await.json();
    assert_eq!(inbox["items"][0]["id"], id.as_str());
    // MOIT licenses petroleum imports, not transits: not in its inbox.
    let inbox = app.get(&moit, "/api/v1/inbox").await.json();
    assert!(inbox["items"].as_array().unwrap().is_empty());

    // The same goods declared as an import meet only MOIT's import licence rule, which asks for
    // a licence (LIC), not this notification (OTH): no rule routes it.
    let import = replace(
        &replace(
            &fixture(TRANSIT_APPLICATION),
            "<Direction>TR</Direction>",
            "<Direction>IM</Direction>",
        ),
        "<Agency>GDVC</Agency>\n",
        "",
    );
    let r = app
        .post_xml(&forwarder, "/api/v1/licence-applications", import)
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.error_codes()[0],
        (
            "ROUTING_NO_RULE".to_owned(),
            "/LicenceApplication/Line".to_owned()
        )
    );
}

#[tokio::test]
async fn an_export_rule_for_one_destination_routes_only_that_destination() {
    let app = TestApp::spawn().await;
    let exporter = app.add_party(Role::Enterprise, "1201234567").await;
    let mard = app
        .add_party_with_agency(Role::Ministry, "PPD-OFFICER-1", "MARD-PPD")
        .await;
    let receipt = apply(&app, &exporter, DURIAN_TO_TH_APPLICATION).await;
    assert_eq!(receipt["agency"], "MARD-PPD");
    assert_eq!(receipt["procedure_code"], "PPD-PQC-EX");
    assert_eq!(receipt["fee_vnd"], 350_000);
    assert_eq!(receipt["sla_minutes"], 24 * 60);
    let id = receipt["id"].as_str().unwrap().to_owned();
    assert_eq!(rule_of(&app, &id).await, "mardppd-fruit-th-pqc");
    let inbox = app.get(&mard, "/api/v1/inbox").await.json();
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);

    // The same durians to Malaysia: the Thai rule does not apply and no other covers them.
    let to_my = replace(
        &replace(
            &fixture(DURIAN_TO_TH_APPLICATION),
            "<ImportCountry>TH</ImportCountry>",
            "<ImportCountry>MY</ImportCountry>",
        ),
        "<Country>TH</Country>",
        "<Country>MY</Country>",
    );
    let before = app.count("licence_applications").await;
    let r = app
        .post_xml(&exporter, "/api/v1/licence-applications", to_my)
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.error_codes()[0],
        (
            "ROUTING_NO_RULE".to_owned(),
            "/LicenceApplication/Line".to_owned()
        )
    );
    assert_eq!(app.count("licence_applications").await, before);
}
