//! `PUT`/`DELETE /{chain_id}/orders/{owner}/{order_id}` and `GET /{chain_id}/orders/{owner}`:
//! a wallet's open orders, each judged fillable or not on the wallet's tracked balance of the
//! token it sells and allowance to its spender.
//!
//! Back-end routes: each takes an API key, and an order belongs to the key's tenant — another
//! tenant's order is, to it, not there (`GET` lists only the caller's; `DELETE` answers 404; a
//! `PUT` of an id another tenant registered for the wallet is refused).
//!
//! Registering an order grows the owner's session exactly as a session request does (the
//! sell token as a custom token, the spender as a spender: the same code path, the same
//! limits), so the poller watches both values; then the order is stored, judged on the values
//! the table holds, and holds the session until its `validTo` (`live_balances::domain::hold`): the
//! wallet stays tracked with no stream open, until the order is deleted or expires. From there the fanout re-judges it on every change of either value and
//! appends an `order_status` entry to the wallet's feed when one crosses its amount.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use axum::extract::State as Shared;
use http::{Response, StatusCode};
use live_balances::NATIVE_TOKEN;
use live_balances::domain::address::lower;
use live_balances::domain::model::Spender;
use live_balances::domain::order::{Order, OrderId};
use live_balances::wire::sse::{AllBalances, OrderStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use live_balances::domain::hold::Holder;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::Written;

use crate::auth::BackEnd;
use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Segments, WholeRequest};
use crate::request;
use crate::route_docs::{BodyRefused, KeyRefused, StorageUnavailable, UnknownChain};
use crate::routes::sessions::{self, SessionRequest, Upsert};
use crate::state::State;

/// Body of `PUT /{chain_id}/orders/{owner}/{order_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderRequest {
    /// The token the order sells (not the native currency: orders sell it wrapped).
    pub sell_token: String,
    /// What the order still sells (its remaining amount), a positive decimal string in the
    /// token's smallest unit.
    pub sell_amount: String,
    /// Whose allowance the settlement uses; the chain's default order spender when absent
    /// (CoW Protocol's GPv2VaultRelayer unless `ORDER_SPENDER_<chainId>` says otherwise).
    #[serde(default)]
    pub spender: Option<String>,
    /// How the spender spends: `erc20` (default: the token's own allowance) or `permit2`
    /// (Uniswap's Permit2: the order is fillable only while the token's allowance to Permit2
    /// and Permit2's unexpired allowance to the spender both cover `sellAmount`).
    #[serde(default)]
    #[schema(example = "erc20")]
    pub approval: Option<String>,
    /// Unix seconds until which the order is open: in the future, and at most
    /// `ORDER_MAX_VALID_SECS` (90 days by default) from now.
    pub valid_to: u64,
}

/// An order as answered: its status with the wallet it belongs to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub chain_id: u64,
    pub owner: String,
    #[serde(flatten)]
    pub status: OrderStatus,
}

/// `GET /{chain_id}/orders/{owner}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersView {
    pub chain_id: u64,
    pub owner: String,
    /// Every open order, judged on the stored values (expired ones are left out).
    pub orders: Vec<OrderStatus>,
}

/// The order `id` holds its wallet's session until `until`, or lets go of it (`None`).
async fn hold(
    state: &State,
    owner: &Address,
    chain_id: u64,
    id: &OrderId,
    until: Option<u64>,
) -> Result<(), ApiError> {
    let idle = state.settings.session_ttl.as_secs();
    let holder = Holder::Order(id).key();
    state
        .table
        .hold_session(chain_id, owner, &holder, until, unix_now(), idle)
        .await?;
    Ok(())
}

/// `DELETE /{chain_id}/orders/{owner}/{order_id}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderDeleted {
    pub order_id: String,
    pub deleted: bool,
}

/// The path of one order. Documentation only: the router parses it.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct OrderPath {
    /// A chain this deployment serves, e.g. 1
    chain_id: u64,
    /// Wallet address: 0x + 40 hex, lower/upper case or EIP-55 checksummed; not the zero address
    owner: String,
    /// The client's id of the order (a CoW order UID, or 1 to 128 of `A-Z a-z 0-9 _ . : -`)
    order_id: String,
}

fn order_id(segment: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(segment).map_err(|e| ApiError::InvalidOrderId(e.to_string()))
}

/// A positive decimal amount that fits 256 bits, digits only.
fn sell_amount(text: &str) -> Result<U256, ApiError> {
    let digits = !text.is_empty() && text.len() <= 78 && text.bytes().all(|b| b.is_ascii_digit());
    let amount = digits
        .then(|| U256::from_str_radix(text, 10).ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::InvalidOrder(
                "sellAmount must be a decimal string of at most 256 bits, e.g. \"1000000\"".into(),
            )
        })?;
    if amount.is_zero() {
        return Err(ApiError::InvalidOrder(
            "sellAmount must be more than zero (a filled order is deleted)".into(),
        ));
    }
    Ok(amount)
}

