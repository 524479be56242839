//! The per-chain change log against DynamoDB Local: what is appended is read back by time,
//! per chain, from the bucket (or the two) a window touches; a real transfer through the
//! poller and the fanout names its wallet at the wallet's newest feed position; and the
//! function URL's eventually consistent probe answers whether a feed has news.

use alloy::primitives::U256;
use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::domain::model::FeedPosition;
use live_balances::runtime::clock::unix_now_ms;
use live_balances::storage::ChainLogEntry;

#[tokio::test(flavor = "multi_thread")]
async fn change_log_entries_are_read_back_by_time_and_chain() -> anyhow::Result<()> {
    let env = Environment::get();
    let table = env.stack.table().await;
    // A chain of its own, so other tests' entries do not mix in.
    let chain_id = 900_000 + u64::from(rand::random::<u16>());
    let entry = |n: u64| ChainLogEntry {
        chain_id,
        owner: fresh_owner(),
        position: FeedPosition::parse(&n.to_string()).expect("digits"),
    };
    // Either side of a 30 s bucket's edge: one read must query both partitions.
    let edge = unix_now_ms() / 30_000 * 30_000;
    let (before, after) = (entry(1), entry(2));
    assert!(
        table
            .append_chain_log(std::slice::from_ref(&before), edge - 200)
            .await?
            .is_empty()
    );
    assert!(
        table
            .append_chain_log(std::slice::from_ref(&after), edge + 200)
            .await?
            .is_empty()
    );
    // Another chain's entry in the same buckets.
    let mut other = entry(3);
    other.chain_id = chain_id + 1;
    assert!(
        table
            .append_chain_log(std::slice::from_ref(&other), edge)
            .await?
            .is_empty()
    );
    // More than a batch of 25 at once.
    let many: Vec<ChainLogEntry> = (10..70).map(entry).collect();
    assert!(table.append_chain_log(&many, edge + 400).await?.is_empty());

    let read = table
        .chain_log_since(chain_id, edge - 1_000, edge + 1_000)
        .await?;
    assert!(read.contains(&before) && read.contains(&after), "{read:?}");
    assert!(many.iter().all(|e| read.contains(e)));
    assert!(!read.contains(&other), "another chain's entry");
    let later = table.chain_log_since(chain_id, edge, edge + 1_000).await?;
    assert!(!later.contains(&before) && later.contains(&after));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_names_its_wallet_in_the_change_log_at_its_feed_position() -> anyhow::Result<()>
{
    let env = Environment::get();
    let table = env.stack.table().await;
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000).await?;
    env.watch(
        &lower(&owner),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    let since = unix_now_ms().saturating_sub(1_000);
    let before = table.latest_feed_position(env.chain_id(), &owner).await?;
    // The probe of an empty feed finds nothing.
    assert!(
        !table
            .feed_may_have_after(env.chain_id(), &owner, &before)
            .await?
    );
    actor.transfer(token, owner, U256::from(5)).await?;
    let named = local_stack::stack::wait_for("the change-log entry", e2e::DEADLINE, || async {
        let latest = table.latest_feed_position(env.chain_id(), &owner).await?;
        let entries = table
            .chain_log_since(env.chain_id(), since, unix_now_ms())
            .await?;
        entries
            .into_iter()
            .find(|e| e.owner == owner && e.position == latest && latest > before)
            .ok_or_else(|| anyhow::anyhow!("not named yet"))
    })
    .await?;
    assert!(
        table
            .feed_may_have_after(env.chain_id(), &owner, &before)
            .await?
    );
    assert!(
        !table
            .feed_may_have_after(env.chain_id(), &owner, &named.position)
            .await?
    );
    Ok(())
}
