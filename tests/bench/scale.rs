//! The poller at 1, 1,000 and 10,000 wallets following one 5,000-token list, 20 tokens held
//! each — measured at each size, in both native-balance modes (call traces, and the per-wallet
//! reads a node without traces needs): start-up (learning every wallet), RPC requests, table
//! units and CPU per block with 1 s and 12 s blocks, resident memory.
//!
//! Runs on its own stack. The first wallet's session goes through the api (which fetches and
//! stores the list); the others are written straight into the table as that POST left the
//! first one — following the list by reference at the generation the api stored, revision
//! complete — with their 20 values through `Table::put_balance`, and the same balances set in
//! the tokens' storage, so chain and table agree. The poller is stopped while the set-up
//! writes and started again on it. The pump is stopped for the whole section: the set-up's
//! value writes would otherwise keep the fanout writing feed entries (200,000 at 10,000
//! wallets) into every measurement window; the fanout is not part of the poller's cost, and
//! what a change costs it is measured in the fan-out section.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::fresh_owner;
use futures::{StreamExt, TryStreamExt};
use live_balances::address::lower;
use live_balances::config::DEFAULT_SPENDER;
use live_balances::model::{BalanceItem, BalanceKey, Session, TokenRead};
use live_balances::storage::ValueWrite;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::procfs;
use crate::proxy::{Counts, since, total};
use crate::rpc_cost::{BlockCost, BlockLoad, measure_blocks};
use crate::stats::round;
use crate::tokens::BenchList;

/// Tokens of the list each wallet holds.
pub const HELD: usize = 20;
const LIST_TOKENS: usize = 5000;
/// Deployed tokens of the list (the rest are code copies): the actor holds them, so the
/// blocks' transfers use them.
const DEPLOYED: usize = 20;
/// Transfers between strangers in every measured block.
const BACKGROUND_TRANSFERS: usize = 10;
/// Watched wallets touched in a busy block.
pub const TOUCHED: usize = 20;
/// Table writes of the set-up in flight at once.
const SETUP_CONCURRENCY: usize = 64;

/// Targets of issue 14.
pub const TARGET_RPC_PER_BLOCK: f64 = 4.0;
pub const TARGET_RSS_MB: f64 = 150.0;
pub const TARGET_CPU_MS: f64 = 20.0;

/// How many blocks each window measures.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub fast_blocks: usize,
    pub slow_blocks: usize,
    pub busy_blocks: usize,
}

/// One poller run at one size in one mode.
pub struct ModeRun {
    pub mode: &'static str,
    pub native_source: String,
    pub startup_seconds: f64,
    /// What the start-up cost the table (the listing of every session and the learning of
    /// every wallet's values).
    pub startup_db: Counts,
    pub idle_1s: BlockCost,
    pub busy_1s: Option<BlockCost>,
    pub idle_12s: BlockCost,
    pub rss_mib: f64,
    pub hwm_mib: f64,
    pub rss_after_startup_mib: f64,
}

pub struct Tier {
    pub wallets: usize,
    pub held_values: usize,
    pub setup_seconds: f64,
    pub runs: Vec<ModeRun>,
}

/// Poller modes measured: `NATIVE_BALANCES` value and its label.
const MODES: [(&str, &str); 2] = [("auto", "traces"), ("reads", "reads")];

