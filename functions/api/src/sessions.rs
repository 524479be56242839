//! `POST /{chain_id}/sessions/{owner}`: create a wallet's session or add to it, and write the
//! initial values so the first SSE snapshot is instant.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use futures::{StreamExt, TryStreamExt, stream};
use http::StatusCode;
use lambda_http::{Request, Response, tracing};
use live_balances::NATIVE_TOKEN;
use live_balances::address::lower;
pub use live_balances::clock::unix_now;
use live_balances::model::{BalanceItem, Session};
use live_balances::plan::Watch;
use serde::{Deserialize, Serialize};

use crate::body::{self, ResponseBody};
use crate::error::ApiError;
use crate::request;
use crate::state::State;

/// Body of `POST /{chain_id}/sessions/{owner}`.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub chain_id: u64,
    pub owner: String,
    pub tokens: Vec<String>,
    pub token_count: usize,
    pub spenders: Vec<String>,
    pub expires_at: u64,
    /// Block the initial values were read at.
    pub block_number: u64,
}

impl SessionView {
    fn new(s: &Session, block_number: u64) -> Self {
        Self {
            chain_id: s.chain_id,
            owner: lower(&s.owner),
            tokens: s.tokens.iter().map(lower).collect(),
            token_count: s.tokens.len(),
            spenders: s.spenders.iter().map(lower).collect(),
            expires_at: s.expires_at,
            block_number,
        }
    }
}

/// How many table writes run at once for the initial values.
const WRITE_CONCURRENCY: usize = 16;

/// Whether a write may create the session (POST) or only add to an existing one (PUT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    CreateOrAdd,
    AddOnly,
}

/// `POST` and `PUT /{chain_id}/sessions/{owner}`.
pub async fn upsert(
    state: &State,
    req: &Request,
    chain: &str,
    owner: &str,
    mode: Upsert,
) -> Result<Response<ResponseBody>, ApiError> {
    // Validate everything before reading or writing anything.
    let (chain_id, owner, reader) = request::wallet(state, chain, owner)?;
    let body: SessionRequest = request::json_body(req)?;
    if !body.tokens_lists_urls.is_empty() {
        return Err(ApiError::TokenListsUnsupported);
    }
    let mut tokens: BTreeSet<Address> = request::addresses("customTokens", &body.custom_tokens)?
        .into_iter()
        .collect();
    if tokens.is_empty() {
        return Err(ApiError::EmptyTokenSet);
    }
    // The native currency is always tracked.
    tokens.insert(NATIVE_TOKEN);
    if tokens.len() > state.settings.max_tokens_per_session {
        return Err(ApiError::TooManyTokens(
            state.settings.max_tokens_per_session,
        ));
    }
    let spenders: BTreeSet<Address> = match &body.spenders {
        Some(list) => request::addresses("spenders", list)?.into_iter().collect(),
        None => [state.settings.default_spender].into(),
    };
    if mode == Upsert::AddOnly && live_session(state, chain_id, &owner).await?.is_none() {
        return Err(ApiError::SessionNotFound);
    }

    // Read first: if the chain cannot be read, nothing is stored.
    let watch = Watch {
        tokens: tokens.clone(),
        spenders: spenders.clone(),
    };
    let keys: Vec<_> = watch.keys().map(|k| (owner, k)).collect();
    let block = reader.block_number().await?;
    let reads = reader.read(&keys, block).await?;

    let now = unix_now();
    let expires_at = now + state.settings.session_ttl.as_secs();
    let session = state
        .table
        .add_to_session(chain_id, &owner, &tokens, &spenders, now, expires_at)
        .await?;
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
        .map(|item| async move { state.table.put_balance(&item, now, None).await })
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    tracing::info!(chain = chain_id, owner = %owner, tokens = session.tokens.len(), block, "session updated");
    Ok(body::json(
        StatusCode::OK,
        &SessionView::new(&session, block),
    ))
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
pub async fn get(
    state: &State,
    chain: &str,
    owner: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let session = live_session(state, chain_id, &owner)
        .await?
        .ok_or(ApiError::SessionNotFound)?;
    let block = state
        .table
        .balances(chain_id, &owner)
        .await?
        .iter()
        .map(|i| i.block)
        .max()
        .unwrap_or(0);
    Ok(body::json(
        StatusCode::OK,
        &SessionView::new(&session, block),
    ))
}
