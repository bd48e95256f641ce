//! Declarations meet licences. Inside the declaration's own transaction every item is matched
//! against the routing table; required documents must be referenced, referenced licences must
//! fit, and their quantities are reserved in the append-only ledger. Customs decisions later
//! commit or release those reservations (see docs/licensing.md).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::StoreError;
use crate::domain::declaration::{Declaration, Item};
use crate::domain::Direction;
use crate::routing::RoutingTable;
use crate::xml::Violation;

struct StoredLicence {
    id: Uuid,
    agency: String,
    holder: String,
    direction: String,
    valid_from: NaiveDate,
    valid_to: NaiveDate,
    lines: Vec<(i32, String, String)>, // line, hs_code, unit
}

async fn find_licence<C: GenericClient>(
    tx: &C,
    number: &str,
) -> Result<Option<StoredLicence>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT l.id, l.agency, l.holder_id, l.direction, l.valid_from, l.valid_to,
                    array_agg(x.line ORDER BY x.line), array_agg(x.hs_code ORDER BY x.line),
                    array_agg(x.unit ORDER BY x.line)
               FROM licences l JOIN licence_lines x ON x.licence_id = l.id
              WHERE l.number = $1 GROUP BY l.id",
        )
        .await?;
    Ok(tx.query_opt(&stmt, &[&number]).await?.map(|r| {
        let lines: Vec<i32> = r.get(6);
        let hs: Vec<String> = r.get(7);
        let units: Vec<String> = r.get(8);
        StoredLicence {
            id: r.get(0),
            agency: r.get(1),
            holder: r.get(2),
            direction: r.get(3),
            valid_from: r.get(4),
            valid_to: r.get(5),
            lines: lines
                .into_iter()
                .zip(hs)
                .zip(units)
                .map(|((l, h), u)| (l, h, u))
                .collect(),
        }
    }))
}

/// One item's claim on a licence line: item number, quantity, and the agency and procedure the
/// licence serves.
type Draw = (u32, Decimal, String, String);

fn item_path(d: &Declaration, item: &Item) -> String {
    if d.items.len() > 1 {
        format!("/Declaration/Item[{}]", item.number)
    } else {
        "/Declaration/Item".into()
    }
}

