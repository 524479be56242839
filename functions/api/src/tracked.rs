//! What a wallet's live session tracks, as every route reads it: the session if it has not
//! expired, the current version of each list it follows, its tokens. Below the routes: the
//! session routes, the balance routes and the streams share it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use alloy::primitives::Address;
use live_balances::domain::model::Session;
use live_balances::runtime::clock::unix_now;

use crate::catalog::ListVersion;
use crate::error::ApiError;
use crate::state::State;

/// The wallet's session if it exists and has not expired.
pub async fn live_session(
    state: &State,
    chain_id: u64,
    owner: &Address,
) -> Result<Option<Session>, ApiError> {
    Ok(state
        .table
        .live_session(chain_id, owner, unix_now())
        .await?)
}

/// The current version of every list `session` follows: those just resolved, the others
/// from the catalog.
pub async fn list_versions(
    state: &State,
    chain_id: u64,
    session: &Session,
    resolved: &[Arc<ListVersion>],
) -> Result<HashMap<String, Arc<ListVersion>>, ApiError> {
    let mut versions: HashMap<String, Arc<ListVersion>> = resolved
        .iter()
        .map(|l| (l.url.clone(), l.clone()))
        .collect();
    let others: Vec<&String> = session
        .asked
        .token_lists
        .keys()
        .filter(|url| !versions.contains_key(*url))
        .collect();
    for list in state
        .catalog
        .current_lists(&state.table, chain_id, others)
        .await?
    {
        versions.insert(list.url.clone(), list);
    }
    Ok(versions)
}

/// Every token the wallet's live session tracks (none without a session).
pub async fn tracked_tokens(
    state: &State,
    chain_id: u64,
    owner: &Address,
) -> Result<BTreeSet<Address>, ApiError> {
    let Some(session) = live_session(state, chain_id, owner).await? else {
        return Ok(BTreeSet::new());
    };
    let weth = state.settings.chains.get(&chain_id).and_then(|c| c.weth);
    let versions = list_versions(state, chain_id, &session, &[]).await?;
    Ok(session.tracked_tokens(|url| versions.get(url).map(|v| v.tokens.as_slice()), weth))
}
