//! Receiving a message from a partner window: signature and sender first, then the payload
//! against its schema, deduplication on (sender, message id), storage of the bytes as
//! received, and a signed receipt. Nothing is stored for a message we refuse.

use base64::Engine;
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::receipt::{self, Reason, Receipt};
use super::{envelope, keys, signature, trust, Exchange, ExchangeError};
use crate::store::inbound::{self as store, NewInbound, Stored};
use crate::store::inbound_group_commit::{InboundCommit, OwnedInbound};
use crate::validation::{Validator, Verdict};
use crate::xml::{DocKind, Tree};

/// Messages smaller than this are stored through the group committers (a copy of a few
/// kilobytes); larger ones are written by their own transaction, without the copy.
const GROUPED_BELOW: usize = 256 * 1024;

/// The signed receipt to answer with.
pub struct Answer {
    /// 200 for an accepted message (first delivery or a repeat), 422 for a rejected one.
    pub status: u16,
    pub receipt: Vec<u8>,
    pub signature: Vec<u8>,
    /// The stored row, for an accepted message.
    pub stored: Option<Uuid>,
    pub duplicate: bool,
}

pub async fn receive(
    ex: &Exchange,
    pool: &Pool,
    validator: &Validator,
    body: &[u8],
    signature_b64: Option<&str>,
    tls_peer_country: Option<Option<&str>>,
    committers: Option<&InboundCommit>,
) -> Result<Answer, ExchangeError> {
    let sig_b64 = signature_b64.ok_or(ExchangeError::SignatureMissing)?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64.trim())
        .map_err(|e| ExchangeError::SignatureEncoding(e.to_string()))?;
    // A signature that is not even a CMS structure is refused before the envelope is read:
    // an unauthenticated sender gets no parsing for a signature that cannot verify.
    // The usual shape is recognised without decoding it; any other goes through OpenSSL.
    if !super::signed_data::is_usual(&sig) {
        openssl::cms::CmsContentInfo::from_der(&sig).map_err(|_| {
            ExchangeError::SignatureEncoding(
                "the signature is not a DER-encoded CMS SignedData".into(),
            )
        })?;
    }
    match validator.validate(body, Some(DocKind::Envelope)) {
        Verdict::Valid(_) => {}
        Verdict::Unusable(e) => return Err(e.into()),
        Verdict::Invalid { violations, .. } => {
            return Err(ExchangeError::EnvelopeInvalid(violations))
        }
    }
    let tree = Tree::parse(body, &validator.limits)?;
    let header = envelope::header(&tree).ok_or_else(|| ExchangeError::Refused {
        code: "ENVELOPE_UNREADABLE",
        detail: "the envelope header could not be read".into(),
    })?;
    let partner = ex
        .partners
        .get(&header.sender)
        .ok_or_else(|| ExchangeError::UnknownPartner(header.sender.clone()))?;
    let signer = signature::verify_with(
        &sig,
        body,
        &partner.ca,
        &header.sender,
        &trust::Policy::from_settings(&ex.policy),
    )?;
    // On mutual TLS the connection itself must be the sender's too.
    if let Some(peer) = tls_peer_country {
        if peer != Some(header.sender.as_str()) {
            return Err(ExchangeError::TlsClientMismatch(format!(
                "the TLS client certificate is for {:?}, the message is from {}",
                peer, header.sender
            )));
        }
    }
    // A ping (the test service) is answered at once and stored nowhere.
    if header.document_type == super::ping::DOCUMENT_TYPE {
        return super::ping::answer(ex, &header, body);
    }
    let digest: [u8; 32] = Sha256::digest(body).into();

    let client = pool.get().await?;
    if let Some(earlier) = store::find(&client, &header.sender, header.message_id).await? {
        return replay(earlier, &digest, &header.sender);
    }
    drop(client);

    let reasons = check(ex, validator, &header, body, partner);
    let r = Receipt {
        message_id: Uuid::now_v7(),
        received_message_id: header.message_id,
        sender: ex.country.clone(),
        receiver: header.sender.clone(),
        digest_hex: hex::encode(digest),
        accepted: reasons.is_empty(),
        reasons,
        received_at: envelope::now_rfc3339(),
    };
    let receipt_bytes = receipt::build(&r);
    let receipt_sig = signature::sign(&ex.identity, &receipt_bytes)?;
    if !r.accepted {
        tracing::info!(sender = %header.sender, message_id = %header.message_id, "message rejected");
        return Ok(Answer {
            status: 422,
            receipt: receipt_bytes,
            signature: receipt_sig,
            stored: None,
            duplicate: false,
        });
    }
    let signer_subject = keys::subject_line(&signer);
    let stored = match committers {
        // A large message is written alone rather than copied to a committer.
        Some(committers) if body.len() < GROUPED_BELOW => {
            committers
                .insert(OwnedInbound {
                    sender: header.sender.clone(),
                    message_id: header.message_id,
                    conversation_id: header.conversation_id,
                    document_type: header.document_type.clone(),
                    function: header.function.clone(),
                    reference: header.reference.clone(),
                    previous_reference: header.previous_reference.clone(),
                    envelope: bytes::Bytes::copy_from_slice(body),
                    sha256: digest,
                    signature: sig,
                    signer_subject,
                    receipt: receipt_bytes.clone(),
                    receipt_signature: receipt_sig.clone(),
                })
                .await?
        }
        _ => {
            let mut client = pool.get().await?;
            store::insert(
                &mut client,
                &NewInbound {
                    sender: &header.sender,
                    message_id: header.message_id,
                    conversation_id: header.conversation_id,
                    document_type: &header.document_type,
                    function: &header.function,
                    reference: &header.reference,
                    previous_reference: header.previous_reference.as_deref(),
                    envelope: body,
                    sha256: &digest,
                    signature: &sig,
                    signer_subject: &signer_subject,
                    receipt: &receipt_bytes,
                    receipt_signature: &receipt_sig,
                },
            )
            .await?
        }
    };
    match stored {
        Stored::New(id) => {
            tracing::info!(sender = %header.sender, message_id = %header.message_id,
                document_type = %header.document_type, "message received");
            Ok(Answer {
                status: 200,
                receipt: receipt_bytes,
                signature: receipt_sig,
                stored: Some(id),
                duplicate: false,
            })
        }
        // A concurrent delivery of the same message got there first.
        Stored::AlreadyThere(earlier) => replay(earlier, &digest, &header.sender),
    }
}

