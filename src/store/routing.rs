//! Routing tables, versioned: every replacement is a new row (never an update), audited in the
//! same transaction. Each process caches the current table and checks its version cheaply.

use std::sync::{Arc, RwLock};

use deadpool_postgres::GenericClient;

use super::{audit, StoreError};
use crate::routing::{RoutingTable, TableSpec};

/// Serialises replacements so versions are dense and a replacement never races another.
const LOCK_KEY: i64 = 4_242_010;

/// The current table as this process last saw it.
#[derive(Default)]
pub struct RoutingCache {
    current: RwLock<Option<Arc<RoutingTable>>>,
}

impl RoutingCache {
    /// The current table, reloaded when another request or instance replaced it.
    pub async fn current<C: GenericClient>(
        &self,
        client: &C,
    ) -> Result<Arc<RoutingTable>, StoreError> {
        let stmt = client
            .prepare_cached("SELECT max(version) FROM routing_versions")
            .await?;
        let latest: Option<i32> = client.query_one(&stmt, &[]).await?.get(0);
        let Some(latest) = latest else {
            return Err(StoreError::Conflict("no routing table is installed".into()));
        };
        if let Some(t) = self.cached().filter(|t| t.version == latest) {
            return Ok(t);
        }
        let table = Arc::new(load(client, latest).await?.ok_or(StoreError::NotFound)?);
        if let Ok(mut slot) = self.current.write() {
            *slot = Some(table.clone());
        }
        Ok(table)
    }

    fn cached(&self) -> Option<Arc<RoutingTable>> {
        self.current.read().ok().and_then(|g| g.clone())
    }
}

pub async fn load<C: GenericClient>(
    client: &C,
    version: i32,
) -> Result<Option<RoutingTable>, StoreError> {
    let Some(row) = client
        .query_opt(
            "SELECT tables FROM routing_versions WHERE version = $1",
            &[&version],
        )
        .await?
    else {
        return Ok(None);
    };
    let spec: TableSpec = serde_json::from_value(row.get(0))
        .map_err(|e| StoreError::Conflict(format!("stored routing table unreadable: {e}")))?;
    Ok(Some(RoutingTable { version, spec }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = RoutingVersion)]
pub struct VersionInfo {
    pub version: i32,
    pub rule_count: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
    pub note: Option<String>,
}

pub async fn versions<C: GenericClient>(client: &C) -> Result<Vec<VersionInfo>, StoreError> {
    Ok(client
        .query(
            "SELECT version, rule_count, created_at, created_by, note FROM routing_versions
              ORDER BY version DESC",
            &[],
        )
        .await?
        .iter()
        .map(|r| VersionInfo {
            version: r.get(0),
            rule_count: r.get(1),
            created_at: r.get(2),
            created_by: r.get(3),
            note: r.get(4),
        })
        .collect())
}

/// Stores `spec` (already validated) as the next version; returns that version.
pub async fn replace(
    client: &mut deadpool_postgres::Object,
    spec: &TableSpec,
    actor: &str,
    note: Option<&str>,
) -> Result<i32, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    let version = insert(&tx, spec, actor, note).await?;
    tx.commit().await?;
    Ok(version)
}

async fn insert<C: GenericClient>(
    tx: &C,
    spec: &TableSpec,
    actor: &str,
    note: Option<&str>,
) -> Result<i32, StoreError> {
    let json = serde_json::to_value(spec)
        .map_err(|e| StoreError::Conflict(format!("routing table not serialisable: {e}")))?;
    let count = spec.rules.len() as i32;
    let version: i32 = tx
        .query_one(
            "INSERT INTO routing_versions (version, tables, rule_count, created_by, note)
             SELECT coalesce(max(version), 0) + 1, $1, $2, $3, $4 FROM routing_versions
             RETURNING version",
            &[&json, &count, &actor, &note],
        )
        .await?
        .get(0);
    audit::append(
        tx,
        actor,
        "routing.replaced",
        &format!("routing-table/{version}"),
        &serde_json::json!({"version": version, "rules": count,
                            "agencies": spec.agencies.len(), "note": note}),
    )
    .await?;
    Ok(version)
}

/// Installs `spec` as version 1 when no table exists yet (first start); otherwise leaves the
/// stored history alone, so replacements made through the API survive restarts.
pub async fn install_if_empty(
    client: &mut deadpool_postgres::Object,
    spec: &TableSpec,
) -> Result<Option<i32>, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    let exists = tx
        .query_opt("SELECT 1 FROM routing_versions LIMIT 1", &[])
        .await?
        .is_some();
    if exists {
        return Ok(None);
    }
    let v = insert(&tx, spec, "system", Some("installed at first start")).await?;
    tx.commit().await?;
    Ok(Some(v))
}
