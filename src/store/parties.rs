//! Parties and their bearer tokens (kept only as SHA-256 digests).

use base64::Engine;
use deadpool_postgres::GenericClient;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{audit, StoreError};
use crate::domain::party::{Principal, Role};

pub fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new bearer token: 32 random bytes from the OS, base64url, prefixed `nsw_`.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "nsw_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Registers a party and returns its first bearer token (shown once, never stored).
pub async fn add(
    client: &mut deadpool_postgres::Object,
    id: &str,
    role: Role,
    name: &str,
    agency: Option<&str>,
) -> Result<String, StoreError> {
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "INSERT INTO parties (id, role, name, agency) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING",
            &[&id, &role.as_str(), &name, &agency],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!("party '{id}' already exists")));
    }
    let token = new_token();
    tx.execute(
        "INSERT INTO tokens (hash, party_id) VALUES ($1, $2)",
        &[&token_digest(&token), &id],
    )
    .await?;
    audit::append(
        &tx,
        "cli",
        "party.added",
        id,
        &serde_json::json!({"role": role.as_str(), "name": name, "agency": agency}),
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Issues an additional token for an existing party.
pub async fn issue_token(
    client: &mut deadpool_postgres::Object,
    id: &str,
) -> Result<String, StoreError> {
    let tx = client.transaction().await?;
    let exists = tx
        .query_opt("SELECT 1 FROM parties WHERE id = $1", &[&id])
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let token = new_token();
    tx.execute(
        "INSERT INTO tokens (hash, party_id) VALUES ($1, $2)",
        &[&token_digest(&token), &id],
    )
    .await?;
    audit::append(&tx, "cli", "token.issued", id, &serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(token)
}

/// The party a bearer token names: `None` for an unknown or revoked token, a deactivated
/// party, or a token older than `max_age_secs` when tokens expire (`tokens.max_age_days`).
pub async fn authenticate<C: GenericClient>(
    client: &C,
    token: &str,
    max_age_secs: Option<f64>,
) -> Result<Option<Principal>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT p.id, p.role, p.agency FROM tokens t JOIN parties p ON p.id = t.party_id
              WHERE t.hash = $1 AND t.revoked_at IS NULL AND p.deactivated_at IS NULL
                AND ($2::float8 IS NULL OR t.created_at > now() - make_interval(secs => $2))",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&token_digest(token), &max_age_secs])
        .await?;
    Ok(row.and_then(|r| {
        Some(Principal {
            party_id: r.get(0),
            role: Role::parse(r.get(1))?,
            agency: r.get(2),
        })
    }))
}

#[derive(Debug, serde::Serialize)]
pub struct PartyRow {
    pub id: String,
    pub role: String,
    pub name: String,
    pub agency: Option<String>,
}

pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<PartyRow>, StoreError> {
    Ok(client
        .query(
            "SELECT id, role, name, agency FROM parties ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| PartyRow {
            id: r.get(0),
            role: r.get(1),
            name: r.get(2),
            agency: r.get(3),
        })
        .collect())
}

/// Sets (or replaces) a party's password, given as its argon2id PHC string
/// (`passwords::hash`); audited without the hash. `NotFound` for an unknown party.
pub async fn set_password(
    client: &mut deadpool_postgres::Object,
    id: &str,
    phc: &str,
    actor: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let changed = tx
        .execute(
            "UPDATE parties SET password_hash = $2, password_set_at = now() WHERE id = $1",
            &[&id, &phc],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(&tx, actor, "party.password_set", id, &serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// The party and its stored password hash, for a log-in (`None`: unknown party, or no password).
pub async fn password_of<C: GenericClient>(
    client: &C,
    id: &str,
) -> Result<Option<(Principal, String)>, StoreError> {
    let row = client
        .query_opt(
            "SELECT id, role, agency, password_hash FROM parties
              WHERE id = $1 AND password_hash IS NOT NULL AND deactivated_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(row.and_then(|r| {
        Some((
            Principal {
                party_id: r.get(0),
                role: Role::parse(r.get(1))?,
                agency: r.get(2),
            },
            r.get(3),
        ))
    }))
}
