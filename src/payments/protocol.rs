//! The messages between the window (the merchant) and the payment platform, and their
//! signatures. Both sides of the wire use this module: the window's payment workflows and the
//! platform simulator (`nsw paygate`).
//!
//! Every message is a JSON body signed as it travels: the sender signs the exact body bytes with
//! ECDSA P-256 over SHA-256 and sends the DER signature, base64, in [`SIGNATURE_HEADER`], with
//! the SHA-256 fingerprint (hex) of its certificate in [`KEY_HEADER`]. The receiver verifies
//! the bytes it received against the certificate it pinned for the other side before it parses
//! them. A body that does not verify is refused whatever it says.
//!
//! Amounts are whole đồng (VND has no minor unit); [`CURRENCY`] is the only currency.

use base64::Engine;
use chrono::{DateTime, Utc};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

/// The header that carries the signature: base64 of the DER ECDSA signature over SHA-256 of
/// the body's bytes.
pub const SIGNATURE_HEADER: &str = "x-payment-signature";
/// The header that names the signing certificate: its SHA-256 fingerprint, 64 hex digits.
pub const KEY_HEADER: &str = "x-payment-key";
/// The only currency of fees.
pub const CURRENCY: &str = "VND";

/// Why a signed message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("the message is not signed (no {SIGNATURE_HEADER} header)")]
    Unsigned,
    #[error("the signature is not base64 DER: {0}")]
    Malformed(String),
    #[error("the signature does not match the message and the pinned certificate")]
    BadSignature,
    #[error("the message is not the expected JSON: {0}")]
    Body(String),
    #[error("openssl: {0}")]
    Openssl(String),
}

impl From<openssl::error::ErrorStack> for ProtocolError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        ProtocolError::Openssl(e.to_string())
    }
}

/// A party's signing key and certificate.
pub struct Signer {
    key: PKey<Private>,
    certificate: X509,
    fingerprint: String,
}

impl Signer {
    /// From a PEM (PKCS#8) EC P-256 private key and its PEM certificate.
    pub fn from_pem(
        private_key_pem: &[u8],
        certificate_pem: &[u8],
    ) -> Result<Signer, ProtocolError> {
        let key = PKey::private_key_from_pem(private_key_pem)?;
        let certificate = X509::from_pem(certificate_pem)?;
        let fingerprint = hex::encode(certificate.digest(MessageDigest::sha256())?);
        Ok(Signer {
            key,
            certificate,
            fingerprint,
        })
    }

    /// The signature header's value for `body`.
    pub fn sign(&self, body: &[u8]) -> Result<String, ProtocolError> {
        let digest = hash(MessageDigest::sha256(), body)?;
        let ec = self.key.ec_key()?;
        let sig = EcdsaSig::sign(&digest, &ec)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sig.to_der()?))
    }

    /// The certificate's SHA-256 fingerprint, hex: the [`KEY_HEADER`] value.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The certificate, PEM: what the other side pins.
    pub fn certificate_pem(&self) -> Result<Vec<u8>, ProtocolError> {
        Ok(self.certificate.to_pem()?)
    }
}

/// The other side's pinned certificate(s): several during a key rollover.
pub struct Verifier {
    keys: Vec<PKey<Public>>,
}

impl Verifier {
    /// From one or more PEM certificates (concatenated).
    pub fn from_pem(certificates_pem: &[u8]) -> Result<Verifier, ProtocolError> {
        let keys = X509::stack_from_pem(certificates_pem)?
            .iter()
            .map(|c| c.public_key())
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(ProtocolError::Openssl("no certificate in the PEM".into()));
        }
        Ok(Verifier { keys })
    }

    /// Checks `signature` (the [`SIGNATURE_HEADER`] value, `None` when absent) over `body`.
    pub fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<(), ProtocolError> {
        let sig = signature.ok_or(ProtocolError::Unsigned)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(sig.trim())
            .map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        let sig = EcdsaSig::from_der(&der).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        let digest = hash(MessageDigest::sha256(), body)?;
        for key in &self.keys {
            if let Ok(ec) = key.ec_key() {
                if sig.verify(&digest, &ec).unwrap_or(false) {
                    return Ok(());
                }
            }
        }
        Err(ProtocolError::BadSignature)
    }

    /// [`verify`](Self::verify), then parses the body as `T`.
    pub fn open<T: for<'de> Deserialize<'de>>(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<T, ProtocolError> {
        self.verify(body, signature)?;
        serde_json::from_slice(body).map_err(|e| ProtocolError::Body(e.to_string()))
    }
}

