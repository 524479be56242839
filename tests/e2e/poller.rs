//! Every way a balance or allowance changes reaches an SSE client with the right old and new
//! values: transfers in and out, approvals (default and custom spender), ETH in and out, WETH
//! wrap and unwrap, a silent (rebasing) change caught by the sweep, and a reverting token that
//! disturbs nothing else. And a new wallet learned from its session's record of its values.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::Context;
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::NATIVE_TOKEN;
use live_balances::config::DEFAULT_SPENDER;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceKey, TokenRead};
use local_stack::devnet::Wallet;
use tokio::time::Instant;

const ETH: u64 = 1_000_000_000_000_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn transfers_in_and_out_and_approvals_to_default_and_custom_spenders() -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = Wallet::fresh(&env.stack.rpc_url).await?;
    let custom = fresh_owner();
    // No spenders: the default spender is watched.
    env.watch(
        &lower(&owner.address),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    // A second client of the same wallet adds a custom spender; nothing is removed.
    env.watch(
        &lower(&owner.address),
        &format!(
            r#"{{"customTokens":["{}"],"spenders":["{}"]}}"#,
            lower(&token),
            lower(&custom)
        ),
    )
    .await?;
    let mut sse = SseClient::connect(env, &lower(&owner.address), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(
        snapshot.data["allowances"][lower(&token)][lower(&DEFAULT_SPENDER)],
        "0"
    );
    assert_eq!(
        snapshot.data["allowances"][lower(&token)][lower(&custom)],
        "0"
    );

    actor
        .transfer(token, owner.address, U256::from(700))
        .await?;
    sse.follow_balance(&lower(&token), "0", "700").await?;
    owner
        .transfer(token, actor.address, U256::from(200))
        .await?;
    sse.follow_balance(&lower(&token), "700", "500").await?;

    for (spender, amount) in [(DEFAULT_SPENDER, 5u64), (custom, 7)] {
        owner.approve(token, spender, U256::from(amount)).await?;
        let e = sse
            .wait_for("allowance_update", |e| {
                e.event == "allowance_update" && e.data["spender"] == lower(&spender)
            })
            .await?;
        assert_eq!(e.data["address"], lower(&token));
        assert_eq!(e.data["allowance"], amount.to_string());
        assert_eq!(e.data["previousAllowance"], "0");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn eth_in_and_out_and_weth_wrap_and_unwrap() -> anyhow::Result<()> {
    let env = Environment::get();
    let actor = Wallet::fresh(&env.stack.rpc_url).await?;
    let weth = actor.deploy_weth().await?;
    // An owner without a key cannot send; a fresh wallet can.
    let owner = Wallet::fresh(&env.stack.rpc_url).await?;
    env.watch(
        &lower(&owner.address),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&weth)),
    )
    .await?;
    let mut sse = SseClient::connect(env, &lower(&owner.address), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let native = lower(&NATIVE_TOKEN);
    let start: U256 = snapshot.data["balances"][&native]
        .as_str()
        .unwrap_or("0")
        .parse()?;
    assert_eq!(start, U256::from(1000u64) * U256::from(ETH));

    actor.send_eth(owner.address, U256::from(ETH)).await?;
    let received = start + U256::from(ETH);
    sse.follow_balance(&native, &start.to_string(), &received.to_string())
        .await?;

    // Sending ETH out costs gas too: follow the native balance down, whatever the gas was.
    owner.send_eth(actor.address, U256::from(ETH / 2)).await?;
    let e = sse
        .wait_for("ETH sent", |e| {
            e.event == "balance_update" && e.data["address"] == native
        })
        .await?;
    assert_eq!(e.data["previousBalance"], received.to_string());
    let after_send: U256 = e.data["balance"].as_str().unwrap_or("0").parse()?;
    assert!(
        after_send < received - U256::from(ETH / 2) + U256::from(1),
        "{e:?}"
    );

    owner.wrap(weth, U256::from(ETH / 4)).await?;
    sse.follow_balance(&lower(&weth), "0", &(ETH / 4).to_string())
        .await?;
    owner.unwrap(weth, U256::from(ETH / 8)).await?;
    sse.follow_balance(
        &lower(&weth),
        &(ETH / 4).to_string(),
        &(ETH / 8).to_string(),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reverting_token_is_marked_and_disturbs_nothing_else() -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let broken = actor.deploy_reverting_token().await?;
    let owner = fresh_owner();
    env.watch(
        &lower(&owner),
        &format!(
            r#"{{"customTokens":["{}","{}"]}}"#,
            lower(&broken),
            lower(&token)
        ),
    )
    .await?;
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(
        snapshot.data["errors"][lower(&broken)],
        "read_failed",
        "{:?}",
        snapshot.data
    );
    assert_eq!(snapshot.data["balances"][lower(&token)], "0");
    // The broken token's Transfer log makes the poller re-read it (and fail again) in the same
    // Multicall3 batch as the good token's transfer.
    actor.poke(broken, owner).await?;
    actor.transfer(token, owner, U256::from(9)).await?;
    sse.follow_balance(&lower(&token), "0", "9").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_rebase_is_caught_by_the_sweep() -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, rebasing, _, mut sse) = env.watched_rebasing(1000).await?;

    // No event at all: every balance doubles.
    actor.rebase(rebasing, U256::from(2 * ETH)).await?;
    // Blocks keep coming here (the other tests' transactions, and this miner); the sweep on a
    // chain with no block after the change is `quiet_sweep` in the chain suite.
    let miner = tokio::spawn(async move {
        loop {
            let _ = Environment::get().mine().await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    let outcome = sse.follow_balance(&lower(&rebasing), "1000", "2000").await;
    miner.abort();
    outcome?;
    Ok(())
}

/// A new wallet is learned from what its session's first writer recorded, not from a read of
/// the table: a balance the wallet held before its session started, then sent away whole,
/// reaches the stream as a change to zero (the poller held it from the record; had it learned
/// nothing, reading zero would change nothing). A later addition drops the record.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_wallet_is_learned_from_its_session_s_record() -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let (_, added) = env.actor_with_token(1_000).await?;
    let owner = Wallet::fresh(&env.stack.rpc_url).await?;
    actor
        .transfer(token, owner.address, U256::from(300))
        .await?;
    let poller = &env.stack.endpoints.poller;
    let learned_before = env.session_changes(poller, "learned_from_session").await?;
    let asks = |tokens: &[Address]| {
        let tokens: Vec<String> = tokens.iter().map(|t| format!("\"{}\"", lower(t))).collect();
        format!(r#"{{"customTokens":[{}]}}"#, tokens.join(","))
    };
    env.watch(&lower(&owner.address), &asks(&[token])).await?;

    let table = env.stack.table().await;
    let session = table
        .session(env.chain_id(), &owner.address)
        .await?
        .context("the session")?;
    let recorded = session.first_values.context("the first writer's record")?;
    assert_eq!(
        recorded.get(&BalanceKey::Balance { token }),
        Some(&TokenRead::Value(U256::from(300)))
    );
    let until = Instant::now() + Duration::from_secs(30);
    while env.session_changes(poller, "learned_from_session").await? <= learned_before {
        anyhow::ensure!(
            Instant::now() < until,
            "the poller learned no wallet from its session"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut sse = SseClient::connect(env, &lower(&owner.address), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["balances"][lower(&token)], "300");
    owner
        .transfer(token, actor.address, U256::from(300))
        .await?;
    sse.follow_balance(&lower(&token), "300", "0").await?;

    env.watch(&lower(&owner.address), &asks(&[token, added]))
        .await?;
    let session = table
        .session(env.chain_id(), &owner.address)
        .await?
        .context("the session")?;
    assert_eq!(session.revision, 2);
    assert_eq!(
        session.first_values, None,
        "a later revision drops the record"
    );
    Ok(())
}
