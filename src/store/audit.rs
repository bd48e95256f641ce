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
    /// Every sealed link recomputes; `unsealed` entries wait for the sealer.
    Intact { sealed: i64, unsealed: i64 },
    /// The first link whose stored hash, or link to its predecessor, does not recompute.
    Broken {
        chain_pos: i64,
        id: i64,
        reason: String,
    },
}

/// Recomputes every link's SHA-256 here, in Rust, from the canonical bytes of each entry.
pub async fn verify<C: GenericClient>(client: &C) -> Result<Verification, StoreError> {
    let rows = client
        .query(
            "SELECT a.chain_pos, a.id, a.prev_hash, a.hash, audit_canonical(a)
               FROM audit_log a WHERE a.chain_pos IS NOT NULL ORDER BY a.chain_pos",
            &[],
        )
        .await?;
    let mut prev = vec![0u8; 32];
    for (expected_pos, row) in (1i64..).zip(rows.iter()) {
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
        prev = computed;
    }
    let unsealed: i64 = client
        .query_one("SELECT count(*) FROM audit_log WHERE hash IS NULL", &[])
        .await?
        .get(0);
    Ok(Verification::Intact {
        sealed: rows.len() as i64,
        unsealed,
    })
}
