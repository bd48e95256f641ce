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

/// A request and what it must get: body, Idempotency-Key, status (0: judged apart), code.
type Expected = (Vec<u8>, Option<&'static str>, u16, Option<&'static str>);

/// Declarations that need no licence, routing or origin look-ups are written set-wise, one
/// statement per table for the group; a member whose reference is taken (before the group, or
/// by another member of it), or whose key was used, is answered on its own while the rest of
/// its group commits.
#[tokio::test]
async fn a_group_written_set_wise_commits_around_its_conflicting_members() {
    use nsw::loadtest::docgen;
    let spawned = app(true, 1).await;
    let app = &spawned;
    let token = app.add_party(Role::Enterprise, docgen::DECLARANT).await;
    let xml = docgen::declaration(10, 1);
    let first = app
        .submit_with(
            &token,
            with_reference(&xml, "SW-TAKEN"),
            &[("idempotency-key", "sw-taken")],
        )
        .await;
    assert_eq!(first.status, 201);

    let mut requests: Vec<Expected> = Vec::new();
    for n in 0..24 {
        requests.push((with_reference(&xml, &format!("SW-{n}")), None, 201, None));
        if n % 6 == 0 {
            // Interleaved so that most groups hold one.
            let code = Some("DECLARATION_REFERENCE_REUSED");
            requests.push((with_reference(&xml, "SW-TAKEN"), None, 409, code));
            let code = Some("IDEMPOTENCY_KEY_REUSED");
            let other = with_reference(&xml, &format!("SW-OTHER-{n}"));
            requests.push((other, Some("sw-taken"), 409, code));
        }
    }
    // The same new reference twice, no key: the first stored wins, the other is refused.
    requests.push((with_reference(&xml, "SW-TWIN"), None, 0, None));
    requests.push((with_reference(&xml, "SW-TWIN"), None, 0, None));
    // The same request four times under one key: one declaration, the same receipt for all.
    for _ in 0..4 {
        requests.push((with_reference(&xml, "SW-SAME"), Some("sw-same"), 201, None));
    }

    let answers = futures_util::future::join_all(requests.iter().map(|(body, key, ..)| {
        let headers: Vec<(&str, &str)> = key.iter().map(|k| ("idempotency-key", *k)).collect();
        let token = token.clone();
        async move { app.submit_with(&token, body.clone(), &headers).await }
    }))
    .await;

    let mut twins = Vec::new();
    let mut same_ids = std::collections::BTreeSet::new();
    for ((body, key, status, code), answer) in requests.iter().zip(&answers) {
        let text = String::from_utf8_lossy(&answer.body);
        if *status == 0 {
            twins.push(answer.status);
            continue;
        }
        assert_eq!(answer.status, *status, "{text}");
        if let Some(code) = code {
            assert_eq!(answer.json()["code"], *code, "{text}");
            continue;
        }
        let receipt = answer.json();
        assert_eq!(receipt["sha256"], hex::encode(Sha256::digest(body)));
        let id = receipt["id"].as_str().unwrap();
        if key.is_some() {
            same_ids.insert(id.to_owned());
        }
        let stored = app
            .get(&token, &format!("/api/v1/declarations/{id}/document"))
            .await;
        assert_eq!(&stored.body[..], &body[..], "stored bytes differ");
        let detail = app
            .get(&token, &format!("/api/v1/declarations/{id}"))
            .await
            .json();
        assert_eq!(detail["item_count"], 10);
        assert_eq!(detail["history"].as_array().unwrap().len(), 1);
    }
    twins.sort();
    assert_eq!(twins, [201, 409], "one twin stored, one refused");
    assert_eq!(same_ids.len(), 1, "one declaration for one key");

    // 1 before, 24 distinct, one twin, one for the shared key.
    let [documents, declarations, items, events, _, keys] = app.footprint().await;
    assert_eq!(
        [documents, declarations, items, events, keys],
        [27, 27, 270, 27, 2]
    );
    let client = app.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT x.xmin::text),
                    count(*) FILTER (WHERE x.routing_version IS NULL),
                    (SELECT count(*) FROM audit_log WHERE action = 'declaration.accepted'),
                    (SELECT count(*) FROM event_pending) + (SELECT count(*) FROM event_feed)
               FROM declarations x",
            &[],
        )
        .await
        .unwrap();
    let (count, transactions, unrouted, audited, queued): (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!((unrouted, audited, queued), (0, 27, 27));
    // Rows written in one member's savepoint carry that savepoint's transaction id; rows
    // written set-wise share the group's.
    assert!(transactions < count, "no group was written set-wise");
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
