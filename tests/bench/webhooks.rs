//! Webhooks: delivery latency from a mined block to the receiver, and how many deliveries a
//! second one consumer (one webhooks pump feeding one function) sustains.
//!
//! The receiver is the e2e tests' (`tests/src/webhook_receiver.rs`), in this process: it
//! verifies every signature, so a figure counts only deliveries that would be accepted.
//!
//! - **Latency.** Automine off, as for freshness: the clock starts when `evm_mine` returns and
//!   stops when the receiver has verified the delivery of that transfer (poller → table →
//!   stream → fanout → feed entry → stream → webhooks function → POST).
//! - **Throughput.** The webhooks pump is stopped while `wallets` × `per_wallet` transfers are
//!   mined and the fanout appends their feed entries; then it starts again, reading the stream
//!   from its start, and the clock runs from that start to the last delivery verified. Each
//!   wallet has its own subscription, so the function serves them at once
//!   (`WEBHOOK_CONCURRENCY`), each in order.

use std::collections::BTreeSet;
use std::time::Duration;

use alloy::primitives::Address;
use e2e::fresh_owner;
use e2e::webhook_receiver::Receiver;
use live_balances::domain::address::lower;
use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::stats::{round, summary_ms};

/// Longest a delivery (or the whole backlog) may take before the bench calls the system wrong.
const DEADLINE: Duration = Duration::from_secs(300);

async fn subscribe(
    bench: &Bench,
    receiver: &Receiver,
    owner: Address,
    token: Address,
) -> anyhow::Result<()> {
    let env = bench.env;
    env.watch(
        &lower(&owner),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    let url = env.url(&format!("/{}/webhooks", env.chain_id()));
    let body = json!({
        "url": receiver.url,
        "wallets": [lower(&owner)],
        "events": ["balance_update"],
    });
    let (status, created) = env
        .send_backend(reqwest::Method::POST, &url, body.to_string())
        .await?;
    anyhow::ensure!(status == 201, "create webhook: {status} {created}");
    receiver.set_secret(created["secret"].as_str().unwrap_or_default());
    Ok(())
}

/// Mined → verified at the receiver, in milliseconds, for `samples` transfers.
pub async fn latency(bench: &Bench, token: Address, samples: usize) -> anyhow::Result<Vec<f64>> {
    let receiver = Receiver::start().await?;
    let owner = fresh_owner();
    subscribe(bench, &receiver, owner, token).await?;
    bench.automine(false).await?;
    let result = async {
        let mut latencies = vec![];
        for i in 1..=samples {
            let pause = rand::rng().random_range(0..400u64);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            bench.send_transfer(token, owner, 1).await?;
            bench.mine().await?;
            let mined = Instant::now();
            let want = i.to_string();
            receiver
                .wait_accepted(&format!("delivery of balance {want}"), DEADLINE, |a| {
                    a.last()
                        .is_some_and(|r| r.json()["data"]["balance"] == want.as_str())
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

/// Deliveries a second through one consumer, from its start to the last delivery.
pub async fn throughput(
    bench: &Bench,
    token: Address,
    wallets: usize,
    per_wallet: usize,
) -> anyhow::Result<Value> {
    let receiver = Receiver::start().await?;
    let owners: Vec<Address> = (0..wallets).map(|_| fresh_owner()).collect();
    for owner in &owners {
        subscribe(bench, &receiver, *owner, token).await?;
    }
    let stack = &bench.env.stack;
    stack.stop_service("pump-webhooks")?;
    bench.automine(false).await?;
    // One block per round, each processed before the next is mined: the poller reads a range
    // of blocks as one change per value, so this makes every transfer a feed entry of its own.
    let mined = async {
        for _ in 0..per_wallet {
            for owner in &owners {
                bench.send_transfer(token, *owner, 1).await?;
            }
            bench.mine().await?;
            let block = bench.block_number().await?;
            bench.poller_settled(block, DEADLINE).await?;
        }
        anyhow::Ok(())
    }
    .await;
    bench.automine(true).await?;
    mined?;
    if !bench.wait_feed_drained(Duration::from_secs(90)).await {
        eprintln!("bench: the fanout was still appending after 90 s; measuring anyway");
    }
    let total = wallets * per_wallet;
    let started = Instant::now();
    stack.start_pump_as("pump-webhooks", &stack.endpoints.webhooks_invoke)?;
    let mut first: Option<Duration> = None;
    let until = Instant::now() + DEADLINE;
    let delivered = loop {
        let accepted = receiver.accepted();
        if first.is_none() && !accepted.is_empty() {
            first = Some(started.elapsed());
        }
        // Done when every wallet's last delivery shows its final balance.
        let done = owners.iter().all(|owner| {
            accepted
                .iter()
                .rev()
                .find(|r| r.json()["owner"] == lower(owner).as_str())
                .is_some_and(|r| r.json()["data"]["balance"] == per_wallet.to_string().as_str())
        });
        if done {
            let distinct: BTreeSet<String> = accepted.iter().map(|r| r.id.clone()).collect();
            anyhow::ensure!(
                distinct.len() == accepted.len(),
                "a delivery was accepted twice"
            );
            break accepted.len();
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{} of {total} deliveries within {DEADLINE:?}",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let all = started.elapsed().as_secs_f64();
    let first = first.unwrap_or_default().as_secs_f64();
    Ok(json!({
        "subscriptions": wallets,
        "transfers": total,
        "deliveries": delivered,
        "seconds_from_consumer_start": round(all),
        "seconds_to_first_delivery": round(first),
        "deliveries_per_second": round(delivered as f64 / all),
        "deliveries_per_second_after_first": round(
            delivered.saturating_sub(1) as f64 / (all - first).max(1e-3)
        ),
    }))
}

/// The report's section.
pub fn report(latencies: &[f64], throughput: Value) -> Value {
    json!({
        "latency_mined_to_receiver": summary_ms(latencies),
        "throughput_one_consumer": throughput,
    })
}
