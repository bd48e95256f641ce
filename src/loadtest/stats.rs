//! Latency and status bookkeeping for the load generator.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[derive(Default)]
pub struct Latencies {
    micros: Vec<u64>,
    statuses: BTreeMap<String, u64>,
}

impl Latencies {
    pub fn record(&mut self, d: Duration, status: Result<u16, ()>) {
        self.micros.push(d.as_micros() as u64);
        let key = match status {
            Ok(s) => s.to_string(),
            Err(()) => "connection-error".to_string(),
        };
        *self.statuses.entry(key).or_default() += 1;
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
    }

    pub fn outcome(mut self, elapsed: Duration) -> Outcome {
        self.micros.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.micros.is_empty() {
                return 0.0;
            }
            let idx = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
            self.micros[idx] as f64 / 1000.0
        };
        let ok = self.statuses.get("201").copied().unwrap_or(0);
        Outcome {
            requests: self.micros.len() as u64,
            ok,
            errors: self.micros.len() as u64 - ok,
            per_second: ok as f64 / elapsed.as_secs_f64(),
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
            max_ms: self.micros.last().map_or(0.0, |&m| m as f64 / 1000.0),
            statuses: self.statuses,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Successful (201) requests per second.
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub statuses: BTreeMap<String, u64>,
}
