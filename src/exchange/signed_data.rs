//! The usual detached CMS SignedData (RFC 5652), verified without decoding it through OpenSSL's
//! CMS layer. OpenSSL 3's `CMS_verify` decodes every certificate the structure carries, and
//! their keys, for every message (twice, with the signer lookup): most of a verification's cost,
//! eight times the ECDSA check itself. A partner signs thousands of messages with the same
//! certificate, so here the carried certificates are decoded once, remembered by the SHA-256 of
//! their DER, and a message costs its digest and one ECDSA check.
//!
//! This is only a faster road to the same answer, never a different answer: [`verify`] returns
//! `Some` only when every check `signature::verify_cms` makes passes, and `None` for anything
//! else (an unusual shape, a failure of any kind), for which the caller runs the full OpenSSL
//! verification, which accepts or refuses with its own code. What it accepts:
//!
//! - a DER `ContentInfo` of type signedData holding a `SignedData` whose content is detached
//!   `id-data`, whose `certificates` are all plain certificates, with exactly one `SignerInfo`;
//! - that `SignerInfo` of version 1 (issuer and serial number), digest SHA-256, signed
//!   attributes present (in DER order, definite minimal lengths), signature algorithm
//!   ecdsa-with-SHA256;
//! - signed attributes holding exactly one `contentType` (`id-data`) and exactly one
//!   `messageDigest`, equal to the SHA-256 of the data;
//! - a signer certificate carried in the structure, matched by issuer and serial number, whose
//!   chain and purpose pass `trust::verify_signer` (the same rules and cache as the full path);
//! - an ECDSA signature by that certificate's key over the DER of the signed attributes (the
//!   `[0]` tag read as a SET, RFC 5652 §5.4).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::X509;
use sha2::{Digest, Sha256};

use super::trust::{self, Policy};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;

/// 1.2.840.113549.1.7.2
const ID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// 1.2.840.113549.1.7.1
const ID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// 1.2.840.113549.1.9.3
const ID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
/// 1.2.840.113549.1.9.4
const ID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
/// 2.16.840.1.101.3.4.2.1
const ID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// 1.2.840.10045.4.3.2
const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// One DER element read from the front of a slice.
pub(super) struct Element<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    /// The whole element: tag, length and content.
    pub whole: &'a [u8],
    /// What follows it.
    pub rest: &'a [u8],
}

/// The DER element at the front of `b`. Single-byte tags and definite lengths in their
/// shortest form only (DER); anything else is `None`.
pub(super) fn tlv(b: &[u8]) -> Option<Element<'_>> {
    let (&tag, after_tag) = b.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, after_len) = after_tag.split_first()?;
    let (len, body) = match first {
        0..=0x7f => (first as usize, after_len),
        0x81..=0x84 => {
            let n = (first & 0x7f) as usize;
            let bytes = after_len.get(..n)?;
            if bytes[0] == 0 {
                return None;
            }
            let len = bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
            if len < 0x80 {
                return None;
            }
            (len, &after_len[n..])
        }
        _ => return None,
    };
    let content = body.get(..len)?;
    let header = b.len() - body.len();
    Some(Element {
        tag,
        content,
        whole: &b[..header + len],
        rest: &body[len..],
    })
}

/// The element of `b` with tag `want`, and what follows it.
fn expect(b: &[u8], want: u8) -> Option<(&[u8], &[u8], &[u8])> {
    let e = tlv(b)?;
    (e.tag == want).then_some((e.content, e.whole, e.rest))
}

/// An AlgorithmIdentifier's OID, with no parameters or NULL ones.
fn algorithm(content: &[u8]) -> Option<&[u8]> {
    let (oid, _, rest) = expect(content, OID)?;
    match rest {
        [] => Some(oid),
        _ => {
            let (params, _, rest) = expect(rest, NULL)?;
            (params.is_empty() && rest.is_empty()).then_some(oid)
        }
    }
}

