//! New heads by WebSocket subscription: each header wakes the watcher at once. A subscription
//! whose connection ends (dropped by the provider, a network cut, an outage) ends here too —
//! never re-established quietly behind the watcher's back — so the watcher polls over HTTP
//! from that moment, and asks for the head once more on the next subscription: blocks mined
//! in the gap are processed at once, not at the next safety poll. One that stays connected but
//! goes silent while the chain moves on is caught by the watcher's safety poll, which asks for
//! a new subscription. Several WebSocket URLs are tried in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use live_balances::chain::{BlockHead, HeadSubscription};
use live_balances::runtime::backoff::Backoff;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::metrics::Metrics;

/// A block's identity as the watcher needs it.
pub type Head = BlockHead;

/// Signals between the head subscription and the watcher.
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
    /// The watcher found the chain ahead of a live but silent subscription: subscribe again.
    resubscribe: Notify,
}

impl HeadSignal {
    pub fn latest(&self) -> Option<Head> {
        self.latest.lock().ok().and_then(|l| *l)
    }

    pub(crate) fn announce(&self, head: Head) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(head);
        }
        self.new_head.notify_one();
    }

    /// Ends the current subscription; a new one is made at once.
    pub fn resubscribe(&self) {
        self.resubscribe.notify_one();
    }
}

/// Pause before subscribing again after `failures` failed or ended subscriptions in a row
/// (the first retry after a drop goes at once: a dropped connection is usually one cut).
const RESUBSCRIBE_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(250), Duration::from_secs(30));

/// Keeps a `newHeads` subscription open on one of `ws_urls` until `stop` turns true.
pub async fn follow_heads(
    chain_id: u64,
    ws_urls: Vec<String>,
    signal: Arc<HeadSignal>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    let mut url_index = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        url_index %= ws_urls.len().max(1);
        let url = &ws_urls[url_index];
        match HeadSubscription::connect(url).await {
            Ok(mut heads) => {
                let mut announced = false;
                // A head that was announced before the gap is stale: ask again over HTTP.
                if let Ok(mut latest) = signal.latest.lock() {
                    *latest = None;
                }
                signal.catch_up.store(true, Ordering::SeqCst);
                signal.subscribed.store(true, Ordering::SeqCst);
                metrics.set_subscribed(chain_id, true);
                info!(
                    chain = chain_id,
                    url = url_index + 1,
                    "subscribed to new heads"
                );
                signal.new_head.notify_one();
                let ended = loop {
                    tokio::select! {
                        head = heads.next() => match head {
                            Some(head) => {
                                announced = true;
                                signal.announce(head);
                            }
                            None => break "the connection ended",
                        },
                        _ = signal.resubscribe.notified() => {
                            break "silent while the chain moved on"
                        }
                        _ = stop.changed() => {
                            signal.subscribed.store(false, Ordering::SeqCst);
                            return;
                        }
                    }
                };
                // Polling starts now, before anything else: a block mined from here on is
                // asked for over HTTP.
                signal.subscribed.store(false, Ordering::SeqCst);
                signal.new_head.notify_one();
                metrics.set_subscribed(chain_id, false);
                metrics.count_error(chain_id, "ws_disconnected");
                warn!(
                    chain = chain_id,
                    reason = ended,
                    "head subscription ended; polling over HTTP and subscribing again"
                );
                // A subscription that delivered heads worked: subscribe again at once. One
                // dropped before it delivered any: back off.
                if announced {
                    failures = 0;
                    continue;
                }
            }
            Err(error) => {
                signal.subscribed.store(false, Ordering::SeqCst);
                metrics.set_subscribed(chain_id, false);
                metrics.count_error(chain_id, "ws_connect");
                warn!(chain = chain_id, url = url_index + 1, %error, "cannot subscribe to new heads; polling meanwhile");
                url_index += 1;
            }
        }
        let pause = RESUBSCRIBE_BACKOFF.pause_with_jitter(failures);
        failures += 1;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}