/// A new P-256 key and self-signed certificate for `name` (valid ten years), PEM:
/// `(private key, certificate)`.
pub fn generate(name: &str, country: &str) -> Result<(Vec<u8>, Vec<u8>), ProtocolError> {
    let kp = crate::licensing::signing::generate(name, country)
        .map_err(|e| ProtocolError::Openssl(e.to_string()))?;
    Ok((kp.private_key_pem, kp.certificate_pem.into_bytes()))
}

/// Window → platform, `POST /api/orders`: pay `amount` for fee notice `reference`. The
/// platform answers [`Order`]; asked again for the same merchant and reference it answers the
/// order it already has (so a creation whose answer was lost can be repeated), unless the amount
/// differs (409).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub merchant_id: String,
    /// The fee notice's payment reference: unique per merchant, at most 40 characters.
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    /// Shown to the payer on the platform's page.
    pub description: String,
    /// Where the platform sends the payer's browser back (with `?reference=…&result=…`).
    pub return_url: String,
    /// Where the platform POSTs its [`Notification`]s.
    pub notify_url: String,
    /// After this the platform refuses to take the payment.
    pub expires_at: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
}

/// An order's state at the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created, not paid yet.
    Pending,
    Paid,
    /// The payer cancelled on the platform's page.
    Cancelled,
    /// Not paid before `expires_at`.
    Expired,
    /// Paid, then refunded in full.
    Refunded,
}

/// Platform → window: an order, as created or as asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub merchant_id: String,
    pub reference: String,
    /// The platform's id of the order.
    pub order_id: String,
    pub amount: i64,
    pub currency: String,
    pub status: OrderStatus,
    /// The page the payer's browser is sent to.
    pub pay_url: String,
    /// The platform's transaction id, once paid.
    pub transaction_id: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
}

/// Window → platform, `POST /api/orders/query`: the state of the order for `reference` (asked
/// when a notification may have been lost). The platform answers [`Order`], or 404.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusQuery {
    pub merchant_id: String,
    pub reference: String,
    pub requested_at: DateTime<Utc>,
}

/// What a notification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The order was paid (`transaction_id` is the payment).
    Paid,
    /// The payer cancelled the order; nothing was taken.
    Cancelled,
    /// A refund was paid back (`refund_reference` names it).
    Refunded,
}

/// Platform → window, `POST notify_url`: the result of an order or of a refund. Sent until the
/// window answers 2xx; the same notification may therefore arrive more than once, with the same
/// `transaction_id` (and `refund_reference`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per sending (a retry has a new one); for logs only.
    pub notification_id: String,
    pub kind: NotificationKind,
    pub merchant_id: String,
    pub reference: String,
    pub order_id: String,
    /// The platform's transaction: the payment (paid, refunded) or the cancelled order's id.
    pub transaction_id: String,
    pub amount: i64,
    pub currency: String,
    pub refund_reference: Option<String>,
    /// When the payment, cancellation or refund took effect at the platform.
    pub at: DateTime<Utc>,
}

/// Window → platform, `POST /api/refunds`: pay back `amount` of the paid order `reference`.
/// Repeated with the same `refund_reference`, it answers the refund it already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub merchant_id: String,
    pub reference: String,
    pub refund_reference: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
}

/// A refund's state at the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Accepted; a [`Notification`] of kind `refunded` follows.
    Pending,
    Refunded,
}

/// Platform → window: a refund, as accepted or as asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub merchant_id: String,
    pub reference: String,
    pub refund_reference: String,
    pub amount: i64,
    pub currency: String,
    pub status: RefundStatus,
    pub transaction_id: Option<String>,
}

/// An error the platform answers (4xx/5xx), signed like everything else it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformError {
    pub code: String,
    pub message: String,
}

