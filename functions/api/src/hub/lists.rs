//! The token lists the hub's wallets follow, checked once per list — not per stream, nor per
//! wallet: a new version (tokens added or removed) sends every stream of the wallets that
//! showed the old one a fresh `all_balances`.

use std::time::Duration;

use tokio::time::{MissedTickBehavior, interval};

use super::Hub;

/// Lists are checked at least this often (more often when sessions are kept alive more often,
/// as the function URL's streams check theirs at each keep-alive).
pub const CHECK_AT_LEAST: Duration = Duration::from_secs(60);

/// Every `every`, reads the head of each followed list once.
pub async fn watch(hub: Hub, every: Duration) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (chain_id, url) in hub.followed_lists() {
            match hub.table().list_head(chain_id, &url).await {
                Ok(Some(head)) => hub.list_is_at(chain_id, &url, head.generation),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(chain = chain_id, url, %error, "token list version not read; trying next time")
                }
            }
        }
    }
}
