//! Licence applications (intake, inbox, state changes) and electronic licences (issued or
//! deposited, with per-line balances). Every status change writes a `dossier_events` row and an
//! audit entry in the same transaction; the database's state machine refuses any other change.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::{audit, StoreError};
pub use crate::domain::application_state::Status;
use crate::domain::licence::{Application, Licence};
use crate::routing::Rule;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApplicationReceipt {
    pub id: Uuid,
    pub reference: String,
    pub status: String,
    pub agency: String,
    pub procedure_code: String,
    pub routing_version: i32,
    /// The fee of the rule that routed it, in đồng.
    pub fee_vnd: i64,
    /// The agency's time limit, in working minutes of the window's calendar.
    pub sla_minutes: i32,
    pub received_at: DateTime<Utc>,
    pub sha256: String,
    pub size: i32,
    /// The fee notice issued with it, when the fee is collected online: the application then
    /// waits in `awaiting_payment` until the fee is paid (docs/payments.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_notice: Option<super::payments::FeeNoticeBrief>,
}

/// A fee to collect online with the application (its amount is the rule's `fee_vnd`).
pub struct NewFee<'a> {
    /// The agency's name, as the e-receipt will name the payee.
    pub agency_name: &'a str,
    /// The last day to pay.
    pub due_date: NaiveDate,
}

pub struct NewApplication<'a> {
    pub applicant: &'a str,
    /// `documents.kind` of the body: `licence-application`, or `certificate-of-origin` for a
    /// Form D applied for as itself.
    pub document_kind: &'a str,
    pub body: &'a [u8],
    pub sha256: [u8; 32],
    pub application: &'a Application,
    pub rule: &'a Rule,
    pub routing_version: i32,
    pub country: &'a str,
    /// The rule's time limit in working minutes, on the window's calendar
    /// (`Rule::sla_minutes`).
    pub sla_minutes: u32,
    /// Collect the rule's fee online (when it is above zero); `None`: the application goes
    /// straight to its agency, as a free one does.
    pub fee: Option<NewFee<'a>>,
}

/// What `licence_applications.details` holds: the application without its goods lines, which
/// are stored once, in `licence_application_lines` (a large application's lines would
/// otherwise be copied into a JSON parameter and the connection's buffers whole; issue 14).
#[derive(Debug, Serialize)]
struct StoredDetails<'a> {
    reference: &'a str,
    application_type: &'a str,
    direction: &'a str,
    agency: &'a Option<String>,
    applicant: &'a crate::domain::licence::Party,
    export_country: &'a str,
    import_country: &'a str,
    valid_from: NaiveDate,
    valid_to: NaiveDate,
}

impl<'a> StoredDetails<'a> {
    fn of(a: &'a Application) -> StoredDetails<'a> {
        // No `..`: a field added to `Application` must be decided on here.
        let Application {
            reference,
            application_type,
            direction,
            agency,
            applicant,
            export_country,
            import_country,
            valid_from,
            valid_to,
            lines: _,
        } = a;
        StoredDetails {
            reference,
            application_type,
            direction,
            agency,
            applicant,
            export_country,
            import_country,
            valid_from: *valid_from,
            valid_to: *valid_to,
        }
    }
}

/// The whole application as JSON (`Application`'s shape), from `a.details` and the lines'
/// rows. Applications stored before migration 0020 carry their lines in `details` already.
/// Quantities read back as the window read them: the reader drops trailing zeros, the column
/// (numeric(18, 3)) adds them, `trim_scale` takes them off again.
const DETAILS: &str = "CASE WHEN a.details ? 'lines' THEN a.details
    ELSE a.details || jsonb_build_object('lines', coalesce((
        SELECT jsonb_agg(jsonb_build_object('number', l.line, 'hs_code', l.hs_code,
                   'description', l.description, 'quantity', trim_scale(l.quantity)::text,
                   'unit', l.unit)
                   ORDER BY l.line)
          FROM licence_application_lines l WHERE l.application_id = a.id), '[]'::jsonb)) END";

async fn event<C: GenericClient>(
    tx: &C,
    id: Uuid,
    status: &str,
    actor: &str,
    note: Option<&str>,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO dossier_events (dossier_id, status, at, actor, note)
             VALUES ($1, $2, now(), $3, $4)",
        )
        .await?;
    tx.execute(&stmt, &[&id, &status, &actor, &note]).await?;
    Ok(())
}