/// What a verification needs from the structure, as slices of it.
struct Parsed<'a> {
    certificates: Vec<&'a [u8]>,
    /// The signer's issuer Name (whole element) and serial number (INTEGER content).
    issuer: &'a [u8],
    serial: &'a [u8],
    /// The signed attributes, whole element (tag `[0]`).
    signed_attrs: &'a [u8],
    message_digest: &'a [u8],
    signature: &'a [u8],
}

fn parse(der: &[u8]) -> Option<Parsed<'_>> {
    let (content_info, _, rest) = expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (oid, _, rest) = expect(content_info, OID)?;
    if oid != ID_SIGNED_DATA {
        return None;
    }
    let (explicit, _, rest) = expect(rest, CONTEXT_0)?;
    if !rest.is_empty() {
        return None;
    }
    let (signed_data, _, rest) = expect(explicit, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    // Every field is held to the one form this shape has, so that nothing OpenSSL's decoder
    // would refuse gets through here: version 1, one digest algorithm (SHA-256), no CRLs.
    let (version, _, rest) = expect(signed_data, INTEGER)?;
    if version != [1] {
        return None;
    }
    let (digest_algorithms, _, rest) = expect(rest, SET)?;
    let (digest_alg, _, more) = expect(digest_algorithms, SEQUENCE)?;
    if algorithm(digest_alg)? != ID_SHA256 || !more.is_empty() {
        return None;
    }
    let (encap, _, mut rest) = expect(rest, SEQUENCE)?;
    // Detached: the content type alone, no eContent.
    let (content_type, _, encap_rest) = expect(encap, OID)?;
    if content_type != ID_DATA || !encap_rest.is_empty() {
        return None;
    }
    let mut certificates = Vec::new();
    if let Some((certs, _, r)) = expect(rest, CONTEXT_0) {
        let mut c = certs;
        while !c.is_empty() {
            let (_, whole, r) = expect(c, SEQUENCE)?;
            certificates.push(whole);
            c = r;
        }
        rest = r;
    }
    let (signer_infos, _, rest) = expect(rest, SET)?;
    if !rest.is_empty() {
        return None;
    }
    let (info, _, others) = expect(signer_infos, SEQUENCE)?;
    if !others.is_empty() {
        return None;
    }
    let (version, _, rest) = expect(info, INTEGER)?;
    if version != [1] {
        return None;
    }
    let (sid, _, rest) = expect(rest, SEQUENCE)?;
    let (_, issuer, sid_rest) = expect(sid, SEQUENCE)?;
    let (serial, _, sid_rest) = expect(sid_rest, INTEGER)?;
    if !sid_rest.is_empty() {
        return None;
    }
    let (digest_alg, _, rest) = expect(rest, SEQUENCE)?;
    if algorithm(digest_alg)? != ID_SHA256 {
        return None;
    }
    let (attrs, signed_attrs, rest) = expect(rest, CONTEXT_0)?;
    let (signature_alg, _, rest) = expect(rest, SEQUENCE)?;
    if algorithm(signature_alg)? != ECDSA_WITH_SHA256 {
        return None;
    }
    let (signature, _, rest) = expect(rest, OCTET_STRING)?;
    if !rest.is_empty() {
        // Unsigned attributes: not in the usual shape; the full path reads them.
        return None;
    }
    let message_digest = signed_attributes(attrs)?;
    Some(Parsed {
        certificates,
        issuer,
        serial,
        signed_attrs,
        message_digest,
        signature,
    })
}

