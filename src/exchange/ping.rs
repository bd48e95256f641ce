//! Ping: a signed test message to a partner window, answered with a signed receipt and stored
//! by neither side — the AS4 "test service" of this exchange.
//!
//! The envelope is an ordinary one (document type `PING`, function `submit`) carrying
//! `<Ping xmlns="urn:nsw:ping:1">` with the time it was sent. It is sent directly, not through
//! the outbox, with a timeout. The receiving window checks its signature against the pinned CA
//! of the sender like any message ([`super::inbound::receive`]), then answers at once with a
//! signed receipt ([`answer`]): no deduplication row, no dossier, no inbound message. The
//! sender checks that receipt as the outbox worker checks every receipt (signature by the
//! partner, message id, digest of the bytes sent, sender and receiver), so a round trip proves
//! the endpoint, TLS, both keys and both trust settings at once.

use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::envelope::{self, Header};
use super::receipt::{self, Reason, Receipt};
use super::{signature, trust, Exchange, ExchangeError, SIGNATURE_HEADER};
use crate::xml::{DocKind, Limits, Tree};

/// The envelope's document type of a ping.
pub const DOCUMENT_TYPE: &str = "PING";
/// The namespace of the ping payload.
pub const NAMESPACE: &str = "urn:nsw:ping:1";

/// A ping that came back.
#[derive(Debug, Clone)]
pub struct Pong {
    pub message_id: Uuid,
    /// From sending the request to a verified receipt.
    pub round_trip: Duration,
    /// The partner's receipt's own id and its time of receipt.
    pub receipt_id: Uuid,
    pub received_at: String,
}

/// Why a ping failed, in the words an operator needs (transport error, HTTP status, which
/// check of the receipt failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PingFailed(pub String);

/// The ping envelope from `ex` to `country`.
pub fn build(ex: &Exchange, country: &str) -> (Header, Vec<u8>) {
    let id = Uuid::now_v7();
    let created = envelope::now_rfc3339();
    let header = Header {
        message_id: id,
        conversation_id: id,
        sender: ex.country.clone(),
        sender_party: None,
        receiver: country.to_owned(),
        receiver_party: None,
        document_type: DOCUMENT_TYPE.into(),
        function: "submit".into(),
        reference: format!("PING-{}", &id.simple().to_string()[..12]),
        previous_reference: None,
        created_at: created.clone(),
    };
    let payload = format!("<Ping xmlns=\"{NAMESPACE}\"><SentAt>{created}</SentAt></Ping>");
    let bytes = envelope::build(&header, payload.as_bytes());
    (header, bytes)
}

/// Sends a signed ping to the partner `country` and waits at most `timeout` for its
/// verified receipt.
pub async fn ping(
    ex: &Exchange,
    limits: &Limits,
    country: &str,
    timeout: Duration,
) -> Result<Pong, PingFailed> {
    let fail = |m: String| PingFailed(m);
    let partner = ex
        .partners
        .get(country)
        .ok_or_else(|| fail(format!("{country} is not in the partner table")))?;
    let http = ex
        .clients
        .get(country)
        .ok_or_else(|| fail(format!("no client for {country}")))?;
    let (header, bytes) = build(ex, country);
    let sig = signature::sign(&ex.identity, &bytes).map_err(|e| fail(format!("signing: {e}")))?;
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
    let started = Instant::now();
    let resp = http
        .post(&partner.endpoint)
        .timeout(timeout)
        .header("content-type", "application/xml")
        .header(SIGNATURE_HEADER, sig_b64)
        .body(bytes.clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                fail(format!(
                    "timeout: no answer within {} ms",
                    timeout.as_millis()
                ))
            } else {
                fail(format!("transport: {}", crate::error::cause_chain(&e)))
            }
        })?;
    let status = resp.status().as_u16();
    let rsig = resp
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .bytes()
        .await
        .map_err(|e| fail(format!("transport: answer cut off: {e}")))?
        .to_vec();
    let round_trip = started.elapsed();
    if status != 200 && status != 422 {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .map(|v| {
                format!(
                    "{} {}",
                    v["code"].as_str().unwrap_or_default(),
                    v["detail"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        return Err(fail(
            format!("HTTP {status} {}", detail.trim()).trim().to_owned(),
        ));
    }
    let rsig = rsig.ok_or_else(|| fail("the receipt carries no signature".into()))?;
    let rsig = base64::engine::general_purpose::STANDARD
        .decode(rsig.trim())
        .map_err(|e| fail(format!("receipt signature is not base64: {e}")))?;
    let policy = trust::Policy::from_settings(&ex.policy);
    signature::verify_with(&rsig, &body, &partner.ca, &partner.country, &policy)
        .map_err(|e| fail(format!("receipt refused: {} ({e})", e.code())))?;
    match crate::xml::check(&body, limits, Some(DocKind::Receipt)) {
        Ok(Ok(_)) => {}
        _ => return Err(fail("receipt refused: not a valid receipt document".into())),
    }
    let tree = Tree::parse(&body, limits).map_err(|e| fail(format!("receipt unreadable: {e}")))?;
    let r = receipt::parse(&tree).ok_or_else(|| fail("receipt unreadable".into()))?;
    if r.received_message_id != header.message_id {
        return Err(fail(format!(
            "receipt is for message {}, not {}",
            r.received_message_id, header.message_id
        )));
    }
    if r.digest_hex != hex::encode(Sha256::digest(&bytes)) {
        return Err(fail("receipt digest does not match the bytes sent".into()));
    }
    if r.sender != partner.country || r.receiver != ex.country {
        return Err(fail(format!(
            "receipt is from {} to {}",
            r.sender, r.receiver
        )));
    }
    if !r.accepted {
        let why = r
            .reasons
            .iter()
            .map(|x| format!("{}: {}", x.code, x.text))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(fail(format!("ping rejected: {why}")));
    }
    Ok(Pong {
        message_id: header.message_id,
        round_trip,
        receipt_id: r.message_id,
        received_at: r.received_at,
    })
}

/// The receiving side: the signed receipt for an authenticated ping (its signature already
/// verified against the sender's pinned CA). Nothing is stored.
pub fn answer(
    ex: &Exchange,
    header: &Header,
    body: &[u8],
) -> Result<super::inbound::Answer, ExchangeError> {
    let mut reasons = Vec::new();
    if header.receiver != ex.country {
        reasons.push(Reason {
            code: "RECEIVER_MISMATCH".into(),
            text: format!(
                "this window is {}, the ping is addressed to {}",
                ex.country, header.receiver
            ),
            path: Some("/Envelope/Header/Receiver/Country".into()),
        });
    }
    let r = Receipt {
        message_id: Uuid::now_v7(),
        received_message_id: header.message_id,
        sender: ex.country.clone(),
        receiver: header.sender.clone(),
        digest_hex: hex::encode(Sha256::digest(body)),
        accepted: reasons.is_empty(),
        reasons,
        received_at: envelope::now_rfc3339(),
    };
    let receipt_bytes = receipt::build(&r);
    let receipt_sig = signature::sign(&ex.identity, &receipt_bytes)?;
    tracing::info!(sender = %header.sender, message_id = %header.message_id, "ping answered");
    Ok(super::inbound::Answer {
        status: if r.accepted { 200 } else { 422 },
        receipt: receipt_bytes,
        signature: receipt_sig,
        stored: None,
        duplicate: false,
    })
}
