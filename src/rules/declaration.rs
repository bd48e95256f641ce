//! Business rules of the customs declaration (codes documented in docs/schemas.md). They run
//! only on schema-valid documents, so every required element is present; they still never
//! panic on odd input and report every violation at once.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::Checker;
use crate::codelists::CodeLists;
use crate::domain::declaration::{Declaration, Item, Party, SupportingDocument};
use crate::domain::{
    CountryCode, CurrencyCode, Direction, HsCode, Locode, TransportMode, UnitCode,
};
use crate::xml::tree::ROOT;
use crate::xml::{Tree, Violation};

/// Checks every rule; returns the typed declaration when none is broken. `today` is the
/// window's own date (its clock, in its time zone): a declaration cannot be issued after it.
pub fn check(tree: &Tree, national: &str, today: NaiveDate) -> Result<Declaration, Vec<Violation>> {
    let codes = CodeLists::get();
    let mut c = Checker::new(tree);

    let direction = match c.text_at(ROOT, "Header/Type") {
        "EX" => Direction::Export,
        _ => Direction::Import,
    };
    let issue_date = c.date_at(ROOT, "Header/IssueDate");
    if let Some(d) = issue_date.filter(|d| *d > today) {
        c.report_at(
            ROOT,
            "Header/IssueDate",
            "ISSUE_DATE_IN_FUTURE",
            format!("issue date {d} is after the window's date {today}"),
        );
    }

    let declarant = party(&mut c, codes, "Declarant");
    let exporter = party(&mut c, codes, "Exporter");
    let importer = party(&mut c, codes, "Importer");

    let export_country = country(&mut c, codes, ROOT, "ExportCountry");
    let destination = country(&mut c, codes, ROOT, "DestinationCountry");
    let (national_node, national_what) = match direction {
        Direction::Import => ("DestinationCountry", "an import's destination"),
        Direction::Export => ("ExportCountry", "an export's country of export"),
    };
    if let Some(n) = tree.child(ROOT, national_node) {
        if tree.text(n) != national {
            c.report(
                n,
                "NATIONAL_COUNTRY_MISMATCH",
                format!(
                    "{national_what} must be this window's country {national}, not '{}'",
                    tree.text(n)
                ),
            );
        }
    }
    if direction == Direction::Export && export_country == destination {
        if let Some(n) = tree.child(ROOT, "DestinationCountry") {
            c.report(
                n,
                "DESTINATION_IS_EXPORT_COUNTRY",
                format!("an export's destination cannot be its country of export ({destination})"),
            );
        }
    }

    // Transport
    let mode = c.text_at(ROOT, "Transport/Mode").to_owned();
    if !codes.transport_mode_usable(&mode) {
        if let Some(n) = tree.at(ROOT, "Transport/Mode") {
            c.report(
                n,
                "TRANSPORT_MODE_UNKNOWN",
                format!("'{mode}' is not a UN/ECE Rec 19 mode of transport (1 to 8)"),
            );
        }
    }
    let loading = port(
        &mut c,
        codes,
        "Transport/LoadingPort",
        &export_country,
        "export",
    );
    let discharge = port(
        &mut c,
        codes,
        "Transport/DischargePort",
        &destination,
        "destination",
    );
    let departure = c.date_at(ROOT, "Transport/DepartureDate");
    let arrival = c.date_at(ROOT, "Transport/ArrivalDate");
    if let (Some(d), Some(a)) = (departure, arrival) {
        if d > a {
            c.report_at(
                ROOT,
                "Transport/ArrivalDate",
                "DATE_ORDER",
                format!("arrival date {a} is before departure date {d}"),
            );
        }
    }

    // Invoice
    let currency = c.text_at(ROOT, "Invoice/Currency").to_owned();
    if !codes.currency_known(&currency) {
        c.report_at(
            ROOT,
            "Invoice/Currency",
            "CURRENCY_UNKNOWN",
            format!("'{currency}' is not an ISO 4217 currency"),
        );
    }
    let invoice_date = c.date_at(ROOT, "Invoice/Date");
    if let (Some(invoice_date), Some(issue_date)) = (invoice_date, issue_date) {
        if invoice_date > issue_date {
            c.report_at(
                ROOT,
                "Invoice/Date",
                "DATE_ORDER",
                format!(
                    "invoice date {invoice_date} is after the declaration's issue date {issue_date}"
                ),
            );
        }
    }

    // Items
    let mut items = Vec::new();
    let mut numbering_reported = false;
    let mut complete = true;
    let (mut sum_value, mut sum_gross) = (Decimal::ZERO, Decimal::ZERO);
    for (i, item) in tree.children(ROOT, "Item").enumerate() {
        let expected = i as u32 + 1;
        let number = c.int_at(item, "Number");
        if number.is_some_and(|n| n != expected) && !numbering_reported {
            let number = number.unwrap_or_default();
            numbering_reported = true;
            c.report_at(
                item,
                "Number",
                "ITEM_NUMBER_SEQUENCE",
                format!("item {expected} in document order is numbered {number}: items are numbered 1 to n without gaps"),
            );
        }
        let number = number.unwrap_or(expected);
        let hs = c.text_at(item, "HSCode").to_owned();
        if !codes.hs_known(&hs) {
            let what = if hs.len() == 8 {
                "a national tariff line"
            } else {
                "an HS 2022 subheading"
            };
            c.report_at(
                item,
                "HSCode",
                "HS_UNKNOWN",
                format!("'{hs}' is not {what}"),
            );
        }
        let origin = country(&mut c, codes, item, "Origin");
        let quantity = c.quantity_at(item, "Quantity");
        let unit = c.attr_at(item, "Quantity", "unit").to_owned();
        if !codes.unit_known(&unit) {
            if let Some(q) = tree.child(item, "Quantity") {
                c.report_attr(
                    q,
                    "unit",
                    "UNIT_UNKNOWN",
                    format!("'{unit}' is not a UN/ECE Rec 20 unit of measure"),
                );
            }
        }
        let net = c.decimal_at(item, "NetMass");
        let gross = c.decimal_at(item, "GrossMass");
        if let (Some(net), Some(gross)) = (net, gross) {
            if gross < net {
                c.report_at(
                    item,
                    "GrossMass",
                    "GROSS_BELOW_NET",
                    format!("gross mass {gross} kg is less than net mass {net} kg"),
                );
            }
        }
        let value = c.decimal_at(item, "CustomsValue");
        amount_currency(&mut c, codes, item, "CustomsValue", &currency);
        sum_value += value.unwrap_or_default();
        sum_gross += gross.unwrap_or_default();
        complete &= value.is_some() && gross.is_some();
        quoted_twice(&mut c, item);
        // A supporting document's date is read exactly, and no document is issued after the
        // window's date.
        for doc in tree.children(item, "Document") {
            if let Some(d) = c.date_at(doc, "IssueDate").filter(|d| *d > today) {
                c.report_at(
                    doc,
                    "IssueDate",
                    "ISSUE_DATE_IN_FUTURE",
                    format!("document issue date {d} is after the window's date {today}"),
                );
            }
        }
        let documents = tree
            .children(item, "Document")
            .map(|d| SupportingDocument {
                kind: tree
                    .at(d, "Type")
                    .map(|n| tree.text(n))
                    .unwrap_or_default()
                    .to_owned(),
                reference: tree
                    .at(d, "Reference")
                    .map(|n| tree.text(n))
                    .unwrap_or_default()
                    .to_owned(),
                issuer: tree.at(d, "Issuer").map(|n| tree.text(n).to_owned()),
            })
            .collect();
        // An item whose numbers could not be read is reported above; it is never recorded.
        items.push(match (quantity, net, gross, value) {
            (Some(quantity), Some(net_mass), Some(gross_mass), Some(customs_value)) => Some(Item {
                number,
                hs_code: HsCode::checked(&hs),
                description: c.text_at(item, "Description").to_owned(),
                origin,
                quantity,
                unit: UnitCode::checked(&unit),
                net_mass,
                gross_mass,
                customs_value,
                documents,
            }),
            _ => None,
        });
    }

    // Totals
    let item_count = c.int_at(ROOT, "Totals/ItemCount");
    if let Some(item_count) = item_count.filter(|n| *n as usize != items.len()) {
        c.report_at(
            ROOT,
            "Totals/ItemCount",
            "ITEM_COUNT_MISMATCH",
            format!(
                "item count says {item_count} but the declaration has {} items",
                items.len()
            ),
        );
    }
    let total_gross = c.decimal_at(ROOT, "Totals/GrossMass");
    if let Some(total_gross) = total_gross.filter(|t| complete && *t != sum_gross) {
        c.report_at(
            ROOT,
            "Totals/GrossMass",
            "TOTAL_GROSS_MASS_MISMATCH",
            format!("total gross mass {total_gross} kg differs from the items' sum {sum_gross} kg"),
        );
    }
    let total_value = c.decimal_at(ROOT, "Totals/CustomsValue");
    amount_currency(&mut c, codes, ROOT, "Totals/CustomsValue", &currency);
    if let Some(total_value) = total_value.filter(|t| complete && *t != sum_value) {
        c.report_at(
            ROOT,
            "Totals/CustomsValue",
            "TOTAL_VALUE_MISMATCH",
            format!("total customs value {total_value} differs from the items' sum {sum_value}"),
        );
    }

    // Every value the declaration records, read exactly; a value that could not be read was
    // reported where it stands, and one the schema requires but that is absent is a schema
    // problem.
    let items: Option<Vec<Item>> = items.into_iter().collect();
    let (Some(issue_date), Some(invoice_date), Some(total_gross), Some(total_value), Some(items)) =
        (issue_date, invoice_date, total_gross, total_value, items)
    else {
        let mut violations = c.finish();
        if violations.is_empty() {
            violations.push(Violation {
                line: 1,
                column: 1,
                path: tree.path(ROOT),
                code: "XSD_CONTENT",
                message: "a value the declaration schema requires is missing".into(),
            });
        }
        return Err(violations);
    };
    let violations = c.finish();
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(Declaration {
        reference: tree_text(tree, "Header/Reference"),
        direction,
        procedure_code: tree
            .at(ROOT, "Header/ProcedureCode")
            .map(|n| tree.text(n).to_owned()),
        issue_date,
        customs_office: tree_text(tree, "Header/CustomsOffice"),
        declarant,
        exporter,
        importer,
        export_country,
        destination_country: destination,
        transport_mode: TransportMode::checked(&mode),
        loading_port: loading,
        discharge_port: discharge,
        invoice_number: tree_text(tree, "Invoice/Number"),
        invoice_date,
        currency: CurrencyCode::checked(&currency),
        total_gross_mass: total_gross,
        total_customs_value: total_value,
        items,
    })
}

