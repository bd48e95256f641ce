//! The state machine of a customs declaration (the dossier customs decides on). The database
//! holds the same table (`declaration_transitions`, migrations/0002_ministries.sql) and its
//! trigger `guard_transition()` refuses every other change of status, a status "moving" to
//! itself included (migrations/0011_decisions_once.sql); a test compares the two pair by pair.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = DeclarationStatus)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Accepted,
    UnderInspection,
    Cleared,
    Rejected,
    Withdrawn,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Accepted,
        Status::UnderInspection,
        Status::Cleared,
        Status::Rejected,
        Status::Withdrawn,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::UnderInspection => "under_inspection",
            Status::Cleared => "cleared",
            Status::Rejected => "rejected",
            Status::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a declaration may move from `self` to `to`. Staying put is not a move: a
    /// decision that already took effect is refused, not repeated.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Accepted, UnderInspection | Cleared | Rejected | Withdrawn)
                | (UnderInspection, Cleared | Rejected)
        )
    }

    /// Cleared, rejected and withdrawn declarations are decided for good.
    pub fn is_final(self) -> bool {
        Status::ALL.iter().all(|&to| !self.can_become(to))
    }
}

/// What a customs officer or the declarant decides about a declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Clear,
    Reject,
    Hold,
    /// By the declarant or trader, before customs decides.
    Withdraw,
}

impl Action {
    /// The actions a customs officer may take (withdrawal is the submitter's).
    pub const CUSTOMS: [Action; 3] = [Action::Clear, Action::Reject, Action::Hold];

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Clear => "clear",
            Action::Reject => "reject",
            Action::Hold => "hold",
            Action::Withdraw => "withdraw",
        }
    }

    /// A customs officer's action by name.
    pub fn parse(s: &str) -> Option<Action> {
        Action::CUSTOMS.into_iter().find(|a| a.as_str() == s)
    }

    /// The status the action moves a declaration to.
    pub const fn target(self) -> Status {
        match self {
            Action::Clear => Status::Cleared,
            Action::Reject => Status::Rejected,
            Action::Hold => Status::UnderInspection,
            Action::Withdraw => Status::Withdrawn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_status_moves_to_itself_and_decided_declarations_stay_decided() {
        for s in Status::ALL {
            assert!(!s.can_become(s), "{s:?}");
        }
        assert!(Status::Cleared.is_final());
        assert!(Status::Rejected.is_final());
        assert!(Status::Withdrawn.is_final());
        assert!(!Status::Accepted.is_final());
        assert!(!Status::UnderInspection.is_final());
        for a in Action::CUSTOMS {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("withdraw"), None);
    }
}
