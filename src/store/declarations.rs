//! Declarations: one transaction per accepted document (bytes, extracted fields, items, first
//! status event, audit entry, idempotency record), and the queries behind the API.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{audit, StoreError};
use crate::domain::declaration::Declaration;
use crate::domain::party::{Principal, Role};

/// What a client gets back for an accepted document (and again for a replayed request).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = DeclarationReceipt)]
pub struct Receipt {
    pub id: Uuid,
    pub reference: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
    pub sha256: String,
    pub size: i32,
}

pub enum Submitted {
    Created(Receipt),
    /// Same Idempotency-Key and same body as an earlier request: its answer, unchanged.
    Replayed(Receipt),
}

pub struct Submission<'a> {
    pub principal: &'a Principal,
    pub body: &'a [u8],
    pub sha256: [u8; 32],
    pub declaration: &'a Declaration,
    pub idempotency_key: Option<&'a str>,
    /// Prefix of human references, e.g. `VN` → `VN-DEC-2026-000123`.
    pub country: &'a str,
    /// The routing table its items are held to (licences, certificates).
    pub routing: &'a crate::routing::RoutingTable,
    /// Export countries whose windows send us e-Form Ds: imports from them that quote a
    /// certificate of origin are held to the one received (see `store::origin`).
    pub origin_checked_from: &'a [String],
    /// The window's date on which it accepts the declaration (licence validity is judged by it).
    pub today: chrono::NaiveDate,
}

/// Which declarations a caller may see.
pub enum Scope {
    All,
    Party(String),
    Nothing,
}

impl Scope {
    pub fn of(p: &Principal) -> Scope {
        match p.role {
            Role::Customs | Role::Admin => Scope::All,
            Role::Enterprise => Scope::Party(p.party_id.clone()),
            // Ministries and partners reach declarations only through routing and exchange.
            Role::Ministry | Role::Partner => Scope::Nothing,
        }
    }

    /// (all?, party) parameters for the visibility predicate used in every query below.
    fn params(&self) -> Option<(bool, &str)> {
        match self {
            Scope::All => Some((true, "")),
            Scope::Party(id) => Some((false, id.as_str())),
            Scope::Nothing => None,
        }
    }
}

const VISIBLE: &str =
    "($VIS_ALL OR x.submitter = $VIS_PARTY OR x.trader_id = $VIS_PARTY OR x.declarant_id = $VIS_PARTY)";

fn visible(all: usize, party: usize) -> String {
    VISIBLE
        .replace("$VIS_ALL", &format!("${all}"))
        .replace("$VIS_PARTY", &format!("${party}"))
}

async fn replay_or_conflict<C: GenericClient>(
    client: &C,
    party: &str,
    key: &str,
    sha: &[u8],
) -> Result<Option<Receipt>, StoreError> {
    let row = client
        .query_opt(
            "SELECT request_sha256, response FROM idempotency_keys WHERE party_id = $1 AND key = $2",
            &[&party, &key],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let stored: Vec<u8> = r.get(0);
            if stored != sha {
                return Err(StoreError::IdempotencyConflict);
            }
            let response: serde_json::Value = r.get(1);
            serde_json::from_value(response)
                .map(Some)
                .map_err(|e| StoreError::Conflict(format!("stored response unreadable: {e}")))
        }
    }
}

/// The earlier answer to `key` when `sha` is the body it was given for, a conflict when the key
/// was used for another body, nothing when the key is new. Looked up before validation, so a
/// retry costs one keyed read and a reused key is a 409 whatever the new body holds.
pub async fn earlier_answer<C: GenericClient>(
    client: &C,
    party: &str,
    key: &str,
    sha: &[u8],
) -> Result<Option<Receipt>, StoreError> {
    replay_or_conflict(client, party, key, sha).await
}

/// One submission in its own transaction: the single-transaction path, and the database
/// baseline of `nsw loadtest`. The service groups concurrent submissions instead (see
/// `store::group_commit`), through the same `insert`.
pub async fn submit(
    client: &mut deadpool_postgres::Object,
    s: Submission<'_>,
) -> Result<Submitted, StoreError> {
    let tx = client.transaction().await?;
    match insert(&tx, &s).await? {
        Inserted::Done(outcome) => {
            tx.commit().await?;
            Ok(outcome)
        }
        Inserted::KeyTaken => {
            tx.rollback().await?;
            replay_after_race(&*client, &s).await
        }
        Inserted::ReferenceTaken => {
            tx.rollback().await?;
            reference_taken(&*client, &s).await
        }
    }
}

