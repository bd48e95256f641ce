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

/// OpenSSL's verify results (`X509_V_ERR_*`) a TLS verify callback tells apart.
pub const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;
pub const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;
pub const X509_V_ERR_INVALID_PURPOSE: i32 = 26;

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

/// [`verify_chain`] and [`check_signing_purpose`] for the signer of a message, with the
/// outcome remembered: a partner signs thousands of messages with one certificate, and
/// building its chain (an `X509_STORE` per call, the chain walked and every issuer's
/// signature checked) costs several times the message's own ECDSA check.
///
/// Only a success is remembered, keyed by the SHA-256 of the signer certificate, of every
/// anchor and of every certificate the sender supplied (so a message that leaves out an
/// intermediate is judged afresh, and refused), and only for the part of its chain's
/// validity that every certificate shares: the entry answers while now is at most the
/// earliest notAfter, and the latest notBefore is at most now + the policy's skew, exactly
/// [`check_time`]'s rules. Outside that window, or for any other key, the full check runs and
/// gives the failure its own code. The signature over the bytes is always checked by the
/// caller; this only spares the chain.
pub fn verify_signer(
    signer: &X509Ref,
    untrusted: &StackRef<X509>,
    anchors: &[X509],
    trust: &str,
    policy: &Policy,
) -> Result<(), SignatureError> {
    let key = chain_key(signer, untrusted, anchors);
    let now = chrono::Utc::now().timestamp();
    if let Some(key) = &key {
        if CHAIN_CACHE.answers(key, now, policy) {
            return Ok(());
        }
    }
    let chain = verify_chain(signer, untrusted, anchors, trust, policy)?;
    check_signing_purpose(signer)?;
    if let (Some(key), Some(window)) = (key, Window::of(&chain)) {
        CHAIN_CACHE.remember(key, window, now);
    }
    Ok(())
}

/// SHA-256 over the DER digests of the signer, the anchors and the supplied certificates.
/// `None` (no caching) if a certificate cannot be encoded.
fn chain_key(signer: &X509Ref, untrusted: &StackRef<X509>, anchors: &[X509]) -> Option<[u8; 32]> {
    use openssl::hash::{Hasher, MessageDigest};
    let mut h = Hasher::new(MessageDigest::sha256()).ok()?;
    let mut put = |tag: &[u8], c: &X509Ref| -> Option<()> {
        h.update(tag).ok()?;
        h.update(&c.digest(MessageDigest::sha256()).ok()?).ok()
    };
    put(b"S", signer)?;
    for a in anchors {
        put(b"A", a)?;
    }
    for c in untrusted {
        put(b"U", c)?;
    }
    let d = h.finish().ok()?;
    d.as_ref().try_into().ok()
}

/// The dates within which a verified chain stays valid, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// The latest notBefore of the chain.
    not_before: i64,
    /// The earliest notAfter of the chain.
    not_after: i64,
}

impl Window {
    fn of(chain: &[X509]) -> Option<Window> {
        let epoch = Asn1Time::from_unix(0).ok()?;
        let secs = |t: &openssl::asn1::Asn1TimeRef| -> Option<i64> {
            let d = epoch.diff(t).ok()?;
            Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
        };
        let mut w = Window {
            not_before: i64::MIN,
            not_after: i64::MAX,
        };
        for c in chain {
            w.not_before = w.not_before.max(secs(c.not_before())?);
            w.not_after = w.not_after.min(secs(c.not_after())?);
        }
        Some(w)
    }

    /// [`check_time`]'s rules for every certificate of the chain at once.
    fn holds(&self, now: i64, policy: &Policy) -> bool {
        let skew = i64::try_from(policy.clock_skew_secs).unwrap_or(i64::MAX / 2);
        now <= self.not_after && self.not_before <= now.saturating_add(skew)
    }
}

