//! RPC requests (and table units, and the poller's CPU and memory) per block with 1, 100 and
//! 1,000 tracked owners × 100 tokens, with no owner and with 50 owners touched in the block.
//!
//! Sessions are written straight into the table; the poller reads and stores their values
//! itself when it sees them (the load is timed and reported too). Blocks come one a second,
//! as on a fast chain, so the poller's spread sweep does its real share per block. Requests
//! are counted by the proxy between the poller and anvil, not by the poller.

use std::time::Duration;

use alloy::primitives::Address;
use e2e::fresh_owner;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::procfs;
use crate::proxy::{Counts, since, total};
use crate::stats::round;

/// Owners touched in a busy block.
pub const TOUCHED: usize = 50;

/// What a stretch of blocks cost.
pub struct BlockCost {
    pub blocks: usize,
    pub rpc: Counts,
    pub db: Counts,
    pub cpu_seconds: f64,
    pub seconds: f64,
}

impl BlockCost {
    pub fn rpc_per_block(&self) -> f64 {
        total(&self.rpc).requests as f64 / self.blocks as f64
    }

    pub fn to_json(&self) -> Value {
        let per_block = |counts: &Counts| -> Value {
            counts
                .iter()
                .map(|(k, c)| {
                    let v = json!({
                        "requests": round(c.requests as f64 / self.blocks as f64 * 100.0) / 100.0,
                        "read_units": round(c.read_units / self.blocks as f64 * 100.0) / 100.0,
                        "write_units": round(c.write_units / self.blocks as f64 * 100.0) / 100.0,
                    });
                    (k.clone(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let db = total(&self.db);
        json!({
            "blocks": self.blocks,
            "rpc_requests_per_block": round(self.rpc_per_block() * 100.0) / 100.0,
            "rpc_by_method_per_block": per_block(&self.rpc),
            "table_read_units_per_block": round(db.read_units / self.blocks as f64 * 100.0) / 100.0,
            "table_write_units_per_block": round(db.write_units / self.blocks as f64 * 100.0) / 100.0,
            "table_by_operation_per_block": per_block(&self.db),
            "poller_cpu_ms_per_block": round(self.cpu_seconds * 1000.0 / self.blocks as f64),
            "seconds_per_block": round(self.seconds / self.blocks as f64 * 100.0) / 100.0,
        })
    }
}

/// Mines `blocks` blocks `every` apart (or as fast as the poller keeps up, if slower), each
/// with transfers to `touched` of `owners`, waiting for the poller to process each.
pub async fn measure_blocks(
    bench: &Bench,
    owners: &[Address],
    tokens: &[Address],
    touched: usize,
    blocks: usize,
    every: Duration,
) -> anyhow::Result<BlockCost> {
    let pid = procfs::child_pid("poller")?;
    let (rpc0, db0, cpu0) = (
        bench.rpc.counts(),
        bench.db.counts(),
        procfs::cpu_seconds(pid)?,
    );
    let start = Instant::now();
    bench.automine(false).await?;
    let result = async {
        for b in 0..blocks {
            let next = start + every * b as u32;
            tokio::time::sleep_until(next).await;
            for i in 0..touched {
                let owner = owners[(b * touched + i) % owners.len()];
                bench
                    .send_transfer(tokens[(b + i) % tokens.len()], owner, 1)
                    .await?;
            }
            bench.mine().await?;
            let block = bench.block_number().await?;
            bench
                .poller_settled(block, Duration::from_secs(120))
                .await?;
        }
        anyhow::Ok(())
    }
    .await;
    bench.automine(true).await?;
    result?;
    Ok(BlockCost {
        blocks,
        rpc: since(&bench.rpc.counts(), &rpc0),
        db: since(&bench.db.counts(), &db0),
        cpu_seconds: procfs::cpu_seconds(pid)? - cpu0,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Adds owners with sessions for `tokens` until there are `to`; waits for the poller to load
/// them. Returns the seconds the load took.
pub async fn grow(
    bench: &Bench,
    owners: &mut Vec<Address>,
    tokens: &[Address],
    to: usize,
) -> anyhow::Result<f64> {
    let fresh: Vec<Address> = (owners.len()..to).map(|_| fresh_owner()).collect();
    bench.write_sessions(&fresh, tokens).await?;
    owners.extend(fresh);
    let start = Instant::now();
    bench.mine().await?;
    let block = bench.block_number().await?;
    bench
        .poller_settled(block, Duration::from_secs(900))
        .await?;
    let loaded = start.elapsed().as_secs_f64();
    // A few unmeasured blocks a second apart: the spread sweep's first step after the load
    // catches up the whole load time, which no steady block does.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bench.mine().await?;
        let block = bench.block_number().await?;
        bench
            .poller_settled(block, Duration::from_secs(120))
            .await?;
    }
    Ok(loaded)
}

/// One tier's measurements.
pub struct Tier {
    pub owners: usize,
    pub idle: BlockCost,
    pub busy: BlockCost,
    pub load_seconds: f64,
    pub rss_mib: f64,
    pub hwm_mib: f64,
}

impl Tier {
    pub fn to_json(&self, tokens: usize) -> Value {
        json!({
            "owners": self.owners,
            "tokens_per_owner": tokens,
            "values_tracked": self.owners * (tokens + 1),
            "initial_load_seconds": round(self.load_seconds),
            "no_owner_touched": self.idle.to_json(),
            "owners_touched": self.busy.to_json(),
            "touched_per_block": TOUCHED.min(self.owners),
            "poller_rss_mib": round(self.rss_mib),
            "poller_peak_rss_mib": round(self.hwm_mib),
        })
    }
}

/// Grows the tracked owners to each of `sizes` in turn and measures blocks at each.
pub async fn tiers(
    bench: &Bench,
    tokens: &[Address],
    sizes: &[usize],
    blocks: usize,
    owners: &mut Vec<Address>,
) -> anyhow::Result<Vec<Tier>> {
    let mut tiers = vec![];
    for &n in sizes {
        let load_seconds = grow(bench, owners, tokens, n).await?;
        eprintln!("bench: {n} owners loaded in {load_seconds:.1} s");
        let second = Duration::from_secs(1);
        let idle = measure_blocks(bench, owners, tokens, 0, blocks, second).await?;
        let busy = measure_blocks(bench, owners, tokens, TOUCHED.min(n), blocks, second).await?;
        let (rss_mib, hwm_mib) = procfs::memory_mib(procfs::child_pid("poller")?)?;
        eprintln!(
            "bench: {n} owners: {:.2} requests per block idle, {:.2} busy; poller RSS {rss_mib:.0} MiB",
            idle.rpc_per_block(),
            busy.rpc_per_block()
        );
        tiers.push(Tier {
            owners: n,
            idle,
            busy,
            load_seconds,
            rss_mib,
            hwm_mib,
        });
    }
    Ok(tiers)
}

/// Target of the issue: at most 4 requests per block up to 1,000 owners.
pub const TARGET_PER_BLOCK: f64 = 4.0;

/// Requests per block at each tier, against the target.
pub fn report(tiers: &[Tier]) -> Value {
    let rows: Vec<Value> = tiers
        .iter()
        .map(|t| {
            json!({
                "owners": t.owners,
                "no_owner_touched": round(t.idle.rpc_per_block() * 100.0) / 100.0,
                "owners_touched": round(t.busy.rpc_per_block() * 100.0) / 100.0,
                "touched_per_block": TOUCHED.min(t.owners),
            })
        })
        .collect();
    let met = tiers.iter().filter(|t| t.owners <= 1000).all(|t| {
        t.idle.rpc_per_block() <= TARGET_PER_BLOCK && t.busy.rpc_per_block() <= TARGET_PER_BLOCK
    });
    json!({
        "requests_per_block": rows,
        "target": "<= 4 requests per block up to 1,000 owners",
        "met": met,
        "counted_by": "a JSON-RPC proxy between the poller (HTTP and WebSocket) and anvil; batch elements count one each",
    })
}
