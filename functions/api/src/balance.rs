//! `GET /{chain_id}/balance/{owner}/{token}`: one value, from the table when the pair is
//! tracked (no chain request at all), else read on chain once.

use http::StatusCode;
use lambda_http::Response;
use live_balances::address::lower;
use live_balances::model::{BalanceKey, TokenRead};
use serde::Serialize;

use crate::body::{self, ResponseBody};
use crate::error::ApiError;
use crate::request;
use crate::state::State;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BalanceView {
    address: String,
    owner: String,
    /// Decimal amount; `null` when the token's `balanceOf` fails.
    balance: Option<String>,
    block_number: u64,
    /// `table` for a tracked pair, `chain` for a one-off read.
    source: &'static str,
}

pub async fn get(
    state: &State,
    chain: &str,
    owner: &str,
    token: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (chain_id, owner, reader) = request::wallet(state, chain, owner)?;
    let token = request::addresses("token", &[token.to_string()])?[0];
    let key = BalanceKey::Balance { token };
    let tracked = state.table.balance(chain_id, &owner, &key).await?;
    let (read, block, source) = match tracked {
        Some(item) => (item.read, item.block, "table"),
        None => {
            let block = reader.block_number().await?;
            let read = reader
                .read(&[(owner, key)], block)
                .await?
                .pop()
                .unwrap_or(TokenRead::Failed);
            (read, block, "chain")
        }
    };
    let view = BalanceView {
        address: lower(&token),
        owner: lower(&owner),
        balance: read.value().map(|v| v.to_string()),
        block_number: block,
        source,
    };
    Ok(body::json(StatusCode::OK, &view))
}
