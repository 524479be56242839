//! The poller and an api server behind a proxy that behaves like a hosted node provider
//! (`e2e::provider_proxy`): under each of its habits alone — rate limits, log caps, no trace
//! methods, dropped WebSockets — and under all of them at once with a 20 s outage, every
//! transfer, approval and ETH transfer reaches the wallet's stream in order, session writes
//! through the rate-limited api succeed, `/health` says which degradation is active, and the
//! table ends at the chain's values.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::provider_proxy::{ProviderFaults, ProviderProxy};
use e2e::provider_run::{
    Latencies, SessionWrites, WatchedWallet, approval_seen, degradations, devnet_addr, eth_seen,
    one_block_of_transfers, poller_health, table_matches_chain, through, transfer_seen,
};
use e2e::{DEADLINE, Environment};
use local_stack::process::free_port;
use tokio::time::Instant;

use crate::test_poller::TestPoller;

/// How long one change may take to reach the stream when the provider is up: well under the
/// 10 s safety poll a missed head would wait for, with room for a loaded machine.
const SEEN_WITHIN: Duration = Duration::from_secs(8);
/// How long a poller started behind the faulty provider may take to process its first block.
const STARTUP_UNDER_FAULTS: Duration = Duration::from_secs(150);

/// An api server started for one test, stopped after it.
struct TestServer {
    env: &'static Environment,
    name: &'static str,
    url: String,
}

impl TestServer {
    async fn start(
        env: &'static Environment,
        name: &'static str,
        overrides: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let url = env
            .stack
            .start_server_as(name, free_port()?, overrides)
            .await?;
        Ok(Self { env, name, url })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.env.stack.stop_service(self.name);
    }
}

/// The poller (replacing the stack's) and an api server behind a fresh proxy with `faults`.
async fn behind_provider(
    env: &'static Environment,
    name: &'static str,
    faults: ProviderFaults,
    extra: &[(String, String)],
) -> anyhow::Result<(ProviderProxy, TestPoller, TestServer)> {
    let proxy = ProviderProxy::start(devnet_addr(env)?).await?;
    proxy.set(faults);
    let mut overrides = through(env, &proxy);
    overrides.extend(extra.iter().cloned());
    let poller = TestPoller::start(env, name, &overrides, true)?;
    let server = TestServer::start(env, "server-provider", &through(env, &proxy)).await?;
    // Measured from a poller that has loaded every session the stack holds (earlier tests
    // leave hundreds) and processed a block. Its first step is a catch-up of the wallets the
    // earlier tests left, from their sessions' reads (a hundred blocks and more), under the
    // faults already: 3-block log queries, a fifth of them answered 429 and waited out, took
    // 49 s once on a busy machine. That start is not what these tests measure (a catch-up
    // under log caps has its own test), so it gets a start-up allowance of its own.
    env.mine().await?;
    poller
        .reached_within(env.block_number().await?, STARTUP_UNDER_FAULTS)
        .await?;
    Ok((proxy, poller, server))
}

