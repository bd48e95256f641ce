//! Enqueuing outbound messages in the caller's transaction: the envelope is built here, once,
//! with its message id; the worker signs and sends those exact bytes, however many times it
//! has to.

use uuid::Uuid;

use super::envelope::{self, Header};
use super::ExchangeError;
use crate::config::Settings;
use crate::store::outbox::{self as store, NewOutbound};
use crate::validation::{Validator, Verdict};

/// A business document for a partner window.
pub struct NewMessage {
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

/// Builds the envelope and writes it to the outbox in `tx`, with its audit entry. The payload
/// is validated against its schema first, so a partner never gets a document we would refuse.
pub async fn enqueue<C: deadpool_postgres::GenericClient>(
    tx: &C,
    settings: &Settings,
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
    let header = Header {
        message_id: Uuid::now_v7(),
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
    store::insert(
        tx,
        &NewOutbound {
            message_id: header.message_id,
            conversation_id: header.conversation_id,
            receiver: &header.receiver,
            document_type: &header.document_type,
            function: &header.function,
            reference: &header.reference,
            previous_reference: header.previous_reference.as_deref(),
            envelope: &bytes,
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
