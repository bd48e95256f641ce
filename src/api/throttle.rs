//! The API's throttles: authentication failures per client address, writes per party. Kept in
//! memory per instance with `governor`'s keyed GCRA limiters (a bucket per key, refilled at the
//! configured rate); settings in `config::ThrottleSettings`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::ThrottleSettings;
use crate::error::ApiError;

/// Above this many keys, those whose buckets are full again are forgotten (bounded memory
/// under requests from many addresses).
const MAX_KEYS: usize = 10_000;

pub struct Throttle {
    auth_failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    writes: Option<DefaultKeyedRateLimiter<String>>,
}

fn quota(per: Duration, n: u32, burst: u32) -> Option<Quota> {
    let n = NonZeroU32::new(n)?;
    let burst = NonZeroU32::new(burst.max(1))?;
    Quota::with_period(per / n.get()).map(|q| q.allow_burst(burst))
}

fn retry_after(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Throttle {
    pub fn new(s: &ThrottleSettings) -> Throttle {
        Throttle {
            auth_failures: quota(
                Duration::from_secs(60),
                s.auth_failures_per_minute,
                s.auth_failure_burst,
            )
            .map(RateLimiter::keyed),
            writes: quota(Duration::from_secs(1), s.writes_per_second, s.write_burst)
                .map(RateLimiter::keyed),
        }
    }

    /// Counts an authentication failure from `address`: `Err(429)` once the address is over
    /// its allowance, else `Ok` (the caller answers 401).
    pub fn auth_failure(&self, address: IpAddr) -> Result<(), ApiError> {
        let Some(l) = &self.auth_failures else {
            return Ok(());
        };
        if l.len() > MAX_KEYS {
            l.retain_recent();
        }
        l.check_key(&address)
            .map_err(|n| ApiError::TooManyRequests {
                code: "AUTH_THROTTLED",
                detail: "too many requests without valid credentials from this address".into(),
                retry_after_secs: retry_after(&n).max(1),
            })
    }

    /// Counts a write by `party`: `Err(429)` once the party is over its allowance.
    pub fn write(&self, party: &str) -> Result<(), ApiError> {
        let Some(l) = &self.writes else {
            return Ok(());
        };
        if l.len() > MAX_KEYS {
            l.retain_recent();
        }
        l.check_key(&party.to_owned())
            .map_err(|n| ApiError::TooManyRequests {
                code: "WRITES_THROTTLED",
                detail: format!("{party} is sending more than its allowance of writes"),
                retry_after_secs: retry_after(&n).max(1),
            })
    }
}