pub(crate) enum Inserted {
    /// Committable: a new declaration, or the replay of an earlier one (nothing written).
    Done(Submitted),
    /// A concurrent request with the same Idempotency-Key committed between our look and our
    /// insert: roll back and answer as it did (`replay_after_race`).
    KeyTaken,
    /// The declarant's reference is taken (unique index `declarations_declarant_lrn`): roll
    /// back and answer with the first declaration (`reference_taken`).
    ReferenceTaken,
}

/// The unique index behind "a declarant's reference identifies one declaration".
const REFERENCE_INDEX: &str = "declarations_declarant_lrn";

fn is_reference_taken(e: &StoreError) -> bool {
    match e {
        StoreError::Db(crate::db::DbError::Postgres(pg)) => pg.as_db_error().is_some_and(|d| {
            *d.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                && d.constraint() == Some(REFERENCE_INDEX)
        }),
        _ => false,
    }
}

/// After `Inserted::ReferenceTaken` and a rollback: the replay of the same request when it
/// carried an Idempotency-Key that a concurrent twin committed first, otherwise the refusal
/// naming the declaration that holds the reference.
pub(crate) async fn reference_taken<C: GenericClient>(
    client: &C,
    s: &Submission<'_>,
) -> Result<Submitted, StoreError> {
    if let Some(key) = s.idempotency_key {
        if let Some(r) = replay_or_conflict(client, &s.principal.party_id, key, &s.sha256).await? {
            return Ok(Submitted::Replayed(r));
        }
    }
    let d = s.declaration;
    let row = client
        .query_opt(
            "SELECT id, reference FROM declarations
              WHERE declarant_id = $1 AND lrn = $2 AND lrn_reuse_of IS NULL",
            &[&d.declarant.id, &d.reference],
        )
        .await?;
    match row {
        Some(r) => Err(StoreError::ReferenceReused {
            declarant: d.declarant.id.clone(),
            lrn: d.reference.clone(),
            id: r.get(0),
            reference: r.get(1),
        }),
        None => Err(StoreError::Conflict(
            "the declarant's reference is in use by a declaration being stored; retry".into(),
        )),
    }
}

/// After `Inserted::KeyTaken` and a rollback: the answer the winning request gave.
pub(crate) async fn replay_after_race<C: GenericClient>(
    client: &C,
    s: &Submission<'_>,
) -> Result<Submitted, StoreError> {
    let key = s.idempotency_key.unwrap_or_default();
    match replay_or_conflict(client, &s.principal.party_id, key, &s.sha256).await? {
        Some(r) => Ok(Submitted::Replayed(r)),
        None => Err(StoreError::Conflict(
            "idempotency key in flux; retry".into(),
        )),
    }
}

