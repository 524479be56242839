//! New heads by WebSocket subscription: each header wakes the watcher at once. On any error the
//! subscription is re-established with backoff; meanwhile the watcher polls over HTTP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use live_balances::backoff::Backoff;
use live_balances::chain::{BlockHead, HeadSubscription};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::metrics::Metrics;

/// A block's identity as the watcher needs it.
pub type Head = BlockHead;

/// Signals from the head subscription to the watcher.
#[derive(Debug, Default)]
pub struct HeadSignal {
    pub new_head: Notify,
    /// True while a subscription is live; the watcher polls slowly then, quickly otherwise.
    pub subscribed: AtomicBool,
    /// The newest header the subscription delivered: the watcher needs no request for it.
    latest: Mutex<Option<Head>>,
    /// Set on every (re)subscription: heads produced before it were never announced, so the
    /// watcher asks for the head once instead of waiting for its safety poll.
    pub catch_up: AtomicBool,
}

impl HeadSignal {
    pub fn latest(&self) -> Option<Head> {
        self.latest.lock().ok().and_then(|l| *l)
    }

    fn announce(&self, head: Head) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(head);
        }
        self.new_head.notify_one();
    }
}

/// Pause before subscribing again after `failures` failed or ended subscriptions.
const RESUBSCRIBE_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

/// Keeps a `newHeads` subscription open until `stop` turns true.
pub async fn follow_heads(
    chain_id: u64,
    ws_url: String,
    signal: Arc<HeadSignal>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        match HeadSubscription::connect(&ws_url).await {
            Ok(mut heads) => {
                failures = 0;
                signal.subscribed.store(true, Ordering::SeqCst);
                info!(chain = chain_id, "subscribed to new heads");
                // Catch up on anything missed while disconnected (the watcher polls once).
                if let Ok(mut latest) = signal.latest.lock() {
                    *latest = None;
                }
                signal.catch_up.store(true, Ordering::SeqCst);
                signal.new_head.notify_one();
                loop {
                    tokio::select! {
                        head = heads.next() => match head {
                            Some(head) => signal.announce(head),
                            None => break,
                        },
                        _ = stop.changed() => {
                            signal.subscribed.store(false, Ordering::SeqCst);
                            return;
                        }
                    }
                }
                signal.subscribed.store(false, Ordering::SeqCst);
                metrics.count_error(chain_id, "ws_disconnected");
                warn!(chain = chain_id, "head subscription ended; reconnecting");
            }
            Err(error) => {
                signal.subscribed.store(false, Ordering::SeqCst);
                metrics.count_error(chain_id, "ws_connect");
                warn!(chain = chain_id, %error, "cannot subscribe to new heads; polling meanwhile");
            }
        }
        failures += 1;
        let pause = RESUBSCRIBE_BACKOFF.pause(failures);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}
