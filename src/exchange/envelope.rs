//! The exchange envelope (`urn:nsw:envelope:1`): header fields in, bytes out, and back.
//!
//! The payload is carried verbatim: when building, the document's bytes (without their XML
//! declaration) are placed inside `<Payload>`; when receiving, the exact byte range of the
//! payload element is cut out of the envelope and validated on its own against the schema of
//! its namespace. A payload must therefore declare its own namespace on its root element (our
//! documents always do), not rely on prefixes declared on the envelope.

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::escape::escape;
use uuid::Uuid;

use crate::xml::{DocKind, Tree};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub sender: String,
    pub sender_party: Option<String>,
    pub receiver: String,
    pub receiver_party: Option<String>,
    pub document_type: String,
    pub function: String,
    pub reference: String,
    pub previous_reference: Option<String>,
    pub created_at: String,
}

/// The payload kind each envelope document type must carry.
pub fn kind_of(document_type: &str) -> Option<DocKind> {
    Some(match document_type {
        "ACDD" => DocKind::Acdd,
        "FORM_D" => DocKind::CertificateOfOrigin,
        "BUSINESS_RESPONSE" => DocKind::BusinessResponse,
        "CERTIFICATE_OF_ORIGIN_KR" => DocKind::KrCoo,
        _ => return None,
    })
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `payload` without a leading BOM, XML declaration and whitespace.
pub fn strip_prolog(payload: &[u8]) -> &[u8] {
    let mut p = payload.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(payload);
    if p.starts_with(b"<?xml") {
        if let Some(end) = p.windows(2).position(|w| w == b"?>") {
            p = &p[end + 2..];
        }
    }
    let start = p
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(p.len());
    let end = p
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &p[start..end.max(start)]
}

fn endpoint(out: &mut String, tag: &str, country: &str, party: Option<&str>) {
    out.push_str(&format!(
        "    <{tag}>\n      <Country>{}</Country>\n",
        escape(country)
    ));
    if let Some(p) = party {
        out.push_str(&format!("      <PartyId>{}</PartyId>\n", escape(p)));
    }
    out.push_str(&format!("    </{tag}>\n"));
}

/// The envelope bytes: these exact bytes are signed, sent, stored and acknowledged.
pub fn build(h: &Header, payload: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope xmlns=\"urn:nsw:envelope:1\">\n  <Header>\n");
    out.push_str(&format!("    <MessageId>{}</MessageId>\n", h.message_id));
    out.push_str(&format!(
        "    <ConversationId>{}</ConversationId>\n",
        h.conversation_id
    ));
    endpoint(&mut out, "Sender", &h.sender, h.sender_party.as_deref());
    endpoint(
        &mut out,
        "Receiver",
        &h.receiver,
        h.receiver_party.as_deref(),
    );
    out.push_str(&format!(
        "    <DocumentType>{}</DocumentType>\n    <Function>{}</Function>\n    <Reference>{}</Reference>\n",
        escape(&h.document_type),
        escape(&h.function),
        escape(&h.reference)
    ));
    if let Some(p) = &h.previous_reference {
        out.push_str(&format!(
            "    <PreviousReference>{}</PreviousReference>\n",
            escape(p)
        ));
    }
    out.push_str(&format!(
        "    <CreatedAt>{}</CreatedAt>\n  </Header>\n  <Payload>\n",
        escape(&h.created_at)
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(strip_prolog(payload));
    bytes.extend_from_slice(b"\n  </Payload>\n</Envelope>\n");
    bytes
}

/// Reads the header of a schema-valid envelope.
pub fn header(tree: &Tree<'_>) -> Option<Header> {
    let h = tree.child(crate::xml::tree::ROOT, "Header")?;
    let text = |chain: &str| tree.at(h, chain).map(|n| tree.text(n).to_owned());
    Some(Header {
        message_id: text("MessageId")?.parse().ok()?,
        conversation_id: text("ConversationId")?.parse().ok()?,
        sender: text("Sender/Country")?,
        sender_party: text("Sender/PartyId"),
        receiver: text("Receiver/Country")?,
        receiver_party: text("Receiver/PartyId"),
        document_type: text("DocumentType")?,
        function: text("Function")?,
        reference: text("Reference")?,
        previous_reference: text("PreviousReference"),
        created_at: text("CreatedAt")?,
    })
}

/// The exact bytes of the one element inside `<Payload>`.
pub fn payload(envelope: &[u8]) -> Option<&[u8]> {
    crate::xml::second_level_child(envelope, b"Payload")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_comes_back_byte_for_byte() {
        let doc = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ACDD xmlns=\"urn:nsw:acdd:1\"><A>x &amp; y</A><B/></ACDD>\n";
        let h = Header {
            message_id: Uuid::now_v7(),
            conversation_id: Uuid::now_v7(),
            sender: "VN".into(),
            sender_party: None,
            receiver: "SG".into(),
            receiver_party: Some("SG-CUSTOMS".into()),
            document_type: "ACDD".into(),
            function: "submit".into(),
            reference: "R-1".into(),
            previous_reference: None,
            created_at: now_rfc3339(),
        };
        let env = build(&h, doc);
        assert_eq!(payload(&env), Some(strip_prolog(doc)));
        let tree = Tree::parse(&env, &crate::xml::Limits::default()).unwrap();
        assert_eq!(header(&tree), Some(h));
    }
}
