//! A step that fails part-way loses nothing it owed: the re-reads a reorg queued survive a
//! provider whose log queries fail for a while right after the rewind. The dropped branch's
//! value is then replaced by the chain's, on the stream and in the table. The slow sweep, which
//! would read the value again sooner or later anyway, is kept out of the way, so only the
//! rewind's re-read can correct it.

use std::time::Duration;

use alloy::primitives::U256;
use e2e::follow::balance_of;
use e2e::provider_proxy::{ProviderFaults, ProviderProxy};
use e2e::provider_run::{devnet_addr, poller_health, through};
use e2e::{DEADLINE, Environment, fresh_owner};
use serde_json::json;

use crate::test_poller::TestPoller;
use crate::{assert_clients_and_table_match_chain, watched_clients};

/// How many steps fail on the log queries before the provider recovers.
const FAILED_STEPS: u64 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn a_reorg_s_re_reads_survive_steps_that_fail() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let proxy = ProviderProxy::start(devnet_addr(env)?).await?;
    let mut overrides = through(env, &proxy);
    overrides.push(("SWEEP_ALL_INTERVAL".into(), "86400".into()));
    let poller = TestPoller::start(env, "poller-failed-steps", &overrides, true)?;
    env.mine().await?;
    poller.reached(env.block_number().await?).await?;

    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = fresh_owner();
    let mut clients = watched_clients(env, token, &[owner]).await?;
    let (sse, trail) = &mut clients[0];
    trail.blocks_may_go_back = true;
    actor.transfer(token, owner, U256::from(10)).await?;
    trail.follow_to(sse, "10", DEADLINE).await?;

    // The transfer's block replaced by an empty one, a block on top, and every log query of
    // the steps that process them failing: the rewind queues the re-read, then each step
    // that takes it fails.
    proxy.set(ProviderFaults {
        fail_logs: true,
        ..ProviderFaults::default()
    });
    env.rpc("anvil_reorg", json!([1, []])).await?;
    env.mine().await?;
    assert_eq!(balance_of(env, token, owner).await?, U256::ZERO);
    local_stack::stack::wait_for("failed steps", DEADLINE, || async {
        let failing = failing_steps(env, poller.url()).await?;
        anyhow::ensure!(failing >= FAILED_STEPS, "{failing} steps failed in a row");
        Ok(())
    })
    .await?;
    assert!(proxy.counts().logs_failed >= FAILED_STEPS);
    proxy.set(ProviderFaults::default());

    trail.follow_to(sse, "0", Duration::from_secs(30)).await?;
    assert_clients_and_table_match_chain(env, token, &clients, &[owner]).await
}

/// How many steps in a row the poller's `/health` says failed (0 when none is failing).
async fn failing_steps(env: &Environment, poller_url: &str) -> anyhow::Result<u64> {
    let chain = poller_health(env, poller_url).await?;
    let message = chain["degraded"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["kind"] == "steps_failing")
        .and_then(|d| d["reason"].as_str())
        .unwrap_or_default()
        .to_string();
    // "the last {n} steps failed (...)"
    Ok(message
        .strip_prefix("the last ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0))
}
