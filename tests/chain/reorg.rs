//! Reorgs deeper than one block — a short branch replaced by a longer one, and the last blocks
//! replaced at the same height — leave the client and the table at the new chain's values,
//! with every change delivered once, in order.

use std::time::Duration;

use alloy::primitives::U256;
use e2e::follow::balance_of;
use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::devnet::Wallet;
use serde_json::{Value, json};

use crate::watched_clients;

const WITHIN: Duration = Duration::from_secs(45);

async fn head(env: &Environment) -> anyhow::Result<(u64, Value)> {
    let block = env
        .rpc("eth_getBlockByNumber", json!(["latest", false]))
        .await?;
    let number = u64::from_str_radix(
        block["number"]
            .as_str()
            .unwrap_or("0")
            .trim_start_matches("0x"),
        16,
    )?;
    Ok((number, block["hash"].clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_reorg() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = fresh_owner();
    let mut clients = watched_clients(env, token, &[owner]).await?;
    let (sse, trail) = &mut clients[0];
    trail.blocks_may_go_back = true;

    // 1. Three blocks dropped (evm_revert) and a longer branch with another transfer grown.
    let fork_point = env.rpc("evm_snapshot", json!([])).await?;
    for amount in [10u64, 20, 30] {
        actor.transfer(token, owner, U256::from(amount)).await?;
    }
    trail.follow_to(sse, "60", WITHIN).await?;
    assert_eq!(
        env.rpc("evm_revert", json!([fork_point])).await?,
        json!(true)
    );
    // A wallet new to the canonical branch: the actor's cached nonce belongs to the dropped one.
    let other = Wallet::fresh(&env.stack.rpc_url).await?;
    other.mint(token, owner, U256::from(5)).await?;
    for _ in 0..3 {
        env.mine().await?;
    }
    let canonical = balance_of(env, token, owner).await?;
    assert_eq!(canonical, U256::from(5));
    trail.follow_to(sse, "5", WITHIN).await?;

    // 2. The last three blocks, holding three transfers, replaced at the same height by empty
    // ones (anvil_reorg): no longer chain announces it, only other hashes.
    for amount in [1u64, 2, 3] {
        other.mint(token, owner, U256::from(amount)).await?;
    }
    trail.follow_to(sse, "11", WITHIN).await?;
    let (height, hash) = head(env).await?;
    env.rpc("anvil_reorg", json!([3, []])).await?;
    let (new_height, new_hash) = head(env).await?;
    assert_eq!(new_height, height, "anvil_reorg keeps the height");
    assert_ne!(new_hash, hash, "and replaces the blocks");
    let canonical = balance_of(env, token, owner).await?;
    assert_eq!(
        canonical,
        U256::from(5),
        "the replaced blocks' transfers are gone"
    );
    trail.follow_to(sse, "5", WITHIN).await?;
    eprintln!(
        "deep reorgs: {} updates, {} snapshots: {:?}",
        trail.updates.len(),
        trail.snapshots,
        trail
            .updates
            .iter()
            .map(|u| (u.previous.clone(), u.balance.clone(), u.block))
            .collect::<Vec<_>>()
    );

    // And the table agrees with the chain.
    let table = env.stack.table().await;
    let items = table.balances(env.chain_id(), &owner).await?;
    let stored = items
        .iter()
        .find(|i| i.key == live_balances::BalanceKey::Balance { token })
        .and_then(|i| i.read.value());
    assert_eq!(stored, Some(canonical), "{}", lower(&owner));
    Ok(())
}
