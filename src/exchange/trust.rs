//! Trust in a certificate, decided the same way wherever a signature or a certificate is
//! checked: partner messages and receipts, mutual-TLS clients, licences agencies deposit.
//!
//! - **Chain.** The certificate must chain, through intermediates the sender supplies (the
//!   CMS `certificates`, a TLS peer's chain), to one of the pinned certificates. A pinned
//!   certificate is a trust anchor wherever it sits in the chain (`X509_V_FLAG_PARTIAL_CHAIN`):
//!   a partner may pin its root or an intermediate, an agency its CA or its signing certificate.
//!   Every issuer must be a CA allowed to sign certificates (basicConstraints, keyUsage
//!   keyCertSign, path length), as OpenSSL checks them. Failure: `CERTIFICATE_UNTRUSTED`.
//! - **Validity.** Every certificate of the chain, anchor included, must be within its dates:
//!   past notAfter is `CERTIFICATE_EXPIRED`; notBefore more than `clock_skew_secs` ahead of
//!   our clock is `CERTIFICATE_NOT_YET_VALID`. The tolerance applies to notBefore only: a
//!   certificate issued a moment ago by a partner whose clock runs ahead must not be refused,
//!   while an expired one is never stretched.
//! - **Purpose** of a document signer (see [`check_signing_purpose`]): failure is
//!   `CERTIFICATE_PURPOSE`.

use openssl::asn1::Asn1Time;
use openssl::stack::{Stack, StackRef};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509KeyUsage, X509Ref, X509StoreContext, X509VerifyResult, X509};

use super::keys;
use super::signature::{der_next, oid_name, SignatureError};

/// Default tolerance for a notBefore ahead of our clock: five minutes, the usual allowance
/// for clocks kept by NTP (Kerberos uses the same).
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 300;

/// `X509_V_ERR_CERT_NOT_YET_VALID`, as OpenSSL reports it to a TLS verify callback.
pub const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;

/// How certificates are judged; built from `exchange.clock_skew_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub clock_skew_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

impl Policy {
    pub fn from_settings(s: &crate::config::ExchangeSettings) -> Policy {
        Policy {
            clock_skew_secs: s.clock_skew_secs,
        }
    }
}

/// Builds and checks the chain of `leaf` through `untrusted` (certificates the sender
/// supplied) up to one of `anchors`, then the validity dates of every certificate on it.
/// `trust` names the anchors in the error ("the CA pinned for VN"). Returns the chain, leaf
/// first, anchor last.
pub fn verify_chain(
    leaf: &X509Ref,
    untrusted: &StackRef<X509>,
    anchors: &[X509],
    trust: &str,
    policy: &Policy,
) -> Result<Vec<X509>, SignatureError> {
    let untrusted_err = |reason: String| SignatureError::Untrusted {
        subject: keys::subject_line(leaf),
        trust: trust.to_owned(),
        reason,
    };
    let internal = |e: openssl::error::ErrorStack| untrusted_err(format!("cannot check: {e}"));
    let mut store = X509StoreBuilder::new().map_err(internal)?;
    for a in anchors {
        store.add_cert(a.clone()).map_err(internal)?;
    }
    // Dates are checked below, so that each failure gets its own code and notBefore its
    // tolerance; OpenSSL would report only the first date problem, with no tolerance.
    store
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN | X509VerifyFlags::NO_CHECK_TIME)
        .map_err(internal)?;
    let store = store.build();
    let mut ctx = X509StoreContext::new().map_err(internal)?;
    let (ok, error, at, chain) = ctx
        .init(&store, leaf, untrusted, |c| {
            let ok = c.verify_cert()?;
            let at = c.current_cert().map(keys::subject_line);
            let chain: Vec<X509> = c
                .chain()
                .map(|s| s.iter().map(|x| x.to_owned()).collect())
                .unwrap_or_default();
            Ok((ok, c.error(), at, chain))
        })
        .map_err(internal)?;
    if !ok || chain.is_empty() {
        return Err(untrusted_err(describe(error, at.as_deref())));
    }
    for cert in &chain {
        check_time(cert, policy)?;
    }
    Ok(chain)
}

/// OpenSSL's reason, naming the certificate it stopped at.
fn describe(error: X509VerifyResult, at: Option<&str>) -> String {
    match at {
        Some(subject) => format!("{} (at {subject})", error.error_string()),
        None => error.error_string().to_owned(),
    }
}

/// Whether `cert` is within its validity dates now, notBefore with the policy's tolerance.
pub fn check_time(cert: &X509Ref, policy: &Policy) -> Result<(), SignatureError> {
    let now = chrono::Utc::now().timestamp();
    let skew = i64::try_from(policy.clock_skew_secs).unwrap_or(i64::MAX / 2);
    let (Ok(now_t), Ok(latest_start)) = (
        Asn1Time::from_unix(now),
        Asn1Time::from_unix(now.saturating_add(skew)),
    ) else {
        return Err(SignatureError::Untrusted {
            subject: keys::subject_line(cert),
            trust: "the clock".into(),
            reason: "cannot represent the current time".into(),
        });
    };
    if cert.not_after() < now_t {
        return Err(SignatureError::CertificateExpired {
            subject: keys::subject_line(cert),
            not_before: cert.not_before().to_string(),
            not_after: cert.not_after().to_string(),
        });
    }
    if cert.not_before() > latest_start {
        return Err(SignatureError::CertificateNotYetValid {
            subject: keys::subject_line(cert),
            not_before: cert.not_before().to_string(),
            skew_secs: policy.clock_skew_secs,
        });
    }
    Ok(())
}

