//! Sessions of the wallets with streams here are kept alive once per wallet, however many
//! streams watch it: one conditional write per wallet per period, not one per connection.

use std::time::Duration;

use futures::StreamExt;
use live_balances::clock::unix_now;
use tokio::time::{MissedTickBehavior, interval};

use super::Hub;

/// Keep-alive writes in flight at once.
const WRITES_IN_FLIGHT: usize = 16;

/// Every `every`, pushes the expiry of each live wallet's session to `ttl` from now; a
/// session found expired ends its wallet's streams with `session_expired`.
pub async fn run(hub: Hub, every: Duration, ttl: Duration) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let wallets = hub.live_wallets();
        futures::stream::iter(wallets)
            .for_each_concurrent(WRITES_IN_FLIGHT, |key| {
                let hub = hub.clone();
                async move {
                    let now = unix_now();
                    let (chain_id, owner) = key;
                    // Vouches for a few periods: a poller without traces reads this wallet's
                    // native balance every block meanwhile.
                    let streaming_until = now + 3 * every.as_secs();
                    match hub
                        .table()
                        .keep_session_alive(chain_id, &owner, now, now + ttl.as_secs(), streaming_until)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => hub.session_expired(key),
                        // Tried again next period; the session outlives a few missed ones.
                        Err(error) => {
                            tracing::warn!(chain = chain_id, owner = %owner, %error, "session keep-alive failed")
                        }
                    }
                }
            })
            .await;
    }
}
