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

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use e2e::fresh_owner;
use futures::{StreamExt, TryStreamExt};
use live_balances::config::DEFAULT_SPENDER;
use live_balances::domain::address::lower;
use live_balances::domain::model::BalanceKey;
use live_balances::storage::keys;
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
/// How many blocks before the set-up's block its sessions' values count as read: more than
/// the poller's catch-up margin (64 blocks), so its start-up catches up on none of them.
const SESSION_AGE_BLOCKS: u64 = 100;
/// Wallets whose items the set-up builds and writes at a time.
const SETUP_WALLETS_PER_BATCH: usize = 5_000;
/// Table writes of the set-up in flight at once.
const SETUP_CONCURRENCY: usize = 64;

/// Node requests a block with call traces, at every size.
pub const TARGET_RPC_PER_BLOCK: f64 = 4.0;

/// What the poller is held to at one size, in the runs of the modes named.
struct SizeTarget {
    wallets: usize,
    /// The modes whose runs answer for the size.
    modes: &'static [&'static str],
    rss_mb: f64,
    cpu_ms_per_idle_block: f64,
    /// Seconds to the first block processed after the start.
    startup_seconds: Option<f64>,
}

/// 10,000 wallets in the debug build (`make build`), 100,000 in the release build's code
/// (what is deployed, or the `profiling` build of it).
const SIZE_TARGETS: [SizeTarget; 2] = [
    SizeTarget {
        wallets: 10_000,
        modes: &["traces"],
        rss_mb: 150.0,
        cpu_ms_per_idle_block: 20.0,
        startup_seconds: None,
    },
    SizeTarget {
        wallets: 100_000,
        modes: &["traces-release", "traces-profiling"],
        rss_mb: 1_000.0,
        cpu_ms_per_idle_block: 20.0,
        startup_seconds: Some(60.0),
    },
];

impl SizeTarget {
    /// Each measured run of the size's modes against the targets (none measured: absent).
    fn judge(&self, tiers: &[Tier]) -> Option<Value> {
        let tier = tiers.iter().find(|t| t.wallets == self.wallets)?;
        let runs: Vec<Value> = tier
            .runs
            .iter()
            .filter(|r| self.modes.contains(&r.mode))
            .map(|r| {
                let cpu = r.idle_cpu();
                json!({
                    "mode": r.mode,
                    "rss": mb(r.hwm_mib) <= self.rss_mb,
                    "cpu_per_idle_block": cpu.average_ms(1.0) <= self.cpu_ms_per_idle_block
                        && cpu.average_ms(12.0) <= self.cpu_ms_per_idle_block,
                    "startup": self.startup_seconds.map(|s| r.startup_seconds <= s),
                })
            })
            .collect();
        (!runs.is_empty()).then(|| {
            json!({
                "wallets": self.wallets,
                "targets": {
                    "modes": self.modes,
                    "rss_mb": self.rss_mb,
                    "cpu_ms_per_idle_block": self.cpu_ms_per_idle_block,
                    "startup_seconds": self.startup_seconds,
                },
                "runs": runs,
            })
        })
    }
}

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
    /// From the start until every listed wallet's values were learned (in the background).
    pub learned_seconds: f64,
    /// What the start-up cost the table (the listing of every session and the learning of
    /// every wallet's values).
    pub startup_db: Counts,
    pub idle_1s: BlockCost,
    pub busy_1s: Option<BlockCost>,
    pub idle_12s: BlockCost,
    /// Idle 1 s blocks again, after the 12 s ones: the same poller minutes later (one window
    /// alone moved by half between runs of the same code).
    pub idle_1s_again: BlockCost,
    pub rss_mib: f64,
    pub hwm_mib: f64,
    pub rss_after_startup_mib: f64,
}

pub struct Tier {
    pub wallets: usize,
    pub held_values: usize,
    pub setup_seconds: f64,
    pub runs: Vec<ModeRun>,
    /// Session churn beside the traced runs (at the sizes asked for).
    pub churn: Vec<crate::churn::ChurnRun>,
}

