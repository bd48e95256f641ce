//! Agency signatures: EC P-256 keys with self-signed X.509 certificates, and detached CMS
//! (PKCS#7, SHA-256) over a document's exact bytes, so `openssl cms -verify -binary` checks it.
//! Verification is the exchange's (`exchange::signature::verify_cms`), with the agency's
//! registered certificates as trust anchors.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509NameBuilder, X509};

use crate::exchange::signature::{self, SignatureError};
pub use crate::exchange::trust::Policy;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// A private key and its certificate, both PEM.
pub struct KeyPair {
    pub private_key_pem: Vec<u8>,
    pub certificate_pem: String,
}

/// The agency's key, made (and stored, inside the caller's transaction) on its first use. A
/// concurrent first use may win: then its key is the agency's key. The private key is stored
/// sealed with the key-encryption key (`secrets.rs`), never in clear.
pub async fn agency_key<C: deadpool_postgres::GenericClient>(
    tx: &C,
    agency: &str,
    settings: &crate::config::Settings,
) -> Result<KeyPair, crate::workflow::WorkflowError> {
    let country = settings.country.clone();
    window_key(tx, agency, settings, || {
        generate(agency, &country).map_err(|e| e.to_string())
    })
    .await
}

/// A signing key the window holds under `name` (an agency's code, or a reserved name such as
/// `payments.merchant`), made by `make` and stored sealed with the key-encryption key, inside
/// the caller's transaction, on its first use; a concurrent first use may win, and then its
/// key is the one. Errors are internal: the window's own keys are not the caller's fault.
pub async fn window_key<C: deadpool_postgres::GenericClient>(
    tx: &C,
    name: &str,
    settings: &crate::config::Settings,
    make: impl FnOnce() -> Result<KeyPair, String>,
) -> Result<KeyPair, crate::workflow::WorkflowError> {
    use crate::store::keys;
    use crate::workflow::WorkflowError;
    let path = crate::secrets::kek_path(settings);
    let kek = tokio::task::spawn_blocking(move || crate::secrets::Kek::load_or_create(&path))
        .await
        .map_err(|e| WorkflowError::Internal(e.to_string()))?
        .map_err(|e| WorkflowError::Internal(e.to_string()))?;
    let opened = |(sealed, certificate_pem): (Vec<u8>, String)| {
        kek.open(name, &sealed)
            .map(|private_key_pem| KeyPair {
                private_key_pem,
                certificate_pem,
            })
            .map_err(|e| WorkflowError::Internal(format!("the key of {name}: {e}")))
    };
    if let Some(k) = keys::agency_key(tx, name).await? {
        return opened(k);
    }
    let fresh = make()
        .map_err(|e| WorkflowError::Internal(format!("cannot create the key of {name}: {e}")))?;
    let sealed = kek
        .seal(name, &fresh.private_key_pem)
        .map_err(|e| WorkflowError::Internal(e.to_string()))?;
    if keys::insert_agency_key(tx, name, &sealed, &fresh.certificate_pem).await? {
        return Ok(fresh);
    }
    keys::agency_key(tx, name)
        .await?
        .map(opened)
        .unwrap_or_else(|| {
            Err(WorkflowError::Internal(format!(
                "the key of {name} vanished"
            )))
        })
}

/// A fresh P-256 key with a self-signed certificate naming the agency, valid for ten years.
pub fn generate(agency: &str, country: &str) -> Result<KeyPair, SignError> {
    generate_named(&format!("{agency} licence signing"), country)
}

/// A fresh P-256 key with a self-signed certificate whose common name is `common_name`
/// (organisation "National Single Window"), valid for ten years.
pub fn generate_named(common_name: &str, country: &str) -> Result<KeyPair, SignError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("C", country)?;
    name.append_entry_by_text("O", "National Single Window")?;
    name.append_entry_by_text("CN", common_name)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(3650)?)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .non_repudiation()
            .key_cert_sign()
            .build()?,
    )?;
    b.sign(&key, MessageDigest::sha256())?;
    let cert = b.build();
    Ok(KeyPair {
        private_key_pem: key.private_key_to_pem_pkcs8()?,
        certificate_pem: String::from_utf8_lossy(&cert.to_pem()?).into_owned(),
    })
}

