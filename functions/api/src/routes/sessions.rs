//! `POST`/`PUT`/`GET /{chain_id}/sessions/{owner}`: create a wallet's session or add to it, and
//! read its whole new token set once so the first SSE snapshot is instant — storing only the
//! values that are not zero (a 5,000-token list session of a wallet holding 20 of them writes
//! about 20 values).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use axum::extract::State as Shared;
use futures::{StreamExt, TryStreamExt, stream};
use http::Response;
use http::StatusCode;
use live_balances::NATIVE_TOKEN;
use live_balances::address::lower;
use live_balances::clock::unix_now;
use live_balances::model::{BalanceItem, BalanceKey, Session, SessionAddition, TokenRead};
use live_balances::storage::{TokenFact, UNREADABLE_FOR_SECS, ValueWrite};
use live_balances::token_metadata::TokenMetadata;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::catalog::ListVersion;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Segments, WholeRequest};
use crate::limits;
use crate::request::{self, Request};
use crate::requested_tokens::{self, ListSummary};
use crate::route_docs::{BodyRefused, MalformedRequest, NoSession, WalletPath};
use crate::state::State;
use crate::telemetry;
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
    pub custom_tokens: Vec<String>,
    pub discover_tokens: bool,
    pub discovered_tokens: Vec<String>,
    pub spenders: Vec<String>,
    pub tokens_lists_urls: Vec<String>,
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

/// How many table writes run at once for the initial values.
const WRITE_CONCURRENCY: usize = 32;
/// Attempts at writing a session that concurrent requests keep changing.
const WRITE_ATTEMPTS: usize = 4;

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
    let mode = if req.method() == http::Method::PUT {
        Upsert::AddOnly
    } else {
        Upsert::CreateOrAdd
    };
    // Validate everything before fetching, reading or writing anything.
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let body: SessionRequest = request::json_body(req)?;
    let checked = check(state, chain_id, owner, &body)?;
    let view = apply(state, req, &checked, mode).await?;
    Ok(body::json(StatusCode::OK, &view))
}

/// A session request that passed every check that needs no read: what [`apply`] adds.
#[derive(Debug)]
pub struct CheckedRequest {
    chain_id: u64,
    owner: Address,
    custom: BTreeSet<Address>,
    lists: BTreeSet<String>,
    spenders: BTreeSet<Address>,
    discover: bool,
}

impl CheckedRequest {
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn owner(&self) -> Address {
        self.owner
    }
}

/// Checks a session request for a wallet of a served chain, reading nothing.
pub fn check(
    state: &State,
    chain_id: u64,
    owner: Address,
    body: &SessionRequest,
) -> Result<CheckedRequest, ApiError> {
    let max_tokens = state.settings.limits.max_tokens_per_session;
    if body.custom_tokens.len() > max_tokens {
        return Err(ApiError::TooManyTokens(max_tokens));
    }
    let custom: BTreeSet<Address> = request::addresses("customTokens", &body.custom_tokens)?
        .into_iter()
        .collect();
    let lists = requested_tokens::check_lists(state, &body.tokens_lists_urls)?;
    if custom.is_empty() && lists.is_empty() {
        return Err(ApiError::EmptyTokenSet);
    }
    let spenders: BTreeSet<Address> = match &body.spenders {
        Some(list) => request::addresses("spenders", list)?.into_iter().collect(),
        None => [state.settings.default_spender].into(),
    };
    limits::check_session_size(state, &custom, &spenders)?;
    Ok(CheckedRequest {
        chain_id,
        owner,
        custom,
        lists,
        spenders,
        discover: body.discover_tokens,
    })
}

/// Creates the session or adds to it (see [`upsert`]): the one way every route writes one.
pub async fn apply(
    state: &State,
    req: &Request,
    checked: &CheckedRequest,
    mode: Upsert,
) -> Result<SessionView, ApiError> {
    let (chain_id, owner) = (checked.chain_id, checked.owner);
    limits::admit_session_write(state, req, chain_id, &owner).await?;
    let existing = live_session(state, chain_id, &owner).await?;
    match (&existing, mode) {
        (None, Upsert::AddOnly) => return Err(ApiError::SessionNotFound),
        (None, Upsert::CreateOrAdd) => limits::admit_new_session(state, chain_id).await?,
        (Some(_), _) => {}
    }
    let started = std::time::Instant::now();
    let reader = state.reader(chain_id)?;
    let requested =
        requested_tokens::resolve(state, chain_id, reader, &checked.custom, &checked.lists).await?;
    let addition = SessionAddition {
        custom_tokens: checked.custom.clone(),
        spenders: checked.spenders.clone(),
        token_lists: requested
            .lists
            .iter()
            .map(|l| (l.url.clone(), l.generation))
            .collect(),
        discover: checked.discover,
    };
    let resolved = started.elapsed();
    for _ in 0..WRITE_ATTEMPTS {
        if let Some(mut view) =
            add(state, chain_id, owner, &addition, &requested, mode, started).await?
        {
            view.lists = requested.summaries;
            tracing::debug!(chain = chain_id, owner = %owner, resolve_ms = resolved.as_millis() as u64, "lists resolved");
            return Ok(view);
        }
    }
    Err(ApiError::SessionBusy)
}

