//! `GET /sse/balances?wallets=31337:0xabc,31338:0xabc`: one stream of several (chain, wallet)
//! pairs — an `all_balances` per pair, then every pair's changes, each event naming its
//! `chainId` and `owner` — built by the same engine as the single-wallet stream
//! ([`crate::stream`]). Its `id` resumes every pair exactly ([`live_balances::feed::stream_id`]).

use std::sync::Arc;

use axum::extract::State as Shared;
use http::Response;
use live_balances::feed::pairs::{PairSet, parse_pair_list};
use live_balances::feed::stream_id;

use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::WholeRequest;
use crate::request;
use crate::route_docs::MultiSseEventData;
use crate::state::State;
use crate::stream::{self, BalanceStream, Resume, Shape};
use crate::stream_admission;
use crate::tracked::live_session;

#[utoipa::path(
    get,
    path = "/sse/balances",
    operation_id = "streamManyBalances",
    tag = "stream",
    description = "Server-Sent Events for several (chain, wallet) pairs on one connection: an `all_balances` per pair, then every pair's `balance_update` / `allowance_update` / `permit2_allowance_update` / `order_status`, each event's data naming its `chainId` and `owner`; `ping` in between. Each data event's `id` resumes every pair: reconnect with `Last-Event-ID` and each pair continues exactly where it was, in order per pair. A pair whose position has expired gets its own `resync` and `all_balances`, the others continue; an id this stream cannot read (another format, a single-wallet id, another set of pairs) resyncs every pair — the answer is never a refusal. The id is opaque and at most 11 + 27 × pairs characters (281 at the default 10 pairs). A pair without a live session, or whose session expires, gets its own `error` event and the rest go on; the stream ends when no pair is left, and ends itself as the single-wallet stream does. See the `MultiSseEventData` schema.",
    params(
        ("wallets" = String, Query, description = "Comma-separated chainId:owner pairs, e.g. 1:0xabc…,42161:0xabc…; at most MAX_PAIRS_PER_STREAM (default 10), each once"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume every pair after this event id"),
        ("lastEventId" = Option<String>, Query, description = "Resume after this event id, for a new EventSource (which cannot set the header); the header wins when both are given"),
    ),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = MultiSseEventData),
        (status = 400, description = "Malformed, repeated or too many pairs (the error names the pair)", body = ErrorBody),
        (status = 404, description = "A pair's chain is not served here, or no pair has a session", body = ErrorBody),
        (status = 429, description = "Over the source's stream opens a minute, or as many streams open from the source or on a wallet as allowed (Retry-After)", body = ErrorBody),
    ),
)]
pub async fn open(
    Shared(state): Shared<Arc<State>>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req) = (&*state, &req);
    let text = request::query_param(req, "wallets").unwrap_or_default();
    let pairs = parse_pair_list(&text, state.settings.streams.max_pairs)?;
    for (index, pair) in pairs.iter().enumerate() {
        state
            .reader(pair.chain_id)
            .map_err(|e| ApiError::of_pair(index, pair.text(), e))?;
    }
    let set = PairSet::new(&pairs);
    let resume: Option<Vec<Resume>> = match stream::client_id(req) {
        None => None,
        Some(id) => match stream_id::decode(&set, &id) {
            Ok(positions) => Some(positions.into_iter().map(Resume::After).collect()),
            Err(error) => {
                tracing::info!(pairs = pairs.len(), %error, "unreadable Last-Event-ID; resyncing every pair");
                Some(vec![Resume::Unreadable; set.pairs().len()])
            }
        },
    };
    let source = stream_admission::opened(state, req).await?;
    let mut wallets = Vec::with_capacity(pairs.len());
    for (i, pair) in set.pairs().iter().enumerate() {
        let live = live_session(state, pair.chain_id, &pair.owner)
            .await?
            .is_some();
        let resume = resume.as_ref().map_or(Resume::Fresh, |r| r[i].clone());
        wallets.push((*pair, resume, live));
    }
    if !wallets.iter().any(|(_, _, live)| *live) {
        return Err(ApiError::SessionNotFound);
    }
    let live: Vec<_> = wallets
        .iter()
        .filter(|(_, _, live)| *live)
        .map(|(pair, ..)| *pair)
        .collect();
    let tickets = stream_admission::admit(state, &source, &live).await?;
    let stream = BalanceStream::new(state, req, Shape::Multi(set), wallets);
    Ok(body::holding(stream.open(), tickets))
}
