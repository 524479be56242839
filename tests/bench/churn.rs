//! Session churn at scale, as a DEX's page loads make it: while 1 s blocks come (each with
//! background traffic touching no watched wallet), 20 session writes a second — half new
//! wallets following the 5,000-token list (each holding 20 of it), half existing wallets
//! adding a token; each new wallet's first transfer is timed for some through the api. Measured: the poller's CPU, RPC requests and table units per block
//! beside its idle figure at the same size, and how fast a transfer reaches its stream for a
//! wallet whose session was just written (its first transfer, in the block after its stream
//! opened) and for an old one, in the same blocks.
//!
//! Runs on the scale section's stack, right after a tier's idle measurement, with the poller
//! of that measurement, and the fanout's pump started for the window from the end of the
//! stream. The new wallets stay (the next tier counts them among its wallets).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, U256};
use e2e::{SseClient, fresh_owner};
use live_balances::config::DEFAULT_SPENDER;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceItem, BalanceKey, Session, SessionAsks, TokenRead};
use live_balances::storage::{Table, ValueWrite};
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::time::Instant;

use crate::context::Bench;
use crate::procfs;
use crate::proxy::{Counts, since, total};
use crate::rpc_cost::BlockCost;
use crate::stats::{round, summary_ms};
use crate::tokens::BenchList;

/// Session writes a second (the churn), half of them new wallets.
pub const WRITES_PER_SECOND: u64 = 20;
/// Requests the writers keep in flight at most; past it a write waits (and the achieved rate
/// says so).
const IN_FLIGHT: usize = 64;
/// Every how many new wallets one opens a stream and gets its first transfer timed.
const PROBE_EVERY: u64 = 10;
/// Old wallets with a stream open for the window, one timed transfer a block among them
/// (enough that one is free in every block while the others wait for theirs).
const OLD_PROBES: usize = 24;
/// Blocks mined after the old wallets' streams open and before the window: each opening asks
/// for a re-read of the wallet's 5,000 tokens, which the poller spreads over a few steps.
const SETTLE_BLOCKS: usize = 15;
/// Transfers between strangers in every block, as in the idle windows.
const BACKGROUND_TRANSFERS: usize = 10;

/// What a churn window measured.
pub struct ChurnRun {
    pub mode: &'static str,
    pub wallets: usize,
    pub blocks: BlockCost,
    pub new_sessions: u64,
    pub grown_sessions: u64,
    pub failed_writes: u64,
    pub write_ms: Vec<f64>,
    pub new_first_transfer_ms: Vec<f64>,
    pub old_transfer_ms: Vec<f64>,
    /// The same poller's idle 1 s blocks at this size.
    pub idle_cpu_ms: f64,
    pub idle_read_units: f64,
}

/// A wallet with a stream, waiting for its timed transfer.
struct Probe {
    owner: Address,
    sse: SseClient,
}

/// Runs `blocks` 1 s blocks of churn on the running poller; `old` are wallets it watches.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    bench: &Bench,
    mode: &'static str,
    list: &BenchList,
    deployed: &[Address],
    old: &[Address],
    blocks: usize,
    idle: &BlockCost,
) -> anyhow::Result<ChurnRun> {
    let token = deployed[0];
    // What a grown session adds: a deployed token of the list, which the wallet tracks
    // already through it (the default) — or, with `BENCH_CHURN_GROW=unlisted`, a token outside
    // the list, deployed here: values the poller starts tracking, learned and caught up on.
    let grow_tokens = match std::env::var("BENCH_CHURN_GROW").as_deref() {
        Ok("unlisted") => bench.deploy_tokens(1).await?,
        Ok("") | Err(_) => deployed.to_vec(),
        Ok(other) => anyhow::bail!("BENCH_CHURN_GROW={other}: expected unlisted or nothing"),
    };
    // The fanout, for the timed transfers' way to their streams — from the end of the stream
    // (the set-up's records are not this window's).
    let stack = &bench.env.stack;
    stack.start_pump_from("pump", &stack.endpoints.fanout_invoke, true)?;
    let measured = measure(
        bench,
        mode,
        list,
        deployed,
        &grow_tokens,
        old,
        blocks,
        idle,
        token,
    )
    .await;
    stack.stop_service("pump")?;
    measured
}

