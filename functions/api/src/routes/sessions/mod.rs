//! `POST`/`PUT`/`GET /{chain_id}/sessions/{owner}`: create a wallet's session or add to it, and
//! read its whole new token set once so the first SSE snapshot is instant — storing only the
//! values that are not zero (a 5,000-token list session of a wallet holding 20 of them writes
//! about 20 values).
//!
//! This file holds the routes, the request and answer types and the session's view; the
//! request is read and bounded in `checked` (nothing read or stored yet), and applied in
//! `write`.

mod checked;
mod write;

pub use checked::{CheckedRequest, check};
pub use write::apply;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use alloy::primitives::Address;
use axum::extract::State as Shared;
use http::Response;
use http::StatusCode;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceItem, Session};
use live_balances::domain::token_metadata::TokenMetadata;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::catalog::ListVersion;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Segments, WholeRequest};
use crate::request;
use crate::requested_tokens::ListSummary;
use crate::route_docs::{BodyRefused, MalformedRequest, NoSession, WalletPath};
use crate::state::State;
use crate::tracked::{list_versions, live_session};

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
    /// Spenders whose allowances inside Permit2 are tracked (amount, expiration, nonce); the
    /// token's allowance to Permit2 itself is tracked with them, as one more spender.
    #[serde(default)]
    pub permit2_spenders: Vec<String>,
    /// Track tokens that come into the wallet and none of its lists name (an airdrop, a
    /// newly bought token), up to `MAX_DISCOVERED_TOKENS`. Once on, it stays on.
    #[serde(default)]
    pub discover_tokens: bool,
}

/// A session as answered to clients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub chain_id: u64,
    pub owner: String,
    /// Every token tracked: the lists' current tokens, custom and discovered tokens, the
    /// native currency and the chain's WETH.
    pub tokens: Vec<String>,
    pub token_count: usize,
    pub discovered_tokens: Vec<String>,
    #[serde(flatten)]
    pub asked: AskedView,
    pub expires_at: u64,
    /// Block the values were read at (the newest of them).
    pub block_number: u64,
    /// How to render each token's amounts: every token's while the session has at most
    /// `FULL_DETAIL_MAX_TOKENS`, else the named and the held ones' (a list token's metadata
    /// is in its list).
    pub metadata: BTreeMap<String, TokenMetadata>,
    /// What each list named by this request contributed (POST and PUT only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListSummary>,
}

/// What a session's clients asked it to track, every request's additions together.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AskedView {
    pub custom_tokens: Vec<String>,
    pub discover_tokens: bool,
    /// ERC-20 allowance spenders (Permit2's address among them when `permit2Spenders` is not
    /// empty).
    pub spenders: Vec<String>,
    /// Spenders whose Permit2 allowances are tracked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permit2_spenders: Vec<String>,
    pub tokens_lists_urls: Vec<String>,
}

impl From<&Session> for AskedView {
    fn from(session: &Session) -> Self {
        Self {
            custom_tokens: session.asked.custom_tokens.iter().map(lower).collect(),
            discover_tokens: session.asked.discover,
            spenders: session.erc20_spenders().map(lower).collect(),
            permit2_spenders: session.permit2_spenders().map(lower).collect(),
            tokens_lists_urls: session.asked.token_lists.keys().cloned().collect(),
        }
    }
}

/// Whether a write may create the session (POST) or only add to an existing one (PUT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    CreateOrAdd,
    AddOnly,
}

/// The session route's path (`POST`, `PUT`, `GET`).
const PATH: &str = "/{chain_id}/sessions/{owner}";

/// `POST` and `PUT /{chain_id}/sessions/{owner}`.
#[utoipa::path(
    method(post, put),
    path = PATH,
    operation_id = "session",
    tag = "sessions",
    description = "POST creates the wallet's session or adds to it; PUT only adds to an existing one (404 if none). Neither removes anything: sessions end by expiry. The native currency and the chain's WETH are always tracked; spenders default to CoW Protocol's GPv2VaultRelayer. Token lists are followed by reference: when a list changes, the session tracks its new tokens.",
    params(WalletPath),
    request_body = SessionRequest,
    responses(
        (status = 200, description = "The session after the addition, with the metadata of its tokens", body = SessionView),
        MalformedRequest,
        NoSession,
        BodyRefused,
        (status = 422, description = "A token list was refused (destination, redirects, timeout, size, not a token list, empty for the chain)", body = ErrorBody),
        (status = 502, description = "The chain could not be read; nothing stored", body = ErrorBody),
        (status = 503, description = "Storage unavailable or the session busy; nothing stored", body = ErrorBody),
    ),
)]
pub async fn upsert(
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner]): Segments<2>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req, chain, owner) = (&*state, &req, chain.as_str(), owner.as_str());
    let mode = Upsert::of(req.method());
    // Validate everything before fetching, reading or writing anything.
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let body: SessionRequest = request::json_body(req)?;
    let checked = check(state, chain_id, owner, &body)?;
    let view = apply(state, req, &checked, mode).await?;
    Ok(body::json(StatusCode::OK, &view))
}

