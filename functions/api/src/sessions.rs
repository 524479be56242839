//! `POST /{chain_id}/sessions/{owner}`: create a wallet's session or add to it, and write the
//! initial values so the first SSE snapshot is instant.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::Address;
use futures::{StreamExt, TryStreamExt, stream};
use http::Response;
use http::StatusCode;
use live_balances::address::lower;
pub use live_balances::clock::unix_now;
use live_balances::model::{BalanceItem, BalanceKey, Session, SessionAddition};
use live_balances::plan::Watch;
use live_balances::token::TokenMetadata;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::limits;
use crate::openapi::WalletPath;
use crate::request::{self, Request};
use crate::state::State;
use crate::tokens::{self, ListSummary};

/// Body of `POST /{chain_id}/sessions/{owner}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRequest {
    #[serde(default)]
    pub tokens_lists_urls: Vec<String>,
    #[serde(default)]
    pub custom_tokens: Vec<String>,
    /// Allowance spenders; the default spender when absent.
    #[serde(default)]
    pub spenders: Option<Vec<String>>,
}

/// A session as answered to clients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub chain_id: u64,
    pub owner: String,
    pub tokens: Vec<String>,
    pub token_count: usize,
    pub spenders: Vec<String>,
    pub tokens_lists_urls: Vec<String>,
    pub expires_at: u64,
    /// Block the values were read at (the newest of them).
    pub block_number: u64,
    /// How to render each token's amounts, where known: token -> symbol, name, decimals.
    pub metadata: BTreeMap<String, TokenMetadata>,
    /// What each list named by this request contributed (POST and PUT only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListSummary>,
}

impl SessionView {
    fn new(s: &Session, block_number: u64, metadata: &BTreeMap<Address, TokenMetadata>) -> Self {
        Self {
            chain_id: s.chain_id,
            owner: lower(&s.owner),
            tokens: s.tokens.iter().map(lower).collect(),
            token_count: s.tokens.len(),
            spenders: s.spenders.iter().map(lower).collect(),
            tokens_lists_urls: s.token_lists.iter().cloned().collect(),
            expires_at: s.expires_at,
            block_number,
            metadata: metadata
                .iter()
                .filter(|(t, _)| s.tokens.contains(*t))
                .map(|(t, m)| (lower(t), m.clone()))
                .collect(),
            lists: vec![],
        }
    }
}

/// How many table writes run at once for the initial values.
const WRITE_CONCURRENCY: usize = 32;

/// Whether a write may create the session (POST) or only add to an existing one (PUT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    CreateOrAdd,
    AddOnly,
}

