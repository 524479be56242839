//! The poller killed with SIGKILL in the middle of a burst of transfers across owners, then
//! restarted after it: every client ends at the chain's values, with every change in order, none lost
//! and none delivered twice.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::follow::{balance_of, full_faults};
use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;

use crate::watched_clients;

#[tokio::test(flavor = "multi_thread")]
async fn poller_sigkill_mid_burst() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    // The full scenario with FULL_FAULTS=1; a third of it by default.
    let (owners, transfers) = if full_faults() { (20, 200) } else { (10, 60) };
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..owners).map(|_| fresh_owner()).collect();
    let mut clients = watched_clients(env, token, &owners).await?;

    let started = std::time::Instant::now();
    let mut first_block = 0;
    for i in 0..transfers {
        let receipt = actor
            .transfer(token, owners[i % owners.len()], U256::from(i + 1))
            .await?;
        if i == 0 {
            first_block = receipt.block_number.unwrap_or_default();
        }
        if i == transfers / 4 {
            // Killed while at work on the burst, not before it reached it.
            env.poller_reached(first_block).await?;
            env.stack.kill_poller()?;
        }
    }
    let burst = started.elapsed();
    // Restarted once the burst is over: nothing new announces itself, the poller must find the
    // missed blocks on its own.
    env.stack.start_poller()?;
    let restarted = std::time::Instant::now();

    let mut follows = vec![];
    for ((sse, trail), owner) in clients.iter_mut().zip(&owners) {
        let want = balance_of(env, token, *owner).await?.to_string();
        follows.push(async move {
            trail.follow_to(sse, &want, Duration::from_secs(60)).await?;
            anyhow::Ok(trail.updates.len())
        });
    }
    let updates: usize = futures::future::try_join_all(follows).await?.iter().sum();
    let caught_up = restarted.elapsed();
    eprintln!(
        "{transfers} transfers to {} owners in {burst:?}, poller killed at transfer {} and \
         restarted after the burst; clients converged after {updates} updates, {:?} after the \
         restart",
        owners.len(),
        transfers / 4,
        caught_up
    );
    // A restarted poller asks for the head at once rather than waiting for its 10 s safety
    // poll (under a second here; 10 s before it did).
    assert!(
        caught_up < Duration::from_secs(8),
        "clients caught up {caught_up:?} after the restart"
    );
    // Each owner's final value is the sum of what it was sent: the chain agrees with the test.
    for (n, owner) in owners.iter().enumerate() {
        let sent: usize = (0..transfers)
            .filter(|i| i % owners.len() == n)
            .map(|i| i + 1)
            .sum();
        assert_eq!(balance_of(env, token, *owner).await?, U256::from(sent));
        assert_eq!(
            clients[n].1.value,
            sent.to_string(),
            "{} ends at the chain's value",
            lower(owner)
        );
    }
    Ok(())
}
