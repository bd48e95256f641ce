//! The exchange's tallies (migration 0019), which the metrics and the console's partners page
//! read instead of counting every message, against the tables themselves: through every
//! transition of the outbox's state machine, for received messages (stored alone, in groups,
//! and again), and while folds run beside writers that enqueue, claim and settle.

use nsw::store::inbound::{self, NewInbound};
use nsw::store::outbox::{self as store, NewOutbound, Outcome};
use nsw::store::tallies;
use sha2::Digest;
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
    assert_eq!(
        tallies::fold(&c, i32::MAX).await.unwrap(),
        (0, 0),
        "not due"
    );
    let (written, _) = tallies::fold(&c, 1).await.unwrap();
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

/// Enqueues `n` messages, then claims what it can and settles it: delivered, or back to wait.
async fn sender(pool: deadpool_postgres::Pool, w: usize, n: usize) {
    let mut c = pool.get().await.unwrap();
    for i in 0..n {
        let receiver = if (w + i).is_multiple_of(2) {
            "SG"
        } else {
            "TH"
        };
        enqueue(&c, receiver, "ACDD").await;
        if i % 10 == 9 {
            let worker = Uuid::now_v7();
            let claimed = store::claim(&c, worker, 60.0, 5).await.unwrap();
            let outcomes: Vec<(Uuid, Outcome)> = claimed
                .iter()
                .enumerate()
                .map(|(k, m)| {
                    let o = if k.is_multiple_of(2) {
                        Outcome::Receipt {
                            accepted: true,
                            receipt: b"receipt",
                            signature: b"sig",
                        }
                    } else {
                        Outcome::Failed {
                            error: "503",
                            retry_in_secs: Some(0.0),
                        }
                    };
                    (m.id, o)
                })
                .collect();
            store::settle(&mut c, worker, &outcomes).await.unwrap();
        }
    }
}

#[tokio::test]
async fn folds_running_beside_writers_neither_lose_nor_double_a_message() {
    let db = fresh_database().await;
    let pool = nsw::db::pool(&db, 8).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(sender(pool.clone(), w, 50)))
        .collect();
    let folders: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let c = pool.get().await.unwrap();
                for _ in 0..40 {
                    tallies::fold(&c, 1).await.unwrap();
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
    assert!(
        counted(&c).await.iter().any(|r| r.2 == "delivered"),
        "some were settled while folds ran"
    );
}

type Received = Vec<(String, String, i64)>;

async fn received(c: &deadpool_postgres::Client, sql: &str) -> Received {
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn the_received_tally_counts_each_stored_message_once() {
    let db = fresh_database().await;
    let pool = nsw::db::pool(&db, 2).unwrap();
    let mut c = pool.get().await.unwrap();
    let envelope = b"<Envelope/>".as_slice();
    let sha = sha2::Sha256::digest(envelope).to_vec();
    let message = |sender: &'static str, document_type: &'static str| NewInbound {
        sender,
        message_id: Uuid::now_v7(),
        conversation_id: Uuid::now_v7(),
        document_type,
        function: "submit",
        reference: "REF-1",
        previous_reference: None,
        envelope,
        sha256: &sha,
        signature: b"sig",
        signer_subject: "CN=partner",
        receipt: b"receipt",
        receipt_signature: b"sig",
    };
    let alone = message("TH", "ACDD");
    inbound::insert(&mut c, &alone).await.unwrap();
    let group = [
        message("SG", "ACDD"),
        message("SG", "FORM_D"),
        message("TH", "ACDD"),
    ];
    inbound::insert_many(&mut c, &group).await.unwrap();
    // Delivered again, alone and in a group: stored once, counted once.
    inbound::insert(&mut c, &alone).await.unwrap();
    inbound::insert_many(&mut c, &group[..2]).await.unwrap();
    tallies::fold(&c, 1).await.unwrap();
    let expected = received(
        &c,
        "SELECT sender::text, document_type, count(*) FROM inbound_messages
          GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    assert_eq!(
        expected,
        [
            ("SG".into(), "ACDD".into(), 1),
            ("SG".into(), "FORM_D".into(), 1),
            ("TH".into(), "ACDD".into(), 2),
        ]
    );
    let tally = received(
        &c,
        "SELECT sender::text, document_type, sum(messages)::bigint FROM inbound_tally
          GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    assert_eq!(tally, expected);
    // Rows are never deleted, TRUNCATE included: the tally could not follow it.
    let refused = c
        .batch_execute("TRUNCATE inbound_messages, outbox")
        .await
        .unwrap_err();
    let message = refused.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("never deleted")),
        "{refused:?}"
    );
}