fn report(name: &str, latencies: &Latencies) {
    eprintln!(
        "{name}: {} changes seen, transfer → stream p50 {:?} p90 {:?}",
        latencies.0.len(),
        latencies.percentile(50),
        latencies.percentile(90)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limiting_provider_loses_nothing() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let faults = ProviderFaults {
        latency: Duration::from_millis(40),
        rate_limited: 0.3,
        retry_after_secs: 1,
        ..ProviderFaults::default()
    };
    let (proxy, poller, server) = behind_provider(env, "poller-rate-limited", faults, &[]).await?;
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let mut writes = SessionWrites::default();
    let mut watched = WatchedWallet::new(env, &server.url, token, &mut writes).await?;
    // More session writes through the rate-limited api: each reads the chain.
    for _ in 0..4 {
        let owner = e2e::fresh_owner();
        e2e::provider_run::post_session(env, &server.url, owner, token, &mut writes).await?;
    }
    let mut latencies = Latencies::default();
    for i in 1..=4 {
        transfer_seen(
            env,
            &actor,
            token,
            &mut watched,
            i,
            &mut latencies,
            SEEN_WITHIN,
        )
        .await?;
    }
    approval_seen(env, token, &mut watched, 500, &mut latencies, SEEN_WITHIN).await?;
    eth_seen(
        env,
        &actor,
        token,
        &mut watched,
        10u64.pow(15),
        &mut latencies,
        SEEN_WITHIN,
    )
    .await?;
    report("rate limited", &latencies);

    let counts = proxy.counts();
    assert!(
        counts.rate_limited >= 3,
        "the provider rate limited: {counts:?}"
    );
    assert!(
        writes.failed.is_empty(),
        "session writes through the rate-limited api: {} ok, failed {:?}",
        writes.ok,
        writes.failed
    );
    let degraded = degradations(env, poller.url()).await?;
    assert!(degraded.iter().any(|d| d == "rate_limited"), "{degraded:?}");
    let wrong = table_matches_chain(env, watched.address(), token).await?;
    assert!(wrong.is_empty(), "{wrong:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn log_caps_are_split_down_to_one_block_and_below() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let faults = ProviderFaults {
        max_log_blocks: Some(3),
        max_log_results: Some(50),
        ..ProviderFaults::default()
    };
    let (proxy, poller, server) = behind_provider(env, "poller-log-caps", faults, &[]).await?;
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let mut writes = SessionWrites::default();
    let mut a = WatchedWallet::new(env, &server.url, token, &mut writes).await?;
    let mut b = WatchedWallet::new(env, &server.url, token, &mut writes).await?;
    let mut latencies = Latencies::default();
    transfer_seen(env, &actor, token, &mut a, 1, &mut latencies, SEEN_WITHIN).await?;

    // A catch-up wider than the provider's range: the poller is cut off while blocks go by.
    proxy.cut();
    actor.transfer(token, a.address(), U256::from(2)).await?;
    for _ in 0..6 {
        env.mine().await?;
    }
    actor.transfer(token, b.address(), U256::from(3)).await?;
    proxy.restore();
    a.shows_chain(env, token, DEADLINE).await?;
    b.shows_chain(env, token, DEADLINE).await?;

    // One block with more logs for one wallet than the provider returns, and some for
    // another: split by owner, then the first wallet's values re-read whole.
    let block =
        one_block_of_transfers(env, &actor, token, &[(a.address(), 60), (b.address(), 20)]).await?;
    a.shows_chain(env, token, DEADLINE).await?;
    b.shows_chain(env, token, DEADLINE).await?;
    poller.reached(block).await?;
    // The next changes no longer pay for what was learned.
    transfer_seen(env, &actor, token, &mut b, 4, &mut latencies, SEEN_WITHIN).await?;
    report("log caps", &latencies);

    let counts = proxy.counts();
    assert!(
        counts.logs_refused >= 2,
        "the provider refused log queries: {counts:?}"
    );
    let degraded = degradations(env, poller.url()).await?;
    for kind in ["log_range_limit", "log_result_limit"] {
        assert!(degraded.iter().any(|d| d == kind), "{kind} in {degraded:?}");
    }
    for w in [&a, &b] {
        let wrong = table_matches_chain(env, w.address(), token).await?;
        assert!(wrong.is_empty(), "{wrong:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_trace_methods_native_changes_of_streamed_wallets_show_at_the_next_block()
-> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let faults = ProviderFaults {
        refuse_traces: true,
        ..ProviderFaults::default()
    };
    let (proxy, poller, server) = behind_provider(env, "poller-no-traces", faults, &[]).await?;
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let forwarder = actor.deploy_eth_forwarder().await?;
    let mut writes = SessionWrites::default();
    let mut watched = WatchedWallet::new(env, &server.url, token, &mut writes).await?;
    let mut latencies = Latencies::default();
    eth_seen(
        env,
        &actor,
        token,
        &mut watched,
        10u64.pow(15),
        &mut latencies,
        SEEN_WITHIN,
    )
    .await?;
    // An internal transfer: no log, and the wallet is not the transaction's recipient.
    let started = Instant::now();
    actor
        .forward_eth(forwarder, watched.address(), U256::from(10u64.pow(14)))
        .await?;
    watched.shows_chain(env, token, SEEN_WITHIN).await?;
    latencies.0.push(started.elapsed());
    report("no traces", &latencies);

    let health = poller_health(env, poller.url()).await?;
    assert_eq!(health["nativeSource"], "reads", "{health}");
    let degraded = degradations(env, poller.url()).await?;
    assert!(degraded.iter().any(|d| d == "no_traces"), "{degraded:?}");
    assert!(proxy.counts().traces_refused >= 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_subscription_is_covered_at_once() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let faults = ProviderFaults {
        ws_drop_every: Some(Duration::from_millis(1000)),
        ws_refused_after_drop: Duration::from_millis(1000),
        ..ProviderFaults::default()
    };
    let (proxy, poller, server) = behind_provider(env, "poller-ws-drops", faults, &[]).await?;
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let mut writes = SessionWrites::default();
    let mut watched = WatchedWallet::new(env, &server.url, token, &mut writes).await?;
    let mut latencies = Latencies::default();
    // Transfers spread over several drops: those mined while the subscription is gone or
    // being made again are seen as fast as the others (a missed head used to wait for the
    // 10 s safety poll).
    for i in 1..=16 {
        transfer_seen(
            env,
            &actor,
            token,
            &mut watched,
            i,
            &mut latencies,
            SEEN_WITHIN,
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    report("WebSocket drops", &latencies);
    let dropped = proxy.counts().ws_dropped;
    assert!(
        dropped >= 3,
        "the provider dropped the WebSocket {dropped} times"
    );
    let worst = latencies.percentile(100);
    assert!(
        worst < Duration::from_secs(5),
        "every transfer seen without waiting for a safety poll: worst {worst:?}"
    );
    let metrics = env
        .http
        .get(format!("{}/metrics", poller.url()))
        .send()
        .await?
        .text()
        .await?;
    assert!(metrics.contains("poller_ws_disconnects_total"), "{metrics}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_once_with_an_outage_loses_nothing() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let faults = ProviderFaults {
        // Dropped more often than the 60 s so the run sees it happen.
        ws_drop_every: Some(Duration::from_secs(15)),
        ..ProviderFaults::all()
    };
    let (proxy, poller, server) = behind_provider(env, "poller-every-fault", faults, &[]).await?;
    let first_block = env.block_number().await?;
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let mut writes = SessionWrites::default();
    let mut wallets = vec![];
    for _ in 0..2 {
        wallets.push(WatchedWallet::new(env, &server.url, token, &mut writes).await?);
    }
    let mut latencies = Latencies::default();
    for i in 1..=4u64 {
        let w = &mut wallets[(i % 2) as usize];
        transfer_seen(env, &actor, token, w, i, &mut latencies, SEEN_WITHIN).await?;
    }
    approval_seen(env, token, &mut wallets[0], 7, &mut latencies, SEEN_WITHIN).await?;
    eth_seen(
        env,
        &actor,
        token,
        &mut wallets[1],
        10u64.pow(15),
        &mut latencies,
        SEEN_WITHIN,
    )
    .await?;

    // 20 s with no provider at all; the chain goes on.
    proxy.cut();
    let outage = Instant::now();
    actor
        .transfer(token, wallets[0].address(), U256::from(11))
        .await?;
    wallets[1]
        .wallet
        .approve(
            token,
            live_balances::config::DEFAULT_SPENDER,
            U256::from(12),
        )
        .await?;
    actor
        .send_eth(wallets[0].address(), U256::from(10u64.pow(14)))
        .await?;
    for _ in 0..4 {
        env.mine().await?;
    }
    let stuck = poller_health(env, poller.url()).await?;
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(outage.elapsed())).await;
    proxy.restore();
    let restored = Instant::now();
    for w in &mut wallets {
        w.shows_chain(env, token, DEADLINE).await?;
    }
    let converged = restored.elapsed();

    // A block of 80 transfers, over the provider's 50-log cap for one wallet.
    let owners: Vec<(Address, usize)> =
        vec![(wallets[0].address(), 70), (wallets[1].address(), 10)];
    one_block_of_transfers(env, &actor, token, &owners).await?;
    for w in &mut wallets {
        w.shows_chain(env, token, DEADLINE).await?;
    }
    for i in 5..=6u64 {
        let w = &mut wallets[(i % 2) as usize];
        transfer_seen(env, &actor, token, w, i, &mut latencies, SEEN_WITHIN).await?;
    }
    report("every fault", &latencies);
    let blocks = env.block_number().await? - first_block;
    let counts = proxy.counts();
    eprintln!(
        "every fault: converged {converged:?} after a 20 s outage; {} RPC requests over {blocks} \
         blocks ({:.1} a block), {} answered 429, {} log queries refused; health during the \
         outage {stuck}",
        counts.total(),
        counts.total() as f64 / blocks.max(1) as f64,
        counts.rate_limited,
        counts.logs_refused
    );
    assert!(
        converged <= Duration::from_secs(10),
        "every value converged within 10 s of the outage's end: {converged:?}"
    );
    assert!(
        writes.failed.is_empty(),
        "session writes: {:?}",
        writes.failed
    );
    for w in &wallets {
        let wrong = table_matches_chain(env, w.address(), token).await?;
        assert!(wrong.is_empty(), "{wrong:?}");
    }
    Ok(())
}
