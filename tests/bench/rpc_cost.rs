//! What a stretch of blocks costs the poller: RPC requests (counted by the proxy between the
//! poller and anvil, not by the poller) and the units a provider would bill for them (Alchemy's
//! compute units, `live_balances::chain::ALCHEMY_UNITS`), table requests and units (the proxy in
//! front of DynamoDB Local), and CPU time (`/proc` utime + stime).
//!
//! Blocks are mined by the bench at a fixed pace, each with background traffic that touches
//! no watched wallet (transfers of listed tokens and ETH between strangers, as every real
//! block has) and optionally transfers to watched wallets.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::fresh_owner;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::procfs;
use crate::proxy::{Counts, merged, since, total};
use crate::stats::{round, two};

/// What a stretch of blocks cost (`Default`: nothing yet, to `add` windows to).
#[derive(Default)]
pub struct BlockCost {
    pub blocks: usize,
    pub rpc: Counts,
    pub db: Counts,
    pub cpu_seconds: f64,
    /// The poller's page faults (pages the kernel had to map, most zeroed first).
    pub page_faults: u64,
    pub seconds: f64,
}

/// What each measured block carries.
#[derive(Debug, Clone, Default)]
pub struct BlockLoad {
    /// Token transfers from the actor to fresh addresses (none watched), and one ETH transfer
    /// when not zero.
    pub background: usize,
    /// Tokens the actor holds, for the transfers.
    pub tokens: Vec<Address>,
    /// Watched wallets, cycled through `touched` a block.
    pub owners: Vec<Address>,
    pub touched: usize,
}

impl BlockCost {
    /// `other`'s blocks counted with these, as one stretch.
    pub fn add(&mut self, other: BlockCost) {
        self.blocks += other.blocks;
        self.rpc = merged(&self.rpc, &other.rpc);
        self.db = merged(&self.db, &other.db);
        self.cpu_seconds += other.cpu_seconds;
        self.page_faults += other.page_faults;
        self.seconds += other.seconds;
    }

    pub fn rpc_per_block(&self) -> f64 {
        total(&self.rpc).requests as f64 / self.blocks as f64
    }

    /// Billed units per block of the RPC requests (WebSocket notifications, billed by
    /// bandwidth alike in every mode, left out).
    pub fn units_per_block(&self) -> f64 {
        let units: u64 = self
            .rpc
            .iter()
            .map(|(method, c)| c.requests * live_balances::chain::ALCHEMY_UNITS.of(method))
            .sum();
        units as f64 / self.blocks as f64
    }

    pub fn cpu_ms_per_block(&self) -> f64 {
        self.cpu_seconds * 1000.0 / self.blocks as f64
    }

    pub fn to_json(&self) -> Value {
        let per_block = |counts: &Counts| -> Value {
            counts
                .iter()
                .map(|(k, c)| {
                    let v = json!({
                        "requests": two(c.requests as f64 / self.blocks as f64),
                        "read_units": two(c.read_units / self.blocks as f64),
                        "write_units": two(c.write_units / self.blocks as f64),
                    });
                    (k.clone(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let db = total(&self.db);
        json!({
            "blocks": self.blocks,
            "rpc_requests_per_block": two(self.rpc_per_block()),
            "billed_units_per_block": two(self.units_per_block()),
            "rpc_by_method_per_block": per_block(&self.rpc),
            "table_read_units_per_block": two(db.read_units / self.blocks as f64),
            "table_write_units_per_block": two(db.write_units / self.blocks as f64),
            "table_by_operation_per_block": per_block(&self.db),
            "poller_cpu_ms_per_block": round(self.cpu_ms_per_block()),
            "poller_page_faults_per_block": round(self.page_faults as f64 / self.blocks as f64),
            "seconds": round(self.seconds),
        })
    }
}

/// The poller's counters when a stretch of blocks began: its node and table requests (the
/// proxies in front of it), its CPU time and its page faults.
pub struct CostMeter {
    pid: u32,
    rpc: Counts,
    db: Counts,
    cpu_seconds: f64,
    page_faults: u64,
    /// When the stretch began.
    pub start: Instant,
}

impl CostMeter {
    pub fn start(bench: &Bench) -> anyhow::Result<Self> {
        let pid = procfs::child_pid("poller")?;
        Ok(Self {
            pid,
            rpc: bench.rpc.counts(),
            db: bench.db.counts(),
            cpu_seconds: procfs::cpu_seconds(pid)?,
            page_faults: procfs::page_faults(pid)?,
            start: Instant::now(),
        })
    }

    /// What the stretch cost until now, over `blocks` blocks.
    pub fn cost(&self, bench: &Bench, blocks: usize) -> anyhow::Result<BlockCost> {
        Ok(BlockCost {
            blocks,
            rpc: since(&bench.rpc.counts(), &self.rpc),
            db: since(&bench.db.counts(), &self.db),
            cpu_seconds: procfs::cpu_seconds(self.pid)? - self.cpu_seconds,
            page_faults: procfs::page_faults(self.pid)?.saturating_sub(self.page_faults),
            seconds: self.start.elapsed().as_secs_f64(),
        })
    }
}

/// Mines `blocks` blocks `every` apart (or as fast as the poller keeps up, if slower), each
/// with `load`, waiting for the poller to process each. Each block comes `every` after the
/// one before (the first `every` after the call), so the window holds `blocks` intervals of
/// the chain's pace with one block each — the sweeps' share of each interval included.
pub async fn measure_blocks(
    bench: &Bench,
    load: &BlockLoad,
    blocks: usize,
    every: Duration,
) -> anyhow::Result<BlockCost> {
    let meter = CostMeter::start(bench)?;
    bench.automine(false).await?;
    let result = async {
        for b in 0..blocks {
            tokio::time::sleep_until(meter.start + every * (b as u32 + 1)).await;
            for i in 0..load.background {
                let token = load.tokens[(b + i) % load.tokens.len()];
                bench.send_transfer(token, fresh_owner(), 1).await?;
            }
            if load.background > 0 {
                bench.send_eth(fresh_owner(), U256::from(1u64)).await?;
            }
            for i in 0..load.touched {
                let owner = load.owners[(b * load.touched + i) % load.owners.len()];
                let token = load.tokens[(b + i) % load.tokens.len()];
                bench.send_transfer(token, owner, 1).await?;
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
    meter.cost(bench, blocks)
}
