//! Declarations: one transaction per accepted document (bytes, extracted fields, items, first
//! status event, audit entry, idempotency record), and the queries behind the API.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Json;
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

/// The items of a declaration as the columns of `declaration_items`, one array each.
struct ItemColumns<'d> {
    lines: Vec<i32>,
    hs: Vec<&'d str>,
    desc: Vec<&'d str>,
    origin: Vec<&'d str>,
    qty: Vec<Decimal>,
    unit: Vec<&'d str>,
    net: Vec<Decimal>,
    gross: Vec<Decimal>,
    value: Vec<Decimal>,
    /// Each item's supporting documents, serialised straight into the statement.
    docs: Vec<Json<&'d Vec<crate::domain::declaration::SupportingDocument>>>,
}

impl<'d> ItemColumns<'d> {
    fn of(items: &'d [crate::domain::declaration::Item]) -> Self {
        let mut c = ItemColumns::with_capacity(items.len());
        c.push_all(items);
        c
    }

    fn with_capacity(n: usize) -> Self {
        ItemColumns {
            lines: Vec::with_capacity(n),
            hs: Vec::with_capacity(n),
            desc: Vec::with_capacity(n),
            origin: Vec::with_capacity(n),
            qty: Vec::with_capacity(n),
            unit: Vec::with_capacity(n),
            net: Vec::with_capacity(n),
            gross: Vec::with_capacity(n),
            value: Vec::with_capacity(n),
            docs: Vec::with_capacity(n),
        }
    }

