//! The state machine of an outbound exchange message. The same table is enforced by the database
//! trigger `outbox_guard()` (migrations/0003_exchange.sql); a test checks the two agree on every pair.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Sending,
    RetryWait,
    Delivered,
    Rejected,
    DeadLetter,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Sending,
        Status::RetryWait,
        Status::Delivered,
        Status::Rejected,
        Status::DeadLetter,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::RetryWait => "retry_wait",
            Status::Delivered => "delivered",
            Status::Rejected => "rejected",
            Status::DeadLetter => "dead_letter",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a message may move from `self` to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Pending, Sending)
                | (RetryWait, Sending)
                | (Sending, Delivered | Rejected | RetryWait | DeadLetter)
                // only an operator's requeue, with the same message id
                | (DeadLetter, Pending)
        )
    }

    /// Delivered and rejected messages have their answer; nothing moves them again.
    pub fn is_final(self) -> bool {
        Status::ALL.iter().all(|&to| !self.can_become(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_receipts_end_a_message_and_only_dead_letters_come_back() {
        assert!(Status::Delivered.is_final());
        assert!(Status::Rejected.is_final());
        assert!(!Status::DeadLetter.is_final());
        for from in Status::ALL {
            // A message is delivered only from an attempt in flight, never from a failure.
            assert_eq!(
                from.can_become(Status::Delivered),
                from == Status::Sending,
                "{from:?}"
            );
            assert_eq!(
                from.can_become(Status::Pending),
                from == Status::DeadLetter,
                "{from:?}"
            );
        }
    }
}