/// `POST` and `PUT /{chain_id}/sessions/{owner}`.
#[utoipa::path(
    method(post, put),
    path = "/{chain_id}/sessions/{owner}",
    operation_id = "session",
    tag = "sessions",
    description = "POST creates the wallet's session or adds to it; PUT only adds to an existing one (404 if none). Neither removes anything: sessions end by expiry. The native currency and the chain's WETH are always tracked; spenders default to CoW Protocol's GPv2VaultRelayer.",
    params(WalletPath),
    request_body = SessionRequest,
    responses(
        (status = 200, description = "The session after the addition, with the metadata of its tokens", body = SessionView),
        (status = 400, description = "Malformed chain id, owner, token or body", body = ErrorBody),
        (status = 404, description = "Chain not served here, or no session", body = ErrorBody),
        (status = 413, description = "Body larger than 256 KiB", body = ErrorBody),
        (status = 415, description = "Body not declared as application/json", body = ErrorBody),
        (status = 422, description = "A token list was refused (destination, redirects, timeout, size, not a token list, empty for the chain)", body = ErrorBody),
        (status = 502, description = "The chain could not be read; nothing stored", body = ErrorBody),
        (status = 503, description = "Storage unavailable; nothing stored", body = ErrorBody),
    ),
)]
pub async fn upsert(
    state: &State,
    req: &Request,
    chain: &str,
    owner: &str,
    mode: Upsert,
) -> Result<Response<ResponseBody>, ApiError> {
    // Validate everything before fetching, reading or writing anything.
    let (chain_id, owner, reader) = request::wallet(state, chain, owner)?;
    let body: SessionRequest = request::json_body(req)?;
    let max_tokens = state.settings.max_tokens_per_session;
    if body.custom_tokens.len() > max_tokens {
        return Err(ApiError::TooManyTokens(max_tokens));
    }
    let custom: BTreeSet<Address> = request::addresses("customTokens", &body.custom_tokens)?
        .into_iter()
        .collect();
    let lists = tokens::check_lists(state, &body.tokens_lists_urls)?;
    if custom.is_empty() && lists.is_empty() {
        return Err(ApiError::EmptyTokenSet);
    }
    let spenders: BTreeSet<Address> = match &body.spenders {
        Some(list) => request::addresses("spenders", list)?.into_iter().collect(),
        None => [state.settings.default_spender].into(),
    };
    limits::admit_session_write(state, req, chain_id, &owner).await?;
    let existing = live_session(state, chain_id, &owner).await?;
    match (&existing, mode) {
        (None, Upsert::AddOnly) => return Err(ApiError::SessionNotFound),
        (None, Upsert::CreateOrAdd) => limits::admit_new_session(state, chain_id).await?,
        (Some(_), _) => {}
    }

    let started = std::time::Instant::now();
    let requested = tokens::resolve(state, chain_id, reader, &custom, &lists).await?;
    let resolved = started.elapsed();
    // Only what the session does not track yet needs an initial read: the poller keeps the
    // rest current.
    let known_tokens = existing.as_ref().map(|s| s.tokens.len()).unwrap_or(0);
    let new_tokens = match &existing {
        Some(s) => requested.tokens.difference(&s.tokens).count(),
        None => requested.tokens.len(),
    };
    if known_tokens + new_tokens > max_tokens {
        return Err(ApiError::TooManyTokens(max_tokens));
    }
    let keys: Vec<(Address, BalanceKey)> =
        untracked_keys(existing.as_ref(), &requested.tokens, &spenders)
            .into_iter()
            .map(|key| (owner, key))
            .collect();

    // Read first: if the chain cannot be read, nothing is stored.
    let (block, reads) = reader.read_latest(&keys).await?;
    let read = started.elapsed();

    let now = unix_now();
    let expires_at = now + state.settings.session_ttl.as_secs();
    let addition = SessionAddition {
        tokens: requested.tokens.clone(),
        spenders: spenders.clone(),
        token_lists: lists,
    };
    let session = state
        .table
        .add_to_session(
            chain_id,
            &owner,
            &addition,
            max_tokens - new_tokens,
            now,
            expires_at,
        )
        .await?
        .ok_or(ApiError::TooManyTokens(max_tokens))?;
    // Tells the poller to reload the chain's sessions. Should this fail, the poller's periodic
    // full reload still picks the session up; the request is not failed for it.
    if let Err(error) = state.table.bump_sessions_version(chain_id).await {
        tracing::warn!(chain = chain_id, owner = %owner, %error, "sessions version not bumped");
    }
    let metadata = &requested.metadata;
    let keys_written = keys.len();
    let items = keys
        .into_iter()
        .zip(reads)
        .map(|((owner, key), read)| BalanceItem {
            chain_id,
            owner,
            key,
            read,
            block,
            tx_hash: None,
        });
    stream::iter(items)
        .map(|item| async move {
            let meta = metadata.get(&item.key.token());
            state.table.put_initial_balance(&item, meta, now).await
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    tracing::info!(
        chain = chain_id,
        owner = %owner,
        tokens = session.tokens.len(),
        new_tokens,
        lists = requested.lists.len(),
        values = keys_written,
        block,
        resolve_ms = resolved.as_millis() as u64,
        read_ms = (read - resolved).as_millis() as u64,
        write_ms = (started.elapsed() - read).as_millis() as u64,
        "session updated"
    );
    let mut view = SessionView::new(&session, block, metadata);
    view.lists = requested.lists;
    Ok(body::json(StatusCode::OK, &view))
}

/// The values an addition starts tracking: every value of a new token, and the allowances of
/// new spenders on tokens already tracked.
fn untracked_keys(
    existing: Option<&Session>,
    tokens: &BTreeSet<Address>,
    spenders: &BTreeSet<Address>,
) -> Vec<BalanceKey> {
    let empty = BTreeSet::new();
    let (known_tokens, known_spenders) =
        existing.map_or((&empty, &empty), |s| (&s.tokens, &s.spenders));
    let watch = Watch {
        tokens: known_tokens.union(tokens).copied().collect(),
        spenders: known_spenders.union(spenders).copied().collect(),
    };
    watch
        .keys()
        .filter(|key| match key {
            BalanceKey::Balance { token } => !known_tokens.contains(token),
            BalanceKey::Allowance { token, spender } => {
                !known_tokens.contains(token) || !known_spenders.contains(spender)
            }
        })
        .collect()
}

/// The wallet's session if it exists and has not expired.
pub async fn live_session(
    state: &State,
    chain_id: u64,
    owner: &Address,
) -> Result<Option<Session>, ApiError> {
    let now = unix_now();
    Ok(state
        .table
        .session(chain_id, owner)
        .await?
        .filter(|s| s.expires_at > now))
}

/// `GET /{chain_id}/sessions/{owner}`.
#[utoipa::path(
    get,
    path = "/{chain_id}/sessions/{owner}",
    operation_id = "getSession",
    tag = "sessions",
    params(WalletPath),
    responses(
        (status = 200, description = "The live session", body = SessionView),
        (status = 400, description = "Malformed chain id, owner, token or body", body = ErrorBody),
        (status = 404, description = "Chain not served here, or no session", body = ErrorBody),
    ),
)]
pub async fn get(
    state: &State,
    chain: &str,
    owner: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let session = live_session(state, chain_id, &owner)
        .await?
        .ok_or(ApiError::SessionNotFound)?;
    let values = state.table.wallet_values(chain_id, &owner).await?;
    let block = values.items.iter().map(|i| i.block).max().unwrap_or(0);
    Ok(body::json(
        StatusCode::OK,
        &SessionView::new(&session, block, &values.metadata),
    ))
}
