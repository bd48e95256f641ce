//! Detached CMS (PKCS#7) signatures over the exact bytes of a message: SHA-256, ECDSA P-256,
//! the signer's certificate inside. [`verify_cms`] is the one verification every signed input
//! goes through (partner messages and receipts here, licences agencies deposit in
//! `licensing::signing`): digest algorithm, chain to the pinned anchors, validity dates and
//! purpose of the signer (the rules are in [`super::trust`]), then the signature over the bytes.
//! [`verify`] adds, for partner windows, that the certificate speaks for the country the
//! message claims.

use openssl::asn1::Asn1Object;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;

use super::keys::{self, Identity};
use super::trust::{self, Policy};

/// Why a signature is not accepted. Each has a stable code for the problem+json answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not a DER-encoded CMS SignedData: {0}")]
    Malformed(String),
    #[error("the signature carries no signer certificate")]
    NoSigner,
    #[error("the signature's digest algorithm is {digest}; only SHA-256 is accepted")]
    Algorithm { digest: String },
    #[error("the certificate ({subject}) has expired (valid {not_before} to {not_after})")]
    CertificateExpired {
        subject: String,
        not_before: String,
        not_after: String,
    },
    #[error("the certificate ({subject}) is not valid before {not_before}, more than {skew_secs} s ahead of this window's clock")]
    CertificateNotYetValid {
        subject: String,
        not_before: String,
        skew_secs: u64,
    },
    #[error("the signer certificate ({subject}) does not chain to {trust}: {reason}")]
    Untrusted {
        subject: String,
        trust: String,
        reason: String,
    },
    #[error("the signer certificate ({subject}) may not sign documents: {reason}")]
    Purpose { subject: String, reason: String },
    #[error("the signature does not match the bytes: {0}")]
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
            SignatureError::Algorithm { .. } => "SIGNATURE_ALGORITHM",
            SignatureError::CertificateExpired { .. } => "CERTIFICATE_EXPIRED",
            SignatureError::CertificateNotYetValid { .. } => "CERTIFICATE_NOT_YET_VALID",
            SignatureError::Untrusted { .. } => "CERTIFICATE_UNTRUSTED",
            SignatureError::Purpose { .. } => "CERTIFICATE_PURPOSE",
            SignatureError::Invalid(_) => "SIGNATURE_INVALID",
            SignatureError::CountryMismatch { .. } => "SENDER_CERTIFICATE_MISMATCH",
            SignatureError::Signing(_) => "SIGNING_FAILED",
        }
    }
}

/// Signs `data` (detached, binary: the bytes are hashed exactly as given), carrying the
/// signer's certificate and the intermediates of its chain. Returns DER.
pub fn sign(id: &Identity, data: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
    let signing = |e: openssl::error::ErrorStack| SignatureError::Signing(e.to_string());
    let mut chain = Stack::new().map_err(signing)?;
    for c in &id.chain {
        chain.push(c.clone()).map_err(signing)?;
    }
    let cms = CmsContentInfo::sign(
        Some(&id.cert),
        Some(&id.key),
        Some(&chain),
        Some(data),
        flags,
    )
    .map_err(signing)?;
    cms.to_der()
        .map_err(|e| SignatureError::Signing(e.to_string()))
}

/// [`verify_with`] under the default policy (five minutes of clock skew).
pub fn verify(
    signature: &[u8],
    data: &[u8],
    ca: &X509,
    country: &str,
) -> Result<X509, SignatureError> {
    verify_with(signature, data, ca, country, &Policy::default())
}

/// Verifies a partner's detached DER signature over `data`: [`verify_cms`] against `ca`
/// (the CA pinned for the partner: its root, or an intermediate), then the signer's `C=`
/// must be `country`. Returns the signer certificate.
pub fn verify_with(
    signature: &[u8],
    data: &[u8],
    ca: &X509,
    country: &str,
    policy: &Policy,
) -> Result<X509, SignatureError> {
    let trust = format!("the CA pinned for {country}");
    let signers = verify_cms(signature, data, std::slice::from_ref(ca), &trust, policy)?;
    for signer in &signers {
        let cert_country = keys::subject_country(signer);
        if cert_country.as_deref() != Some(country) {
            return Err(SignatureError::CountryMismatch {
                cert: cert_country,
                claimed: country.to_owned(),
            });
        }
    }
    signers.into_iter().next().ok_or(SignatureError::NoSigner)
}