/// Detached CMS signature (DER) over `content`, exactly as given.
pub fn sign_detached(
    private_key_pem: &[u8],
    certificate_pem: &str,
    content: &[u8],
) -> Result<Vec<u8>, SignError> {
    let key: PKey<Private> = PKey::private_key_from_pem(private_key_pem)?;
    let cert = X509::from_pem(certificate_pem.as_bytes())?;
    let cms = CmsContentInfo::sign(
        Some(&cert),
        Some(&key),
        None,
        Some(content),
        CMSOptions::DETACHED | CMSOptions::BINARY,
    )?;
    Ok(cms.to_der()?)
}

/// Checks a detached CMS signature over `content` with the verification partner messages get
/// (`exchange::signature::verify_cms`): the certificates registered for the agency
/// (`trusted_pem`) are the trust anchors, whether an agency CA or a signing certificate itself;
/// certificates the signature carries serve only as intermediates towards one of them.
pub fn verify_detached(
    signature_der: &[u8],
    content: &[u8],
    trusted_pem: &[String],
    agency: &str,
    policy: &Policy,
) -> Result<X509, SignatureError> {
    // Re-encoded first, so a BER signature (indefinite lengths) is read as its DER form.
    let der = CmsContentInfo::from_der(signature_der)
        .and_then(|cms| cms.to_der())
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let anchors: Vec<X509> = trusted_pem
        .iter()
        .filter_map(|pem| X509::from_pem(pem.as_bytes()).ok())
        .collect();
    let trust = format!("a certificate registered for {agency}");
    let signers = signature::verify_cms(&der, content, &anchors, &trust, policy)?;
    signers.into_iter().next().ok_or(SignatureError::NoSigner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_catches_a_changed_byte() {
        let k = generate("MOIT", "VN").unwrap();
        let doc = b"<Licence>exact bytes</Licence>".to_vec();
        let sig = sign_detached(&k.private_key_pem, &k.certificate_pem, &doc).unwrap();
        let trusted = vec![k.certificate_pem.clone()];
        let p = Policy::default();
        verify_detached(&sig, &doc, &trusted, "MOIT", &p).unwrap();
        let mut tampered = doc.clone();
        tampered[10] ^= 1;
        let err = verify_detached(&sig, &tampered, &trusted, "MOIT", &p).unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID", "{err}");
        let other = generate("MOIT", "VN").unwrap();
        let err = verify_detached(&sig, &doc, &[other.certificate_pem], "MOIT", &p).unwrap_err();
        assert_eq!(err.code(), "CERTIFICATE_UNTRUSTED", "{err}");
    }

    /// An agency's own toolkit signing with SHA-1 (here the openssl command line): the
    /// signature verifies cryptographically, and is refused for its digest.
    #[test]
    fn a_sha1_signature_is_refused_for_its_digest() {
        let k = generate("MOIT", "VN").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.pem"), &k.private_key_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &k.certificate_pem).unwrap();
        std::fs::write(
            dir.path().join("doc.xml"),
            b"<Licence>exact bytes</Licence>",
        )
        .unwrap();
        let sign = |md: &str| {
            let out = std::process::Command::new("openssl")
                .current_dir(dir.path())
                .args(["cms", "-sign", "-binary", "-md", md, "-in", "doc.xml"])
                .args([
                    "-signer", "cert.pem", "-inkey", "key.pem", "-outform", "DER",
                ])
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let trusted = vec![k.certificate_pem.clone()];
        let doc = b"<Licence>exact bytes</Licence>";
        let p = Policy::default();
        verify_detached(&sign("sha256"), doc, &trusted, "MOIT", &p).unwrap();
        let err = verify_detached(&sign("sha1"), doc, &trusted, "MOIT", &p).unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_ALGORITHM", "{err}");
    }
}
