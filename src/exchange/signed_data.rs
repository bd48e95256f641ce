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
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const CONTEXT_0: u8 = 0xa0;

/// 1.2.840.113549.1.7.2
const ID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// 1.2.840.113549.1.7.1
const ID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// 1.2.840.113549.1.9.3
const ID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
/// 1.2.840.113549.1.9.4
const ID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
/// 1.2.840.113549.1.9.5
const ID_SIGNING_TIME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05];
/// 1.2.840.113549.1.9.15
const ID_SMIME_CAPABILITIES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0f];
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
    element(b, true)
}

/// The element at the front of `b`: single-byte tags, definite lengths, in their shortest
/// form only when `minimal`.
pub(super) fn element(b: &[u8], minimal: bool) -> Option<Element<'_>> {
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
            let len = bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
            if minimal && (bytes[0] == 0 || len < 0x80) {
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

/// Checks the signed attributes and returns the messageDigest's octets. They must be in DER
/// order and hold exactly one contentType (`id-data`) and one messageDigest, and besides them
/// at most one signingTime (one UTCTime or GeneralizedTime) and one smimeCapabilities (one
/// SEQUENCE): what OpenSSL and the usual CMS libraries write. Any other attribute, or any of
/// these repeated or with another number of values, is left to OpenSSL, which holds each kind
/// of attribute to its own rules.
fn signed_attributes(mut attrs: &[u8]) -> Option<&[u8]> {
    let mut previous: Option<&[u8]> = None;
    let (mut content_type, mut digest) = (None, None);
    let (mut signing_time, mut capabilities) = (false, false);
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
        // Exactly one value, of the tag the attribute has.
        let value = tlv(values).filter(|v| v.rest.is_empty())?;
        let seen = match oid {
            ID_CONTENT_TYPE if value.tag == OID => content_type.replace(value.content).is_some(),
            ID_MESSAGE_DIGEST if value.tag == OCTET_STRING => {
                digest.replace(value.content).is_some()
            }
            ID_SIGNING_TIME if matches!(value.tag, UTC_TIME | GENERALIZED_TIME) => {
                std::mem::replace(&mut signing_time, true)
            }
            ID_SMIME_CAPABILITIES if value.tag == SEQUENCE => {
                std::mem::replace(&mut capabilities, true)
            }
            _ => return None,
        };
        if seen {
            return None;
        }
    }
    (content_type? == ID_DATA).then_some(())?;
    digest
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
    /// Bytes of its DER.
    size: usize,
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

/// Certificates remembered at most this many at once; when full, all go.
const CAPACITY: usize = 1024;
/// Only certificates up to this size are remembered (so the cache holds at most 8 MB).
const LARGEST_REMEMBERED: usize = 8 * 1024;

/// Carried certificates of signatures that verified, decoded, by the SHA-256 of their DER.
static DECODED: Mutex<Option<HashMap<[u8; 32], Arc<Decoded>>>> = Mutex::new(None);

/// The carried certificate `der`, decoded: from the cache when a verified signature carried it
/// before, else decoded here (and remembered by [`remember`] only once its signature verifies,
/// so a sender whose signatures fail cannot fill or flush the cache).
fn decoded(der: &[u8]) -> Option<([u8; 32], Arc<Decoded>)> {
    let key: [u8; 32] = Sha256::digest(der).into();
    if let Some(d) = DECODED
        .lock()
        .ok()?
        .as_ref()
        .and_then(|m| m.get(&key).cloned())
    {
        return Some((key, d));
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
        size: der.len(),
        cert,
    });
    Some((key, d))
}

/// Keeps the certificates of a signature that verified.
fn remember(certificates: &[([u8; 32], Arc<Decoded>)]) {
    let Ok(mut map) = DECODED.lock() else {
        return;
    };
    let m = map.get_or_insert_with(HashMap::new);
    for (key, d) in certificates {
        if d.size > LARGEST_REMEMBERED || m.contains_key(key) {
            continue;
        }
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(*key, d.clone());
    }
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
    if Sha256::digest(data).as_slice() != p.message_digest {
        return None;
    }
    let carried: Vec<([u8; 32], Arc<Decoded>)> = p
        .certificates
        .iter()
        .map(|c| decoded(c))
        .collect::<Option<_>>()?;
    // OpenSSL looks the signer up among the anchors first, then takes the first carried
    // certificate that matches (names compared in canonical form). The answer is the same
    // only when exactly one certificate in all of them has this serial number.
    let same_serial = |serial: &[u8]| serial == p.serial;
    let mut signers = carried.iter().filter(|(_, d)| same_serial(&d.serial));
    let (_, signer) = signers.next()?;
    if signers.next().is_some()
        || signer.issuer != p.issuer
        || signer.key.id() != openssl::pkey::Id::EC
    {
        return None;
    }
    for anchor in anchors {
        let serial = anchor.serial_number().to_bn().ok()?.to_vec();
        if integer_value(p.serial).is_some_and(|v| v == serial.as_slice()) {
            return None;
        }
    }
    let mut verifier = Verifier::new(MessageDigest::sha256(), &signer.key).ok()?;
    // RFC 5652 §5.4: the signature is over the attributes' DER with the SET OF tag.
    verifier.update(&[SET]).ok()?;
    verifier.update(&p.signed_attrs[1..]).ok()?;
    if !verifier.verify(p.signature).ok()? {
        return None;
    }
    let mut untrusted = Stack::new().ok()?;
    for (_, d) in &carried {
        untrusted.push(d.cert.clone()).ok()?;
    }
    trust::verify_signer(&signer.cert, &untrusted, anchors, trust, policy).ok()?;
    remember(&carried);
    Some(signer.cert.clone())
}