/// Every row of one accepted declaration, written through `tx` (a transaction, or a savepoint
/// inside a group commit). Independent statements are sent together (tokio-postgres pipelines
/// requests polled at once), so a submission costs about three round trips, not ten.
pub(crate) async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    s: &Submission<'_>,
) -> Result<Inserted, StoreError> {
    let party = s.principal.party_id.as_str();
    if let Some(key) = s.idempotency_key {
        if let Some(r) = replay_or_conflict(tx, party, key, &s.sha256).await? {
            return Ok(Inserted::Done(Submitted::Replayed(r)));
        }
    }
    let d = s.declaration;
    let id = Uuid::now_v7();
    let document_id = Uuid::now_v7();
    let size = s.body.len() as i32;

    let (doc_stmt, decl_stmt, items_stmt, event_stmt) = futures_util::future::try_join4(
        tx.prepare_cached(
            "INSERT INTO documents (id, kind, sha256, size, body, received_at)
             VALUES ($1, 'declaration', $2, $3, $4, now())",
        ),
        tx.prepare_cached(
            "INSERT INTO declarations (id, reference, document_id, submitter, status, direction, lrn,
                declarant_id, exporter_id, importer_id, trader_id, export_country,
                destination_country, customs_office, issue_date, currency, total_value,
                total_gross_mass, item_count, received_at, updated_at)
             VALUES ($1, $2 || '-DEC-' || to_char(now() AT TIME ZONE 'UTC', 'YYYY') || '-'
                        || lpad(nextval('dossier_reference_seq')::text, 6, '0'),
                     $3, $4, 'accepted', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, now(), now())
             RETURNING reference, received_at",
        ),
        tx.prepare_cached(
            "INSERT INTO declaration_items (declaration_id, line, hs_code, description, origin,
                quantity, unit, net_mass, gross_mass, customs_value, documents)
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[],
                $6::numeric[], $7::text[], $8::numeric[], $9::numeric[], $10::numeric[], $11::jsonb[])",
        ),
        tx.prepare_cached(
            "INSERT INTO dossier_events (dossier_id, status, at, actor, note)
             VALUES ($1, 'accepted', now(), $2, 'submitted and accepted')",
        ),
    )
    .await?;

    let item_count = d.items.len() as i32;
    let mut lines = Vec::with_capacity(d.items.len());
    let mut hs = Vec::with_capacity(d.items.len());
    let mut desc = Vec::with_capacity(d.items.len());
    let mut origin = Vec::with_capacity(d.items.len());
    let mut qty: Vec<Decimal> = Vec::with_capacity(d.items.len());
    let mut unit = Vec::with_capacity(d.items.len());
    let mut net: Vec<Decimal> = Vec::with_capacity(d.items.len());
    let mut gross: Vec<Decimal> = Vec::with_capacity(d.items.len());
    let mut value: Vec<Decimal> = Vec::with_capacity(d.items.len());
    let mut docs = Vec::with_capacity(d.items.len());
    for it in &d.items {
        lines.push(it.number as i32);
        hs.push(it.hs_code.as_str());
        desc.push(it.description.as_str());
        origin.push(it.origin.as_str());
        qty.push(it.quantity);
        unit.push(it.unit.as_str());
        net.push(it.net_mass);
        gross.push(it.gross_mass);
        value.push(it.customs_value);
        docs.push(serde_json::to_value(&it.documents).unwrap_or_default());
    }
    let joined = futures_util::future::try_join3(
        tx.execute(&doc_stmt, &[&document_id, &&s.sha256[..], &size, &s.body]),
        tx.query_one(
            &decl_stmt,
            &[
                &id,
                &s.country,
                &document_id,
                &party,
                &d.direction.code(),
                &d.reference,
                &d.declarant.id,
                &d.exporter.id,
                &d.importer.id,
                &d.trader().id,
                &d.export_country.as_str(),
                &d.destination_country.as_str(),
                &d.customs_office,
                &d.issue_date,
                &d.currency.as_str(),
                &d.total_customs_value,
                &d.total_gross_mass,
                &item_count,
            ],
        ),
        tx.execute(
            &items_stmt,
            &[
                &id, &lines, &hs, &desc, &origin, &qty, &unit, &net, &gross, &value, &docs,
            ],
        ),
    )
    .await
    .map_err(StoreError::from);
    let (_, row, _) = match joined {
        Err(e) if is_reference_taken(&e) => return Ok(Inserted::ReferenceTaken),
        other => other?,
    };
    let reference: String = row.get(0);
    let received_at: DateTime<Utc> = row.get(1);

    let mut violations = super::ledger::check_and_reserve(tx, id, d, s.routing, s.today).await?;
    violations.extend(super::origin::check(tx, d, s.origin_checked_from).await?);
    if !violations.is_empty() {
        return Err(StoreError::Rejected(violations));
    }

    let sha_hex = hex::encode(s.sha256);
    let details =
        serde_json::json!({"id": id, "sha256": sha_hex, "size": size, "lrn": d.reference});
    let receipt = Receipt {
        id,
        reference,
        status: "accepted".into(),
        received_at,
        sha256: sha_hex,
        size,
    };
    let event_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&id, &party];
    let event = tx
        .execute(&event_stmt, &event_params)
        .map_err(StoreError::from);
    let audit = audit::append(
        tx,
        party,
        "declaration.accepted",
        &receipt.reference,
        &details,
    );
    let Some(key) = s.idempotency_key else {
        futures_util::future::try_join(event, audit).await?;
        return Ok(Inserted::Done(Submitted::Created(receipt)));
    };
    let stmt = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (party_id, key, request_sha256, status, response, location)
             VALUES ($1, $2, $3, 201, $4, $5) ON CONFLICT DO NOTHING",
        )
        .await?;
    let response = serde_json::to_value(&receipt).unwrap_or_default();
    let location = format!("/api/v1/declarations/{id}");
    let (_, _, n) = futures_util::future::try_join3(event, audit, async {
        tx.execute(&stmt, &[&party, &key, &&s.sha256[..], &response, &location])
            .await
            .map_err(StoreError::from)
    })
    .await?;
    if n == 0 {
        return Ok(Inserted::KeyTaken);
    }
    Ok(Inserted::Done(Submitted::Created(receipt)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeclarationSummary)]