/// Checks the signed attributes (in DER order; exactly one contentType, `id-data`; exactly one
/// messageDigest) and returns the messageDigest's octets.
fn signed_attributes(mut attrs: &[u8]) -> Option<&[u8]> {
    let mut previous: Option<&[u8]> = None;
    let (mut content_type, mut digest) = (None, None);
    while !attrs.is_empty() {
        let (attr, whole, rest) = expect(attrs, SEQUENCE)?;
        // DER sorts a SET OF by the elements' encodings; OpenSSL hashes the attributes in
        // that order, so only an already sorted set has the same bytes here and there.
        if previous.is_some_and(|p| der_set_order(p, whole) == std::cmp::Ordering::Greater) {
            return None;
        }
        previous = Some(whole);
        attrs = rest;
        let (oid, _, rest) = expect(attr, OID)?;
        let (values, _, rest) = expect(rest, SET)?;
        if !rest.is_empty() {
            return None;
        }
        if !valid_oid(oid) {
            return None;
        }
        if oid == ID_CONTENT_TYPE {
            let (value, _, more) = expect(values, OID)?;
            if content_type.is_some() || !more.is_empty() {
                return None;
            }
            content_type = Some(value);
        } else if oid == ID_MESSAGE_DIGEST {
            let (value, _, more) = expect(values, OCTET_STRING)?;
            if digest.is_some() || !more.is_empty() {
                return None;
            }
            digest = Some(value);
        } else {
            // Any other attribute (signing time, S/MIME capabilities): values of the kinds
            // OpenSSL's decoder keeps as they are, each a well-formed element.
            let mut v = values;
            while !v.is_empty() {
                let e = tlv(v)?;
                if !OPAQUE_VALUES.contains(&e.tag) {
                    return None;
                }
                v = e.rest;
            }
        }
    }
    (content_type? == ID_DATA).then_some(())?;
    digest
}

/// Tags of attribute values kept as their bytes: SEQUENCE, SET, UTCTime, GeneralizedTime,
/// OCTET STRING, UTF8String, PrintableString.
const OPAQUE_VALUES: [u8; 7] = [SEQUENCE, SET, 0x17, 0x18, OCTET_STRING, 0x0c, 0x13];

/// An OID's content octets as DER has them: not empty, no arc starting with 0x80, the last
/// byte closing an arc.
fn valid_oid(oid: &[u8]) -> bool {
    let starts = std::iter::once(0).chain(
        oid.iter()
            .enumerate()
            .filter(|(_, &b)| b & 0x80 == 0)
            .map(|(i, _)| i + 1),
    );
    !oid.is_empty()
        && oid.last().is_some_and(|&b| b & 0x80 == 0)
        && starts.filter(|&i| i < oid.len()).all(|i| oid[i] != 0x80)
}

