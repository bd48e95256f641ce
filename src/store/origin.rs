//! Proof of origin on import: an item of an import declaration that quotes a certificate of
//! origin (`Document/Type = COO`) is held to the e-Form D received from the export country's
//! window, inside the declaration's own transaction. Enforced only for export countries whose
//! windows send us Form Ds (the caller says which); elsewhere a COO reference stays a paper
//! reference that nothing here can check.

use deadpool_postgres::GenericClient;

use super::{inbound, StoreError};
use crate::domain::declaration::Declaration;
use crate::domain::Direction;
use crate::xml::tree::ROOT;
use crate::xml::{DocKind, Limits, Tree, Violation};

/// The HS codes a received certificate covers, read from the payload of its stored envelope
/// (our Form D or Korea's format).
fn covered_hs(envelope: &[u8]) -> Option<Vec<String>> {
    let payload = crate::xml::second_level_child(envelope, b"Payload")?;
    let tree = Tree::parse(payload, &Limits::default()).ok()?;
    let (items, code) = if tree.root_ns == DocKind::KrCoo.namespace() {
        (tree.child(ROOT, "GoodsList")?, "HsCode")
    } else {
        (ROOT, "HSCode")
    };
    let parent_name = if items == ROOT { "Item" } else { "Goods" };
    Some(
        tree.children(items, parent_name)
            .filter_map(|i| tree.child(i, code))
            .map(|n| tree.text(n).trim().to_owned())
            .collect(),
    )
}

fn six(hs: &str) -> &str {
    hs.get(..6).unwrap_or(hs)
}

/// One violation per item and quoted certificate that does not hold. Paths are filled in as
/// the ledger's are; positions by the caller.
pub async fn check<C: GenericClient>(
    tx: &C,
    d: &Declaration,
    enforced_from: &[String],
) -> Result<Vec<Violation>, StoreError> {
    let export = d.export_country.as_str();
    if d.direction != Direction::Import || !enforced_from.iter().any(|c| c == export) {
        return Ok(Vec::new());
    }
    let mut violations = Vec::new();
    for item in &d.items {
        let path = if d.items.len() > 1 {
            format!("/Declaration/Item[{}]", item.number)
        } else {
            "/Declaration/Item".into()
        };
        for doc in item.documents.iter().filter(|x| x.kind == "COO") {
            let mut report = |code: &'static str, reason: String| {
                violations.push(Violation {
                    line: 0,
                    column: 0,
                    path: path.clone(),
                    code,
                    message: format!(
                        "item {} (HS {}): certificate of origin {}: {reason}",
                        item.number, item.hs_code, doc.reference
                    ),
                })
            };
            let Some(row) = inbound::certificate_of_origin(tx, &doc.reference).await? else {
                report(
                    "ORIGIN_CERTIFICATE_NOT_FOUND",
                    format!("no e-Form D with this reference was received from {export}"),
                );
                continue;
            };
            if row.sender != export {
                report(
                    "ORIGIN_CERTIFICATE_MISMATCH",
                    format!(
                        "it was received from {}, not from the export country {export}",
                        row.sender
                    ),
                );
                continue;
            }
            let covered = match inbound::raw(tx, row.id).await? {
                Some([envelope, ..]) => covered_hs(&envelope).unwrap_or_default(),
                None => Vec::new(),
            };
            if !covered.iter().any(|h| six(h) == six(item.hs_code.as_str())) {
                report(
                    "ORIGIN_CERTIFICATE_MISMATCH",
                    format!(
                        "it covers HS {}, not the item's subheading {}",
                        if covered.is_empty() {
                            "nothing readable".to_owned()
                        } else {
                            covered.join(", ")
                        },
                        six(item.hs_code.as_str())
                    ),
                );
            }
        }
    }
    Ok(violations)
}
