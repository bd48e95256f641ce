//! The window's HTTP client to the payment platform: every request signed with the merchant
//! key, every answer (success or error) verified against the platform's pinned certificate
//! before it is read. The certificate file is read when first needed and again whenever it
//! changes, so the window and the platform may start in any order.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use super::protocol::{
    Order, PlatformError, Refund, RefundRequest, Signer, StatusQuery, Verifier, KEY_HEADER,
    SIGNATURE_HEADER,
};
use crate::config::PaymentSettings;

/// Largest answer read from the platform, in bytes.
const ANSWER_LIMIT: usize = 256 * 1024;

/// Why a call to the platform gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The platform's certificate is not there (yet) or unreadable: nothing was sent, since no
    /// answer could be believed.
    #[error("the platform's certificate is not available: {0}")]
    NotConfigured(String),
    /// No answer (connection refused, timeout), or the platform said it cannot now (5xx).
    #[error("the payment platform is unavailable: {0}")]
    Unavailable(String),
    /// The platform does not know what was asked about (404).
    #[error("the payment platform does not know it")]
    NotFound,
    /// A signed refusal (4xx).
    #[error("the payment platform refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer that does not verify against the pinned certificate, or is not the expected
    /// JSON: never believed.
    #[error("the payment platform's answer cannot be trusted: {0}")]
    Untrusted(String),
}

struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    verifier: Arc<Verifier>,
}

/// The platform's pinned certificate(s), re-read when the file changes.
pub struct PlatformTrust {
    path: PathBuf,
    cached: Mutex<Option<Cached>>,
}

impl PlatformTrust {
    pub fn new(path: PathBuf) -> PlatformTrust {
        PlatformTrust {
            path,
            cached: Mutex::new(None),
        }
    }

    /// The verifier of the platform's signatures, from the file as it is now.
    pub fn verifier(&self) -> Result<Arc<Verifier>, String> {
        let meta =
            std::fs::metadata(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let (modified, len) = (meta.modified().ok(), meta.len());
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| "the certificate cache is poisoned".to_owned())?;
        if let Some(c) = cached
            .as_ref()
            .filter(|c| c.modified == modified && c.len == len && modified.is_some())
        {
            return Ok(c.verifier.clone());
        }
        let pem = std::fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let verifier = Arc::new(
            Verifier::from_pem(&pem).map_err(|e| format!("{}: {e}", self.path.display()))?,
        );
        *cached = Some(Cached {
            modified,
            len,
            verifier: verifier.clone(),
        });
        Ok(verifier)
    }
}

/// The platform as the window calls it.
pub struct Platform {
    http: reqwest::Client,
    base: String,
    pub(crate) trust: PlatformTrust,
}

impl Platform {
    pub fn new(s: &PaymentSettings) -> Result<Platform, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.request_timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(s.request_timeout_ms.clamp(1, 5_000)))
            .build()
            .map_err(|e| format!("payment platform client: {e}"))?;
        Ok(Platform {
            http,
            base: s.platform_url.trim_end_matches('/').to_owned(),
            trust: PlatformTrust::new(s.platform_certificate.clone()),
        })
    }

    /// `POST /api/orders`: creates (or, for a reference it knows, returns) the order.
    pub async fn create_order(
        &self,
        signer: &Signer,
        request: &super::protocol::OrderRequest,
    ) -> Result<Order, CallError> {
        self.post(signer, "/api/orders", request).await
    }

    /// `POST /api/orders/query`: the order's state now.
    pub async fn query(&self, signer: &Signer, query: &StatusQuery) -> Result<Order, CallError> {
        self.post(signer, "/api/orders/query", query).await
    }

    /// `POST /api/refunds`: asks for (or, for a refund reference it knows, returns) a refund.
    pub async fn refund(
        &self,
        signer: &Signer,
        request: &RefundRequest,
    ) -> Result<Refund, CallError> {
        self.post(signer, "/api/refunds", request).await
    }

    async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        signer: &Signer,
        path: &str,
        body: &T,
    ) -> Result<R, CallError> {
        let verifier = self.trust.verifier().map_err(CallError::NotConfigured)?;
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Untrusted(e.to_string()))?;
        let signature = signer
            .sign(&bytes)
            .map_err(|e| CallError::Unavailable(format!("signing the request: {e}")))?;
        let url = format!("{}{path}", self.base);
        let span = tracing::info_span!("payments.platform", %url);
        let resp = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(KEY_HEADER, signer.fingerprint())
            .body(bytes)
            .send()
            .instrument(span)
            .await
            .map_err(|e| CallError::Unavailable(crate::error::cause_chain(&e)))?;
        let status = resp.status().as_u16();
        let sig = resp
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = read_limited(resp).await?;
        if status >= 500 {
            // Whatever it says, the platform cannot now: the caller retries later.
            let said = serde_json::from_slice::<PlatformError>(&answer)
                .map(|e| format!("{} {}: {}", status, e.code, e.message))
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(CallError::Unavailable(said));
        }
        if status == 404 {
            return Err(CallError::NotFound);
        }
        if !(200..300).contains(&status) {
            return match verifier.open::<PlatformError>(&answer, sig.as_deref()) {
                Ok(e) => Err(CallError::Refused {
                    status,
                    code: e.code,
                    message: e.message,
                }),
                Err(e) => Err(CallError::Untrusted(format!("HTTP {status}: {e}"))),
            };
        }
        verifier
            .open::<R>(&answer, sig.as_deref())
            .map_err(|e| CallError::Untrusted(e.to_string()))
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| CallError::Unavailable(crate::error::cause_chain(&e)))?
    {
        if out.len() + chunk.len() > ANSWER_LIMIT {
            return Err(CallError::Untrusted(format!(
                "an answer over {ANSWER_LIMIT} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_certificate_is_read_again_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.crt");
        let trust = PlatformTrust::new(path.clone());
        assert!(trust.verifier().is_err(), "no file yet");
        let (key_a, cert_a) = super::super::protocol::generate("a", "VN").unwrap();
        std::fs::write(&path, &cert_a).unwrap();
        let a = Signer::from_pem(&key_a, &cert_a).unwrap();
        let body = b"{}";
        trust
            .verifier()
            .unwrap()
            .verify(body, Some(&a.sign(body).unwrap()))
            .unwrap();
        // A new key (a longer file: the change is seen even within one mtime tick).
        let (key_b, cert_b) = super::super::protocol::generate("platform b", "VN").unwrap();
        let mut both = cert_b.clone();
        both.extend_from_slice(&cert_a);
        std::fs::write(&path, &both).unwrap();
        let b = Signer::from_pem(&key_b, &cert_b).unwrap();
        trust
            .verifier()
            .unwrap()
            .verify(body, Some(&b.sign(body).unwrap()))
            .unwrap();
    }
}