/// id-kp-documentSigning (RFC 9336), 1.3.6.1.5.5.7.3.36.
const DOCUMENT_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24];
/// id-kp-emailProtection (RFC 5280), 1.3.6.1.5.5.7.3.4: what S/MIME and CMS toolkits issue.
const EMAIL_PROTECTION: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04];
/// anyExtendedKeyUsage (RFC 5280), 2.5.29.37.0.
const ANY_EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
/// id-ce-extKeyUsage, 2.5.29.37.
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];

/// Whether `cert` may sign documents (messages, receipts, licences):
///
/// - keyUsage, when present, includes digitalSignature or nonRepudiation (contentCommitment);
///   a certificate for keyCertSign or keyAgreement alone does not sign documents;
/// - extendedKeyUsage, when present, includes documentSigning (RFC 9336, made for exactly
///   this), emailProtection (what S/MIME and CMS profiles issue, and what `openssl cms
///   -verify` asks for by default) or anyExtendedKeyUsage. Without the extension the
///   certificate is unrestricted (RFC 5280 §4.2.1.12). A TLS-only certificate (serverAuth,
///   clientAuth) or a code-signing one is refused: a key for one purpose is not lent to
///   another.
pub fn check_signing_purpose(cert: &X509Ref) -> Result<(), SignatureError> {
    let refuse = |reason: String| SignatureError::Purpose {
        subject: keys::subject_line(cert),
        reason,
    };
    if let Some(ku) = cert.key_usage() {
        if !ku.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION) {
            return Err(refuse(
                "its key usage includes neither digitalSignature nor nonRepudiation".into(),
            ));
        }
    }
    let Some(ekus) = extended_key_usages(cert)
        .ok_or_else(|| refuse("its extended key usage cannot be read".into()))?
    else {
        return Ok(());
    };
    if ekus
        .iter()
        .any(|o| [DOCUMENT_SIGNING, EMAIL_PROTECTION, ANY_EXTENDED_KEY_USAGE].contains(&&o[..]))
    {
        return Ok(());
    }
    let named: Vec<String> = ekus.iter().map(|o| oid_name(o)).collect();
    Err(refuse(format!(
        "its extended key usage ({}) includes none of documentSigning, emailProtection, \
         anyExtendedKeyUsage",
        named.join(", ")
    )))
}

/// The extendedKeyUsage purposes (OID content octets) of `cert`: `Some(None)` without the
/// extension, `None` when the certificate cannot be read that far.
fn extended_key_usages(cert: &X509Ref) -> Option<Option<Vec<Vec<u8>>>> {
    const SEQUENCE: u8 = 0x30;
    const EXTENSIONS: u8 = 0xa3;
    const OID: u8 = 0x06;
    const OCTET_STRING: u8 = 0x04;
    let der = cert.to_der().ok()?;
    let (SEQUENCE, certificate, _) = der_next(&der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der_next(certificate)? else {
        return None;
    };
    // version, serial, signature, issuer, validity, subject, key, uids, then [3] extensions
    let mut rest = tbs;
    let extensions = loop {
        if rest.is_empty() {
            return Some(None);
        }
        let (tag, content, r) = der_next(rest)?;
        if tag == EXTENSIONS {
            break content;
        }
        rest = r;
    };
    let (SEQUENCE, mut list, _) = der_next(extensions)? else {
        return None;
    };
    while !list.is_empty() {
        let (SEQUENCE, ext, r) = der_next(list)? else {
            return None;
        };
        list = r;
        let (OID, oid, mut e) = der_next(ext)? else {
            return None;
        };
        if oid != EXT_KEY_USAGE {
            continue;
        }
        // critical BOOLEAN DEFAULT FALSE, then the OCTET STRING holding the value
        let value = loop {
            let (tag, content, r) = der_next(e)?;
            if tag == OCTET_STRING {
                break content;
            }
            e = r;
        };
        let (SEQUENCE, mut purposes, _) = der_next(value)? else {
            return None;
        };
        let mut out = Vec::new();
        while !purposes.is_empty() {
            let (OID, p, r) = der_next(purposes)? else {
                return None;
            };
            out.push(p.to_vec());
            purposes = r;
        }
        return Some(Some(out));
    }
    Some(None)
}

/// The certificates a CMS SignedData carries (its `certificates`), as the untrusted pool for
/// chain building.
pub fn carried(certs: Option<&StackRef<X509>>) -> Result<Stack<X509>, SignatureError> {
    let mut out = Stack::new().map_err(|e| SignatureError::Malformed(e.to_string()))?;
    for c in certs.into_iter().flatten() {
        out.push(c.to_owned())
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    }
    Ok(out)
}
