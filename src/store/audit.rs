//! The append-only, hash-chained audit trail (see migrations/0001_intake.sql for the design).

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use super::StoreError;

/// Appends an entry inside the caller's transaction.
pub async fn append<C: GenericClient>(
    client: &C,
    actor: &str,
    action: &str,
    subject: &str,
    details: &serde_json::Value,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, $2, $3, $4)",
        )
        .await?;
    client
        .execute(&stmt, &[&actor, &action, &subject, details])
        .await?;
    Ok(())
}

/// Links committed entries into the chain; returns how many were sealed.
pub async fn seal<C: GenericClient>(client: &C, batch: i32) -> Result<i32, StoreError> {
    let row = client.query_one("SELECT audit_seal($1)", &[&batch]).await?;
    Ok(row.get(0))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every sealed link recomputes; `unsealed` entries wait for the sealer. `head` is the last
    /// link (position and hash), for the operator to keep outside the database: a later run
    /// given that anchor proves the history up to it was neither rewritten nor cut short.
    Intact {
        sealed: i64,
        unsealed: i64,
        head: Option<(i64, Vec<u8>)>,
    },
    /// The first link whose stored hash, or link to its predecessor, does not recompute.
    Broken {
        chain_pos: i64,
        id: i64,
        reason: String,
    },
}

/// Recomputes every link's SHA-256 here, in Rust, from the canonical bytes of each entry,
/// streaming the chain so its length does not matter. With `anchor` (a position and the hash
/// an earlier run printed for it), the chain must still reach that position with that hash.
pub async fn verify<C: GenericClient>(
    client: &C,
    anchor: Option<(i64, &[u8])>,
) -> Result<Verification, StoreError> {
    use futures_util::TryStreamExt;
    let rows = client
        .query_raw(
            "SELECT a.chain_pos, a.id, a.prev_hash, a.hash, audit_canonical(a)
               FROM audit_log a WHERE a.chain_pos IS NOT NULL ORDER BY a.chain_pos",
            std::iter::empty::<i64>(),
        )
        .await?;
    futures_util::pin_mut!(rows);
    let mut prev = vec![0u8; 32];
    let mut sealed = 0i64;
    let mut last_id = 0i64;
    while let Some(row) = rows.try_next().await? {
        let expected_pos = sealed + 1;
        let pos: i64 = row.get(0);
        let id: i64 = row.get(1);
        let stored_prev: Vec<u8> = row.get(2);
        let stored: Vec<u8> = row.get(3);
        let canonical: Vec<u8> = row.get(4);
        let broken = |reason: String| Verification::Broken {
            chain_pos: pos,
            id,
            reason,
        };
        if pos != expected_pos {
            return Ok(broken(format!("chain position {expected_pos} is missing")));
        }
        if stored_prev != prev {
            return Ok(broken("does not link to the previous entry's hash".into()));
        }
        let mut h = Sha256::new();
        h.update(&prev);
        h.update(&canonical);
        let computed = h.finalize().to_vec();
        if computed != stored {
            return Ok(broken(format!(
                "content does not match its hash (stored {}, computed {})",
                hex::encode(&stored),
                hex::encode(&computed)
            )));
        }
        if let Some((at, want)) = anchor {
            if pos == at && computed != want {
                return Ok(broken(format!(
                    "the chain was rewritten: position {at} now hashes to {}, not the anchor {}",
                    hex::encode(&computed),
                    hex::encode(want)
                )));
            }
        }
        prev = computed;
        sealed = pos;
        last_id = id;
    }
    if let Some((at, _)) = anchor {
        if sealed < at {
            return Ok(Verification::Broken {
                chain_pos: sealed + 1,
                id: last_id,
                reason: format!(
                    "the chain ends at position {sealed}, before the anchor at position {at}: \
                     entries were removed"
                ),
            });
        }
    }
    let unsealed: i64 = client
        .query_one("SELECT count(*) FROM audit_log WHERE hash IS NULL", &[])
        .await?
        .get(0);
    Ok(Verification::Intact {
        sealed,
        unsealed,
        head: (sealed > 0).then_some((sealed, prev)),
    })
}