/// The tokens of which stored values are not zero.
fn held_tokens(items: &[BalanceItem]) -> BTreeSet<Address> {
    items
        .iter()
        .filter(|i| i.read.value().is_some_and(|v| !v.is_zero()))
        .map(|i| i.key.token())
        .collect()
}

/// Metadata of the tokens the session names by address: what this request learned, the
/// rest (custom tokens of earlier requests, discovered tokens) from the catalog.
async fn named_metadata(
    state: &State,
    session: &Session,
    weth: Option<Address>,
    learned: &BTreeMap<Address, TokenMetadata>,
) -> Result<BTreeMap<Address, TokenMetadata>, ApiError> {
    let named = session.named_tokens(weth);
    let others: BTreeSet<Address> = named
        .iter()
        .filter(|t| !learned.contains_key(*t))
        .copied()
        .collect();
    let mut metadata = state
        .catalog
        .named_metadata(&state.table, session.chain_id, &others)
        .await?;
    metadata.extend(
        learned
            .iter()
            .filter(|(t, _)| named.contains(*t))
            .map(|(t, m)| (*t, m.clone())),
    );
    Ok(metadata)
}

impl SessionView {
    fn new(
        state: &State,
        session: &Session,
        tokens: &BTreeSet<Address>,
        block_number: u64,
        versions: &HashMap<String, Arc<ListVersion>>,
        named: &BTreeMap<Address, TokenMetadata>,
        held: &BTreeSet<Address>,
    ) -> Self {
        let full = tokens.len() <= state.settings.full_detail_max_tokens;
        let metadata = tokens
            .iter()
            .filter(|t| full || named.contains_key(*t) || held.contains(*t))
            .filter_map(|t| {
                let listed = session
                    .asked
                    .token_lists
                    .keys()
                    .filter_map(|url| versions.get(url))
                    .find_map(|l| l.metadata.get(t));
                listed
                    .or_else(|| named.get(t))
                    .map(|m| (lower(t), m.clone()))
            })
            .collect();
        Self {
            chain_id: session.chain_id,
            owner: lower(&session.owner),
            tokens: tokens.iter().map(lower).collect(),
            token_count: tokens.len(),
            discovered_tokens: session.discovered.iter().map(lower).collect(),
            asked: AskedView::from(session),
            expires_at: session.expires_at,
            block_number,
            metadata,
            lists: vec![],
        }
    }
}

/// `GET /{chain_id}/sessions/{owner}`.
#[utoipa::path(
    get,
    path = PATH,
    operation_id = "getSession",
    tag = "sessions",
    params(WalletPath),
    responses(
        (status = 200, description = "The live session", body = SessionView),
        MalformedRequest,
        NoSession,
    ),
)]
pub async fn get(
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner]): Segments<2>,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, chain, owner) = (&*state, chain.as_str(), owner.as_str());
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let session = live_session(state, chain_id, &owner)
        .await?
        .ok_or(ApiError::SessionNotFound)?;
    let weth = state.settings.chains.get(&chain_id).and_then(|c| c.weth);
    let versions = list_versions(state, chain_id, &session, &[]).await?;
    let tokens = session.tracked_tokens(|url| versions.get(url).map(|v| v.tokens.as_slice()), weth);
    let items = state.table.balances(chain_id, &owner).await?;
    let block = items
        .iter()
        .map(|i| i.block)
        .max()
        .unwrap_or(0)
        .max(session.read_block);
    let held = held_tokens(&items);
    let named = named_metadata(state, &session, weth, &BTreeMap::new()).await?;
    Ok(body::json(
        StatusCode::OK,
        &SessionView::new(state, &session, &tokens, block, &versions, &named, &held),
    ))
}
