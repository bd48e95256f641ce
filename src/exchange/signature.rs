//! Detached CMS (PKCS#7) signatures over the exact bytes of a message: SHA-256, ECDSA P-256,
//! the signer's certificate inside. Verification trusts only the one CA pinned for the
//! partner, and then checks that the certificate speaks for the country the message claims.

use openssl::asn1::Asn1Time;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

use super::keys::{self, Identity};

/// Why a signature is not accepted. Each has a stable code for the problem+json answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not a DER-encoded CMS SignedData: {0}")]
    Malformed(String),
    #[error("the signature carries no signer certificate")]
    NoSigner,
    #[error("the signer certificate ({subject}) is outside its validity period ({not_before} to {not_after})")]
    CertificateExpired {
        subject: String,
        not_before: String,
        not_after: String,
    },
    #[error("the signer certificate ({subject}) is not issued by the CA pinned for {country}")]
    Untrusted { subject: String, country: String },
    #[error("the signature does not match the message bytes: {0}")]
    Invalid(String),
    #[error("the signer certificate is for country {cert:?}, but the message is from {claimed}")]
    CountryMismatch {
        cert: Option<String>,
        claimed: String,
    },
    #[error("cannot sign: {0}")]
    Signing(String),
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Malformed(_) => "SIGNATURE_MALFORMED",
            SignatureError::NoSigner => "SIGNATURE_NO_SIGNER",
            SignatureError::CertificateExpired { .. } => "CERTIFICATE_EXPIRED",
            SignatureError::Untrusted { .. } => "CERTIFICATE_UNTRUSTED",
            SignatureError::Invalid(_) => "SIGNATURE_INVALID",
            SignatureError::CountryMismatch { .. } => "SENDER_CERTIFICATE_MISMATCH",
            SignatureError::Signing(_) => "SIGNING_FAILED",
        }
    }
}

/// Signs `data` (detached, binary: the bytes are hashed exactly as given). Returns DER.
pub fn sign(id: &Identity, data: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
    let cms = CmsContentInfo::sign(Some(&id.cert), Some(&id.key), None, Some(data), flags)
        .map_err(|e| SignatureError::Signing(e.to_string()))?;
    cms.to_der()
        .map_err(|e| SignatureError::Signing(e.to_string()))
}