fn replay(earlier: store::Earlier, digest: &[u8], sender: &str) -> Result<Answer, ExchangeError> {
    if earlier.sha256 != digest {
        return Err(ExchangeError::MessageIdReused {
            sender: sender.to_owned(),
        });
    }
    Ok(Answer {
        status: 200,
        receipt: earlier.receipt,
        signature: earlier.receipt_signature,
        stored: None,
        duplicate: true,
    })
}

fn reason(code: &str, text: impl Into<String>, path: Option<String>) -> Reason {
    Reason {
        code: code.to_owned(),
        text: text.into(),
        path,
    }
}

/// Why an authenticated message is rejected (empty when it is accepted).
fn check(
    ex: &Exchange,
    validator: &Validator,
    header: &envelope::Header,
    body: &[u8],
    partner: &super::partners::Partner,
) -> Vec<Reason> {
    if header.receiver != ex.country {
        return vec![reason(
            "RECEIVER_MISMATCH",
            format!(
                "this window is {}, the message is addressed to {}",
                ex.country, header.receiver
            ),
            Some("/Envelope/Header/Receiver/Country".into()),
        )];
    }
    if !partner.exchanges(&header.document_type) {
        return vec![reason(
            "DOCUMENT_NOT_EXCHANGED",
            format!(
                "{} is not exchanged with {}",
                header.document_type, header.sender
            ),
            Some("/Envelope/Header/DocumentType".into()),
        )];
    }
    let Some(kind) = envelope::kind_of(&header.document_type) else {
        return vec![reason(
            "DOCUMENT_TYPE_UNKNOWN",
            format!(
                "{} is not accepted from partner windows",
                header.document_type
            ),
            Some("/Envelope/Header/DocumentType".into()),
        )];
    };
    let Some(payload) = envelope::payload(body) else {
        return vec![reason(
            "PAYLOAD_MISSING",
            "the envelope carries no payload element",
            Some("/Envelope/Payload".into()),
        )];
    };
    match validator.validate(payload, Some(kind)) {
        Verdict::Valid(_) => Vec::new(),
        Verdict::Unusable(e) => vec![reason(
            e.code(),
            e.to_string(),
            Some("/Envelope/Payload".into()),
        )],
        Verdict::Invalid { violations, .. } => violations
            .into_iter()
            .map(|v| reason(v.code, v.message, Some(v.path)))
            .collect(),
    }
}
