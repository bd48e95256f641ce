//! Customs decisions on declarations, as workflows: a customs officer clears, rejects or holds a
//! declaration (a clearance of an export to a connected partner sends its ACDD), and the
//! submitter withdraws one. Each runs in one transaction: status, event, audit entry, ledger
//! settlement and outbox row commit together or not at all. The state machine is
//! `domain::declaration_state`; a decision that already took effect is refused with
//! `StoreError::Transition` and changes nothing, and the ACDD is keyed by its cause
//! (`acdd:<declaration id>`), so the partner never gets a second one.

use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

use crate::config::Settings;
use crate::exchange::{acdd, Exchange};
use crate::store::customs::{self as store, Decided};
use crate::workflow::WorkflowError;

pub use crate::domain::declaration_state::{Action, Status};

/// A decision as taken: the declaration after it, and the ACDD it sent, if any.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeclarationDecision)]
pub struct Decision {
    #[serde(flatten)]
    pub declaration: Decided,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acdd: Option<acdd::Queued>,
}

/// The officer's reason: trimmed, required for a rejection, at most 2000 characters.
fn reason_for(action: Action, reason: Option<&str>) -> Result<Option<&str>, WorkflowError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if action == Action::Reject && reason.is_none() {
        return Err(WorkflowError::bad_request(
            "REASON_REQUIRED",
            "'reject' needs a reason",
        ));
    }
    if reason.is_some_and(|r| r.chars().count() > 2000) {
        return Err(WorkflowError::bad_request(
            "REASON_TOO_LONG",
            "reason: at most 2000 characters",
        ));
    }
    Ok(reason)
}

/// A customs officer's decision. Clearing an export to a connected partner's country writes its
/// ACDD to the outbox in the same transaction, so the clearance and the message stand or fall
/// together.
pub async fn decide(
    pool: &Pool,
    exchange: Option<&Exchange>,
    settings: &Settings,
    id: Uuid,
    actor: &str,
    action: Action,
    reason: Option<&str>,
) -> Result<Decision, WorkflowError> {
    if action == Action::Withdraw {
        return Err(WorkflowError::bad_request(
            "ACTION_INVALID",
            "a declaration is withdrawn by its submitter, not by customs",
        ));
    }
    let reason = reason_for(action, reason)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let declaration = store::decide(&tx, id, None, actor, action, reason).await?;
    let acdd = match exchange {
        Some(ex)
            if action == Action::Clear
                && declaration.direction == "EX"
                && ex.takes_acdd_for(
                    &declaration.destination_country,
                    &declaration.export_country,
                ) =>
        {
            acdd::enqueue_for_declaration(&tx, ex, settings, id, actor).await?
        }
        _ => None,
    };
    tx.commit().await?;
    Ok(Decision { declaration, acdd })
}

/// The submitter (declarant or trader) withdraws a declaration customs has not decided yet.
pub async fn withdraw(pool: &Pool, id: Uuid, party: &str) -> Result<Decided, WorkflowError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let decided = store::decide(
        &tx,
        id,
        Some(party),
        party,
        Action::Withdraw,
        Some("withdrawn by the declarant"),
    )
    .await?;
    tx.commit().await?;
    Ok(decided)
}
