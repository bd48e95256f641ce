//! Submission, idempotency, status, exact bytes, listing and visibility.

use nsw::domain::party::Role;
use sha2::{Digest, Sha256};

use crate::helpers::{fixture, with_reference, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";

#[tokio::test]
async fn accepted_declaration_has_receipt_location_status_history_and_exact_bytes() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);
    let resp = app.submit(&token, xml.clone()).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let receipt = resp.json();
    let id = receipt["id"].as_str().unwrap().to_owned();
    assert_eq!(
        resp.header("location"),
        Some(format!("/api/v1/declarations/{id}").as_str())
    );
    assert!(resp.header("x-request-id").is_some());
    assert!(receipt["reference"]
        .as_str()
        .unwrap()
        .starts_with("VN-DEC-2026-"));
    assert_eq!(receipt["sha256"], hex::encode(Sha256::digest(&xml)));
    assert_eq!(receipt["size"], xml.len());
    assert!(receipt["received_at"].as_str().unwrap().ends_with('Z'));

    let detail = app.get(&token, &format!("/api/v1/declarations/{id}")).await;
    assert_eq!(detail.status, 200);
    let d = detail.json();
    assert_eq!(d["status"], "accepted");
    assert_eq!(d["item_count"], 10);
    assert_eq!(d["direction"], "IM");
    assert_eq!(d["history"][0]["status"], "accepted");
    assert_eq!(d["sha256"], receipt["sha256"]);

    let doc = app
        .get(&token, &format!("/api/v1/declarations/{id}/document"))
        .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body, xml, "stored bytes differ from the bytes sent");
    assert_eq!(doc.header("content-type"), Some("application/xml"));
    assert_eq!(
        doc.header("etag"),
        Some(format!("\"{}\"", hex::encode(Sha256::digest(&xml))).as_str())
    );

    // one row in each table, written together
    assert_eq!(app.count("documents").await, 1);
    assert_eq!(app.count("declaration_items").await, 10);
    assert_eq!(app.count("dossier_events").await, 1);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);
    let key = [("idempotency-key", "order-42")];
    let first = app.submit_with(&token, xml.clone(), &key).await;
    assert_eq!(first.status, 201);
    let again = app.submit_with(&token, xml.clone(), &key).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("declarations").await, 1);

    let other = with_reference(&xml, "SV-IM-OTHER-1");
    let conflict = app.submit_with(&token, other, &key).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["code"], "IDEMPOTENCY_KEY_REUSED");
    // The key is checked before the body: a reused key is a conflict even when the new body
    // would not validate.
    let broken = app
        .submit_with(
            &token,
            b"<Declaration xmlns=\"urn:nsw:declaration:1\"/>".to_vec(),
            &key,
        )
        .await;
    assert_eq!(broken.status, 409);
    assert_eq!(app.count("declarations").await, 1);

    // concurrent requests with one fresh key: exactly one declaration
    let key2 = [("idempotency-key", "order-43")];
    let body = with_reference(&xml, "SV-IM-RACE-1");
    let futures: Vec<_> = (0..8)
        .map(|_| app.submit_with(&token, body.clone(), &key2))
        .collect();
    let results = futures_util::future::join_all(futures).await;
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            r.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.count("declarations").await, 2);

    let bad = app
        .submit_with(&token, xml.clone(), &[("idempotency-key", "")])
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "IDEMPOTENCY_KEY_INVALID");
}

