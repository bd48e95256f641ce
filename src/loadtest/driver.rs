//! HTTP load: closed loop (N connections as fast as the service answers) and open loop (a fixed
//! arrival rate, latency measured from each request's scheduled time so a slow answer cannot
//! hide the queue behind it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::{Latencies, Outcome};

/// Documents to send, in rotation, with a fresh reference per request.
pub struct Mix {
    pub templates: Vec<(usize, Vec<u8>)>,
}

impl Mix {
    /// Replaces the `LT-<n>` reference so every request is a distinct declaration.
    fn body(&self, i: u64) -> Vec<u8> {
        let (_, t) = &self.templates[(i as usize) % self.templates.len()];
        let marker = b"<Reference>LT-";
        let Some(pos) = t.windows(marker.len()).position(|w| w == marker) else {
            return t.clone();
        };
        let start = pos + marker.len();
        let end = start + t[start..].iter().position(|&b| b == b'<').unwrap_or(0);
        let mut out = Vec::with_capacity(t.len() + 12);
        out.extend_from_slice(&t[..start]);
        out.extend_from_slice(format!("R{i}").as_bytes());
        out.extend_from_slice(&t[end..]);
        out
    }
}

pub struct Target {
    pub url: String,
    pub token: String,
    pub client: reqwest::Client,
}

async fn send(target: &Target, body: Vec<u8>) -> Result<u16, ()> {
    target
        .client
        .post(&target.url)
        .bearer_auth(&target.token)
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|_| ())
}

/// `connections` workers, each sending its next request as soon as the previous is answered.
pub async fn closed_loop(
    target: Arc<Target>,
    mix: Arc<Mix>,
    connections: usize,
    duration: Duration,
    seq: Arc<AtomicU64>,
) -> Outcome {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (target, mix, seq) = (target.clone(), mix.clone(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            while Instant::now() < deadline {
                let i = seq.fetch_add(1, Ordering::Relaxed);
                let body = mix.body(i);
                let t0 = Instant::now();
                let status = send(&target, body).await;
                lat.record(t0.elapsed(), status);
            }
            lat
        }));
    }
    let mut all = Latencies::default();
    for t in tasks {
        if let Ok(l) = t.await {
            all.merge(l);
        }
    }
    all.outcome(started.elapsed())
}

/// Requests arrive at `rate` per second whatever the answers do.
pub async fn open_loop(
    target: Arc<Target>,
    mix: Arc<Mix>,
    rate: f64,
    duration: Duration,
    seq: Arc<AtomicU64>,
) -> Outcome {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut n: u32 = 0;
    loop {
        let scheduled = started + interval * n;
        if scheduled >= started + duration {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let (target, mix, tx) = (target.clone(), mix.clone(), tx.clone());
        let i = seq.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let status = send(&target, mix.body(i)).await;
            let _ = tx.send((scheduled.elapsed(), status));
        });
        n += 1;
    }
    drop(tx);
    let mut all = Latencies::default();
    while let Some((d, s)) = rx.recv().await {
        all.record(d, s);
    }
    all.outcome(started.elapsed())
}
