//! Agency signing keys (made on first use) and the certificates registered for licences an
//! agency issued outside the window.

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use super::{audit, StoreError};

/// The agency's signing key (private key PEM, certificate PEM), if it has one yet.
pub async fn agency_key<C: GenericClient>(
    tx: &C,
    agency: &str,
) -> Result<Option<(Vec<u8>, String)>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT private_key_pem, certificate_pem FROM agency_keys WHERE agency = $1",
            &[&agency],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// Stores a fresh key as the agency's, unless a concurrent first use stored one first;
/// returns whether this one was stored.
pub async fn insert_agency_key<C: GenericClient>(
    tx: &C,
    agency: &str,
    private_key_pem: &[u8],
    certificate_pem: &str,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO agency_keys (agency, private_key_pem, certificate_pem) VALUES ($1, $2, $3)
             ON CONFLICT (agency) DO NOTHING",
            &[&agency, &private_key_pem, &certificate_pem],
        )
        .await?;
    if n == 1 {
        audit::append(
            tx,
            "system",
            "agency.key_created",
            agency,
            &serde_json::json!({"certificate_sha256":
                hex::encode(Sha256::digest(certificate_pem.as_bytes()))}),
        )
        .await?;
    }
    Ok(n == 1)
}

/// The certificate of the window-held key, if the agency has one yet.
pub async fn window_certificate<C: GenericClient>(
    client: &C,
    agency: &str,
) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT certificate_pem FROM agency_keys WHERE agency = $1",
            &[&agency],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Every certificate a deposited licence of `agency` may be signed with.
pub async fn trusted<C: GenericClient>(
    client: &C,
    agency: &str,
) -> Result<Vec<String>, StoreError> {
    let mut certs: Vec<String> = client
        .query(
            "SELECT certificate_pem FROM agency_certificates WHERE agency = $1 ORDER BY id",
            &[&agency],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    certs.extend(window_certificate(client, agency).await?);
    Ok(certs)
}

/// Registers an external certificate (PEM, already parsed by the caller); true when new.
pub async fn register(
    client: &mut deadpool_postgres::Object,
    agency: &str,
    pem: &str,
    actor: &str,
) -> Result<bool, StoreError> {
    let sha = Sha256::digest(pem.as_bytes()).to_vec();
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            "INSERT INTO agency_certificates (agency, certificate_pem, sha256, registered_by)
             VALUES ($1, $2, $3, $4) ON CONFLICT (agency, sha256) DO NOTHING",
            &[&agency, &pem, &sha, &actor],
        )
        .await?;
    if n == 1 {
        audit::append(
            &tx,
            actor,
            "agency.certificate_registered",
            agency,
            &serde_json::json!({"sha256": hex::encode(&sha)}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}
