//! What the officers' pages of the portal read: an agency's inbox with each application's
//! status history (for its time limit), the stored application document, the agency's
//! licences with their balances, customs' list of declarations with a search, a declaration's
//! items with the licences they drew on and the agencies they were held to, and the business
//! responses sent back for a partner's document. Read-only; every query is scoped in SQL.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::StoreError;

/// The statuses of an application awaiting its agency (the inbox's default).
pub const PENDING: [&str; 4] = [
    "received",
    "supplement_requested",
    "supplemented",
    "under_review",
];

/// One row of an agency's inbox.
#[derive(Debug)]
pub struct InboxRow {
    pub id: Uuid,
    pub reference: String,
    pub applicant_id: String,
    pub applicant_name: String,
    pub application_type: String,
    pub procedure_code: String,
    pub status: String,
    pub sla_minutes: i32,
    pub received_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Status history (status, at), oldest first: the pauses of the time limit.
    pub events: Vec<(String, DateTime<Utc>)>,
}

/// `agency`'s applications in `status` (or awaiting a decision when `None`), oldest first.
pub async fn inbox<C: GenericClient>(
    client: &C,
    agency: &str,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<InboxRow>, StoreError> {
    let pending: Vec<&str> = PENDING.to_vec();
    let rows = client
        .query(
            "SELECT a.id, a.reference, a.applicant_id,
                    coalesce(a.details #>> '{applicant,name}', a.applicant_id),
                    a.application_type, a.procedure_code, a.status, a.sla_minutes,
                    a.received_at, a.decided_at,
                    coalesce(array_agg(e.status ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}'),
                    coalesce(array_agg(e.at ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}')
               FROM licence_applications a
               LEFT JOIN dossier_events e ON e.dossier_id = a.id
              WHERE a.agency = $1
                AND (($2::text IS NULL AND a.status = ANY($3)) OR a.status = $2)
              GROUP BY a.id
              ORDER BY a.received_at, a.id
              LIMIT $4",
            &[&agency, &status, &pending, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let statuses: Vec<String> = r.get(10);
            let ats: Vec<DateTime<Utc>> = r.get(11);
            InboxRow {
                id: r.get(0),
                reference: r.get(1),
                applicant_id: r.get(2),
                applicant_name: r.get(3),
                application_type: r.get(4),
                procedure_code: r.get(5),
                status: r.get(6),
                sla_minutes: r.get(7),
                received_at: r.get(8),
                decided_at: r.get(9),
                events: statuses.into_iter().zip(ats).collect(),
            }
        })
        .collect())
}

/// The exact bytes of the document an application was made with, if it was routed to
/// `agency`.
pub async fn application_document<C: GenericClient>(
    client: &C,
    agency: &str,
    id: Uuid,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT d.body FROM licence_applications a JOIN documents d ON d.id = a.document_id
              WHERE a.id = $1 AND a.agency = $2",
            &[&id, &agency],
        )
        .await?
        .map(|r| r.get(0)))
}

/// One line of a licence with its balance.
#[derive(Debug)]
pub struct LicenceLine {
    pub line: i32,
    pub hs_code: String,
    pub unit: String,
    pub allowance: Decimal,
    pub remaining: Decimal,
}

/// A licence of an agency, as its list shows it.
#[derive(Debug)]
pub struct LicenceRow {
    pub number: String,
    pub licence_type: String,
    pub holder_id: String,
    pub direction: String,
    pub issue_date: NaiveDate,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub origin: String,
    pub lines: Vec<LicenceLine>,
}

/// `agency`'s licences (issued here or deposited), newest first, `limit` from `offset`; with
/// whether there are more.
pub async fn agency_licences<C: GenericClient>(
    client: &C,
    agency: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<LicenceRow>, bool), StoreError> {
    let rows = client
        .query(
            "SELECT l.number, l.licence_type, l.holder_id, l.direction, l.issue_date,
                    l.valid_from, l.valid_to, l.origin,
                    array_agg(x.line ORDER BY x.line), array_agg(x.hs_code ORDER BY x.line),
                    array_agg(x.unit ORDER BY x.line), array_agg(x.allowance ORDER BY x.line),
                    array_agg(x.remaining ORDER BY x.line)
               FROM licences l JOIN licence_lines x ON x.licence_id = l.id
              WHERE l.agency = $1
              GROUP BY l.id
              ORDER BY l.created_at DESC, l.id DESC
              OFFSET $2 LIMIT $3",
            &[&agency, &offset, &(limit + 1)],
        )
        .await?;
    let mut out: Vec<LicenceRow> = rows
        .iter()
        .map(|r| {
            let lines: Vec<i32> = r.get(8);
            let hs: Vec<String> = r.get(9);
            let units: Vec<String> = r.get(10);
            let allowance: Vec<Decimal> = r.get(11);
            let remaining: Vec<Decimal> = r.get(12);
            LicenceRow {
                number: r.get(0),
                licence_type: r.get(1),
                holder_id: r.get(2),
                direction: r.get(3),
                issue_date: r.get(4),
                valid_from: r.get(5),
                valid_to: r.get(6),
                origin: r.get(7),
                lines: lines
                    .into_iter()
                    .zip(hs)
                    .zip(units)
                    .zip(allowance)
                    .zip(remaining)
                    .map(
                        |((((line, hs_code), unit), allowance), remaining)| LicenceLine {
                            line,
                            hs_code,
                            unit,
                            allowance,
                            remaining,
                        },
                    )
                    .collect(),
            }
        })
        .collect();
    let more = out.len() as i64 > limit;
    out.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((out, more))
}

/// Which declarations customs' list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclarationFilter {
    /// Awaiting a decision: accepted or held for inspection.
    Open,
    /// Accepted, not decided yet.
    Pending,
    /// Held for inspection.
    Held,
    All,
}

