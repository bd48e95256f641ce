//! Customs decisions on declarations: clear, reject or hold for inspection, and the
//! submitter's withdrawal. The database's state machine refuses any other move; the licence
//! ledger is settled in the same transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use serde::Serialize;
use uuid::Uuid;

use super::{audit, ledger, StoreError};

pub use crate::domain::declaration_state::{Action, Status};

/// How the licence reservations of the declaration are settled, if at all.
fn settlement(action: Action) -> Option<&'static str> {
    match action {
        Action::Clear => Some("commit"),
        Action::Reject | Action::Withdraw => Some("release"),
        Action::Hold => None,
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeclarationDecided)]
pub struct Decided {
    pub id: Uuid,
    pub reference: String,
    pub status: String,
    pub direction: String,
    pub export_country: String,
    pub destination_country: String,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// Applies a decision inside the caller's transaction. `party` limits it to declarations that
/// party submitted or trades under (withdrawal); customs passes `None`. Work that must commit
/// with a clearance (an outbox message to a partner window) joins the same transaction.
pub async fn decide(
    tx: &Transaction<'_>,
    id: Uuid,
    party: Option<&str>,
    actor: &str,
    action: Action,
    reason: Option<&str>,
) -> Result<Decided, StoreError> {
    let to = action.target();
    // The row is locked and its status judged by the code's state machine first; the
    // database's trigger judges the UPDATE again. A decision that already took effect (the
    // same action twice, or a retry after a lost answer) stops here and changes nothing.
    let current: String = tx
        .query_opt(
            "SELECT status FROM declarations x
              WHERE x.id = $1 AND ($2::text IS NULL OR x.submitter = $2 OR x.trader_id = $2
                                   OR x.declarant_id = $2)
              FOR UPDATE",
            &[&id, &party],
        )
        .await?
        .ok_or(StoreError::NotFound)?
        .get(0);
    let from = Status::parse(&current)
        .ok_or_else(|| StoreError::Transition(format!("unknown status {current}")))?;
    if !from.can_become(to) {
        return Err(StoreError::Transition(format!(
            "declaration: transition {} -> {} is not allowed",
            from.as_str(),
            to.as_str()
        )));
    }
    let to = to.as_str();
    let final_ = matches!(action, Action::Clear | Action::Reject | Action::Withdraw);
    let row = tx
        .query_one(
            "UPDATE declarations x SET status = $2, updated_at = now(),
                    decided_at = CASE WHEN $3 THEN now() ELSE x.decided_at END,
                    decision_reason = coalesce($4, x.decision_reason)
              WHERE x.id = $1
              RETURNING x.id, x.reference, x.status, x.direction, x.export_country,
                        x.destination_country, x.decided_at, x.decision_reason",
            &[&id, &to, &final_, &reason],
        )
        .await?;
    let d = Decided {
        id: row.get(0),
        reference: row.get(1),
        status: row.get(2),
        direction: row.get(3),
        export_country: row.get(4),
        destination_country: row.get(5),
        decided_at: row.get(6),
        reason: row.get(7),
    };
    tx.execute(
        "INSERT INTO dossier_events (dossier_id, status, at, actor, note) VALUES ($1, $2, now(), $3, $4)",
        &[&id, &to, &actor, &reason],
    )
    .await?;
    let settled = match settlement(action) {
        Some(kind) => ledger::settle(tx, id, kind).await?,
        None => 0,
    };
    audit::append(
        tx,
        actor,
        &format!("declaration.{to}"),
        &d.reference,
        &serde_json::json!({"id": id, "reason": reason, "ledger_entries": settled}),
    )
    .await?;
    Ok(d)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CustomsInboxEntry)]
pub struct InboxEntry {
    pub id: Uuid,
    pub reference: String,
    pub status: String,
    pub direction: String,
    pub trader_id: String,
    pub declarant_id: String,
    pub export_country: String,
    pub destination_country: String,
    pub item_count: i32,
    pub received_at: DateTime<Utc>,
    /// Agencies whose documents the items were checked against.
    pub agencies: Vec<String>,
}

/// Declarations awaiting customs (accepted or under inspection), oldest first; or those in
/// `status`.
pub async fn inbox<C: GenericClient>(
    client: &C,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<InboxEntry>, StoreError> {
    let statuses = match status {
        Some(s) => vec![s],
        None => vec!["accepted", "under_inspection"],
    };
    // Each status walks `declarations_status` from its oldest entry, so the page costs its
    // rows: a walk of the whole table in id order would first pass every declaration decided
    // long ago, which in a window's history is nearly all of them.
    Ok(client
        .query(
            "SELECT x.id, x.reference, x.status, x.direction, x.trader_id, x.declarant_id,
                    x.export_country, x.destination_country, x.item_count, x.received_at,
                    coalesce((SELECT array_agg(DISTINCT r.agency ORDER BY r.agency)
                                FROM declaration_routing r WHERE r.declaration_id = x.id),
                             '{}')
               FROM declarations x
              WHERE x.id IN (SELECT y.id FROM unnest($1::text[]) s(status)
                               CROSS JOIN LATERAL (SELECT d.id FROM declarations d
                                                    WHERE d.status = s.status
                                                    ORDER BY d.id LIMIT $2) y)
              ORDER BY x.id LIMIT $2",
            &[&statuses, &limit],
        )
        .await?
        .iter()
        .map(|r| InboxEntry {
            id: r.get(0),
            reference: r.get(1),
            status: r.get(2),
            direction: r.get(3),
            trader_id: r.get(4),
            declarant_id: r.get(5),
            export_country: r.get(6),
            destination_country: r.get(7),
            item_count: r.get(8),
            received_at: r.get(9),
            agencies: r.get(10),
        })
        .collect())
}
