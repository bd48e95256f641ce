//! The events feed: dossier status events in feed order (see migrations/0004_events.sql and
//! docs/events.md for why the order is the feed position and not the event id).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::domain::party::{Principal, Role};

/// One status change of a dossier, as clients and webhook receivers see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    pub dossier_id: Uuid,
    pub kind: Option<String>,
    pub reference: Option<String>,
    pub status: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub note: Option<String>,
    /// Feed position: the order of the feed, internal to the cursor.
    #[serde(skip)]
    pub pos: i64,
}

/// Whose events a caller sees.
pub enum Scope {
    All,
    /// An enterprise: dossiers it is a party to (`dossier_parties`).
    Party(String),
    /// A ministry: dossiers routed to its agency (`dossier_agencies`).
    Agency(String),
    Nothing,
}

impl Scope {
    pub fn of(p: &Principal) -> Scope {
        match (p.role, &p.agency) {
            (Role::Customs | Role::Admin, _) => Scope::All,
            (Role::Enterprise, _) => Scope::Party(p.party_id.clone()),
            (Role::Ministry, Some(agency)) => Scope::Agency(agency.clone()),
            (Role::Ministry, None) | (Role::Partner, _) => Scope::Nothing,
        }
    }

    /// (mode, key) for the predicate in `VISIBLE`.
    fn params(&self) -> Option<(&'static str, &str)> {
        match self {
            Scope::All => Some(("all", "")),
            Scope::Party(id) => Some(("party", id.as_str())),
            Scope::Agency(a) => Some(("agency", a.as_str())),
            Scope::Nothing => None,
        }
    }
}

pub(crate) const EVENT_COLUMNS: &str = "f.pos, e.id, e.dossier_id, k.kind, k.reference, e.status,
    e.at, e.actor, e.note";

/// Joins that give `EVENT_COLUMNS` their kind and reference, from the feed row `f`.
pub(crate) const EVENT_JOINS: &str = "JOIN dossier_events e ON e.id = f.event_id
    LEFT JOIN LATERAL (SELECT p.kind, p.reference FROM dossier_parties p
                        WHERE p.dossier_id = f.dossier_id LIMIT 1) k ON true";

/// Visibility of feed row `f`; `$M` is the mode, `$K` the party or agency.
///
/// Each test probes the row's own dossier (by primary key, in each branch of the views) rather
/// than listing the party's or agency's dossiers: a list is as long as the party's history and
/// was rebuilt for every read (or, correlated, for every row), so a read cost more the longer a
/// party had traded.
const VISIBLE: &str = "($M = 'all'
    OR ($M = 'party' AND EXISTS (SELECT 1 FROM dossier_parties p
                                  WHERE p.dossier_id = f.dossier_id AND p.party_id = $K))
    OR ($M = 'agency' AND EXISTS (SELECT 1 FROM dossier_agencies a
                                   WHERE a.dossier_id = f.dossier_id AND a.agency = $K)))";

/// Whether feed row `f` belongs to a dossier that party `party` (an SQL expression) is a party
/// to; one primary-key probe per branch of `dossier_parties`, whatever the party's history.
pub(crate) fn party_sees(party: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM dossier_parties p
                  WHERE p.dossier_id = f.dossier_id AND p.party_id = {party})"
    )
}

fn visible(mode: usize, key: usize) -> String {
    VISIBLE
        .replace("$M", &format!("${mode}::text"))
        .replace("$K", &format!("${key}::text"))
}

pub(crate) fn event(r: &tokio_postgres::Row) -> Event {
    Event {
        pos: r.get(0),
        id: r.get(1),
        dossier_id: r.get(2),
        kind: r.get(3),
        reference: r.get(4),
        status: r.get(5),
        at: r.get(6),
        actor: r.get(7),
        note: r.get(8),
    }
}

/// Gives committed events their feed positions. With `wait`, queues behind a sealer already at
/// work, so that every event committed before the call is in the feed when it returns.
pub async fn seal<C: GenericClient>(client: &C, wait: bool) -> Result<i32, StoreError> {
    let stmt = client
        .prepare_cached("SELECT event_feed_seal(10000, $1)")
        .await?;
    Ok(client.query_one(&stmt, &[&wait]).await?.get(0))
}

/// Feed position of event `id`, if the caller may see it.
pub async fn position_of<C: GenericClient>(
    client: &C,
    scope: &Scope,
    id: i64,
) -> Result<Option<i64>, StoreError> {
    let Some((mode, key)) = scope.params() else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT f.pos FROM event_feed f WHERE f.event_id = $1 AND {}",
        visible(2, 3)
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query_opt(&stmt, &[&id, &mode, &key])
        .await?
        .map(|r| r.get(0)))
}

/// The caller's events after feed position `after`, in feed order.
pub async fn after<C: GenericClient>(
    client: &C,
    scope: &Scope,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let Some((mode, key)) = scope.params() else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM event_feed f {EVENT_JOINS}
          WHERE f.pos > $1 AND {} ORDER BY f.pos LIMIT $4",
        visible(2, 3)
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query(&stmt, &[&after, &mode, &key, &limit])
        .await?
        .iter()
        .map(event)
        .collect())
}
