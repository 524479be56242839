//! Native balances read per wallet (`NATIVE_BALANCES=reads`, as on a node without trace
//! methods): a wallet with an open stream every block, the others spread over
//! `NATIVE_POLL_SECS`; the poller says so in `/health` and the metrics, and every way ETH
//! moves still reaches the stream — while the stack's own poller, on anvil, found the node's
//! call tracer (it uses it when tracing is the cheaper way).

use std::time::Duration;

use alloy::primitives::U256;
use e2e::{DEADLINE, Environment, SseClient, fresh_owner};
use live_balances::NATIVE_TOKEN;
use live_balances::domain::address::lower;
use local_stack::devnet::Wallet;
use serde_json::{Value, json};

use crate::test_poller::TestPoller;

const ETH: u64 = 1_000_000_000_000_000_000;

async fn health_field(env: &Environment, poller_url: &str, field: &str) -> anyhow::Result<String> {
    let health: Value = env
        .http
        .get(format!("{poller_url}/health"))
        .send()
        .await?
        .json()
        .await?;
    Ok(health["chains"][0][field]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

async fn native_source(env: &Environment, poller_url: &str) -> anyhow::Result<String> {
    health_field(env, poller_url, "nativeSource").await
}

#[tokio::test(flavor = "multi_thread")]
async fn native_balances_without_traces_are_read_per_wallet() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    // The stack's poller found traces on anvil.
    assert_eq!(
        health_field(env, &env.stack.endpoints.poller, "traces").await?,
        "call_tracer"
    );

    let poller = TestPoller::start(
        env,
        "poller-reads",
        &[
            ("NATIVE_BALANCES".into(), "reads".into()),
            ("NATIVE_POLL_SECS".into(), "3".into()),
        ],
        true,
    )?;
    let actor = Wallet::fresh(&env.stack.rpc_url).await?;
    let forwarder = actor.deploy_eth_forwarder().await?;
    let (_, token) = env.actor_with_token(1).await?;
    let streamed = fresh_owner();
    let unstreamed = fresh_owner();
    let body = json!({"customTokens": [lower(&token)]}).to_string();
    for owner in [streamed, unstreamed] {
        env.watch(&lower(&owner), &body).await?;
    }
    local_stack::stack::wait_for("the reads mode in /health", DEADLINE, || async {
        let source = native_source(env, poller.url()).await?;
        anyhow::ensure!(source == "reads", "native source {source:?}");
        Ok(())
    })
    .await?;
    let metrics = env
        .http
        .get(format!("{}/metrics", poller.url()))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("source=\"reads\"} 1"),
        "the mode is in the metrics: {metrics}"
    );

    // A wallet with an open stream: read every block — a plain transfer and a contract's
    // internal one both arrive.
    let mut sse = SseClient::connect(env, &lower(&streamed), None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let native = lower(&NATIVE_TOKEN);
    actor.send_eth(streamed, U256::from(ETH)).await?;
    sse.follow_balance(&native, "0", &ETH.to_string()).await?;
    actor
        .forward_eth(forwarder, streamed, U256::from(ETH / 2))
        .await?;
    sse.follow_balance(&native, &ETH.to_string(), &(ETH + ETH / 2).to_string())
        .await?;

    // A wallet nobody streams: read within the native poll interval all the same.
    actor.send_eth(unstreamed, U256::from(ETH / 4)).await?;
    let url = env.url(&format!(
        "/{}/balance/{}/{}",
        env.chain_id(),
        lower(&unstreamed),
        native
    ));
    let want = (ETH / 4).to_string();
    local_stack::stack::wait_for(
        "the unstreamed wallet's ETH in the table",
        DEADLINE,
        || async {
            // Blocks keep coming on a busy chain; here the test makes them.
            env.mine().await?;
            let (_, reply) = env.json_request(|| env.http.get(&url)).await?;
            anyhow::ensure!(
                reply["balance"] == want.as_str() && reply["source"] == "table",
                "{reply}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        },
    )
    .await?;
    drop(poller);
    Ok(())
}
