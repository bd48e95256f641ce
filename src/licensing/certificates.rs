//! Certificates of origin (ATIGA Form D) applied for through the window. The exporter's Form D
//! is the application; it travels the licence-application state machine as type `COO`, and on
//! issuance the window writes the reference, the issue date and the issuing authority into the
//! exporter's own bytes, leaving everything else exactly as applied for.

use chrono::NaiveDate;
use quick_xml::escape::escape;

use super::documents::{Address, Application, GoodsLine, Party};
use crate::codelists::CodeLists;
use crate::rules::Checker;
use crate::xml::tree::ROOT;
use crate::xml::{Tree, Violation};

/// The application type a Form D application is stored under.
pub const APPLICATION_TYPE: &str = "COO";
/// A Form D is valid for one year from its issue date (ATIGA Annex 8, rule 10).
pub const VALIDITY_DAYS: i64 = 365;

fn party(c: &mut Checker, node: usize) -> Party {
    let opt = |c: &Checker, chain: &str| {
        let t = c.text_at(node, chain);
        (!t.is_empty()).then(|| t.to_owned())
    };
    let country = c.text_at(node, "Address/Country").to_owned();
    if !CodeLists::get().country_known(&country) {
        c.report_at(
            node,
            "Address/Country",
            "COUNTRY_UNKNOWN",
            format!("'{country}' is not an ISO 3166-1 alpha-2 country code"),
        );
    }
    Party {
        id: c.text_at(node, "ID").to_owned(),
        name: c.text_at(node, "Name").to_owned(),
        address: Address {
            street: opt(c, "Address/Street"),
            city: c.text_at(node, "Address/City").to_owned(),
            post_code: opt(c, "Address/PostCode"),
            country,
        },
    }
}

/// Reads a schema-valid Form D applied for by an exporter of `home` (this window's country) as
/// an application: the exporter applies, the goods are the items (gross mass in KGM or the
/// stated quantity), valid from `today` for a year. Every problem is reported at once.
pub fn read_application(
    tree: &Tree<'_>,
    home: &str,
    today: NaiveDate,
) -> Result<Application, Vec<Violation>> {
    let mut c = Checker::new(tree);
    let lists = CodeLists::get();
    let export_country = c.text_at(ROOT, "ExportCountry").to_owned();
    let import_country = c.text_at(ROOT, "ImportCountry").to_owned();
    if export_country != home {
        c.report_at(
            ROOT,
            "ExportCountry",
            "ORIGIN_EXPORT_COUNTRY",
            format!(
                "this window issues certificates for exports from {home}, not {export_country}"
            ),
        );
    }
    for (chain, code) in [
        ("ExportCountry", &export_country),
        ("ImportCountry", &import_country),
    ] {
        if !lists.country_known(code) {
            c.report_at(
                ROOT,
                chain,
                "COUNTRY_UNKNOWN",
                format!("'{code}' is not an ISO 3166-1 alpha-2 country code"),
            );
        }
    }
    if import_country == export_country {
        c.report_at(
            ROOT,
            "ImportCountry",
            "ORIGIN_SAME_COUNTRY",
            "a certificate of origin is for goods leaving their country".into(),
        );
    }
    let applicant = tree
        .child(ROOT, "Exporter")
        .map(|n| party(&mut c, n))
        .unwrap_or_else(|| Party {
            id: String::new(),
            name: String::new(),
            address: Address {
                street: None,
                city: String::new(),
                post_code: None,
                country: String::new(),
            },
        });
    let mut lines = Vec::new();
    for (i, item) in tree.children(ROOT, "Item").enumerate() {
        let expected = i as u32 + 1;
        let number = c.int_at(item, "Number");
        if let Some(number) = number.filter(|n| *n != expected) {
            c.report_at(
                item,
                "Number",
                "LINE_NUMBER_SEQUENCE",
                format!("item {expected} is numbered {number}"),
            );
        }
        let number = number.unwrap_or(expected) as i32;
        let hs_code = c.text_at(item, "HSCode").to_owned();
        if !lists.hs_known(&hs_code) {
            c.report_at(
                item,
                "HSCode",
                "HS_UNKNOWN",
                format!("'{hs_code}' is not an HS 2022 subheading or national line"),
            );
        }
        // The application records the goods as a quantity (more than zero, at most 15 digits
        // before the point): a gross mass of 0 cannot stand for them.
        let (quantity, unit) = if tree.child(item, "GrossMass").is_some() {
            (c.quantity_at(item, "GrossMass"), "KGM".to_owned())
        } else {
            (
                c.quantity_at(item, "Quantity"),
                c.attr_at(item, "Quantity", "unit").to_owned(),
            )
        };
        let description = c.text_at(item, "Description").to_owned();
        lines.push(quantity.map(|quantity| GoodsLine {
            number,
            hs_code,
            description,
            quantity,
            unit,
        }));
    }
    let violations = c.finish();
    if !violations.is_empty() {
        return Err(violations);
    }
    let Some(lines) = lines.into_iter().collect::<Option<Vec<_>>>() else {
        return Err(vec![Violation {
            line: 1,
            column: 1,
            path: tree.path(ROOT),
            code: "XSD_CONTENT",
            message: "an item's quantity the schema requires is missing".into(),
        }]);
    };
    Ok(Application {
        // The exporter's own number for the draft; the window gives the certificate its own.
        reference: tree
            .at(ROOT, "ReferenceNumber")
            .map(|n| tree.text(n).to_owned())
            .unwrap_or_default(),
        application_type: APPLICATION_TYPE.into(),
        direction: "EX".into(),
        agency: None,
        applicant,
        export_country,
        import_country,
        valid_from: today,
        valid_to: today + chrono::Duration::days(VALIDITY_DAYS),
        lines,
    })
}

