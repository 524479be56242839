//! RPC requests per minute with 1 and with 100 connected SSE clients on a devnet making a
//! block (with five transfers) every second, and beside it, in the same window, the polling
//! baseline for the same owners and tokens: requests and freshness, side by side.
//!
//! The window is shorter than a minute (`window`) and scaled to a minute; the report says so.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::domain::address::lower;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::baseline::Baseline;
use crate::context::Bench;
use crate::listeners::{Delivery, Listeners};
use crate::proxy::{CountingProxy, Mode, since, total};
use crate::stats::{round, summary_ms};

/// What the transfers of a window were: (owner, token) → mined at.
type Mined = HashMap<(Address, String), Instant>;

/// Transfers per block: enough samples for the freshness of both sides in a short window.
const TRANSFERS_PER_BLOCK: usize = 5;

/// A block a second, each with transfers to distinct (owner, token) pairs.
async fn drive(
    bench: &Bench,
    owners: &[Address],
    tokens: &[Address],
    window: Duration,
) -> anyhow::Result<Mined> {
    let mut mined = Mined::new();
    let start = Instant::now();
    let blocks = window.as_secs() as usize;
    bench.automine(false).await?;
    let result = async {
        for s in 0..blocks {
            tokio::time::sleep_until(start + Duration::from_secs(s as u64)).await;
            let mut pairs = vec![];
            for j in 0..TRANSFERS_PER_BLOCK {
                let k = s * TRANSFERS_PER_BLOCK + j;
                let owner = owners[k % owners.len()];
                // Every owner in turn; the token moves on each round, so no pair repeats.
                let token = tokens[(k / owners.len() + k * 7 + 3) % tokens.len()];
                bench.send_transfer(token, owner, 1).await?;
                pairs.push((owner, lower(&token)));
            }
            bench.mine().await?;
            let at = Instant::now();
            for pair in pairs {
                mined.insert(pair, at);
            }
        }
        tokio::time::sleep_until(start + window).await;
        anyhow::Ok(())
    }
    .await;
    bench.automine(true).await?;
    result?;
    Ok(mined)
}

/// Latency of the first delivery of each mined change to each client that follows its owner.
fn freshness(mined: &Mined, deliveries: &[Delivery]) -> Vec<f64> {
    let mut first: HashMap<(usize, Address, String), Instant> = HashMap::new();
    for (conn, owner, token, _, at) in deliveries {
        let Some(m) = mined.get(&(*owner, token.clone())) else {
            continue;
        };
        if at >= m {
            let e = first.entry((*conn, *owner, token.clone())).or_insert(*at);
            *e = (*e).min(*at);
        }
    }
    first
        .iter()
        .filter_map(|((_, o, t), at)| {
            mined
                .get(&(*o, t.clone()))
                .map(|m| (*at - *m).as_secs_f64() * 1000.0)
        })
        .collect()
}

/// Expected deliveries: every mined change, once per connection that follows its owner.
fn expected(mined: &Mined, owners: &[Address], connections: usize) -> usize {
    mined
        .keys()
        .map(|(o, _)| {
            (0..connections)
                .filter(|i| owners[i % owners.len()] == *o)
                .count()
        })
        .sum()
}

pub async fn run(
    bench: &Bench,
    owners: &[Address],
    tokens: &[Address],
    clients: usize,
    window: Duration,
) -> anyhow::Result<Value> {
    let per_minute = 60.0 / window.as_secs_f64();
    // One client: the service's cost alone.
    let one = Listeners::open(bench, owners, 1).await?;
    let rpc0 = bench.node_counts();
    let mined_one = drive(bench, owners, tokens, window).await?;
    let with_one = total(&since(&bench.node_counts(), &rpc0)).requests;
    one.close().await?;

    // `clients` clients, and the same owners polling on their own.
    let many = Listeners::open(bench, owners, clients).await?;
    let baseline_proxy = CountingProxy::start(bench.anvil_port, Mode::JsonRpc).await?;
    let baseline = Baseline::start(baseline_proxy.http_url(), owners, tokens);
    // Let every baseline client make its first poll (its starting point) before the window.
    tokio::time::sleep(crate::baseline::TOKEN_POLL).await;
    let (rpc0, base0) = (bench.node_counts(), baseline_proxy.counts());
    let mined = drive(bench, owners, tokens, window).await?;
    let service = since(&bench.node_counts(), &rpc0);
    let polling = since(&baseline_proxy.counts(), &base0);
    // The baseline sees the window's last changes at its next polls, up to 8 s later.
    tokio::time::sleep(crate::baseline::TOKEN_POLL + Duration::from_secs(1)).await;
    let seen = baseline.seen();
    baseline.stop().await;
    let deliveries = many.deliveries();
    let reconnects = many.close().await?;

    let sse_latency = freshness(&mined, &deliveries);
    let base_latency = freshness(&mined, &seen);
    let want = expected(&mined, owners, clients);
    let service_total = total(&service).requests;
    let polling_total = total(&polling).requests;
    let sse = summary_ms(&sse_latency);
    let base = summary_ms(&base_latency);
    anyhow::ensure!(
        sse_latency.len() == want,
        "SSE clients received {} of {want} updates",
        sse_latency.len()
    );
    let ratio = |a: &Value, b: &Value, k: &str| {
        round(a[k].as_f64().unwrap_or(f64::NAN) / b[k].as_f64().unwrap_or(f64::NAN))
    };
    Ok(json!({
        "window_seconds": window.as_secs(),
        "scaled_to_a_minute_by": round(per_minute),
        "blocks_per_second": 1,
        "transfers_per_block": TRANSFERS_PER_BLOCK,
        "owners": owners.len(),
        "tokens_per_owner": tokens.len(),
        "service_rpc_per_minute_1_client": round(with_one as f64 * per_minute),
        "service_rpc_per_minute_with_clients": round(service_total as f64 * per_minute),
        "clients": clients,
        "service_rpc_by_method": service,
        "baseline_rpc_per_minute": round(polling_total as f64 * per_minute),
        "baseline_rpc_by_method": polling,
        "baseline_to_service_request_ratio": round(polling_total as f64 / service_total.max(1) as f64),
        "sse_freshness": sse,
        "sse_deliveries": { "received": sse_latency.len(), "expected": want, "reconnects": reconnects },
        "baseline_freshness": base,
        "baseline_changes_seen": { "seen": base_latency.len(), "expected": mined.len() },
        "baseline_to_service_freshness_ratio_p50": ratio(&base, &sse, "p50_ms"),
        "target_flat_in_clients": "requests with 1 and with many clients about equal",
        "transfers_with_one_client": mined_one.len(),
    }))
}