/// Entries the cache holds at most: far more signer certificates than the partners and
/// agencies a window deals with use at once. When full, expired entries go, then all.
const CHAIN_CACHE_CAPACITY: usize = 4096;

static CHAIN_CACHE: ChainCache = ChainCache {
    map: std::sync::Mutex::new(None),
};

/// Chains verified with their validity window (see [`verify_signer`]). Process-wide.
struct ChainCache {
    map: std::sync::Mutex<Option<std::collections::HashMap<[u8; 32], Window>>>,
}

impl ChainCache {
    fn answers(&self, key: &[u8; 32], now: i64, policy: &Policy) -> bool {
        let Ok(map) = self.map.lock() else {
            return false;
        };
        map.as_ref()
            .and_then(|m| m.get(key))
            .is_some_and(|w| w.holds(now, policy))
    }

    fn remember(&self, key: [u8; 32], window: Window, now: i64) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        let m = map.get_or_insert_with(Default::default);
        if m.len() >= CHAIN_CACHE_CAPACITY && !m.contains_key(&key) {
            m.retain(|_, w| w.not_after >= now);
            if m.len() >= CHAIN_CACHE_CAPACITY {
                m.clear();
            }
        }
        m.insert(key, window);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map
            .lock()
            .map(|m| m.as_ref().map_or(0, |m| m.len()))
            .unwrap_or(0)
    }
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