/// The verification every detached CMS signature goes through, each failure with its code:
///
/// 1. a DER CMS SignedData with at least one signer → `SIGNATURE_MALFORMED`,
///    `SIGNATURE_NO_SIGNER`;
/// 2. every signer digested with SHA-256 → `SIGNATURE_ALGORITHM`;
/// 3. every signer certificate chains, through the certificates the SignedData carries, to
///    one of `anchors` (named `trust` in the error) → `CERTIFICATE_UNTRUSTED`; every
///    certificate of the chain is within its dates → `CERTIFICATE_EXPIRED`,
///    `CERTIFICATE_NOT_YET_VALID` (see [`trust`]);
/// 4. every signer certificate may sign documents → `CERTIFICATE_PURPOSE`;
/// 5. the signature matches `data`, byte for byte → `SIGNATURE_INVALID`, and only then.
///
/// A signer certificate is looked up among `anchors` first, then among the carried ones, so a
/// signature made without certificates by a pinned certificate verifies too. Returns the
/// signer certificates.
///
/// The usual shape (one signer, carried certificate, signed attributes, ECDSA with SHA-256)
/// is verified by [`super::signed_data::verify`] with the carried certificates decoded once;
/// whatever it does not accept goes through OpenSSL's CMS verification below, which decides.
pub fn verify_cms(
    signature: &[u8],
    data: &[u8],
    anchors: &[X509],
    trust: &str,
    policy: &Policy,
) -> Result<Vec<X509>, SignatureError> {
    if let Some(signer) = super::signed_data::verify(signature, data, anchors, trust, policy) {
        return Ok(vec![signer]);
    }
    verify_cms_openssl(signature, data, anchors, trust, policy)
}

/// [`verify_cms`] through OpenSSL's CMS layer alone: every shape, every error code.
pub(super) fn verify_cms_openssl(
    signature: &[u8],
    data: &[u8],
    anchors: &[X509],
    trust: &str,
    policy: &Policy,
) -> Result<Vec<X509>, SignatureError> {
    let malformed = |e: openssl::error::ErrorStack| SignatureError::Malformed(e.to_string());
    let p7 = Pkcs7::from_der(signature).map_err(malformed)?;
    let mut pinned = Stack::new().map_err(malformed)?;
    for a in anchors {
        pinned.push(a.clone()).map_err(malformed)?;
    }
    let signers: Vec<X509> = p7
        .signers(&pinned, Pkcs7Flags::empty())
        .map_err(|_| SignatureError::NoSigner)?
        .iter()
        .map(|c| c.to_owned())
        .collect();
    if signers.is_empty() {
        return Err(SignatureError::NoSigner);
    }

    let der = p7.to_der().map_err(malformed)?;
    require_sha256(&der)?;

    let carried = trust::carried(p7.signed().and_then(|s| s.certificates()))?;
    for signer in &signers {
        // The chain and purpose of a signer already verified under these anchors, with the
        // same supplied certificates, are remembered while its dates hold (see
        // `trust::verify_signer`); the signature below is checked for every message.
        trust::verify_signer(signer, &carried, anchors, trust, policy)?;
    }

    // The chain and purpose are settled above, each with its own code; CMS_verify would
    // only say "certificate verify error", and would hold the signer to the S/MIME purpose
    // (emailProtection) besides. Here it checks the signature over the bytes alone.
    let mut cms = CmsContentInfo::from_der(signature).map_err(malformed)?;
    cms.verify(
        Some(&pinned),
        None,
        Some(data),
        None,
        CMSOptions::BINARY | CMSOptions::NO_SIGNER_CERT_VERIFY,
    )
    .map_err(|e| SignatureError::Invalid(e.to_string()))?;
    Ok(signers)
}

/// Refuses a DER CMS SignedData unless every signer digested with SHA-256. CMS_verify accepts
/// whatever digest the signer chose, SHA-1 included. The signer's digestAlgorithm is the hash
/// OpenSSL actually computes over the content and the signed attributes (the hash named inside
/// the signatureAlgorithm is not used), so that is the field to pin. Used for partner messages
/// and receipts here, and for licences agencies deposit.
pub fn require_sha256(der: &[u8]) -> Result<(), SignatureError> {
    let digests = signer_digest_oids(der).ok_or_else(|| {
        SignatureError::Malformed("cannot read the signer infos of the SignedData".into())
    })?;
    if digests.is_empty() {
        return Err(SignatureError::NoSigner);
    }
    for oid in digests {
        if oid != SHA256_OID {
            return Err(SignatureError::Algorithm {
                digest: oid_name(oid),
            });
        }
    }
    Ok(())
}

/// Content octets of the DER OID 2.16.840.1.101.3.4.2.1 (id-sha256).
const SHA256_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// Reads one DER element: (tag, content, rest). Definite lengths and single-byte tags, which
/// is all CMS SignedData and certificates use; a length in a longer form than needed is read
/// too, as OpenSSL reads it in certificates (unlike `signed_data::tlv`).
pub(super) fn der_next(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    super::signed_data::element(b, false).map(|e| (e.tag, e.content, e.rest))
}

