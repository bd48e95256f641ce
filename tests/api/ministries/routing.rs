//! Routing applications to agencies: every rule kind, the versioned admin API, applications no
//! rule covers, transit and per-destination export rules.

use nsw::domain::party::Role;
use serde_json::json;

use super::{
    apply, replace, DURIAN_TO_TH_APPLICATION, GOLD_DECLARATION, RICE_APPLICATION,
    TRANSIT_APPLICATION,
};
use crate::helpers::{fixture, TestApp};
use crate::support::deposit_fixture_licences;

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
            app.put_json(admin, "/api/v1/admin/routing-rules?note=test", body)
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
