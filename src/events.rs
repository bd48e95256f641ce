//! The event sequencer and wake-up hub. A background job ([`Sequencer`]) gives committed events their feed
//! positions (`event_feed_seal`, every `seal_interval`) and wakes everything waiting for new
//! events: long-polling requests and the webhook worker. When any instance sealed events it
//! notifies `nsw_event_feed`; a dedicated LISTEN connection per instance turns that into an
//! immediate wake-up for the waiters of every instance. Notifications are only a hint: waiters
//! also look again on their own every `events.poll_interval_ms`.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::store::events as store;

/// Channel notified (by `event_feed_seal`) when some instance gave events feed positions.
const FEED_CHANNEL: &str = "nsw_event_feed";

/// Wakes waiters when the feed may have grown. The value only counts wake-ups.
pub struct Hub {
    tx: watch::Sender<u64>,
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            tx: watch::channel(0).0,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    fn wake(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

/// The event sequencer: gives committed events their feed positions and wakes the waiters.
/// Cheap to clone.
#[derive(Clone)]
pub struct Sequencer {
    pool: Pool,
    hub: Arc<Hub>,
}

impl Sequencer {
    pub fn new(pool: Pool, hub: Arc<Hub>) -> Sequencer {
        Sequencer { pool, hub }
    }

    /// One pass: seals what has been committed and, if that was anything, wakes the waiters;
    /// returns how many events entered the feed.
    pub async fn run_once(&self) -> u64 {
        let span = tracing::debug_span!("job.event_seal");
        let sealed = async {
            let client = match self.pool.get().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "event sequencer: no connection");
                    return 0;
                }
            };
            match store::seal(&client, false).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(sealed = n, "events entered the feed");
                    }
                    u64::try_from(n).unwrap_or(0)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event sealing failed");
                    0
                }
            }
        }
        .instrument(span)
        .await;
        if sealed > 0 {
            self.hub.wake();
        }
        sealed
    }

    /// Seals every `interval` until cancelled; a notification (events sealed by a request
    /// handler or another instance) wakes the waiters at once.
    pub async fn run(
        self,
        interval: Duration,
        mut notes: mpsc::UnboundedReceiver<()>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                Some(()) = notes.recv() => {
                    while notes.try_recv().is_ok() {}
                    self.hub.wake();
                    continue;
                }
                _ = tick.tick() => {}
            }
            self.run_once().await;
        }
    }
}

/// Keeps a dedicated LISTEN connection open, reconnecting after failures, and forwards each
/// notification, until cancelled; then closes the connection.
pub async fn listen(url: String, out: mpsc::UnboundedSender<()>, cancel: CancellationToken) {
    loop {
        let span = tracing::info_span!("job.event_listener");
        let result: Result<(), tokio_postgres::Error> = async {
            let (client, mut conn) = tokio_postgres::connect(&url, NoTls).await?;
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let forward = out.clone();
            let driver = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                while let Some(msg) = messages.next().await {
                    match msg {
                        Ok(AsyncMessage::Notification(_)) => {
                            if forward.send(()).is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener connection lost");
                            break;
                        }
                    }
                }
                let _ = done_tx.send(());
            });
            let listening = client
                .batch_execute(&format!("LISTEN {FEED_CHANNEL}"))
                .await;
            if listening.is_ok() {
                tracing::debug!("listening for event notifications");
                // Wake once: events may have arrived while we were not listening.
                let _ = out.send(());
                tokio::select! {
                    _ = done_rx => {}
                    _ = cancel.cancelled() => {}
                }
            }
            // Dropping the client ends the connection cleanly (Terminate), which ends the
            // driver.
            drop(client);
            let _ = driver.await;
            listening
        }
        .instrument(span)
        .await;
        if cancel.is_cancelled() || out.is_closed() {
            return;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "event listener failed; polling until it reconnects");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
