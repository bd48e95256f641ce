//! What the portal's fee pages read (SQL only): an enterprise's fee notices as a numbered list
//! with a status filter and a search, like its other lists, and the application a payment
//! reference belongs to. Every query is scoped to the applicant in SQL. The notices themselves,
//! their orders, payments and receipts are written by `payments/` through `store::payments`.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::dossiers::{contains_pattern, Listed};
use super::StoreError;

/// A fee notice as the trader's list shows it.
#[derive(Debug)]
pub struct FeeRow {
    /// The payment reference, e.g. `FEE-2026-000001`.
    pub reference: String,
    pub application_id: Uuid,
    pub application_reference: String,
    /// Whole đồng.
    pub amount: i64,
    /// The last day to pay, on the window's calendar.
    pub due_date: NaiveDate,
    /// `due`, `paid`, `cancelled`, `refund_requested` or `refunded`.
    pub status: String,
    pub paid_at: Option<DateTime<Utc>>,
    /// The e-receipt's number, once paid.
    pub receipt: Option<String>,
}

/// `applicant`'s fee notices, newest first; `status` and `search` (a piece of the payment
/// reference or of the application's reference, any case) narrow them.
pub async fn list<C: GenericClient>(
    client: &C,
    applicant: &str,
    status: Option<&str>,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<Listed<FeeRow>, StoreError> {
    let pattern = contains_pattern(search);
    const WHERE: &str = "WHERE n.applicant_id = $1
                AND ($2::text IS NULL OR n.status = $2)
                AND ($3::text IS NULL OR n.reference ILIKE $3 OR a.reference ILIKE $3)";
    let stmt = client
        .prepare_cached(&format!(
            "SELECT n.reference, n.application_id, a.reference, n.amount, n.due_date, n.status,
                    n.paid_at, r.number, count(*) OVER ()
               FROM fee_notices n
               JOIN licence_applications a ON a.id = n.application_id
               LEFT JOIN e_receipts r ON r.notice_id = n.id
             {WHERE}
              ORDER BY n.id DESC OFFSET $4 LIMIT $5"
        ))
        .await?;
    let rows = client
        .query(&stmt, &[&applicant, &status, &pattern, &offset, &limit])
        .await?;
    let total = match rows.first() {
        Some(r) => r.get(8),
        // Past the last page: the count still says how many there are.
        None if offset > 0 => client
            .query_one(
                &format!(
                    "SELECT count(*) FROM fee_notices n
                       JOIN licence_applications a ON a.id = n.application_id {WHERE}"
                ),
                &[&applicant, &status, &pattern],
            )
            .await?
            .get(0),
        None => 0,
    };
    Ok(Listed {
        items: rows
            .iter()
            .map(|r| FeeRow {
                reference: r.get(0),
                application_id: r.get(1),
                application_reference: r.get(2),
                amount: r.get(3),
                due_date: r.get(4),
                status: r.get(5),
                paid_at: r.get(6),
                receipt: r.get(7),
            })
            .collect(),
        total,
    })
}

/// The application whose fee `reference` pays, if `applicant` made it: `reference` is the
/// notice's payment reference or the platform reference of one of its orders (a later order
/// has `<reference>-<n>`, and the platform sends the payer back with that one).
pub async fn application_of_reference<C: GenericClient>(
    client: &C,
    applicant: &str,
    reference: &str,
) -> Result<Option<Uuid>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT n.application_id FROM fee_notices n
              WHERE n.applicant_id = $1
                AND (n.reference = $2
                     OR EXISTS (SELECT 1 FROM payment_orders o
                                 WHERE o.notice_id = n.id AND o.platform_reference = $2))",
            &[&applicant, &reference],
        )
        .await?
        .map(|r| r.get(0)))
}