/// The certificates a DER signature carries (tests).
#[cfg(test)]
fn carried_of(sig: &[u8]) -> Stack<X509> {
    let p7 = openssl::pkcs7::Pkcs7::from_der(sig).unwrap();
    carried(p7.signed().and_then(|s| s.certificates())).unwrap()
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

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::cms::{CMSOptions, CmsContentInfo};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::stack::Stack;
    use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
    use openssl::x509::{X509Name, X509};

    use super::Policy;
    use crate::exchange::signature::{verify_cms, verify_with};

    /// What a test certificate says about itself.
    struct Spec<'a> {
        cn: &'a str,
        ca: bool,
        key_usage: Option<&'a [&'a str]>,
        eku: Option<&'a [&'a str]>,
        /// Seconds from now.
        not_before: i64,
        not_after: i64,
    }

    impl<'a> Spec<'a> {
        fn ca(cn: &'a str) -> Spec<'a> {
            Spec {
                cn,
                ca: true,
                key_usage: Some(&["keyCertSign", "cRLSign"]),
                eku: None,
                not_before: -3600,
                not_after: 86_400,
            }
        }
        fn signer(cn: &'a str) -> Spec<'a> {
            Spec {
                cn,
                ca: false,
                key_usage: Some(&["digitalSignature", "nonRepudiation"]),
                eku: None,
                not_before: -3600,
                not_after: 86_400,
            }
        }
    }

    type Pair = (X509, PKey<Private>);

    /// A certificate for `spec` (C=VN), issued by `issuer`, self-signed without one.
    fn make(spec: &Spec, issuer: Option<&Pair>) -> Pair {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("C", "VN").unwrap();
        name.append_entry_by_text("CN", spec.cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_pubkey(&key).unwrap();
        let now = chrono::Utc::now().timestamp();
        b.set_not_before(&Asn1Time::from_unix(now + spec.not_before).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + spec.not_after).unwrap())
            .unwrap();
        let mut bc = BasicConstraints::new();
        bc.critical();
        if spec.ca {
            bc.ca();
        }
        b.append_extension(bc.build().unwrap()).unwrap();
        if let Some(usages) = spec.key_usage {
            let mut ku = KeyUsage::new();
            ku.critical();
            for u in usages {
                match *u {
                    "digitalSignature" => ku.digital_signature(),
                    "nonRepudiation" => ku.non_repudiation(),
                    "keyCertSign" => ku.key_cert_sign(),
                    "cRLSign" => ku.crl_sign(),
                    "keyAgreement" => ku.key_agreement(),
                    other => panic!("{other}"),
                };
            }
            b.append_extension(ku.build().unwrap()).unwrap();
        }
        if let Some(purposes) = spec.eku {
            let mut eku = ExtendedKeyUsage::new();
            for p in purposes {
                eku.other(p);
            }
            b.append_extension(eku.build().unwrap()).unwrap();
        }
        b.sign(issuer.map_or(&key, |(_, k)| k), MessageDigest::sha256())
            .unwrap();
        (b.build(), key)
    }

    const MSG: &[u8] = b"<Envelope>exact bytes</Envelope>";

    /// A detached signature by `signer`, carrying `extra` besides its certificate.
    fn sign(signer: &Pair, extra: &[&X509]) -> Vec<u8> {
        let mut certs = Stack::new().unwrap();
        for c in extra {
            certs.push((*c).clone()).unwrap();
        }
        let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
        CmsContentInfo::sign(
            Some(&signer.0),
            Some(&signer.1),
            Some(&certs),
            Some(MSG),
            flags,
        )
        .unwrap()
        .to_der()
        .unwrap()
    }

    fn code(sig: &[u8], anchor: &X509) -> &'static str {
        code_with(sig, MSG, anchor, &Policy::default())
    }

    fn code_with(sig: &[u8], data: &[u8], anchor: &X509, p: &Policy) -> &'static str {
        match verify_with(sig, data, anchor, "VN", p) {
            Ok(_) => "OK",
            Err(e) => e.code(),
        }
    }

    /// Root → intermediate → signer.
    fn chain() -> (Pair, Pair, Pair) {
        let root = make(&Spec::ca("VN root"), None);
        let inter = make(&Spec::ca("VN issuing CA"), Some(&root));
        let signer = make(&Spec::signer("VN signing"), Some(&inter));
        (root, inter, signer)
    }

    #[test]
    fn a_chain_through_a_carried_intermediate_reaches_the_pinned_root() {
        let (root, inter, signer) = chain();
        let sig = sign(&signer, &[&inter.0]);
        assert_eq!(code(&sig, &root.0), "OK");
        // Also when the root travels too.
        let sig = sign(&signer, &[&inter.0, &root.0]);
        assert_eq!(code(&sig, &root.0), "OK");
    }

    #[test]
    fn a_pinned_intermediate_is_a_trust_anchor() {
        let (_, inter, signer) = chain();
        assert_eq!(code(&sign(&signer, &[]), &inter.0), "OK");
        assert_eq!(code(&sign(&signer, &[&inter.0]), &inter.0), "OK");
    }

    #[test]
    fn a_missing_intermediate_leaves_the_chain_untrusted() {
        let (root, _, signer) = chain();
        let err =
            verify_with(&sign(&signer, &[]), MSG, &root.0, "VN", &Policy::default()).unwrap_err();
        assert_eq!(err.code(), "CERTIFICATE_UNTRUSTED");
        assert!(err.to_string().contains("the CA pinned for VN"), "{err}");
        // An intermediate of another root does not help either.
        let (_, other_inter, _) = chain();
        assert_eq!(
            code(&sign(&signer, &[&other_inter.0]), &root.0),
            "CERTIFICATE_UNTRUSTED"
        );
    }

    #[test]
    fn an_issuer_must_be_a_ca_that_signs_certificates() {
        let root = make(&Spec::ca("VN root"), None);
        // CA:FALSE in the middle.
        let not_ca = make(
            &Spec {
                ca: false,
                key_usage: Some(&["keyCertSign", "digitalSignature"]),
                ..Spec::ca("not a CA")
            },
            Some(&root),
        );
        let signer = make(&Spec::signer("VN signing"), Some(&not_ca));
        assert_eq!(
            code(&sign(&signer, &[&not_ca.0]), &root.0),
            "CERTIFICATE_UNTRUSTED"
        );
        // CA:TRUE without keyCertSign.
        let no_certsign = make(
            &Spec {
                key_usage: Some(&["digitalSignature"]),
                ..Spec::ca("no certsign")
            },
            Some(&root),
        );
        let signer = make(&Spec::signer("VN signing"), Some(&no_certsign));
        assert_eq!(
            code(&sign(&signer, &[&no_certsign.0]), &root.0),
            "CERTIFICATE_UNTRUSTED"
        );
    }

    #[test]
    fn signer_purposes() {
        let root = make(&Spec::ca("VN root"), None);
        let with = |key_usage: Option<&[&str]>, eku: Option<&[&str]>| {
            let signer = make(
                &Spec {
                    key_usage,
                    eku,
                    ..Spec::signer("VN signing")
                },
                Some(&root),
            );
            code(&sign(&signer, &[]), &root.0)
        };
        let sign_ku: Option<&[&str]> = Some(&["digitalSignature"]);
        // documentSigning (RFC 9336), emailProtection, anyExtendedKeyUsage, none at all.
        assert_eq!(with(sign_ku, Some(&["1.3.6.1.5.5.7.3.36"])), "OK");
        assert_eq!(with(sign_ku, Some(&["emailProtection"])), "OK");
        assert_eq!(with(sign_ku, Some(&["2.5.29.37.0"])), "OK");
        assert_eq!(
            with(sign_ku, Some(&["serverAuth", "1.3.6.1.5.5.7.3.36"])),
            "OK"
        );
        assert_eq!(with(sign_ku, None), "OK");
        assert_eq!(with(None, None), "OK");
        assert_eq!(with(Some(&["nonRepudiation"]), None), "OK");
        // A TLS or code-signing certificate does not sign documents.
        assert_eq!(
            with(sign_ku, Some(&["serverAuth", "clientAuth"])),
            "CERTIFICATE_PURPOSE"
        );
        assert_eq!(with(sign_ku, Some(&["codeSigning"])), "CERTIFICATE_PURPOSE");
        // Nor does a key for certificates or key agreement alone.
        assert_eq!(with(Some(&["keyCertSign"]), None), "CERTIFICATE_PURPOSE");
        assert_eq!(with(Some(&["keyAgreement"]), None), "CERTIFICATE_PURPOSE");
    }

    #[test]
    fn the_purpose_error_names_the_usages_found() {
        let root = make(&Spec::ca("VN root"), None);
        let signer = make(
            &Spec {
                eku: Some(&["serverAuth"]),
                ..Spec::signer("VN tls")
            },
            Some(&root),
        );
        let err =
            verify_with(&sign(&signer, &[]), MSG, &root.0, "VN", &Policy::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the signer certificate (C=VN, CN=VN tls) may not sign documents: its extended key \
             usage (TLS Web Server Authentication (1.3.6.1.5.5.7.3.1)) includes none of \
             documentSigning, emailProtection, anyExtendedKeyUsage"
        );
    }

    #[test]
    fn not_yet_valid_within_the_skew_is_accepted_beyond_it_refused() {
        let root = make(&Spec::ca("VN root"), None);
        let at = |not_before: i64| {
            let signer = make(
                &Spec {
                    not_before,
                    ..Spec::signer("VN signing")
                },
                Some(&root),
            );
            sign(&signer, &[])
        };
        let soon = at(120);
        assert_eq!(code(&soon, &root.0), "OK");
        let strict = Policy { clock_skew_secs: 0 };
        assert_eq!(
            code_with(&soon, MSG, &root.0, &strict),
            "CERTIFICATE_NOT_YET_VALID"
        );
        assert_eq!(code(&at(3600), &root.0), "CERTIFICATE_NOT_YET_VALID");
        // The tolerance does not stretch an expiry.
        let expired = make(
            &Spec {
                not_before: -86_400,
                not_after: -60,
                ..Spec::signer("VN signing")
            },
            Some(&root),
        );
        assert_eq!(code(&sign(&expired, &[]), &root.0), "CERTIFICATE_EXPIRED");
    }

    #[test]
    fn every_certificate_of_the_chain_is_within_its_dates() {
        let root = make(&Spec::ca("VN root"), None);
        let old = make(
            &Spec {
                not_before: -86_400,
                not_after: -60,
                ..Spec::ca("VN old issuing CA")
            },
            Some(&root),
        );
        let signer = make(&Spec::signer("VN signing"), Some(&old));
        let err = verify_with(
            &sign(&signer, &[&old.0]),
            MSG,
            &root.0,
            "VN",
            &Policy::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "CERTIFICATE_EXPIRED");
        assert!(err.to_string().contains("VN old issuing CA"), "{err}");
        let future = make(
            &Spec {
                not_before: 86_400,
                ..Spec::ca("VN future CA")
            },
            None,
        );
        let signer = make(&Spec::signer("VN signing"), Some(&future));
        assert_eq!(
            code(&sign(&signer, &[]), &future.0),
            "CERTIFICATE_NOT_YET_VALID"
        );
    }

    #[test]
    fn signature_invalid_only_when_the_bytes_differ() {
        let (root, inter, signer) = chain();
        let sig = sign(&signer, &[&inter.0]);
        assert_eq!(
            code_with(
                &sig,
                b"<Envelope>other bytes</Envelope>",
                &root.0,
                &Policy::default()
            ),
            "SIGNATURE_INVALID"
        );
        // A documentSigning signer whose bytes match is not SIGNATURE_INVALID.
        let doc = make(
            &Spec {
                eku: Some(&["1.3.6.1.5.5.7.3.36"]),
                ..Spec::signer("VN document signing")
            },
            Some(&inter),
        );
        assert_eq!(code(&sign(&doc, &[&inter.0]), &root.0), "OK");
    }

    #[test]
    fn several_anchors_any_one_will_do() {
        let (root, inter, signer) = chain();
        let other = make(&Spec::ca("other"), None);
        let sig = sign(&signer, &[&inter.0]);
        let signers = verify_cms(
            &sig,
            MSG,
            &[other.0.clone(), root.0.clone()],
            "test anchors",
            &Policy::default(),
        )
        .unwrap();
        assert_eq!(signers[0].to_der().unwrap(), signer.0.to_der().unwrap());
        let err = verify_cms(&sig, MSG, &[], "no anchors", &Policy::default()).unwrap_err();
        assert_eq!(err.code(), "CERTIFICATE_UNTRUSTED");
    }

    #[test]
    fn a_remembered_chain_spares_nothing_but_the_chain() {
        let (root, inter, signer) = chain();
        let sig = sign(&signer, &[&inter.0]);
        assert_eq!(code(&sig, &root.0), "OK");
        let key = super::chain_key(
            &signer.0,
            &super::carried_of(&sig),
            std::slice::from_ref(&root.0),
        );
        let now = chrono::Utc::now().timestamp();
        assert!(super::CHAIN_CACHE.answers(&key.unwrap(), now, &Policy::default()));
        assert!(super::CHAIN_CACHE.len() >= 1);
        // The signature is still checked for every message: one changed byte is refused.
        assert_eq!(code(&sig, &root.0), "OK");
        let mut t = MSG.to_vec();
        t[3] ^= 1;
        assert_eq!(
            code_with(&sig, &t, &root.0, &Policy::default()),
            "SIGNATURE_INVALID"
        );
        // The same signer without its intermediate is judged afresh.
        assert_eq!(code(&sign(&signer, &[]), &root.0), "CERTIFICATE_UNTRUSTED");
        // Under another anchor, too.
        let other = make(&Spec::ca("VN other root"), None);
        assert_eq!(code(&sig, &other.0), "CERTIFICATE_UNTRUSTED");
        // Another certificate of the same partner, expired, or not for signing, or from
        // another CA, is refused with its own code after a valid one was remembered.
        let expired = make(
            &Spec {
                not_before: -86_400,
                not_after: -60,
                ..Spec::signer("VN signing")
            },
            Some(&inter),
        );
        assert_eq!(
            code(&sign(&expired, &[&inter.0]), &root.0),
            "CERTIFICATE_EXPIRED"
        );
        let tls = make(
            &Spec {
                eku: Some(&["serverAuth"]),
                ..Spec::signer("VN tls")
            },
            Some(&inter),
        );
        assert_eq!(
            code(&sign(&tls, &[&inter.0]), &root.0),
            "CERTIFICATE_PURPOSE"
        );
        let (_, stranger_inter, stranger) = chain();
        assert_eq!(
            code(&sign(&stranger, &[&stranger_inter.0]), &root.0),
            "CERTIFICATE_UNTRUSTED"
        );
        // And the remembered one still verifies.
        assert_eq!(code(&sig, &root.0), "OK");
    }

    #[test]
    fn a_remembered_chain_answers_only_within_its_dates() {
        let root = make(&Spec::ca("VN root"), None);
        let soon = make(
            &Spec {
                not_before: 120,
                ..Spec::signer("VN signing")
            },
            Some(&root),
        );
        let sig = sign(&soon, &[]);
        // Accepted within the five minutes of skew, and remembered …
        assert_eq!(code(&sig, &root.0), "OK");
        // … but a strict policy is not answered from the cache.
        let strict = Policy { clock_skew_secs: 0 };
        assert_eq!(
            code_with(&sig, MSG, &root.0, &strict),
            "CERTIFICATE_NOT_YET_VALID"
        );
        // The window is the chain's common part of its dates.
        let (root, inter, signer) = chain();
        let w = super::Window::of(&[signer.0.clone(), inter.0.clone(), root.0.clone()]).unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!((w.not_before - (now - 3600)).abs() <= 5, "{w:?}");
        assert!((w.not_after - (now + 86_400)).abs() <= 5, "{w:?}");
        let p = Policy::default();
        assert!(w.holds(now, &p));
        assert!(w.holds(w.not_after, &p));
        assert!(!w.holds(w.not_after + 1, &p), "expired: never stretched");
        assert!(w.holds(w.not_before - 300, &p));
        assert!(!w.holds(w.not_before - 301, &p));
        assert!(!w.holds(w.not_before - 1, &strict));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = super::ChainCache {
            map: std::sync::Mutex::new(None),
        };
        let w = super::Window {
            not_before: 0,
            not_after: 1_000,
        };
        for i in 0..super::CHAIN_CACHE_CAPACITY + 10 {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            cache.remember(key, w, 10);
            assert!(cache.len() <= super::CHAIN_CACHE_CAPACITY);
        }
        assert!(cache.answers(
            &{
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&((super::CHAIN_CACHE_CAPACITY + 9) as u64).to_be_bytes());
                key
            },
            10,
            &Policy::default()
        ));
    }

    /// `openssl cms -verify -CAfile root.crt` takes the same signature (intermediate carried,
    /// no extended key usage): the command line and the window agree.
    #[test]
    fn the_openssl_command_line_accepts_a_chain_through_an_intermediate() {
        let (root, inter, signer) = chain();
        let sig = sign(&signer, &[&inter.0]);
        assert_eq!(code(&sig, &root.0), "OK");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("root.crt"), root.0.to_pem().unwrap()).unwrap();
        std::fs::write(dir.path().join("msg.xml"), MSG).unwrap();
        std::fs::write(dir.path().join("msg.p7s"), &sig).unwrap();
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "cms", "-verify", "-binary", "-inform", "DER", "-in", "msg.p7s",
            ])
            .args([
                "-content",
                "msg.xml",
                "-CAfile",
                "root.crt",
                "-out",
                "/dev/null",
            ])
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