/// What one attempt starts from: the session as stored (`live` when it has not expired), the
/// session it becomes, and the tokens tracked before and after.
struct Attempt {
    now: u64,
    live: Option<Session>,
    /// The session the addition applies to: the live one, or a new one.
    base: Session,
    next: Session,
    weth: Option<Address>,
    versions: HashMap<String, Arc<ListVersion>>,
    before: BTreeSet<Address>,
    after: BTreeSet<Address>,
    /// The values the addition starts tracking: read on chain before anything is stored.
    keys: Vec<BalanceKey>,
}

/// One attempt at applying `addition`: reads the session, reads on chain every value it
/// starts tracking, stores the session if nobody changed it meanwhile (`None` otherwise: try
/// again), then its non-zero values.
async fn add(
    state: &State,
    chain_id: u64,
    owner: Address,
    addition: &SessionAddition,
    requested: &requested_tokens::RequestedTokens,
    mode: Upsert,
    started: std::time::Instant,
) -> Result<Option<SessionView>, ApiError> {
    let attempt = prepare(state, chain_id, owner, addition, requested, mode).await?;
    if let Some(live) = attempt
        .live
        .as_ref()
        .filter(|l| adds_nothing(l, &attempt.next))
    {
        return keep_alive(state, &attempt, live, requested).await.map(Some);
    }
    let Attempt {
        now,
        live,
        base,
        mut next,
        weth,
        versions,
        before,
        after,
        keys,
    } = attempt;

    // Read first: if the chain cannot be read, nothing is stored.
    let (block, values, stored_values) = read_values(state, chain_id, owner, &keys).await?;
    let read_done = started.elapsed();
    let unreadable = unreadable_tokens(state, chain_id, &keys, &values, block).await?;

    next.revision = base.revision + 1;
    next.read_block = block;
    // Never shortened: a session held by an order or a subscription (`hold`) lives on.
    next.expires_at = (now + state.settings.limits.session_ttl.as_secs()).max(base.expires_at);
    let items = values_to_store(&next, &keys, values, &stored_values, &unreadable);
    if !store(state, &next, base.revision, live.is_none(), &items, now).await? {
        tracing::info!(chain = chain_id, owner = %owner, "session changed meanwhile; trying again");
        return Ok(None);
    }
    tracing::info!(
        chain = chain_id,
        owner = %owner,
        tokens = after.len(),
        new_tokens = after.len() - before.len(),
        lists = requested.lists.len(),
        reads = keys.len(),
        values_written = items.len(),
        unreadable = unreadable.len(),
        block,
        read_ms = read_done.as_millis() as u64,
        write_ms = (started.elapsed() - read_done).as_millis() as u64,
        "session updated"
    );
    let mut held = held_tokens(&items);
    held.extend(
        stored_values
            .iter()
            .filter(|(_, r)| r.value().is_some_and(|v| !v.is_zero()))
            .map(|(k, _)| k.token()),
    );
    let named_metadata = named_metadata(state, &next, weth, &requested.named_metadata).await?;
    Ok(Some(SessionView::new(
        state,
        &next,
        &after,
        block,
        &versions,
        &named_metadata,
        &held,
    )))
}

/// The values of `keys` on chain at the latest block (that block and one read per key), and
/// what the table already holds for the wallet (a value of a token it tracked before).
async fn read_values(
    state: &State,
    chain_id: u64,
    owner: Address,
    keys: &[BalanceKey],
) -> Result<(u64, Vec<TokenRead>, HashMap<BalanceKey, TokenRead>), ApiError> {
    let reads: Vec<(Address, BalanceKey)> = keys.iter().map(|k| (owner, *k)).collect();
    let reader = state.reader(chain_id)?;
    let (chain_read, items) = tokio::join!(
        reader.read_latest(&reads),
        state.table.balances(chain_id, &owner)
    );
    let (block, values) = chain_read?;
    let stored_values = items?.into_iter().map(|i| (i.key, i.read)).collect();
    Ok((block, values, stored_values))
}

