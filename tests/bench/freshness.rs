//! Freshness: a transfer mined on anvil → its `balance_update` at an SSE client over HTTP,
//! through either transport of the api.
//!
//! Automine is off while measuring, so the clock starts when `evm_mine` returns — the block
//! exists from then on — rather than at the send. A random pause before each transfer spreads
//! the mining moment over the poller's and the stream's polling phases.

use std::time::Duration;

use alloy::primitives::Address;
use e2e::{SseClient, Transport, fresh_owner};
use live_balances::domain::address::lower;
use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::stats::summary_ms;

/// Mined → received, in milliseconds, for `samples` transfers to one watched wallet.
pub async fn measure(
    bench: &Bench,
    transport: Transport,
    token: Address,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let owner = fresh_owner();
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    bench
        .env
        .watch_via(transport, &lower(&owner), &body)
        .await?;
    let mut sse = SseClient::connect_via(bench.env, transport, &lower(&owner), None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    bench.automine(false).await?;
    let result = async {
        let mut latencies = vec![];
        for i in 1..=samples as u64 {
            let pause = rand::rng().random_range(0..400u64);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            bench.send_transfer(token, owner, 1).await?;
            bench.mine().await?;
            let mined = Instant::now();
            let want = i.to_string();
            sse.wait_for(&format!("balance {want}"), |e| {
                e.event == "balance_update"
                    && e.data["address"] == lower(&token)
                    && e.data["balance"] == want.as_str()
            })
            .await?;
            latencies.push(mined.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::Ok(latencies)
    }
    .await;
    bench.automine(true).await?;
    result
}

/// The section of the report for one SSE feed interval (the function URL).
pub fn report(feed_interval_ms: u64, latencies: &[f64]) -> Value {
    let mut s = summary_ms(latencies);
    s["sse_feed_interval_ms"] = json!(feed_interval_ms);
    s["target"] = json!({"p50_ms": 250, "p99_ms": 1000});
    s["met"] = json!(
        s["p50_ms"].as_f64().is_some_and(|v| v <= 250.0)
            && s["p99_ms"].as_f64().is_some_and(|v| v <= 1000.0)
    );
    s
}

/// The section of the report for the server at default settings (its change-log interval).
pub fn report_service(log_interval_ms: u64, latencies: &[f64]) -> Value {
    let mut s = summary_ms(latencies);
    s["chain_log_interval_ms"] = json!(log_interval_ms);
    s["target"] = json!({"p50_ms": 100});
    s["met"] = json!(s["p50_ms"].as_f64().is_some_and(|v| v <= 100.0));
    s
}

/// Mined → received, in milliseconds, for `samples` transfers spread over `wallets` watched
/// wallets that share one multi-wallet stream (`GET /sse/balances?wallets=…`): each transfer
/// goes to the next wallet in turn and is timed to its own `balance_update`.
pub async fn measure_many(
    bench: &Bench,
    transport: Transport,
    token: Address,
    wallets: usize,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let chain_id = bench.env.chain_id();
    let owners: Vec<Address> = (0..wallets).map(|_| fresh_owner()).collect();
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    for owner in &owners {
        bench.env.watch_via(transport, &lower(owner), &body).await?;
    }
    let pairs: Vec<(u64, String)> = owners.iter().map(|o| (chain_id, lower(o))).collect();
    let mut sse = SseClient::connect_many(bench.env, transport, &pairs, None).await?;
    for _ in 0..wallets {
        sse.wait_for("an all_balances per wallet", |e| e.event == "all_balances")
            .await?;
    }
    bench.automine(false).await?;
    let result = async {
        let mut latencies = vec![];
        let mut held = vec![0u64; wallets];
        for i in 0..samples {
            let w = i % wallets;
            let pause = rand::rng().random_range(0..400u64);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            bench.send_transfer(token, owners[w], 1).await?;
            bench.mine().await?;
            let mined = Instant::now();
            held[w] += 1;
            let (owner, want) = (lower(&owners[w]), held[w].to_string());
            sse.wait_for(&format!("{owner} balance {want}"), |e| {
                e.event == "balance_update"
                    && e.data["owner"] == owner.as_str()
                    && e.data["address"] == lower(&token)
                    && e.data["balance"] == want.as_str()
            })
            .await?;
            latencies.push(mined.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::Ok(latencies)
    }
    .await;
    bench.automine(true).await?;
    result
}