pub struct Summary {
    pub id: Uuid,
    pub reference: String,
    pub status: String,
    pub direction: String,
    pub lrn: String,
    pub declarant_id: String,
    pub trader_id: String,
    pub export_country: String,
    pub destination_country: String,
    pub currency: String,
    pub total_value: Decimal,
    pub item_count: i32,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SUMMARY_COLUMNS: &str = "x.id, x.reference, x.status, x.direction, x.lrn, x.declarant_id,
    x.trader_id, x.export_country, x.destination_country, x.currency, x.total_value,
    x.item_count, x.received_at, x.updated_at";

fn summary(r: &tokio_postgres::Row) -> Summary {
    Summary {
        id: r.get(0),
        reference: r.get(1),
        status: r.get(2),
        direction: r.get(3),
        lrn: r.get(4),
        declarant_id: r.get(5),
        trader_id: r.get(6),
        export_country: r.get(7),
        destination_country: r.get(8),
        currency: r.get(9),
        total_value: r.get(10),
        item_count: r.get(11),
        received_at: r.get(12),
        updated_at: r.get(13),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeclarationHistoryEntry)]
pub struct Event {
    pub status: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeclarationDetail)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    pub sha256: String,
    pub size: i32,
    pub history: Vec<Event>,
}

pub async fn get<C: GenericClient>(
    client: &C,
    scope: &Scope,
    id: Uuid,
) -> Result<Option<Detail>, StoreError> {
    let Some((all, party)) = scope.params() else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, d.sha256, d.size FROM declarations x
           JOIN documents d ON d.id = x.document_id
          WHERE x.id = $1 AND {}",
        visible(2, 3)
    );
    let stmt = client.prepare_cached(&sql).await?;
    let Some(row) = client.query_opt(&stmt, &[&id, &all, &party]).await? else {
        return Ok(None);
    };
    let stmt = client
        .prepare_cached(
            "SELECT status, at, actor, note FROM dossier_events WHERE dossier_id = $1 ORDER BY id",
        )
        .await?;
    let history = client
        .query(&stmt, &[&id])
        .await?
        .iter()
        .map(|r| Event {
            status: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            note: r.get(3),
        })
        .collect();
    let sha: Vec<u8> = row.get(14);
    Ok(Some(Detail {
        summary: summary(&row),
        sha256: hex::encode(sha),
        size: row.get(15),
        history,
    }))
}

/// The exact bytes received, with their digest.
pub async fn document<C: GenericClient>(
    client: &C,
    scope: &Scope,
    id: Uuid,
) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
    let Some((all, party)) = scope.params() else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT d.body, d.sha256 FROM declarations x JOIN documents d ON d.id = x.document_id
          WHERE x.id = $1 AND {}",
        visible(2, 3)
    );
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query_opt(&stmt, &[&id, &all, &party])
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

pub struct Page {
    pub items: Vec<Summary>,
    /// Pass back as `cursor` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

/// Newest first. Ids are UUIDv7, so ordering by id is ordering by arrival.
pub async fn list<C: GenericClient>(
    client: &C,
    scope: &Scope,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Page, StoreError> {
    let Some((all, party)) = scope.params() else {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM declarations x
          WHERE {} AND ($3::text IS NULL OR x.status = $3) AND ($4::uuid IS NULL OR x.id < $4)
          ORDER BY x.id DESC LIMIT $5",
        visible(1, 2)
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&stmt, &[&all, &party, &status, &before, &(limit + 1)])
        .await?;
    let mut items: Vec<Summary> = rows.iter().map(summary).collect();
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|s| s.id)
    } else {
        None
    };
    Ok(Page { items, next })
}