/// Reads the session and applies `addition` to it (or to a new one): what the attempt
/// tracks before and after, and the values it starts tracking.
async fn prepare(
    state: &State,
    chain_id: u64,
    owner: Address,
    addition: &SessionAddition,
    requested: &requested_tokens::RequestedTokens,
    mode: Upsert,
) -> Result<Attempt, ApiError> {
    let now = unix_now();
    let stored = state.table.session(chain_id, &owner).await?;
    let live = stored.clone().filter(|s| s.expires_at > now);
    if live.is_none() && mode == Upsert::AddOnly {
        return Err(ApiError::SessionNotFound);
    }
    let base = live.clone().unwrap_or_else(|| Session {
        // A session that expired starts over, under the revision it reached.
        revision: stored.as_ref().map_or(0, |s| s.revision),
        ..Session::new(chain_id, owner, now)
    });
    let next = base.with(addition);
    let weth = state.settings.chains.get(&chain_id).and_then(|c| c.weth);
    let versions = list_versions(state, chain_id, &next, &requested.lists).await?;
    let list_tokens = |url: &str| versions.get(url).map(|v| v.tokens.as_slice());
    let before = match &live {
        Some(s) => s.tracked_tokens(list_tokens, weth),
        None => BTreeSet::new(),
    };
    let after = next.tracked_tokens(list_tokens, weth);
    let max_tokens = state.settings.limits.max_tokens_per_session;
    if after.len() > max_tokens {
        return Err(ApiError::TooManyTokens(max_tokens));
    }
    limits::check_session_size(state, &after, &next.spenders)?;
    let known_spenders = live
        .as_ref()
        .map(|s| s.spenders.clone())
        .unwrap_or_default();
    let keys = untracked_keys(&before, &known_spenders, &after, &next.spenders);
    Ok(Attempt {
        now,
        live,
        base,
        next,
        weth,
        versions,
        before,
        after,
        keys,
    })
}

/// Another tab of the same wallet asking for what the session already has: it only lives
/// longer. No read, no revision, no work for the poller.
async fn keep_alive(
    state: &State,
    attempt: &Attempt,
    live: &Session,
    requested: &requested_tokens::RequestedTokens,
) -> Result<SessionView, ApiError> {
    let (chain_id, owner, now) = (live.chain_id, live.owner, attempt.now);
    let expires_at = now + state.settings.limits.session_ttl.as_secs();
    state
        .table
        .keep_session_alive(chain_id, &owner, now, expires_at, None)
        .await?;
    let held = held_tokens(&state.table.balances(chain_id, &owner).await?);
    let named_metadata =
        named_metadata(state, live, attempt.weth, &requested.named_metadata).await?;
    let mut kept = live.clone();
    kept.expires_at = kept.expires_at.max(expires_at);
    Ok(SessionView::new(
        state,
        &kept,
        &attempt.after,
        live.read_block,
        &attempt.versions,
        &named_metadata,
        &held,
    ))
}

/// The values read for `keys` that are stored: only what is not zero — and the zero of a
/// value stored earlier, which must not linger. Tokens unreadable for any holder are not.
fn values_to_store(
    session: &Session,
    keys: &[BalanceKey],
    values: Vec<TokenRead>,
    stored: &HashMap<BalanceKey, TokenRead>,
    unreadable: &BTreeSet<Address>,
) -> Vec<BalanceItem> {
    keys.iter()
        .zip(values)
        .filter(|(key, _)| !unreadable.contains(&key.token()))
        .filter(|(key, read)| {
            *read != TokenRead::Value(U256::ZERO)
                || stored
                    .get(key)
                    .is_some_and(|s| *s != TokenRead::Value(U256::ZERO))
        })
        .map(|(key, read)| BalanceItem {
            chain_id: session.chain_id,
            owner: session.owner,
            key: *key,
            read,
            block: session.read_block,
            tx_hash: None,
        })
        .collect()
}