/// Checks a registration, reading nothing.
fn check(
    state: &State,
    chain_id: u64,
    owner: Address,
    id: OrderId,
    body: &OrderRequest,
    now: u64,
) -> Result<Order, ApiError> {
    let sell_token = request::addresses("sellToken", std::slice::from_ref(&body.sell_token))?[0];
    if sell_token == NATIVE_TOKEN {
        return Err(ApiError::InvalidToken(
            "sellToken: the native currency has no allowance; an order sells it wrapped (WETH)"
                .into(),
        ));
    }
    let sell_amount = sell_amount(&body.sell_amount)?;
    let spender = match &body.spender {
        Some(spender) => request::addresses("spender", std::slice::from_ref(spender))?[0],
        None => state.settings.order_spender(chain_id),
    };
    let spender = match body.approval.as_deref() {
        None | Some("erc20") => Spender::Erc20(spender),
        Some("permit2") => Spender::Permit2(spender),
        Some(other) => {
            return Err(ApiError::InvalidOrder(format!(
                "approval {other:?} is neither \"erc20\" nor \"permit2\""
            )));
        }
    };
    if body.valid_to <= now {
        return Err(ApiError::InvalidOrder(format!(
            "validTo {} is not in the future (now {now})",
            body.valid_to
        )));
    }
    let latest = now.saturating_add(state.settings.bounds.order_max_validity.as_secs());
    if body.valid_to > latest {
        return Err(ApiError::InvalidOrder(format!(
            "validTo {} is more than {} s from now (the latest is {latest})",
            body.valid_to,
            state.settings.bounds.order_max_validity.as_secs()
        )));
    }
    Ok(Order {
        chain_id,
        owner,
        id,
        sell_token,
        sell_amount,
        spender,
        valid_to: body.valid_to,
    })
}

/// One order's path (`PUT`, `DELETE`).
const ORDER_PATH: &str = "/{chain_id}/orders/{owner}/{order_id}";

/// `PUT /{chain_id}/orders/{owner}/{order_id}`.
#[utoipa::path(
    put,
    path = ORDER_PATH,
    operation_id = "putOrder",
    tag = "orders",
    description = "Registers an open order (or replaces the one with this id) and answers its fillability: whether the wallet's balance of sellToken and its allowance to the spender both cover sellAmount, and if not which is short and by how much. The owner's session is created or grown to track the token and the spender (as POST /{chain_id}/sessions/{owner} would). From then on every change that crosses the order's amount is an order_status event on the wallet's stream; all_balances lists every open order with its status. The order holds the wallet's session until validTo: the wallet stays tracked with no stream open. The order is gone after validTo. Needs an API key; the order belongs to the key's tenant.",
    params(OrderPath),
    request_body = OrderRequest,
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The order with its fillability", body = OrderView),
        (status = 400, description = "Malformed chain id, owner, order id, token, spender, amount, validTo in the past or too far ahead, or too many orders", body = ErrorBody),
        KeyRefused,
        UnknownChain,
        (status = 409, description = "Another tenant registered this order id for the wallet", body = ErrorBody),
        BodyRefused,
        (status = 429, description = "Over the key's quota or the wallet's session write rate", body = ErrorBody),
        (status = 502, description = "The chain could not be read; nothing stored", body = ErrorBody),
        (status = 503, description = "Storage unavailable, the session busy or the chain at capacity; the order is not stored", body = ErrorBody),
    ),
)]
pub async fn put(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner, id]): Segments<3>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req, caller, chain, owner, id) = (
        &*state,
        &req,
        &caller,
        chain.as_str(),
        owner.as_str(),
        id.as_str(),
    );
    // Everything is checked before anything is read or stored.
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let id = order_id(id)?;
    let body: OrderRequest = request::json_body(req)?;
    let now = unix_now();
    let order = check(state, chain_id, owner, id, &body, now)?;
    let session_request = SessionRequest {
        tokens_lists_urls: vec![],
        custom_tokens: vec![lower(&order.sell_token)],
        spenders: Some(match order.spender {
            Spender::Erc20(spender) => vec![lower(&spender)],
            Spender::Permit2(_) => vec![],
        }),
        permit2_spenders: match order.spender {
            Spender::Permit2(spender) => vec![lower(&spender)],
            Spender::Erc20(_) => vec![],
        },
        discover_tokens: false,
    };
    let checked = sessions::check(state, chain_id, owner, &session_request)?;
    let stored = state.table.orders(chain_id, &owner).await?;
    if let Some(existing) = stored.iter().find(|o| o.order.id == order.id)
        && existing.tenant.as_ref() != Some(&caller.tenant)
    {
        return Err(ApiError::OrderIdTaken);
    }
    let open = stored.iter().filter(|o| o.order.is_open(now));
    let max = state.settings.limits.max_orders_per_wallet;
    if !stored.iter().any(|o| o.order.id == order.id) && open.count() >= max {
        return Err(ApiError::TooManyOrders(max));
    }
    // The session tracks both values (and stored them, when new) before the order exists,
    // so the fanout can judge it on every change from here on.
    let session = sessions::apply(state, req, &checked, Upsert::CreateOrAdd).await?;
    let mut values = HashMap::new();
    for key in order.value_keys() {
        let value = state
            .table
            .balance(chain_id, &owner, &key)
            .await?
            .and_then(|item| item.read.value())
            .unwrap_or_default();
        values.insert(key, value);
    }
    let status = order.judge(|key| values.get(key).copied().unwrap_or_default());
    let block = session.block_number;
    // Conditional on the tenant: another tenant registering the id meanwhile wins.
    if state
        .table
        .put_order(&order, &caller.tenant, &status, block, unix_now())
        .await?
        == Written::Skipped
    {
        return Err(ApiError::OrderIdTaken);
    }
    // The open order keeps its wallet tracked until validTo, stream or no stream.
    hold(
        state,
        &order.owner,
        chain_id,
        &order.id,
        Some(order.valid_to),
    )
    .await?;
    tracing::info!(chain = chain_id, owner = %owner, order = %order.id, tenant = %caller.tenant, key = %caller.key_id, fillable = status.fillable(), "order registered");
    let view = OrderView {
        chain_id,
        owner: lower(&owner),
        status: OrderStatus::new(&order, &status, block),
    };
    Ok(body::json(StatusCode::OK, &view))
}

