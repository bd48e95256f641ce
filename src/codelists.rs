//! Code lists the business rules check against, embedded from `schemas/codelists/` (see its
//! README for sources and licences). Loaded once, on first use.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

pub struct CodeLists {
    hs6: HashSet<String>,
    hs8: HashSet<String>,
    countries: HashSet<String>,
    currencies: HashSet<String>,
    units: HashSet<String>,
    transport_modes: HashSet<String>,
    /// UN/LOCODE → country (its first two letters, kept for clarity).
    ports: HashMap<String, String>,
}

/// First column of each data row (the header row is skipped; first columns are never quoted).
fn first_column(csv: &str) -> impl Iterator<Item = &str> {
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

impl CodeLists {
    pub fn get() -> &'static CodeLists {
        static LISTS: OnceLock<CodeLists> = OnceLock::new();
        LISTS.get_or_init(CodeLists::load)
    }

    fn load() -> CodeLists {
        let set = |csv: &str| first_column(csv).map(str::to_owned).collect::<HashSet<_>>();
        let hs = include_str!("../schemas/codelists/hs2022.csv");
        let hs6 = hs
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut cols = l.split(',');
                let code = cols.next()?;
                let level = cols.next()?;
                (level == "6").then(|| code.to_owned())
            })
            .collect();
        let ports = first_column(include_str!("../schemas/codelists/ports-unlocode.csv"))
            .map(|l| (l.to_owned(), l.get(..2).unwrap_or_default().to_owned()))
            .collect();
        CodeLists {
            hs6,
            hs8: set(include_str!("../schemas/codelists/hs-national.csv")),
            countries: set(include_str!("../schemas/codelists/countries.csv")),
            currencies: set(include_str!("../schemas/codelists/currencies.csv")),
            units: set(include_str!("../schemas/codelists/units-rec20.csv")),
            transport_modes: set(include_str!(
                "../schemas/codelists/transport-modes-rec19.csv"
            )),
            ports,
        }
    }

    /// A six-digit HS 2022 subheading, or an eight-digit national tariff line.
    pub fn hs_known(&self, code: &str) -> bool {
        match code.len() {
            6 => self.hs6.contains(code),
            8 => self.hs8.contains(code),
            _ => false,
        }
    }
    pub fn country_known(&self, code: &str) -> bool {
        self.countries.contains(code)
    }
    pub fn currency_known(&self, code: &str) -> bool {
        self.currencies.contains(code)
    }
    pub fn unit_known(&self, code: &str) -> bool {
        self.units.contains(code)
    }
    /// Rec 19 modes that describe a real movement of goods: 0 ("not specified") and
    /// 9 ("not applicable") have no place on a customs declaration.
    pub fn transport_mode_usable(&self, code: &str) -> bool {
        self.transport_modes.contains(code) && code != "0" && code != "9"
    }
    pub fn port_country(&self, locode: &str) -> Option<&str> {
        self.ports.get(locode).map(String::as_str)
    }
    pub fn hs_count(&self) -> (usize, usize) {
        (self.hs6.len(), self.hs8.len())
    }
}
