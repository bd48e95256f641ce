//! Concurrent declarations committed in groups: every member stored whole, in one transaction
//! with its own rows, and a failing member taking nothing else down with it.

use nsw::domain::party::Role;
use sha2::{Digest, Sha256};

use crate::helpers::{fixture, with_reference, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";

async fn app(group_commit: bool, committers: usize) -> TestApp {
    TestApp::builder()
        .settings(move |s| {
            s.intake.group_commit = group_commit;
            s.intake.committers = committers;
        })
        .spawn()
        .await
}

/// 30 distinct declarations, 10 copies of one under one Idempotency-Key and 5 under a key
/// already used with another body, all at once.
async fn storm(app: &TestApp) {
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);
    let taken = app
        .submit_with(
            &token,
            with_reference(&xml, "GC-TAKEN"),
            &[("idempotency-key", "gc-taken")],
        )
        .await;
    assert_eq!(taken.status, 201);

    let mut requests = Vec::new();
    for n in 0..30 {
        requests.push((with_reference(&xml, &format!("GC-{n}")), None));
    }
    for _ in 0..10 {
        requests.push((with_reference(&xml, "GC-SAME"), Some("gc-same")));
    }
    for n in 0..5 {
        requests.push((
            with_reference(&xml, &format!("GC-OTHER-{n}")),
            Some("gc-taken"),
        ));
    }
    let answers = futures_util::future::join_all(requests.iter().map(|(body, key)| {
        let headers: Vec<(&str, &str)> = key.iter().map(|k| ("idempotency-key", *k)).collect();
        let token = token.clone();
        async move { app.submit_with(&token, body.clone(), &headers).await }
    }))
    .await;

    let mut same_ids = std::collections::BTreeSet::new();
    for ((body, key), answer) in requests.iter().zip(&answers) {
        match *key {
            Some("gc-taken") => {
                assert_eq!(answer.status, 409);
                assert_eq!(answer.json()["code"], "IDEMPOTENCY_KEY_REUSED");
            }
            _ => {
                assert_eq!(
                    answer.status,
                    201,
                    "{}",
                    String::from_utf8_lossy(&answer.body)
                );
                let receipt = answer.json();
                assert_eq!(receipt["sha256"], hex::encode(Sha256::digest(body)));
                if key.is_some() {
                    same_ids.insert(receipt["id"].as_str().unwrap().to_owned());
                }
                let id = receipt["id"].as_str().unwrap();
                let stored = app
                    .get(&token, &format!("/api/v1/declarations/{id}/document"))
                    .await;
                assert_eq!(stored.status, 200);
                assert_eq!(&stored.body[..], &body[..], "stored bytes differ");
            }
        }
    }
    assert_eq!(same_ids.len(), 1, "one declaration for one key");
    // 1 before the storm, 30 distinct, 1 for the shared key.
    let [documents, declarations, items, events, _, keys] = app.footprint().await;
    assert_eq!(
        [documents, declarations, items, events, keys],
        [32, 32, 320, 32, 2]
    );
    let client = app.pool.get().await.unwrap();
    let accepted: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'declaration.accepted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(accepted, 32);

    // Each declaration's rows were written by one transaction: the group that held it. (Audit
    // entries are left out: the sealer updates them afterwards to link the chain.)
    let split: i64 = client
        .query_one(
            "SELECT count(*) FROM declarations x
               JOIN documents d ON d.id = x.document_id
               JOIN dossier_events e ON e.dossier_id = x.id
              WHERE x.xmin::text <> d.xmin::text OR x.xmin::text <> e.xmin::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(split, 0, "a declaration's rows span transactions");
}

#[tokio::test]
async fn concurrent_submissions_are_committed_whole_in_groups() {
    storm(&app(true, 2).await).await;
}

#[tokio::test]
async fn one_transaction_per_request_when_group_commit_is_off() {
    storm(&app(false, 1).await).await;
}
