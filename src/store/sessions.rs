//! People's portal sessions (server-side rows behind an opaque cookie) and failed log-ins.
//!
//! The cookie holds 32 random bytes from the OS (base64url); only their SHA-256 is stored, so a
//! copy of the table opens no session. Each session has its own CSRF token, which every form
//! carries back.

use base64::Engine;
use deadpool_postgres::GenericClient;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{audit, StoreError};
use crate::domain::party::{Principal, Role};

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a session cookie's value: the row's key.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A session as its cookie finds it.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// The party's name, for the page header.
    pub name: String,
    /// The token every form of this session must carry back.
    pub csrf: String,
    pub id_hash: Vec<u8>,
}

/// A new session: `secret` goes into the cookie, never anywhere else.
pub struct Opened {
    pub secret: String,
    pub session: Session,
}

/// Opens a session for `principal` after a successful log-in (always a new id: a session id
/// known before the log-in never becomes a logged-in one), with an audit entry.
pub async fn open(
    client: &mut deadpool_postgres::Object,
    principal: &Principal,
    address: &str,
) -> Result<Opened, StoreError> {
    let secret = random_token();
    let csrf = random_token();
    let id_hash = digest(&secret);
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "INSERT INTO portal_sessions (id_hash, party_id, csrf, address)
             VALUES ($1, $2, $3, $4)
             RETURNING (SELECT name FROM parties WHERE id = $2)",
            &[&id_hash, &principal.party_id, &csrf, &address],
        )
        .await?;
    audit::append(
        &tx,
        &principal.party_id,
        "portal.login",
        &principal.party_id,
        &serde_json::json!({ "address": address }),
    )
    .await?;
    tx.commit().await?;
    Ok(Opened {
        secret,
        session: Session {
            principal: principal.clone(),
            name: row.get(0),
            csrf,
            id_hash,
        },
    })
}

/// The live session a cookie names, its idle time refreshed; `None` when there is none, it
/// ended, or it has been idle longer than `idle_minutes` (then it is ended, reason `idle`).
pub async fn find<C: GenericClient>(
    client: &C,
    secret: &str,
    idle_minutes: u32,
) -> Result<Option<Session>, StoreError> {
    let id_hash = digest(secret);
    let idle = f64::from(idle_minutes) * 60.0;
    let stmt = client
        .prepare_cached(
            "UPDATE portal_sessions s
                SET last_seen = CASE WHEN s.last_seen > now() - make_interval(secs => $2)
                                     THEN now() ELSE s.last_seen END,
                    ended_at  = CASE WHEN s.last_seen > now() - make_interval(secs => $2)
                                     THEN NULL ELSE now() END,
                    end_reason = CASE WHEN s.last_seen > now() - make_interval(secs => $2)
                                     THEN NULL ELSE 'idle' END
               FROM parties p
              WHERE s.id_hash = $1 AND s.ended_at IS NULL AND p.id = s.party_id
              RETURNING s.ended_at IS NULL, p.id, p.role, p.agency, p.name, s.csrf",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id_hash, &idle]).await? else {
        return Ok(None);
    };
    let live: bool = row.get(0);
    if !live {
        return Ok(None);
    }
    let Some(role) = Role::parse(row.get(2)) else {
        return Ok(None);
    };
    Ok(Some(Session {
        principal: Principal {
            party_id: row.get(1),
            role,
            agency: row.get(3),
        },
        name: row.get(4),
        csrf: row.get(5),
        id_hash,
    }))
}

/// Ends a session at log-out, with an audit entry. Ending one already ended changes nothing.
pub async fn close(
    client: &mut deadpool_postgres::Object,
    session: &Session,
    address: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let ended = tx
        .execute(
            "UPDATE portal_sessions SET ended_at = now(), end_reason = 'logout'
              WHERE id_hash = $1 AND ended_at IS NULL",
            &[&session.id_hash],
        )
        .await?;
    if ended > 0 {
        audit::append(
            &tx,
            &session.principal.party_id,
            "portal.logout",
            &session.principal.party_id,
            &serde_json::json!({ "address": address }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Failed log-ins within the last `window_minutes`: (for this party id, from this address).
pub async fn recent_failures<C: GenericClient>(
    client: &C,
    party_id: &str,
    address: &str,
    window_minutes: u32,
) -> Result<(i64, i64), StoreError> {
    let window = f64::from(window_minutes) * 60.0;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE party_id = $1),
                    count(*) FILTER (WHERE address = $2)
               FROM portal_login_failures
              WHERE (party_id = $1 OR address = $2) AND at > now() - make_interval(secs => $3)",
            &[&party_id, &address, &window],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Records a failed log-in (unknown party, no password set, wrong password, or refused while
/// throttled), with an audit entry; the password itself is never recorded.
pub async fn record_failure(
    client: &mut deadpool_postgres::Object,
    party_id: &str,
    address: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO portal_login_failures (party_id, address) VALUES ($1, $2)",
        &[&party_id, &address],
    )
    .await?;
    audit::append(
        &tx,
        "portal",
        "portal.login_failed",
        party_id,
        &serde_json::json!({ "address": address, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A party's contact record, as documents written for it carry it.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub street: Option<String>,
    pub city: Option<String>,
    pub post_code: Option<String>,
    pub country: Option<String>,
}

pub async fn profile<C: GenericClient>(
    client: &C,
    party_id: &str,
) -> Result<Option<Profile>, StoreError> {
    let row = client
        .query_opt(
            "SELECT id, name, street, city, post_code, country FROM parties WHERE id = $1",
            &[&party_id],
        )
        .await?;
    Ok(row.map(|r| Profile {
        id: r.get(0),
        name: r.get(1),
        street: r.get(2),
        city: r.get(3),
        post_code: r.get(4),
        country: r.get(5),
    }))
}

/// Replaces a party's name and address, with an audit entry of what changed to.
pub async fn update_profile(
    client: &mut deadpool_postgres::Object,
    p: &Profile,
    actor: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let changed = tx
        .execute(
            "UPDATE parties SET name = $2, street = $3, city = $4, post_code = $5, country = $6
              WHERE id = $1",
            &[&p.id, &p.name, &p.street, &p.city, &p.post_code, &p.country],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(
        &tx,
        actor,
        "party.profile_updated",
        &p.id,
        &serde_json::json!({
            "name": p.name, "street": p.street, "city": p.city,
            "post_code": p.post_code, "country": p.country,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
