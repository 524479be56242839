//! `GET /sse/{chain_id}/balances/{owner}`: one wallet's stream — `all_balances` from the
//! table, then the wallet's changes live, `ping`s in between (see [`crate::stream`], which it
//! shares with the multi-wallet stream). Every data event's `id` is the wallet's feed
//! position.

use std::sync::Arc;

use axum::extract::State as Shared;
use http::Response;
use live_balances::domain::model::FeedPosition;
use live_balances::feed::pairs::WalletPair;

use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Segments, WholeRequest};
use crate::request;
use crate::route_docs::{NoSession, SseEventData, WalletPath};
use crate::state::State;
use crate::stream::{self, BalanceStream, Resume, Shape};
use crate::stream_admission;
use crate::tracked::live_session;

#[utoipa::path(
    get,
    path = "/sse/{chain_id}/balances/{owner}",
    operation_id = "streamBalances",
    tag = "stream",
    description = "Server-Sent Events: `all_balances` first (from the table), then `balance_update` / `allowance_update` / `permit2_allowance_update` / `order_status` as the wallet changes, `ping` in between. Every data event has an `id`; reconnect with `Last-Event-ID` to resume (or get `resync` and a fresh snapshot — also when the id is not one this stream can read: the answer is never a refusal, which would stop EventSource for good). The stream ends itself before the function's limit (or the server's maximum, or when a server drains); EventSource reconnects. See the `SseEventData` schema: event name -> data.",
    params(
        WalletPath,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
        ("lastEventId" = Option<String>, Query, description = "Resume after this event id, for a new EventSource (which cannot set the header); the header wins when both are given"),
    ),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = SseEventData),
        (status = 400, description = "Malformed chain id or owner", body = ErrorBody),
        NoSession,
        (status = 429, description = "Over the source's stream opens a minute, or as many streams open from the source or on the wallet as allowed (Retry-After)", body = ErrorBody),
    ),
)]
pub async fn open(
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner]): Segments<2>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req, chain, owner) = (&*state, &req, chain.as_str(), owner.as_str());
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let resume = match stream::client_id(req) {
        None => Resume::Fresh,
        Some(id) => match FeedPosition::parse(&id) {
            Ok(position) => Resume::After(position),
            Err(_) => {
                tracing::info!(chain = chain_id, owner = %owner, "unreadable Last-Event-ID; resyncing");
                Resume::Unreadable
            }
        },
    };
    let source = stream_admission::opened(state, req).await?;
    if live_session(state, chain_id, &owner).await?.is_none() {
        return Err(ApiError::SessionNotFound);
    }
    let wallet = WalletPair { chain_id, owner };
    let tickets = stream_admission::admit(state, &source, &[wallet]).await?;
    let stream = BalanceStream::new(state, req, Shape::Single, vec![(wallet, resume, true)]);
    Ok(body::holding(stream.open(), tickets))
}
