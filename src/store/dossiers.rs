//! An enterprise's own dossiers as the portal lists them: declarations and licence
//! applications with a status filter, a search by reference and numbered pages (with the total),
//! the items of a declaration with the licence lines each drew on, the licences a party holds
//! with their balances, and its certificates of origin. Every query is scoped in SQL to the
//! party, as the API's queries are.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::StoreError;

/// A `LIKE` pattern matching `text` anywhere (its own `%`, `_` and `\` taken literally);
/// `None` for an empty search.
pub(crate) fn contains_pattern(text: Option<&str>) -> Option<String> {
    let t = text.map(str::trim).filter(|t| !t.is_empty())?;
    let mut p = String::with_capacity(t.len() + 2);
    p.push('%');
    for ch in t.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    Some(p)
}

/// One page of a list, with the number of rows all pages hold.
#[derive(Debug)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A declaration as the trader's list shows it.
#[derive(Debug)]
pub struct DeclarationRow {
    pub id: Uuid,
    pub reference: String,
    pub lrn: String,
    pub direction: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
}

/// The declarations `party` declared or trades in (importer of an import, exporter of an
/// export), newest first; `status` and `search` (a piece of the window's reference or of the
/// declarant's, any case) narrow them.
pub async fn declarations<C: GenericClient>(
    client: &C,
    party: &str,
    status: Option<&str>,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Listed<DeclarationRow>, StoreError> {
    let pattern = contains_pattern(search);
    let stmt = client
        .prepare_cached(
            "SELECT x.id, x.reference, x.lrn, x.direction, x.status, x.received_at,
                    count(*) OVER ()
               FROM declarations x
              WHERE (x.submitter = $1 OR x.trader_id = $1 OR x.declarant_id = $1)
                AND ($2::text IS NULL OR x.status = $2)
                AND ($3::text IS NULL OR x.reference ILIKE $3 OR x.lrn ILIKE $3)
              ORDER BY x.id DESC OFFSET $4 LIMIT $5",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&party, &status, &pattern, &offset, &limit])
        .await?;
    let total = match rows.first() {
        Some(r) => r.get(6),
        // past the last page (or nothing at all): count what there is
        None if offset > 0 => client
            .query_one(
                "SELECT count(*) FROM declarations x
                      WHERE (x.submitter = $1 OR x.trader_id = $1 OR x.declarant_id = $1)
                        AND ($2::text IS NULL OR x.status = $2)
                        AND ($3::text IS NULL OR x.reference ILIKE $3 OR x.lrn ILIKE $3)",
                &[&party, &status, &pattern],
            )
            .await?
            .get(0),
        None => 0,
    };
    Ok(Listed {
        items: rows
            .iter()
            .map(|r| DeclarationRow {
                id: r.get(0),
                reference: r.get(1),
                lrn: r.get(2),
                direction: r.get(3),
                status: r.get(4),
                received_at: r.get(5),
            })
            .collect(),
        total,
    })
}

/// What a declaration's page shows beyond `declarations::Summary`.
#[derive(Debug)]
pub struct DeclarationFacts {
    pub exporter_id: String,
    pub importer_id: String,
    pub customs_office: String,
    pub issue_date: NaiveDate,
    pub total_gross_mass: Decimal,
}

/// A licence line an item drew on (reserved when the declaration was accepted).
#[derive(Debug)]
pub struct Drawing {
    pub licence_number: String,
    pub licence_line: i32,
    pub quantity: Decimal,
}

#[derive(Debug)]
pub struct Item {
    pub line: i32,
    pub hs_code: String,
    pub description: String,
    pub origin: String,
    pub quantity: Decimal,
    pub unit: String,
    pub customs_value: Decimal,
    pub drawings: Vec<Drawing>,
}

/// The facts and items of declaration `id`, which the caller has already found visible to the
/// party (`declarations::get` with its scope).
pub async fn declaration_items<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Option<(DeclarationFacts, Vec<Item>)>, StoreError> {
    let Some(f) = client
        .query_opt(
            "SELECT exporter_id, importer_id, customs_office, issue_date, total_gross_mass
               FROM declarations WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let facts = DeclarationFacts {
        exporter_id: f.get(0),
        importer_id: f.get(1),
        customs_office: f.get(2),
        issue_date: f.get(3),
        total_gross_mass: f.get(4),
    };
    let drawings = client
        .query(
            "SELECT e.item, l.number, e.line, e.quantity
               FROM licence_ledger e JOIN licences l ON l.id = e.licence_id
              WHERE e.declaration_id = $1 AND e.kind = 'reserve'
              ORDER BY e.item, l.number, e.line",
            &[&id],
        )
        .await?;
    let items = client
        .query(
            "SELECT line, hs_code, description, origin, quantity, unit, customs_value
               FROM declaration_items WHERE declaration_id = $1 ORDER BY line",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            let line: i32 = r.get(0);
            Item {
                line,
                hs_code: r.get(1),
                description: r.get(2),
                origin: r.get::<_, String>(3).trim().to_owned(),
                quantity: r.get(4),
                unit: r.get(5),
                customs_value: r.get(6),
                drawings: drawings
                    .iter()
                    .filter(|d| d.get::<_, i32>(0) == line)
                    .map(|d| Drawing {
                        licence_number: d.get(1),
                        licence_line: d.get(2),
                        quantity: d.get(3),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Some((facts, items)))
}

/// A licence application (or application for a certificate of origin) as the list shows it.
#[derive(Debug)]
pub struct ApplicationRow {
    pub id: Uuid,
    pub reference: String,
    pub lrn: String,
    pub application_type: String,
    pub agency: String,
    pub procedure_code: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
    pub fee_vnd: i64,
    pub sla_minutes: i32,
}

/// The applications of `applicant`, newest first; `status` and `search` (a piece of the
/// window's reference or of the applicant's own) narrow them.
pub async fn applications<C: GenericClient>(
    client: &C,
    applicant: &str,
    status: Option<&str>,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Listed<ApplicationRow>, StoreError> {
    let pattern = contains_pattern(search);
    let stmt = client
        .prepare_cached(
            "SELECT a.id, a.reference, a.lrn, a.application_type, a.agency, a.procedure_code,
                    a.status, a.received_at, a.fee_vnd, a.sla_minutes, count(*) OVER ()
               FROM licence_applications a
              WHERE a.applicant_id = $1
                AND ($2::text IS NULL OR a.status = $2)
                AND ($3::text IS NULL OR a.reference ILIKE $3 OR a.lrn ILIKE $3)
              ORDER BY a.id DESC OFFSET $4 LIMIT $5",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&applicant, &status, &pattern, &offset, &limit])
        .await?;
    let total = match rows.first() {
        Some(r) => r.get(10),
        None if offset > 0 => client
            .query_one(
                "SELECT count(*) FROM licence_applications a
                      WHERE a.applicant_id = $1
                        AND ($2::text IS NULL OR a.status = $2)
                        AND ($3::text IS NULL OR a.reference ILIKE $3 OR a.lrn ILIKE $3)",
                &[&applicant, &status, &pattern],
            )
            .await?
            .get(0),
        None => 0,
    };
    Ok(Listed {
        items: rows
            .iter()
            .map(|r| ApplicationRow {
                id: r.get(0),
                reference: r.get(1),
                lrn: r.get(2),
                application_type: r.get(3),
                agency: r.get(4),
                procedure_code: r.get(5),
                status: r.get(6),
                received_at: r.get(7),
                fee_vnd: r.get(8),
                sla_minutes: r.get(9),
            })
            .collect(),
        total,
    })
}

/// The document an application was made with (its kind and exact bytes), if `applicant` made it.
pub async fn application_document<C: GenericClient>(
    client: &C,
    applicant: &str,
    id: Uuid,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT d.kind, d.body FROM licence_applications a
               JOIN documents d ON d.id = a.document_id
              WHERE a.id = $1 AND a.applicant_id = $2",
            &[&id, &applicant],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// The certificate of origin issued on an application of `applicant`, if any.
pub async fn certificate_of_application<C: GenericClient>(
    client: &C,
    applicant: &str,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT reference FROM certificates_of_origin
              WHERE application_id = $1 AND exporter_id = $2",
            &[&id, &applicant],
        )
        .await?
        .map(|r| r.get(0)))
}

/// A line of a held licence with its balance.
#[derive(Debug)]
pub struct BalanceRow {
    pub line: i32,
    pub hs_code: String,
    pub unit: String,
    pub allowance: Decimal,
    pub remaining: Decimal,
}

#[derive(Debug)]
pub struct HeldLicence {
    pub number: String,
    pub licence_type: String,
    pub agency: String,
    pub direction: String,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub lines: Vec<BalanceRow>,
}

/// The licences `holder` holds (issued through the window or deposited), newest first, each
/// with its lines' allowance and what remains of it.
pub async fn licences_held<C: GenericClient>(
    client: &C,
    holder: &str,
) -> Result<Vec<HeldLicence>, StoreError> {
    let rows = client
        .query(
            "SELECT l.number, l.licence_type, l.agency, l.direction, l.valid_from, l.valid_to,
                    x.line, x.hs_code, x.unit, x.allowance, x.remaining
               FROM licences l JOIN licence_lines x ON x.licence_id = l.id
              WHERE l.holder_id = $1
              ORDER BY l.created_at DESC, l.number, x.line",
            &[&holder],
        )
        .await?;
    let mut out: Vec<HeldLicence> = Vec::new();
    for r in &rows {
        let number: String = r.get(0);
        if out.last().is_none_or(|l| l.number != number) {
            out.push(HeldLicence {
                number,
                licence_type: r.get(1),
                agency: r.get(2),
                direction: r.get(3),
                valid_from: r.get(4),
                valid_to: r.get(5),
                lines: Vec::new(),
            });
        }
        if let Some(l) = out.last_mut() {
            l.lines.push(BalanceRow {
                line: r.get(6),
                hs_code: r.get(7),
                unit: r.get(8),
                allowance: r.get(9),
                remaining: r.get(10),
            });
        }
    }
    Ok(out)
}

/// A certificate of origin as the exporter's list shows it.
#[derive(Debug)]
pub struct CertificateRow {
    pub reference: String,
    pub application_id: Uuid,
    pub agency: String,
    pub export_country: String,
    pub import_country: String,
    pub issue_date: NaiveDate,
}

/// The certificates of origin issued to `exporter`, newest first.
pub async fn certificates_held<C: GenericClient>(
    client: &C,
    exporter: &str,
) -> Result<Vec<CertificateRow>, StoreError> {
    Ok(client
        .query(
            "SELECT reference, application_id, agency, export_country, import_country, issue_date
               FROM certificates_of_origin WHERE exporter_id = $1 ORDER BY id DESC",
            &[&exporter],
        )
        .await?
        .iter()
        .map(|r| CertificateRow {
            reference: r.get(0),
            application_id: r.get(1),
            agency: r.get(2),
            export_country: r.get::<_, String>(3).trim().to_owned(),
            import_country: r.get::<_, String>(4).trim().to_owned(),
            issue_date: r.get(5),
        })
        .collect())
}