pub async fn run(sizes: &[usize], windows: Windows) -> anyhow::Result<Vec<Tier>> {
    let bench = Bench::start(
        "scale",
        vec![
            // Sessions the set-up writes outlive any run.
            ("SESSION_TTL_SECS".into(), "86400".into()),
            ("MAX_SESSIONS_PER_CHAIN".into(), "100000".into()),
        ],
    )
    .await?;
    bench.env.stack.stop_service("pump")?;
    bench.env.stack.stop_service("pump-webhooks")?;
    let deployed = bench.deploy_tokens(DEPLOYED).await?;
    let list = bench.token_list("scale", &deployed, LIST_TOKENS).await?;
    let mut wallets: Vec<(Address, Vec<(Address, U256)>)> = vec![];
    let first = fresh_owner();
    let held = holdings(&list);
    bench.set_balances(&as_storage(first, &held)).await?;
    bench
        .env
        .watch(
            &lower(&first),
            &json!({ "tokensListsUrls": [list.url] }).to_string(),
        )
        .await?;
    wallets.push((first, held));
    let table = bench.env.stack.table().await;
    let generation = table
        .list_head(bench.chain_id(), &list.url)
        .await?
        .map(|h| h.generation)
        .ok_or_else(|| anyhow::anyhow!("the api did not store the list"))?;
    let load = BlockLoad {
        background: BACKGROUND_TRANSFERS,
        tokens: deployed.clone(),
        owners: vec![],
        touched: 0,
    };
    let mut tiers = vec![];
    for &size in sizes {
        bench.stop_poller()?;
        let started = Instant::now();
        let fresh: Vec<(Address, Vec<(Address, U256)>)> = (wallets.len()..size)
            .map(|_| (fresh_owner(), holdings(&list)))
            .collect();
        write_wallets(&bench, &list, generation, &fresh).await?;
        wallets.extend(fresh);
        let setup_seconds = started.elapsed().as_secs_f64();
        eprintln!("bench: scale set-up at {size} wallets took {setup_seconds:.0} s");
        let mut runs = vec![];
        for (setting, mode) in MODES {
            let run = measure_mode(&bench, setting, mode, &load, &wallets, windows).await?;
            let cpu = run.idle_cpu();
            eprintln!(
                "bench: {size} wallets, {mode}: start-up {:.1} s, RPC/block {:.2} (1 s) {:.2} (12 s), CPU per idle block {:.1} ms (1 s) {:.1} ms (12 s), RSS {:.0} MiB (peak {:.0})",
                run.startup_seconds,
                run.idle_1s.rpc_per_block(),
                run.idle_12s.rpc_per_block(),
                cpu.block_1s_ms,
                cpu.block_12s_ms,
                run.rss_mib,
                run.hwm_mib,
            );
            runs.push(run);
        }
        tiers.push(Tier {
            wallets: size,
            held_values: size * HELD,
            setup_seconds,
            runs,
        });
    }
    bench.stop();
    Ok(tiers)
}

/// 20 tokens of the list and an amount of each.
fn holdings(list: &BenchList) -> Vec<(Address, U256)> {
    list.tokens
        .choose_multiple(&mut rand::rng(), HELD)
        .enumerate()
        .map(|(i, t)| (*t, U256::from(1_000_000 + i as u64)))
        .collect()
}

fn as_storage(owner: Address, held: &[(Address, U256)]) -> Vec<(Address, Address, U256)> {
    held.iter().map(|(t, v)| (*t, owner, *v)).collect()
}

