//! Routing rules: which agency and procedure a good needs, as data. A rule matches on an HS code
//! prefix (chapter, heading, subheading or national line), a direction and optionally a country;
//! within one agency the most specific matching rule wins (see docs/routing.md).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// The table shipped with the service, installed as version 1 on a database that has none.
pub const DEFAULT_TABLE: &str = include_str!("../../fixtures/routing/rules.toml");

/// Supporting document kinds a rule may require (SupportingDocumentTypeCode).
pub const DOCUMENT_TYPES: [&str; 8] = ["LIC", "COO", "PQC", "VHC", "FSN", "QIC", "CAT", "OTH"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    pub code: String,
    pub name: String,
    pub ministry: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = RoutingRule)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    /// 2, 4, 6 or 8 digits: chapter, heading, subheading or national tariff line.
    pub hs: String,
    /// IM, EX or TR.
    pub direction: String,
    /// Country of origin (imports) or destination (exports); absent: any country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub agency: String,
    pub procedure: String,
    /// The supporting document the declaration item must reference (LIC, PQC, VHC …).
    pub document: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_days: Option<u32>,
    pub fee_vnd: u64,
}

/// The routing table as written in fixtures/routing/rules.toml and exchanged by the admin API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = RoutingTable)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub agencies: Vec<Agency>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleError {
    pub rule: Option<String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("routing table unreadable: {0}")]
    Syntax(String),
    #[error("routing table has {} problem(s)", .0.len())]
    Invalid(Vec<RuleError>),
}

impl Rule {
    /// The time limit in working minutes. A limit in days is that many whole working days of the
    /// calendar the clock runs on (`Calendar::working_day_minutes`), so that "5 days" is met
    /// exactly by five full working days, whatever length the configured day has.
    pub fn sla_minutes(&self, working_day_minutes: u32) -> u32 {
        match (self.sla_hours, self.sla_days) {
            (Some(h), _) => h * 60,
            (None, Some(d)) => d * working_day_minutes,
            (None, None) => 0,
        }
    }

    fn specificity(&self) -> (usize, bool) {
        (self.hs.len(), self.country.is_some())
    }
}

/// A validated table with the version it was stored under.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    pub version: i32,
    pub spec: TableSpec,
}

