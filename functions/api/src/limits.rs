//! Limits on writes, so a flood cannot exhaust the poller or the delivery function: session
//! writes per source address and per wallet, webhook subscriptions per source address (fixed
//! one-minute windows counted in the table, shared by every container), and a cap on the live
//! sessions of a chain for new wallets.

use alloy::primitives::Address;
use live_balances::clock::unix_now;
use live_balances::storage::keys::RateWindow;

use crate::error::ApiError;
use crate::request::{ClientAddress, Request};
use crate::state::State;

const WINDOW_SECS: u64 = 60;

/// The client's address as the transport saw it (never a header a client could forge).
fn source_address(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ClientAddress>()
        .map(|ClientAddress(address)| address.clone())
}

/// Counts one write against `counted`'s window of `limit` writes a minute.
async fn take(state: &State, counted: RateWindow<'_>, limit: u64) -> Result<(), ApiError> {
    let window = unix_now() / WINDOW_SECS * WINDOW_SECS;
    if state
        .table
        .take_from_window(counted, window, WINDOW_SECS, limit)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::RateLimited(limit))
    }
}

/// Counts one session write against its source's and its wallet's windows.
pub async fn admit_session_write(
    state: &State,
    req: &Request,
    chain_id: u64,
    owner: &Address,
) -> Result<(), ApiError> {
    let settings = &state.settings;
    if let Some(source) = source_address(req) {
        take(
            state,
            RateWindow::SessionSource(&source),
            settings.limits.session_writes_per_source,
        )
        .await
        .inspect_err(|_| tracing::warn!(source, "session writes rate-limited for a source"))?;
    }
    take(
        state,
        RateWindow::SessionOwner(chain_id, owner),
        settings.limits.session_writes_per_owner,
    )
    .await
}

/// Counts one webhook subscription against its source's window.
pub async fn admit_webhook_create(state: &State, req: &Request) -> Result<(), ApiError> {
    let Some(source) = source_address(req) else {
        return Ok(());
    };
    take(
        state,
        RateWindow::WebhookSource(&source),
        state.settings.webhooks.creates_per_source,
    )
    .await
    .inspect_err(|_| tracing::warn!(source, "webhook creation rate-limited for a source"))
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
