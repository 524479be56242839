//! Limits on what one caller can make the service do, so a flood cannot exhaust the poller,
//! the node, the table or the delivery function: session writes per source address and per
//! wallet, chain reads and stream opens per source, webhook subscriptions per source, back-end
//! requests per API key (fixed one-minute windows counted in the table, shared by every
//! container), the size of a session, and a cap on the live sessions of a chain for new
//! wallets. Open streams are counted in [`crate::stream_admission`].

use std::collections::BTreeSet;

use alloy::primitives::Address;
use live_balances::NATIVE_TOKEN;
use live_balances::domain::model::Spender;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::keys::RateWindow;

use crate::error::ApiError;
use crate::request::{KeyAuthenticated, Request, rate_source};
use crate::state::State;

const WINDOW_SECS: u64 = 60;

/// Counts one use of `counted` against its window of `limit` a minute.
async fn take(
    state: &State,
    counted: RateWindow<'_>,
    limit: u64,
    what: &'static str,
) -> Result<(), ApiError> {
    let now = unix_now();
    let window = now / WINDOW_SECS * WINDOW_SECS;
    if state
        .table
        .take_from_window(counted, window, WINDOW_SECS, limit)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::RateLimited {
            what,
            limit,
            retry_after: window + WINDOW_SECS - now,
        })
    }
}

/// Counts one session write against its source's and its wallet's windows. A back end's write
/// (an order registration) counts against its API key's quota instead of its address's.
pub async fn admit_session_write(
    state: &State,
    req: &Request,
    chain_id: u64,
    owner: &Address,
) -> Result<(), ApiError> {
    let settings = &state.settings;
    if req.extensions().get::<KeyAuthenticated>().is_none() {
        let source = rate_source(req)?;
        take(
            state,
            RateWindow::SessionSource(&source),
            settings.limits.session_writes_per_source,
            "session writes from one source",
        )
        .await
        .inspect_err(|_| tracing::warn!(source, "session writes rate-limited for a source"))?;
    }
    take(
        state,
        RateWindow::SessionOwner(chain_id, owner),
        settings.limits.session_writes_per_owner,
        "session writes for one wallet",
    )
    .await
}

/// Counts one webhook subscription against its source's window.
pub async fn admit_webhook_create(state: &State, req: &Request) -> Result<(), ApiError> {
    let source = rate_source(req)?;
    take(
        state,
        RateWindow::WebhookSource(&source),
        state.settings.webhooks.subscriptions.creates_per_source,
        "webhook subscriptions from one source",
    )
    .await
    .inspect_err(|_| tracing::warn!(source, "webhook creation rate-limited for a source"))
}

/// Counts one balance read that goes to the chain against its source's window: each is a
/// Multicall on the operator's node.
pub async fn admit_chain_read(state: &State, req: &Request) -> Result<(), ApiError> {
    let source = rate_source(req)?;
    take(
        state,
        RateWindow::ChainReadSource(&source),
        state.settings.bounds.chain_reads_per_source,
        "on-chain balance reads from one source",
    )
    .await
    .inspect_err(|_| tracing::warn!(source, "chain reads rate-limited for a source"))
}

/// Counts one stream opening against its source's window.
pub async fn admit_stream_open(state: &State, req: &Request) -> Result<String, ApiError> {
    let source = rate_source(req)?;
    take(
        state,
        RateWindow::StreamOpenSource(&source),
        state.settings.bounds.stream_opens_per_source,
        "stream opens from one source",
    )
    .await
    .inspect_err(|_| tracing::warn!(source, "stream opens rate-limited for a source"))?;
    Ok(source)
}

/// Counts one back-end request against its key's quota.
pub async fn admit_back_end_request(
    state: &State,
    key_id: &str,
    limit: u64,
) -> Result<(), ApiError> {
    take(
        state,
        RateWindow::ApiKey(key_id),
        limit,
        "requests with this API key",
    )
    .await
    .inspect_err(|_| tracing::warn!(key = key_id, "back-end requests rate-limited for a key"))
}

/// Refuses a session that would track more spenders than `MAX_SPENDERS_PER_SESSION`, or more
/// allowances (its tokens but the native currency, times its spenders) than
/// `MAX_ALLOWANCES_PER_SESSION`: each allowance is a read when it starts being tracked and an
/// entry of snapshots, so their product bounds what one request can make the service hold.
pub fn check_session_size(
    state: &State,
    tokens: &BTreeSet<Address>,
    spenders: &BTreeSet<Spender>,
) -> Result<(), ApiError> {
    let bounds = &state.settings.bounds;
    if spenders.len() > bounds.max_spenders_per_session {
        return Err(ApiError::TooManySpenders(bounds.max_spenders_per_session));
    }
    let allowance_tokens = tokens.iter().filter(|t| **t != NATIVE_TOKEN).count();
    let count = allowance_tokens.saturating_mul(spenders.len());
    if count > bounds.max_allowances_per_session {
        return Err(ApiError::TooManyAllowances {
            max: bounds.max_allowances_per_session,
            count,
        });
    }
    Ok(())
}

/// Refuses a new wallet's session when the chain is at its session cap.
pub async fn admit_new_session(state: &State, chain_id: u64) -> Result<(), ApiError> {
    let live = state.table.live_sessions(chain_id).await?;
    if live >= state.settings.limits.max_sessions_per_chain {
        tracing::warn!(chain = chain_id, live, "session cap reached");
        return Err(ApiError::AtCapacity);
    }
    Ok(())
}
