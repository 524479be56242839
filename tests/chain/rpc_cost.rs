//! The poller's RPC requests per block do not grow with the number of clients.

use alloy::primitives::{Address, U256};
use e2e::{Environment, PollerRequests, SseClient, fresh_owner};
use live_balances::domain::address::lower;

const OWNERS: usize = 10;
const BLOCKS: u64 = 8;

/// Makes `BLOCKS` blocks, each with one transfer to a watched owner, waits until the poller
/// processed each, and returns the poller's RPC requests over them.
async fn requests_over_blocks(
    env: &Environment,
    actor: &local_stack::devnet::Wallet,
    token: Address,
    owners: &[Address],
) -> anyhow::Result<PollerRequests> {
    let poller = &env.stack.endpoints.poller;
    let before = env.poller_requests(poller).await?;
    for i in 0..BLOCKS {
        let receipt = actor
            .transfer(token, owners[i as usize % owners.len()], U256::from(1))
            .await?;
        env.poller_reached(receipt.block_number.unwrap_or_default())
            .await?;
    }
    Ok(env.poller_requests(poller).await?.since(&before))
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_requests_per_block_are_the_same_for_1_and_100_clients() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..OWNERS).map(|_| fresh_owner()).collect();
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    for owner in &owners {
        env.watch(&lower(owner), &body).await?;
    }
    let mut one = SseClient::connect(env, &lower(&owners[0]), None).await?;
    one.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    // Let the poller settle on the new sessions before measuring.
    let settle = actor.transfer(token, owners[0], U256::from(1)).await?;
    env.poller_reached(settle.block_number.unwrap_or_default())
        .await?;
    let with_one = requests_over_blocks(env, &actor, token, &owners).await?;

    // 99 more clients of the same wallets: each registers its session (as every browser tab
    // does), and as many streams are opened as the local function concurrency allows.
    for i in 0..99 {
        let owner = owners[i % OWNERS];
        env.watch(&lower(&owner), &body).await?;
    }
    let mut streams = vec![];
    for owner in owners.iter().cycle().take(15) {
        let mut sse = SseClient::connect(env, &lower(owner), None).await?;
        sse.wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        streams.push(sse);
    }
    let with_hundred = requests_over_blocks(env, &actor, token, &owners).await?;

    eprintln!(
        "poller RPC requests over {BLOCKS} blocks: 1 client {with_one:?}, 100 clients {with_hundred:?}"
    );
    assert_eq!(
        with_one.calls("eth_getLogs"),
        with_hundred.calls("eth_getLogs"),
        "eth_getLogs must not depend on clients"
    );
    // The block steps' reads are one `eth_call` each whatever the clients; an idle step
    // between two blocks (a slow test, not a client) may add one of its own.
    assert!(
        with_hundred.same_calls_as(&with_one),
        "eth_call must not depend on clients: {with_one:?} with 1, {with_hundred:?} with 100"
    );
    for window in [&with_one, &with_hundred] {
        let total: u64 = window.by_method.values().sum();
        assert!(
            total <= 4 * BLOCKS + 1 + window.idle_steps,
            "at most 4 requests per block (+1 safety poll, +1 per idle step): {window:?}"
        );
    }
    drop(streams);
    Ok(())
}
