//! Throttles: a burst of requests without valid credentials from one address, and a burst of
//! writes from one party, are answered 429 with Retry-After; normal traffic is not.

use nsw::domain::party::Role;

use crate::helpers::{fixture, with_reference, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";

#[tokio::test]
async fn a_burst_of_bad_credentials_is_throttled_and_good_ones_are_not() {
    let app = TestApp::builder()
        .settings(|s| {
            s.throttle.auth_failures_per_minute = 6;
            s.throttle.auth_failure_burst = 3;
        })
        .spawn()
        .await;
    let token = app.add_party(Role::Customs, "CUSTOMS-1").await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let r = app
            .get(&format!("nsw_guess-{i}"), "/api/v1/declarations")
            .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.json()["code"], "AUTH_THROTTLED");
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=10).contains(&wait), "Retry-After {wait}");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The same address with a valid token is served as ever.
    for _ in 0..5 {
        assert_eq!(app.get(&token, "/api/v1/declarations").await.status, 200);
    }
}

#[tokio::test]
async fn a_burst_of_writes_from_one_party_is_throttled_and_stores_nothing_more() {
    let app = TestApp::builder()
        .settings(|s| {
            s.throttle.writes_per_second = 1;
            s.throttle.write_burst = 2;
        })
        .spawn()
        .await;
    let importer = app.add_party(Role::Enterprise, "0301234567").await;
    let xml = fixture(LAPTOPS);
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = app
            .submit(&importer, with_reference(&xml, &format!("THR-{i}")))
            .await;
        if r.status == 429 {
            assert_eq!(r.json()["code"], "WRITES_THROTTLED");
            assert!(r.header("retry-after").is_some());
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [201, 201, 429]);
    assert_eq!(
        app.count("declarations").await,
        2,
        "the refused one is not stored"
    );
    // Reads are not throttled, and other parties have their own allowance.
    assert_eq!(app.get(&importer, "/api/v1/declarations").await.status, 200);
    let customs = app.add_party(Role::Customs, "CUSTOMS-1").await;
    assert_eq!(app.get(&customs, "/api/v1/declarations").await.status, 200);
    // After the wait it names, the party is served again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app
        .submit(&importer, with_reference(&xml, "THR-after"))
        .await;
    assert_eq!(r.status, 201);
}
