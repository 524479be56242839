//! `POST /sessions`: creates or grows the sessions of several (chain, wallet) pairs in one
//! request — each pair exactly as `POST /{chain_id}/sessions/{owner}` would ([`sessions::check`]
//! then [`sessions::apply`]), answered pair by pair. The whole request is checked first: a
//! malformed pair, a duplicate, a chain not served here or too many pairs refuse it whole
//! (naming the pair), and nothing is stored.

use std::sync::Arc;

use alloy::primitives::Address;
use axum::extract::State as Shared;
use futures::future::join_all;
use http::{Response, StatusCode};
use live_balances::domain::address::lower;
use live_balances::feed::pairs::{WalletPair, check_pairs};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::WholeRequest;
use crate::request;
use crate::route_docs::BodyRefused;
use crate::routes::sessions::{self, CheckedRequest, SessionRequest, SessionView, Upsert};
use crate::state::State;

/// Body of `POST /sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionsRequest {
    /// Up to `MAX_PAIRS_PER_STREAM` pairs, each a (chain, wallet) and its session request.
    #[schema(value_type = Vec<PairSessionRequest>)]
    pub wallets: Vec<Value>,
}

/// One pair of `POST /sessions`: its chain and wallet, and the fields of the single-wallet
/// session body.
// Documentation only: each entry is read field by field, so an error names it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // described, never built
pub(crate) struct PairSessionRequest {
    chain_id: u64,
    /// Wallet address: 0x + 40 hex, lower/upper case or EIP-55 checksummed
    owner: String,
    #[serde(flatten)]
    session: SessionRequest,
}

/// One pair's outcome: its session, or why it failed (a per-pair `status` and error).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PairResult {
    chain_id: u64,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<SessionView>,
    /// The HTTP status the single-wallet route would have answered this pair with.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorBody>)]
    error: Option<ErrorBody>,
}

/// Answer of `POST /sessions`: one result per pair, in the request's order.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionsView {
    wallets: Vec<PairResult>,
}

#[utoipa::path(
    post,
    path = "/sessions",
    operation_id = "postSessions",
    tag = "sessions",
    description = "Creates or adds to the sessions of several (chain, wallet) pairs at once — each as `POST /{chain_id}/sessions/{owner}` would — for one multi-wallet stream (`GET /sse/balances`). The request is checked whole before anything is read or stored: a malformed pair, a pair given twice, a chain not served here or more than `MAX_PAIRS_PER_STREAM` pairs refuse it, naming the pair (`wallets[i]`). Past that, each pair succeeds or fails on its own: the answer is 200 with a result per pair, each with its session or its own `status` and error (e.g. 503 `session_busy`).",
    request_body = SessionsRequest,
    responses(
        (status = 200, description = "One result per pair, in the request's order", body = SessionsView),
        (status = 400, description = "Malformed body or pair, a duplicate pair, too many pairs; nothing stored", body = ErrorBody),
        (status = 404, description = "A pair's chain is not served here; nothing stored", body = ErrorBody),
        BodyRefused,
    ),
)]
pub async fn upsert(
    Shared(state): Shared<Arc<State>>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req) = (&*state, &req);
    let body: SessionsRequest = request::json_body(req)?;
    let max = state.settings.streams.max_pairs;
    if body.wallets.len() > max {
        return Err(ApiError::TooManyPairs {
            max,
            count: body.wallets.len(),
        });
    }
    let parsed = body
        .wallets
        .iter()
        .enumerate()
        .map(|(index, entry)| read_pair(state, index, entry))
        .collect::<Result<Vec<_>, _>>()?;
    let named: Vec<(String, WalletPair)> = parsed
        .iter()
        .map(|checked| {
            let pair = WalletPair {
                chain_id: checked.chain_id(),
                owner: checked.owner(),
            };
            (pair.text(), pair)
        })
        .collect();
    check_pairs(&named, max)?;

    let outcomes = join_all(
        parsed
            .iter()
            .map(|checked| sessions::apply(state, req, checked, Upsert::CreateOrAdd)),
    )
    .await;
    let wallets = parsed
        .iter()
        .zip(outcomes)
        .map(|(checked, outcome)| {
            let (chain_id, owner) = (checked.chain_id(), lower(&checked.owner()));
            match outcome {
                Ok(view) => PairResult {
                    chain_id,
                    owner,
                    session: Some(view),
                    status: None,
                    error: None,
                },
                Err(error) => {
                    error.log(req.method(), req.uri().path());
                    PairResult {
                        chain_id,
                        owner,
                        session: None,
                        status: Some(error.status().as_u16()),
                        error: Some(error.body()),
                    }
                }
            }
        })
        .collect();
    Ok(body::json(StatusCode::OK, &SessionsView { wallets }))
}

/// Reads and checks pair `index` of the body; its errors name it.
fn read_pair(state: &State, index: usize, entry: &Value) -> Result<CheckedRequest, ApiError> {
    let mut fields = entry.as_object().cloned().unwrap_or_default();
    let chain = fields.remove("chainId");
    let owner = fields.remove("owner");
    let chain_text = chain.as_ref().map(Value::to_string).unwrap_or_default();
    let owner_text = owner.as_ref().and_then(Value::as_str).unwrap_or_default();
    let named = |error| ApiError::of_pair(index, format!("{chain_text}:{owner_text}"), error);
    if !entry.is_object() {
        return Err(ApiError::of_pair(
            index,
            entry.to_string(),
            ApiError::MalformedPair,
        ));
    }
    let chain_id = match chain.as_ref().and_then(Value::as_u64) {
        Some(id) if id > 0 => id,
        _ => return Err(named(ApiError::InvalidChainId)),
    };
    let owner: Address = request::owner(owner_text).map_err(named)?;
    state.reader(chain_id).map_err(named)?;
    let session: SessionRequest = serde_json::from_value(Value::Object(fields))
        .map_err(|e| named(ApiError::InvalidBody(e.to_string())))?;
    sessions::check(state, chain_id, owner, &session).map_err(named)
}
