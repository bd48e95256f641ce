//! The outbox's tally (migration 0019), which the metrics and the console's partners page read
//! instead of counting the whole outbox, against the outbox itself: through every transition
//! of the state machine, and while folds run alongside writers.

use nsw::store::outbox::{self as store, NewOutbound, Outcome};
use uuid::Uuid;

use crate::helpers::fresh_database;

type Counts = Vec<(String, String, String, i64)>;

/// (partner, document type, status, messages) as the outbox holds them.
async fn counted(c: &deadpool_postgres::Client) -> Counts {
    rows(
        c,
        "SELECT receiver::text, document_type, status, count(*) FROM outbox
          GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .await
}

/// The same, as the tally holds them.
async fn tallied(c: &deadpool_postgres::Client) -> Counts {
    rows(
        c,
        "SELECT receiver::text, document_type, status, sum(messages)::bigint FROM outbox_tally
          GROUP BY 1, 2, 3 HAVING sum(messages) <> 0 ORDER BY 1, 2, 3",
    )
    .await
}

async fn rows(c: &deadpool_postgres::Client, sql: &str) -> Counts {
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn enqueue(c: &deadpool_postgres::Client, receiver: &str, document_type: &str) -> Uuid {
    let message_id = Uuid::now_v7();
    store::insert(
        c,
        &NewOutbound {
            cause: &format!("operator:{message_id}"),
            message_id,
            conversation_id: message_id,
            receiver,
            document_type,
            function: "submit",
            reference: "REF-1",
            previous_reference: None,
            envelope: b"<Envelope/>",
            signature: Some(b"sig"),
            max_attempts: 2,
            ttl_secs: 3600.0,
        },
        "test",
    )
    .await
    .unwrap();
    message_id
}

#[tokio::test]
async fn the_tally_follows_the_outbox_through_every_transition_and_fold() {
    let db = fresh_database().await;
    let pool = nsw::db::pool(&db, 4).unwrap();
    let mut c = pool.get().await.unwrap();
    for i in 0..6 {
        enqueue(&c, if i % 3 == 0 { "TH" } else { "SG" }, "ACDD").await;
    }
    enqueue(&c, "SG", "FORM_D").await;
    assert_eq!(tallied(&c).await, counted(&c).await);
    assert_eq!(
        counted(&c).await,
        [
            ("SG".into(), "ACDD".into(), "pending".into(), 4),
            ("SG".into(), "FORM_D".into(), "pending".into(), 1),
            ("TH".into(), "ACDD".into(), "pending".into(), 2),
        ]
    );

    // Claimed, then settled every way a delivery ends.
    let worker = Uuid::now_v7();
    let claimed = store::claim(&c, worker, 60.0, 100).await.unwrap();
    assert_eq!(claimed.len(), 7);
    assert_eq!(tallied(&c).await, counted(&c).await);
    let outcomes: Vec<(Uuid, Outcome)> = claimed
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let o = match i % 4 {
                0 => Outcome::Receipt {
                    accepted: true,
                    receipt: b"receipt",
                    signature: b"sig",
                },
                1 => Outcome::Receipt {
                    accepted: false,
                    receipt: b"receipt",
                    signature: b"sig",
                },
                2 => Outcome::Failed {
                    error: "503",
                    retry_in_secs: Some(0.0),
                },
                _ => Outcome::Failed {
                    error: "gone",
                    retry_in_secs: None,
                },
            };
            (m.id, o)
        })
        .collect();
    let settled = store::settle(&mut c, worker, &outcomes).await.unwrap();
    assert_eq!(settled.len(), 7);
    assert_eq!(tallied(&c).await, counted(&c).await);

    // A lease that runs out, and a dead letter an operator requeues.
    let again = store::claim(&c, worker, 0.0, 100).await.unwrap();
    assert!(!again.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(store::reap(&mut c).await.unwrap(), again.len() as u64);
    assert_eq!(tallied(&c).await, counted(&c).await);
    let dead: Uuid = c
        .query_one(
            "SELECT message_id FROM outbox WHERE status = 'dead_letter' LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    store::requeue(&mut c, dead, 3600.0, "operator")
        .await
        .unwrap();
    assert_eq!(tallied(&c).await, counted(&c).await);

    // Folded: one row per key, the same figures, and the latest delivery kept.
    let before: i64 = c
        .query_one("SELECT count(*) FROM outbox_tally", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(store::fold_tally(&c, i32::MAX).await.unwrap(), 0, "not due");
    let written = store::fold_tally(&c, 1).await.unwrap();
    assert!(
        written > 0 && i64::from(written) < before,
        "{written} of {before}"
    );
    assert_eq!(tallied(&c).await, counted(&c).await);
    let (tally_last, outbox_last): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = {
        let r = c
            .query_one(
                "SELECT (SELECT max(last_delivered_at) FROM outbox_tally),
                        (SELECT max(delivered_at) FROM outbox)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(outbox_last.is_some());
    assert_eq!(tally_last, outbox_last);
}

#[tokio::test]
async fn folds_running_beside_writers_neither_lose_nor_double_a_message() {
    let db = fresh_database().await;
    let pool = nsw::db::pool(&db, 8).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let c = pool.get().await.unwrap();
                for i in 0..50 {
                    let receiver = if (w + i) % 2 == 0 { "SG" } else { "TH" };
                    enqueue(&c, receiver, "ACDD").await;
                }
            })
        })
        .collect();
    let folders: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let c = pool.get().await.unwrap();
                for _ in 0..40 {
                    store::fold_tally(&c, 1).await.unwrap();
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(folders) {
        t.await.unwrap();
    }
    let c = pool.get().await.unwrap();
    assert_eq!(tallied(&c).await, counted(&c).await);
    assert_eq!(
        tallied(&c).await.iter().map(|r| r.3).sum::<i64>(),
        200,
        "every message counted once"
    );
}