/// X.690 §11.6: encodings compared as octet strings, the shorter padded with zeros.
fn der_set_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    let pad = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    (0..n)
        .map(|i| pad(a, i).cmp(&pad(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// A carried certificate, decoded once: the certificate, its public key, and its issuer Name
/// and serial number as they appear in its DER.
struct Decoded {
    cert: X509,
    key: PKey<Public>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

/// The issuer Name (whole element) and serial number (INTEGER content) of a certificate.
fn issuer_and_serial(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (certificate, _, _) = expect(cert, SEQUENCE)?;
    let (tbs, _, _) = expect(certificate, SEQUENCE)?;
    let rest = match expect(tbs, CONTEXT_0) {
        Some((_, _, rest)) => rest,
        None => tbs,
    };
    let (serial, _, rest) = expect(rest, INTEGER)?;
    let (_, _, rest) = expect(rest, SEQUENCE)?;
    let (_, issuer, _) = expect(rest, SEQUENCE)?;
    Some((issuer, serial))
}

/// Certificates decoded at most this many at once; when full, all go.
const CAPACITY: usize = 1024;

static DECODED: Mutex<Option<HashMap<[u8; 32], Arc<Decoded>>>> = Mutex::new(None);

/// The carried certificate `der`, decoded (from the cache when it was seen before).
fn decoded(der: &[u8]) -> Option<Arc<Decoded>> {
    let key: [u8; 32] = Sha256::digest(der).into();
    if let Some(d) = DECODED
        .lock()
        .ok()?
        .as_ref()
        .and_then(|m| m.get(&key).cloned())
    {
        return Some(d);
    }
    let cert = X509::from_der(der).ok()?;
    // The decoder must have read exactly these bytes back.
    if cert.to_der().ok()? != der {
        return None;
    }
    let public = cert.public_key().ok()?;
    let (issuer, serial) = issuer_and_serial(der)?;
    let d = Arc::new(Decoded {
        key: public,
        issuer: issuer.to_vec(),
        serial: serial.to_vec(),
        cert,
    });
    let mut map = DECODED.lock().ok()?;
    let m = map.get_or_insert_with(HashMap::new);
    if m.len() >= CAPACITY {
        m.clear();
    }
    m.insert(key, d.clone());
    Some(d)
}

/// The fast verification (see the module's documentation): `Some(signer)` only when the
/// signature is valid under every rule of `signature::verify_cms`; `None` means "ask the full
/// verification", never "invalid".
pub fn verify(
    signature: &[u8],
    data: &[u8],
    anchors: &[X509],
    trust: &str,
    policy: &Policy,
) -> Option<X509> {
    let p = parse(signature)?;
    let carried: Vec<Arc<Decoded>> = p
        .certificates
        .iter()
        .map(|c| decoded(c))
        .collect::<Option<_>>()?;
    let mut signers = carried
        .iter()
        .filter(|d| d.issuer == p.issuer && d.serial == p.serial);
    let signer = signers.next()?;
    if signers.next().is_some() || signer.key.id() != openssl::pkey::Id::EC {
        return None;
    }
    if Sha256::digest(data).as_slice() != p.message_digest {
        return None;
    }
    let mut untrusted = Stack::new().ok()?;
    for d in &carried {
        untrusted.push(d.cert.clone()).ok()?;
    }
    trust::verify_signer(&signer.cert, &untrusted, anchors, trust, policy).ok()?;
    let mut verifier = Verifier::new(MessageDigest::sha256(), &signer.key).ok()?;
    // RFC 5652 §5.4: the signature is over the attributes' DER with the SET OF tag.
    verifier.update(&[SET]).ok()?;
    verifier.update(&p.signed_attrs[1..]).ok()?;
    verifier
        .verify(p.signature)
        .ok()?
        .then(|| signer.cert.clone())
}

/// Whether `der` has the shape [`verify`] reads (a cheap check before any other work).
pub fn is_usual(der: &[u8]) -> bool {
    parse(der).is_some()
}

#[cfg(test)]
mod tests {
    use openssl::cms::{CMSOptions, CmsContentInfo};
    use openssl::stack::Stack;

    use super::*;
    use crate::exchange::keys::{issue, make_ca, Identity, Validity};
    use crate::exchange::signature::{sign, verify_cms_openssl};

    fn identity(country: &str) -> Identity {
        let (ca, ca_key) = make_ca(country, 30).unwrap();
        let (cert, key) =
            issue(&ca, &ca_key, country, "test", &Validity::days_from_now(30)).unwrap();
        Identity {
            country: country.into(),
            ca,
            cert,
            key,
            chain: Vec::new(),
        }
    }

    const MSG: &[u8] = b"<?xml version=\"1.0\"?>\n<Envelope xmlns=\"urn:nsw:envelope:1\"/>\r\n";
    const TRUST: &str = "the CA pinned for VN";

    fn fast(sig: &[u8], data: &[u8], ca: &X509) -> Option<X509> {
        verify(
            sig,
            data,
            std::slice::from_ref(ca),
            TRUST,
            &Policy::default(),
        )
    }

    fn full(sig: &[u8], data: &[u8], ca: &X509) -> bool {
        verify_cms_openssl(
            sig,
            data,
            std::slice::from_ref(ca),
            TRUST,
            &Policy::default(),
        )
        .is_ok()
    }

    #[test]
    fn the_window_s_own_signatures_take_the_fast_road_to_the_same_signer() {
        let vn = identity("VN");
        let sig = sign(&vn, MSG).unwrap();
        assert!(is_usual(&sig));
        let signer = fast(&sig, MSG, &vn.ca).expect("the usual shape verifies");
        assert_eq!(signer.to_der().unwrap(), vn.cert.to_der().unwrap());
        // Twice: the second time from the decoded certificates.
        assert!(fast(&sig, MSG, &vn.ca).is_some());
        assert!(full(&sig, MSG, &vn.ca));
    }

    #[test]
    fn changed_data_another_anchor_or_another_signer_is_never_accepted() {
        let vn = identity("VN");
        let sig = sign(&vn, MSG).unwrap();
        for i in 0..MSG.len() {
            let mut t = MSG.to_vec();
            t[i] ^= 0x20;
            assert!(fast(&sig, &t, &vn.ca).is_none(), "byte {i}");
        }
        assert!(fast(&sig, &MSG[..MSG.len() - 1], &vn.ca).is_none());
        let other = identity("VN");
        assert!(fast(&sig, MSG, &other.ca).is_none());
        let by_other = sign(&other, MSG).unwrap();
        assert!(fast(&by_other, MSG, &vn.ca).is_none());
    }

    /// Differential: whatever one changed byte of the signature does, the fast road accepts
    /// only what OpenSSL's full verification accepts.
    #[test]
    fn no_damaged_signature_is_accepted_that_openssl_refuses() {
        let vn = identity("VN");
        let sig = sign(&vn, MSG).unwrap();
        let mut accepted = 0;
        for i in 0..sig.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut s = sig.clone();
                s[i] ^= flip;
                if fast(&s, MSG, &vn.ca).is_some() {
                    accepted += 1;
                    let why = verify_cms_openssl(
                        &s,
                        MSG,
                        std::slice::from_ref(&vn.ca),
                        TRUST,
                        &Policy::default(),
                    )
                    .err();
                    assert!(why.is_none(), "byte {i} ^ {flip:#x}: {why:?}");
                }
            }
        }
        // Some bytes are not covered by the signature (the outer digest algorithm list);
        // changing them is accepted by both. Most are not.
        assert!(accepted < sig.len(), "{accepted} of {} accepted", sig.len());
    }

    #[test]
    fn other_shapes_are_left_to_openssl() {
        let vn = identity("VN");
        let chain = Stack::new().unwrap();
        let make = |flags: CMSOptions| {
            CmsContentInfo::sign(
                Some(&vn.cert),
                Some(&vn.key),
                Some(&chain),
                Some(MSG),
                flags,
            )
            .unwrap()
            .to_der()
            .unwrap()
        };
        // No signed attributes; the content embedded; no certificate carried.
        for flags in [
            CMSOptions::DETACHED | CMSOptions::BINARY | CMSOptions::NOATTR,
            CMSOptions::BINARY,
            CMSOptions::DETACHED | CMSOptions::BINARY | CMSOptions::CMS_NOCERTS,
        ] {
            let sig = make(flags);
            assert!(fast(&sig, MSG, &vn.ca).is_none(), "{flags:?}");
        }
        assert!(!is_usual(b"not der"));
        // Trailing bytes after the structure.
        let mut sig = sign(&vn, MSG).unwrap();
        assert!(fast(&sig, MSG, &vn.ca).is_some());
        sig.push(0);
        assert!(fast(&sig, MSG, &vn.ca).is_none());
    }

    #[test]
    fn der_lengths_must_be_minimal() {
        assert!(tlv(&[0x04, 0x01, 0xaa]).is_some());
        assert!(tlv(&[0x04, 0x81, 0x01, 0xaa]).is_none());
        assert!(tlv(&[0x04, 0x82, 0x00, 0x81]).is_none());
        assert!(tlv(&[0x04, 0x80]).is_none());
        assert!(tlv(&[0x1f, 0x01, 0x00]).is_none());
    }

    #[test]
    fn oids_are_read_as_der_writes_them() {
        assert!(valid_oid(ID_DATA));
        assert!(valid_oid(&[0x2a, 0x86, 0x48]));
        assert!(!valid_oid(&[]));
        assert!(!valid_oid(&[0x2a, 0x86]));
        assert!(!valid_oid(&[0x2a, 0x80, 0x01]));
        assert!(!valid_oid(&[0x80, 0x01]));
    }

    #[test]
    fn set_order_pads_the_shorter_with_zeros() {
        use std::cmp::Ordering::*;
        assert_eq!(der_set_order(&[1, 2], &[1, 3]), Less);
        assert_eq!(der_set_order(&[1, 2, 0], &[1, 2]), Equal);
        assert_eq!(der_set_order(&[2], &[1, 9]), Greater);
    }
}
