//! One deployment serves every chain: the stack's second anvil chain (31338) goes through the
//! same api, poller, pump and fanout as the default one, kept apart by chain id all the way.

use alloy::primitives::U256;
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::devnet::DEVNET_WETH;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn transfer_on_the_second_chain_reaches_its_sse_client() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.second_chain_id()?;
    assert_ne!(chain, env.chain_id());
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token_on(chain, 1_000_000_000).await?;
    actor.transfer(token, owner, U256::from(1_000_000)).await?;

    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    let (status, session) = env
        .post_session(&chain.to_string(), &lower(&owner), &body)
        .await?;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        session["tokenCount"], 3,
        "the token, the native currency and this chain's WETH: {session}"
    );

    let mut sse = SseClient::connect_on(env, chain, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let balances = &snapshot.data["balances"];
    assert_eq!(balances[lower(&token)], "1000000", "{:?}", snapshot.data);
    assert_eq!(balances[lower(&DEVNET_WETH)], "0", "{:?}", snapshot.data);

    actor.transfer(token, owner, U256::from(500_000)).await?;
    sse.follow_balance(&lower(&token), "1000000", "1500000")
        .await?;

    // The session is the second chain's alone: the same wallet has none on the default chain.
    let table = env.stack.table().await;
    assert!(table.session(chain, &owner).await?.is_some());
    assert_eq!(table.session(env.chain_id(), &owner).await?, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_both_chains() -> anyhow::Result<()> {
    let env = Environment::get();
    let chains = [env.chain_id(), env.second_chain_id()?];
    let ids = |report: &Value, field: &str| -> Vec<u64> {
        report["chains"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c[field].as_u64()).collect())
            .unwrap_or_default()
    };

    let healthy = |what: &'static str, url: String| async move {
        local_stack::stack::wait_for(what, e2e::DEADLINE, || async {
            let (status, body) = env.json_request(|| env.http.get(&url)).await?;
            anyhow::ensure!(status == 200, "{status}: {body}");
            Ok(body)
        })
        .await
    };

    let health = healthy("api health", env.url("/health")).await?;
    assert_eq!(ids(&health, "chainId"), chains, "{health}");
    for chain in health["chains"].as_array().into_iter().flatten() {
        assert_eq!(chain["ok"], true, "{health}");
        assert!(chain["processedBlock"].as_u64().is_some(), "{health}");
    }

    // One poller process watches both.
    let poller = healthy(
        "poller health",
        format!("{}/health", env.stack.endpoints.poller),
    )
    .await?;
    assert_eq!(ids(&poller, "chain"), chains, "{poller}");
    Ok(())
}
