//! Answering a document a partner window sent us: customs' decision becomes a
//! `BusinessResponse` (`urn:nsw:business-response:1`, written with quick-xml's writer) sent back
//! to the sender in the same conversation. The received message moves `received → answered`
//! (`domain::answer_state`) in the transaction that enqueues the response, whose cause is
//! `response:<inbound id>`: a document is answered once, and a repeat changes nothing.

use deadpool_postgres::Pool;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use serde::Serialize;
use uuid::Uuid;

use super::envelope;
use super::outbox::{self, Cause, NewMessage};
use super::{Exchange, ExchangeError};
use crate::config::Settings;
use crate::store::{inbound as store, StoreError};
use crate::workflow::WorkflowError;

/// One reason of a decision.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = BusinessReason)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub code: String,
    pub text: String,
    pub path: Option<String>,
}

/// What the business response says.
pub struct Response<'a> {
    pub response_id: &'a str,
    /// The answered document's reference and type.
    pub reference: &'a str,
    pub document_type: &'a str,
    pub decision: &'a str,
    pub reasons: &'a [Reason],
    pub decided_at: &'a str,
    /// This window's country: the authority is its customs.
    pub country: &'a str,
}

/// The response document.
pub fn build(r: &Response<'_>) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let text = |w: &mut Writer<Vec<u8>>, name: &str, value: &str| {
        w.create_element(name)
            .write_text_content(BytesText::new(value))
            .map(|_| ())
    };
    let written: std::io::Result<()> = (|| {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("BusinessResponse")
            .with_attribute(("xmlns", "urn:nsw:business-response:1"))
            .write_inner_content(|w| {
                text(w, "ResponseId", r.response_id)?;
                text(w, "Reference", r.reference)?;
                text(w, "DocumentType", r.document_type)?;
                text(w, "Decision", r.decision)?;
                for reason in r.reasons {
                    w.create_element("Reason").write_inner_content(|w| {
                        text(w, "Code", &reason.code)?;
                        text(w, "Text", &reason.text)?;
                        if let Some(p) = &reason.path {
                            text(w, "Path", p)?;
                        }
                        Ok(())
                    })?;
                }
                text(w, "DecidedAt", r.decided_at)?;
                w.create_element("Authority").write_inner_content(|w| {
                    text(w, "Code", &format!("{}-CUSTOMS", r.country))?;
                    text(w, "Name", &format!("{} Customs", r.country))?;
                    text(w, "Country", r.country)
                })?;
                Ok(())
            })?;
        Ok(())
    })();
    // Writing into a Vec cannot fail.
    debug_assert!(written.is_ok());
    let mut out = w.into_inner();
    out.push(b'\n');
    out
}

/// The decisions a document of `document_type` may get, or `None` when it is not answered.
pub fn decisions_for(document_type: &str) -> Option<&'static [&'static str]> {
    match document_type {
        "ACDD" => Some(&["accepted", "rejected"]),
        "FORM_D" | "CERTIFICATE_OF_ORIGIN_KR" => Some(&[
            "accepted",
            "rejected",
            "preference-granted",
            "preference-not-granted",
        ]),
        _ => None,
    }
}

/// The response as enqueued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BusinessResponse)]
pub struct Responded {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub response_id: String,
    pub receiver: String,
    pub reference: String,
    pub decision: String,
}

/// Customs' decision on received message `id`, sent back to its sender.
pub async fn respond(
    pool: &Pool,
    ex: &Exchange,
    settings: &Settings,
    id: Uuid,
    actor: &str,
    decision: &str,
    reasons: &[Reason],
) -> Result<Responded, WorkflowError> {
    let mut client = pool.get().await?;
    let msg = store::get(&client, id).await?.ok_or(StoreError::NotFound)?;
    let allowed = decisions_for(&msg.document_type).ok_or_else(|| WorkflowError::Conflict {
        code: "NOT_ANSWERABLE",
        detail: format!(
            "a {} is not answered with a business response",
            msg.document_type
        ),
    })?;
    if !allowed.contains(&decision) {
        return Err(WorkflowError::bad_request(
            "DECISION_UNKNOWN",
            format!(
                "the decision on a {} is one of {}",
                msg.document_type,
                allowed.join(", ")
            ),
        ));
    }
    if matches!(decision, "rejected" | "preference-not-granted") && reasons.is_empty() {
        return Err(WorkflowError::bad_request(
            "REASON_REQUIRED",
            "a refusal needs at least one reason",
        ));
    }
    if !ex
        .partners
        .get(&msg.sender)
        .is_some_and(|pt| pt.exchanges("BUSINESS_RESPONSE"))
    {
        return Err(ExchangeError::Refused {
            code: "NO_PARTNER",
            detail: format!("business responses are not exchanged with {}", msg.sender),
        }
        .into());
    }
    let cause = Cause::Response(id);
    let response_id = format!(
        "{}-BR-{}",
        ex.country,
        &cause.message_id(&settings.country).simple().to_string()[..20]
    );
    let payload = build(&Response {
        response_id: &response_id,
        reference: &msg.reference,
        document_type: &msg.document_type,
        decision,
        reasons,
        decided_at: &envelope::now_rfc3339(),
        country: &ex.country,
    });
    let tx = client.transaction().await?;
    // The state first: a document already answered stops here, before anything is written.
    store::mark_answered(&tx, id, actor, cause.message_id(&settings.country)).await?;
    let queued = outbox::enqueue(
        &tx,
        settings,
        &ex.identity,
        NewMessage {
            cause,
            receiver: msg.sender.clone(),
            document_type: "BUSINESS_RESPONSE".into(),
            function: "response".into(),
            reference: response_id.clone(),
            previous_reference: Some(msg.reference.clone()),
            conversation_id: Some(msg.conversation_id),
            payload,
            actor: actor.to_owned(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Responded {
        message_id: queued.message_id,
        conversation_id: queued.conversation_id,
        response_id,
        receiver: msg.sender,
        reference: msg.reference,
        decision: decision.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_escaped_and_complete() {
        let xml = build(&Response {
            response_id: "VN-BR-1",
            reference: "SG-DEC-<1>&",
            document_type: "ACDD",
            decision: "rejected",
            reasons: &[Reason {
                code: "X".into(),
                text: "a < b".into(),
                path: Some("/ACDD".into()),
            }],
            decided_at: "2026-03-16T07:32:05Z",
            country: "VN",
        });
        let s = String::from_utf8(xml).unwrap();
        assert!(s.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(
            s.contains("<Reference>SG-DEC-&lt;1&gt;&amp;</Reference>"),
            "{s}"
        );
        assert!(s.contains("<Text>a &lt; b</Text>"), "{s}");
        assert!(s.contains("<Code>VN-CUSTOMS</Code>"), "{s}");
    }
}
