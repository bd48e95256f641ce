//! The ASEAN Customs Declaration Document, built from an export declaration as stored: the
//! dossier (reference, status, direction) and the declaration's own XML in `documents`.

use quick_xml::escape::escape;
use uuid::Uuid;

use super::{partners::ASEAN, ExchangeError};
use crate::store::outbox as store;
use crate::xml::tree::ROOT;
use crate::xml::{Limits, Tree};

/// An ACDD ready to be put in an envelope.
#[derive(Debug, Clone)]
pub struct Acdd {
    pub reference: String,
    pub declaration_reference: String,
    pub destination: String,
    pub xml: Vec<u8>,
}

fn refused(code: &'static str, detail: impl Into<String>) -> ExchangeError {
    ExchangeError::Refused {
        code,
        detail: detail.into(),
    }
}

/// Builds the ACDD of an export declaration to an ASEAN country. The declaration must have
/// passed intake (status accepted, under inspection or cleared).
pub async fn from_declaration<C: deadpool_postgres::GenericClient>(
    client: &C,
    declaration_id: Uuid,
) -> Result<Acdd, ExchangeError> {
    let d = store::declaration_source(client, declaration_id)
        .await?
        .ok_or(ExchangeError::Store(crate::store::StoreError::NotFound))?;
    if d.direction != "EX" {
        return Err(refused(
            "NOT_AN_EXPORT",
            format!(
                "declaration {} is an import; ACDDs go with exports",
                d.reference
            ),
        ));
    }
    if !ASEAN.contains(&d.destination.as_str()) || d.destination == d.export_country {
        return Err(refused(
            "NOT_TO_ASEAN",
            format!(
                "declaration {} goes to {}, not another ASEAN member state",
                d.reference, d.destination
            ),
        ));
    }
    use crate::domain::declaration_state::Status;
    if !matches!(
        Status::parse(&d.status),
        Some(Status::Accepted | Status::UnderInspection | Status::Cleared)
    ) {
        return Err(refused(
            "DECLARATION_STATE",
            format!("declaration {} is {}", d.reference, d.status),
        ));
    }
    let xml = build(&d.reference, &d.body)?;
    Ok(Acdd {
        reference: acdd_reference(&d.reference),
        declaration_reference: d.reference,
        destination: d.destination,
        xml,
    })
}

/// `VN-DEC-2026-000123` → `VN-DEC-2026-000123-ACDD`.
pub fn acdd_reference(declaration_reference: &str) -> String {
    format!("{declaration_reference}-ACDD")
}

struct Writer<'t, 'a> {
    tree: &'t Tree<'a>,
    out: String,
}

impl Writer<'_, '_> {
    fn text(&self, id: usize, chain: &str) -> Option<String> {
        self.tree
            .at(id, chain)
            .map(|n| escape(self.tree.text(n)).into_owned())
    }

    fn el(&mut self, indent: usize, name: &str, value: &str) {
        self.out
            .push_str(&format!("{:indent$}<{name}>{value}</{name}>\n", ""));
    }

    fn copy(
        &mut self,
        indent: usize,
        name: &str,
        from: usize,
        chain: &str,
    ) -> Result<(), ExchangeError> {
        let v = self
            .text(from, chain)
            .ok_or_else(|| ExchangeError::Refused {
                code: "DECLARATION_UNREADABLE",
                detail: format!("the stored declaration has no {chain}"),
            })?;
        self.el(indent, name, &v);
        Ok(())
    }

    fn copy_opt(&mut self, indent: usize, name: &str, from: usize, chain: &str) {
        if let Some(v) = self.text(from, chain) {
            self.el(indent, name, &v);
        }
    }

    fn party(&mut self, name: &str, from: &str) -> Result<(), ExchangeError> {
        let p = self.tree.child(ROOT, from).ok_or(ExchangeError::Refused {
            code: "DECLARATION_UNREADABLE",
            detail: format!("the stored declaration has no {from}"),
        })?;
        self.out.push_str(&format!("  <{name}>\n"));
        self.copy(4, "ID", p, "ID")?;
        self.copy(4, "Name", p, "Name")?;
        self.out.push_str("    <Address>\n");
        self.copy_opt(6, "Street", p, "Address/Street");
        self.copy(6, "City", p, "Address/City")?;
        self.copy_opt(6, "PostCode", p, "Address/PostCode");
        self.copy(6, "Country", p, "Address/Country")?;
        self.out.push_str(&format!("    </Address>\n  </{name}>\n"));
        Ok(())
    }
}

