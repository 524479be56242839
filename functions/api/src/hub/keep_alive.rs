//! Sessions of the wallets with streams here are kept alive once per wallet, however many
//! streams watch it: one conditional write per wallet per period, not one per connection.
//!
//! A wallet's first keep-alive comes within a second of its first stream here, and vouches for
//! it as streamed (the poller learns of that within a block, and a poller without traces then
//! reads its native balance every block); later ones vouch again only when the last vouch is
//! about to lapse, so most are a plain expiry push that the poller need not hear of.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use live_balances::runtime::clock::unix_now;
use tokio::time::{Instant, MissedTickBehavior, interval};

use super::{Hub, WalletKey};
use crate::vouch::vouch_due;

/// Keep-alive writes in flight at once.
const WRITES_IN_FLIGHT: usize = 16;
/// How soon a wallet's first stream here gets its keep-alive (and its vouch).
const FIRST_WITHIN: Duration = Duration::from_secs(1);
/// How soon a keep-alive that failed is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Where one wallet's keep-alives stand on this task.
#[derive(Debug, Clone, Copy)]
struct Kept {
    next: Instant,
    /// Until when the last vouch made here holds (Unix seconds; 0: none yet).
    vouched_until: u64,
}

/// Every `every` per wallet (its first within a second of joining), pushes the expiry of each
/// live wallet's session to `ttl` from now; a session found expired ends its wallet's streams
/// with `session_expired`.
pub async fn run(hub: Hub, every: Duration, ttl: Duration) {
    let mut tick = interval(FIRST_WITHIN.min(every));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut kept: HashMap<WalletKey, Kept> = HashMap::new();
    loop {
        tick.tick().await;
        let wallets = hub.live_wallets();
        let now = Instant::now();
        let mut live = HashMap::with_capacity(wallets.len());
        let mut due = vec![];
        for key in wallets {
            let state = kept.get(&key).copied().unwrap_or(Kept {
                next: now,
                vouched_until: 0,
            });
            if state.next <= now {
                due.push((key, state));
            }
            live.insert(key, state);
        }
        // Wallets whose last stream left are forgotten: a stream of theirs later starts over.
        kept = live;
        let outcomes: Vec<(WalletKey, Kept)> = futures::stream::iter(due)
            .map(|(key, state)| {
                let hub = hub.clone();
                async move { (key, keep(&hub, key, state, every, ttl).await) }
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        for (key, state) in outcomes {
            if let Some(entry) = kept.get_mut(&key) {
                *entry = state;
            }
        }
    }
}

/// One wallet's keep-alive; its state after it.
async fn keep(hub: &Hub, key: WalletKey, state: Kept, every: Duration, ttl: Duration) -> Kept {
    let now = unix_now();
    let (chain_id, owner) = key;
    let vouch = vouch_due(state.vouched_until, now, every.as_secs());
    let next = Instant::now() + every;
    match hub
        .table()
        .keep_session_alive(chain_id, &owner, now, now + ttl.as_secs(), vouch)
        .await
    {
        Ok(true) => Kept {
            next,
            vouched_until: vouch.unwrap_or(state.vouched_until),
        },
        Ok(false) => {
            hub.session_expired(key);
            Kept { next, ..state }
        }
        // Tried again soon; the session outlives a few missed periods anyway.
        Err(error) => {
            tracing::warn!(chain = chain_id, owner = %owner, %error, "session keep-alive failed");
            Kept {
                next: Instant::now() + every.min(RETRY_AFTER),
                ..state
            }
        }
    }
}
