//! The declaration state machine under customs: a declaration is born accepted, and the
//! load-test prefill moves it only through the state machine.

use nsw::domain::party::Role;

use super::sqlstate;
use crate::helpers::{fixture, TestApp};

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
