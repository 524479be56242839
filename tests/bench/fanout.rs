//! Fan-out: many concurrent SSE connections, several per owner, all receive every update of a
//! burst of blocks; completeness, latency, and the table read units each open connection costs
//! per minute (from DynamoDB Local's `ConsumedCapacity`, counted by the proxy).

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::domain::address::lower;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::listeners::Listeners;
use crate::proxy::{since, total};
use crate::stats::{round, summary_ms};

/// Blocks in the burst, mined back to back, each changing every owner once.
const BURST_BLOCKS: usize = 5;
/// Quiet time over which idle streams' table reads are measured.
const QUIET: Duration = Duration::from_secs(20);

pub async fn run(
    bench: &Bench,
    owners: &[Address],
    tokens: &[Address],
    connections: usize,
) -> anyhow::Result<Value> {
    // Idle streams: what open connections cost the table when nothing changes, less what the
    // table sees without them (the poller's heartbeat, the pump, streams of earlier sections
    // the local emulator has not ended yet).
    let db0 = bench.table_counts();
    tokio::time::sleep(QUIET).await;
    let background = since(&bench.table_counts(), &db0);
    let listeners = Listeners::open(bench, owners, connections).await?;
    let db0 = bench.table_counts();
    tokio::time::sleep(QUIET).await;
    let quiet = since(&bench.table_counts(), &db0);
    let db_burst = bench.table_counts();

    let mut mined: HashMap<(Address, String), Instant> = HashMap::new();
    bench.automine(false).await?;
    let burst = async {
        for b in 0..BURST_BLOCKS {
            let token = tokens[b % tokens.len()];
            for owner in owners {
                bench.send_transfer(token, *owner, 1).await?;
            }
            bench.mine().await?;
            let at = Instant::now();
            for owner in owners {
                mined.insert((*owner, lower(&token)), at);
            }
        }
        anyhow::Ok(())
    }
    .await;
    bench.automine(true).await?;
    burst?;
    // Every connection should get its owner's BURST_BLOCKS updates; wait for them (bounded).
    let expected = connections * BURST_BLOCKS;
    let until = Instant::now() + Duration::from_secs(45);
    let mut latencies = vec![];
    while Instant::now() < until {
        latencies = listeners
            .deliveries()
            .iter()
            .filter_map(|(_, o, t, _, at)| {
                mined
                    .get(&(*o, t.clone()))
                    .map(|m| (*at - *m).as_secs_f64() * 1000.0)
            })
            .collect();
        if latencies.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let burst_db = since(&bench.table_counts(), &db_burst);
    let reconnects = listeners.close().await?;
    anyhow::ensure!(
        latencies.len() == expected,
        "fan-out delivered {} of {expected} updates",
        latencies.len()
    );
    let (quiet_total, background_total) = (total(&quiet), total(&background));
    let connection_minutes = connections as f64 * QUIET.as_secs_f64() / 60.0;
    let per_connection_minute = |with: f64, without: f64| {
        round(((with - without) / connection_minutes).max(0.0) * 100.0) / 100.0
    };
    let requests = |c: &crate::proxy::Counts, k: &str| c.get(k).map_or(0.0, |c| c.requests as f64);
    let units = |c: &crate::proxy::Counts, k: &str| c.get(k).map_or(0.0, |c| c.write_units);
    Ok(json!({
        "connections": connections,
        "owners": owners.len(),
        "connections_per_owner": connections / owners.len().max(1),
        "burst_blocks": BURST_BLOCKS,
        "updates_expected": expected,
        "updates_received": latencies.len(),
        "completeness": latencies.len() as f64 / expected as f64,
        "reconnects": reconnects,
        "latency_mined_to_received": summary_ms(&latencies),
        "quiet_window_seconds": QUIET.as_secs(),
        "table_read_units_per_connection_minute": per_connection_minute(quiet_total.read_units, background_total.read_units),
        "table_write_units_per_connection_minute": per_connection_minute(quiet_total.write_units, background_total.write_units),
        "table_requests_per_connection_minute": per_connection_minute(quiet_total.requests as f64, background_total.requests as f64),
        "table_by_operation_quiet_with_connections": quiet,
        "table_by_operation_quiet_without_connections": background,
        "burst_balance_writes": requests(&burst_db, "UpdateItem balance"),
        "burst_feed_writes": requests(&burst_db, "PutItem feed"),
        "feed_write_units_per_balance_write": round(units(&burst_db, "PutItem feed") / requests(&burst_db, "UpdateItem balance").max(1.0) * 100.0) / 100.0,
        "units_source": "ConsumedCapacity returned by DynamoDB Local (the proxy adds ReturnConsumedCapacity=TOTAL), reads floored at DynamoDB's 1 unit per strongly consistent request",
    }))
}
