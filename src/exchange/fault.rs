//! Faults a window can be told to show, so the other side's retries, deduplication and receipt
//! checks can be exercised for real (configuration `exchange.fault`, or the admin API).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    #[default]
    None,
    /// Answer inbound messages only after `delay_ms`.
    Slow { delay_ms: u64 },
    /// Answer inbound messages with this status (500 or 503) without processing them.
    Status { status: u16 },
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

    pub fn inbound(&self) -> Fault {
        self.take(|f| !matches!(f, Fault::DuplicateDelivery | Fault::None))
    }

    pub fn outbound(&self) -> Fault {
        self.take(|f| matches!(f, Fault::DuplicateDelivery))
    }
}