/// The magnitude of a DER INTEGER's content as `BigNum::to_vec` writes it (no leading zero
/// bytes); `None` for a negative one.
fn integer_value(content: &[u8]) -> Option<&[u8]> {
    if content.first().is_some_and(|&b| b & 0x80 != 0) {
        return None;
    }
    let start = content
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(content.len());
    Some(&content[start..])
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
    use crate::exchange::keys::Identity;
    use crate::exchange::signature::{sign, verify_cms_openssl};

    fn identity(country: &str) -> Identity {
        crate::exchange::signature::tests::identity(country).0
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

    /// An attribute: SEQUENCE { type, SET { values } } (short lengths only).
    fn attr(oid: &[u8], values: &[&[u8]]) -> Vec<u8> {
        let set: Vec<u8> = values.concat();
        let mut inner = vec![OID, oid.len() as u8];
        inner.extend_from_slice(oid);
        inner.extend_from_slice(&[SET, set.len() as u8]);
        inner.extend_from_slice(&set);
        let mut out = vec![SEQUENCE, inner.len() as u8];
        out.extend_from_slice(&inner);
        out
    }

    /// A set of attributes in DER order.
    fn attrs(mut list: Vec<Vec<u8>>) -> Vec<u8> {
        list.sort_by(|a, b| der_set_order(a, b));
        list.concat()
    }

    #[test]
    fn only_the_usual_signed_attributes_take_the_fast_road() {
        let content_type = || attr(ID_CONTENT_TYPE, &[&[&[OID, 9][..], ID_DATA].concat()]);
        let digest = || attr(ID_MESSAGE_DIGEST, &[&[OCTET_STRING, 2, 0xab, 0xcd]]);
        let time: &[u8] = b"\x17\x0d261201000000Z";
        let signing_time = |values: &[&[u8]]| attr(ID_SIGNING_TIME, values);
        let usual = attrs(vec![content_type(), digest(), signing_time(&[time])]);
        assert_eq!(signed_attributes(&usual), Some(&[0xab, 0xcd][..]));
        // Each of these is refused by OpenSSL's attribute rules, or simply not the usual shape.
        let counter_signature = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x06][..];
        let refused = [
            attrs(vec![
                content_type(),
                digest(),
                signing_time(&[time]),
                signing_time(&[time]),
            ]),
            attrs(vec![content_type(), digest(), signing_time(&[time, time])]),
            attrs(vec![content_type(), digest(), signing_time(&[])]),
            attrs(vec![
                content_type(),
                digest(),
                attr(counter_signature, &[&[SEQUENCE, 0]]),
            ]),
            attrs(vec![content_type(), digest(), digest()]),
            attrs(vec![content_type(), content_type(), digest()]),
            attrs(vec![digest()]),
            attrs(vec![content_type()]),
            attrs(vec![
                content_type(),
                attr(
                    ID_MESSAGE_DIGEST,
                    &[&[OCTET_STRING, 1, 1], &[OCTET_STRING, 1, 2]],
                ),
            ]),
            attrs(vec![
                attr(
                    ID_CONTENT_TYPE,
                    &[&[&[OID, 9][..], ID_SIGNED_DATA].concat()],
                ),
                digest(),
            ]),
        ];
        for (i, a) in refused.iter().enumerate() {
            assert_eq!(signed_attributes(a), None, "case {i}");
        }
        // Out of DER order.
        let mut list = [content_type(), digest(), signing_time(&[time])];
        list.sort_by(|a, b| der_set_order(b, a));
        assert_eq!(signed_attributes(&list.concat()), None);
    }

    #[test]
    fn serial_numbers_compare_by_value() {
        assert_eq!(integer_value(&[0x00, 0x80]), Some(&[0x80][..]));
        assert_eq!(integer_value(&[0x01]), Some(&[0x01][..]));
        assert_eq!(integer_value(&[0x80]), None);
        assert_eq!(integer_value(&[0x00]), Some(&[][..]));
    }

    #[test]
    fn certificates_are_read_with_longer_lengths_than_needed_elsewhere() {
        assert!(element(&[0x04, 0x81, 0x01, 0xaa], false).is_some());
        assert!(crate::exchange::signature::der_next(&[0x30, 0x82, 0x00, 0x01, 0x05]).is_some());
        assert!(tlv(&[0x04, 0x81, 0x01, 0xaa]).is_none());
    }

    #[test]
    fn set_order_pads_the_shorter_with_zeros() {
        use std::cmp::Ordering::*;
        assert_eq!(der_set_order(&[1, 2], &[1, 3]), Less);
        assert_eq!(der_set_order(&[1, 2, 0], &[1, 2]), Equal);
        assert_eq!(der_set_order(&[2], &[1, 9]), Greater);
    }
}
