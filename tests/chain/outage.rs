//! The poller's RPC endpoint unreachable for a while — every HTTP and WebSocket connection cut
//! mid-stream, new ones dropped — by a proxy between the poller and the devnet: the poller
//! recovers and backfills, and its logs never show the API keys in its endpoint URLs.

use std::net::SocketAddr;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::follow::{balance_of, full_faults};
use e2e::proxy::OutageProxy;
use e2e::{DEADLINE, Environment, fresh_owner};

use crate::test_poller::TestPoller;
use crate::watched_clients;

/// The variables that point the poller at other endpoints of the stack's chain.
fn rpc_endpoints(env: &Environment, rpc_url: String, ws_url: String) -> Vec<(String, String)> {
    let chain = env.chain_id();
    vec![
        (format!("RPC_URL_{chain}"), rpc_url),
        (format!("WS_URL_{chain}"), ws_url),
    ]
}

fn devnet_addr(env: &Environment) -> anyhow::Result<SocketAddr> {
    Ok(env.stack.rpc_url.trim_start_matches("http://").parse()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_outage_recovers() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let outage = Duration::from_secs(if full_faults() { 15 } else { 5 });
    let proxy = OutageProxy::start(devnet_addr(env)?).await?;
    // The stack's poller stops; only this one, behind the proxy, watches the chain.
    let poller = TestPoller::start(
        env,
        "poller-proxied",
        &rpc_endpoints(env, proxy.url("http"), proxy.url("ws")),
        true,
    )?;
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..3).map(|_| fresh_owner()).collect();
    let mut clients = watched_clients(env, token, &owners).await?;

    // Before the outage the proxied poller delivers.
    let receipt = actor.transfer(token, owners[0], U256::from(7)).await?;
    poller
        .reached(receipt.block_number.unwrap_or_default())
        .await?;
    let (sse, trail) = &mut clients[0];
    trail.follow_to(sse, "7", DEADLINE).await?;
    assert!(proxy.forwarded() > 0, "the poller goes through the proxy");

    proxy.cut();
    let mut first_during = None;
    for (i, owner) in owners.iter().cycle().take(9).enumerate() {
        let receipt = actor.transfer(token, *owner, U256::from(i + 1)).await?;
        first_during.get_or_insert(receipt.block_number.unwrap_or_default());
    }
    // The outage itself is the fault under test: it lasts its full length.
    tokio::time::sleep(outage).await;
    let stuck_at = poller.processed_block().await?;
    assert!(
        stuck_at < first_during.unwrap_or_default(),
        "no block of the outage was processed without the RPC (at {stuck_at})"
    );
    let dropped = proxy.dropped();
    assert!(dropped > 0, "the poller kept trying during the outage");
    proxy.restore();

    let recovered = std::time::Instant::now();
    let mut follows = vec![];
    for ((sse, trail), owner) in clients.iter_mut().zip(&owners) {
        let want = balance_of(env, token, *owner).await?.to_string();
        follows.push(async move { trail.follow_to(sse, &want, DEADLINE).await });
    }
    futures::future::try_join_all(follows).await?;
    eprintln!(
        "RPC outage of {outage:?}: {dropped} connections dropped, clients at the chain's values \
         {:?} after the RPC came back",
        recovered.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_never_contain_api_keys() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let proxy = OutageProxy::start(devnet_addr(env)?).await?;
    // Keys where providers put them: userinfo and query (the devnet ignores both).
    let secrets = [
        "SECRETUSER123",
        "SECRETPASS123",
        "SECRETQUERY123",
        "SECRETWS123",
    ];
    let rpc_url = format!(
        "http://{}:{}@{}/?apikey={}",
        secrets[0], secrets[1], proxy.addr, secrets[2]
    );
    let ws_url = format!("ws://{}/?apikey={}", proxy.addr, secrets[3]);
    // Beside the stack's poller: only its log matters here.
    let poller = TestPoller::start(
        env,
        "poller-keys",
        &rpc_endpoints(env, rpc_url, ws_url),
        false,
    )?;
    env.mine().await?;
    poller.reached(env.block_number().await?).await?;

    // Errors are where URLs leak: make the poller meet some.
    proxy.cut();
    env.mine().await?;
    let log = env.stack.log_of("poller-keys");
    local_stack::stack::wait_for("the poller to log RPC errors", DEADLINE, || async {
        let text = std::fs::read_to_string(&log)?;
        anyhow::ensure!(text.contains("step failed"), "no RPC error logged yet");
        Ok(())
    })
    .await?;
    proxy.restore();
    env.mine().await?;
    let (_, token) = env.actor_with_token(1).await?;
    let owner = fresh_owner();
    let _clients = watched_clients(env, token, &[owner]).await?;
    poller.reached(env.block_number().await?).await?;
    drop(poller);

    let text = std::fs::read_to_string(&log)?;
    let lines = text.lines().count();
    for secret in secrets {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "{secret} appears in {} of {lines} log lines, e.g. {:?}",
            leaks.len(),
            leaks.first()
        );
    }
    eprintln!("poller log: {lines} lines, with errors, and no key");
    Ok(())
}
