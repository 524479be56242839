//! Orders in the fanout: what a wallet's open orders add to each of its value changes — the
//! fanout's table reads and the latency of the `balance_update` — at 0, 1 and 10 open orders
//! per wallet on the changing token, and how fast a crossing's `order_status` arrives.
//!
//! Each wallet gets `FUNDED` of the token, then its orders: the first sells `FUNDED + 1` (short
//! of both balance and allowance — the spender was never approved), the others amounts the
//! burst never reaches. The burst's first transfer of 1 makes the balance cover the first
//! order: its short side turns to the allowance alone, a crossing (one `order_status`); the
//! other blocks cross nothing. So the figures hold one crossing per wallet and otherwise the
//! re-judging every change of a wallet with orders costs.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::domain::address::lower;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::listeners::{Listeners, OrderDelivery};
use crate::proxy::{Counts, since};
use crate::stats::summary_ms;

/// Wallets per run, one stream each.
pub const WALLETS: usize = 20;
/// Blocks in the burst, each changing every wallet's balance once.
const BURST_BLOCKS: usize = 3;
/// What each wallet holds before its orders.
const FUNDED: u64 = 100;

/// One run per orders-per-wallet count, each on fresh wallets.
pub async fn run(
    bench: &Bench,
    token: Address,
    orders_per_wallet: &[usize],
) -> anyhow::Result<Value> {
    let mut runs = vec![];
    for &orders in orders_per_wallet {
        runs.push(measure(bench, token, orders).await?);
        eprintln!("bench: orders at {orders} per wallet done");
    }
    Ok(json!({
        "wallets": WALLETS,
        "burst_blocks": BURST_BLOCKS,
        "runs": runs,
        "units_source": "the functions' DynamoDB requests (fanout and api streams) through the counting proxy, ConsumedCapacity from DynamoDB Local; the fanout's order work is the value partition's Query (its orders) and GetItem (their values); the streams read the feed, never these",
    }))
}

async fn measure(bench: &Bench, token: Address, orders: usize) -> anyhow::Result<Value> {
    let env = bench.env;
    let owners = crate::watched_owners(bench, &[token], WALLETS).await?;
    for owner in &owners {
        bench.send_transfer(token, *owner, FUNDED).await?;
    }
    bench.mine().await?;
    let block = bench.block_number().await?;
    bench
        .poller_settled(block, Duration::from_secs(120))
        .await?;
    let valid_to = live_balances::runtime::clock::unix_now() + 3600;
    for owner in &owners {
        for i in 0..orders {
            let amount = if i == 0 {
                FUNDED + 1
            } else {
                1_000_000 + i as u64
            };
            let body = json!({
                "sellToken": lower(&token),
                "sellAmount": amount.to_string(),
                "validTo": valid_to,
            });
            let url = env.url(&format!("/{}/orders/{}/o{i}", env.chain_id(), lower(owner)));
            let (status, reply) = env
                .send_backend(reqwest::Method::PUT, &url, body.to_string())
                .await?;
            anyhow::ensure!(status == 200, "put order: {status} {reply}");
        }
    }
    let listeners = Listeners::open(bench, &owners, owners.len()).await?;
    crate::drained(bench).await;

    let before = bench.functions_db.counts();
    let mut mined: HashMap<Address, Vec<Instant>> = HashMap::new();
    let expected_statuses = if orders > 0 { owners.len() } else { 0 };
    // The crossing (each wallet's first order, short of the allowance alone now); the statuses
    // of the registrations came before the burst.
    let crossings = |listeners: &Listeners| -> Vec<OrderDelivery> {
        listeners
            .order_statuses()
            .into_iter()
            .filter(|(_, id, _, short, _)| id == "o0" && short == "allowance")
            .collect()
    };
    // Block by block, each one's updates awaited before the next: the poller reads a value
    // once for the blocks it handles together, so back-to-back blocks would merge updates.
    bench.automine(false).await?;
    let burst = async {
        for k in 0..BURST_BLOCKS {
            for owner in &owners {
                bench.send_transfer(token, *owner, 1).await?;
            }
            bench.mine().await?;
            let at = Instant::now();
            for owner in &owners {
                mined.entry(*owner).or_default().push(at);
            }
            let until = Instant::now() + Duration::from_secs(60);
            while Instant::now() < until
                && (listeners.deliveries().len() < owners.len() * (k + 1)
                    || crossings(&listeners).len() < expected_statuses)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        anyhow::Ok(())
    }
    .await;
    bench.automine(true).await?;
    burst?;
    let expected_updates = owners.len() * BURST_BLOCKS;
    let (updates, statuses) = (listeners.deliveries(), crossings(&listeners));
    crate::drained(bench).await;
    let during = since(&bench.functions_db.counts(), &before);
    listeners.close().await?;
    if updates.len() != expected_updates {
        let mut balances: Vec<&str> = updates.iter().map(|(_, _, _, b, _)| b.as_str()).collect();
        balances.sort();
        eprintln!("bench: orders: balances delivered {balances:?}");
    }
    anyhow::ensure!(
        updates.len() == expected_updates && statuses.len() == expected_statuses,
        "{orders} orders per wallet: {} of {expected_updates} updates, {} of {expected_statuses} order statuses",
        updates.len(),
        statuses.len()
    );

    // An update's latency from the block that made its balance (FUNDED + k).
    let update_ms: Vec<f64> = updates
        .iter()
        .filter_map(|(_, owner, _, balance, at)| {
            let k = balance.parse::<u64>().ok()?.checked_sub(FUNDED + 1)? as usize;
            let mined = mined.get(owner)?.get(k)?;
            Some((*at - *mined).as_secs_f64() * 1000.0)
        })
        .collect();
    let status_ms: Vec<f64> = statuses
        .iter()
        .filter_map(|(owner, _, _, _, at)| {
            let mined = mined.get(owner)?.first()?;
            Some((*at - *mined).as_secs_f64() * 1000.0)
        })
        .collect();
    let changes = expected_updates as f64;
    let per_change = |counts: &Counts, key: &str, units: bool| {
        counts.get(key).map_or(0.0, |c| {
            let v = if units {
                c.read_units
            } else {
                c.requests as f64
            };
            (v / changes * 100.0).round() / 100.0
        })
    };
    Ok(json!({
        "orders_per_wallet": orders,
        "value_changes": expected_updates,
        "crossings": statuses.len(),
        "balance_update_mined_to_received": summary_ms(&update_ms),
        "order_status_mined_to_received": summary_ms(&status_ms),
        "fanout_order_queries_per_change": per_change(&during, "Query balance", false),
        "fanout_order_query_read_units_per_change": per_change(&during, "Query balance", true),
        "fanout_value_reads_per_change": per_change(&during, "GetItem balance", false),
        "fanout_value_read_units_per_change": per_change(&during, "GetItem balance", true),
        "order_status_writes": during.get("UpdateItem balance").map_or(0, |c| c.requests),
        "feed_writes": during.get("PutItem feed").map_or(0, |c| c.requests),
        "functions_table_by_operation": during,
    }))
}
