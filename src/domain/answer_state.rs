//! The state machine of a document received from a partner window: customs answers it once
//! with a business response. The database's `inbound_guard()` (migrations/0003_exchange.sql)
//! allows the same single move; a test compares the two pair by pair.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Received,
    Answered,
}

impl Status {
    pub const ALL: [Status; 2] = [Status::Received, Status::Answered];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Answered => "answered",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// A received document is answered once; nothing else moves.
    pub fn can_become(self, to: Status) -> bool {
        matches!((self, to), (Status::Received, Status::Answered))
    }
}
