//! End-to-end tests that disturb the chain, the poller or the api server — reorgs, killed or
//! doubled pollers, RPC outages, a provider's rate limits and caps, a poisoned stream, a
//! killed or drained server, counting the poller's RPC requests — on a stack of their own, one
//! test at a time.

mod capacity;
mod discovery_cap;
mod dynamodb;
mod failed_steps;
mod fanout;
mod function_faults;
mod load;
mod native_reads;
mod outage;
mod permit2_expiry;
mod providers;
mod quiet_sweep;
mod reorg;
mod restart;
mod rpc_cost;
mod scale;
mod server_restart;
mod session_log;
mod sse_clients;
mod test_poller;
mod two_pollers;

use std::sync::LazyLock;

use alloy::primitives::Address;
use e2e::follow::Trail;
use e2e::{Environment, SseClient, Transport};
use live_balances::domain::address::lower;

/// Held by each test for its whole run: these tests must not overlap.
pub static EXCLUSIVE: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Every client's trail and the table hold exactly the chain's balance of `token`.
pub async fn assert_clients_and_table_match_chain(
    env: &'static Environment,
    token: Address,
    clients: &[(SseClient, Trail)],
    owners: &[Address],
) -> anyhow::Result<()> {
    let table = env.stack.table().await;
    for ((_, trail), owner) in clients.iter().zip(owners) {
        let chain = e2e::follow::balance_of(env, token, *owner).await?;
        assert_eq!(trail.value, chain.to_string(), "{}", lower(owner));
        let stored = table
            .balance(
                env.chain_id(),
                owner,
                &live_balances::BalanceKey::Balance { token },
            )
            .await?
            .and_then(|i| i.read.value());
        assert_eq!(stored, Some(chain), "{}", lower(owner));
    }
    Ok(())
}

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
        clients.push(open_client(env, token, *owner).await?);
    }
    Ok(clients)
}

/// One SSE client of `owner`'s session, past its first `all_balances`, with a trail of
/// `token` starting at the value that snapshot showed.
pub async fn open_client(
    env: &'static Environment,
    token: Address,
    owner: Address,
) -> anyhow::Result<(SseClient, Trail)> {
    open_client_via(env, Transport::FunctionUrl, token, owner).await
}

/// [`open_client`] through `transport`.
pub async fn open_client_via(
    env: &'static Environment,
    transport: Transport,
    token: Address,
    owner: Address,
) -> anyhow::Result<(SseClient, Trail)> {
    let mut sse = SseClient::connect_via(env, transport, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let value = snapshot.data["balances"][lower(&token)]
        .as_str()
        .unwrap_or("0")
        .to_string();
    Ok((sse, Trail::new(&token, value)))
}
