//! End-to-end tests that disturb the chain or the poller — reorgs, killed or doubled pollers,
//! RPC outages, a poisoned stream, counting the poller's RPC requests — on a stack of their
//! own, one test at a time.

mod capacity;
mod dynamodb;
mod fanout;
mod load;
mod outage;
mod reorg;
mod restart;
mod rpc_cost;
mod scale;
mod test_poller;
mod two_pollers;

use std::sync::LazyLock;

use alloy::primitives::Address;
use e2e::follow::Trail;
use e2e::{Environment, SseClient};
use live_balances::address::lower;

/// Held by each test for its whole run: these tests must not overlap.
pub static EXCLUSIVE: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Sessions for `owners` watching `token`, and one SSE client each, past its first
/// `all_balances`, with a trail starting at the value that snapshot showed.
pub async fn watched_clients(
    env: &'static Environment,
    token: Address,
    owners: &[Address],
) -> anyhow::Result<Vec<(SseClient, Trail)>> {
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    let mut clients = vec![];
    for owner in owners {
        env.watch(&lower(owner), &body).await?;
        let mut sse = SseClient::connect(env, &lower(owner), None).await?;
        let snapshot = sse
            .wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        let value = snapshot.data["balances"][lower(&token)]
            .as_str()
            .unwrap_or("0")
            .to_string();
        clients.push((sse, Trail::new(&token, value)));
    }
    Ok(clients)
}