/// Stores an application and puts it in its agency's inbox: submitted, then received. With a
/// fee to collect online, its fee notice is issued in the same transaction and the application
/// waits in `awaiting_payment` instead (the fee's payment moves it to `received`).
pub async fn submit_application(
    client: &mut deadpool_postgres::Object,
    n: NewApplication<'_>,
) -> Result<ApplicationReceipt, StoreError> {
    let a = n.application;
    let id = Uuid::now_v7();
    let document_id = Uuid::now_v7();
    let size = n.body.len() as i32;
    // Serialised straight into the statement (no intermediate JSON tree), without the lines.
    let details = tokio_postgres::types::Json(StoredDetails::of(a));
    // Table validation bounds limits to 1000 days of at most 24 hours: far below i32::MAX.
    let sla = i32::try_from(n.sla_minutes).unwrap_or(i32::MAX);
    // Table validation has no upper bound on fees; a bigint holds any real one.
    let fee = i64::try_from(n.rule.fee_vnd).unwrap_or(i64::MAX);
    let tx = client.transaction().await?;
    super::documents::insert(&tx, document_id, n.document_kind, &n.sha256, n.body).await?;
    let row = tx
        .query_one(
            "INSERT INTO licence_applications (id, reference, document_id, applicant_id, lrn,
                details, application_type, direction, country, valid_from, valid_to, agency,
                procedure_code, document_type, rule_id, routing_version, sla_minutes, fee_vnd,
                status, received_at, updated_at)
             VALUES ($1, $2 || '-LA-' || to_char(now() AT TIME ZONE 'UTC', 'YYYY') || '-'
                        || lpad(nextval('licence_application_seq')::text, 6, '0'),
                     $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                     'submitted', now(), now())
             RETURNING reference, received_at",
            &[
                &id,
                &n.country,
                &document_id,
                &n.applicant,
                &a.reference,
                &details,
                &a.application_type,
                &a.direction,
                &a.partner_country(),
                &a.valid_from,
                &a.valid_to,
                &n.rule.agency,
                &n.rule.procedure,
                &n.rule.document,
                &n.rule.id,
                &n.routing_version,
                &sla,
                &fee,
            ],
        )
        .await?;
    let reference: String = row.get(0);
    let received_at: DateTime<Utc> = row.get(1);
    // In pieces of 128 lines: a statement with all 999 lines of 512 characters would be
    // copied whole into the connection's buffers.
    for lines in a.lines.chunks(128) {
        let numbers: Vec<i32> = lines.iter().map(|l| l.number).collect();
        let hs: Vec<&str> = lines.iter().map(|l| l.hs_code.as_str()).collect();
        let desc: Vec<&str> = lines.iter().map(|l| l.description.as_str()).collect();
        let qty: Vec<Decimal> = lines.iter().map(|l| l.quantity).collect();
        let unit: Vec<&str> = lines.iter().map(|l| l.unit.as_str()).collect();
        tx.execute(
            "INSERT INTO licence_application_lines (application_id, line, hs_code, description,
                quantity, unit)
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::numeric[],
                $6::text[])",
            &[&id, &numbers, &hs, &desc, &qty, &unit],
        )
        .await?;
    }
    event(&tx, id, "submitted", n.applicant, Some("submitted")).await?;
    let routed = format!(
        "routed to {} procedure {} by rule {} (routing version {})",
        n.rule.agency, n.rule.procedure, n.rule.id, n.routing_version
    );
    let fee_notice = match n.fee.as_ref().filter(|_| fee > 0) {
        Some(f) => {
            let notice = super::payments::insert_notice(
                &tx,
                &super::payments::NewNotice {
                    application_id: id,
                    applicant_id: n.applicant,
                    agency: &n.rule.agency,
                    agency_name: f.agency_name,
                    procedure_code: &n.rule.procedure,
                    amount: fee,
                    due_date: f.due_date,
                },
            )
            .await?;
            Some(notice)
        }
        None => None,
    };
    let status = match &fee_notice {
        Some(notice) => {
            tx.execute(
                "UPDATE licence_applications SET status = 'awaiting_payment' WHERE id = $1",
                &[&id],
            )
            .await?;
            let note = format!(
                "{routed}; fee {} of {} VND due by {}",
                notice.reference, notice.amount, notice.due_date
            );
            event(&tx, id, "awaiting_payment", "system", Some(&note)).await?;
            Status::AwaitingPayment
        }
        None => {
            tx.execute(
                "UPDATE licence_applications SET status = 'received' WHERE id = $1",
                &[&id],
            )
            .await?;
            event(&tx, id, "received", "system", Some(&routed)).await?;
            Status::Received
        }
    };
    let sha_hex = hex::encode(n.sha256);
    audit::append(
        &tx,
        n.applicant,
        &format!("licence_application.{}", status.as_str()),
        &reference,
        &serde_json::json!({"id": id, "sha256": sha_hex, "agency": n.rule.agency,
            "procedure": n.rule.procedure, "rule": n.rule.id,
            "routing_version": n.routing_version,
            "fee_notice": fee_notice.as_ref().map(|f| &f.reference)}),
    )
    .await?;
    tx.commit().await?;
    Ok(ApplicationReceipt {
        id,
        reference,
        status: status.as_str().into(),
        agency: n.rule.agency.clone(),
        procedure_code: n.rule.procedure.clone(),
        routing_version: n.routing_version,
        fee_vnd: fee,
        sla_minutes: sla,
        received_at,
        sha256: sha_hex,
        size,
        fee_notice,
    })
}

