//! `GET /health`: the table answers, and per configured chain the poller's heartbeat (its
//! cursor, written at least every 30 s) is fresh by the one rule of `core::poller_health`.

use std::sync::Arc;

use axum::extract::State as Shared;
use http::Response;
use http::StatusCode;
use live_balances::runtime::clock::unix_now;
use live_balances::runtime::poller_health::heartbeat_is_fresh;
use serde::Serialize;
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::error::ApiError;
use crate::state::State;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChainHealth {
    chain_id: u64,
    ok: bool,
    processed_block: Option<u64>,
    heartbeat_age_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    ok: bool,
    table: bool,
    chains: Vec<ChainHealth>,
}

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    responses(
        (status = 200, description = "Table reachable and every chain's poller heartbeat fresh", body = Health),
        (status = 503, description = "Something is not", body = Health),
    ),
)]
pub async fn report(Shared(state): Shared<Arc<State>>) -> Result<Response<ResponseBody>, ApiError> {
    let state = &*state;
    let now = unix_now();
    let mut chains = vec![];
    let mut table = true;
    for &chain_id in state.readers.keys() {
        let cursor = match state.table.cursor(chain_id).await {
            Ok(c) => c,
            Err(error) => {
                lambda_http::tracing::error!(%error, "health: table unreachable");
                table = false;
                None
            }
        };
        let age = cursor.as_ref().map(|c| now.saturating_sub(c.updated_at));
        chains.push(ChainHealth {
            chain_id,
            ok: age.is_some_and(heartbeat_is_fresh),
            processed_block: cursor.map(|c| c.block),
            heartbeat_age_secs: age,
        });
    }
    let ok = table && chains.iter().all(|c| c.ok);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(body::json(status, &Health { ok, table, chains }))
}
