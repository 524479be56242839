//! The api server replaced under its clients, as a deploy or a failed task replaces it:
//! SIGKILLed in the middle of a burst of transfers and started again, and drained with
//! SIGTERM (every stream ends with a `retry:` hint, the process exits). Every client resumes
//! with `Last-Event-ID` and ends at the chain's values, each update continuing the last, none
//! lost and none repeated.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use e2e::follow::{Trail, balance_of, full_faults};
use e2e::{Environment, SseClient, Transport, fresh_owner};
use live_balances::domain::address::lower;

/// Clients per wallet: a wallet open in several tabs.
const CLIENTS_PER_OWNER: usize = 3;

/// Sessions for `owners`, and `CLIENTS_PER_OWNER` server clients each past their snapshot
/// and a first update (so each holds a position in its wallet's feed to resume from).
async fn server_clients(
    env: &'static Environment,
    actor: &local_stack::devnet::Wallet,
    token: Address,
    owners: &[Address],
) -> anyhow::Result<Vec<(Address, SseClient, Trail)>> {
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    let mut clients = vec![];
    for owner in owners {
        env.watch_via(Transport::Server, &lower(owner), &body)
            .await?;
        for _ in 0..CLIENTS_PER_OWNER {
            let (sse, trail) =
                crate::open_client_via(env, Transport::Server, token, *owner).await?;
            clients.push((*owner, sse, trail));
        }
    }
    for owner in owners {
        actor.transfer(token, *owner, U256::from(1)).await?;
    }
    converge(env, token, &mut clients, Duration::from_secs(30)).await?;
    Ok(clients)
}

/// Every client follows its owner's balance to the chain's value.
async fn converge(
    env: &'static Environment,
    token: Address,
    clients: &mut [(Address, SseClient, Trail)],
    within: Duration,
) -> anyhow::Result<usize> {
    let mut follows = vec![];
    for (owner, sse, trail) in clients.iter_mut() {
        let want = balance_of(env, token, *owner).await?.to_string();
        follows.push(async move {
            trail.follow_to(sse, &want, within).await?;
            anyhow::Ok(trail.updates.len())
        });
    }
    Ok(futures::future::try_join_all(follows).await?.iter().sum())
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sigkill_mid_burst_every_client_converges_after_restart() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (owners, transfers) = if full_faults() { (20, 200) } else { (10, 60) };
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..owners).map(|_| fresh_owner()).collect();
    let mut clients = server_clients(env, &actor, token, &owners).await?;

    let started = Instant::now();
    for i in 0..transfers {
        actor
            .transfer(token, owners[i % owners.len()], U256::from(i + 1))
            .await?;
        if i == transfers / 4 {
            env.stack.kill_service("server")?;
        }
    }
    let burst = started.elapsed();
    // Down for a while after the burst: longer than the change log's overlap, so the
    // restarted server must find the missed changes from its clients' positions.
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.stack.start_server().await?;
    let restarted = Instant::now();
    let before: usize = clients.iter().map(|(_, _, t)| t.updates.len()).sum();
    let updates = converge(env, token, &mut clients, Duration::from_secs(60)).await? - before;
    let caught_up = restarted.elapsed();
    let reconnects: u32 = clients.iter().map(|(_, s, _)| s.reconnects).sum();
    eprintln!(
        "{transfers} transfers to {} owners ({} server clients) in {burst:?}, server killed at \
         transfer {} and restarted 4 s after the burst; every client converged {caught_up:?} \
         after the restart ({updates} updates, {reconnects} reconnects)",
        owners.len(),
        clients.len(),
        transfers / 4,
    );
    assert!(
        clients.iter().all(|(_, s, _)| s.reconnects >= 1),
        "every client reconnected"
    );
    // Each resumed from its Last-Event-ID: none needed a fresh snapshot.
    assert!(
        clients.iter().all(|(_, _, t)| t.snapshots == 0),
        "a client resynced"
    );
    for (n, owner) in owners.iter().enumerate() {
        let sent: usize = 1
            + (0..transfers)
                .filter(|i| i % owners.len() == n)
                .map(|i| i + 1)
                .sum::<usize>();
        for (_, _, trail) in clients.iter().filter(|(o, _, _)| o == owner) {
            assert_eq!(trail.value, sent.to_string(), "{}", lower(owner));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn server_drains_on_sigterm_and_clients_resume_without_loss() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..4).map(|_| fresh_owner()).collect();
    let mut clients = server_clients(env, &actor, token, &owners).await?;
    let hints_before: Vec<u32> = clients.iter().map(|(_, s, _)| s.retry_hints).collect();

    env.stack.terminate_service("server")?;
    let terminated = Instant::now();
    // Every stream ends by itself, after a fresh `retry:` hint (spread beyond the usual one).
    let ended = futures::future::try_join_all(clients.iter_mut().map(|(_, sse, _)| async move {
        sse.until_end(tokio::time::Instant::now() + Duration::from_secs(10))
            .await
    }))
    .await?;
    let drained = terminated.elapsed();
    for ((_, sse, _), before) in clients.iter().zip(&hints_before) {
        assert_eq!(sse.retry_hints, before + 1, "one retry: hint at the drain");
        let hint = sse.retry_ms.unwrap_or_default();
        assert!(
            (1_000..=6_000).contains(&hint),
            "spread beyond the 1 s hint: {hint}"
        );
    }
    assert!(
        ended
            .iter()
            .all(|events| events.iter().all(|e| e.event == "ping"))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.stack.has_exited("server")? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the server did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exited = terminated.elapsed();

    // Changes while no server runs, then a new one (as another task would serve them).
    for (i, owner) in owners.iter().enumerate() {
        actor.transfer(token, *owner, U256::from(i + 1)).await?;
    }
    env.stack.start_server().await?;
    for (_, sse, _) in clients.iter_mut() {
        sse.auto_reconnect = true;
    }
    let before: usize = clients.iter().map(|(_, _, t)| t.updates.len()).sum();
    let updates = converge(env, token, &mut clients, Duration::from_secs(30)).await? - before;
    eprintln!(
        "SIGTERM: {} streams ended in {drained:?}, the server exited after {exited:?}; all \
         resumed on the new server ({updates} updates)",
        clients.len()
    );
    for (n, owner) in owners.iter().enumerate() {
        for (_, _, trail) in clients.iter().filter(|(o, _, _)| o == owner) {
            assert_eq!(trail.value, (n + 2).to_string(), "{}", lower(owner));
            assert_eq!(trail.snapshots, 0, "resumed from Last-Event-ID, no resync");
        }
    }
    Ok(())
}
