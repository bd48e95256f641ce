//! Enqueuing outbound messages in the caller's transaction: the envelope is built and signed
//! here, once, with its message id, and written with its signature in one row; the worker
//! sends those exact bytes and that signature, however many times it has to.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::envelope::{self, Header};
use super::keys::Identity;
use super::{signature, ExchangeError};
use crate::config::Settings;
use crate::store::outbox::{self as store, NewOutbound};
use crate::validation::{Validator, Verdict};

/// What makes a message leave the window. Each cause sends at most one message: the outbox
/// holds it in a unique column, and the message id is derived from it, so a retried decision
/// can never put a second message with a new id on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The ACDD of a declaration (its clearance, or an operator's send): one per declaration.
    Acdd(Uuid),
    /// The e-Form D of the certificate of origin issued for an application.
    FormD(Uuid),
    /// The business response to a received document (inbound message row id).
    Response(Uuid),
    /// An operator's request to send a document issued outside the window; each request is
    /// its own cause.
    Operator(Uuid),
}

impl Cause {
    /// The stored key, e.g. `acdd:0192f4c1-…`.
    pub fn key(&self) -> String {
        match self {
            Cause::Acdd(id) => format!("acdd:{id}"),
            Cause::FormD(id) => format!("form-d:{id}"),
            Cause::Response(id) => format!("response:{id}"),
            Cause::Operator(id) => format!("operator:{id}"),
        }
    }

    /// The message id of this cause's message from window `sender`: the first 16 bytes of
    /// SHA-256(`nsw-outbox` ␟ sender ␟ key), as a UUIDv8 (RFC 9562's custom layout). The same
    /// cause always names the same message.
    pub fn message_id(&self, sender: &str) -> Uuid {
        let digest = Sha256::new()
            .chain_update(b"nsw-outbox\x1f")
            .chain_update(sender.as_bytes())
            .chain_update(b"\x1f")
            .chain_update(self.key().as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

/// A business document for a partner window.
pub struct NewMessage {
    /// Why it leaves; fixes its message id.
    pub cause: Cause,
    pub receiver: String,
    /// ACDD, FORM_D, BUSINESS_RESPONSE, CERTIFICATE_OF_ORIGIN_KR.
    pub document_type: String,
    /// submit, amend, cancel or response.
    pub function: String,
    pub reference: String,
    pub previous_reference: Option<String>,
    /// The conversation this message continues; a new one when `None`.
    pub conversation_id: Option<Uuid>,
    /// The document itself (its XML declaration, if any, is dropped).
    pub payload: Vec<u8>,
    /// Who caused it, for the audit trail.
    pub actor: String,
}

/// The ids of an enqueued message.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Enqueued {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
}

/// Builds the envelope, signs it as `identity` (the window's signing key), and writes both to
/// the outbox in `tx`, with its audit entry. The payload is validated against its schema
/// first, so a partner never gets a document we would refuse. Signing here writes the row
/// once: the worker has no signature to record before the first send.
pub async fn enqueue<C: deadpool_postgres::GenericClient>(
    tx: &C,
    settings: &Settings,
    identity: &Identity,
    msg: NewMessage,
) -> Result<Enqueued, ExchangeError> {
    let kind = envelope::kind_of(&msg.document_type).ok_or_else(|| ExchangeError::Refused {
        code: "DOCUMENT_TYPE_UNKNOWN",
        detail: format!(
            "'{}' is not exchanged with partner windows",
            msg.document_type
        ),
    })?;
    let validator = Validator::new(settings.limits(), settings.country.clone());
    match validator.validate(&msg.payload, Some(kind)) {
        Verdict::Valid(_) => {}
        Verdict::Unusable(e) => return Err(e.into()),
        Verdict::Invalid { violations, .. } => {
            return Err(ExchangeError::EnvelopeInvalid(violations))
        }
    }
    let cause = msg.cause.key();
    let header = Header {
        message_id: msg.cause.message_id(&settings.country),
        conversation_id: msg.conversation_id.unwrap_or_else(Uuid::now_v7),
        sender: settings.country.clone(),
        sender_party: None,
        receiver: msg.receiver.clone(),
        receiver_party: None,
        document_type: msg.document_type.clone(),
        function: msg.function.clone(),
        reference: msg.reference.clone(),
        previous_reference: msg.previous_reference.clone(),
        created_at: envelope::now_rfc3339(),
    };
    let bytes = envelope::build(&header, &msg.payload);
    let signature = signature::sign(identity, &bytes)?;
    store::insert(
        tx,
        &NewOutbound {
            cause: &cause,
            message_id: header.message_id,
            conversation_id: header.conversation_id,
            receiver: &header.receiver,
            document_type: &header.document_type,
            function: &header.function,
            reference: &header.reference,
            previous_reference: header.previous_reference.as_deref(),
            envelope: &bytes,
            signature: Some(&signature),
            max_attempts: settings.exchange.max_attempts,
            ttl_secs: settings.exchange.ttl_secs as f64,
        },
        &msg.actor,
    )
    .await?;
    Ok(Enqueued {
        message_id: header.message_id,
        conversation_id: header.conversation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_always_names_the_same_message() {
        let id = Uuid::now_v7();
        let a = Cause::Acdd(id).message_id("VN");
        assert_eq!(a, Cause::Acdd(id).message_id("VN"));
        assert_eq!(a.get_version_num(), 8);
        assert_ne!(a, Cause::FormD(id).message_id("VN"));
        assert_ne!(a, Cause::Acdd(id).message_id("SG"));
        assert_eq!(Cause::Response(id).key(), format!("response:{id}"));
    }
}