/// Who may see an application.
pub enum AppScope<'a> {
    Applicant(&'a str),
    Agency(&'a str),
    All,
}

impl AppScope<'_> {
    fn params(&self) -> (Option<&str>, Option<&str>) {
        match self {
            AppScope::Applicant(p) => (Some(p), None),
            AppScope::Agency(a) => (None, Some(a)),
            AppScope::All => (None, None),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApplicationSummary {
    pub id: Uuid,
    pub reference: String,
    pub lrn: String,
    pub applicant_id: String,
    pub application_type: String,
    pub direction: String,
    pub agency: String,
    pub procedure_code: String,
    pub status: String,
    pub routing_version: i32,
    /// The fee of the rule that routed it, in đồng.
    pub fee_vnd: i64,
    /// The agency's time limit, in working minutes of the window's calendar.
    pub sla_minutes: i32,
    pub received_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

const SUMMARY: &str = "a.id, a.reference, a.lrn, a.applicant_id, a.application_type,
    a.direction, a.agency, a.procedure_code, a.status, a.routing_version, a.received_at,
    a.decided_at, a.decision_reason, a.updated_at, a.fee_vnd, a.sla_minutes";

fn summary(r: &tokio_postgres::Row) -> ApplicationSummary {
    ApplicationSummary {
        id: r.get(0),
        reference: r.get(1),
        lrn: r.get(2),
        applicant_id: r.get(3),
        application_type: r.get(4),
        direction: r.get(5),
        agency: r.get(6),
        procedure_code: r.get(7),
        status: r.get(8),
        routing_version: r.get(9),
        received_at: r.get(10),
        decided_at: r.get(11),
        decision_reason: r.get(12),
        updated_at: r.get(13),
        fee_vnd: r.get(14),
        sla_minutes: r.get(15),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ApplicationHistoryEntry)]
pub struct HistoryEntry {
    pub status: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub note: Option<String>,
}

pub async fn history<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Vec<HistoryEntry>, StoreError> {
    Ok(client
        .query(
            "SELECT status, at, actor, note FROM dossier_events WHERE dossier_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| HistoryEntry {
            status: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            note: r.get(3),
        })
        .collect())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApplicationDetail {
    #[serde(flatten)]
    pub summary: ApplicationSummary,
    pub application: serde_json::Value,
    pub licence_number: Option<String>,
    pub supplements: Vec<serde_json::Value>,
    pub history: Vec<HistoryEntry>,
}

pub async fn get_application<C: GenericClient>(
    client: &C,
    scope: &AppScope<'_>,
    id: Uuid,
) -> Result<Option<ApplicationDetail>, StoreError> {
    let (applicant, agency) = scope.params();
    let sql = format!(
        "SELECT {SUMMARY}, {DETAILS}, l.number FROM licence_applications a
           LEFT JOIN licences l ON l.application_id = a.id
          WHERE a.id = $1 AND ($2::text IS NULL OR a.applicant_id = $2)
            AND ($3::text IS NULL OR a.agency = $3)"
    );
    let Some(row) = client.query_opt(&sql, &[&id, &applicant, &agency]).await? else {
        return Ok(None);
    };
    let supplements = client
        .query(
            "SELECT note, at FROM licence_supplements WHERE application_id = $1 ORDER BY at, id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            let at: DateTime<Utc> = r.get(1);
            serde_json::json!({"note": r.get::<_, String>(0), "at": at})
        })
        .collect();
    Ok(Some(ApplicationDetail {
        summary: summary(&row),
        application: row.get(16),
        licence_number: row.get(17),
        supplements,
        history: history(client, id).await?,
    }))
}

/// An agency's inbox: its applications awaiting a decision (or in `status`), oldest first.
/// Applications awaiting their fee are not awaiting the agency: they show only when asked for
/// (`status = awaiting_payment`).
pub async fn inbox<C: GenericClient>(
    client: &C,
    agency: &str,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<ApplicationSummary>, StoreError> {
    let statuses = match status {
        Some(s) => vec![s],
        None => vec![
            "received",
            "supplement_requested",
            "supplemented",
            "under_review",
        ],
    };
    // Each status walks `licence_applications_inbox` (agency, status, id) from its oldest entry,
    // so the page costs its rows, not the agency's decided history.
    let sql = format!(
        "SELECT {SUMMARY} FROM licence_applications a
          WHERE a.id IN (SELECT y.id FROM unnest($2::text[]) s(status)
                           CROSS JOIN LATERAL (SELECT l.id FROM licence_applications l
                                                WHERE l.agency = $1 AND l.status = s.status
                                                ORDER BY l.id LIMIT $3) y)
          ORDER BY a.id LIMIT $3"
    );
    Ok(client
        .query(&sql, &[&agency, &statuses, &limit])
        .await?
        .iter()
        .map(summary)
        .collect())
}

/// The status of application `id` if `scope` may see it, the row locked until the end of the
/// caller's transaction.
pub async fn status_for_update<C: GenericClient>(
    tx: &C,
    scope: &AppScope<'_>,
    id: Uuid,
) -> Result<Option<Status>, StoreError> {
    let (applicant, agency) = scope.params();
    Ok(tx
        .query_opt(
            "SELECT a.status FROM licence_applications a
              WHERE a.id = $1 AND ($2::text IS NULL OR a.applicant_id = $2)
                AND ($3::text IS NULL OR a.agency = $3)
              FOR UPDATE",
            &[&id, &applicant, &agency],
        )
        .await?
        .and_then(|r| Status::parse(r.get(0))))
}

/// Moves an application to `to` if `scope` may see it. The row is locked and the move judged
/// by the code's state machine (`domain::application_state`) first, then by the database's
/// trigger: a decision that already took effect is refused and changes nothing.
pub async fn transition<C: GenericClient>(
    tx: &C,
    scope: &AppScope<'_>,
    id: Uuid,
    to: Status,
    actor: &str,
    note: Option<&str>,
) -> Result<ApplicationSummary, StoreError> {
    let (applicant, agency) = scope.params();
    let current: String = tx
        .query_opt(
            "SELECT a.status FROM licence_applications a
              WHERE a.id = $1 AND ($2::text IS NULL OR a.applicant_id = $2)
                AND ($3::text IS NULL OR a.agency = $3)
              FOR UPDATE",
            &[&id, &applicant, &agency],
        )
        .await?
        .ok_or(StoreError::NotFound)?
        .get(0);
    let from = Status::parse(&current)
        .ok_or_else(|| StoreError::Transition(format!("unknown status {current}")))?;
    if !from.can_become(to) {
        return Err(StoreError::Transition(format!(
            "licence application: transition {} -> {} is not allowed",
            from.as_str(),
            to.as_str()
        )));
    }
    let decided = to.is_decision();
    let reason = if to == Status::Refused { note } else { None };
    let to = to.as_str();
    let sql = format!(
        "UPDATE licence_applications a SET status = $2, updated_at = now(),
                decided_at = CASE WHEN $3 THEN now() ELSE a.decided_at END,
                decision_reason = coalesce($4, a.decision_reason)
          WHERE a.id = $1
          RETURNING {SUMMARY}"
    );
    let row = tx.query_one(&sql, &[&id, &to, &decided, &reason]).await?;
    let s = summary(&row);
    event(tx, id, to, actor, note).await?;
    audit::append(
        tx,
        actor,
        &format!("licence_application.{to}"),
        &s.reference,
        &serde_json::json!({"id": id, "note": note}),
    )
    .await?;
    Ok(s)
}

/// The applicant's supplement: recorded, and the application moves to `supplemented`.
pub async fn supplement(
    client: &mut deadpool_postgres::Object,
    id: Uuid,
    applicant: &str,
    note: &str,
) -> Result<ApplicationSummary, StoreError> {
    let tx = client.transaction().await?;
    let s = transition(
        &tx,
        &AppScope::Applicant(applicant),
        id,
        Status::Supplemented,
        applicant,
        Some("supplement sent"),
    )
    .await?;
    tx.execute(
        "INSERT INTO licence_supplements (id, application_id, note, at) VALUES ($1, $2, $3, now())",
        &[&Uuid::now_v7(), &id, &note],
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

/// The stored application an agency is about to issue a licence for, locked until the end of
/// the caller's transaction.
pub async fn application_for_issue(
    tx: &Transaction<'_>,
    id: Uuid,
    agency: &str,
) -> Result<(ApplicationSummary, Application), StoreError> {
    let sql = format!(
        "SELECT {SUMMARY}, {DETAILS} FROM licence_applications a
          WHERE a.id = $1 AND a.agency = $2 FOR UPDATE OF a"
    );
    let row = tx
        .query_opt(&sql, &[&id, &agency])
        .await?
        .ok_or(StoreError::NotFound)?;
    let app: Application = serde_json::from_value(row.get(16))
        .map_err(|e| StoreError::Conflict(format!("stored application unreadable: {e}")))?;
    Ok((summary(&row), app))
}

/// The next licence number of an agency, e.g. `MOIT-2026-000042`.
pub async fn next_licence_number(tx: &Transaction<'_>, agency: &str) -> Result<String, StoreError> {
    Ok(tx
        .query_one(
            "SELECT $1 || '-' || to_char(now() AT TIME ZONE 'UTC', 'YYYY') || '-'
                    || lpad(nextval('licence_number_seq')::text, 6, '0')",
            &[&agency],
        )
        .await?
        .get(0))
}

pub struct NewLicence<'a> {
    pub licence: &'a Licence,
    pub body: &'a [u8],
    pub signature: &'a [u8],
    pub actor: &'a str,
    /// The application it answers (issued through the window), or none (deposited).
    pub application_id: Option<Uuid>,
}

async fn insert_licence(tx: &Transaction<'_>, n: &NewLicence<'_>) -> Result<Uuid, StoreError> {
    let l = n.licence;
    let id = Uuid::now_v7();
    let document_id = Uuid::now_v7();
    let sha: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(n.body)).into();
    super::documents::insert(tx, document_id, "licence", &sha, n.body).await?;
    let origin = if n.application_id.is_some() {
        "issued"
    } else {
        "deposited"
    };
    let inserted = tx
        .execute(
            "INSERT INTO licences (id, number, licence_type, agency, holder_id, direction,
                issue_date, valid_from, valid_to, application_id, document_id, signature, origin,
                created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now())
             ON CONFLICT (number) DO NOTHING",
            &[
                &id,
                &l.number,
                &l.licence_type,
                &l.agency,
                &l.holder.id,
                &l.direction,
                &l.issue_date,
                &l.valid_from,
                &l.valid_to,
                &n.application_id,
                &document_id,
                &n.signature,
                &origin,
                &n.actor,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "a licence numbered {} already exists",
            l.number
        )));
    }
    let numbers: Vec<i32> = l.lines.iter().map(|x| x.number).collect();
    let hs: Vec<&str> = l.lines.iter().map(|x| x.hs_code.as_str()).collect();
    let desc: Vec<&str> = l.lines.iter().map(|x| x.description.as_str()).collect();
    let unit: Vec<&str> = l.lines.iter().map(|x| x.unit.as_str()).collect();
    let qty: Vec<Decimal> = l.lines.iter().map(|x| x.quantity).collect();
    tx.execute(
        "INSERT INTO licence_lines (licence_id, line, hs_code, description, unit, allowance,
            remaining)
         SELECT $1, n, h, d, u, q, q FROM unnest($2::int[], $3::text[], $4::text[], $5::text[],
            $6::numeric[]) AS t(n, h, d, u, q)",
        &[&id, &numbers, &hs, &desc, &unit, &qty],
    )
    .await?;
    audit::append(
        tx,
        n.actor,
        &format!("licence.{origin}"),
        &l.number,
        &serde_json::json!({"id": id, "agency": l.agency, "holder": l.holder.id,
            "sha256": hex::encode(sha), "application": n.application_id}),
    )
    .await?;
    Ok(id)
}