fn tree_text(tree: &Tree, chain: &str) -> String {
    tree.at(ROOT, chain)
        .map(|n| tree.text(n).to_owned())
        .unwrap_or_default()
}

fn country(c: &mut Checker, codes: &CodeLists, parent: usize, chain: &str) -> CountryCode {
    let code = c.text_at(parent, chain).to_owned();
    if !codes.country_known(&code) {
        c.report_at(
            parent,
            chain,
            "COUNTRY_UNKNOWN",
            format!("'{code}' is not an ISO 3166-1 alpha-2 country code"),
        );
    }
    CountryCode::checked(&code)
}

fn party(c: &mut Checker, codes: &CodeLists, element: &str) -> Party {
    let Some(node) = c.tree.child(ROOT, element) else {
        return Party {
            id: String::new(),
            name: String::new(),
            country: CountryCode::checked(""),
        };
    };
    Party {
        id: c.text_at(node, "ID").to_owned(),
        name: c.text_at(node, "Name").to_owned(),
        country: country(c, codes, node, "Address/Country"),
    }
}

fn port(
    c: &mut Checker,
    codes: &CodeLists,
    chain: &str,
    expected_country: &CountryCode,
    role: &str,
) -> Locode {
    let code = c.text_at(ROOT, chain).to_owned();
    match codes.port_country(&code) {
        None => c.report_at(
            ROOT,
            chain,
            "PORT_UNKNOWN",
            format!("'{code}' is not a UN/LOCODE location known to this window"),
        ),
        Some(country) if country != expected_country.as_str() => c.report_at(
            ROOT,
            chain,
            "PORT_COUNTRY_MISMATCH",
            format!("{code} lies in {country}, not in the {role} country {expected_country}"),
        ),
        Some(_) => {}
    }
    Locode::checked(&code)
}

