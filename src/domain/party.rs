//! Parties that call the API, and what each role may do.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Enterprise,
    Ministry,
    Customs,
    Partner,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Enterprise => "enterprise",
            Role::Ministry => "ministry",
            Role::Customs => "customs",
            Role::Partner => "partner",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "enterprise" => Role::Enterprise,
            "ministry" => Role::Ministry,
            "customs" => Role::Customs,
            "partner" => Role::Partner,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub party_id: String,
    pub role: Role,
    pub agency: Option<String>,
}

impl Principal {
    /// Customs and administrators see every declaration; enterprises only their own.
    pub fn sees_all_declarations(&self) -> bool {
        matches!(self.role, Role::Customs | Role::Admin)
    }
}