#[tokio::test]
async fn enterprises_see_only_their_own_declarations() {
    let app = TestApp::spawn().await;
    let owner = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let stranger = app.add_party(Role::Enterprise, "0999999999").await;
    let customs = app.add_party(Role::Customs, "VNCUSTOMS-HCM").await;
    let ministry = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let id = app.submit(&owner, fixture(LAPTOPS)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for path in [
        format!("/api/v1/declarations/{id}"),
        format!("/api/v1/declarations/{id}/document"),
    ] {
        let r = app.get(&stranger, &path).await;
        assert_eq!(r.status, 404, "a stranger must not learn it exists: {path}");
        assert_eq!(r.json()["code"], "NOT_FOUND");
        assert_eq!(app.get(&ministry, &path).await.status, 404);
        assert_eq!(app.get(&customs, &path).await.status, 200);
        assert_eq!(app.get(&owner, &path).await.status, 200);
    }
    let unknown = app.get(&owner, "/api/v1/declarations/not-a-uuid").await;
    assert_eq!(unknown.status, 404);

    let list = app.get(&stranger, "/api/v1/declarations").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let list = app.get(&customs, "/api/v1/declarations").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // submitting in someone else's name
    let r = app.submit(&stranger, fixture(LAPTOPS)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "PARTY_MISMATCH");
    // customs does not submit declarations
    let r = app.submit(&customs, fixture(LAPTOPS)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "ROLE_FORBIDDEN");
    assert_eq!(app.count("declarations").await, 1);
}

/// The ids of every page of `GET /api/v1/declarations?{query}`, following `next_cursor`.
async fn every_page(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                token,
                &format!("/api/v1/declarations?{query}&cursor={cursor}"),
            )
            .await
            .json();
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn listing_pages_with_a_cursor_and_filters_by_status() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);
    let mut submitted = Vec::new();
    for i in 0..5 {
        let r = app
            .submit(&token, with_reference(&xml, &format!("SV-IM-PAGE-{i}")))
            .await;
        assert_eq!(r.status, 201);
        submitted.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    let seen = every_page(&app, &token, "limit=2").await;
    submitted.reverse();
    assert_eq!(seen, submitted, "newest first, each exactly once");

    let accepted = app
        .get(&token, "/api/v1/declarations?status=accepted")
        .await
        .json();
    assert_eq!(accepted["items"].as_array().unwrap().len(), 5);
    let cleared = app
        .get(&token, "/api/v1/declarations?status=cleared")
        .await
        .json();
    assert_eq!(cleared["items"].as_array().unwrap().len(), 0);
    // Customs sees every declaration, paged the same way and filtered by status; another
    // enterprise sees none of them.
    let customs = app.add_party(Role::Customs, "CUSTOMS-PAGE-1").await;
    let all = every_page(&app, &customs, "limit=2&status=accepted").await;
    assert_eq!(all, submitted, "customs: newest first, each exactly once");
    let cleared = app
        .get(&customs, "/api/v1/declarations?status=cleared")
        .await
        .json();
    assert_eq!(cleared["items"].as_array().unwrap().len(), 0);
    let other = app.add_party(Role::Enterprise, "0309999990").await;
    let none = app.get(&other, "/api/v1/declarations").await.json();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    let bad = app.get(&token, "/api/v1/declarations?status=bogus").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "STATUS_INVALID");
    let bad = app.get(&token, "/api/v1/declarations?cursor=zzz").await;
    assert_eq!(bad.status, 400);
    let bad = app.get(&token, "/api/v1/declarations?limit=0").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn one_request_reports_every_violation_with_positions() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = String::from_utf8(fixture(LAPTOPS)).unwrap();
    // break two rules at once: an unknown HS code and a wrong item count
    let broken = xml
        .replacen("<ItemCount>10</ItemCount>", "<ItemCount>11</ItemCount>", 1)
        .replacen("<Origin>", "<Origin>X", 0);
    let first_hs = broken.find("<HSCode>").unwrap() + "<HSCode>".len();
    let mut broken = broken;
    broken.replace_range(first_hs..first_hs + 6, "999999");
    let r = app.submit(&token, broken.into_bytes()).await;
    assert_eq!(r.status, 422);
    let codes = r.error_codes();
    assert!(
        codes.contains(&(
            "ITEM_COUNT_MISMATCH".into(),
            "/Declaration/Totals/ItemCount".into()
        )),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(c, p)| c == "HS_UNKNOWN" && p == "/Declaration/Item[1]/HSCode"),
        "{codes:?}"
    );
    assert_eq!(app.count("declarations").await, 0);
}

