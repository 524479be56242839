//! `GET /{chain_id}/balance/{owner}/{token}` and its batch form `POST /{chain_id}/balances/{owner}`:
//! one value, from the table when the pair is tracked (no chain request at all), else read on
//! chain once — a request that reads the chain counts against its source's
//! `CHAIN_READS_PER_SOURCE_PER_MINUTE`: it is a call on the operator's node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use axum::extract::State as Shared;
use http::Response;
use http::StatusCode;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceItem, BalanceKey, TokenRead};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Segments, WholeRequest};
use crate::limits;
use crate::request;
use crate::route_docs::{ChainUnreadable, MalformedRequest, NoSession, WalletPath};
use crate::state::State;
use crate::tracked::tracked_tokens;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BalanceView {
    address: String,
    owner: String,
    /// Decimal amount; `null` when the token's `balanceOf` fails.
    balance: Option<String>,
    block_number: u64,
    /// `table` for a tracked pair, `chain` for a one-off read.
    source: &'static str,
}

#[utoipa::path(
    get,
    path = "/{chain_id}/balance/{owner}/{token}",
    operation_id = "getBalance",
    tag = "balances",
    description = "One balance: from the table when the pair is tracked, else read on chain once.",
    params(
        WalletPath,
        ("token" = String, Path, description = "Token address, or 0xEeee…EEeE for the native currency"),
    ),
    responses(
        (status = 200, description = "The balance, from the table or read on chain", body = BalanceView),
        MalformedRequest,
        NoSession,
        (status = 429, description = "Over the source's on-chain reads a minute", body = ErrorBody),
        ChainUnreadable,
    ),
)]
pub async fn get(
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner, token]): Segments<3>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req, chain, owner, token) = (
        &*state,
        &req,
        chain.as_str(),
        owner.as_str(),
        token.as_str(),
    );
    let (chain_id, owner, reader) = request::wallet(state, chain, owner)?;
    let token = request::addresses("token", &[token.to_string()])?[0];
    let key = BalanceKey::Balance { token };
    // Values are sparse: a tracked pair without an item is a zero the poller keeps current.
    let (read, block, source) = match state.table.balance(chain_id, &owner, &key).await? {
        Some(item) => (item.read, item.block, "table"),
        None if tracked_tokens(state, chain_id, &owner)
            .await?
            .contains(&token) =>
        {
            let block = state.table.cursor(chain_id).await?.map_or(0, |c| c.block);
            (TokenRead::Value(U256::ZERO), block, "table")
        }
        None => {
            limits::admit_chain_read(state, req).await?;
            let (block, mut reads) = reader.read_latest(&[(owner, key)]).await?;
            (reads.pop().unwrap_or(TokenRead::Failed), block, "chain")
        }
    };
    let view = BalanceView {
        address: lower(&token),
        owner: lower(&owner),
        balance: read.value().map(|v| v.to_string()),
        block_number: block,
        source,
    };
    Ok(body::json(StatusCode::OK, &view))
}

/// Body of `POST /{chain_id}/balances/{owner}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Token addresses (`0xEeee…EEeE` for the native currency), at most `BATCH_MAX_TOKENS`.
    pub tokens: Vec<String>,
}

/// One token's answer in a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchEntry {
    /// Decimal amount; `null` when the token's `balanceOf` fails.
    balance: Option<String>,
    block_number: u64,
    source: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchView {
    chain_id: u64,
    owner: String,
    balances: BTreeMap<String, BatchEntry>,
}

#[utoipa::path(
    post,
    path = "/{chain_id}/balances/{owner}",
    operation_id = "getBalances",
    tag = "balances",
    params(WalletPath),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "Each token's balance, from the table or read on chain", body = BatchView),
        MalformedRequest,
        NoSession,
        (status = 429, description = "Over the source's on-chain reads a minute", body = ErrorBody),
        ChainUnreadable,
    ),
)]
/// `POST /{chain_id}/balances/{owner}`: many balances at once — tracked ones from the table,
/// the rest in one Multicall3 read at one block.
pub async fn batch(
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner]): Segments<2>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req, chain, owner) = (&*state, &req, chain.as_str(), owner.as_str());
    let (chain_id, owner, reader) = request::wallet(state, chain, owner)?;
    let body: BatchRequest = request::json_body(req)?;
    let max = state.settings.limits.batch_max_tokens;
    if body.tokens.len() > max {
        return Err(ApiError::TooManyTokensInRequest(max));
    }
    let tokens: BTreeSet<Address> = request::addresses("tokens", &body.tokens)?
        .into_iter()
        .collect();
    if tokens.is_empty() {
        return Err(ApiError::EmptyTokenSet);
    }
    let mut tracked: BTreeMap<Address, BalanceItem> = state
        .table
        .balances(chain_id, &owner)
        .await?
        .into_iter()
        .filter(|i| matches!(i.key, BalanceKey::Balance { .. }) && tokens.contains(&i.key.token()))
        .map(|i| (i.key.token(), i))
        .collect();
    // Values are sparse: a tracked token without an item is a zero the poller keeps current.
    let watched = tracked_tokens(state, chain_id, &owner).await?;
    if tokens
        .iter()
        .any(|t| watched.contains(t) && !tracked.contains_key(t))
    {
        let block = state.table.cursor(chain_id).await?.map_or(0, |c| c.block);
        for token in tokens.iter().filter(|t| watched.contains(*t)) {
            tracked.entry(*token).or_insert(BalanceItem {
                chain_id,
                owner,
                key: BalanceKey::Balance { token: *token },
                read: TokenRead::Value(U256::ZERO),
                block,
                tx_hash: None,
            });
        }
    }
    let untracked: Vec<(Address, BalanceKey)> = tokens
        .iter()
        .filter(|t| !tracked.contains_key(*t))
        .map(|token| (owner, BalanceKey::Balance { token: *token }))
        .collect();
    let mut balances: BTreeMap<String, BatchEntry> = tracked
        .values()
        .map(|item| {
            let entry = BatchEntry {
                balance: item.read.value().map(|v| v.to_string()),
                block_number: item.block,
                source: "table",
            };
            (lower(&item.key.token()), entry)
        })
        .collect();
    if !untracked.is_empty() {
        limits::admit_chain_read(state, req).await?;
        let (block, reads) = reader.read_latest(&untracked).await?;
        for ((_, key), read) in untracked.iter().zip(reads) {
            let entry = BatchEntry {
                balance: read.value().map(|v| v.to_string()),
                block_number: block,
                source: "chain",
            };
            balances.insert(lower(&key.token()), entry);
        }
    }
    let view = BatchView {
        chain_id,
        owner: lower(&owner),
        balances,
    };
    Ok(body::json(StatusCode::OK, &view))
}