impl TableSpec {
    pub fn from_toml(text: &str) -> Result<TableSpec, RoutingError> {
        let spec: TableSpec =
            toml::from_str(text).map_err(|e| RoutingError::Syntax(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Every problem at once, each naming its rule.
    pub fn validate(&self) -> Result<(), RoutingError> {
        let mut errors = Vec::new();
        let mut err = |rule: Option<&str>, message: String| {
            errors.push(RuleError {
                rule: rule.map(str::to_owned),
                message,
            })
        };
        let mut agencies = HashSet::new();
        for a in &self.agencies {
            if !agency_code_ok(&a.code) {
                err(
                    None,
                    format!("agency code '{}' is not like MOIT or MARD-PPD", a.code),
                );
            }
            if a.name.trim().is_empty() || a.name.chars().count() > 140 {
                err(
                    None,
                    format!("agency {} needs a name of 1 to 140 characters", a.code),
                );
            }
            if !agencies.insert(a.code.as_str()) {
                err(None, format!("agency {} is listed twice", a.code));
            }
        }
        if self.rules.is_empty() {
            err(None, "a routing table needs at least one rule".into());
        }
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for r in &self.rules {
            let id = Some(r.id.as_str());
            if r.id.is_empty() || r.id.len() > 64 {
                err(id, "rule id must be 1 to 64 characters".into());
            }
            if !ids.insert(r.id.as_str()) {
                err(id, format!("rule id {} is used twice", r.id));
            }
            if !matches!(r.hs.len(), 2 | 4 | 6 | 8) || !r.hs.bytes().all(|b| b.is_ascii_digit()) {
                err(id, format!("hs '{}' must be 2, 4, 6 or 8 digits", r.hs));
            }
            if !matches!(r.direction.as_str(), "IM" | "EX" | "TR") {
                err(
                    id,
                    format!("direction '{}' must be IM, EX or TR", r.direction),
                );
            }
            if let Some(c) = &r.country {
                if !crate::codelists::CodeLists::get().country_known(c) {
                    err(
                        id,
                        format!("country '{c}' is not an ISO 3166-1 alpha-2 code"),
                    );
                }
            }
            if !agencies.contains(r.agency.as_str()) {
                err(
                    id,
                    format!("agency {} is not in the agencies list", r.agency),
                );
            }
            if r.procedure.is_empty() || r.procedure.len() > 40 {
                err(id, "procedure code must be 1 to 40 characters".into());
            }
            if !DOCUMENT_TYPES.contains(&r.document.as_str()) {
                err(
                    id,
                    format!(
                        "document '{}' must be one of {}",
                        r.document,
                        DOCUMENT_TYPES.join(", ")
                    ),
                );
            }
            match (r.sla_hours, r.sla_days) {
                (Some(h), None) if (1..=10_000).contains(&h) => {}
                (None, Some(d)) if (1..=1_000).contains(&d) => {}
                _ => err(
                    id,
                    "give exactly one of sla_hours (1..10000) or sla_days (1..1000)".into(),
                ),
            }
            // Two rules of one agency on the same goods would make the winner arbitrary.
            let key = (&r.hs, &r.direction, &r.country, &r.agency);
            if !keys.insert(key) {
                err(
                    id,
                    format!(
                        "another rule of {} already covers {} {} {}",
                        r.agency,
                        r.hs,
                        r.direction,
                        r.country.as_deref().unwrap_or("(any country)")
                    ),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RoutingError::Invalid(errors))
        }
    }
}

fn agency_code_ok(code: &str) -> bool {
    let b = code.as_bytes();
    (2..=20).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'-')
}

impl RoutingTable {
    pub fn agency(&self, code: &str) -> Option<&Agency> {
        self.spec.agencies.iter().find(|a| a.code == code)
    }

    /// The rules a good must satisfy: for each agency with a matching rule, its most specific
    /// one (longest HS prefix, then a country-specific rule before a general one). Sorted by
    /// agency code.
    pub fn requirements(&self, hs: &str, direction: &str, country: Option<&str>) -> Vec<&Rule> {
        let mut best: BTreeMap<&str, &Rule> = BTreeMap::new();
        for r in self.spec.rules.iter().filter(|r| {
            r.direction == direction
                && hs.starts_with(r.hs.as_str())
                && r.country.as_deref().is_none_or(|c| Some(c) == country)
        }) {
            let slot = best.entry(r.agency.as_str()).or_insert(r);
            if r.specificity() > slot.specificity() {
                *slot = r;
            }
        }
        best.into_values().collect()
    }
}

/// The supporting document a licence application of type `application_type` results in.
pub fn document_for_application(application_type: &str) -> &'static str {
    match application_type {
        "PQC" => "PQC",
        "VHC" => "VHC",
        "FSN" => "FSN",
        "QIC" => "QIC",
        "CAT" => "CAT",
        "OTH" => "OTH",
        // IML, EXL, AIL and CITES permits are all quoted as licences (LIC) in declarations.
        _ => "LIC",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RoutingTable {
        RoutingTable {
            version: 1,
            spec: TableSpec::from_toml(DEFAULT_TABLE).expect("shipped table is valid"),
        }
    }

    #[test]
    fn shipped_table_is_large_enough() {
        let t = table();
        assert!(t.spec.agencies.len() >= 12, "{}", t.spec.agencies.len());
        assert!(t.spec.rules.len() >= 40, "{}", t.spec.rules.len());
    }

    #[test]
    fn longest_prefix_of_an_agency_wins_and_agencies_accumulate() {
        let t = table();
        let got: Vec<(&str, &str)> = t
            .requirements("10063099", "EX", Some("PH"))
            .iter()
            .map(|r| (r.agency.as_str(), r.document.as_str()))
            .collect();
        assert_eq!(got, vec![("MARD-PPD", "PQC"), ("MOIT", "LIC")]);
        // heading 8517 wants type approval; subheading 851762 adds the frequency licence
        let got: Vec<&str> = t
            .requirements("85176251", "IM", Some("KR"))
            .iter()
            .map(|r| r.agency.as_str())
            .collect();
        assert_eq!(got, vec!["MIC-ARFM", "MIC-VNTA"]);
    }

    #[test]
    fn country_specific_rules_apply_only_to_their_country() {
        let t = table();
        assert!(t.requirements("09011110", "EX", Some("ID")).is_empty());
        let mm = t.requirements("09011110", "EX", Some("MM"));
        assert_eq!(mm.len(), 1);
        assert_eq!(mm[0].country.as_deref(), Some("MM"));
    }

    #[test]
    fn direction_matters() {
        let t = table();
        assert!(t.requirements("72044900", "EX", Some("JP")).is_empty());
        assert_eq!(
            t.requirements("72044900", "IM", Some("US"))[0].agency,
            "MONRE"
        );
    }

    #[test]
    fn a_limit_in_days_counts_the_configured_working_day() {
        let t = table();
        let rice = t.spec.rules.iter().find(|r| r.id == "moit-rice-export");
        let rice = rice.expect("moit-rice-export in the shipped table");
        assert_eq!(rice.sla_days, Some(5));
        // 08:00-16:00 and 07:30-17:00 working days
        assert_eq!(rice.sla_minutes(8 * 60), 5 * 8 * 60);
        assert_eq!(rice.sla_minutes(9 * 60 + 30), 5 * (9 * 60 + 30));
        // a limit in hours does not depend on the day
        let hours = Rule {
            sla_hours: Some(24),
            sla_days: None,
            ..rice.clone()
        };
        assert_eq!(hours.sla_minutes(8 * 60), 24 * 60);
        assert_eq!(hours.sla_minutes(9 * 60 + 30), 24 * 60);
    }

    #[test]
    fn validation_names_each_broken_rule() {
        let mut spec = table().spec;
        spec.rules[0].hs = "123".into();
        spec.rules[1].agency = "NOPE".into();
        let dup = spec.rules[2].clone();
        spec.rules.push(Rule {
            id: "dup".into(),
            ..dup
        });
        let Err(RoutingError::Invalid(errors)) = spec.validate() else {
            panic!("accepted a broken table")
        };
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
