//! Plain SQL migrations from `migrations/`, applied in order, each in its own transaction,
//! recorded in `schema_migrations`, under an advisory lock so concurrent starts are safe.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::DbError;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "intake",
        sql: include_str!("../../migrations/0001_intake.sql"),
    },
    Migration {
        version: 2,
        name: "ministries",
        sql: include_str!("../../migrations/0002_ministries.sql"),
    },
    Migration {
        version: 3,
        name: "exchange",
        sql: include_str!("../../migrations/0003_exchange.sql"),
    },
    Migration {
        version: 4,
        name: "events",
        sql: include_str!("../../migrations/0004_events.sql"),
    },
    Migration {
        version: 5,
        name: "certificates_of_origin",
        sql: include_str!("../../migrations/0005_certificates_of_origin.sql"),
    },
    Migration {
        version: 6,
        name: "lz4_bodies",
        sql: include_str!("../../migrations/0006_lz4_bodies.sql"),
    },
    Migration {
        version: 7,
        name: "ledger_guards",
        sql: include_str!("../../migrations/0007_ledger_guards.sql"),
    },
    Migration {
        version: 8,
        name: "application_fee",
        sql: include_str!("../../migrations/0008_application_fee.sql"),
    },
    Migration {
        version: 9,
        name: "answers_index",
        sql: include_str!("../../migrations/0009_answers_index.sql"),
    },
    Migration {
        version: 10,
        name: "declaration_reference",
        sql: include_str!("../../migrations/0010_declaration_reference.sql"),
    },
    Migration {
        version: 11,
        name: "decisions_once",
        sql: include_str!("../../migrations/0011_decisions_once.sql"),
    },
    Migration {
        version: 12,
        name: "passwords",
        sql: include_str!("../../migrations/0012_passwords.sql"),
    },
    Migration {
        version: 13,
        name: "outbox_transition_code",
        sql: include_str!("../../migrations/0013_outbox_transition_code.sql"),
    },
    Migration {
        version: 14,
        name: "portal",
        sql: include_str!("../../migrations/0014_portal.sql"),
    },
    Migration {
        version: 15,
        name: "party_deactivation",
        sql: include_str!("../../migrations/0015_party_deactivation.sql"),
    },
    Migration {
        version: 16,
        name: "payments",
        sql: include_str!("../../migrations/0016_payments.sql"),
    },
    Migration {
        version: 17,
        name: "reconciliation",
        sql: include_str!("../../migrations/0017_reconciliation.sql"),
    },
    Migration {
        version: 18,
        name: "audit_seal_set",
        sql: include_str!("../../migrations/0018_audit_seal_set.sql"),
    },
    Migration {
        version: 19,
        name: "reads_without_history",
        sql: include_str!("../../migrations/0019_reads_without_history.sql"),
    },
    Migration {
        version: 20,
        name: "application_lines_once",
        sql: include_str!("../../migrations/0020_application_lines_once.sql"),
    },
    Migration {
        version: 21,
        name: "guards_on_violation",
        sql: include_str!("../../migrations/0021_guards_on_violation.sql"),
    },
    Migration {
        version: 22,
        name: "lz4_signatures",
        sql: include_str!("../../migrations/0022_lz4_signatures.sql"),
    },
    Migration {
        version: 23,
        name: "event_pending_dossier",
        sql: include_str!("../../migrations/0023_event_pending_dossier.sql"),
    },
    Migration {
        version: 24,
        name: "webhook_scan",
        sql: include_str!("../../migrations/0024_webhook_scan.sql"),
    },
    Migration {
        version: 25,
        name: "lists_without_history",
        sql: include_str!("../../migrations/0025_lists_without_history.sql"),
    },
];

const LOCK_KEY: i64 = 4_242_000;

/// Applies pending migrations; returns how many were applied.
pub async fn run(client: &mut Client) -> Result<usize, DbError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    result
}

async fn apply(client: &mut Client) -> Result<usize, DbError> {
    let applied: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut count = 0;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let checksum = hex::encode(Sha256::digest(m.sql.as_bytes()));
        let wrap = |source| DbError::Migration {
            version: m.version,
            name: m.name,
            source,
        };
        let tx = client.transaction().await.map_err(wrap)?;
        tx.batch_execute(m.sql).await.map_err(wrap)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum],
        )
        .await
        .map_err(wrap)?;
        tx.commit().await.map_err(wrap)?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        count += 1;
    }
    Ok(count)
}
