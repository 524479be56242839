//! A reorg deeper than one block: the client ends at the canonical chain's values.

use alloy::primitives::U256;
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::address::lower;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn reorg_deeper_than_one_block_leaves_the_canonical_values() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = fresh_owner();
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    env.watch(&lower(&owner), &body).await?;
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;

    let fork_point = env.rpc("evm_snapshot", json!([])).await?;
    // Three blocks on the branch that will be dropped.
    for amount in [10u64, 20, 30] {
        actor.transfer(token, owner, U256::from(amount)).await?;
    }
    sse.follow_balance(&lower(&token), "0", "60").await?;

    // Drop them and grow a longer canonical branch with a different transfer.
    assert_eq!(
        env.rpc("evm_revert", json!([fork_point])).await?,
        json!(true)
    );
    // A wallet new to the canonical branch: the actor's cached nonce belongs to the dropped one.
    let other = local_stack::devnet::Wallet::fresh(&env.stack.rpc_url).await?;
    other.mint(token, owner, U256::from(5)).await?;
    for _ in 0..3 {
        env.mine().await?;
    }
    let e = sse
        .wait_for("canonical value", |e| {
            e.event == "balance_update" && e.data["address"] == lower(&token)
        })
        .await?;
    assert_eq!(e.data["previousBalance"], "60");
    assert_eq!(
        e.data["balance"], "5",
        "the client holds the canonical value: {e:?}"
    );

    // And the table agrees with the chain.
    let table = env.stack.table().await;
    let items = table.balances(env.chain_id(), &owner).await?;
    let stored = items
        .iter()
        .find(|i| i.key == live_balances::BalanceKey::Balance { token })
        .and_then(|i| i.read.value());
    assert_eq!(stored, Some(U256::from(5)));
    Ok(())
}
