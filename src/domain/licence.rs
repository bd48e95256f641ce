//! Licence applications and electronic licences as typed values, past their schema and rules
//! (read by `licensing::documents`, stored by `store::licensing`).

use chrono::NaiveDate;
use rust_decimal::Decimal;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub street: Option<String>,
    pub city: String,
    pub post_code: Option<String>,
    pub country: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Party {
    pub id: String,
    pub name: String,
    pub address: Address,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GoodsLine {
    pub number: i32,
    pub hs_code: String,
    pub description: String,
    pub quantity: Decimal,
    pub unit: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Application {
    pub reference: String,
    pub application_type: String,
    pub direction: String,
    pub agency: Option<String>,
    pub applicant: Party,
    pub export_country: String,
    pub import_country: String,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub lines: Vec<GoodsLine>,
}

impl Application {
    /// The foreign country a routing rule's `country` is compared with: where imports come
    /// from, where exports go.
    pub fn partner_country(&self) -> &str {
        if self.direction == "IM" {
            &self.export_country
        } else {
            &self.import_country
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Licence {
    pub number: String,
    pub licence_type: String,
    pub agency: String,
    pub holder: Party,
    pub direction: String,
    pub issue_date: NaiveDate,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub lines: Vec<GoodsLine>,
}
