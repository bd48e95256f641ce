//! Faults a window can be told to show, so the other side's retries, deduplication and receipt
//! checks can be exercised for real (configuration `exchange.fault`, or the admin API).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    #[default]
    None,
    /// Answer inbound messages only after `delay_ms`.
    Slow { delay_ms: u64 },
    /// Answer inbound messages with this status (500 or 503) without processing them.
    Status { status: u16 },
    /// Answer a random share `ratio` (0 to 1) of inbound messages with 503 without processing
    /// them: a partner that is overloaded now and then rather than down.
    FailRatio { ratio: f64 },
    /// Close the connection without an answer, without processing.
    DropConnection,
    /// Process the message, then sign the receipt with a wrong signature.
    BadReceiptSignature,
    /// Process and store the message, then close the connection instead of answering.
    LostReceipt,
    /// Outbound: deliver every message twice.
    DuplicateDelivery,
}

/// The current fault, optionally for the next `remaining` uses only.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    state: Mutex<(Fault, Option<u32>)>,
}

impl FaultSwitch {
    pub fn new(fault: Fault) -> Self {
        FaultSwitch {
            state: Mutex::new((fault, None)),
        }
    }

    pub fn set(&self, fault: Fault, times: Option<u32>) {
        if let Ok(mut s) = self.state.lock() {
            *s = (fault, times);
        }
    }

    pub fn current(&self) -> (Fault, Option<u32>) {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or((Fault::None, None))
    }

    /// The fault for this use, when `applies` says it is the kind of use the fault is for.
    pub fn take(&self, applies: impl Fn(&Fault) -> bool) -> Fault {
        let Ok(mut s) = self.state.lock() else {
            return Fault::None;
        };
        if !applies(&s.0) {
            return Fault::None;
        }
        let fault = s.0.clone();
        match &mut s.1 {
            Some(0) => {
                *s = (Fault::None, None);
                return Fault::None;
            }
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    *s = (Fault::None, None);
                }
            }
            None => {}
        }
        fault
    }

    /// Checks a fault read from configuration or the admin API.
    pub fn check(fault: &Fault) -> Result<(), &'static str> {
        match fault {
            Fault::Status { status } if *status != 500 && *status != 503 => {
                Err("the status fault is 500 or 503")
            }
            Fault::FailRatio { ratio } if !(0.0..=1.0).contains(ratio) => {
                Err("the fail_ratio fault's ratio is between 0 and 1")
            }
            _ => Ok(()),
        }
    }

    pub fn inbound(&self) -> Fault {
        self.take(|f| !matches!(f, Fault::DuplicateDelivery | Fault::None))
    }

    /// Whether this inbound use is one of the `ratio` share that fails.
    pub fn roll(ratio: f64) -> bool {
        ratio > 0.0 && rand::random::<f64>() < ratio
    }

    pub fn outbound(&self) -> Fault {
        self.take(|f| matches!(f, Fault::DuplicateDelivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_ratio_fails_about_that_share() {
        let fails = (0..20_000).filter(|_| FaultSwitch::roll(0.1)).count();
        assert!((1_600..2_400).contains(&fails), "{fails} of 20000");
        assert!(!(0..1000).any(|_| FaultSwitch::roll(0.0)));
        assert!((0..1000).all(|_| FaultSwitch::roll(1.0)));
    }

    #[test]
    fn fail_ratio_is_checked() {
        assert!(FaultSwitch::check(&Fault::FailRatio { ratio: 0.1 }).is_ok());
        assert!(FaultSwitch::check(&Fault::FailRatio { ratio: 1.5 }).is_err());
        assert!(FaultSwitch::check(&Fault::FailRatio { ratio: -0.1 }).is_err());
        assert!(FaultSwitch::check(&Fault::Status { status: 404 }).is_err());
        let f: Fault = serde_json::from_str(r#"{"mode":"fail_ratio","ratio":0.1}"#).unwrap();
        assert_eq!(f, Fault::FailRatio { ratio: 0.1 });
    }
}
