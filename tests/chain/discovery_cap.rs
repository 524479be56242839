//! Discovery is bounded per wallet (`MAX_DISCOVERED_TOKENS`): past the cap, a token coming into
//! the wallet is not tracked — no value, no update, not in the session — while what was
//! discovered before goes on. A poller of its own with a cap of two replaces the stack's.

use alloy::primitives::U256;
use anyhow::Context;
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;
use serde_json::json;

use crate::test_poller::TestPoller;

const CAP: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn discovery_stops_at_the_wallets_cap() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let chain = env.chain_id();
    let poller = TestPoller::start(
        env,
        "poller-discovery-cap",
        &[("MAX_DISCOVERED_TOKENS".into(), CAP.to_string())],
        true,
    )?;
    let (actor, known) = env.actor_with_token(1_000_000).await?;
    let mut airdrops = vec![];
    for i in 0..=CAP {
        airdrops.push(
            actor
                .deploy_token(&format!("Airdrop {i}"), &format!("AIR{i}"), 6)
                .await?,
        );
    }
    let owner = fresh_owner();
    env.watch(
        &lower(&owner),
        &json!({"customTokens": [lower(&known)], "discoverTokens": true}).to_string(),
    )
    .await?;
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    // One airdrop per block: CAP of them fill the cap, the one left finds it full.
    for (i, token) in airdrops.iter().enumerate() {
        actor.mint(*token, owner, U256::from(10 + i as u64)).await?;
    }
    // Which of them fill the cap is the poller's choice when they come in one step (it
    // handles a step's candidates together); exactly CAP do, each with its value.
    let mut found = std::collections::BTreeMap::new();
    while found.len() < CAP {
        let e = sse
            .wait_for("the discovered tokens", |e| e.event == "balance_update")
            .await?;
        let address = e.data["address"].as_str().unwrap_or_default().to_string();
        found.insert(address, e.data["balance"].clone());
    }
    for (i, token) in airdrops.iter().enumerate() {
        if let Some(balance) = found.get(&lower(token)) {
            assert_eq!(balance, &json!((10 + i).to_string()), "{found:?}");
        }
    }
    let over = *airdrops
        .iter()
        .find(|t| !found.contains_key(&lower(t)))
        .context("a token left past the cap")?;
    // A change of a tracked token after the last airdrop's block: whatever the poller would
    // have sent for the token past the cap came before this update.
    actor.transfer(known, owner, U256::from(5)).await?;
    let mut seen = vec![];
    loop {
        let e = sse
            .wait_for("the tracked token's update", |e| {
                e.event == "balance_update"
            })
            .await?;
        let done = e.data["address"] == lower(&known);
        seen.push(e);
        if done {
            break;
        }
    }
    assert!(
        seen.iter()
            .all(|e| e.data["address"] != lower(&over).as_str()),
        "the token past the cap was tracked: {seen:?}"
    );
    let (_, session) = env
        .json_request(|| {
            env.http
                .get(env.url(&format!("/{chain}/sessions/{}", lower(&owner))))
        })
        .await?;
    let mut listed: Vec<String> = serde_json::from_value(session["discoveredTokens"].clone())?;
    listed.sort();
    assert_eq!(
        listed,
        found.keys().cloned().collect::<Vec<_>>(),
        "{session}"
    );
    let stored = env.stack.table().await.balances(chain, &owner).await?;
    assert!(
        stored.iter().all(|item| item.key.token() != over),
        "a value of the token past the cap was stored: {stored:?}"
    );
    drop(poller);
    Ok(())
}