/// `DELETE /{chain_id}/orders/{owner}/{order_id}`.
#[utoipa::path(
    delete,
    path = ORDER_PATH,
    operation_id = "deleteOrder",
    tag = "orders",
    description = "Deletes an order (filled or cancelled): it leaves all_balances and gets no more order_status events. It no longer holds the wallet's session: the wallet stays tracked one more SESSION_TTL_SECS from now, or while a stream, another order or a subscription keeps it. Needs an API key of the order's tenant (another tenant's order is not found).",
    params(OrderPath),
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "Deleted", body = OrderDeleted),
        (status = 400, description = "Malformed chain id, owner or order id", body = ErrorBody),
        KeyRefused,
        (status = 404, description = "Chain not served here, or no such order of this tenant", body = ErrorBody),
        StorageUnavailable,
    ),
)]
pub async fn delete(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner, id]): Segments<3>,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, caller, chain, owner, id) = (
        &*state,
        &caller,
        chain.as_str(),
        owner.as_str(),
        id.as_str(),
    );
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let id = order_id(id)?;
    if !state
        .table
        .delete_order(chain_id, &owner, &id, &caller.tenant)
        .await?
    {
        return Err(ApiError::OrderNotFound);
    }
    hold(state, &owner, chain_id, &id, None).await?;
    tracing::info!(chain = chain_id, owner = %owner, order = %id, "order deleted");
    let answer = OrderDeleted {
        order_id: id.to_string(),
        deleted: true,
    };
    Ok(body::json(StatusCode::OK, &answer))
}

/// `GET /{chain_id}/orders/{owner}`.
#[utoipa::path(
    get,
    path = "/{chain_id}/orders/{owner}",
    operation_id = "getOrders",
    tag = "orders",
    description = "The wallet's open orders registered by the API key's tenant, each judged on the stored values (as in all_balances).",
    params(crate::route_docs::WalletPath),
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The tenant's open orders", body = OrdersView),
        (status = 400, description = "Malformed chain id or owner", body = ErrorBody),
        KeyRefused,
        UnknownChain,
        StorageUnavailable,
    ),
)]
pub async fn list(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain, owner]): Segments<2>,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, caller, chain, owner) = (&*state, &caller, chain.as_str(), owner.as_str());
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    let mut values = state.table.wallet_values(chain_id, &owner).await?;
    values
        .orders
        .retain(|o| o.tenant.as_ref() == Some(&caller.tenant));
    let block = values.items.iter().map(|i| i.block).max().unwrap_or(0);
    let judged = AllBalances {
        block_number: block,
        ..AllBalances::default()
    }
    .with_orders(&values.orders, &values.items, unix_now());
    let view = OrdersView {
        chain_id,
        owner: lower(&owner),
        orders: judged.orders,
    };
    Ok(body::json(StatusCode::OK, &view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_positive_plain_decimals_of_256_bits() {
        assert_eq!(sell_amount("1000").unwrap(), U256::from(1000));
        assert_eq!(sell_amount(&U256::MAX.to_string()).unwrap(), U256::MAX);
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1e3",
            "0x10",
            " 1",
            "1.5",
            &format!("{}0", U256::MAX),
        ] {
            assert!(
                matches!(sell_amount(bad), Err(ApiError::InvalidOrder(_))),
                "{bad:?}"
            );
        }
    }
}
