//! The partner table: which windows we exchange with, where they listen, which CA we pin for
//! each, which documents go to them and in which format profile.
//!
//! ```toml
//! [[partner]]
//! country = "SG"
//! endpoint = "http://127.0.0.1:8092/exchange/v1/messages"
//! ca_cert = "sg-ca.crt"          # relative to this file
//! documents = ["ACDD", "FORM_D", "BUSINESS_RESPONSE"]
//! profile = "asw"
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use openssl::x509::X509;
use serde::Deserialize;

use super::{keys, ExchangeError};

/// How our documents are shaped for a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// ASEAN Single Window: our own ACDD and Form D schemas.
    Asw,
    /// Korea: certificates of origin as `KoreaCertificateOfOrigin` (urn:nsw:partner:kr:coo:1).
    Kr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerFile {
    #[serde(default)]
    partner: Vec<PartnerEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerEntry {
    country: String,
    endpoint: String,
    ca_cert: String,
    documents: Vec<String>,
    profile: Profile,
}

#[derive(Clone)]
pub struct Partner {
    pub country: String,
    pub endpoint: String,
    pub ca: X509,
    pub documents: Vec<String>,
    pub profile: Profile,
}

impl Partner {
    pub fn exchanges(&self, document_type: &str) -> bool {
        self.documents.iter().any(|d| d == document_type)
    }
}

#[derive(Clone, Default)]
pub struct Partners {
    by_country: HashMap<String, Partner>,
}

const DOCUMENT_TYPES: [&str; 4] = [
    "ACDD",
    "FORM_D",
    "BUSINESS_RESPONSE",
    "CERTIFICATE_OF_ORIGIN_KR",
];

/// Plain HTTP carries signed messages only between processes on one machine.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.starts_with("https://") {
        return Ok(());
    }
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| {
        format!("endpoint '{endpoint}' must be https://… (mutual TLS) or http://<loopback>/…")
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "endpoint '{endpoint}': plain HTTP is allowed only on loopback"
        ))
    }
}

impl Partners {
    /// The countries whose windows exchange `document_type` with this one.
    pub fn exchanging(&self, document_type: &str) -> Vec<String> {
        let mut c: Vec<String> = self
            .by_country
            .values()
            .filter(|p| p.exchanges(document_type))
            .map(|p| p.country.clone())
            .collect();
        c.sort();
        c
    }

    pub fn load(path: &Path) -> Result<Partners, ExchangeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ExchangeError::Config(format!("partner table {}: {e}", path.display())))?;
        let file: PartnerFile = toml::from_str(&text)
            .map_err(|e| ExchangeError::Config(format!("partner table {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut partners = Partners::default();
        for p in file.partner {
            let bad = |m: String| {
                ExchangeError::Config(format!(
                    "partner table {}: {}: {m}",
                    path.display(),
                    p.country
                ))
            };
            if p.country.len() != 2 || !p.country.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad("country must be ISO 3166-1 alpha-2".into()));
            }
            check_endpoint(&p.endpoint).map_err(bad)?;
            if let Some(d) = p
                .documents
                .iter()
                .find(|d| !DOCUMENT_TYPES.contains(&d.as_str()))
            {
                return Err(bad(format!("unknown document type '{d}'")));
            }
            let ca = keys::read_cert(&base.join(&p.ca_cert))?;
            let partner = Partner {
                country: p.country.clone(),
                endpoint: p.endpoint,
                ca,
                documents: p.documents,
                profile: p.profile,
            };
            if partners
                .by_country
                .insert(p.country.clone(), partner)
                .is_some()
            {
                return Err(bad("listed twice".into()));
            }
        }
        Ok(partners)
    }

    pub fn get(&self, country: &str) -> Option<&Partner> {
        self.by_country.get(country)
    }

    pub fn insert(&mut self, p: Partner) {
        self.by_country.insert(p.country.clone(), p);
    }

    pub fn countries(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_country.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// ASEAN member states: exports to them produce an ACDD and, with a certificate, a Form D.
pub const ASEAN: [&str; 10] = ["BN", "KH", "ID", "LA", "MY", "MM", "PH", "SG", "TH", "VN"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_endpoint("http://127.0.0.1:8092/exchange/v1/messages").is_ok());
        assert!(check_endpoint("http://localhost:1/x").is_ok());
        assert!(check_endpoint("http://[::1]:8080/x").is_ok());
        assert!(check_endpoint("http://10.0.0.1:8092/x").is_err());
        assert!(check_endpoint("http://sg.example/x").is_err());
        assert!(check_endpoint("ftp://127.0.0.1/x").is_err());
        assert!(check_endpoint("https://sg.example/exchange/v1/messages").is_ok());
    }
}
