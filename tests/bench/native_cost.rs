//! What finding native balance changes costs the node per block, in the units providers bill
//! (Alchemy's compute units, `live_balances::chain::ALCHEMY_UNITS`), at 1, 1,000 and 10,000
//! watched wallets, with and without open streams, in each `NATIVE_BALANCES` mode: `traces` (a
//! trace every block — what `auto` did on a node with traces before it weighed costs), `auto`
//! (the cheaper way each step) and `reads`.
//!
//! Runs on its own stack. Each size and stream state gets fresh wallets: sessions of one
//! custom token written straight into the table (values all zero, so nothing to sweep), with
//! `streaming_until` a day ahead for "streamed" — as an open stream's keep-alive leaves a
//! session — or 0. The poller is started on them in each mode; every measured block carries
//! background traffic touching no watched wallet (token and ETH transfers between strangers),
//! so the requests counted are what watching costs while nothing watched changes. Beside each
//! measured figure, the cost model the poller chooses by (`NativeCost`) gives the 12 s-block
//! figure: with 12 s blocks the unstreamed wallets' periodic reads are 12 times larger a block.

use std::time::Duration;

use alloy::primitives::Address;
use e2e::fresh_owner;
use futures::{StreamExt, TryStreamExt};
use live_balances::chain::{ALCHEMY_UNITS, NativeCost, NativeSource};
use live_balances::domain::model::Session;
use serde_json::{Value, json};

use crate::context::Bench;
use crate::rpc_cost::{BlockCost, BlockLoad, measure_blocks};

/// Background transfers between strangers in every measured block.
const BACKGROUND_TRANSFERS: usize = 10;
/// `NATIVE_POLL_SECS` (the default) and `MULTICALL_CHUNK` (the default).
const NATIVE_POLL_SECS: f64 = 60.0;
const CHUNK: usize = 1000;
/// Modes measured: `NATIVE_BALANCES` value.
const MODES: [&str; 3] = ["traces", "auto", "reads"];

/// One mode at one size and stream state.
pub struct NativeRun {
    pub wallets: usize,
    pub streamed: bool,
    pub mode: &'static str,
    /// The way the poller's last step found native changes (`/health`).
    pub native_source: String,
    pub blocks: BlockCost,
}

impl NativeRun {
    fn to_json(&self) -> Value {
        let streamed = if self.streamed { self.wallets } else { 0 };
        let model = |block_secs: f64| {
            let cost = NativeCost {
                blocks: 1,
                blocks_with_withdrawals: 0,
                streamed,
                wallets: self.wallets,
                polled: ((self.wallets - streamed) as f64 * block_secs / NATIVE_POLL_SECS).ceil()
                    as usize,
                other_reads: 0,
                chunk: CHUNK,
            };
            let [(_, trace), (_, reads), _] = cost.units(&ALCHEMY_UNITS, NativeSource::CallTracer);
            let trace = trace.unwrap_or_default();
            let reads = reads.unwrap_or_default();
            let chosen = match self.mode {
                "traces" => trace,
                "reads" => reads,
                _ => cost.cheapest(&ALCHEMY_UNITS, NativeSource::CallTracer).1,
            };
            json!({"block_seconds": block_secs, "native_units": chosen})
        };
        json!({
            "wallets": self.wallets,
            "streamed": self.streamed,
            "mode": self.mode,
            "native_source": self.native_source,
            "measured_1s_blocks": self.blocks.to_json(),
            "model_native_units": [model(1.0), model(12.0)],
        })
    }
}

pub async fn run(sizes: &[usize], blocks: usize) -> anyhow::Result<Vec<NativeRun>> {
    let bench = Bench::start(
        "native",
        vec![("MAX_SESSIONS_PER_CHAIN".into(), "100000".into())],
    )
    .await?;
    // The fanout is not the node's cost.
    bench.env.stack.stop_service("pump")?;
    bench.env.stack.stop_service("pump-webhooks")?;
    let tokens = bench.deploy_tokens(4).await?;
    let load = BlockLoad {
        background: BACKGROUND_TRANSFERS,
        tokens: tokens.clone(),
        owners: vec![],
        touched: 0,
    };
    let mut runs = vec![];
    let mut previous: Vec<Address> = vec![];
    for &size in sizes {
        for streamed in [false, true] {
            bench.stop_poller()?;
            bench.delete_sessions(&previous).await?;
            let owners: Vec<Address> = (0..size).map(|_| fresh_owner()).collect();
            write_sessions(&bench, &owners, tokens[0], streamed).await?;
            previous = owners;
            for mode in MODES {
                bench
                    .start_poller_in(
                        "debug",
                        &[("NATIVE_BALANCES".to_string(), mode.to_string())],
                    )
                    .await?;
                bench.mine().await?;
                let block = bench.block_number().await?;
                bench
                    .poller_settled(block, Duration::from_secs(900))
                    .await?;
                // Unmeasured: the first steps read the new wallets' values.
                measure_blocks(&bench, &load, 3, Duration::from_secs(1)).await?;
                let cost = measure_blocks(&bench, &load, blocks, Duration::from_secs(1)).await?;
                let health = bench.poller_health().await?;
                let native_source = health["chains"][0]["nativeSource"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string();
                eprintln!(
                    "bench: native {size} wallets, streamed {streamed}, {mode}: {:.1} units a block ({:.2} requests), found by {native_source}",
                    cost.units_per_block(),
                    cost.rpc_per_block()
                );
                runs.push(NativeRun {
                    wallets: size,
                    streamed,
                    mode,
                    native_source,
                    blocks: cost,
                });
            }
        }
    }
    bench.stop();
    Ok(runs)
}

/// Sessions of `token` for `owners`, straight into the table; `streamed` as an open stream's
/// keep-alive leaves them.
async fn write_sessions(
    bench: &Bench,
    owners: &[Address],
    token: Address,
    streamed: bool,
) -> anyhow::Result<()> {
    let table = bench.env.stack.table().await;
    let now = live_balances::runtime::clock::unix_now();
    let sessions: Vec<Session> = owners
        .iter()
        .map(|owner| Session {
            asked: live_balances::domain::model::SessionAsks {
                custom_tokens: [token].into(),
                ..Default::default()
            },
            revision: 1,
            expires_at: now + 86_400,
            streaming_until: if streamed { now + 86_400 } else { 0 },
            ..Session::new(bench.chain_id(), *owner, now)
        })
        .collect();
    let chain_id = bench.chain_id();
    futures::stream::iter(&sessions)
        .map(|session| {
            let table = &table;
            async move {
                table.write_session(session, 0, true).await?;
                if streamed {
                    // What an open stream's keep-alive writes (a session write leaves it).
                    table
                        .keep_session_alive(
                            chain_id,
                            &session.owner,
                            now,
                            session.expires_at,
                            Some(session.expires_at),
                        )
                        .await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

pub fn report(runs: &[NativeRun]) -> Value {
    json!({
        "units": "Alchemy compute units (https://www.alchemy.com/docs/reference/compute-unit-costs, read 2026-12-05): eth_call 26, eth_getLogs 60, eth_getBlockByNumber 20, eth_blockNumber 10, debug_traceBlockByNumber 40, trace_block 20",
        "background_transfers_per_block": BACKGROUND_TRANSFERS,
        "runs": runs.iter().map(NativeRun::to_json).collect::<Vec<_>>(),
    })
}
