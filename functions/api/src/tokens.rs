//! Which tokens a session request asks for, with their metadata: custom tokens, the tokens of
//! the named lists on this chain, and always the native currency and the chain's WETH.
//! Metadata comes from the lists; tokens no list describes are read on chain once and cached.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::Address;
use futures::future::try_join_all;
use live_balances::NATIVE_TOKEN;
use live_balances::chain::BalanceReader;
use live_balances::chains::native_metadata;
use live_balances::clock::unix_now;
use live_balances::token::TokenMetadata;
use live_balances::token_list::SkippedEntries;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::State;

/// The tokens of one request and what is known of them.
#[derive(Debug, Default)]
pub struct RequestedTokens {
    pub tokens: BTreeSet<Address>,
    pub metadata: BTreeMap<Address, TokenMetadata>,
    pub lists: Vec<ListSummary>,
}

/// What a session request learns of each list it named.
#[derive(Debug, Clone, Serialize)]
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

/// Resolves the lists (concurrently), merges them with the custom tokens and the tokens every
/// session has, and finds the metadata of each.
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
            .resolve(&state.table, chain_id, url)
            .await
            .map_err(|e| ApiError::token_list(url, e))
    }))
    .await?;

    let mut requested = RequestedTokens::default();
    for list in resolved {
        requested.lists.push(ListSummary {
            url: list.url,
            name: list.name,
            tokens: list.tokens.len(),
            skipped: list.skipped,
        });
        for (token, metadata) in list.tokens {
            requested.tokens.insert(token);
            // The first list to describe a token wins.
            requested.metadata.entry(token).or_insert(metadata);
        }
    }
    requested.tokens.extend(custom.iter().copied());
    requested.tokens.insert(NATIVE_TOKEN);
    requested
        .metadata
        .insert(NATIVE_TOKEN, native_metadata(chain_id));
    if let Some(weth) = state.settings.chains.get(&chain_id).and_then(|c| c.weth) {
        requested.tokens.insert(weth);
    }
    let unknown: Vec<Address> = requested
        .tokens
        .iter()
        .filter(|t| !requested.metadata.contains_key(*t))
        .copied()
        .collect();
    requested
        .metadata
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
