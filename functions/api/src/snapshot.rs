//! A wallet's `all_balances`: every token its session tracks — its lists' current tokens,
//! its custom and discovered tokens — with the values the table holds (sparse: an absent
//! value is zero), at a feed position read first, so a stream that tails the feed from that
//! position misses nothing. The SSE transports build their snapshots here and only here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use live_balances::domain::model::{BalanceKey, FeedPosition, Session};
use live_balances::domain::order::OrderId;
use live_balances::domain::token_metadata::TokenMetadata;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::StorageError;
use live_balances::wire::sse::{AllBalances, WalletView};
use tracing::warn;

use crate::catalog::ListVersion;
use crate::state::State;

/// One wallet's snapshot and what it showed per value.
#[derive(Debug, Clone)]
pub struct WalletSnapshot {
    /// The feed position read *before* the values: the snapshot's SSE `id`.
    pub position: FeedPosition,
    pub balances: AllBalances,
    /// Each value shown (`None`: unreadable) with the item's version at the snapshot, for
    /// [`crate::shown::ShownValues::reset_to_snapshot`]. Values not stored (zeros)
    /// are left out: any entry for them is news.
    pub shown: Vec<(BalanceKey, Option<U256>, u64)>,
    /// Each order shown with its item's version at the snapshot, for
    /// [`crate::shown::ShownValues::show_orders`].
    pub shown_orders: Vec<(OrderId, u64)>,
    /// The version of each list the snapshot's tokens came from: when one moves on, the
    /// stream sends a fresh snapshot (tokens were added or removed).
    pub lists: Vec<(String, u64)>,
}

/// Reads the wallet's snapshot. The position is read before the values, so a change landing
/// between the two is sent again as an update rather than lost.
pub async fn take(
    state: &State,
    chain_id: u64,
    owner: &Address,
) -> Result<WalletSnapshot, StorageError> {
    let position = state.table.latest_feed_position(chain_id, owner).await?;
    let session = state
        .table
        .session(chain_id, owner)
        .await?
        .unwrap_or_else(|| Session::new(chain_id, *owner, unix_now()));
    let lists = state
        .catalog
        .current_lists(&state.table, chain_id, session.asked.token_lists.keys())
        .await?;
    let values = state.table.wallet_values(chain_id, owner).await?;
    let unreadable = state.catalog.unreadable(&state.table, chain_id).await?;
    let weth = state.settings.chains.get(&chain_id).and_then(|c| c.weth);
    let versions: HashMap<&str, &Arc<ListVersion>> =
        lists.iter().map(|l| (l.url.as_str(), l)).collect();
    let tokens = session.tracked_tokens(|url| versions.get(url).map(|v| v.tokens.as_slice()), weth);
    let named: BTreeSet<Address> = session.named_tokens(weth);
    let named_metadata = state
        .catalog
        .named_metadata(&state.table, chain_id, &named)
        .await?;
    let metadata = |token: &Address| -> Option<&TokenMetadata> {
        // The first list to describe a token wins, then the per-chain cache, then what
        // earlier versions stored on the balance item.
        lists
            .iter()
            .find_map(|l| l.metadata.get(token))
            .or_else(|| named_metadata.get(token))
            .or_else(|| values.metadata.get(token))
    };
    let view = WalletView {
        tokens: &tokens,
        spenders: &session.asked.spenders,
        named: &named,
        items: &values.items,
        unreadable: &unreadable,
        metadata: &metadata,
        full_detail: tokens.len() <= state.settings.full_detail_max_tokens,
        block: session.read_block,
    };
    let balances =
        AllBalances::of_wallet(&view).with_orders(&values.orders, &values.items, unix_now());
    let shown_orders = values
        .orders
        .iter()
        .map(|o| (o.order.id.clone(), o.version))
        .collect();
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
        shown_orders,
        lists: lists
            .iter()
            .map(|l| (l.url.clone(), l.generation))
            .collect(),
    })
}

/// Whether a list the snapshot's tokens came from has a new version (one small read per
/// list): its tokens changed, and the client needs a fresh snapshot.
pub async fn lists_moved(
    state: &State,
    chain_id: u64,
    lists: &[(String, u64)],
) -> Result<bool, StorageError> {
    for (url, generation) in lists {
        let head = state.table.list_head(chain_id, url).await?;
        if head.is_some_and(|h| h.generation != *generation) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a stream opening sets off in the background: a re-read of the wallet's whole token
/// set by the poller (at most once per `RESCAN_INTERVAL_SECS`: a listed token that turned
/// non-zero without any event shows then), and a revalidation of the lists it follows that
/// are past their TTL (a changed list reaches every follower).
pub async fn stream_opened(state: State, chain_id: u64, owner: Address) {
    let every = state.settings.streams.rescan_interval.as_secs();
    if let Err(error) = state
        .table
        .request_rescan(chain_id, &owner, unix_now(), every)
        .await
    {
        warn!(chain = chain_id, owner = %owner, %error, "re-read of the token set not requested");
    }
    let session = match state.table.session(chain_id, &owner).await {
        Ok(Some(session)) => session,
        Ok(None) => return,
        Err(error) => {
            warn!(chain = chain_id, owner = %owner, %error, "session not read for list revalidation");
            return;
        }
    };
    let lists: BTreeMap<String, u64> = session.asked.token_lists;
    for url in lists.keys() {
        if let Err(error) = state
            .token_lists
            .resolve(&state.table, &state.catalog, chain_id, url)
            .await
        {
            warn!(chain = chain_id, url, %error, "token list not revalidated");
        }
    }
}
