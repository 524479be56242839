//! Per chain, two tasks: one reads the chain's change log every interval and tells the hub
//! which wallets changed; the other reads those wallets' feeds (at most one read per wallet
//! at a time) and hands the entries to their streams. Kept apart so a burst of feed reads
//! never delays the next log read.

use std::time::Duration;

use futures::StreamExt;
use live_balances::domain::model::{FeedEvent, FeedPosition};
use live_balances::runtime::clock::unix_now_ms;
use live_balances::storage::{
    CHAIN_LOG_READ_OVERLAP_MS, CHAIN_LOG_RECENT_OVERLAP_MS, StorageError,
};
use tokio::time::{Instant, MissedTickBehavior, interval};

use super::{Hub, WalletKey};
use crate::feed::FeedPages;

/// Wallet feeds read at once.
const READS_IN_FLIGHT: usize = 32;
/// A failed wallet read is tried again after this, even without a new log entry.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// After a longer gap in the log reads (an outage), every wallet is read instead of the log's
/// backlog (the log keeps entries for an hour; a gap this long is not worth reading through).
const LONGEST_CATCH_UP_MS: u64 = 10 * 60 * 1000;
/// How often a log read looks back the whole overlap.
const LATE_EVERY_MS: u64 = 1_000;
/// Log read failures logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Where one kind of log read starts: `look_back` before the previous successful read of that
/// kind started, so a slow or failed read leaves no gap.
struct LogCursor {
    look_back: u64,
    last_ok: Option<u64>,
}

impl LogCursor {
    fn since(&self, now: u64) -> u64 {
        self.last_ok.unwrap_or(now).saturating_sub(self.look_back)
    }
}

/// Reads the chain's change log every `every`, forever: each time looking back a little (the
/// usual append latency), and once a second looking back the log's whole overlap (an entry
/// that became visible late), so an entry is read a few times rather than once per tick for
/// the whole overlap.
pub async fn follow_log(hub: Hub, chain_id: u64, every: Duration) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut recent = LogCursor {
        look_back: CHAIN_LOG_RECENT_OVERLAP_MS,
        last_ok: None,
    };
    let mut late = LogCursor {
        look_back: CHAIN_LOG_READ_OVERLAP_MS,
        last_ok: None,
    };
    let mut last_logged: Option<Instant> = None;
    loop {
        tick.tick().await;
        let now = unix_now_ms();
        // After a long outage every wallet is read instead of the log's backlog.
        if late
            .last_ok
            .is_some_and(|t| now.saturating_sub(t) > LONGEST_CATCH_UP_MS)
        {
            hub.mark_stale(chain_id);
            recent.last_ok = None;
            late.last_ok = None;
        }
        let is_late = late
            .last_ok
            .is_none_or(|t| now.saturating_sub(t) >= LATE_EVERY_MS);
        let cursor = if is_late { &mut late } else { &mut recent };
        match hub
            .table()
            .chain_log_since(chain_id, cursor.since(now), now)
            .await
        {
            Ok(entries) => {
                cursor.last_ok = Some(now);
                // A full look-back also covers what the next short one would look back to.
                if is_late && recent.last_ok.is_none() {
                    recent.last_ok = Some(now);
                }
                hub.announce(chain_id, &entries);
            }
            Err(error) => {
                if last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    tracing::warn!(chain = chain_id, %error, "change log read failed; reading from the same point next time");
                    last_logged = Some(Instant::now());
                }
            }
        }
    }
}

/// Reads the feeds of the chain's due wallets whenever the log makes one due, forever.
pub async fn read_due_wallets(hub: Hub, chain_id: u64) {
    let Some(notify) = hub.inner.due.get(&chain_id).cloned() else {
        return;
    };
    loop {
        // A read that failed leaves its wallet due: tried again on the next wake or soon.
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
        let reads = hub.due(chain_id).into_iter().map(|(key, from, announced)| {
            let hub = hub.clone();
            async move {
                match read_feed(&hub, key, &from).await {
                    Ok(entries) => hub.publish(key, from, announced, entries),
                    Err(error) => {
                        tracing::warn!(chain = key.0, owner = %key.1, %error, "feed read failed; trying again")
                    }
                }
            }
        });
        futures::stream::iter(reads)
            .buffer_unordered(READS_IN_FLIGHT)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Everything in the wallet's feed after `from`.
async fn read_feed(
    hub: &Hub,
    (chain_id, owner): WalletKey,
    from: &FeedPosition,
) -> Result<Vec<FeedEvent>, StorageError> {
    let mut entries: Vec<FeedEvent> = vec![];
    let mut pages = FeedPages::after(hub.table(), chain_id, &owner, from);
    while let Some(page) = pages.next().await? {
        entries.extend(page);
    }
    Ok(entries)
}