/// The window itself, with the fanout running.
#[allow(clippy::too_many_arguments)]
async fn measure(
    bench: &Bench,
    mode: &'static str,
    list: &BenchList,
    deployed: &[Address],
    grow_tokens: &[Address],
    old: &[Address],
    blocks: usize,
    idle: &BlockCost,
    token: Address,
) -> anyhow::Result<ChurnRun> {
    // Old wallets' streams, open before the window.
    let mut old_probes = vec![];
    for owner in old.choose_multiple(&mut rand::rng(), OLD_PROBES) {
        let mut sse = SseClient::connect(bench.env, &lower(owner), None).await?;
        sse.wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        old_probes.push(Probe { owner: *owner, sse });
    }
    for _ in 0..SETTLE_BLOCKS {
        bench.mine().await?;
        let block = bench.block_number().await?;
        bench
            .poller_settled(block, Duration::from_secs(120))
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Probe>();
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let write_ms = Arc::new(Mutex::new(vec![]));
    let writers = write_sessions(
        bench,
        &list.url,
        &list.tokens,
        grow_tokens,
        old,
        &stop,
        &counters,
        &write_ms,
        ready_tx,
    );
    let pid = procfs::child_pid("poller")?;
    let (rpc0, db0, cpu0) = (
        bench.rpc.counts(),
        bench.db.counts(),
        procfs::cpu_seconds(pid)?,
    );
    eprintln!("bench: churn window of {blocks} blocks starts");
    let start = Instant::now();
    let new_ms = Arc::new(Mutex::new(vec![]));
    let old_ms = Arc::new(Mutex::new(vec![]));
    let mut waiters = vec![];
    bench.automine(false).await?;
    let mined_blocks = async {
        for b in 0..blocks {
            tokio::time::sleep_until(start + Duration::from_secs(b as u64 + 1)).await;
            for i in 0..BACKGROUND_TRANSFERS {
                bench
                    .send_transfer(deployed[(b + i) % deployed.len()], fresh_owner(), 1)
                    .await?;
            }
            bench.send_eth(fresh_owner(), U256::from(1u64)).await?;
            // One new wallet whose stream is open (its first transfer), one old one.
            let new_probe = ready_rx.try_recv().ok();
            let old_probe = old_probes.pop();
            for probe in new_probe.iter().chain(old_probe.iter()) {
                bench.send_transfer(token, probe.owner, 1).await?;
            }
            bench.mine().await?;
            let mined = Instant::now();
            let block_mined = bench.block_number().await?;
            for (probe, into, which) in [
                (new_probe, new_ms.clone(), "new"),
                (old_probe, old_ms.clone(), "old"),
            ] {
                let Some(mut probe) = probe else { continue };
                let wanted = lower(&token);
                waiters.push(tokio::spawn(async move {
                    let got = probe
                        .sse
                        .wait_for("the timed transfer", |e| {
                            e.event == "balance_update" && e.data["address"] == wanted.as_str()
                        })
                        .await;
                    match &got {
                        Ok(_) => into.lock().await.push(mined.elapsed().as_secs_f64() * 1000.0),
                        Err(error) => eprintln!(
                            "bench: churn: the {which} wallet {}'s transfer in block {block_mined} did not reach its stream: {error:#}",
                            lower(&probe.owner)
                        ),
                    }
                    (probe, got.is_ok())
                }));
            }
            let block = bench.block_number().await?;
            bench
                .poller_settled(block, Duration::from_secs(120))
                .await?;
            // Old probes whose transfer arrived take their turn again.
            let mut still = vec![];
            for waiter in std::mem::take(&mut waiters) {
                if waiter.is_finished() {
                    let (probe, ok) = waiter.await?;
                    anyhow::ensure!(ok, "a timed transfer never reached its stream");
                    if old.contains(&probe.owner) {
                        old_probes.insert(0, probe);
                    }
                } else {
                    still.push(waiter);
                }
            }
            waiters = still;
        }
        anyhow::Ok(())
    };
    let mined_blocks = async {
        let result = mined_blocks.await;
        stop.store(true, Ordering::SeqCst);
        result
    };
    let (result, written) = tokio::join!(mined_blocks, writers);
    bench.automine(true).await?;
    let blocks_cost = BlockCost {
        blocks,
        rpc: since(&bench.rpc.counts(), &rpc0),
        db: since(&bench.db.counts(), &db0),
        cpu_seconds: procfs::cpu_seconds(pid)? - cpu0,
        seconds: start.elapsed().as_secs_f64(),
    };
    written?;
    for waiter in waiters {
        let (_, ok) = tokio::time::timeout(Duration::from_secs(30), waiter).await??;
        anyhow::ensure!(ok, "a timed transfer never reached its stream");
    }
    result?;
    let new_first_transfer_ms = new_ms.lock().await.clone();
    let old_transfer_ms = old_ms.lock().await.clone();
    let write_ms = write_ms.lock().await.clone();
    Ok(ChurnRun {
        mode,
        wallets: old.len(),
        blocks: blocks_cost,
        new_sessions: counters[0].load(Ordering::SeqCst),
        grown_sessions: counters[1].load(Ordering::SeqCst),
        failed_writes: counters[2].load(Ordering::SeqCst),
        write_ms,
        new_first_transfer_ms,
        old_transfer_ms,
        idle_cpu_ms: idle.cpu_ms_per_block(),
        idle_read_units: total(&idle.db).read_units / idle.blocks as f64,
    })
}

/// The writers: `WRITES_PER_SECOND` session writes a second, evenly spaced, alternating a new
/// wallet (its holdings set on chain first) and an old one adding one of `grow_tokens`. Every
/// `PROBE_EVERY`th new wallet goes through the api's `POST` and opens its stream, then is
/// handed over for a timed transfer. The others are the api's own table writes made by this
/// process (the session with its log entry in one transaction, its non-zero values, its
/// completion — `routes/sessions.rs` less the chain reads): twenty `POST`s a second of a
/// 5,000-token list, each 10,000 Multicall3 reads, are more than this machine serves beside
/// the stack, and the poller sees exactly the same table either way.
#[allow(clippy::too_many_arguments)]
async fn write_sessions(
    bench: &Bench,
    list_url: &str,
    list_tokens: &[Address],
    grow_tokens: &[Address],
    old: &[Address],
    stop: &AtomicBool,
    counters: &Arc<[AtomicU64; 3]>,
    write_ms: &Arc<Mutex<Vec<f64>>>,
    ready: mpsc::UnboundedSender<Probe>,
) -> anyhow::Result<()> {
    let env = bench.env;
    let chain_id = env.chain_id();
    let table = env.stack.table().await;
    let generation = table
        .list_head(chain_id, list_url)
        .await?
        .map(|h| h.generation)
        .ok_or_else(|| anyhow::anyhow!("the list is not cached"))?;
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let spacing = Duration::from_millis(1000 / WRITES_PER_SECOND);
    let mut tasks = vec![];
    let mut new_wallets = 0u64;
    for i in 0u32.. {
        tokio::time::sleep_until(start + spacing * i).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let permit = gate.clone().acquire_owned().await?;
        let fresh = i % 2 == 0;
        let probe = fresh && {
            new_wallets += 1;
            new_wallets.is_multiple_of(PROBE_EVERY)
        };
        let block = bench.block_number().await?;
        let write = if fresh {
            let owner = fresh_owner();
            let held: Vec<(Address, Address, U256)> = list_tokens
                .choose_multiple(&mut rand::rng(), crate::scale::HELD)
                .map(|t| (*t, owner, U256::from(1_000_000u64)))
                .collect();
            bench.set_balances(&held).await?;
            Write::New {
                owner,
                held: held.iter().map(|(t, _, v)| (*t, *v)).collect(),
            }
        } else {
            Write::Grow {
                owner: old
                    .choose(&mut rand::rng())
                    .copied()
                    .unwrap_or_else(fresh_owner),
                token: grow_tokens
                    .choose(&mut rand::rng())
                    .copied()
                    .unwrap_or_default(),
            }
        };
        let (table, counters, write_ms, ready, list_url) = (
            table.clone(),
            counters.clone(),
            write_ms.clone(),
            ready.clone(),
            list_url.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = if probe {
                let Write::New { owner, .. } = &write else {
                    unreachable!("probes are new wallets")
                };
                let body = json!({"tokensListsUrls": [list_url]}).to_string();
                match env
                    .post_session(&chain_id.to_string(), &lower(owner), &body)
                    .await
                {
                    Ok((200, _)) => Ok(()),
                    other => Err(anyhow::anyhow!("{other:?}")),
                }
            } else {
                write
                    .store(&table, chain_id, &list_url, generation, block)
                    .await
            };
            drop(permit);
            if let Err(error) = outcome {
                counters[2].fetch_add(1, Ordering::SeqCst);
                eprintln!("bench: churn session write failed: {error}");
                return anyhow::Ok(());
            }
            write_ms
                .lock()
                .await
                .push(sent.elapsed().as_secs_f64() * 1000.0);
            counters[usize::from(!fresh)].fetch_add(1, Ordering::SeqCst);
            if probe {
                let owner = write.owner();
                let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
                sse.wait_for("all_balances", |e| e.event == "all_balances")
                    .await?;
                let _ = ready.send(Probe { owner, sse });
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// One session write of the churn.
enum Write {
    /// A wallet's first session, following the list, holding `held`.
    New {
        owner: Address,
        held: Vec<(Address, U256)>,
    },
    /// An existing session adding a token (which the wallet does not hold).
    Grow { owner: Address, token: Address },
}

impl Write {
    fn owner(&self) -> Address {
        match self {
            Self::New { owner, .. } | Self::Grow { owner, .. } => *owner,
        }
    }

    /// The api's table writes for it, the values as read at `block`.
    async fn store(
        &self,
        table: &Table,
        chain_id: u64,
        list_url: &str,
        generation: u64,
        block: u64,
    ) -> anyhow::Result<()> {
        let now = live_balances::runtime::clock::unix_now();
        let (base, fresh, values) = match self {
            Self::New { owner, held } => (Session::new(chain_id, *owner, now), true, held.clone()),
            Self::Grow { owner, .. } => {
                let live = table
                    .live_session(chain_id, owner, now)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no session to grow"))?;
                (live, false, vec![])
            }
        };
        let addition = SessionAsks {
            custom_tokens: match self {
                Self::Grow { token, .. } => [*token].into(),
                Self::New { .. } => BTreeSet::new(),
            },
            spenders: [live_balances::domain::model::Spender::Erc20(
                DEFAULT_SPENDER,
            )]
            .into(),
            token_lists: BTreeMap::from([(list_url.to_string(), generation)]),
            discover: false,
        };
        let mut next = base.with(&addition);
        next.revision = base.revision + 1;
        next.read_block = block;
        next.expires_at = now + 86_400;
        if fresh {
            // As the api records them: what a session that starts over stored.
            next.first_values = Some(
                values
                    .iter()
                    .map(|(token, amount)| {
                        (
                            BalanceKey::Balance { token: *token },
                            TokenRead::Value(*amount),
                        )
                    })
                    .collect(),
            );
        }
        anyhow::ensure!(
            table.write_session(&next, base.revision, fresh).await?,
            "the session changed meanwhile"
        );
        let how = ValueWrite {
            first_read: true,
            rewound_above: None,
            tombstone_expires_at: now + 86_400,
        };
        for (token, amount) in values {
            let item = BalanceItem {
                chain_id,
                owner: self.owner(),
                key: BalanceKey::Balance { token },
                read: TokenRead::Value(amount),
                block,
                tx_hash: None,
            };
            table.put_balance(&item, now, how).await?;
        }
        table
            .complete_session(chain_id, &self.owner(), next.revision)
            .await?;
        Ok(())
    }
}

impl ChurnRun {
    fn rate(&self) -> f64 {
        (self.new_sessions + self.grown_sessions) as f64 / self.blocks.seconds
    }

    pub fn to_json(&self) -> Value {
        let db = total(&self.blocks.db);
        let per_block = |c: &Counts, key: &str| {
            c.iter()
                .filter(|(k, _)| k.starts_with(key))
                .map(|(_, v)| v.read_units)
                .sum::<f64>()
                / self.blocks.blocks as f64
        };
        // What the changed sessions themselves cost the poller: reading them (one batch read
        // a step) and learning their values (one query per new wallet, or one grown whole; a
        // batch read of the values grown wallets added).
        let own = per_block(&self.blocks.db, "BatchGetItem session")
            + per_block(&self.blocks.db, "Query balance")
            + per_block(&self.blocks.db, "BatchGetItem balance");
        let read = db.read_units / self.blocks.blocks as f64;
        let cpu = self.blocks.cpu_ms_per_block();
        let new = summary_ms(&self.new_first_transfer_ms);
        let old = summary_ms(&self.old_transfer_ms);
        json!({
            "mode": self.mode,
            "wallets": self.wallets,
            "session_writes_per_second_asked": WRITES_PER_SECOND,
            "session_writes_per_second_done": round(self.rate()),
            "new_sessions": self.new_sessions,
            "grown_sessions": self.grown_sessions,
            "failed_writes": self.failed_writes,
            "session_write_ms": summary_ms(&self.write_ms),
            "blocks": self.blocks.to_json(),
            "poller_cpu_ms_per_block": round(cpu),
            "idle_poller_cpu_ms_per_block": round(self.idle_cpu_ms),
            "table_read_units_per_block": round(read),
            "idle_table_read_units_per_block": round(self.idle_read_units),
            "changed_sessions_own_read_units_per_block": round(own),
            "new_wallet_first_transfer_ms": new,
            "old_wallet_transfer_ms": old,
            "targets": {
                "cpu": "<= 1.5 x idle",
                "table_reads": "<= 2 x idle + the changed sessions' own reads",
                "new_wallet": "first transfer p50 as fast as an old wallet's",
            },
            "met": {
                "cpu": cpu <= 1.5 * self.idle_cpu_ms,
                "table_reads": read <= 2.0 * self.idle_read_units + own,
                "new_wallet_p50": new["p50_ms"].as_f64().zip(old["p50_ms"].as_f64()).map(|(n, o)| n <= o * 1.1),
            },
        })
    }
}