/// Stores `next` if it is still at `base_revision` (`false`: somebody changed it meanwhile,
/// nothing stored) — the poller learns of it from the session log entry written with it —
/// then its new values, then marks them complete (the poller waits for that before it takes
/// the values as stored).
async fn store(
    state: &State,
    next: &Session,
    base_revision: u64,
    fresh: bool,
    items: &[BalanceItem],
    now: u64,
) -> Result<bool, ApiError> {
    let (chain_id, owner) = (next.chain_id, next.owner);
    if !state
        .table
        .write_session(next, base_revision, fresh)
        .await?
    {
        return Ok(false);
    }
    store_values(state, items, now).await?;
    state
        .table
        .complete_session(chain_id, &owner, next.revision)
        .await?;
    telemetry::session_written(chain_id);
    Ok(true)
}

/// Writes the first reads of a session's new values, `WRITE_CONCURRENCY` at once.
async fn store_values(state: &State, items: &[BalanceItem], now: u64) -> Result<(), ApiError> {
    let how = ValueWrite {
        first_read: true,
        rewound_above: None,
        tombstone_expires_at: now + state.settings.feed_ttl.as_secs(),
    };
    // The futures are built up front (they do nothing until polled): a closure in the stream
    // would be generic over the item's lifetime, which the `Send` handler cannot prove.
    let writes: Vec<_> = items
        .iter()
        .map(|item| state.table.put_balance(item, now, how))
        .collect();
    stream::iter(writes)
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Whether `next` tracks nothing `live` does not.
fn adds_nothing(live: &Session, next: &Session) -> bool {
    live.custom_tokens == next.custom_tokens
        && live.spenders == next.spenders
        && live.discover == next.discover
        && live.token_lists.keys().eq(next.token_lists.keys())
}

/// The tokens of which stored values are not zero.
fn held_tokens(items: &[BalanceItem]) -> BTreeSet<Address> {
    items
        .iter()
        .filter(|i| i.read.value().is_some_and(|v| !v.is_zero()))
        .map(|i| i.key.token())
        .collect()
}

/// Of the tokens whose reads failed, those that fail for any holder: recorded once for the
/// chain, never stored per wallet.
async fn unreadable_tokens(
    state: &State,
    chain_id: u64,
    keys: &[BalanceKey],
    values: &[TokenRead],
    block: u64,
) -> Result<BTreeSet<Address>, ApiError> {
    let failed: BTreeSet<Address> = keys
        .iter()
        .zip(values)
        .filter(|(key, read)| **read == TokenRead::Failed && key.token() != NATIVE_TOKEN)
        .map(|(key, _)| key.token())
        .collect();
    if failed.is_empty() {
        return Ok(failed);
    }
    let failed: Vec<Address> = failed.into_iter().collect();
    let unreadable = state
        .reader(chain_id)?
        .unreadable_tokens(&failed, block)
        .await?;
    if !unreadable.is_empty() {
        state
            .table
            .record_token_fact(
                chain_id,
                TokenFact::Unreadable,
                &unreadable,
                unix_now() + UNREADABLE_FOR_SECS,
            )
            .await?;
    }
    Ok(unreadable.into_iter().collect())
}

/// The values an addition starts tracking: every value of a new token, and the allowances of
/// new spenders on tokens already tracked.
fn untracked_keys(
    before: &BTreeSet<Address>,
    known_spenders: &BTreeSet<Address>,
    after: &BTreeSet<Address>,
    spenders: &BTreeSet<Address>,
) -> Vec<BalanceKey> {
    let mut keys = vec![];
    for token in after {
        let new_token = !before.contains(token);
        if new_token {
            keys.push(BalanceKey::Balance { token: *token });
        }
        if *token == NATIVE_TOKEN {
            continue;
        }
        for spender in spenders {
            if new_token || !known_spenders.contains(spender) {
                keys.push(BalanceKey::Allowance {
                    token: *token,
                    spender: *spender,
                });
            }
        }
    }
    keys
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
        let full = tokens.len() <= state.settings.tracking.full_detail_max_tokens;
        let metadata = tokens
            .iter()
            .filter(|t| full || named.contains_key(*t) || held.contains(*t))
            .filter_map(|t| {
                let listed = session
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
            custom_tokens: session.custom_tokens.iter().map(lower).collect(),
            discover_tokens: session.discover,
            discovered_tokens: session.discovered.iter().map(lower).collect(),
            spenders: session.spenders.iter().map(lower).collect(),
            tokens_lists_urls: session.token_lists.keys().cloned().collect(),
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
    path = "/{chain_id}/sessions/{owner}",
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
