//! Receipts (`urn:nsw:receipt:1`): the signed technical answer to every message.

use quick_xml::escape::escape;
use uuid::Uuid;

use crate::xml::Tree;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub text: String,
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: Uuid,
    pub received_message_id: Uuid,
    /// The window answering (the receiver of the acknowledged message).
    pub sender: String,
    pub receiver: String,
    pub digest_hex: String,
    pub accepted: bool,
    pub reasons: Vec<Reason>,
    pub received_at: String,
}

pub fn build(r: &Receipt) -> Vec<u8> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Receipt xmlns=\"urn:nsw:receipt:1\">\n",
    );
    out.push_str(&format!("  <MessageId>{}</MessageId>\n", r.message_id));
    out.push_str(&format!(
        "  <ReceivedMessageId>{}</ReceivedMessageId>\n",
        r.received_message_id
    ));
    out.push_str(&format!(
        "  <Sender>\n    <Country>{}</Country>\n  </Sender>\n",
        escape(&r.sender)
    ));
    out.push_str(&format!(
        "  <Receiver>\n    <Country>{}</Country>\n  </Receiver>\n",
        escape(&r.receiver)
    ));
    out.push_str(&format!(
        "  <ReceivedDigest algorithm=\"SHA-256\">{}</ReceivedDigest>\n",
        escape(&r.digest_hex)
    ));
    out.push_str(&format!(
        "  <Status>{}</Status>\n",
        if r.accepted { "accepted" } else { "rejected" }
    ));
    for reason in &r.reasons {
        out.push_str(&format!(
            "  <Reason>\n    <Code>{}</Code>\n    <Text>{}</Text>\n",
            escape(&reason.code),
            escape(clip(&reason.text, 512))
        ));
        if let Some(p) = reason.path.as_deref().filter(|p| p.starts_with('/')) {
            out.push_str(&format!("    <Path>{}</Path>\n", escape(clip(p, 512))));
        }
        out.push_str("  </Reason>\n");
    }
    out.push_str(&format!(
        "  <ReceivedAt>{}</ReceivedAt>\n</Receipt>\n",
        escape(&r.received_at)
    ));
    out.into_bytes()
}

fn clip(s: &str, max: usize) -> String {
    let t: String = s.chars().take(max).collect();
    if t.trim().is_empty() {
        "-".into()
    } else {
        t
    }
}

/// Reads a schema-valid receipt.
pub fn parse(tree: &Tree<'_>) -> Option<Receipt> {
    let root = crate::xml::tree::ROOT;
    let text = |chain: &str| tree.at(root, chain).map(|n| tree.text(n).to_owned());
    Some(Receipt {
        message_id: text("MessageId")?.parse().ok()?,
        received_message_id: text("ReceivedMessageId")?.parse().ok()?,
        sender: text("Sender/Country")?,
        receiver: text("Receiver/Country")?,
        digest_hex: text("ReceivedDigest")?,
        accepted: text("Status")? == "accepted",
        reasons: tree
            .children(root, "Reason")
            .map(|r| Reason {
                code: tree
                    .at(r, "Code")
                    .map(|n| tree.text(n).to_owned())
                    .unwrap_or_default(),
                text: tree
                    .at(r, "Text")
                    .map(|n| tree.text(n).to_owned())
                    .unwrap_or_default(),
                path: tree.at(r, "Path").map(|n| tree.text(n).to_owned()),
            })
            .collect(),
        received_at: text("ReceivedAt")?,
    })
}