/// Issues a licence for an application inside the caller's transaction: stores the signed
/// document and its balances and moves the application to `issued`. Work that must commit
/// with the issuance (an e-Form D for a certificate of origin) joins the same transaction.
pub async fn issue_licence(
    tx: &Transaction<'_>,
    n: &NewLicence<'_>,
    agency: &str,
) -> Result<ApplicationSummary, StoreError> {
    let app_id = n.application_id.ok_or(StoreError::NotFound)?;
    insert_licence(tx, n).await?;
    let note = format!("licence {} issued", n.licence.number);
    transition(
        tx,
        &AppScope::Agency(agency),
        app_id,
        Status::Issued,
        n.actor,
        Some(&note),
    )
    .await
}

/// Stores a licence an agency issued elsewhere (signature already verified).
pub async fn deposit_licence(
    client: &mut deadpool_postgres::Object,
    n: &NewLicence<'_>,
) -> Result<Uuid, StoreError> {
    let tx = client.transaction().await?;
    let id = insert_licence(&tx, n).await?;
    tx.commit().await?;
    Ok(id)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = LicenceLineBalance)]
pub struct LineBalance {
    pub line: i32,
    pub hs_code: String,
    pub description: String,
    pub unit: String,
    pub allowance: Decimal,
    /// Allowance not yet reserved by any declaration.
    pub remaining: Decimal,
    /// Reserved by accepted declarations that customs has not decided yet.
    pub reserved: Decimal,
    /// Drawn by cleared declarations.
    pub committed: Decimal,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Licence)]
