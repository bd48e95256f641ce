//! The state machine of a licence application (certificates of origin included). The database
//! holds the same table (`licence_application_transitions`, migrations/0002_ministries.sql) and
//! its trigger `guard_transition()` refuses every other change of status, a status "moving" to
//! itself included (migrations/0011_decisions_once.sql); a test compares the two pair by pair.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ApplicationStatus)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Submitted,
    /// Its fee is due: visible to the agency, not decidable, and its time limit not running.
    AwaitingPayment,
    Received,
    SupplementRequested,
    Supplemented,
    UnderReview,
    Issued,
    Refused,
    Withdrawn,
    /// Its fee was not paid by the due date.
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Submitted,
        Status::AwaitingPayment,
        Status::Received,
        Status::SupplementRequested,
        Status::Supplemented,
        Status::UnderReview,
        Status::Issued,
        Status::Refused,
        Status::Withdrawn,
        Status::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::AwaitingPayment => "awaiting_payment",
            Status::Received => "received",
            Status::SupplementRequested => "supplement_requested",
            Status::Supplemented => "supplemented",
            Status::UnderReview => "under_review",
            Status::Issued => "issued",
            Status::Refused => "refused",
            Status::Withdrawn => "withdrawn",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether an application may move from `self` to `to`. Staying put is not a move: a
    /// decision that already took effect is refused, not repeated. An application awaiting its
    /// fee moves only when the fee is paid (`received`), when the applicant withdraws it, or
    /// when the payments job cancels it after its due date: no officer's decision applies.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Submitted, Received | AwaitingPayment)
                | (AwaitingPayment, Received | Withdrawn | Cancelled)
                | (Received | UnderReview | Supplemented, SupplementRequested)
                | (SupplementRequested, Supplemented)
                | (Received | Supplemented, UnderReview)
                | (UnderReview, Issued | Refused)
                | (
                    Submitted | Received | SupplementRequested | Supplemented | UnderReview,
                    Withdrawn
                )
        )
    }

    /// Issued, refused, withdrawn and cancelled applications are decided for good.
    pub fn is_final(self) -> bool {
        Status::ALL.iter().all(|&to| !self.can_become(to))
    }

    /// Awaiting the agency (what an officer's inbox shows by default).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Status::Received
                | Status::SupplementRequested
                | Status::Supplemented
                | Status::UnderReview
        )
    }

    /// Whether the status records a decision (and so a decision time).
    pub fn is_decision(self) -> bool {
        matches!(self, Status::Issued | Status::Refused)
    }
}

/// What an officer of the agency decides about an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Review,
    RequestSupplement,
    Issue,
    Refuse,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Review,
        Action::RequestSupplement,
        Action::Issue,
        Action::Refuse,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Review => "review",
            Action::RequestSupplement => "request_supplement",
            Action::Issue => "issue",
            Action::Refuse => "refuse",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub const fn target(self) -> Status {
        match self {
            Action::Review => Status::UnderReview,
            Action::RequestSupplement => Status::SupplementRequested,
            Action::Issue => Status::Issued,
            Action::Refuse => Status::Refused,
        }
    }

    /// Whether the officer must say why.
    pub const fn needs_reason(self) -> bool {
        matches!(self, Action::RequestSupplement | Action::Refuse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_status_moves_to_itself_and_decisions_are_final() {
        for s in Status::ALL {
            assert!(!s.can_become(s), "{s:?}");
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for s in [
            Status::Issued,
            Status::Refused,
            Status::Withdrawn,
            Status::Cancelled,
        ] {
            assert!(s.is_final(), "{s:?}");
        }
        // An application awaiting its fee is not the agency's to decide, nor pending with it.
        assert!(!Status::AwaitingPayment.is_pending());
        for a in Action::ALL {
            assert!(!Status::AwaitingPayment.can_become(a.target()), "{a:?}");
        }
        // Only an application under review is decided.
        for s in Status::ALL {
            assert_eq!(s.can_become(Status::Issued), s == Status::UnderReview);
        }
    }
}