fn amount_currency(c: &mut Checker, codes: &CodeLists, parent: usize, chain: &str, invoice: &str) {
    let Some(node) = c.tree.at(parent, chain) else {
        return;
    };
    let cur = c.tree.attr(node, "currency").unwrap_or_default().to_owned();
    if !codes.currency_known(&cur) {
        c.report_attr(
            node,
            "currency",
            "CURRENCY_UNKNOWN",
            format!("'{cur}' is not an ISO 4217 currency"),
        );
    } else if cur != invoice {
        c.report_attr(
            node,
            "currency",
            "CURRENCY_MISMATCH",
            format!("amount is in {cur} but the invoice currency is {invoice}"),
        );
    }
}

/// One licence quoted twice on one item (the same `LIC` reference in two `Document`s, whatever
/// their issuers say) is refused at the second quotation: the item draws once on a licence, and
/// a repeated reference is most often a mistyped second one.
fn quoted_twice(c: &mut Checker, item: usize) {
    let tree = c.tree;
    let mut seen: Vec<&str> = Vec::new();
    for doc in tree.children(item, "Document") {
        let kind = tree
            .at(doc, "Type")
            .map(|n| tree.text(n))
            .unwrap_or_default();
        let Some(reference) = tree.at(doc, "Reference").map(|n| tree.text(n)) else {
            continue;
        };
        if kind != "LIC" {
            continue;
        }
        if seen.contains(&reference) {
            c.report(
                doc,
                "LICENCE_QUOTED_TWICE",
                format!(
                    "licence {reference} is already quoted for this item: quote each licence once"
                ),
            );
        } else {
            seen.push(reference);
        }
    }
}
