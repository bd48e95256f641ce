//! Typed documents. Values here have passed the schema and the business rules, so code past
//! intake never re-checks strings.

pub mod answer_state;
pub mod application_state;
pub mod declaration;
pub mod declaration_state;
pub mod fee_state;
pub mod licence;
pub mod message_state;
pub mod party;

use serde::{Deserialize, Serialize};

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a code already checked against its list by the rules.
            pub(crate) fn checked(code: &str) -> Self {
                $name(code.to_owned())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_type!(
    /// HS 2022 six-digit subheading or eight-digit national tariff line.
    HsCode
);
code_type!(
    /// ISO 3166-1 alpha-2 country code.
    CountryCode
);
code_type!(
    /// ISO 4217 currency code.
    CurrencyCode
);
code_type!(
    /// UN/ECE Recommendation 20 unit of measure.
    UnitCode
);
code_type!(
    /// UN/LOCODE location (port, airport, border crossing).
    Locode
);
code_type!(
    /// UN/ECE Recommendation 19 mode of transport.
    TransportMode
);

impl HsCode {
    /// The two-digit chapter, four-digit heading, six-digit subheading and so on: every prefix
    /// a routing rule may be written against.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        [2, 4, 6, 8]
            .into_iter()
            .filter(|&n| n <= self.0.len())
            .map(|n| &self.0[..n])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    #[serde(rename = "IM")]
    Import,
    #[serde(rename = "EX")]
    Export,
}

impl Direction {
    pub fn code(self) -> &'static str {
        match self {
            Direction::Import => "IM",
            Direction::Export => "EX",
        }
    }
}
