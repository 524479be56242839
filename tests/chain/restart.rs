//! The poller killed with SIGKILL during a burst of transfers, then restarted: every client
//! ends at the chain's values, with every change in order and none lost.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::address::lower;

const OWNERS: usize = 5;
const TRANSFERS: u64 = 40;

#[tokio::test(flavor = "multi_thread")]
async fn poller_killed_mid_burst_restarts_and_nothing_is_missing() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..OWNERS).map(|_| fresh_owner()).collect();
    let mut clients = vec![];
    for owner in &owners {
        let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
        env.watch(&lower(owner), &body).await?;
        let mut sse = SseClient::connect(env, &lower(owner), None).await?;
        sse.wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        clients.push(sse);
    }

    let mut expected = vec![0u64; OWNERS];
    for i in 0..TRANSFERS {
        let n = i as usize % OWNERS;
        actor.transfer(token, owners[n], U256::from(i + 1)).await?;
        expected[n] += i + 1;
        if i == TRANSFERS / 4 {
            env.stack.kill_poller()?;
        }
        if i == TRANSFERS / 2 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            env.stack.start_poller()?;
        }
    }
    let follows = clients
        .iter_mut()
        .zip(&expected)
        .map(|(sse, want)| sse.follow_balance_owned(lower(&token), "0".into(), want.to_string()));
    for outcome in futures::future::join_all(follows).await {
        outcome?;
    }
    Ok(())
}