    fn push_all(&mut self, items: &'d [crate::domain::declaration::Item]) {
        let c = self;
        for it in items {
            c.lines.push(it.number as i32);
            c.hs.push(it.hs_code.as_str());
            c.desc.push(it.description.as_str());
            c.origin.push(it.origin.as_str());
            c.qty.push(it.quantity);
            c.unit.push(it.unit.as_str());
            c.net.push(it.net_mass);
            c.gross.push(it.gross_mass);
            c.value.push(it.customs_value);
            c.docs.push(Json(&it.documents));
        }
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

    // Every statement prepared before any is sent, so they reach the server in the order they
    // are polled (a statement given as text would first be prepared, and overtaken).
    let (doc_stmt, decl_stmt, items_stmt, event_stmt) = futures_util::future::try_join4(
        tx.prepare_cached(
            "INSERT INTO documents (id, kind, sha256, size, body, received_at)
             VALUES ($1, 'declaration', $2, $3, $4, now())",
        ),
        tx.prepare_cached(
            "INSERT INTO declarations (id, reference, document_id, submitter, status, direction, lrn,
                declarant_id, exporter_id, importer_id, trader_id, export_country,
                destination_country, customs_office, issue_date, currency, total_value,
                total_gross_mass, item_count, routing_version, received_at, updated_at)
             VALUES ($1, $2 || '-DEC-' || to_char(now() AT TIME ZONE 'UTC', 'YYYY') || '-'
                        || lpad(nextval('dossier_reference_seq')::text, 6, '0'),
                     $3, $4, 'accepted', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, now(), now())
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
    // A large document's body is streamed first and its items go in pieces, one after the
    // other, so no statement carries more than a piece of it; a small one's statements travel
    // together.
    let large = s.body.len() >= super::documents::STREAMED_FROM;
    if large {
        super::documents::insert(tx, document_id, "declaration", &s.sha256, s.body).await?;
    }
    let items_per_statement = if large { 64 } else { d.items.len().max(1) };
    let write_items = async {
        for items in d.items.chunks(items_per_statement) {
            let c = ItemColumns::of(items);
            tx.execute(
                &items_stmt,
                &[
                    &id, &c.lines, &c.hs, &c.desc, &c.origin, &c.qty, &c.unit, &c.net, &c.gross,
                    &c.value, &c.docs,
                ],
            )
            .await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    let write_document = async {
        if large {
            return Ok(0);
        }
        tx.execute(&doc_stmt, &[&document_id, &&s.sha256[..], &size, &s.body])
            .await
    };
    let joined = futures_util::future::try_join3(
        write_document,
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
                &s.routing.version,
            ],
        ),
        write_items,
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

/// Whether storing `s` reads more than its own rows: licence lines to look up and draw on,
/// routing rules to record, or a received certificate of origin to match (what
/// `ledger::check_and_reserve` and `origin::check` do). Such a submission is stored by `insert`,
/// one at a time; any other can be stored set-wise by `insert_many`, where those checks find
/// nothing to do.
pub(crate) fn needs_lookups(s: &Submission<'_>) -> bool {
    let d = s.declaration;
    let direction = d.direction.code();
    let origin_checked = d.direction == crate::domain::Direction::Import
        && s.origin_checked_from
            .iter()
            .any(|c| c == d.export_country.as_str());
    d.items.iter().any(|item| {
        let country = match d.direction {
            crate::domain::Direction::Import => item.origin.as_str(),
            crate::domain::Direction::Export => d.destination_country.as_str(),
        };
        item.documents
            .iter()
            .any(|doc| doc.kind == "LIC" || (origin_checked && doc.kind == "COO"))
            || !s
                .routing
                .requirements(item.hs_code.as_str(), direction, Some(country))
                .is_empty()
    })
}

/// Every member's rows in one statement: one multi-row INSERT per table (documents,
/// declarations, items, events, audit entries, idempotency records) for the whole set, instead
/// of one statement set per member. Each member must pass `!needs_lookups`, and all share
/// the first member's `country` and `routing`. Members with the same Idempotency-Key must not
/// both be in `subs` (the second would fail the whole statement).
///
/// Returns, in the order of `subs`, the receipt of each member written, or `None` for a member
/// that wrote nothing because its Idempotency-Key is already stored or its declarant's
/// reference is taken (by a committed declaration, or by an earlier member of `subs`): answer
/// those with `reference_taken`, which tells replay, key conflict and reference reuse apart.
/// Any error (e.g. a key stored concurrently, which the statement meets as a unique
/// violation) leaves the transaction aborted: run it under a savepoint and store the members
/// one by one after rolling back to it.
///
/// The triggers run as with single-row INSERTs: every event enters `event_pending` (one insert
/// for the statement's events, migration 0021) and each audit entry waits for the sealer, in
/// the members' order.
pub(crate) async fn insert_many(
    tx: &deadpool_postgres::Transaction<'_>,
    subs: &[&Submission<'_>],
) -> Result<Vec<Option<Receipt>>, StoreError> {
    let Some(first) = subs.first() else {
        return Ok(Vec::new());
    };
    let n = subs.len();
    let mut ids = Vec::with_capacity(n);
    let mut document_ids = Vec::with_capacity(n);
    let mut shas: Vec<&[u8]> = Vec::with_capacity(n);
    let mut bodies: Vec<&[u8]> = Vec::with_capacity(n);
    let mut submitters = Vec::with_capacity(n);
    let mut directions = Vec::with_capacity(n);
    let mut lrns = Vec::with_capacity(n);
    let mut declarants = Vec::with_capacity(n);
    let mut exporters = Vec::with_capacity(n);
    let mut importers = Vec::with_capacity(n);
    let mut traders = Vec::with_capacity(n);
    let mut export_countries = Vec::with_capacity(n);
    let mut destinations = Vec::with_capacity(n);
    let mut offices = Vec::with_capacity(n);
    let mut issue_dates = Vec::with_capacity(n);
    let mut currencies = Vec::with_capacity(n);
    let mut totals: Vec<Decimal> = Vec::with_capacity(n);
    let mut masses: Vec<Decimal> = Vec::with_capacity(n);
    let mut item_counts = Vec::with_capacity(n);
    let mut keys: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut details = Vec::with_capacity(n);
    let mut responses_sha = Vec::with_capacity(n);
    // Items of every member, flattened; each row names its declaration.
    let mut item_decl = Vec::new();
    let mut items = ItemColumns::with_capacity(0);
    for s in subs {
        let d = s.declaration;
        let id = Uuid::now_v7();
        let sha_hex = hex::encode(s.sha256);
        ids.push(id);
        document_ids.push(Uuid::now_v7());
        shas.push(&s.sha256[..]);
        bodies.push(s.body);
        submitters.push(s.principal.party_id.as_str());
        directions.push(d.direction.code());
        lrns.push(d.reference.as_str());
        declarants.push(d.declarant.id.as_str());
        exporters.push(d.exporter.id.as_str());
        importers.push(d.importer.id.as_str());
        traders.push(d.trader().id.as_str());
        export_countries.push(d.export_country.as_str());
        destinations.push(d.destination_country.as_str());
        offices.push(d.customs_office.as_str());
        issue_dates.push(d.issue_date);
        currencies.push(d.currency.as_str());
        totals.push(d.total_customs_value);
        masses.push(d.total_gross_mass);
        item_counts.push(d.items.len() as i32);
        keys.push(s.idempotency_key);
        // The same details as `insert` writes.
        details.push(serde_json::json!(
            {"id": id, "sha256": sha_hex, "size": s.body.len() as i32, "lrn": d.reference}
        ));
        responses_sha.push(sha_hex);
        item_decl.extend(std::iter::repeat_n(id, d.items.len()));
        items.push_all(&d.items);
    }
    let ordinals: Vec<i32> = (0..n as i32).collect();

    // One statement, one round trip. The data-modifying CTEs all run to completion; each table
    // after `decl` writes only for the members `decl` wrote (so a skipped member leaves no
    // trace), and the foreign keys are checked at the end of the statement, when every row is
    // in. `ON CONFLICT DO NOTHING` skips a member whose reference is taken instead of failing
    // the set; waiting, as a single INSERT would, for a concurrent holder of that reference to
    // commit or roll back. The receipt an idempotency record keeps is built here from the
    // same fields `Receipt` serialises.
    let stmt = tx
        .prepare_cached(
            "WITH input AS (
                SELECT * FROM unnest($1::int[], $2::uuid[], $3::uuid[], $4::bytea[], $5::bytea[],
                    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                    $12::text[], $13::text[], $14::text[], $15::text[], $16::date[], $17::text[],
                    $18::numeric[], $19::numeric[], $20::int[], $21::text[], $22::jsonb[],
                    $23::text[])
                  AS t(n, id, document_id, sha256, body, submitter, direction, lrn, declarant_id,
                       exporter_id, importer_id, trader_id, export_country, destination_country,
                       customs_office, issue_date, currency, total_value, total_gross_mass,
                       item_count, key, details, sha_hex)
                 WHERE t.key IS NULL OR NOT EXISTS (
                       SELECT 1 FROM idempotency_keys k
                        WHERE k.party_id = t.submitter AND k.key = t.key)
             ),
             decl AS (
                INSERT INTO declarations (id, reference, document_id, submitter, status, direction,
                    lrn, declarant_id, exporter_id, importer_id, trader_id, export_country,
                    destination_country, customs_office, issue_date, currency, total_value,
                    total_gross_mass, item_count, routing_version, received_at, updated_at)
                SELECT id, $24 || '-DEC-' || to_char(now() AT TIME ZONE 'UTC', 'YYYY') || '-'
                           || lpad(nextval('dossier_reference_seq')::text, 6, '0'),
                       document_id, submitter, 'accepted', direction, lrn, declarant_id,
                       exporter_id, importer_id, trader_id, export_country, destination_country,
                       customs_office, issue_date, currency, total_value, total_gross_mass,
                       item_count, $25, now(), now()
                  FROM input ORDER BY n
                ON CONFLICT DO NOTHING
                RETURNING id, reference, received_at
             ),
             written AS (
                SELECT i.*, d.reference, d.received_at FROM input i JOIN decl d ON d.id = i.id
             ),
             docs AS (
                INSERT INTO documents (id, kind, sha256, size, body, received_at)
                SELECT document_id, 'declaration', sha256, length(body), body, now()
                  FROM written ORDER BY n
             ),
             items AS (
                INSERT INTO declaration_items (declaration_id, line, hs_code, description,
                    origin, quantity, unit, net_mass, gross_mass, customs_value, documents)
                SELECT it.* FROM unnest($26::uuid[], $27::int[], $28::text[], $29::text[],
                    $30::text[], $31::numeric[], $32::text[], $33::numeric[], $34::numeric[],
                    $35::numeric[], $36::jsonb[])
                    AS it(declaration_id, line, hs_code, description, origin, quantity, unit,
                          net_mass, gross_mass, customs_value, documents)
                 WHERE it.declaration_id IN (SELECT id FROM decl)
             ),
             events AS (
                INSERT INTO dossier_events (dossier_id, status, at, actor, note)
                SELECT id, 'accepted', now(), submitter, 'submitted and accepted'
                  FROM written ORDER BY n
             ),
             audit AS (
                INSERT INTO audit_log (actor, action, subject, details)
                SELECT submitter, 'declaration.accepted', reference, details
                  FROM written ORDER BY n
             ),
             keyed AS (
                INSERT INTO idempotency_keys (party_id, key, request_sha256, status, response,
                    location)
                SELECT submitter, key, sha256, 201,
                       jsonb_build_object('id', id, 'reference', reference, 'status', 'accepted',
                           'received_at', received_at, 'sha256', sha_hex,
                           'size', length(body)),
                       '/api/v1/declarations/' || id
                  FROM written WHERE key IS NOT NULL ORDER BY n
             )
             SELECT n, reference, received_at FROM written",
        )
        .await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &ordinals,
                &ids,
                &document_ids,
                &shas,
                &bodies,
                &submitters,
                &directions,
                &lrns,
                &declarants,
                &exporters,
                &importers,
                &traders,
                &export_countries,
                &destinations,
                &offices,
                &issue_dates,
                &currencies,
                &totals,
                &masses,
                &item_counts,
                &keys,
                &details,
                &responses_sha,
                &first.country,
                &first.routing.version,
                &item_decl,
                &items.lines,
                &items.hs,
                &items.desc,
                &items.origin,
                &items.qty,
                &items.unit,
                &items.net,
                &items.gross,
                &items.value,
                &items.docs,
            ],
        )
        .await?;
    let mut receipts: Vec<Option<Receipt>> = (0..n).map(|_| None).collect();
    for r in rows {
        let i: i32 = r.get(0);
        let i = i as usize;
        receipts[i] = Some(Receipt {
            id: ids[i],
            reference: r.get(1),
            status: "accepted".into(),
            received_at: r.get(2),
            sha256: std::mem::take(&mut responses_sha[i]),
            size: subs[i].body.len() as i32,
        });
    }
    Ok(receipts)
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
    // One statement per shape, each walking an index in id order from the cursor, so a page
    // costs about its rows whatever the history: a single statement with `$all OR submitter =
    // …` cannot use the party indexes once PostgreSQL settles on a generic plan, and then read
    // the table backwards from the newest declaration until it had a page (5.8 s for a party
    // with no declarations among a million). A party's three links are three index walks
    // merged; a status alone walks `declarations_status`.
    let before = before.unwrap_or(Uuid::max());
    let (sql, party) = if all {
        let status_test = match status {
            Some(_) => "x.status = $1",
            None => "$1::text IS NULL",
        };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM declarations x
              WHERE {status_test} AND x.id < $2
              ORDER BY x.id DESC LIMIT $3"
        );
        (sql, None)
    } else {
        let branch = |column: &str| {
            format!(
                "(SELECT y.id FROM declarations y
                   WHERE y.{column} = $4 AND y.id < $2 AND ($1::text IS NULL OR y.status = $1)
                   ORDER BY y.id DESC LIMIT $3)"
            )
        };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM declarations x
              WHERE x.id IN ({} UNION {} UNION {})
              ORDER BY x.id DESC LIMIT $3",
            branch("submitter"),
            branch("trader_id"),
            branch("declarant_id")
        );
        (sql, Some(party))
    };
    let stmt = client.prepare_cached(&sql).await?;
    let page = limit + 1;
    let rows = match party {
        None => client.query(&stmt, &[&status, &before, &page]).await?,
        Some(party) => {
            client
                .query(&stmt, &[&status, &before, &page, &party])
                .await?
        }
    };
    let mut items: Vec<Summary> = rows.iter().map(summary).collect();
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|s| s.id)
    } else {
        None
    };
    Ok(Page { items, next })
}
