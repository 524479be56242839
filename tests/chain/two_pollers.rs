//! Two pollers running at once on the same table: no stored value ever goes back to a value
//! read at an older block, no client sees one, and everything ends at the chain's values.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::follow::balance_of;
use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::domain::model::BalanceKey;

use crate::test_poller::TestPoller;
use crate::watched_clients;

const OWNERS: usize = 4;
const TRANSFERS: usize = 40;

/// Reads every owner's items until `stop`, failing if any item's block ever decreases.
async fn watch_table_blocks(
    env: &'static Environment,
    owners: Vec<Address>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<usize> {
    let table = env.stack.table().await;
    let mut seen: HashMap<(Address, BalanceKey), (u64, String)> = HashMap::new();
    let mut reads = 0;
    while !stop.load(Ordering::SeqCst) {
        for owner in &owners {
            for item in table.balances(env.chain_id(), owner).await? {
                reads += 1;
                let now = (item.block, format!("{:?}", item.read));
                if let Some(before) = seen.insert((*owner, item.key), now.clone()) {
                    anyhow::ensure!(
                        now.0 >= before.0,
                        "{} {:?} went back from {before:?} to {now:?}",
                        lower(owner),
                        item.key
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(reads)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_pollers_never_regress() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..OWNERS).map(|_| fresh_owner()).collect();
    let mut clients = watched_clients(env, token, &owners).await?;
    let second = TestPoller::start(env, "poller-2", &[], false)?;

    let stop = Arc::new(AtomicBool::new(false));
    let table_watch = tokio::spawn(watch_table_blocks(env, owners.clone(), stop.clone()));
    let mut last_block = 0;
    for i in 0..TRANSFERS {
        let receipt = actor
            .transfer(token, owners[i % OWNERS], U256::from(i + 1))
            .await?;
        last_block = receipt.block_number.unwrap_or_default();
        // Halfway, the first poller dies and comes back: the two now start from different
        // cursors and race over the same blocks.
        if i == TRANSFERS / 2 {
            env.stack.kill_poller()?;
            env.stack.start_poller()?;
        }
    }
    // Both pollers really ran over the burst.
    env.poller_reached(last_block).await?;
    second.reached(last_block).await?;

    let mut follows = vec![];
    for ((sse, trail), owner) in clients.iter_mut().zip(&owners) {
        let want = balance_of(env, token, *owner).await?.to_string();
        follows.push(async move { trail.follow_to(sse, &want, Duration::from_secs(45)).await });
    }
    futures::future::try_join_all(follows).await?;
    stop.store(true, Ordering::SeqCst);
    let reads = table_watch.await??;
    drop(second);

    crate::assert_clients_and_table_match_chain(env, token, &clients, &owners).await?;
    eprintln!(
        "two pollers: {TRANSFERS} transfers, {reads} item reads of the table, no regression; updates per client {:?}",
        clients
            .iter()
            .map(|(_, t)| t.updates.len())
            .collect::<Vec<_>>()
    );
    Ok(())
}
