//! The service behind a hosted-provider-like node (`e2e::provider_proxy`): one wallet living
//! through 30 transfers in, 5 approvals, 5 ETH transfers in and a block of 80 transfers, once
//! with every fault of a provider on at once (40 ms a request, 20% answered 429 with
//! `Retry-After: 1`, no trace methods, `eth_getLogs` refused above 3 blocks or 50 results, the
//! WebSocket dropped every 60 s) and a 20 s outage in the middle, and once through the same
//! proxy with no fault, for comparison. The poller and an api server (which the wallet's
//! session goes through) reach the chain only through the proxy; streams are read through the
//! function URL. Reported: changes that reached the stream (the run fails if one does not,
//! within a minute), transfer → stream latency, how long after the outage every value was the
//! chain's again, session writes refused, RPC requests and billed units per block.

use std::time::Duration;

use alloy::primitives::U256;
use e2e::provider_proxy::{ProviderCounts, ProviderFaults, ProviderProxy};
use e2e::provider_run::{
    Latencies, SessionWrites, WatchedWallet, approval_seen, eth_seen, one_block_of_transfers,
    post_session, table_matches_chain, through, transfer_seen,
};
use local_stack::process::free_port;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::stats::round;

/// Longer than any change takes when the provider answers: past it the change is lost.
const SEEN_WITHIN: Duration = Duration::from_secs(60);
const OUTAGE: Duration = Duration::from_secs(20);

/// One run's figures.
pub struct ProviderRun {
    pub label: &'static str,
    pub changes: u32,
    pub latencies: Latencies,
    pub converged_after_outage: Option<Duration>,
    pub writes: SessionWrites,
    pub blocks: u64,
    pub counts: ProviderCounts,
    pub wrong_at_end: Vec<String>,
    pub seconds: f64,
}

impl ProviderRun {
    fn to_json(&self) -> Value {
        let blocks = self.blocks.max(1) as f64;
        let units: u64 = self
            .counts
            .requests
            .iter()
            .map(|(m, n)| n * live_balances::chain::ALCHEMY_UNITS.of(m))
            .sum();
        json!({
            "label": self.label,
            "changes": self.changes,
            "changes_lost": 0,
            "transfer_to_stream_ms": {
                "n": self.latencies.0.len(),
                "p50": self.latencies.percentile(50).as_millis() as u64,
                "p90": self.latencies.percentile(90).as_millis() as u64,
                "max": self.latencies.percentile(100).as_millis() as u64,
            },
            "converged_after_outage_ms": self.converged_after_outage.map(|d| d.as_millis() as u64),
            "session_writes": {"ok": self.writes.ok, "refused": self.writes.failed.len()},
            "blocks": self.blocks,
            "rpc_requests_per_block": round(self.counts.total() as f64 / blocks),
            "billed_units_per_block": round(units as f64 / blocks),
            "rpc_by_method": self.counts.requests,
            "answered_429": self.counts.rate_limited,
            "log_queries_refused": self.counts.logs_refused,
            "trace_calls_refused": self.counts.traces_refused,
            "websocket_drops": self.counts.ws_dropped,
            "values_wrong_at_end": self.wrong_at_end,
            "seconds": round(self.seconds),
        })
    }
}

pub async fn run() -> anyhow::Result<Vec<ProviderRun>> {
    // The poller's steps in its log, to see where a slow change spent its time.
    let bench = Bench::start(
        "providers",
        vec![("RUST_LOG".into(), "info,poller=debug".into())],
    )
    .await?;
    let upstream = format!("127.0.0.1:{}", bench.anvil_port).parse()?;
    let mut runs = vec![];
    for (label, faults, outage) in [
        ("clean", ProviderFaults::default(), false),
        ("every fault, 20 s outage", ProviderFaults::all(), true),
    ] {
        let proxy = ProviderProxy::start(upstream).await?;
        proxy.set(faults);
        bench
            .start_poller_in("debug", &through(bench.env, &proxy))
            .await?;
        let server = format!("server-{}", runs.len());
        let api = bench
            .env
            .stack
            .start_server_as(&server, free_port()?, &through(bench.env, &proxy))
            .await?;
        let result = scenario(&bench, &proxy, &api, label, outage).await;
        bench.env.stack.stop_service(&server)?;
        let run = result?;
        eprintln!("bench: providers, {label}: {}", run.to_json());
        runs.push(run);
    }
    bench.stop();
    Ok(runs)
}

async fn scenario(
    bench: &Bench,
    proxy: &ProviderProxy,
    api: &str,
    label: &'static str,
    outage: bool,
) -> anyhow::Result<ProviderRun> {
    let env = bench.env;
    let started = Instant::now();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let first_block = env.block_number().await?;
    let before = proxy.counts();
    let mut writes = SessionWrites::default();
    let mut wallet = WatchedWallet::new(env, api, token, &mut writes).await?;
    let mut latencies = Latencies::default();
    let mut changes = 0;
    let mut converged_after_outage = None;
    for i in 1..=30u64 {
        transfer_seen(
            env,
            &actor,
            token,
            &mut wallet,
            i,
            &mut latencies,
            SEEN_WITHIN,
        )
        .await?;
        changes += 1;
        if i % 6 == 0 {
            approval_seen(env, token, &mut wallet, i * 10, &mut latencies, SEEN_WITHIN).await?;
            changes += 1;
        }
        if i % 6 == 3 {
            eth_seen(
                env,
                &actor,
                token,
                &mut wallet,
                i * 1_000,
                &mut latencies,
                SEEN_WITHIN,
            )
            .await?;
            changes += 1;
            // Other wallets registering while the provider misbehaves.
            post_session(env, api, e2e::fresh_owner(), token, &mut writes).await?;
        }
        if outage && i == 15 {
            proxy.cut();
            let cut = Instant::now();
            actor
                .transfer(token, wallet.address(), U256::from(7u64))
                .await?;
            wallet
                .wallet
                .approve(
                    token,
                    live_balances::config::DEFAULT_SPENDER,
                    U256::from(77u64),
                )
                .await?;
            actor.send_eth(wallet.address(), U256::from(777u64)).await?;
            changes += 3;
            tokio::time::sleep(OUTAGE.saturating_sub(cut.elapsed())).await;
            proxy.restore();
            let restored = Instant::now();
            wallet.shows_chain(env, token, SEEN_WITHIN).await?;
            converged_after_outage = Some(restored.elapsed());
        }
    }
    one_block_of_transfers(env, &actor, token, &[(wallet.address(), 80)]).await?;
    wallet.shows_chain(env, token, SEEN_WITHIN).await?;
    changes += 1;
    let wrong_at_end = table_matches_chain(env, wallet.address(), token).await?;
    Ok(ProviderRun {
        label,
        changes,
        latencies,
        converged_after_outage,
        writes,
        blocks: env.block_number().await? - first_block,
        counts: proxy.counts().since(&before),
        wrong_at_end,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub fn report(runs: &[ProviderRun]) -> Value {
    json!({
        "scenario": "one wallet: 30 transfers in, 5 approvals, 5 ETH transfers in, one block of 80 transfers; 4 session writes through the api behind the provider",
        "runs": runs.iter().map(ProviderRun::to_json).collect::<Vec<_>>(),
    })
}
