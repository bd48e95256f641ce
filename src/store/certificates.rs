//! Certificates of origin issued through the window: the signed document, the application it
//! answers and the e-Form D message that left with it. Written only inside the issuing
//! transaction (see `licensing::certificates::issue`).

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{audit, StoreError};

/// The exporter's Form D as applied for, byte for byte.
pub async fn draft(tx: &Transaction<'_>, application_id: Uuid) -> Result<Vec<u8>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT d.body FROM licence_applications a JOIN documents d ON d.id = a.document_id
              WHERE a.id = $1",
            &[&application_id],
        )
        .await?
        .ok_or(StoreError::NotFound)?
        .get(0))
}

/// The next certificate reference, e.g. `VN-SG-26-0000042` (exporting and importing country,
/// year, serial), in the shape of the references printed on paper Form Ds.
pub async fn next_reference(
    tx: &Transaction<'_>,
    export_country: &str,
    import_country: &str,
) -> Result<String, StoreError> {
    Ok(tx
        .query_one(
            "SELECT $1 || '-' || $2 || '-' || to_char(now() AT TIME ZONE 'UTC', 'YY') || '-'
                    || lpad(nextval('certificate_of_origin_seq')::text, 7, '0')",
            &[&export_country, &import_country],
        )
        .await?
        .get(0))
}

pub struct NewCertificate<'a> {
    pub reference: &'a str,
    pub application_id: Uuid,
    pub agency: &'a str,
    pub exporter_id: &'a str,
    pub export_country: &'a str,
    pub import_country: &'a str,
    pub issue_date: NaiveDate,
    pub body: &'a [u8],
    pub signature: &'a [u8],
    pub outbox_message: Option<Uuid>,
    pub actor: &'a str,
}

pub async fn insert(tx: &Transaction<'_>, n: &NewCertificate<'_>) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let document_id = Uuid::now_v7();
    let sha: [u8; 32] = Sha256::digest(n.body).into();
    super::documents::insert(tx, document_id, "certificate-of-origin", &sha, n.body).await?;
    let inserted = tx
        .execute(
            "INSERT INTO certificates_of_origin (id, reference, application_id, agency,
                exporter_id, export_country, import_country, issue_date, document_id, signature,
                outbox_message, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
             ON CONFLICT DO NOTHING",
            &[
                &id,
                &n.reference,
                &n.application_id,
                &n.agency,
                &n.exporter_id,
                &n.export_country,
                &n.import_country,
                &n.issue_date,
                &document_id,
                &n.signature,
                &n.outbox_message,
                &n.actor,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "a certificate of origin {} or one for this application already exists",
            n.reference
        )));
    }
    audit::append(
        tx,
        n.actor,
        "certificate_of_origin.issued",
        n.reference,
        &serde_json::json!({"id": id, "agency": n.agency, "exporter": n.exporter_id,
            "import_country": n.import_country, "application": n.application_id,
            "sha256": hex::encode(sha), "outbox_message": n.outbox_message}),
    )
    .await?;
    Ok(id)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CertificateOfOrigin)]
pub struct Certificate {
    pub reference: String,
    pub application_id: Uuid,
    pub agency: String,
    pub exporter_id: String,
    pub export_country: String,
    pub import_country: String,
    pub issue_date: NaiveDate,
    pub sha256: String,
    /// The e-Form D message sent to the import country's window, if one was.
    pub outbox_message: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Who may see a certificate: its exporter, officers of its agency, or everyone (customs,
/// administrators).
pub enum CertScope<'a> {
    Exporter(&'a str),
    Agency(&'a str),
    All,
}

/// A certificate with its document and signature, if `scope` may see it.
pub async fn get<C: GenericClient>(
    client: &C,
    scope: &CertScope<'_>,
    reference: &str,
) -> Result<Option<(Certificate, Vec<u8>, Vec<u8>)>, StoreError> {
    let (exporter, agency) = match scope {
        CertScope::Exporter(p) => (Some(*p), None),
        CertScope::Agency(a) => (None, Some(*a)),
        CertScope::All => (None, None),
    };
    let row = client
        .query_opt(
            "SELECT c.reference, c.application_id, c.agency, c.exporter_id, c.export_country,
                    c.import_country, c.issue_date, d.sha256, c.outbox_message, c.created_at,
                    d.body, c.signature
               FROM certificates_of_origin c JOIN documents d ON d.id = c.document_id
              WHERE c.reference = $1 AND ($2::text IS NULL OR c.exporter_id = $2)
                AND ($3::text IS NULL OR c.agency = $3)",
            &[&reference, &exporter, &agency],
        )
        .await?;
    Ok(row.map(|r| {
        let sha: Vec<u8> = r.get(7);
        (
            Certificate {
                reference: r.get(0),
                application_id: r.get(1),
                agency: r.get(2),
                exporter_id: r.get(3),
                export_country: r.get::<_, String>(4).trim().to_owned(),
                import_country: r.get::<_, String>(5).trim().to_owned(),
                issue_date: r.get(6),
                sha256: hex::encode(sha),
                outbox_message: r.get(8),
                created_at: r.get(9),
            },
            r.get(10),
            r.get(11),
        )
    }))
}
