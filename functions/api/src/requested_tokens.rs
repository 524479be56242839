//! Which tokens a session request asks for, with their metadata: the current version of each
//! list it names, its custom tokens, and always the native currency and the chain's WETH.
//! Metadata comes from the lists; tokens no list describes are read on chain once and cached.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::Address;
use futures::future::try_join_all;
use live_balances::NATIVE_TOKEN;
use live_balances::chain::BalanceReader;
use live_balances::chain::known_chains::native_metadata;
use live_balances::domain::list_document::SkippedEntries;
use live_balances::domain::token_metadata::TokenMetadata;
use live_balances::runtime::clock::unix_now;
use serde::Serialize;
use std::sync::Arc;

use crate::catalog::ListVersion;
use crate::error::ApiError;
use crate::state::State;

/// The tokens of one request and what is known of them.
#[derive(Debug, Default)]
pub struct RequestedTokens {
    /// The current version of each list named.
    pub lists: Vec<Arc<ListVersion>>,
    pub summaries: Vec<ListSummary>,
    /// Metadata of the tokens the request names by address (and of the native currency and
    /// the chain's WETH), read on chain once and cached per chain.
    pub named_metadata: BTreeMap<Address, TokenMetadata>,
}

/// What a session request learns of each list it named.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSummary {
    pub url: String,
    pub name: String,
    pub tokens: usize,
    pub skipped: SkippedEntries,
}

/// Checks every list URL before any is fetched: a request with one bad URL fetches nothing.
pub fn check_lists(state: &State, urls: &[String]) -> Result<BTreeSet<String>, ApiError> {
    let max = state.token_lists.settings().max_per_request;
    if urls.len() > max {
        return Err(ApiError::TooManyLists(max));
    }
    urls.iter()
        .map(|url| {
            state
                .token_lists
                .check(url)
                .map(|()| url.clone())
                .map_err(|e| ApiError::token_list(url, e.into()))
        })
        .collect()
}

/// Resolves the lists (concurrently) and finds the metadata of the tokens the request names
/// by address (custom tokens, WETH) where no list describes them.
pub async fn resolve(
    state: &State,
    chain_id: u64,
    reader: &BalanceReader,
    custom: &BTreeSet<Address>,
    lists: &BTreeSet<String>,
) -> Result<RequestedTokens, ApiError> {
    let resolved = try_join_all(lists.iter().map(|url| async move {
        state
            .token_lists
            .resolve(&state.table, &state.catalog, chain_id, url)
            .await
            .map_err(|e| ApiError::token_list(url, e))
    }))
    .await?;

    let mut requested = RequestedTokens::default();
    for list in resolved {
        requested.summaries.push(ListSummary {
            url: list.version.url.clone(),
            name: list.version.name.clone(),
            tokens: list.version.tokens.len(),
            skipped: list.skipped,
        });
        requested.lists.push(list.version);
    }
    let mut named: BTreeSet<Address> = custom.clone();
    if let Some(weth) = state.settings.chains.get(&chain_id).and_then(|c| c.weth) {
        named.insert(weth);
    }
    requested
        .named_metadata
        .insert(NATIVE_TOKEN, native_metadata(chain_id));
    // The first list to describe a token wins over the contract's own answer.
    let unknown: Vec<Address> = named
        .iter()
        .filter(|t| !requested.lists.iter().any(|l| l.metadata.contains_key(*t)))
        .copied()
        .collect();
    for token in &named {
        if let Some(m) = requested.lists.iter().find_map(|l| l.metadata.get(token)) {
            requested.named_metadata.insert(*token, m.clone());
        }
    }
    requested
        .named_metadata
        .extend(onchain_metadata(state, chain_id, reader, &unknown).await?);
    Ok(requested)
}

/// Metadata of tokens no list describes: from the table's cache, else read on chain (once,
/// then cached — including "this address has none").
async fn onchain_metadata(
    state: &State,
    chain_id: u64,
    reader: &BalanceReader,
    tokens: &[Address],
) -> Result<BTreeMap<Address, TokenMetadata>, ApiError> {
    if tokens.is_empty() {
        return Ok(BTreeMap::new());
    }
    let now = unix_now();
    let cached = state
        .table
        .cached_token_metadata(chain_id, tokens, now)
        .await?;
    let missing: Vec<Address> = tokens
        .iter()
        .filter(|t| !cached.contains_key(*t))
        .copied()
        .collect();
    let mut known: BTreeMap<Address, TokenMetadata> = cached
        .into_iter()
        .filter_map(|(t, m)| Some((t, m?)))
        .collect();
    if !missing.is_empty() {
        let read = reader.metadata(&missing).await?;
        let entries: Vec<_> = missing.into_iter().zip(read).collect();
        state
            .table
            .cache_token_metadata(chain_id, &entries, now)
            .await?;
        known.extend(entries.into_iter().filter_map(|(t, m)| Some((t, m?))));
    }
    Ok(known)
}