/// Verifies a detached DER signature over `data` against `ca` (the partner's pinned CA) and
/// checks the signer's `C=` is `country`. Returns the signer certificate.
pub fn verify(
    signature: &[u8],
    data: &[u8],
    ca: &X509,
    country: &str,
) -> Result<X509, SignatureError> {
    let p7 = Pkcs7::from_der(signature).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let none = Stack::new().map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let signers = p7
        .signers(&none, Pkcs7Flags::empty())
        .map_err(|_| SignatureError::NoSigner)?;
    let signer = signers
        .iter()
        .next()
        .ok_or(SignatureError::NoSigner)?
        .to_owned();
    let subject = keys::subject_line(&signer);

    // Name the precise reason before handing the chain to CMS_verify, which would only say
    // "certificate verify error".
    let now = Asn1Time::days_from_now(0).map_err(|e| SignatureError::Invalid(e.to_string()))?;
    if signer.not_before() > now || signer.not_after() < now {
        return Err(SignatureError::CertificateExpired {
            subject,
            not_before: signer.not_before().to_string(),
            not_after: signer.not_after().to_string(),
        });
    }
    let issued_by_ca = ca
        .public_key()
        .and_then(|k| signer.verify(&k))
        .unwrap_or(false);
    if !issued_by_ca {
        return Err(SignatureError::Untrusted {
            subject,
            country: country.to_owned(),
        });
    }

    let mut store = X509StoreBuilder::new().map_err(|e| SignatureError::Invalid(e.to_string()))?;
    store
        .add_cert(ca.clone())
        .map_err(|e| SignatureError::Invalid(e.to_string()))?;
    let store = store.build();
    let mut cms = CmsContentInfo::from_der(signature)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    cms.verify(None, Some(&store), Some(data), None, CMSOptions::BINARY)
        .map_err(|e| SignatureError::Invalid(e.to_string()))?;

    let cert_country = keys::subject_country(&signer);
    if cert_country.as_deref() != Some(country) {
        return Err(SignatureError::CountryMismatch {
            cert: cert_country,
            claimed: country.to_owned(),
        });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::keys::{issue, make_ca, Validity};

    fn identity(country: &str) -> (Identity, openssl::pkey::PKey<openssl::pkey::Private>) {
        let (ca, ca_key) = make_ca(country, 30).unwrap();
        let (cert, key) =
            issue(&ca, &ca_key, country, "test", &Validity::days_from_now(30)).unwrap();
        (
            Identity {
                country: country.into(),
                ca,
                cert,
                key,
            },
            ca_key,
        )
    }

    const MSG: &[u8] = b"<?xml version=\"1.0\"?>\n<Envelope xmlns=\"urn:nsw:envelope:1\">\r\n  <Header>\xc3\xa9\t</Header></Envelope>";

    #[test]
    fn a_signature_verifies_and_names_the_signer() {
        let (vn, _) = identity("VN");
        let sig = sign(&vn, MSG).unwrap();
        let signer = verify(&sig, MSG, &vn.ca, "VN").unwrap();
        assert_eq!(keys::subject_country(&signer).as_deref(), Some("VN"));
    }

    #[test]
    fn every_changed_byte_is_caught() {
        let (vn, _) = identity("VN");
        let sig = sign(&vn, MSG).unwrap();
        // Flip one bit of every byte in turn: markup, text, whitespace, CR/LF, UTF-8, tab.
        for i in 0..MSG.len() {
            let mut t = MSG.to_vec();
            t[i] ^= 0x01;
            let err = verify(&sig, &t, &vn.ca, "VN").unwrap_err();
            assert_eq!(err.code(), "SIGNATURE_INVALID", "byte {i}");
        }
        // Truncation, extension, trailing newline.
        for t in [&MSG[..MSG.len() - 1], &[MSG, b"\n"].concat()[..], b""] {
            assert_eq!(
                verify(&sig, t, &vn.ca, "VN").unwrap_err().code(),
                "SIGNATURE_INVALID"
            );
        }
    }

    #[test]
    fn a_damaged_signature_is_refused() {
        let (vn, _) = identity("VN");
        let sig = sign(&vn, MSG).unwrap();
        // The ECDSA value closes the DER (no unsigned attributes follow it). Some other bytes
        // of a CMS structure are not covered by the signature (e.g. the outer digest
        // algorithm list), which is why the message bytes, not the container, are what
        // `every_changed_byte_is_caught` exercises.
        for i in sig.len() - 16..sig.len() {
            let mut s = sig.clone();
            s[i] ^= 0x01;
            assert!(verify(&s, MSG, &vn.ca, "VN").is_err(), "byte {i}");
        }
        assert_eq!(
            verify(b"not der", MSG, &vn.ca, "VN").unwrap_err().code(),
            "SIGNATURE_MALFORMED"
        );
    }

    #[test]
    fn another_ca_is_not_trusted() {
        let (vn, _) = identity("VN");
        let (impostor, _) = identity("VN");
        let sig = sign(&impostor, MSG).unwrap();
        let err = verify(&sig, MSG, &vn.ca, "VN").unwrap_err();
        assert_eq!(err.code(), "CERTIFICATE_UNTRUSTED", "{err}");
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let (vn, ca_key) = identity("VN");
        let now = chrono::Utc::now().timestamp();
        let (cert, key) = issue(
            &vn.ca,
            &ca_key,
            "VN",
            "expired",
            &Validity {
                not_before: now - 20 * 86_400,
                not_after: now - 86_400,
            },
        )
        .unwrap();
        let old = Identity {
            cert,
            key,
            ..vn.clone()
        };
        let sig = sign(&old, MSG).unwrap();
        let err = verify(&sig, MSG, &vn.ca, "VN").unwrap_err();
        assert_eq!(err.code(), "CERTIFICATE_EXPIRED", "{err}");
    }

    #[test]
    fn the_certificate_must_be_the_senders_country() {
        // A CA that issues for another country than the one it is pinned for.
        let (vn, ca_key) = identity("VN");
        let (cert, key) = issue(&vn.ca, &ca_key, "TH", "th", &Validity::days_from_now(5)).unwrap();
        let th = Identity {
            cert,
            key,
            ..vn.clone()
        };
        let sig = sign(&th, MSG).unwrap();
        let err = verify(&sig, MSG, &vn.ca, "VN").unwrap_err();
        assert_eq!(err.code(), "SENDER_CERTIFICATE_MISMATCH", "{err}");
    }

    #[test]
    fn the_openssl_command_line_verifies_our_signature() {
        let dir = tempfile::tempdir().unwrap();
        keys::init(dir.path(), "VN", &[]).unwrap();
        let vn = keys::load(dir.path(), "VN").unwrap();
        let sig = sign(&vn, MSG).unwrap();
        std::fs::write(dir.path().join("msg.xml"), MSG).unwrap();
        std::fs::write(dir.path().join("msg.p7s"), &sig).unwrap();
        let run = |content: &str| {
            std::process::Command::new("openssl")
                .current_dir(dir.path())
                .args([
                    "cms", "-verify", "-binary", "-inform", "DER", "-in", "msg.p7s",
                ])
                .args([
                    "-content",
                    content,
                    "-CAfile",
                    "ca.crt",
                    "-out",
                    "/dev/null",
                ])
                .output()
                .expect("run openssl")
        };
        let ok = run("msg.xml");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let mut t = MSG.to_vec();
        t[10] ^= 1;
        std::fs::write(dir.path().join("tampered.xml"), &t).unwrap();
        assert!(!run("tampered.xml").status.success());
    }
}
