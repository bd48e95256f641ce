//! A customs declaration that passed the schema and every business rule.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{CountryCode, CurrencyCode, Direction, HsCode, Locode, TransportMode, UnitCode};

#[derive(Debug, Clone, Serialize)]
pub struct Party {
    pub id: String,
    pub name: String,
    pub country: CountryCode,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupportingDocument {
    /// LIC, COO, PQC … (SupportingDocumentTypeCode).
    pub kind: String,
    pub reference: String,
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub number: u32,
    pub hs_code: HsCode,
    pub description: String,
    pub origin: CountryCode,
    pub quantity: Decimal,
    pub unit: UnitCode,
    pub net_mass: Decimal,
    pub gross_mass: Decimal,
    pub customs_value: Decimal,
    pub documents: Vec<SupportingDocument>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Declaration {
    pub reference: String,
    pub direction: Direction,
    pub procedure_code: Option<String>,
    pub issue_date: NaiveDate,
    pub customs_office: String,
    pub declarant: Party,
    pub exporter: Party,
    pub importer: Party,
    pub export_country: CountryCode,
    pub destination_country: CountryCode,
    pub transport_mode: TransportMode,
    pub loading_port: Locode,
    pub discharge_port: Locode,
    pub invoice_number: String,
    pub invoice_date: NaiveDate,
    pub currency: CurrencyCode,
    pub total_gross_mass: Decimal,
    pub total_customs_value: Decimal,
    pub items: Vec<Item>,
}

impl Declaration {
    /// The trader on our side of the border: the importer of an import, the exporter of an
    /// export. Together with the declarant, the parties allowed to submit and see it.
    pub fn trader(&self) -> &Party {
        match self.direction {
            Direction::Import => &self.importer,
            Direction::Export => &self.exporter,
        }
    }
}