/// One line of the platform's daily settlement file, `GET /api/settlements/{date}.csv`
/// (header line `transaction_id,reference,amount,time,status`; the file is signed in the
/// response header like every other body). `time` is RFC 3339 UTC; `status` is `paid` for a
/// payment and `refunded` for a refund paid back that day (its `transaction_id` is the refund's
/// transaction). A day is the platform's settlement day in the window's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementRow {
    pub transaction_id: String,
    pub reference: String,
    pub amount: i64,
    pub time: DateTime<Utc>,
    pub status: SettlementStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    Paid,
    Refunded,
}

/// Parses a settlement file. Errors name the line (1-based, the header is line 1).
pub fn read_settlement(csv_bytes: &[u8]) -> Result<Vec<SettlementRow>, String> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_bytes);
    let headers = r.headers().map_err(|e| format!("line 1: {e}"))?.clone();
    let expected = ["transaction_id", "reference", "amount", "time", "status"];
    if headers.iter().collect::<Vec<_>>() != expected {
        return Err(format!("line 1: the header must be {}", expected.join(",")));
    }
    let mut rows = Vec::new();
    for (i, rec) in r.deserialize::<SettlementRow>().enumerate() {
        rows.push(rec.map_err(|e| format!("line {}: {e}", i + 2))?);
    }
    Ok(rows)
}

/// Writes a settlement file (the platform's side).
pub fn write_settlement(rows: &[SettlementRow]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(true)
        .from_writer(Vec::new());
    for row in rows {
        // Serialising plain strings and numbers into memory cannot fail.
        let _ = w.serialize(row);
    }
    if rows.is_empty() {
        let _ = w.write_record(["transaction_id", "reference", "amount", "time", "status"]);
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Signer, Verifier) {
        let (key, cert) = generate("test", "VN").unwrap();
        (
            Signer::from_pem(&key, &cert).unwrap(),
            Verifier::from_pem(&cert).unwrap(),
        )
    }

    #[test]
    fn signed_bodies_verify_and_any_change_is_refused() {
        let (signer, verifier) = pair();
        let body = br#"{"reference":"FEE-1","amount":150000}"#;
        let sig = signer.sign(body).unwrap();
        assert_eq!(verifier.verify(body, Some(&sig)), Ok(()));
        let changed = br#"{"reference":"FEE-1","amount":150001}"#;
        assert_eq!(
            verifier.verify(changed, Some(&sig)),
            Err(ProtocolError::BadSignature)
        );
        assert_eq!(verifier.verify(body, None), Err(ProtocolError::Unsigned));
        assert!(matches!(
            verifier.verify(body, Some("not base64!")),
            Err(ProtocolError::Malformed(_))
        ));
        // Another key's signature over the same bytes is refused.
        let (other, _) = pair();
        assert_eq!(
            verifier.verify(body, Some(&other.sign(body).unwrap())),
            Err(ProtocolError::BadSignature)
        );
        assert_eq!(signer.fingerprint().len(), 64);
    }

    #[test]
    fn settlement_files_round_trip_and_name_the_bad_line() {
        let rows = vec![
            SettlementRow {
                transaction_id: "T1".into(),
                reference: "FEE-1".into(),
                amount: 150_000,
                time: "2026-11-30T03:00:00Z".parse().unwrap(),
                status: SettlementStatus::Paid,
            },
            SettlementRow {
                transaction_id: "R1".into(),
                reference: "FEE-1".into(),
                amount: 150_000,
                time: "2026-11-30T04:00:00Z".parse().unwrap(),
                status: SettlementStatus::Refunded,
            },
        ];
        let bytes = write_settlement(&rows);
        assert!(bytes.starts_with(b"transaction_id,reference,amount,time,status\n"));
        assert_eq!(read_settlement(&bytes).unwrap(), rows);
        assert_eq!(read_settlement(&write_settlement(&[])).unwrap(), vec![]);
        let bad = b"transaction_id,reference,amount,time,status\nT1,FEE-1,abc,2026-11-30T03:00:00Z,paid\n";
        assert!(read_settlement(bad).unwrap_err().starts_with("line 2"));
    }
}