/// Maps the declaration XML onto the ACDD's 15 data elements.
pub fn build(
    declaration_reference: &str,
    declaration_xml: &[u8],
) -> Result<Vec<u8>, ExchangeError> {
    let tree = Tree::parse(declaration_xml, &Limits::default())?;
    let mut w = Writer {
        tree: &tree,
        out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ACDD xmlns=\"urn:nsw:acdd:1\">\n  <Header>\n"),
    };
    let reference = escape(acdd_reference(declaration_reference)).into_owned();
    w.el(4, "Reference", &reference);
    w.el(4, "ExportDeclarationNumber", &escape(declaration_reference));
    w.copy(4, "ExportDeclarationDate", ROOT, "Header/IssueDate")?;
    w.copy_opt(4, "ExportCustomsOffice", ROOT, "Header/CustomsOffice");
    w.out.push_str("  </Header>\n");
    w.party("Exporter", "Exporter")?;
    w.party("Consignee", "Importer")?;
    w.out.push_str("  <Transport>\n");
    w.copy(4, "Mode", ROOT, "Transport/Mode")?;
    w.copy_opt(4, "MeansName", ROOT, "Transport/MeansName");
    w.copy_opt(4, "MeansId", ROOT, "Transport/MeansId");
    w.copy_opt(4, "DepartureDate", ROOT, "Transport/DepartureDate");
    w.out.push_str("  </Transport>\n");
    w.copy(2, "LoadingPort", ROOT, "Transport/LoadingPort")?;
    w.copy(2, "DischargePort", ROOT, "Transport/DischargePort")?;
    w.copy(2, "ExportCountry", ROOT, "ExportCountry")?;
    w.copy(2, "DestinationCountry", ROOT, "DestinationCountry")?;
    let items: Vec<usize> = tree.children(ROOT, "Item").collect();
    for item in items {
        w.out.push_str("  <Item>\n");
        w.copy(4, "Number", item, "Number")?;
        w.copy(4, "HSCode", item, "HSCode")?;
        w.copy(4, "Description", item, "Description")?;
        let q = tree.child(item, "Quantity").ok_or(ExchangeError::Refused {
            code: "DECLARATION_UNREADABLE",
            detail: "an item has no Quantity".into(),
        })?;
        let unit = escape(tree.attr(q, "unit").unwrap_or("")).into_owned();
        let qty = escape(tree.text(q)).into_owned();
        w.out
            .push_str(&format!("    <Quantity unit=\"{unit}\">{qty}</Quantity>\n"));
        w.copy(4, "GrossMass", item, "GrossMass")?;
        w.copy_opt(4, "NetMass", item, "NetMass");
        // An export's customs value is declared on an FOB basis, which is what data element
        // 14 asks for.
        let v = tree
            .child(item, "CustomsValue")
            .ok_or(ExchangeError::Refused {
                code: "DECLARATION_UNREADABLE",
                detail: "an item has no CustomsValue".into(),
            })?;
        let currency = escape(tree.attr(v, "currency").unwrap_or("")).into_owned();
        let value = escape(tree.text(v)).into_owned();
        w.out.push_str(&format!(
            "    <FOBValue currency=\"{currency}\">{value}</FOBValue>\n"
        ));
        w.copy(4, "Origin", item, "Origin")?;
        let coo = tree
            .children(item, "Document")
            .find(|&d| tree.at(d, "Type").map(|t| tree.text(t)) == Some("COO"));
        if let Some(d) = coo {
            w.out.push_str("    <CertificateOfOrigin>\n");
            w.copy(6, "Reference", d, "Reference")?;
            w.copy_opt(6, "IssueDate", d, "IssueDate");
            w.out.push_str("    </CertificateOfOrigin>\n");
        }
        w.out.push_str("  </Item>\n");
    }
    w.out.push_str("</ACDD>\n");
    Ok(w.out.into_bytes())
}

/// An ACDD written to the outbox.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = AcddQueued)]
pub struct Queued {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub receiver: String,
    pub reference: String,
    pub declaration_reference: String,
}

/// Builds the ACDD of an export declaration and writes it to the outbox for its destination's
/// window, in the caller's transaction. `None` when no partner window takes ACDDs from us for
/// that destination (the declaration is not an ASEAN export, or its window is not connected).
/// A declaration has one ACDD: its cause is `acdd:<declaration id>`, and a second enqueue (a
/// repeated clearance, an operator's send after the clearance's) is refused by the database.
pub async fn enqueue_for_declaration(
    tx: &deadpool_postgres::Transaction<'_>,
    exchange: &super::Exchange,
    settings: &crate::config::Settings,
    declaration_id: Uuid,
    actor: &str,
) -> Result<Option<Queued>, ExchangeError> {
    let a = from_declaration(tx, declaration_id).await?;
    let Some(partner) = exchange
        .partners
        .get(&a.destination)
        .filter(|p| p.exchanges("ACDD"))
    else {
        return Ok(None);
    };
    let queued = super::outbox::enqueue(
        tx,
        settings,
        &exchange.identity,
        super::outbox::NewMessage {
            cause: super::outbox::Cause::Acdd(declaration_id),
            receiver: partner.country.clone(),
            document_type: "ACDD".into(),
            function: "submit".into(),
            reference: a.reference.clone(),
            previous_reference: None,
            conversation_id: None,
            payload: a.xml,
            actor: actor.to_owned(),
        },
    )
    .await?;
    Ok(Some(Queued {
        message_id: queued.message_id,
        conversation_id: queued.conversation_id,
        receiver: partner.country.clone(),
        reference: a.reference,
        declaration_reference: a.declaration_reference,
    }))
}