/// What the issuing agency writes into the certificate.
pub struct Issue<'a> {
    pub reference: &'a str,
    pub issue_date: NaiveDate,
    pub authority_code: &'a str,
    pub authority_name: &'a str,
    pub authority_country: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("the stored Form D cannot be completed: {0}")]
pub struct FillError(String);

/// The byte range of a leaf element's content: from after its start tag to its end tag.
fn content_span(tree: &Tree<'_>, node: usize) -> Result<(usize, usize), FillError> {
    let src = tree.src;
    let start = tree.offset(node);
    let gt = src[start..]
        .iter()
        .position(|&b| b == b'>')
        .map(|i| start + i)
        .ok_or_else(|| FillError("unterminated start tag".into()))?;
    if gt > 0 && src[gt - 1] == b'/' {
        return Err(FillError(format!("{} is empty", tree.path(node))));
    }
    let qname_end = src[start + 1..gt]
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .map_or(gt, |i| start + 1 + i);
    let close = [b"</".as_slice(), &src[start + 1..qname_end]].concat();
    let end = src[gt + 1..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map(|i| gt + 1 + i)
        .ok_or_else(|| FillError(format!("{} has no end tag", tree.path(node))))?;
    Ok((gt + 1, end))
}

/// The applied-for Form D with the issuer's fields written in; every other byte is the
/// exporter's. The result must still be checked against the schema by the caller.
pub fn fill(draft: &[u8], tree: &Tree<'_>, issue: &Issue<'_>) -> Result<Vec<u8>, FillError> {
    // The tree's offsets count from after a byte-order mark; so does the certificate written.
    let draft = crate::xml::without_bom(draft);
    let date = issue.issue_date.format("%Y-%m-%d").to_string();
    let fields = [
        ("ReferenceNumber", issue.reference),
        ("IssueDate", date.as_str()),
        ("IssuingAuthority/Code", issue.authority_code),
        ("IssuingAuthority/Name", issue.authority_name),
        ("IssuingAuthority/Country", issue.authority_country),
    ];
    let mut spans = Vec::with_capacity(fields.len());
    for (chain, value) in fields {
        let node = tree
            .at(ROOT, chain)
            .ok_or_else(|| FillError(format!("no {chain}")))?;
        let (from, to) = content_span(tree, node)?;
        spans.push((from, to, escape(value).into_owned()));
    }
    spans.sort_by_key(|s| s.0);
    let mut out = Vec::with_capacity(draft.len() + 64);
    let mut at = 0;
    for (from, to, value) in spans {
        out.extend_from_slice(&draft[at..from]);
        out.extend_from_slice(value.as_bytes());
        at = to;
    }
    out.extend_from_slice(&draft[at..]);
    Ok(out)
}

/// Who issues Form Ds and under which procedure. Certificates of origin are not goods-specific,
/// so they are not in the HS-keyed routing table (where a rule would also make every export
/// declaration quote one); the agency must still be one of the table's agencies.
pub const AGENCY: &str = "MOIT";
pub const PROCEDURE: &str = "MOIT-COO-FORM-D";
/// Form Ds are issued within eight working hours of a complete application (Decree
/// 31/2018/ND-CP, art. 15).
pub const SLA_HOURS: u32 = 8;

fn rule() -> crate::routing::Rule {
    crate::routing::Rule {
        id: "moit-form-d".into(),
        hs: "00".into(),
        direction: "EX".into(),
        country: None,
        agency: AGENCY.into(),
        procedure: PROCEDURE.into(),
        document: "COO".into(),
        title: "Certificate of origin, ATIGA Form D".into(),
        sla_hours: Some(SLA_HOURS),
        sla_days: None,
        fee_vnd: 0,
    }
}

/// An exporter (`applicant`, its party id) applies for a Form D with the Form D itself (its
/// reference and issue date are drafts the window replaces on issuance): schema and rules, the
/// applicant is the document's exporter, Industry and Trade is in the routing table; then the
/// application (type `COO`) is stored with its document, event and audit entry. Answers the
/// receipt, as for any licence application.
pub async fn apply(
    ctx: &super::Context<'_>,
    applicant: &str,
    bytes: &[u8],
) -> Result<crate::store::licensing::ApplicationReceipt, crate::workflow::WorkflowError> {
    use crate::workflow::WorkflowError;
    use crate::xml::DocKind;
    use sha2::Digest;
    let tree = match crate::xml::check(bytes, ctx.limits, Some(DocKind::CertificateOfOrigin)) {
        Err(e) => return Err(WorkflowError::Xml(e)),
        Ok(Err(refused)) => return Err(WorkflowError::Invalid(refused.violations)),
        Ok(Ok(valid)) => valid.tree,
    };
    let app = read_application(&tree, &ctx.settings.country, ctx.today)
        .map_err(WorkflowError::Invalid)?;
    if app.applicant.id != applicant {
        return Err(WorkflowError::Forbidden {
            code: "PARTY_MISMATCH",
            detail: format!(
                "you ({applicant}) may apply only as the exporter, not for {}",
                app.applicant.id
            ),
        });
    }
    let mut client = ctx.pool.get().await?;
    let table = ctx.routing.current(&client).await?;
    if table.agency(AGENCY).is_none() {
        return Err(WorkflowError::Invalid(vec![Violation {
            line: 1,
            column: 1,
            path: "/CertificateOfOrigin".into(),
            code: "ROUTING_NO_RULE",
            message: format!("the routing table has no agency {AGENCY} to issue Form Ds"),
        }]));
    }
    let rule = rule();
    let sha256: [u8; 32] = sha2::Sha256::digest(bytes).into();
    let receipt = crate::store::licensing::submit_application(
        &mut client,
        crate::store::licensing::NewApplication {
            applicant,
            document_kind: DocKind::CertificateOfOrigin.name(),
            body: bytes,
            sha256,
            application: &app,
            rule: &rule,
            routing_version: table.version,
            country: &ctx.settings.country,
            sla_minutes: rule.sla_minutes(ctx.calendar.working_day_minutes()),
            // A Form D is free (the rule's fee is 0).
            fee: None,
        },
    )
    .await?;
    Ok(receipt)
}

/// Issues the certificate for a `COO` application under review, inside the caller's
/// transaction (already holding the application's row lock), and commits: the reference is
/// drawn, the exporter's bytes completed, checked against the schema and signed with the
/// agency's key; the application moves to `issued`; the e-Form D is enqueued for the import
/// country's window when it takes one (cause `form-d:<application id>`: one per certificate);
/// document and certificate row are stored. All of it or nothing.
pub async fn issue(
    ctx: &super::Context<'_>,
    tx: deadpool_postgres::Transaction<'_>,
    agency: &str,
    agency_name: &str,
    actor: &str,
    app: &Application,
    id: uuid::Uuid,
) -> Result<super::Decided, crate::workflow::WorkflowError> {
    use crate::exchange::form_d;
    use crate::exchange::outbox::Cause;
    use crate::store::certificates::{self as store, NewCertificate};
    use crate::store::licensing::{self as applications, AppScope, Status};
    use crate::workflow::WorkflowError;
    use crate::xml::DocKind;

    let draft = store::draft(&tx, id).await?;
    let tree = Tree::parse(&draft, ctx.limits)?;
    let reference = store::next_reference(&tx, &app.export_country, &app.import_country).await?;
    let issue_date = ctx.today;
    let bytes = fill(
        &draft,
        &tree,
        &Issue {
            reference: &reference,
            issue_date,
            authority_code: agency,
            authority_name: agency_name,
            authority_country: &ctx.settings.country,
        },
    )
    .map_err(|e| WorkflowError::Internal(e.to_string()))?;
    // A certificate the schema would refuse is never stored, signed or sent.
    match crate::xml::check(&bytes, ctx.limits, Some(DocKind::CertificateOfOrigin)) {
        Ok(Ok(_)) => {}
        other => {
            return Err(WorkflowError::Internal(format!(
                "completed certificate {reference} is not schema-valid: {:?}",
                other.err()
            )))
        }
    }
    let key = super::signing::agency_key(&tx, agency, ctx.settings).await?;
    let signature =
        super::signing::sign_detached(&key.private_key_pem, &key.certificate_pem, &bytes)
            .map_err(|e| WorkflowError::Internal(e.to_string()))?;
    let note = format!("certificate of origin {reference} issued");
    let application = applications::transition(
        &tx,
        &AppScope::Agency(agency),
        id,
        Status::Issued,
        actor,
        Some(&note),
    )
    .await?;
    // The e-Form D leaves with the decision or not at all: same transaction.
    let sent = match ctx
        .exchange
        .filter(|ex| form_d::partner_takes(&ex.partners, &app.import_country))
    {
        Some(ex) => {
            let prepared = form_d::prepare(&bytes, &ex.partners)?;
            let (receiver, document_type) = (prepared.receiver.clone(), prepared.document_type);
            let cause = Cause::FormD(id);
            let queued =
                form_d::enqueue(&tx, ctx.settings, &ex.identity, prepared, cause, actor).await?;
            Some(super::EFormD {
                message_id: queued.message_id,
                conversation_id: queued.conversation_id,
                receiver,
                document_type,
            })
        }
        None => None,
    };
    store::insert(
        &tx,
        &NewCertificate {
            reference: &reference,
            application_id: id,
            agency,
            exporter_id: &app.applicant.id,
            export_country: &app.export_country,
            import_country: &app.import_country,
            issue_date,
            body: &bytes,
            signature: &signature,
            outbox_message: sent.as_ref().map(|s| s.message_id),
            actor,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(super::Decided::Certificate {
        application,
        certificate_reference: reference,
        e_form_d: sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM_D: &[u8] =
        include_bytes!("../../fixtures/valid/certificate-of-origin/vn-sg-form-d.xml");

    #[test]
    fn fill_changes_only_the_issuer_fields() {
        let tree = Tree::parse(FORM_D, &Default::default()).expect("fixture parses");
        let out = fill(
            FORM_D,
            &tree,
            &Issue {
                reference: "VN-SG-26-0000007",
                issue_date: NaiveDate::from_ymd_opt(2026, 6, 1).expect("date"),
                authority_code: "MOIT",
                authority_name: "Agency of Foreign Trade & Co",
                authority_country: "VN",
            },
        )
        .expect("fills");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("<ReferenceNumber>VN-SG-26-0000007</ReferenceNumber>"));
        assert!(text.contains("<IssueDate>2026-06-01</IssueDate>"));
        assert!(text.contains("<Name>Agency of Foreign Trade &amp; Co</Name>"));
        assert!(text.contains("<Code>MOIT</Code>"));
        let original = std::str::from_utf8(FORM_D).expect("utf-8");
        let tail = &original[original.find("<Exporter>").expect("exporter")..];
        assert!(text.ends_with(tail));
    }

    #[test]
    fn a_prefixed_document_keeps_its_prefixes() {
        let src = String::from_utf8(FORM_D.to_vec())
            .expect("utf-8")
            .replace(
                "<CertificateOfOrigin xmlns=",
                "<co:CertificateOfOrigin xmlns:co=",
            )
            .replace("</CertificateOfOrigin>", "</co:CertificateOfOrigin>")
            .replace("<ReferenceNumber>", "<co:ReferenceNumber>")
            .replace("</ReferenceNumber>", "</co:ReferenceNumber>");
        let tree = Tree::parse(src.as_bytes(), &Default::default()).expect("parses");
        let out = fill(
            src.as_bytes(),
            &tree,
            &Issue {
                reference: "R-1",
                issue_date: NaiveDate::from_ymd_opt(2026, 6, 1).expect("date"),
                authority_code: "MOIT",
                authority_name: "n",
                authority_country: "VN",
            },
        )
        .expect("fills");
        assert!(String::from_utf8(out)
            .expect("utf-8")
            .contains("<co:ReferenceNumber>R-1</co:ReferenceNumber>"));
    }
}
