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

/// Checks every rule; returns the typed declaration when none is broken.
pub fn check(tree: &Tree, national: &str) -> Result<Declaration, Vec<Violation>> {
    let codes = CodeLists::get();
    let mut c = Checker::new(tree);

    let direction = match c.text_at(ROOT, "Header/Type") {
        "EX" => Direction::Export,
        _ => Direction::Import,
    };
    let issue_date = c.date_at(ROOT, "Header/IssueDate");

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
    let departure = c.opt_date_at(ROOT, "Transport/DepartureDate");
    let arrival = c.opt_date_at(ROOT, "Transport/ArrivalDate");
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

    // Items
    let mut items = Vec::new();
    let mut numbering_reported = false;
    let (mut sum_value, mut sum_gross) = (Decimal::ZERO, Decimal::ZERO);
    for (i, item) in tree.children(ROOT, "Item").enumerate() {
        let expected = i as u32 + 1;
        let number = c.text_at(item, "Number").parse::<u32>().unwrap_or(0);
        if number != expected && !numbering_reported {
            numbering_reported = true;
            c.report_at(
                item,
                "Number",
                "ITEM_NUMBER_SEQUENCE",
                format!("item {expected} in document order is numbered {number}: items are numbered 1 to n without gaps"),
            );
        }
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
        let quantity = c.decimal_at(item, "Quantity");
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
        if gross < net {
            c.report_at(
                item,
                "GrossMass",
                "GROSS_BELOW_NET",
                format!("gross mass {gross} kg is less than net mass {net} kg"),
            );
        }
        let value = c.decimal_at(item, "CustomsValue");
        amount_currency(&mut c, codes, item, "CustomsValue", &currency);
        sum_value += value;
        sum_gross += gross;
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
        items.push(Item {
            number,
            hs_code: HsCode::checked(&hs),
            description: c.text_at(item, "Description").to_owned(),
            origin,
            quantity,
            unit: UnitCode::checked(&unit),
            net_mass: net,
            gross_mass: gross,
            customs_value: value,
            documents,
        });
    }

    // Totals
    let item_count = c
        .text_at(ROOT, "Totals/ItemCount")
        .parse::<usize>()
        .unwrap_or(0);
    if item_count != items.len() {
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
    if total_gross != sum_gross {
        c.report_at(
            ROOT,
            "Totals/GrossMass",
            "TOTAL_GROSS_MASS_MISMATCH",
            format!("total gross mass {total_gross} kg differs from the items' sum {sum_gross} kg"),
        );
    }
    let total_value = c.decimal_at(ROOT, "Totals/CustomsValue");
    amount_currency(&mut c, codes, ROOT, "Totals/CustomsValue", &currency);
    if total_value != sum_value {
        c.report_at(
            ROOT,
            "Totals/CustomsValue",
            "TOTAL_VALUE_MISMATCH",
            format!("total customs value {total_value} differs from the items' sum {sum_value}"),
        );
    }

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

/// xs:date allows a trailing time zone; the calendar date is what the rules compare.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}