pub struct LicenceView {
    pub number: String,
    pub licence_type: String,
    pub agency: String,
    pub holder_id: String,
    pub direction: String,
    pub issue_date: NaiveDate,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub origin: String,
    pub application_id: Option<Uuid>,
    pub sha256: String,
    pub lines: Vec<LineBalance>,
}

pub async fn get_licence<C: GenericClient>(
    client: &C,
    number: &str,
) -> Result<Option<LicenceView>, StoreError> {
    let Some(r) = client
        .query_opt(
            "SELECT l.id, l.number, l.licence_type, l.agency, l.holder_id, l.direction,
                    l.issue_date, l.valid_from, l.valid_to, l.origin, l.application_id, d.sha256
               FROM licences l JOIN documents d ON d.id = l.document_id WHERE l.number = $1",
            &[&number],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: Uuid = r.get(0);
    let lines = client
        .query(
            "SELECT x.line, x.hs_code, x.description, x.unit, x.allowance, x.remaining,
                    (coalesce(sum(e.quantity) FILTER (WHERE e.kind = 'reserve'), 0)
                     - coalesce(sum(e.quantity) FILTER (WHERE e.kind <> 'reserve'), 0))::numeric(18, 3),
                    coalesce(sum(e.quantity) FILTER (WHERE e.kind = 'commit'), 0)::numeric(18, 3)
               FROM licence_lines x
               LEFT JOIN licence_ledger e ON e.licence_id = x.licence_id AND e.line = x.line
              WHERE x.licence_id = $1
              GROUP BY x.licence_id, x.line ORDER BY x.line",
            &[&id],
        )
        .await?
        .iter()
        .map(|l| LineBalance {
            line: l.get(0),
            hs_code: l.get(1),
            description: l.get(2),
            unit: l.get(3),
            allowance: l.get(4),
            remaining: l.get(5),
            reserved: l.get(6),
            committed: l.get(7),
        })
        .collect();
    let sha: Vec<u8> = r.get(11);
    Ok(Some(LicenceView {
        number: r.get(1),
        licence_type: r.get(2),
        agency: r.get(3),
        holder_id: r.get(4),
        direction: r.get(5),
        issue_date: r.get(6),
        valid_from: r.get(7),
        valid_to: r.get(8),
        origin: r.get(9),
        application_id: r.get(10),
        sha256: hex::encode(sha),
        lines,
    }))
}

/// The licence's exact bytes and its DER signature.
pub async fn licence_document<C: GenericClient>(
    client: &C,
    number: &str,
) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT d.body, l.signature FROM licences l JOIN documents d ON d.id = l.document_id
              WHERE l.number = $1",
            &[&number],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}
