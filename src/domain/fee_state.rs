//! The state machines of fees paid online (docs/payments.md): a fee notice, an order at the
//! payment platform as the window knows it, and a refund. The database holds the same tables
//! (`fee_notice_transitions`, `payment_order_transitions`, `refund_transitions`,
//! migrations/0016_payments.sql) and `guard_transition()` refuses every other change, a status
//! "moving" to itself included; a test compares them pair by pair.

use serde::Serialize;

/// A fee notice: what the applicant owes for one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = FeeStatus)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Issued with the application; not paid yet.
    Due,
    /// A payment was applied to it (once: the database holds one applied payment per notice).
    Paid,
    /// Unpaid after its due date (the payments job), or its application withdrawn unpaid.
    Cancelled,
    /// Paid, and the application withdrawn before review: the refund is asked for.
    RefundRequested,
    /// The platform paid the fee back.
    Refunded,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Due,
        Status::Paid,
        Status::Cancelled,
        Status::RefundRequested,
        Status::Refunded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Due => "due",
            Status::Paid => "paid",
            Status::Cancelled => "cancelled",
            Status::RefundRequested => "refund_requested",
            Status::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Due, Paid | Cancelled) | (Paid, RefundRequested) | (RefundRequested, Refunded)
        )
    }
}

/// An order at the platform, as last known from its answers, notifications and status answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = PaymentOrderStatus)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Paid,
    Cancelled,
    Expired,
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
        OrderStatus::Refunded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The platform is the authority on its orders: a payment it reports wins over a
    /// cancellation or an expiry the window recorded before (a late notification, a status
    /// answer); nothing moves a paid order back.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Paid | Cancelled | Expired) | (Cancelled | Expired, Paid) | (Paid, Refunded)
        )
    }
}

/// A refund: a durable request, sent (and retried) until the platform reports it paid back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RefundStatus)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Stored; not accepted by the platform yet (the payments job sends it).
    Requested,
    /// The platform accepted it; its notification follows.
    Accepted,
    Refunded,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 3] = [
        RefundStatus::Requested,
        RefundStatus::Accepted,
        RefundStatus::Refunded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "requested",
            RefundStatus::Accepted => "accepted",
            RefundStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        RefundStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn can_become(self, to: RefundStatus) -> bool {
        use RefundStatus::*;
        matches!(
            (self, to),
            (Requested, Accepted | Refunded) | (Accepted, Refunded)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_moves_to_itself_and_money_is_never_forgotten() {
        for s in Status::ALL {
            assert!(!s.can_become(s), "{s:?}");
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for s in OrderStatus::ALL {
            assert!(!s.can_become(s), "{s:?}");
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        for s in RefundStatus::ALL {
            assert!(!s.can_become(s), "{s:?}");
            assert_eq!(RefundStatus::parse(s.as_str()), Some(s));
        }
        // A paid notice never goes back to due or to cancelled; a paid order stays paid.
        for to in Status::ALL {
            assert!(!Status::Paid.can_become(to) || to == Status::RefundRequested);
        }
        for to in OrderStatus::ALL {
            assert!(!OrderStatus::Paid.can_become(to) || to == OrderStatus::Refunded);
        }
    }
}