/// Writes wallets as the api's POST of a session following the list leaves them: the
/// session (revision 1, complete, values read at the current block) and the non-zero values;
/// and sets the same balances on chain.
async fn write_wallets(
    bench: &Bench,
    list: &BenchList,
    generation: u64,
    wallets: &[(Address, Vec<(Address, U256)>)],
) -> anyhow::Result<()> {
    if wallets.is_empty() {
        return Ok(());
    }
    let storage: Vec<(Address, Address, U256)> = wallets
        .iter()
        .flat_map(|(owner, held)| as_storage(*owner, held))
        .collect();
    let t0 = Instant::now();
    bench.set_balances(&storage).await?;
    let chain_s = t0.elapsed().as_secs_f64();
    let table = bench.env.stack.table().await;
    let chain_id = bench.chain_id();
    let block = bench.block_number().await?;
    let now = live_balances::clock::unix_now();
    let table = &table;
    futures::stream::iter(wallets)
        .map(|(owner, _)| {
            let session = Session {
                spenders: [DEFAULT_SPENDER].into(),
                token_lists: BTreeMap::from([(list.url.clone(), generation)]),
                read_block: block,
                revision: 1,
                expires_at: now + 86_400,
                ..Session::new(chain_id, *owner, now)
            };
            async move {
                anyhow::ensure!(
                    table.write_session(&session, 0, true).await?,
                    "session of {owner} not written"
                );
                table.complete_session(chain_id, owner, 1).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let sessions_s = t0.elapsed().as_secs_f64() - chain_s;
    let how = ValueWrite {
        first_read: true,
        rewound_above: None,
        tombstone_expires_at: now + 86_400,
    };
    let items: Vec<BalanceItem> = wallets
        .iter()
        .flat_map(|(owner, held)| {
            held.iter().map(move |(token, amount)| BalanceItem {
                chain_id,
                owner: *owner,
                key: BalanceKey::Balance { token: *token },
                read: TokenRead::Value(*amount),
                block,
                tx_hash: None,
            })
        })
        .collect();
    futures::stream::iter(&items)
        .map(|item| async move { table.put_balance(item, now, how).await })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!(
        "bench: set-up of {} wallets: balances in storage {chain_s:.1} s, sessions {sessions_s:.1} s, {} values {:.1} s",
        wallets.len(),
        items.len(),
        t0.elapsed().as_secs_f64() - chain_s - sessions_s
    );
    Ok(())
}

/// Starts a poller in `setting` on the wallets in the table and measures it.
async fn measure_mode(
    bench: &Bench,
    setting: &str,
    mode: &'static str,
    load: &BlockLoad,
    wallets: &[(Address, Vec<(Address, U256)>)],
    windows: Windows,
) -> anyhow::Result<ModeRun> {
    let db0 = bench.db.counts();
    let started = Instant::now();
    bench
        .start_poller(&[("NATIVE_BALANCES".to_string(), setting.to_string())])
        .await?;
    // Start-up: from the process start until it has processed a block mined after it, which
    // it does only once it has loaded the sessions and learned every wallet's values.
    bench.mine().await?;
    let block = bench.block_number().await?;
    bench
        .poller_settled(block, Duration::from_secs(900))
        .await?;
    let startup_seconds = started.elapsed().as_secs_f64();
    let startup_db = since(&bench.db.counts(), &db0);
    let pid = procfs::child_pid("poller")?;
    let (rss_after_startup_mib, _) = procfs::memory_mib(pid)?;
    let health = bench.poller_health().await?;
    let native_source = health["chains"][0]["nativeSource"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    // Unmeasured blocks: the first steps catch up on the start-up time (the sweeps' share
    // of it, the learned wallets' catch-up), which no steady block does.
    measure_blocks(bench, load, 3, Duration::from_secs(1)).await?;
    let idle_1s = measure_blocks(bench, load, windows.fast_blocks, Duration::from_secs(1)).await?;
    let busy_1s = if windows.busy_blocks > 0 {
        let busy = BlockLoad {
            owners: wallets.iter().map(|(o, _)| *o).collect(),
            touched: TOUCHED.min(wallets.len()),
            ..load.clone()
        };
        Some(measure_blocks(bench, &busy, windows.busy_blocks, Duration::from_secs(1)).await?)
    } else {
        None
    };
    // One unmeasured 12 s block first: the poller's safety-net head check follows the chain's
    // pace (twice the last gap between announced heads), so the first block after the 1 s
    // windows sets it off once — a change of pace, which a chain of steady 12 s blocks never has.
    measure_blocks(bench, load, 1, Duration::from_secs(12)).await?;
    let idle_12s =
        measure_blocks(bench, load, windows.slow_blocks, Duration::from_secs(12)).await?;
    let (rss_mib, hwm_mib) = procfs::memory_mib(pid)?;
    Ok(ModeRun {
        mode,
        native_source,
        startup_seconds,
        startup_db,
        idle_1s,
        busy_1s,
        idle_12s,
        rss_mib,
        hwm_mib,
        rss_after_startup_mib,
    })
}

/// MiB of /proc in MB (10^6 bytes), the unit of the target.
fn mb(mib: f64) -> f64 {
    round(mib * 1_048_576.0 / 1e6)
}

/// Table units per tracked wallet-hour at idle, from a mode run: what the measured 12 s idle
/// blocks cost, at 300 blocks an hour. The session log's read and the background pass over
/// the sessions are part of every block (there is no periodic full reload).
pub fn units_per_wallet_hour(run: &ModeRun, wallets: usize) -> Value {
    let block = total(&run.idle_12s.db);
    let blocks = run.idle_12s.blocks as f64;
    let w = wallets as f64;
    let read = block.read_units / blocks * 300.0 / w;
    let write = block.write_units / blocks * 300.0 / w;
    json!({
        "read_units": (read * 1000.0).round() / 1000.0,
        "write_units": (write * 1000.0).round() / 1000.0,
        "per_block": {"read_units": round(block.read_units / blocks), "write_units": round(block.write_units / blocks)},
        "arithmetic": "units per idle 12 s block x 300 blocks/h / wallets (the session log read and the background pass over the sessions included)",
    })
}

/// The poller's CPU per idle block, at 1 s and at 12 s blocks: everything it does while
/// nothing touches a watched wallet (the session log, the background pass, the sweeps).
#[derive(Debug, Clone, Copy)]
pub struct IdleCpu {
    pub block_1s_ms: f64,
    pub block_12s_ms: f64,
}

impl IdleCpu {
    pub fn average_ms(&self, seconds: f64) -> f64 {
        if seconds >= 12.0 {
            self.block_12s_ms
        } else {
            self.block_1s_ms
        }
    }
}

impl ModeRun {
    pub fn idle_cpu(&self) -> IdleCpu {
        IdleCpu {
            block_1s_ms: self.idle_1s.cpu_ms_per_block(),
            block_12s_ms: self.idle_12s.cpu_ms_per_block(),
        }
    }

    fn to_json(&self, wallets: usize) -> Value {
        let cpu = self.idle_cpu();
        json!({
            "mode": self.mode,
            "native_source": self.native_source,
            "startup_seconds": round(self.startup_seconds),
            "startup_table": total(&self.startup_db),
            "idle_1s_blocks": self.idle_1s.to_json(),
            "cpu_ms_per_idle_block": {
                "1s_blocks": round(cpu.block_1s_ms),
                "12s_blocks": round(cpu.block_12s_ms),
            },
            "busy_1s_blocks": self.busy_1s.as_ref().map(BlockCost::to_json),
            "idle_12s_blocks": self.idle_12s.to_json(),
            "rss_mb": mb(self.rss_mib),
            "peak_rss_mb": mb(self.hwm_mib),
            "rss_after_startup_mb": mb(self.rss_after_startup_mib),
            "table_units_per_wallet_hour_idle": units_per_wallet_hour(self, wallets),
        })
    }
}

/// A tier's run with call traces.
pub fn traces(tier: &Tier) -> Option<&ModeRun> {
    tier.runs.iter().find(|r| r.mode == "traces")
}

/// The section's report: per size and mode, against the targets.
pub fn report(tiers: &[Tier]) -> Value {
    let rows: Vec<Value> = tiers
        .iter()
        .map(|t| {
            json!({
                "wallets": t.wallets,
                "held_values": t.held_values,
                "setup_seconds": round(t.setup_seconds),
                "modes": t.runs.iter().map(|r| r.to_json(t.wallets)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let rpc_met = tiers.iter().filter_map(traces).all(|r| {
        r.idle_1s.rpc_per_block() <= TARGET_RPC_PER_BLOCK
            && r.idle_12s.rpc_per_block() <= TARGET_RPC_PER_BLOCK
    });
    let largest = tiers.iter().max_by_key(|t| t.wallets);
    let at_largest = largest.and_then(traces);
    json!({
        "list_tokens": LIST_TOKENS,
        "held_per_wallet": HELD,
        "background_transfers_per_block": BACKGROUND_TRANSFERS,
        "touched_per_busy_block": TOUCHED,
        "tiers": rows,
        "targets": {
            "rpc_per_block_with_traces": TARGET_RPC_PER_BLOCK,
            "rss_mb_at_10000": TARGET_RSS_MB,
            "cpu_ms_per_idle_block_at_10000": TARGET_CPU_MS,
        },
        "met": {
            "rpc_per_block_with_traces": rpc_met,
            "rss": at_largest.map(|r| largest.is_some_and(|t| t.wallets >= 10_000) && mb(r.hwm_mib) <= TARGET_RSS_MB),
            "cpu_per_idle_block": at_largest.map(|r| {
                let cpu = r.idle_cpu();
                cpu.average_ms(1.0) <= TARGET_CPU_MS && cpu.average_ms(12.0) <= TARGET_CPU_MS
            }),
        },
        "setup": "first wallet through the api (the list fetched and stored), the others written straight into the table (sessions following the list at its stored generation, revision complete; 20 values each through Table::put_balance) and into the tokens' storage; poller stopped while writing, pump stopped for the section",
        "counted_by": "JSON-RPC proxy between the poller and anvil (batch elements one each); DynamoDB proxy between the poller and DynamoDB Local; CPU from /proc/<poller>/stat utime+stime over the window",
    })
}