impl DeclarationFilter {
    pub const ALL: [DeclarationFilter; 4] = [
        DeclarationFilter::Open,
        DeclarationFilter::Pending,
        DeclarationFilter::Held,
        DeclarationFilter::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeclarationFilter::Open => "open",
            DeclarationFilter::Pending => "pending",
            DeclarationFilter::Held => "held",
            DeclarationFilter::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    fn statuses(self) -> Option<Vec<&'static str>> {
        match self {
            DeclarationFilter::Open => Some(vec!["accepted", "under_inspection"]),
            DeclarationFilter::Pending => Some(vec!["accepted"]),
            DeclarationFilter::Held => Some(vec!["under_inspection"]),
            DeclarationFilter::All => None,
        }
    }
}

#[derive(Debug)]
pub struct DeclarationRow {
    pub id: Uuid,
    pub reference: String,
    pub lrn: String,
    pub declarant_id: String,
    pub direction: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
}

/// Declarations for customs, oldest first, filtered by status and by a part of the window's
/// or the declarant's reference (case-insensitive).
pub async fn customs_declarations<C: GenericClient>(
    client: &C,
    filter: DeclarationFilter,
    search: Option<&str>,
    limit: i64,
) -> Result<Vec<DeclarationRow>, StoreError> {
    let statuses = filter.statuses();
    let pattern = search.map(|s| {
        let escaped = s
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    // With statuses, each walks `declarations_status` from its oldest entry (as the customs
    // inbox does), rather than the whole table in id order past every decided declaration.
    let sql = if statuses.is_some() {
        "SELECT x.id, x.reference, x.lrn, x.declarant_id, x.direction, x.status, x.received_at
           FROM declarations x
          WHERE x.id IN (SELECT y.id FROM unnest($1::text[]) s(status)
                           CROSS JOIN LATERAL (
                               SELECT d.id FROM declarations d
                                WHERE d.status = s.status
                                  AND ($2::text IS NULL OR d.reference ILIKE $2 OR d.lrn ILIKE $2)
                                ORDER BY d.id LIMIT $3) y)
          ORDER BY x.id
          LIMIT $3"
    } else {
        "SELECT x.id, x.reference, x.lrn, x.declarant_id, x.direction, x.status, x.received_at
           FROM declarations x
          WHERE $1::text[] IS NULL
            AND ($2::text IS NULL OR x.reference ILIKE $2 OR x.lrn ILIKE $2)
          ORDER BY x.id
          LIMIT $3"
    };
    let rows = client.query(sql, &[&statuses, &pattern, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| DeclarationRow {
            id: r.get(0),
            reference: r.get(1),
            lrn: r.get(2),
            declarant_id: r.get(3),
            direction: r.get(4),
            status: r.get(5),
            received_at: r.get(6),
        })
        .collect())
}

/// A licence line an item drew on, and where the draw stands.
#[derive(Debug)]
pub struct Draw {
    pub licence_number: String,
    pub line: i32,
    pub quantity: Decimal,
    /// `reserved`, `committed` or `released`.
    pub state: &'static str,
}

/// An agency and procedure an item was held to.
#[derive(Debug)]
pub struct Requirement {
    pub agency: String,
    pub procedure_code: String,
    pub document_type: String,
}

#[derive(Debug)]
pub struct ItemRow {
    pub line: i32,
    pub hs_code: String,
    pub description: String,
    pub origin: String,
    pub quantity: Decimal,
    pub unit: String,
    pub customs_value: Decimal,
    pub draws: Vec<Draw>,
    pub requirements: Vec<Requirement>,
}

/// The items of declaration `id` with the licences each drew on (ledger) and the agencies it
/// was held to (routing recorded at acceptance).
pub async fn declaration_items<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Vec<ItemRow>, StoreError> {
    let items = client
        .query(
            "SELECT line, hs_code, description, origin, quantity, unit, customs_value
               FROM declaration_items WHERE declaration_id = $1 ORDER BY line",
            &[&id],
        )
        .await?;
    let draws = client
        .query(
            "SELECT e.item, l.number, e.line, e.quantity,
                    bool_or(e.kind = 'commit'), bool_or(e.kind = 'release')
               FROM licence_ledger e JOIN licences l ON l.id = e.licence_id
              WHERE e.declaration_id = $1
              GROUP BY e.item, l.number, e.line, e.quantity
              ORDER BY e.item, l.number, e.line",
            &[&id],
        )
        .await?;
    let routing = client
        .query(
            "SELECT item, agency, procedure_code, document_type FROM declaration_routing
              WHERE declaration_id = $1 ORDER BY item, agency",
            &[&id],
        )
        .await?;
    Ok(items
        .iter()
        .map(|r| {
            let line: i32 = r.get(0);
            ItemRow {
                line,
                hs_code: r.get(1),
                description: r.get(2),
                origin: r.get(3),
                quantity: r.get(4),
                unit: r.get(5),
                customs_value: r.get(6),
                draws: draws
                    .iter()
                    .filter(|d| d.get::<_, i32>(0) == line)
                    .map(|d| Draw {
                        licence_number: d.get(1),
                        line: d.get(2),
                        quantity: d.get(3),
                        state: if d.get::<_, bool>(4) {
                            "committed"
                        } else if d.get::<_, bool>(5) {
                            "released"
                        } else {
                            "reserved"
                        },
                    })
                    .collect(),
                requirements: routing
                    .iter()
                    .filter(|x| x.get::<_, i32>(0) == line)
                    .map(|x| Requirement {
                        agency: x.get(1),
                        procedure_code: x.get(2),
                        document_type: x.get(3),
                    })
                    .collect(),
            }
        })
        .collect())
}

/// A business response this window sent back for a partner's document.
#[derive(Debug)]
pub struct SentResponse {
    pub message_id: Uuid,
    pub reference: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The envelope as stored (the decision is read from it).
    pub envelope: Vec<u8>,
}

/// The business responses sent to `partner` in answer to its document `reference`, oldest
/// first.
pub async fn responses_sent<C: GenericClient>(
    client: &C,
    partner: &str,
    reference: &str,
) -> Result<Vec<SentResponse>, StoreError> {
    Ok(client
        .query(
            "SELECT message_id, reference, status, created_at, delivered_at, envelope
               FROM outbox
              WHERE receiver = $1 AND previous_reference = $2
                AND document_type = 'BUSINESS_RESPONSE'
              ORDER BY id",
            &[&partner, &reference],
        )
        .await?
        .iter()
        .map(|r| SentResponse {
            message_id: r.get(0),
            reference: r.get(1),
            status: r.get(2),
            created_at: r.get(3),
            delivered_at: r.get(4),
            envelope: r.get(5),
        })
        .collect())
}
