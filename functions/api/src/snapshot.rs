//! A wallet's `all_balances`: what the table holds for it, at a feed position read first, so a
//! stream that tails the feed from that position misses nothing. The SSE transports build their
//! snapshots here and only here.

use alloy::primitives::{Address, U256};
use live_balances::model::{BalanceKey, FeedPosition};
use live_balances::sse::AllBalances;
use live_balances::storage::StorageError;

use crate::state::State;

/// One wallet's snapshot and what it showed per value.
#[derive(Debug, Clone)]
pub struct WalletSnapshot {
    /// The feed position read *before* the values: the snapshot's SSE `id`.
    pub position: FeedPosition,
    pub balances: AllBalances,
    /// Each value shown (`None`: unreadable) with the item's version at the snapshot, for
    /// [`live_balances::shown::ShownValues::reset_to_snapshot`].
    pub shown: Vec<(BalanceKey, Option<U256>, u64)>,
}

/// Reads the wallet's snapshot. The position is read before the values, so a change landing
/// between the two is sent again as an update rather than lost.
pub async fn take(
    state: &State,
    chain_id: u64,
    owner: &Address,
) -> Result<WalletSnapshot, StorageError> {
    let position = state.table.latest_feed_position(chain_id, owner).await?;
    let values = state.table.wallet_values(chain_id, owner).await?;
    let balances = AllBalances::from_items(&values.items).with_metadata(&values.metadata);
    let shown = values
        .items
        .iter()
        .map(|i| {
            let version = values.versions.get(&i.key).copied().unwrap_or(0);
            (i.key, i.read.value(), version)
        })
        .collect();
    Ok(WalletSnapshot {
        position,
        balances,
        shown,
    })
}