/// Licence and document problems of a declaration, reserving what it draws when there are
/// none. `today` is the window's date on which it accepts the declaration: a licence covers it
/// only if valid that day, whatever date the declarant wrote. Violations carry paths;
/// positions are filled in by the caller, who has the bytes.
pub async fn check_and_reserve<C: GenericClient>(
    tx: &C,
    declaration_id: Uuid,
    d: &Declaration,
    table: &RoutingTable,
    today: NaiveDate,
) -> Result<Vec<Violation>, StoreError> {
    let mut violations = Vec::new();
    let direction = d.direction.code();
    // Licences looked up once per declaration, however many items quote them.
    let mut licences: BTreeMap<String, Option<StoredLicence>> = BTreeMap::new();
    let mut draws: BTreeMap<(Uuid, i32), Vec<Draw>> = BTreeMap::new();
    let mut routing_rows: Vec<(i32, &str, &str, &str, &str)> = Vec::new();

    for item in &d.items {
        let path = item_path(d, item);
        let mut report = |code: &'static str, agency: &str, procedure: &str, reason: String| {
            violations.push(Violation {
                line: 0,
                column: 0,
                path: path.clone(),
                code,
                message: format!(
                    "item {} (HS {}): agency {agency}, procedure {procedure}: {reason}",
                    item.number, item.hs_code
                ),
            })
        };
        let country = match d.direction {
            Direction::Import => item.origin.as_str(),
            Direction::Export => d.destination_country.as_str(),
        };
        let rules = table.requirements(item.hs_code.as_str(), direction, Some(country));
        // Each licence this item must draw on, with the rule (agency, procedure) it serves.
        let mut quoted: Vec<(&str, String, String)> = Vec::new();
        for rule in &rules {
            routing_rows.push((
                item.number as i32,
                rule.agency.as_str(),
                rule.procedure.as_str(),
                rule.document.as_str(),
                rule.id.as_str(),
            ));
            let docs: Vec<_> = item
                .documents
                .iter()
                .filter(|doc| doc.kind == rule.document)
                .filter(|doc| doc.issuer.as_deref().is_none_or(|i| i == rule.agency))
                .collect();
            if docs.is_empty() {
                if rule.document == "LIC" {
                    report(
                        "LICENCE_MISSING",
                        &rule.agency,
                        &rule.procedure,
                        format!(
                            "requires a licence (LIC) issued by {}: {}",
                            rule.agency, rule.title
                        ),
                    );
                } else {
                    report(
                        "DOCUMENT_MISSING",
                        &rule.agency,
                        &rule.procedure,
                        format!("requires a {} document: {}", rule.document, rule.title),
                    );
                }
            }
            if rule.document == "LIC" {
                for doc in docs {
                    quoted.push((
                        doc.reference.as_str(),
                        rule.agency.clone(),
                        rule.procedure.clone(),
                    ));
                }
            }
        }
        // Licences quoted without a rule asking for them must still be real and fit.
        for doc in item.documents.iter().filter(|doc| doc.kind == "LIC") {
            if !quoted.iter().any(|(n, _, _)| *n == doc.reference) {
                let agency = doc.issuer.clone().unwrap_or_else(|| "(unnamed)".into());
                quoted.push((doc.reference.as_str(), agency, "(none)".into()));
            }
        }
        for (number, agency, procedure) in quoted {
            if !licences.contains_key(number) {
                let found = find_licence(tx, number).await?;
                licences.insert(number.to_owned(), found);
            }
            let Some(lic) = licences.get(number).and_then(|l| l.as_ref()) else {
                report(
                    "LICENCE_NOT_FOUND",
                    &agency,
                    &procedure,
                    format!("licence {number} is not known to the window"),
                );
                continue;
            };
            if procedure != "(none)" && lic.agency != agency {
                report(
                    "LICENCE_NOT_FOUND",
                    &agency,
                    &procedure,
                    format!(
                        "licence {number} was issued by {}, not by {agency}",
                        lic.agency
                    ),
                );
                continue;
            }
            let trader = d.trader().id.as_str();
            if lic.holder != trader {
                report(
                    "LICENCE_NOT_HOLDER",
                    &agency,
                    &procedure,
                    format!(
                        "licence {number} is held by {}, not by the {} {trader}",
                        lic.holder,
                        if direction == "IM" {
                            "importer"
                        } else {
                            "exporter"
                        }
                    ),
                );
                continue;
            }
            if today < lic.valid_from || today > lic.valid_to {
                report(
                    "LICENCE_EXPIRED",
                    &agency,
                    &procedure,
                    format!(
                        "licence {number} is valid from {} to {}, not today ({today}), when the \
                         window accepts the declaration",
                        lic.valid_from, lic.valid_to
                    ),
                );
                continue;
            }
            if lic.direction != direction {
                report(
                    "LICENCE_DIRECTION_MISMATCH",
                    &agency,
                    &procedure,
                    format!(
                        "licence {number} covers direction {}, not {direction}",
                        lic.direction
                    ),
                );
                continue;
            }
            // The most specific licence line whose HS code covers the item's.
            let Some((line, _, unit)) = lic
                .lines
                .iter()
                .filter(|(_, hs, _)| item.hs_code.as_str().starts_with(hs.as_str()))
                .max_by_key(|(_, hs, _)| hs.len())
            else {
                report(
                    "LICENCE_HS_MISMATCH",
                    &agency,
                    &procedure,
                    format!("no line of licence {number} covers HS {}", item.hs_code),
                );
                continue;
            };
            if unit != item.unit.as_str() {
                report(
                    "LICENCE_UNIT_MISMATCH",
                    &agency,
                    &procedure,
                    format!(
                        "line {line} of licence {number} is in {unit}, the item in {}",
                        item.unit
                    ),
                );
                continue;
            }
            // One draw per item and licence line, however many rules the licence serves for
            // this item (a quotation without issuer fits every LIC rule of its item).
            let on_line = draws.entry((lic.id, *line)).or_default();
            if !on_line.iter().any(|(n, ..)| *n == item.number) {
                on_line.push((
                    item.number,
                    item.quantity,
                    agency.clone(),
                    procedure.clone(),
                ));
            }
        }
    }

    if !violations.is_empty() {
        return Ok(violations);
    }

    // Lines are locked in one global order (licence id, line) so concurrent declarations
    // drawing on several lines cannot deadlock; the lock makes the balance check exact.
    let lock = tx
        .prepare_cached(
            "SELECT remaining FROM licence_lines WHERE licence_id = $1 AND line = $2 FOR UPDATE",
        )
        .await?;
    let reserve = tx
        .prepare_cached(
            "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
             VALUES ($1, $2, $3, $4, 'reserve', $5)",
        )
        .await?;
    for ((licence_id, line), items) in &draws {
        let remaining: Decimal = tx.query_one(&lock, &[licence_id, line]).await?.get(0);
        let wanted: Decimal = items.iter().map(|(_, q, _, _)| *q).sum();
        if wanted > remaining {
            let number = licences
                .iter()
                .find(|(_, l)| l.as_ref().is_some_and(|l| l.id == *licence_id))
                .map(|(n, _)| n.as_str())
                .unwrap_or_default();
            for (item_no, q, agency, procedure) in items {
                let item = d.items.iter().find(|i| i.number == *item_no);
                let path = item.map(|i| item_path(d, i)).unwrap_or_default();
                violations.push(Violation {
                    line: 0,
                    column: 0,
                    path,
                    code: "LICENCE_BALANCE_INSUFFICIENT",
                    message: format!(
                        "item {item_no}: agency {agency}, procedure {procedure}: licence {number} \
                         line {line} has {remaining} left, the declaration draws {wanted} \
                         (this item {q})"
                    ),
                });
            }
            continue;
        }
        for (item_no, q, _, _) in items {
            tx.execute(
                &reserve,
                &[licence_id, line, &declaration_id, &(*item_no as i32), q],
            )
            .await?;
        }
    }
    if !violations.is_empty() {
        return Ok(violations);
    }

    if !routing_rows.is_empty() {
        let items: Vec<i32> = routing_rows.iter().map(|r| r.0).collect();
        let agencies: Vec<&str> = routing_rows.iter().map(|r| r.1).collect();
        let procedures: Vec<&str> = routing_rows.iter().map(|r| r.2).collect();
        let documents: Vec<&str> = routing_rows.iter().map(|r| r.3).collect();
        let rule_ids: Vec<&str> = routing_rows.iter().map(|r| r.4).collect();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO declaration_routing (declaration_id, item, agency, procedure_code,
                    document_type, rule_id, routing_version)
                 SELECT $1, i, a, p, d, r, $7 FROM unnest($2::int[], $3::text[], $4::text[],
                    $5::text[], $6::text[]) AS t(i, a, p, d, r)",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &declaration_id,
                &items,
                &agencies,
                &procedures,
                &documents,
                &rule_ids,
                &table.version,
            ],
        )
        .await?;
    }
    // The declaration's `routing_version` is written by its INSERT (store::declarations).
    Ok(violations)
}

/// Settles every reservation of a declaration: `commit` when customs clears it, `release` when
/// it is rejected or withdrawn. Idempotent: entries already present are skipped by the ledger.
pub async fn settle<C: GenericClient>(
    tx: &C,
    declaration_id: Uuid,
    kind: &str,
) -> Result<u64, StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
             SELECT licence_id, line, declaration_id, item, $2, quantity FROM licence_ledger
              WHERE declaration_id = $1 AND kind = 'reserve'
              ORDER BY licence_id, line, item",
        )
        .await?;
    Ok(tx.execute(&stmt, &[&declaration_id, &kind]).await?)
}
