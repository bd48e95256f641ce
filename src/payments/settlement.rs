//! The platform's daily settlement file, as the window gets it: `GET
//! {platform}/api/settlements/{YYYY-MM-DD}.csv?merchant_id=…`, signed by the platform over the
//! file's exact bytes (`x-payment-signature`). The signature is checked against the pinned
//! platform certificate before a byte is parsed: a file that does not verify is refused, never
//! compared.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::protocol::{read_settlement, PlatformError, SettlementRow, Verifier, SIGNATURE_HEADER};

/// Largest settlement file read, in bytes (about 100,000 rows).
pub const FILE_LIMIT: usize = 16 * 1024 * 1024;

/// Why there is no settlement file to compare. Its text is what a failed run records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    /// The platform's certificate is not available: no file could be believed.
    #[error("the platform's certificate is not available: {0}")]
    NoCertificate(String),
    /// No answer, a timeout, or a 5xx.
    #[error("the payment platform is unavailable: {0}")]
    Unavailable(String),
    /// A signed 4xx refusal.
    #[error("the payment platform refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The file (or a refusal) does not verify against the pinned certificate.
    #[error("the settlement file's signature does not verify: {0}")]
    Signature(String),
    #[error("the settlement file is larger than {FILE_LIMIT} bytes")]
    TooLarge,
    /// Verified, but not a settlement file.
    #[error("the settlement file cannot be read: {0}")]
    Unreadable(String),
}

/// A settlement file and what it says.
#[derive(Debug, Clone)]
pub struct File {
    pub bytes: Vec<u8>,
    pub rows: Vec<SettlementRow>,
}

impl File {
    /// Parses a file's bytes (already verified, or given by an operator).
    pub fn parse(bytes: Vec<u8>) -> Result<File, FileError> {
        let rows = read_settlement(&bytes).map_err(FileError::Unreadable)?;
        Ok(File { bytes, rows })
    }
}

/// The platform's answer to a request for a file, not yet believed.
#[derive(Debug, Clone)]
pub struct Download {
    pub status: u16,
    pub bytes: Vec<u8>,
    /// The [`SIGNATURE_HEADER`] value, if any.
    pub signature: Option<String>,
}

impl Download {
    /// SHA-256 of the bytes received.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }

    /// Believes the answer only if it verifies against `verifier`: a 2xx is the file (then
    /// parsed), a 4xx a signed refusal.
    pub fn open(self, verifier: &Verifier) -> Result<File, FileError> {
        let status = self.status;
        if !(200..300).contains(&status) {
            return match verifier.open::<PlatformError>(&self.bytes, self.signature.as_deref()) {
                Ok(e) => Err(FileError::Refused {
                    status,
                    code: e.code,
                    message: e.message,
                }),
                Err(e) => Err(FileError::Signature(format!("HTTP {status}: {e}"))),
            };
        }
        verifier
            .verify(&self.bytes, self.signature.as_deref())
            .map_err(|e| FileError::Signature(e.to_string()))?;
        File::parse(self.bytes)
    }
}

/// Asks the platform at `base` (no trailing slash) for the file of local day `date` for
/// `merchant_id`. No answer, a timeout, a 5xx or an answer over [`FILE_LIMIT`] are errors;
/// anything else is a [`Download`] to [`open`](Download::open).
pub async fn download(
    http: &reqwest::Client,
    base: &str,
    merchant_id: &str,
    date: NaiveDate,
) -> Result<Download, FileError> {
    let url = format!("{base}/api/settlements/{}.csv", date.format("%Y-%m-%d"));
    let span = tracing::info_span!("payments.settlement", %url, %date);
    let mut resp = http
        .get(&url)
        .query(&[("merchant_id", merchant_id)])
        .send()
        .instrument(span.clone())
        .await
        .map_err(|e| FileError::Unavailable(crate::error::cause_chain(&e)))?;
    let status = resp.status().as_u16();
    let signature = resp
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if resp.content_length().is_some_and(|n| n > FILE_LIMIT as u64) {
        return Err(FileError::TooLarge);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .instrument(span.clone())
        .await
        .map_err(|e| FileError::Unavailable(crate::error::cause_chain(&e)))?
    {
        if bytes.len() + chunk.len() > FILE_LIMIT {
            return Err(FileError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    if status >= 500 {
        let said = serde_json::from_slice::<PlatformError>(&bytes)
            .map(|e| format!("HTTP {status} {}: {}", e.code, e.message))
            .unwrap_or_else(|_| format!("HTTP {status}"));
        return Err(FileError::Unavailable(said));
    }
    Ok(Download {
        status,
        bytes,
        signature,
    })
}
