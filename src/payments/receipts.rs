//! E-receipts (`urn:nsw:e-receipt:1`, `schemas/e-receipt/1/e-receipt.xsd`): written with
//! quick-xml from the fee notice and the applied payment, checked against the schema (a
//! generated receipt that fails is a bug, never stored), signed by the window's receipt key
//! with a detached CMS over the exact bytes, and stored byte for byte with the payment that
//! produced it. A receipt is immutable: a later refund is an event of its own.

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::GenericClient;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use uuid::Uuid;

use super::Payments;
use crate::store::payments::{self as store, NoticeRow};
use crate::workflow::WorkflowError;
use crate::xml::DocKind;

/// What an e-receipt says.
pub struct Facts<'a> {
    pub number: &'a str,
    pub issued_at: DateTime<Utc>,
    pub payer_id: &'a str,
    pub payer_name: &'a str,
    pub agency: &'a str,
    pub agency_name: &'a str,
    pub application_reference: &'a str,
    pub procedure: &'a str,
    pub payment_reference: &'a str,
    pub transaction_id: &'a str,
    /// Whole đồng.
    pub amount: i64,
    pub paid_at: DateTime<Utc>,
}

/// At most `n` characters of `s` (the schema's text limits).
fn at_most(s: &str, n: usize) -> String {
    s.trim().chars().take(n).collect()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The e-receipt document, UTF-8, with an XML declaration.
pub fn write(f: &Facts<'_>) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let text = |w: &mut Writer<Vec<u8>>, name: &str, value: &str| {
        w.create_element(name)
            .write_text_content(BytesText::new(value))
            .map(|_| ())
    };
    let written: std::io::Result<()> = (|| {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("EReceipt")
            .with_attribute(("xmlns", "urn:nsw:e-receipt:1"))
            .write_inner_content(|w| {
                text(w, "Number", f.number)?;
                text(w, "IssuedAt", &stamp(f.issued_at))?;
                w.create_element("Payer").write_inner_content(|w| {
                    text(w, "ID", f.payer_id)?;
                    text(w, "Name", &at_most(f.payer_name, 140))
                })?;
                w.create_element("Payee").write_inner_content(|w| {
                    text(w, "AgencyCode", f.agency)?;
                    text(w, "AgencyName", &at_most(f.agency_name, 140))
                })?;
                text(w, "ApplicationReference", f.application_reference)?;
                text(w, "Procedure", f.procedure)?;
                text(w, "PaymentReference", f.payment_reference)?;
                text(w, "PlatformTransactionId", f.transaction_id)?;
                w.create_element("Amount")
                    .with_attribute(("currency", "VND"))
                    .write_text_content(BytesText::new(&f.amount.to_string()))?;
                text(w, "PaidAt", &stamp(f.paid_at))?;
                Ok(())
            })?;
        Ok(())
    })();
    // Writing into a Vec cannot fail.
    debug_assert!(written.is_ok());
    let mut out = w.into_inner();
    out.push(b'\n');
    out
}

/// Issues the e-receipt of `notice`, paid by `payment_id` (platform transaction
/// `transaction_id` at `paid_at`), inside the caller's transaction: number, document, schema
/// check, signature, storage. Returns the receipt's number.
pub async fn issue<C: GenericClient>(
    tx: &C,
    p: &Payments,
    notice: &NoticeRow,
    payment_id: Uuid,
    transaction_id: &str,
    paid_at: DateTime<Utc>,
) -> Result<String, WorkflowError> {
    let number = store::next_receipt_number(tx).await?;
    let issued_at = Utc::now();
    let body = write(&Facts {
        number: &number,
        issued_at,
        payer_id: &notice.applicant_id,
        payer_name: &notice.applicant_name,
        agency: &notice.agency,
        agency_name: &notice.agency_name,
        application_reference: &notice.application_reference,
        procedure: &notice.procedure_code,
        payment_reference: &notice.reference,
        transaction_id,
        amount: notice.amount,
        paid_at,
    });
    match crate::xml::check(&body, &p.settings.limits(), Some(DocKind::EReceipt)) {
        Ok(Ok(_)) => {}
        Ok(Err(refused)) => {
            return Err(WorkflowError::Internal(format!(
                "generated e-receipt {number} is not schema-valid: {:?}",
                refused.violations
            )))
        }
        Err(e) => {
            return Err(WorkflowError::Internal(format!(
                "generated e-receipt {number} is unusable: {e}"
            )))
        }
    }
    let key = super::keys::receipt_key(tx, &p.settings).await?;
    let signature =
        crate::licensing::signing::sign_detached(&key.private_key_pem, &key.certificate_pem, &body)
            .map_err(|e| WorkflowError::Internal(e.to_string()))?;
    store::insert_receipt(
        tx,
        &store::NewReceipt {
            number: &number,
            notice_id: notice.id,
            payment_id,
            body: &body,
            signature: &signature,
            issued_at,
        },
    )
    .await?;
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_is_schema_valid_and_escapes_its_text() {
        crate::xml::schema::preload().unwrap();
        let t: DateTime<Utc> = "2026-11-30T03:04:05Z".parse().unwrap();
        let body = write(&Facts {
            number: "RCPT-2026-000001",
            issued_at: t,
            payer_id: "0312345678",
            payer_name: "Công ty <Lúa & Gạo> Mekong",
            agency: "MARD-PPD",
            agency_name: "Plant Protection Department (Cục Bảo vệ thực vật)",
            application_reference: "VN-LA-2026-000001",
            procedure: "PPD-PQC-IM",
            payment_reference: "FEE-2026-000001",
            transaction_id: "TXN-0195-abc",
            amount: 350_000,
            paid_at: t,
        });
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.contains("<Amount currency=\"VND\">350000</Amount>"),
            "{text}"
        );
        assert!(text.contains("&lt;Lúa &amp; Gạo&gt;"), "{text}");
        let limits = crate::xml::Limits::default();
        assert!(matches!(
            crate::xml::check(&body, &limits, Some(DocKind::EReceipt)),
            Ok(Ok(_))
        ));
    }
}