/// The digestAlgorithm OID (content octets) of every SignerInfo in a DER ContentInfo holding
/// a SignedData (RFC 5652 §5.1, §5.3). `None` if the structure is not that shape.
fn signer_digest_oids(der: &[u8]) -> Option<Vec<&[u8]>> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const CONTEXT_0: u8 = 0xa0;
    const CONTEXT_1: u8 = 0xa1;
    const OID: u8 = 0x06;
    let (SEQUENCE, content_info, _) = der_next(der)? else {
        return None;
    };
    let (OID, _, rest) = der_next(content_info)? else {
        return None;
    };
    let (CONTEXT_0, explicit, _) = der_next(rest)? else {
        return None;
    };
    let (SEQUENCE, signed_data, _) = der_next(explicit)? else {
        return None;
    };
    // version, digestAlgorithms, encapContentInfo, then the optional [0] certificates and
    // [1] crls, then signerInfos.
    let (_, _, rest) = der_next(signed_data)?;
    let (_, _, rest) = der_next(rest)?;
    let (_, _, mut rest) = der_next(rest)?;
    let signer_infos = loop {
        match der_next(rest)? {
            (CONTEXT_0 | CONTEXT_1, _, r) => rest = r,
            (SET, infos, _) => break infos,
            _ => return None,
        }
    };
    let mut oids = Vec::new();
    let mut rest = signer_infos;
    while !rest.is_empty() {
        let (SEQUENCE, info, r) = der_next(rest)? else {
            return None;
        };
        rest = r;
        // version, sid, digestAlgorithm
        let (_, _, i) = der_next(info)?;
        let (_, _, i) = der_next(i)?;
        let (SEQUENCE, algorithm, _) = der_next(i)? else {
            return None;
        };
        let (OID, oid, _) = der_next(algorithm)? else {
            return None;
        };
        oids.push(oid);
    }
    Some(oids)
}

/// A readable name for an OID (a digest, a key purpose) for an error message: OpenSSL's name
/// when it knows the OID, the dotted form otherwise.
pub(super) fn oid_name(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
        if acc > u64::MAX >> 8 {
            return "an unreadable OID".into();
        }
    }
    let Some((&first, tail)) = arcs.split_first() else {
        return "an empty OID".into();
    };
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let dotted = std::iter::once(a)
        .chain(std::iter::once(b))
        .chain(tail.iter().copied())
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(".");
    match Asn1Object::from_str(&dotted).map(|o| o.nid()) {
        Ok(nid) if nid != Nid::UNDEF => match nid.long_name() {
            Ok(name) => format!("{name} ({dotted})"),
            Err(_) => dotted,
        },
        _ => dotted,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::exchange::keys::{issue, make_ca, Validity};

    /// A fresh CA and an identity it issued (tests here and in `signed_data`).
    pub(in crate::exchange) fn identity(
        country: &str,
    ) -> (Identity, openssl::pkey::PKey<openssl::pkey::Private>) {
        let (ca, ca_key) = make_ca(country, 30).unwrap();
        let (cert, key) =
            issue(&ca, &ca_key, country, "test", &Validity::days_from_now(30)).unwrap();
        (
            Identity {
                country: country.into(),
                ca,
                cert,
                key,
                chain: Vec::new(),
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

    /// Signs `MSG` with the openssl command line and digest `md`, as a partner running
    /// another toolkit might. Returns the DER signature and the signer's identity.
    fn sign_with_cli(md: &str) -> (Vec<u8>, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = keys::KeyDir::at(dir.path());
        keys::init(&key_dir, "VN", &[]).unwrap();
        let vn = keys::load(&key_dir, "VN").unwrap();
        std::fs::write(dir.path().join("msg.xml"), MSG).unwrap();
        // The command line takes a PEM key: the sealed file opened, in a file of the test's.
        let pem = key_dir.private_key_pem(keys::SIGNING_KEY).unwrap();
        std::fs::write(dir.path().join("clear.key"), pem).unwrap();
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(["cms", "-sign", "-binary", "-md", md, "-in", "msg.xml"])
            .args(["-signer", keys::SIGNING_CERT, "-inkey", "clear.key"])
            .args(["-outform", "DER", "-out", "msg.p7s"])
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl cms -sign -md {md}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (std::fs::read(dir.path().join("msg.p7s")).unwrap(), vn)
    }

    #[test]
    fn only_sha256_digests_are_accepted() {
        let (sig, vn) = sign_with_cli("sha256");
        verify(&sig, MSG, &vn.ca, "VN").expect("a SHA-256 signature from the command line");
        for md in ["sha1", "sha384", "sha512", "sha224"] {
            let (sig, vn) = sign_with_cli(md);
            // Otherwise a valid signature: only the digest algorithm is wrong.
            let err = verify(&sig, MSG, &vn.ca, "VN").unwrap_err();
            assert_eq!(err.code(), "SIGNATURE_ALGORITHM", "{md}: {err}");
        }
        let (sig, vn) = sign_with_cli("sha1");
        let err = verify(&sig, MSG, &vn.ca, "VN").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the signature's digest algorithm is sha1 (1.3.14.3.2.26); only SHA-256 is accepted"
        );
    }

    #[test]
    fn our_own_signatures_use_sha256() {
        let (vn, _) = identity("VN");
        let sig = sign(&vn, MSG).unwrap();
        assert_eq!(signer_digest_oids(&sig).unwrap(), vec![SHA256_OID]);
        assert_eq!(signer_digest_oids(b"\x30\x80"), None);
        assert_eq!(signer_digest_oids(b""), None);
    }

    #[test]
    fn the_openssl_command_line_verifies_our_signature() {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = keys::KeyDir::at(dir.path());
        keys::init(&key_dir, "VN", &[]).unwrap();
        let vn = keys::load(&key_dir, "VN").unwrap();
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
