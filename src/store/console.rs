//! The operator console's queries: parties and their tokens, deactivation, message search
//! over the outbox and the inbound messages, per-partner figures, and what the alerts need
//! (dead letters, failing partners, open applications, agency certificates).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{audit, parties, time_ids, StoreError};
use crate::domain::party::Role;

// ---------------------------------------------------------------------------------------
// Parties and tokens

/// A party as the console lists it.
#[derive(Debug, Clone)]
pub struct PartyRow {
    pub id: String,
    pub role: String,
    pub name: String,
    pub agency: Option<String>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub post_code: Option<String>,
    pub country: Option<String>,
    pub has_password: bool,
    pub created_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
}

const PARTY_COLUMNS: &str = "id, role, name, agency, street, city, post_code, country,
    password_hash IS NOT NULL, created_at, deactivated_at";

fn party_row(r: &tokio_postgres::Row) -> PartyRow {
    PartyRow {
        id: r.get(0),
        role: r.get(1),
        name: r.get(2),
        agency: r.get(3),
        street: r.get(4),
        city: r.get(5),
        post_code: r.get(6),
        country: r.get(7),
        has_password: r.get(8),
        created_at: r.get(9),
        deactivated_at: r.get(10),
    }
}

/// Parties whose id, name or agency contains `q` (case-insensitive), optionally of one role,
/// by id; `limit + 1` rows are read so the caller knows whether there is a next page.
pub async fn parties<C: GenericClient>(
    client: &C,
    q: Option<&str>,
    role: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Vec<PartyRow>, StoreError> {
    let pattern = q.map(|q| format!("%{}%", like_escape(q)));
    let rows = client
        .query(
            &format!(
                "SELECT {PARTY_COLUMNS} FROM parties
                  WHERE ($1::text IS NULL OR id ILIKE $1 OR name ILIKE $1 OR agency ILIKE $1)
                    AND ($2::text IS NULL OR role = $2)
                  ORDER BY id OFFSET $3 LIMIT $4"
            ),
            &[&pattern, &role, &offset, &(limit + 1)],
        )
        .await?;
    Ok(rows.iter().map(party_row).collect())
}

pub async fn party<C: GenericClient>(client: &C, id: &str) -> Result<Option<PartyRow>, StoreError> {
    Ok(client
        .query_opt(
            &format!("SELECT {PARTY_COLUMNS} FROM parties WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(party_row))
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// What the console's "add a party" form gives.
pub struct NewParty<'a> {
    pub id: &'a str,
    pub role: Role,
    pub name: &'a str,
    pub agency: Option<&'a str>,
    pub street: Option<&'a str>,
    pub city: Option<&'a str>,
    pub post_code: Option<&'a str>,
    pub country: Option<&'a str>,
}

/// Registers a party with its address and returns its first bearer token (shown once, only
/// its digest is stored); audited as `party.added` by `actor`. `Conflict` when the id exists.
pub async fn add_party(
    client: &mut deadpool_postgres::Object,
    p: &NewParty<'_>,
    actor: &str,
) -> Result<String, StoreError> {
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "INSERT INTO parties (id, role, name, agency, street, city, post_code, country)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
            &[
                &p.id,
                &p.role.as_str(),
                &p.name,
                &p.agency,
                &p.street,
                &p.city,
                &p.post_code,
                &p.country,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "party '{}' already exists",
            p.id
        )));
    }
    let token = parties::new_token();
    tx.execute(
        "INSERT INTO tokens (hash, party_id) VALUES ($1, $2)",
        &[&parties::token_digest(&token), &p.id],
    )
    .await?;
    audit::append(
        &tx,
        actor,
        "party.added",
        p.id,
        &serde_json::json!({"role": p.role.as_str(), "name": p.name, "agency": p.agency}),
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Issues another token for an active party (shown once); audited as `token.issued`.
pub async fn issue_token(
    client: &mut deadpool_postgres::Object,
    id: &str,
    actor: &str,
) -> Result<String, StoreError> {
    let tx = client.transaction().await?;
    let active: Option<bool> = tx
        .query_opt(
            "SELECT deactivated_at IS NULL FROM parties WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .map(|r| r.get(0));
    match active {
        None => return Err(StoreError::NotFound),
        Some(false) => return Err(StoreError::Conflict(format!("party '{id}' is deactivated"))),
        Some(true) => {}
    }
    let token = parties::new_token();
    let digest = parties::token_digest(&token);
    tx.execute(
        "INSERT INTO tokens (hash, party_id) VALUES ($1, $2)",
        &[&digest, &id],
    )
    .await?;
    audit::append(
        &tx,
        actor,
        "token.issued",
        id,
        &serde_json::json!({ "token": token_id(&digest) }),
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// How a token is named on the console: the first 12 hex digits of its digest (the secret
/// itself is never stored, so never shown again).
pub fn token_id(digest: &[u8]) -> String {
    hex::encode(&digest[..digest.len().min(6)])
}

/// A party's token, without its secret.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn tokens<C: GenericClient>(
    client: &C,
    party: &str,
) -> Result<Vec<TokenRow>, StoreError> {
    Ok(client
        .query(
            "SELECT hash, created_at, revoked_at FROM tokens WHERE party_id = $1
              ORDER BY created_at, hash",
            &[&party],
        )
        .await?
        .iter()
        .map(|r| TokenRow {
            id: token_id(&r.get::<_, Vec<u8>>(0)),
            created_at: r.get(1),
            revoked_at: r.get(2),
        })
        .collect())
}

/// Revokes the party's token whose id (digest prefix, `token_id`) is `id`; audited as
/// `token.revoked`. `NotFound` when it has no such live token.
pub async fn revoke_token(
    client: &mut deadpool_postgres::Object,
    party: &str,
    id: &str,
    actor: &str,
) -> Result<(), StoreError> {
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::NotFound);
    }
    let prefix = hex::decode(id.to_ascii_lowercase()).map_err(|_| StoreError::NotFound)?;
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            "UPDATE tokens SET revoked_at = now()
              WHERE party_id = $1 AND substring(hash FROM 1 FOR 6) = $2 AND revoked_at IS NULL",
            &[&party, &prefix],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(
        &tx,
        actor,
        "token.revoked",
        party,
        &serde_json::json!({ "token": id, "count": n }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deactivates a party: its tokens stop working (authentication refuses a deactivated
/// party), its portal sessions end now (reason `deactivated`), its dossiers stay. Audited as
/// `party.deactivated`; returns how many sessions ended. `Conflict` when already deactivated.
pub async fn deactivate(
    client: &mut deadpool_postgres::Object,
    id: &str,
    actor: &str,
) -> Result<u64, StoreError> {
    let tx = client.transaction().await?;
    let state: Option<bool> = tx
        .query_opt(
            "SELECT deactivated_at IS NULL FROM parties WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .map(|r| r.get(0));
    match state {
        None => return Err(StoreError::NotFound),
        Some(false) => {
            return Err(StoreError::Conflict(format!(
                "party '{id}' is already deactivated"
            )))
        }
        Some(true) => {}
    }
    tx.execute(
        "UPDATE parties SET deactivated_at = now() WHERE id = $1",
        &[&id],
    )
    .await?;
    let ended = tx
        .execute(
            "UPDATE portal_sessions SET ended_at = now(), end_reason = 'deactivated'
              WHERE party_id = $1 AND ended_at IS NULL",
            &[&id],
        )
        .await?;
    audit::append(
        &tx,
        actor,
        "party.deactivated",
        id,
        &serde_json::json!({ "sessions_ended": ended }),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

// ---------------------------------------------------------------------------------------
// Messages

/// What the message search filters on (all optional).
#[derive(Debug, Default, Clone)]
pub struct MessageFilter {
    pub status: Option<String>,
    pub partner: Option<String>,
    pub document_type: Option<String>,
    /// A part of the reference (or previous reference), case-insensitive.
    pub reference: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One message of the search, outgoing or incoming.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: Uuid,
    pub message_id: Uuid,
    pub partner: String,
    pub document_type: String,
    pub function: String,
    pub reference: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Outbox messages matching `f`, newest first; reads `limit + 1` for the pager.
pub async fn outbox_search<C: GenericClient>(
    client: &C,
    f: &MessageFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, StoreError> {
    let reference = f
        .reference
        .as_deref()
        .map(|r| format!("%{}%", like_escape(r)));
    let rows = client
        .query(
            "SELECT message_id, receiver, document_type, function, reference, status, attempts,
                    last_error, created_at
               FROM outbox
              WHERE ($1::text IS NULL OR status = $1)
                AND ($2::text IS NULL OR receiver = $2)
                AND ($3::text IS NULL OR document_type = $3)
                AND ($4::text IS NULL OR reference ILIKE $4 OR previous_reference ILIKE $4)
                AND ($5::timestamptz IS NULL OR (id >= $9 AND created_at >= $5))
                AND ($6::timestamptz IS NULL OR (($10::uuid IS NULL OR id < $10) AND created_at < $6))
              -- Ids are UUIDv7: newest first by the primary key, not a sort of every match,
              -- and the dates bound the key (`time_ids`).
              ORDER BY id DESC OFFSET $7 LIMIT $8",
            &[
                &f.status,
                &f.partner,
                &f.document_type,
                &reference,
                &f.from,
                &f.to,
                &offset,
                &(limit + 1),
                &f.from
                    .map(|t| time_ids::uuid7_floor(t - time_ids::CLOCK_MARGIN)),
                &f.to
                    .map(|t| time_ids::uuid7_floor(t + time_ids::CLOCK_MARGIN)),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MessageRow {
            id: r.get(0),
            message_id: r.get(0),
            partner: r.get::<_, String>(1),
            document_type: r.get(2),
            function: r.get(3),
            reference: r.get(4),
            status: r.get(5),
            attempts: r.get(6),
            last_error: r.get(7),
            at: r.get(8),
        })
        .collect())
}

/// Received messages matching `f`, newest first; reads `limit + 1` for the pager.
pub async fn inbound_search<C: GenericClient>(
    client: &C,
    f: &MessageFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, StoreError> {
    let reference = f
        .reference
        .as_deref()
        .map(|r| format!("%{}%", like_escape(r)));
    let rows = client
        .query(
            "SELECT id, message_id, sender, document_type, function, reference, status,
                    received_at
               FROM inbound_messages
              WHERE ($1::text IS NULL OR status = $1)
                AND ($2::text IS NULL OR sender = $2)
                AND ($3::text IS NULL OR document_type = $3)
                AND ($4::text IS NULL OR reference ILIKE $4 OR previous_reference ILIKE $4)
                AND ($5::timestamptz IS NULL OR (id >= $9 AND received_at >= $5))
                AND ($6::timestamptz IS NULL OR (($10::uuid IS NULL OR id < $10) AND received_at < $6))
              ORDER BY id DESC OFFSET $7 LIMIT $8",
            &[
                &f.status,
                &f.partner,
                &f.document_type,
                &reference,
                &f.from,
                &f.to,
                &offset,
                &(limit + 1),
                &f.from
                    .map(|t| time_ids::uuid7_floor(t - time_ids::CLOCK_MARGIN)),
                &f.to
                    .map(|t| time_ids::uuid7_floor(t + time_ids::CLOCK_MARGIN)),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MessageRow {
            id: r.get(0),
            message_id: r.get(1),
            partner: r.get::<_, String>(2),
            document_type: r.get(3),
            function: r.get(4),
            reference: r.get(5),
            status: r.get(6),
            attempts: 0,
            last_error: None,
            at: r.get(7),
        })
        .collect())
}

/// The statuses inbound messages take, for the search's choice.
pub async fn inbound_statuses<C: GenericClient>(client: &C) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query(
            "SELECT DISTINCT status FROM inbound_messages ORDER BY status",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// One entry of a message's history (its audit entries: attempts, errors, requeues).
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub attempts: Option<i64>,
    pub error: Option<String>,
}

/// The audit entries about one message (subject = its message id), oldest first.
pub async fn message_history<C: GenericClient>(
    client: &C,
    message_id: Uuid,
) -> Result<Vec<HistoryRow>, StoreError> {
    Ok(client
        .query(
            "SELECT at, actor, action, (details->>'attempts')::bigint, details->>'error'
               FROM audit_log WHERE subject = $1 ORDER BY id",
            &[&message_id.to_string()],
        )
        .await?
        .iter()
        .map(|r| HistoryRow {
            at: r.get(0),
            actor: r.get(1),
            action: r.get(2),
            attempts: r.get(3),
            error: r.get(4),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Partners

/// What was exchanged with one partner window.
#[derive(Debug, Clone, Default)]
pub struct PartnerTraffic {
    pub sent: i64,
    pub received: i64,
    pub sent_types: Vec<String>,
    pub received_types: Vec<String>,
    /// Messages not yet delivered (pending, sending, waiting for a retry).
    pub waiting: i64,
    pub dead_letters: i64,
    /// The last receipt obtained for one of our messages.
    pub last_delivery: Option<DateTime<Utc>>,
    /// The last failed attempt of a message still undelivered, and its error.
    pub last_failure: Option<(DateTime<Utc>, String)>,
    /// Since when the partner has been failing: the oldest undelivered message with an error
    /// created after the last delivery (or the last delivery itself, when later).
    pub failing_since: Option<DateTime<Utc>>,
}

/// The traffic of every partner seen in the outbox or the inbound messages, by country.
pub async fn partner_traffic<C: GenericClient>(
    client: &C,
) -> Result<std::collections::BTreeMap<String, PartnerTraffic>, StoreError> {
    let mut out: std::collections::BTreeMap<String, PartnerTraffic> = Default::default();
    let rows = client
        .query(
            // From the outbox's tally (migration 0019): a few rows, whatever the history.
            "SELECT receiver::text, sum(messages)::bigint,
                    coalesce(array_agg(DISTINCT document_type ORDER BY document_type)
                             FILTER (WHERE messages <> 0), '{}'),
                    coalesce(sum(messages) FILTER (WHERE status IN ('pending', 'sending',
                             'retry_wait')), 0)::bigint,
                    coalesce(sum(messages) FILTER (WHERE status = 'dead_letter'), 0)::bigint,
                    max(last_delivered_at)
               FROM (SELECT receiver, document_type, status, sum(messages) AS messages,
                            max(last_delivered_at) AS last_delivered_at
                       FROM outbox_tally GROUP BY 1, 2, 3) t
              GROUP BY receiver",
            &[],
        )
        .await?;
    for r in &rows {
        let t = out.entry(r.get(0)).or_default();
        t.sent = r.get(1);
        t.sent_types = r.get(2);
        t.waiting = r.get(3);
        t.dead_letters = r.get(4);
        t.last_delivery = r.get(5);
    }
    let failures = client
        .query(
            // The earliest failing message per partner over the same rows, computed once: a
            // subquery here ran again for every failing row, quadratic in dead letters.
            "SELECT DISTINCT ON (o.receiver) o.receiver::text, o.updated_at, o.last_error,
                    min(o.created_at) OVER (PARTITION BY o.receiver)
               FROM outbox o
              -- The unsettled statuses named, so that only they are read (outbox_status).
              WHERE o.last_error IS NOT NULL
                AND o.status IN ('pending', 'sending', 'retry_wait', 'dead_letter')
              ORDER BY o.receiver, o.updated_at DESC",
            &[],
        )
        .await?;
    for r in &failures {
        let t = out.entry(r.get(0)).or_default();
        let at: DateTime<Utc> = r.get(1);
        t.last_failure = Some((at, r.get(2)));
        let oldest: Option<DateTime<Utc>> = r.get(3);
        let failing = match t.last_delivery {
            Some(d) if d >= at => None,
            Some(d) => oldest.map(|o| o.max(d)),
            None => oldest,
        };
        t.failing_since = failing;
    }
    let rows = client
        .query(
            // From the received messages' tally (migration 0019), as above.
            "SELECT sender::text, sum(messages)::bigint,
                    coalesce(array_agg(DISTINCT document_type ORDER BY document_type), '{}')
               FROM inbound_tally GROUP BY sender",
            &[],
        )
        .await?;
    for r in &rows {
        let t = out.entry(r.get(0)).or_default();
        t.received = r.get(1);
        t.received_types = r.get(2);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Alerts

/// A dead letter, for the alert list.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub message_id: Uuid,
    pub receiver: String,
    pub document_type: String,
    pub reference: String,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Dead letters, newest first (at most `limit`), and how many there are in all.
pub async fn dead_letters<C: GenericClient>(
    client: &C,
    limit: i64,
) -> Result<(i64, Vec<DeadLetter>), StoreError> {
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM outbox WHERE status = 'dead_letter'",
            &[],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            "SELECT message_id, receiver::text, document_type, reference, last_error, updated_at
               FROM outbox WHERE status = 'dead_letter' ORDER BY updated_at DESC, id LIMIT $1",
            &[&limit],
        )
        .await?;
    Ok((
        total,
        rows.iter()
            .map(|r| DeadLetter {
                message_id: r.get(0),
                receiver: r.get(1),
                document_type: r.get(2),
                reference: r.get(3),
                last_error: r.get(4),
                at: r.get(5),
            })
            .collect(),
    ))
}

/// An application not yet decided, with what its time limit is computed from.
#[derive(Debug, Clone)]
pub struct OpenApplication {
    pub id: Uuid,
    pub reference: String,
    pub agency: String,
    pub status: String,
    pub sla_minutes: i32,
    pub received_at: DateTime<Utc>,
    pub events: Vec<(String, DateTime<Utc>)>,
}

/// Every application awaiting a decision (all agencies), oldest first, with its events.
pub async fn open_applications<C: GenericClient>(
    client: &C,
    limit: i64,
) -> Result<Vec<OpenApplication>, StoreError> {
    let pending: Vec<&str> = super::desk::PENDING.to_vec();
    let rows = client
        .query(
            "SELECT a.id, a.reference, a.agency, a.status, a.sla_minutes, a.received_at,
                    coalesce(array_agg(e.status ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}'),
                    coalesce(array_agg(e.at ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}')
               FROM licence_applications a
               LEFT JOIN dossier_events e ON e.dossier_id = a.id
              WHERE a.status = ANY($1) AND a.received_at IS NOT NULL
              GROUP BY a.id
              ORDER BY a.received_at, a.id
              LIMIT $2",
            &[&pending, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let statuses: Vec<String> = r.get(6);
            let ats: Vec<DateTime<Utc>> = r.get(7);
            OpenApplication {
                id: r.get(0),
                reference: r.get(1),
                agency: r.get(2),
                status: r.get(3),
                sla_minutes: r.get(4),
                received_at: r.get(5),
                events: statuses.into_iter().zip(ats).collect(),
            }
        })
        .collect())
}

/// The certificates the database holds for agencies: the window-made signing certificates
/// (`agency_keys`) and those an administrator registered (`agency_certificates`), as PEM.
pub async fn agency_certificates<C: GenericClient>(
    client: &C,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(client
        .query(
            "SELECT agency, certificate_pem FROM agency_keys
             UNION ALL
             SELECT agency, certificate_pem FROM agency_certificates
             ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
