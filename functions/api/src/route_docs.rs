//! What the OpenAPI document says that no single handler owns: the path parameters every
//! wallet route starts with, the answer rows several routes give alike, and the SSE events'
//! schemas. Documentation only — nothing here is built; the routes name these in their
//! `#[utoipa::path]`, and [`crate::openapi`] collects the routes.

use live_balances::wire::sse::{
    AllBalances, AllowanceUpdate, BalanceUpdate, OrderStatus, Permit2AllowanceUpdate, Ping,
    StreamNotice,
};
use serde::Serialize;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::error::ErrorBody;

/// The events of `GET /sse/{chain_id}/balances/{owner}`: each `event:` name and the JSON of
/// its `data:` line. Documentation only; [`live_balances::wire::sse::SseEvent`] writes them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
pub(crate) enum SseEventData {
    AllBalances(AllBalances),
    BalanceUpdate(BalanceUpdate),
    AllowanceUpdate(AllowanceUpdate),
    /// A Permit2 allowance of a Permit2 spender the session names changed: approved,
    /// permitted, spent through Permit2, locked down, its nonce moved, or its expiration passed.
    Permit2AllowanceUpdate(Permit2AllowanceUpdate),
    /// An open order's fillability: when it was registered, and whenever a balance or
    /// allowance change crossed its amount (fillable flipped, or the short side changed).
    OrderStatus(OrderStatus),
    Ping(Ping),
    /// The `Last-Event-ID` is no longer in the feed; an `all_balances` follows.
    Resync(StreamNotice),
    /// The stream ends for the reason given (e.g. `session_expired`).
    Error(StreamNotice),
}

/// The pair a multi-wallet stream's event is about.
// Documentation only, as the schemas below: `SseEvent::encode_in` writes them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // described, never built
pub(crate) struct PairTag {
    chain_id: u64,
    /// Lowercase 0x address
    owner: String,
}

/// `all_balances` of one pair of a multi-wallet stream.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // described, never built
pub(crate) struct PairAllBalances {
    #[serde(flatten)]
    pair: PairTag,
    #[serde(flatten)]
    data: AllBalances,
}

/// `balance_update` of one pair of a multi-wallet stream.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // described, never built
pub(crate) struct PairBalanceUpdate {
    #[serde(flatten)]
    pair: PairTag,
    #[serde(flatten)]
    data: BalanceUpdate,
}

/// `allowance_update` of one pair of a multi-wallet stream.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // described, never built
pub(crate) struct PairAllowanceUpdate {
    #[serde(flatten)]
    pair: PairTag,
    #[serde(flatten)]
    data: AllowanceUpdate,
}

/// `permit2_allowance_update` of one pair of a multi-wallet stream.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // described, never built
pub(crate) struct PairPermit2AllowanceUpdate {
    #[serde(flatten)]
    pair: PairTag,
    #[serde(flatten)]
    data: Permit2AllowanceUpdate,
}

/// `order_status` of one pair of a multi-wallet stream.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // described, never built
pub(crate) struct PairOrderStatus {
    #[serde(flatten)]
    pair: PairTag,
    #[serde(flatten)]
    data: OrderStatus,
}

/// `resync` or `error` of one pair of a multi-wallet stream; the stream's own `error` (e.g.
/// `storage_unavailable`, before it ends) names no pair.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // described, never built
pub(crate) struct PairStreamError {
    #[serde(flatten)]
    pair: Option<PairTag>,
    #[serde(flatten)]
    data: StreamNotice,
}

/// The events of `GET /sse/balances`: those of the single-wallet stream, each naming its
/// pair (`chainId`, `owner`) but `ping`. Every data event's `id` is the stream's composite id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
pub(crate) enum MultiSseEventData {
    AllBalances(PairAllBalances),
    BalanceUpdate(PairBalanceUpdate),
    AllowanceUpdate(PairAllowanceUpdate),
    Permit2AllowanceUpdate(PairPermit2AllowanceUpdate),
    OrderStatus(PairOrderStatus),
    Ping(Ping),
    /// The pair's position is no longer in its feed, or the `Last-Event-ID` is not one of
    /// this stream's: the pair's `all_balances` follows.
    Resync(PairStreamError),
    /// The pair is left out from here on (`session_expired`, `session_not_found`), or, naming
    /// no pair, the stream ends.
    Error(PairStreamError),
}

/// The path parameters every per-wallet route starts with. Documentation only: the router
/// parses them ([`crate::request::wallet`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct WalletPath {
    /// A chain this deployment serves, e.g. 1
    chain_id: u64,
    /// Wallet address: 0x + 40 hex, lower/upper case or EIP-55 checksummed; not the zero address
    owner: String,
}

/// `400` of a route that parses a wallet's path (and maybe a body of tokens).
#[derive(IntoResponses)]
#[response(status = 400, description = "Malformed chain id, owner, token or body")]
#[allow(dead_code)] // described, never built
pub(crate) struct MalformedRequest(ErrorBody);

/// `404` of a route about one wallet of one chain.
#[derive(IntoResponses)]
#[response(status = 404, description = "Chain not served here, or no session")]
#[allow(dead_code)] // described, never built
pub(crate) struct NoSession(ErrorBody);

/// `404` of a wallet route that needs no session.
#[derive(IntoResponses)]
#[response(status = 404, description = "Chain not served here")]
#[allow(dead_code)] // described, never built
pub(crate) struct UnknownChain(ErrorBody);

/// `503` of a route that only reads or writes the table.
#[derive(IntoResponses)]
#[response(status = 503, description = "Storage unavailable; nothing stored")]
#[allow(dead_code)] // described, never built
pub(crate) struct StorageUnavailable(ErrorBody);

/// `502` of a route that reads the chain but stores nothing.
#[derive(IntoResponses)]
#[response(status = 502, description = "The chain could not be read")]
#[allow(dead_code)] // described, never built
pub(crate) struct ChainUnreadable(ErrorBody);

/// `401` and `429` of a back-end route (`Authorization: Bearer <API key>`).
#[derive(IntoResponses)]
#[allow(dead_code)] // described, never built
pub(crate) enum KeyRefused {
    #[response(
        status = 401,
        description = "No API key (api_key_required), or not a live one (invalid_api_key)"
    )]
    Unauthorized(ErrorBody),
}

/// `401`, `404` and `429` of a route on one webhook subscription.
#[derive(IntoResponses)]
#[allow(dead_code)] // described, never built
pub(crate) enum SubscriptionRefused {
    #[response(
        status = 401,
        description = "No API key (api_key_required), or not a live one (invalid_api_key)"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 404,
        description = "No such subscription of this key's tenant on this chain"
    )]
    NotFound(ErrorBody),
    #[response(status = 429, description = "Over the key's quota")]
    RateLimited(ErrorBody),
}

/// `413` and `415` of a route with a JSON body ([`crate::request::json_body`]).
#[derive(IntoResponses)]
#[allow(dead_code)] // described, never built
pub(crate) enum BodyRefused {
    #[response(
        status = 413,
        description = "Body larger than MAX_BODY_BYTES (256 KiB by default)"
    )]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Body not declared as application/json")]
    NotJson(ErrorBody),
}
