//! The window's payment keys, held like the agencies' signing keys: P-256, made on first use,
//! the private key sealed under the key-encryption key in `agency_keys` under a reserved name
//! (no agency code contains a dot).
//!
//! - [`MERCHANT_KEY`] signs what the window sends the platform; its certificate is what the
//!   platform pins (`<data_dir>/payments/merchant.crt`, written by `nsw serve`, printed by
//!   `nsw payments certificate`).
//! - [`RECEIPT_KEY`] signs e-receipts (detached CMS); its certificate is served at
//!   `GET /api/v1/payments/receipt-certificate`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use deadpool_postgres::{GenericClient, Pool};

use crate::config::Settings;
use crate::licensing::signing::{self, KeyPair};
use crate::workflow::WorkflowError;

/// The reserved name of the merchant key.
pub const MERCHANT_KEY: &str = "payments.merchant";
/// The reserved name of the e-receipt signing key.
pub const RECEIPT_KEY: &str = "payments.receipts";

/// The merchant key (private key and certificate, PEM), made and stored on first use.
pub async fn merchant_key(pool: &Pool, settings: &Settings) -> Result<KeyPair, WorkflowError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let name = format!("{} payments", settings.merchant_id());
    let country = settings.country.clone();
    let key = signing::window_key(&tx, MERCHANT_KEY, settings, || {
        super::protocol::generate(&name, &country)
            .map(|(private_key_pem, certificate)| KeyPair {
                private_key_pem,
                certificate_pem: String::from_utf8_lossy(&certificate).into_owned(),
            })
            .map_err(|e| e.to_string())
    })
    .await?;
    tx.commit().await?;
    Ok(key)
}

/// The merchant certificate (PEM): what the platform pins.
pub async fn merchant_certificate(
    pool: &Pool,
    settings: &Settings,
) -> Result<Vec<u8>, WorkflowError> {
    Ok(merchant_key(pool, settings)
        .await?
        .certificate_pem
        .into_bytes())
}

/// Where `nsw serve` writes the merchant certificate: `<data_dir>/payments/merchant.crt`.
pub fn certificate_path(settings: &Settings) -> PathBuf {
    settings.data_dir.join("payments").join("merchant.crt")
}

/// Writes the merchant certificate (public, mode 0644) where the platform may read it; the
/// file is replaced whole, never seen half-written. Returns its path.
pub async fn publish_certificate(
    pool: &Pool,
    settings: &Settings,
) -> Result<PathBuf, WorkflowError> {
    let pem = merchant_certificate(pool, settings).await?;
    let path = certificate_path(settings);
    let target = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = target.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&pem)?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &target)
    })
    .await
    .map_err(|e| WorkflowError::Internal(e.to_string()))?
    .map_err(|e| WorkflowError::Internal(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// The e-receipt signing key, made and stored on first use inside the caller's transaction.
pub async fn receipt_key<C: GenericClient>(
    tx: &C,
    settings: &Settings,
) -> Result<KeyPair, WorkflowError> {
    let name = format!("{} single window e-receipts", settings.country);
    let country = settings.country.clone();
    signing::window_key(tx, RECEIPT_KEY, settings, || {
        signing::generate_named(&name, &country).map_err(|e| e.to_string())
    })
    .await
}

/// The e-receipt certificate (PEM), made with its key on first use.
pub async fn receipt_certificate(
    pool: &Pool,
    settings: &Settings,
) -> Result<String, WorkflowError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let key = receipt_key(&tx, settings).await?;
    tx.commit().await?;
    Ok(key.certificate_pem)
}