#[tokio::test]
async fn health_reports_the_database() {
    let app = TestApp::spawn().await;
    let r = app.get_anonymously("/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["database"]["status"], "up");
}

#[tokio::test]
async fn a_ten_megabyte_declaration_is_stored_byte_for_byte_with_every_item_and_reference() {
    let app = TestApp::spawn().await;
    let token = app
        .add_party(Role::Enterprise, nsw::loadtest::docgen::DECLARANT)
        .await;
    // 999 items of 99 supporting documents each: its body is streamed to the database and its
    // items written in pieces.
    let xml = nsw::loadtest::docgen::large_declaration(999, 10 * 1024 * 1024, 7);
    assert!(xml.len() > 9 * 1024 * 1024);
    let resp = app.submit(&token, xml.clone()).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let receipt = resp.json();
    let id = receipt["id"].as_str().unwrap().to_owned();
    assert_eq!(receipt["sha256"], hex::encode(Sha256::digest(&xml)));
    assert_eq!(receipt["size"], xml.len());

    let doc = app
        .get(&token, &format!("/api/v1/declarations/{id}/document"))
        .await;
    assert_eq!(doc.status, 200);
    assert!(doc.body == xml, "stored bytes differ from the bytes sent");
    assert_eq!(app.count("documents").await, 1);
    assert_eq!(app.count("declaration_items").await, 999);
    let client = app.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT sum(jsonb_array_length(i.documents))::int8,
                    count(DISTINCT i.line)::int8,
                    bool_and(d.received_at = x.received_at),
                    bool_and(d.size = length(d.body)),
                    bool_and(d.kind = 'declaration')
               FROM declarations x
               JOIN documents d ON d.id = x.document_id
               JOIN declaration_items i ON i.declaration_id = x.id",
            &[],
        )
        .await
        .unwrap();
    let references = xml.windows(10).filter(|w| w == b"<Document>").count();
    assert!(references > 999 * 50, "{references}");
    assert_eq!(row.get::<_, i64>(0), references as i64);
    assert_eq!(row.get::<_, i64>(1), 999);
    assert!(
        row.get::<_, bool>(2),
        "the document's time is the declaration's"
    );
    assert!(row.get::<_, bool>(3));
    assert!(row.get::<_, bool>(4));
    let last = client
        .query_one(
            "SELECT documents->(jsonb_array_length(documents) - 1)->>'reference'
               FROM declaration_items WHERE line = 999",
            &[],
        )
        .await
        .unwrap();
    assert!(last
        .get::<_, String>(0)
        .starts_with("PACKING-LIST-00000007-998-"));
}

/// The database keeps a declaration's declarant and reference as submitted, and never lets a
/// new declaration be marked as reusing a reference (migrations 0010, 0021: the rule is the
/// trigger's condition), whatever path writes the row.
#[tokio::test]
async fn the_database_keeps_a_declaration_s_declarant_and_reference() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let r = app.submit(&token, fixture(LAPTOPS)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id: uuid::Uuid = r.json()["id"].as_str().unwrap().parse().unwrap();
    let c = app.pool.get().await.unwrap();
    for change in [
        "lrn = lrn || '-X'",
        "declarant_id = 'someone-else'",
        "lrn_reuse_of = id",
    ] {
        let e = c
            .execute(
                &format!("UPDATE declarations SET {change} WHERE id = $1"),
                &[&id],
            )
            .await
            .unwrap_err();
        let db = e.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "42501", "{change}: {db:?}");
    }
    // Naming the columns without changing them is no change.
    let same = c
        .execute(
            "UPDATE declarations SET lrn = lrn, declarant_id = declarant_id WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(same, 1);
    // A new row marked as reusing a reference is refused before any unique check.
    let e = c
        .execute(
            "INSERT INTO declarations (id, reference, document_id, submitter, status, direction,
                lrn, declarant_id, exporter_id, importer_id, trader_id, export_country,
                destination_country, customs_office, issue_date, currency, total_value,
                total_gross_mass, item_count, received_at, updated_at, lrn_reuse_of)
             SELECT gen_random_uuid(), reference || '-COPY', document_id, submitter, status,
                direction, lrn, declarant_id, exporter_id, importer_id, trader_id,
                export_country, destination_country, customs_office, issue_date, currency,
                total_value, total_gross_mass, item_count, received_at, updated_at, id
               FROM declarations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "23514", "{db:?}");
    assert_eq!(app.count("declarations").await, 1);
}