/// Where session churn is measured, and for how many 1 s blocks.
#[derive(Debug, Clone)]
pub struct Churn {
    pub sizes: Vec<usize>,
    pub blocks: usize,
}

/// Poller runs measured: `NATIVE_BALANCES` value, label, build profile. The release build
/// (what is deployed) is measured when `cargo build --release -p poller` has built it; the
/// `profiling` build (release with symbols, `cargo build --profile profiling -p poller`) when
/// it exists, for `perf` to attach to.
const MODES: [(&str, &str, &str); 4] = [
    ("auto", "traces", "debug"),
    ("reads", "reads", "debug"),
    ("auto", "traces-release", "release"),
    ("auto", "traces-profiling", "profiling"),
];

/// `only_modes`: the labels of [`MODES`] to measure (all when empty).
pub async fn run(
    sizes: &[usize],
    windows: Windows,
    churn: &Churn,
    only_modes: &[String],
) -> anyhow::Result<Vec<Tier>> {
    let bench = Bench::start(
        "scale",
        vec![
            // Sessions the set-up writes outlive any run.
            ("SESSION_TTL_SECS".into(), "86400".into()),
            ("MAX_SESSIONS_PER_CHAIN".into(), "1000000".into()),
            // The churn's writes all come from this machine.
            (
                "SESSION_WRITES_PER_SOURCE_PER_MINUTE".into(),
                "1000000".into(),
            ),
        ],
    )
    .await?;
    bench.env.stack.stop_service("pump")?;
    bench.env.stack.stop_service("pump-webhooks")?;
    // The set-up's sessions are written as if long before the poller's start (more blocks
    // back than its catch-up margin): a steady population, not one written a moment ago.
    bench
        .env
        .rpc("anvil_mine", json!([SESSION_AGE_BLOCKS + 20]))
        .await?;
    let deployed = bench.deploy_tokens(DEPLOYED).await?;
    let list = bench.token_list("scale", &deployed, LIST_TOKENS).await?;
    let mut wallets: Vec<(Address, Vec<(Address, U256)>)> = vec![];
    let first = fresh_owner();
    let held = holdings(&list);
    crate::tokens::set_balances(bench.env, &as_storage(first, &held)).await?;
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
        let mut churns = vec![];
        for (setting, mode, profile) in MODES {
            if !only_modes.is_empty() && !only_modes.iter().any(|m| m == mode) {
                continue;
            }
            let binary = local_stack::tools::Tools::locate()?.workspace_bin_of(profile, "poller");
            if !binary.exists() {
                eprintln!(
                    "bench: no {} (cargo build --release -p poller): {mode} not measured",
                    binary.display()
                );
                continue;
            }
            let run =
                measure_mode(&bench, (setting, mode, profile), &load, &wallets, windows).await?;
            let cpu = run.idle_cpu();
            eprintln!(
                "bench: {size} wallets, {mode}: start-up {:.1} s (every wallet learned {:.1} s), RPC/block {:.2} (1 s) {:.2} (12 s), CPU per idle block {:.1} ms (1 s) {:.1} ms (12 s) {:.1} ms (1 s again), RSS {:.0} MiB (peak {:.0})",
                run.startup_seconds,
                run.learned_seconds,
                run.idle_1s.rpc_per_block(),
                run.idle_12s.rpc_per_block(),
                cpu.block_1s_ms,
                cpu.block_12s_ms,
                cpu.block_1s_again_ms,
                run.rss_mib,
                run.hwm_mib,
            );
            if setting == "auto" && churn.sizes.contains(&size) {
                let old: Vec<Address> = wallets.iter().map(|(o, _)| *o).collect();
                let measured = crate::churn::run(
                    &bench,
                    mode,
                    &list,
                    &deployed,
                    &old,
                    churn.blocks,
                    [&run.idle_1s, &run.idle_1s_again],
                )
                .await?;
                eprintln!(
                    "bench: {size} wallets, {mode}, churn: {}",
                    measured.to_json()
                );
                churns.push(measured);
            }
            runs.push(run);
        }
        tiers.push(Tier {
            wallets: size,
            held_values: size * HELD,
            setup_seconds,
            runs,
            churn: churns,
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
/// session (revision 1, complete, values read at the current block) and the non-zero values
/// (each a first read, written once); and sets the same balances on chain. Straight into the
/// table with batch writes, the poller stopped: at 100,000 wallets that is 2,100,000 items,
/// which one conditional write each would take most of an hour to set up on DynamoDB Local.
async fn write_wallets(
    bench: &Bench,
    list: &BenchList,
    generation: u64,
    wallets: &[(Address, Vec<(Address, U256)>)],
) -> anyhow::Result<()> {
    if wallets.is_empty() {
        return Ok(());
    }
    let t0 = Instant::now();
    for chunk in wallets.chunks(10_000) {
        let storage: Vec<(Address, Address, U256)> = chunk
            .iter()
            .flat_map(|(owner, held)| as_storage(*owner, held))
            .collect();
        crate::tokens::set_balances(bench.env, &storage).await?;
    }
    let chain_s = t0.elapsed().as_secs_f64();
    let table = bench.env.stack.table().await;
    let chain_id = bench.chain_id();
    let block = bench
        .block_number()
        .await?
        .saturating_sub(SESSION_AGE_BLOCKS);
    let now = live_balances::runtime::clock::unix_now();
    let n = |v: u64| AttributeValue::N(v.to_string());
    let s = |v: String| AttributeValue::S(v);
    let session = |owner: &Address| {
        HashMap::from([
            ("pk".to_string(), s(keys::session_pk(chain_id))),
            ("sk".to_string(), s(keys::session_sk(owner))),
            ("chain_id".to_string(), n(chain_id)),
            ("owner".to_string(), s(lower(owner))),
            (
                "spenders".to_string(),
                AttributeValue::Ss(vec![lower(&DEFAULT_SPENDER)]),
            ),
            (
                "lists".to_string(),
                AttributeValue::M(HashMap::from([(list.url.clone(), n(generation))])),
            ),
            ("discover".to_string(), AttributeValue::Bool(false)),
            ("read_block".to_string(), n(block)),
            ("revision".to_string(), n(1)),
            ("complete_revision".to_string(), n(1)),
            ("created_at".to_string(), n(now)),
            ("expires_at".to_string(), n(now + 86_400)),
            ("ttl".to_string(), n(now + 86_400)),
        ])
    };
    for chunk in wallets.chunks(SETUP_WALLETS_PER_BATCH) {
        put_items(&table, chunk.iter().map(|(o, _)| session(o)).collect()).await?;
    }
    let sessions_s = t0.elapsed().as_secs_f64() - chain_s;
    let mut count = 0;
    // A few thousand wallets' items at a time: 2,000,000 items built at once would take
    // gigabytes of this process's memory.
    for chunk in wallets.chunks(SETUP_WALLETS_PER_BATCH) {
        let values: Vec<HashMap<String, AttributeValue>> = chunk
            .iter()
            .flat_map(|(owner, held)| {
                held.iter().map(move |(token, amount)| {
                    HashMap::from([
                        ("pk".to_string(), s(keys::balance_pk(chain_id, owner))),
                        (
                            "sk".to_string(),
                            s(keys::balance_sk(&BalanceKey::Balance { token: *token })),
                        ),
                        ("chain_id".to_string(), n(chain_id)),
                        ("owner".to_string(), s(lower(owner))),
                        ("token".to_string(), s(lower(token))),
                        ("read".to_string(), s(amount.to_string())),
                        ("block".to_string(), n(block)),
                        ("updated_at".to_string(), n(now)),
                        ("version".to_string(), n(1)),
                        ("first".to_string(), AttributeValue::Bool(true)),
                    ])
                })
            })
            .collect();
        count += values.len();
        put_items(&table, values).await?;
    }
    eprintln!(
        "bench: set-up of {} wallets: balances in storage {chain_s:.1} s, sessions {sessions_s:.1} s, {count} values {:.1} s",
        wallets.len(),
        t0.elapsed().as_secs_f64() - chain_s - sessions_s
    );
    Ok(())
}

/// Puts `items` with batch writes (25 an request, `SETUP_CONCURRENCY` requests at once),
/// sending again what DynamoDB leaves unprocessed.
async fn put_items(
    table: &live_balances::storage::Table,
    items: Vec<HashMap<String, AttributeValue>>,
) -> anyhow::Result<()> {
    let batches: Vec<Vec<HashMap<String, AttributeValue>>> =
        items.chunks(25).map(<[_]>::to_vec).collect();
    futures::stream::iter(batches)
        .map(|batch| async move {
            let mut requests: Vec<WriteRequest> = batch
                .into_iter()
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(item)).build()?;
                    anyhow::Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, _>>()?;
            for _ in 0..20 {
                let out = table
                    .client()
                    .batch_write_item()
                    .request_items(table.name(), requests)
                    .send()
                    .await?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table.name()))
                    .unwrap_or_default();
                if requests.is_empty() {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::bail!("a set-up batch stayed unprocessed")
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Starts a poller in `setting` on the wallets in the table and measures it.
async fn measure_mode(
    bench: &Bench,
    (setting, mode, profile): (&str, &'static str, &str),
    load: &BlockLoad,
    wallets: &[(Address, Vec<(Address, U256)>)],
    windows: Windows,
) -> anyhow::Result<ModeRun> {
    let db0 = bench.db.counts();
    let started = Instant::now();
    bench
        .start_poller_in(
            profile,
            &[("NATIVE_BALANCES".to_string(), setting.to_string())],
        )
        .await?;
    // Start-up: from the process start until it has processed a block mined after it, which
    // it does once it has listed the sessions (each wallet's values are learned in the
    // background, a wallet a step needs first).
    bench.mine().await?;
    let block = bench.block_number().await?;
    bench
        .poller_settled(block, Duration::from_secs(900))
        .await?;
    let startup_seconds = started.elapsed().as_secs_f64();
    // Measured once the background learning is done (it is no block's cost).
    bench.poller_learned(Duration::from_secs(1800)).await?;
    let learned_seconds = started.elapsed().as_secs_f64();
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
    // Back to 1 s blocks: a few unmeasured while the poller's pace follows the chain's again.
    measure_blocks(bench, load, 3, Duration::from_secs(1)).await?;
    let idle_1s_again =
        measure_blocks(bench, load, windows.fast_blocks, Duration::from_secs(1)).await?;
    let (rss_mib, hwm_mib) = procfs::memory_mib(pid)?;
    Ok(ModeRun {
        mode,
        native_source,
        startup_seconds,
        learned_seconds,
        startup_db,
        idle_1s,
        busy_1s,
        idle_12s,
        idle_1s_again,
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
    /// The 1 s blocks measured again after the 12 s ones.
    pub block_1s_again_ms: f64,
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
            block_1s_again_ms: self.idle_1s_again.cpu_ms_per_block(),
        }
    }

    fn to_json(&self, wallets: usize) -> Value {
        let cpu = self.idle_cpu();
        json!({
            "mode": self.mode,
            "native_source": self.native_source,
            "startup_seconds": round(self.startup_seconds),
            "every_wallet_learned_seconds": round(self.learned_seconds),
            "startup_table": total(&self.startup_db),
            "idle_1s_blocks": self.idle_1s.to_json(),
            "cpu_ms_per_idle_block": {
                "1s_blocks": round(cpu.block_1s_ms),
                "12s_blocks": round(cpu.block_12s_ms),
                "1s_blocks_again": round(cpu.block_1s_again_ms),
            },
            "idle_1s_blocks_again": self.idle_1s_again.to_json(),
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
                "churn": t.churn.iter().map(crate::churn::ChurnRun::to_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let rpc_met = tiers.iter().filter_map(traces).all(|r| {
        r.idle_1s.rpc_per_block() <= TARGET_RPC_PER_BLOCK
            && r.idle_12s.rpc_per_block() <= TARGET_RPC_PER_BLOCK
    });
    json!({
        "list_tokens": LIST_TOKENS,
        "held_per_wallet": HELD,
        "background_transfers_per_block": BACKGROUND_TRANSFERS,
        "touched_per_busy_block": TOUCHED,
        "tiers": rows,
        "targets": { "rpc_per_block_with_traces": TARGET_RPC_PER_BLOCK },
        "met": {
            "rpc_per_block_with_traces": rpc_met,
            "by_size": SIZE_TARGETS.iter().filter_map(|t| t.judge(tiers)).collect::<Vec<_>>(),
        },
        "setup": "first wallet through the api (the list fetched and stored), the others written straight into the table (sessions following the list at its stored generation, revision complete; 20 values each through Table::put_balance) and into the tokens' storage; poller stopped while writing, pump stopped for the section",
        "counted_by": "JSON-RPC proxy between the poller and anvil (batch elements one each); DynamoDB proxy between the poller and DynamoDB Local; CPU from /proc/<poller>/stat utime+stime over the window",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `mode` whose idle blocks cost `cpu_ms` each, at `hwm_mib` and `startup_seconds`.
    fn run(mode: &'static str, cpu_ms: f64, hwm_mib: f64, startup_seconds: f64) -> ModeRun {
        let blocks = |seconds| BlockCost {
            blocks: 10,
            cpu_seconds: cpu_ms / 100.0,
            seconds,
            ..BlockCost::default()
        };
        ModeRun {
            mode,
            native_source: "call_tracer".into(),
            startup_seconds,
            learned_seconds: startup_seconds,
            startup_db: Counts::default(),
            idle_1s: blocks(10.0),
            busy_1s: None,
            idle_12s: blocks(120.0),
            idle_1s_again: blocks(10.0),
            rss_mib: hwm_mib,
            hwm_mib,
            rss_after_startup_mib: hwm_mib,
        }
    }

    fn tier(wallets: usize, runs: Vec<ModeRun>) -> Tier {
        Tier {
            wallets,
            held_values: wallets * 20,
            setup_seconds: 1.0,
            runs,
            churn: vec![],
        }
    }

    #[test]
    fn each_size_is_judged_by_its_own_targets_in_the_runs_of_its_own_modes() {
        let [small, large] = &SIZE_TARGETS;
        // 100,000 wallets: the debug run is not judged; the release code meets its targets,
        // the profiling run misses the memory and start-up ones.
        let tiers = [
            tier(10_000, vec![run("traces", 12.0, 140.0, 1.5)]),
            tier(
                100_000,
                vec![
                    run("traces", 21.0, 534.0, 11.5),
                    run("traces-release", 7.0, 535.0, 9.8),
                    run("traces-profiling", 19.0, 1_100.0, 61.0),
                ],
            ),
        ];
        let judged = large.judge(&tiers).expect("100,000 wallets measured");
        assert_eq!(judged["wallets"], 100_000);
        assert_eq!(
            judged["runs"],
            json!([
                {"mode": "traces-release", "rss": true, "cpu_per_idle_block": true, "startup": true},
                {"mode": "traces-profiling", "rss": false, "cpu_per_idle_block": true, "startup": false},
            ])
        );
        // 10,000 wallets in the debug build, with no start-up target.
        let judged = small.judge(&tiers).expect("10,000 wallets measured");
        assert_eq!(
            judged["runs"],
            json!([{"mode": "traces", "rss": true, "cpu_per_idle_block": true, "startup": null}])
        );
    }

    #[test]
    fn a_size_not_measured_or_measured_in_other_modes_is_not_judged() {
        let [small, large] = &SIZE_TARGETS;
        let tiers = [tier(100_000, vec![run("traces", 21.0, 534.0, 11.5)])];
        assert_eq!(small.judge(&tiers), None);
        assert_eq!(large.judge(&tiers), None);
    }

    #[test]
    fn a_twelve_second_block_over_the_cpu_target_misses_it() {
        let [small, _] = &SIZE_TARGETS;
        let mut slow = run("traces", 12.0, 140.0, 1.5);
        slow.idle_12s.cpu_seconds = 2.5; // 250 ms over 10 blocks
        let judged = small.judge(&[tier(10_000, vec![slow])]).expect("measured");
        assert_eq!(judged["runs"][0]["cpu_per_idle_block"], false);
    }
}
