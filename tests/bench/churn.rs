//! Session churn at scale, as a DEX's page loads make it: while 1 s blocks come (each with
//! background traffic touching no watched wallet), 20 session writes a second — half new
//! wallets following the 5,000-token list (each holding 20 of it), half existing wallets
//! adding a token; each new wallet's first transfer is timed for some through the api.
//! Measured: the poller's CPU, RPC requests and table units per block beside its idle figure
//! at the same size, beside the same blocks without session writes (windows alternate, so
//! the open streams and timed transfers of the measurement cost both alike), and beside the
//! same blocks with the same writes made to another chain's sessions (the table and this
//! machine as loaded, nothing for the poller to apply: what the load alone costs a poller
//! sharing two cores with DynamoDB Local and the writers), and how fast a
//! transfer reaches its stream for a wallet whose session was just written (its first
//! transfer, in the block after its stream opened) and for an old one, in the same blocks.
//!
//! Runs on the scale section's stack, right after a tier's idle measurement, with the poller
//! of that measurement, and the fanout's pump started for the window from the end of the
//! stream. The new wallets stay (the next tier counts them among its wallets).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, U256};
use e2e::{SseClient, fresh_owner};
use futures::{StreamExt, TryStreamExt};
use live_balances::config::DEFAULT_SPENDER;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceItem, BalanceKey, Session, SessionAsks, TokenRead};
use live_balances::storage::{Table, ValueWrite};
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::time::Instant;

use crate::context::Bench;
use crate::proxy::{Counts, total};
use crate::rpc_cost::{BlockCost, CostMeter};
use crate::stats::{round, summary_ms, two};
use crate::tokens::BenchList;

/// Session writes a second (the churn), half of them new wallets.
pub const WRITES_PER_SECOND: u64 = 20;
/// Session writes a block: as many as a 1 s block of the target carries, whatever the pace at
/// which anvil mines (2–5 s a block at 100,000 wallets, slower still under the churn's load).
const WRITES_PER_BLOCK: usize = WRITES_PER_SECOND as usize;
/// Requests the writers keep in flight at most; past it a write waits (and the achieved rate
/// says so).
const IN_FLIGHT: usize = 64;
/// Every how many new wallets one opens a stream and gets its first transfer timed.
const PROBE_EVERY: u64 = 10;
/// Old wallets with a stream open for the windows, timed transfers a block among them
/// (enough that two are free in every block while the others wait for theirs).
const OLD_PROBES: usize = 24;
/// Timed transfers to watched wallets in every block of every window: a new wallet's first
/// one and an old wallet's under churn, two old wallets' without it.
const TIMED_PER_BLOCK: usize = 2;
/// Blocks mined after the old wallets' streams open and before the window: each opening asks
/// for a re-read of the wallet's 5,000 tokens, which the poller spreads over a few steps.
const SETTLE_BLOCKS: usize = 15;
/// Transfers between strangers in every block, as in the idle windows.
const BACKGROUND_TRANSFERS: usize = 10;
/// The chain whose sessions the control windows write: no poller of the stack watches it.
const UNWATCHED_CHAIN: u64 = 999_999_999;
/// Sessions on [`UNWATCHED_CHAIN`] written before the windows, for the control windows' old
/// wallets to grow.
const UNWATCHED_SESSIONS: usize = 1_000;

/// What a churn window measured.
pub struct ChurnRun {
    pub mode: &'static str,
    pub wallets: usize,
    /// The windows with session writes, together.
    pub blocks: BlockCost,
    /// The windows without them (the same blocks, streams and timed transfers), together.
    pub without_writes: BlockCost,
    /// The windows with the same writes to [`UNWATCHED_CHAIN`]'s sessions, together.
    pub writes_elsewhere: BlockCost,
    /// Each round's poller CPU per block: without session writes, with them elsewhere, with
    /// them.
    pub rounds_cpu_ms: Vec<[f64; 3]>,
    pub new_sessions: u64,
    pub grown_sessions: u64,
    pub failed_writes: u64,
    /// The control windows' writes to [`UNWATCHED_CHAIN`]: new, grown, failed.
    pub elsewhere_sessions: [u64; 3],
    /// Their writes' times.
    pub elsewhere_write_ms: Vec<f64>,
    pub write_ms: Vec<f64>,
    pub new_first_transfer_ms: Vec<f64>,
    pub old_transfer_ms: Vec<f64>,
    pub old_transfer_ms_without_writes: Vec<f64>,
    /// Under churn, the timed transfers the poller wrote in their own block's step: new
    /// wallets' first ones, old wallets'.
    pub in_their_step: [InTheirStep; 2],
    /// Timed transfers that had not reached their stream after [`e2e::DEADLINE`]: new
    /// wallets', old ones'.
    pub late: [usize; 2],
    /// The same poller's idle 1 s blocks at this size, poller CPU per block: the window
    /// after start-up, the one after the 12 s blocks.
    pub idle_cpu_ms: [f64; 2],
    /// Their table read units per block, both windows together.
    pub idle_read_units: f64,
}

/// A wallet with a stream, waiting for its timed transfer.
struct Probe {
    owner: Address,
    sse: SseClient,
}

/// Runs windows of `blocks` 1 s blocks with and without churn on the running poller; `old`
/// are wallets it watches.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    bench: &Bench,
    mode: &'static str,
    list: &BenchList,
    deployed: &[Address],
    old: &[Address],
    blocks: usize,
    idle: [&BlockCost; 2],
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
    // Seeded before the pump starts: their 20,000 values are set-up, not the windows' records,
    // and the fanout working through them would hold the timed transfers back.
    let unwatched = seed_unwatched(bench, list).await?;
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
        &unwatched,
        blocks,
        idle,
        token,
    )
    .await;
    stack.stop_service("pump")?;
    measured
}

/// Windows of `blocks` blocks measured, alternately without session writes and with them:
/// the same blocks, streams and timed transfers either way, so that what the session writes
/// add is told apart from the measurement's own cost and from the machine drifting between
/// windows.
const ROUNDS: usize = 3;

/// What a window with session writes is given: the new wallets handed over for their first
/// timed transfer, and the writers' quota, granted a block's writes as each block's interval
/// begins and closed when its last block is mined (the writes counted are those of the
/// blocks measured).
struct Churn<'a> {
    /// What the window's log line calls its writes.
    what: &'static str,
    new_probes: mpsc::UnboundedReceiver<Probe>,
    quota: &'a BlockQuota,
}

/// The session writes the writers may still make: [`WRITES_PER_BLOCK`] granted for each
/// block's interval, so that a block carries the target's writes however long anvil takes to
/// mine it (writes paced by the second alone put 25–33 in each 3–5 s block at 100,000
/// wallets). Closed, it stops the writers.
struct BlockQuota(Semaphore);

impl Default for BlockQuota {
    /// Nothing granted before the first block.
    fn default() -> Self {
        Self(Semaphore::new(0))
    }
}

impl BlockQuota {
    /// A block's interval begins: its writes may be made. What the last block's left unmade
    /// is not carried over (a block never carries more than the target's writes; the writes
    /// a block counts say when the writers fell short).
    fn grant(&self) {
        self.0.forget_permits(self.0.available_permits());
        self.0.add_permits(WRITES_PER_BLOCK);
    }

    /// Takes one write of the quota, waiting for the next block's grant when it is used up;
    /// `false` once the window ended.
    async fn take(&self) -> bool {
        self.0
            .acquire()
            .await
            .map(|granted| granted.forget())
            .is_ok()
    }

    /// The window ended: the writers stop.
    fn close(&self) {
        self.0.close();
    }
}

/// Where a writer's session writes go: `chain_id`'s sessions, growing `old` wallets' sessions;
/// `probes`: every `PROBE_EVERY`th new wallet through the api, handed over for a timed transfer.
#[derive(Clone, Copy)]
struct Target<'a> {
    chain_id: u64,
    old: &'a [Address],
    probes: bool,
}

/// The probes a window's blocks time, and where their figures go.
struct Probes {
    /// Old wallets with a stream open, waiting for their turn.
    old: Vec<Probe>,
    /// Transfers sent, waiting for their stream: the probe, and whether it arrived.
    waiting: Vec<tokio::task::JoinHandle<(Probe, bool)>>,
    /// Transfers that had not reached their stream after [`e2e::DEADLINE`] (their probes are
    /// dropped: a late event would be taken for the next transfer's): new wallets', old ones'.
    late: [usize; 2],
}

/// What one window measured.
struct Window {
    cost: BlockCost,
    new_ms: Vec<f64>,
    old_ms: Vec<f64>,
    /// Timed transfers whose value the poller wrote in their own block's step, of all: new
    /// wallets', old ones'.
    in_their_step: [InTheirStep; 2],
}

/// Of the timed transfers of one kind, how many the poller wrote in their own block's step.
#[derive(Debug, Clone, Copy, Default)]
pub struct InTheirStep {
    pub written: usize,
    pub timed: usize,
}

impl InTheirStep {
    fn add(&mut self, other: Self) {
        self.written += other.written;
        self.timed += other.timed;
    }

    fn to_json(self) -> Value {
        json!({ "written_in_their_block": self.written, "timed": self.timed })
    }
}

/// The windows themselves, with the fanout running.
#[allow(clippy::too_many_arguments)]
async fn measure(
    bench: &Bench,
    mode: &'static str,
    list: &BenchList,
    deployed: &[Address],
    grow_tokens: &[Address],
    old: &[Address],
    unwatched: &[Address],
    blocks: usize,
    idle: [&BlockCost; 2],
    token: Address,
) -> anyhow::Result<ChurnRun> {
    // Old wallets' streams, open before the windows.
    let mut probes = Probes {
        old: vec![],
        waiting: vec![],
        late: [0, 0],
    };
    for owner in old.choose_multiple(&mut rand::rng(), OLD_PROBES) {
        let mut sse = SseClient::connect(bench.env, &lower(owner), None).await?;
        sse.wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        probes.old.push(Probe { owner: *owner, sse });
    }
    for _ in 0..SETTLE_BLOCKS {
        bench.mine().await?;
        let block = bench.block_number().await?;
        bench
            .poller_settled(block, Duration::from_secs(120))
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let write_ms = Arc::new(Mutex::new(vec![]));
    let mut run = ChurnRun {
        mode,
        wallets: old.len(),
        blocks: BlockCost::default(),
        without_writes: BlockCost::default(),
        writes_elsewhere: BlockCost::default(),
        rounds_cpu_ms: vec![],
        new_sessions: 0,
        grown_sessions: 0,
        failed_writes: 0,
        elsewhere_sessions: [0; 3],
        elsewhere_write_ms: vec![],
        write_ms: vec![],
        new_first_transfer_ms: vec![],
        old_transfer_ms: vec![],
        old_transfer_ms_without_writes: vec![],
        in_their_step: [InTheirStep::default(); 2],
        late: [0, 0],
        idle_cpu_ms: idle.map(BlockCost::cpu_ms_per_block),
        idle_read_units: idle.iter().map(|w| total(&w.db).read_units).sum::<f64>()
            / idle.iter().map(|w| w.blocks).sum::<usize>() as f64,
    };
    let elsewhere_counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let elsewhere_ms = Arc::new(Mutex::new(vec![]));
    for round in 0..ROUNDS {
        eprintln!("bench: churn round {round}: {blocks} blocks without session writes");
        let quiet = window(bench, deployed, old, blocks, token, &mut probes, None).await?;
        let writing = Writing {
            bench,
            list,
            grow_tokens,
            deployed,
            old,
            blocks,
            token,
        };
        eprintln!(
            "bench: churn round {round}: {blocks} blocks with {WRITES_PER_BLOCK} session writes a block to another chain's sessions"
        );
        let elsewhere = writing
            .window(
                Target {
                    chain_id: UNWATCHED_CHAIN,
                    old: unwatched,
                    probes: false,
                },
                "with session writes to another chain",
                (&elsewhere_counters, &elsewhere_ms),
                &mut probes,
            )
            .await?;
        eprintln!(
            "bench: churn round {round}: {blocks} blocks with {WRITES_PER_BLOCK} session writes a block"
        );
        let churned = writing
            .window(
                Target {
                    chain_id: bench.chain_id(),
                    old,
                    probes: true,
                },
                "with session writes",
                (&counters, &write_ms),
                &mut probes,
            )
            .await?;
        run.rounds_cpu_ms.push([
            quiet.cost.cpu_ms_per_block(),
            elsewhere.cost.cpu_ms_per_block(),
            churned.cost.cpu_ms_per_block(),
        ]);
        run.writes_elsewhere.add(elsewhere.cost);
        run.without_writes.add(quiet.cost);
        run.old_transfer_ms_without_writes.extend(quiet.old_ms);
        run.blocks.add(churned.cost);
        run.new_first_transfer_ms.extend(churned.new_ms);
        run.old_transfer_ms.extend(churned.old_ms);
        for (all, window) in run.in_their_step.iter_mut().zip(churned.in_their_step) {
            all.add(window);
        }
    }
    run.late = probes.late;
    run.new_sessions = counters[0].load(Ordering::SeqCst);
    run.grown_sessions = counters[1].load(Ordering::SeqCst);
    run.failed_writes = counters[2].load(Ordering::SeqCst);
    run.write_ms = write_ms.lock().await.clone();
    run.elsewhere_sessions = elsewhere_counters
        .each_ref()
        .map(|count| count.load(Ordering::SeqCst));
    run.elsewhere_write_ms = elsewhere_ms.lock().await.clone();
    Ok(run)
}

/// What a window with session writes runs: its blocks (as [`window`]'s) and its writers.
struct Writing<'a> {
    bench: &'a Bench,
    list: &'a BenchList,
    grow_tokens: &'a [Address],
    deployed: &'a [Address],
    /// The watched wallets (the timed transfers' old probes among them).
    old: &'a [Address],
    blocks: usize,
    token: Address,
}

impl Writing<'_> {
    /// A window of blocks while writers make session writes to `target`, counted in `counts`
    /// (new, grown, failed; each write's time); `what`: the window's name in its log line.
    async fn window(
        &self,
        target: Target<'_>,
        what: &'static str,
        counts: (&Arc<[AtomicU64; 3]>, &Arc<Mutex<Vec<f64>>>),
        probes: &mut Probes,
    ) -> anyhow::Result<Window> {
        let (ready_tx, ready_rx) = mpsc::unbounded_channel::<Probe>();
        let quota = BlockQuota::default();
        let writers = write_sessions(
            self.bench,
            &self.list.url,
            &self.list.tokens,
            self.grow_tokens,
            target,
            &quota,
            counts,
            ready_tx,
        );
        let windowed = async {
            let result = window(
                self.bench,
                self.deployed,
                self.old,
                self.blocks,
                self.token,
                probes,
                Some(Churn {
                    what,
                    new_probes: ready_rx,
                    quota: &quota,
                }),
            )
            .await;
            // Already closed after the last block, unless the window failed before it.
            quota.close();
            result
        };
        let (windowed, written) = tokio::join!(windowed, writers);
        written?;
        windowed
    }
}

/// Writes [`UNWATCHED_SESSIONS`] sessions on [`UNWATCHED_CHAIN`] as the churn's new wallets'
/// are written (following the list, holding some of it): the old wallets the control windows
/// grow. Returns their owners.
async fn seed_unwatched(bench: &Bench, list: &BenchList) -> anyhow::Result<Vec<Address>> {
    let table = bench.env.stack.table().await;
    let generation = list_generation(bench, &table, &list.url).await?;
    let block = bench.block_number().await?;
    let owners: Vec<Address> = (0..UNWATCHED_SESSIONS).map(|_| fresh_owner()).collect();
    futures::stream::iter(owners.iter().map(|owner| {
        let write = Write::New {
            owner: *owner,
            held: list
                .tokens
                .choose_multiple(&mut rand::rng(), crate::scale::HELD)
                .map(|t| (*t, U256::from(1_000_000u64)))
                .collect(),
        };
        let table = table.clone();
        async move {
            write
                .store(&table, UNWATCHED_CHAIN, &list.url, generation, block)
                .await
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(owners)
}

/// The generation of the list at `url` as the watched chain's cache holds it.
async fn list_generation(bench: &Bench, table: &Table, url: &str) -> anyhow::Result<u64> {
    table
        .list_head(bench.chain_id(), url)
        .await?
        .map(|h| h.generation)
        .ok_or_else(|| anyhow::anyhow!("the list is not cached"))
}

/// `blocks` 1 s blocks on the running poller, each with the background traffic and two timed
/// transfers to watched wallets: a new wallet's first one when `churn` hands one over (its
/// session was just written), old wallets' otherwise. Returns once every timed transfer
/// reached its stream (the window's cost is counted up to its last block; `churn`'s writers
/// are stopped there).
async fn window(
    bench: &Bench,
    deployed: &[Address],
    old: &[Address],
    blocks: usize,
    token: Address,
    probes: &mut Probes,
    churn: Option<Churn<'_>>,
) -> anyhow::Result<Window> {
    let what = churn.as_ref().map_or("without session writes", |c| c.what);
    let (mut new_probes, quota) = churn.map(|c| (c.new_probes, c.quota)).unzip();
    let table = bench.env.stack.table().await;
    let mut in_their_step = [InTheirStep::default(); 2];
    let meter = CostMeter::start(bench)?;
    let new_ms = Arc::new(Mutex::new(vec![]));
    let old_ms = Arc::new(Mutex::new(vec![]));
    bench.automine(false).await?;
    let mined_blocks = async {
        for b in 0..blocks {
            if let Some(quota) = quota {
                quota.grant();
            }
            tokio::time::sleep_until(meter.start + Duration::from_secs(b as u64 + 1)).await;
            for i in 0..BACKGROUND_TRANSFERS {
                bench
                    .send_transfer(deployed[(b + i) % deployed.len()], fresh_owner(), 1)
                    .await?;
            }
            bench.send_eth(fresh_owner(), U256::from(1u64)).await?;
            // A new wallet whose stream is open (its first transfer), if one is ready; old
            // ones for the rest.
            let mut timed = vec![];
            if let Some(probe) = new_probes.as_mut().and_then(|rx| rx.try_recv().ok()) {
                timed.push((probe, new_ms.clone(), "new"));
            }
            while timed.len() < TIMED_PER_BLOCK {
                let Some(probe) = probes.old.pop() else { break };
                timed.push((probe, old_ms.clone(), "old"));
            }
            for (probe, _, _) in &timed {
                bench.send_transfer(token, probe.owner, 1).await?;
            }
            bench.mine().await?;
            let mined = Instant::now();
            let block_mined = bench.block_number().await?;
            let timed_owners: Vec<(Address, usize)> = timed
                .iter()
                .map(|(probe, _, which)| (probe.owner, usize::from(*which == "old")))
                .collect();
            for (mut probe, into, which) in timed {
                let wanted = lower(&token);
                probes.waiting.push(tokio::spawn(async move {
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
            // Whether the poller wrote each timed transfer in its block's step: for a new
            // wallet, whether its session was watched within the block. The fanout plays no part.
            let key = BalanceKey::Balance { token };
            for (owner, kind) in timed_owners {
                let item = table.balance(bench.chain_id(), &owner, &key).await?;
                in_their_step[kind].timed += 1;
                if item.is_some_and(|i| i.block >= block_mined) {
                    in_their_step[kind].written += 1;
                }
            }
            probes.take_back(old, false).await?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Some(quota) = quota {
        quota.close();
    }
    bench.automine(true).await?;
    let cost = meter.cost(bench, blocks)?;
    mined_blocks?;
    // Printed before the timed transfers are awaited: a fanout that falls behind (DynamoDB
    // Local at 100,000 wallets) fails the run there, and the poller's figures still count.
    eprintln!(
        "bench: churn window ({what}): {}; timed transfers written in their block's step: new {}/{}, old {}/{}",
        cost.to_json(),
        in_their_step[0].written,
        in_their_step[0].timed,
        in_their_step[1].written,
        in_their_step[1].timed,
    );
    probes.take_back(old, true).await?;
    let new_ms = new_ms.lock().await.clone();
    let old_ms = old_ms.lock().await.clone();
    Ok(Window {
        cost,
        new_ms,
        old_ms,
        in_their_step,
    })
}

impl Probes {
    /// Old probes whose transfer arrived take their turn again; `all`: waits for every
    /// transfer still on its way (each gives up at [`e2e::DEADLINE`]). One that did not arrive
    /// is counted late, its probe dropped. The poller's part is checked apart (its write in the
    /// block's step); the local fanout, on DynamoDB Local holding millions of items, can fall
    /// minutes behind the table, which is this machine's limit, not the service's.
    async fn take_back(&mut self, old: &[Address], all: bool) -> anyhow::Result<()> {
        let mut still = vec![];
        for waiter in std::mem::take(&mut self.waiting) {
            if !all && !waiter.is_finished() {
                still.push(waiter);
                continue;
            }
            let (probe, ok) = waiter.await?;
            let is_old = old.contains(&probe.owner);
            if !ok {
                self.late[usize::from(is_old)] += 1;
            } else if is_old {
                self.old.insert(0, probe);
            }
        }
        self.waiting = still;
        Ok(())
    }
}

/// The writers: [`WRITES_PER_SECOND`] session writes a second, evenly spaced, up to the block's
/// `quota` (at 1 s blocks the two agree; at slower blocks a block's writes come in its first
/// second), alternating a new
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
    target: Target<'_>,
    quota: &BlockQuota,
    (counters, write_ms): (&Arc<[AtomicU64; 3]>, &Arc<Mutex<Vec<f64>>>),
    ready: mpsc::UnboundedSender<Probe>,
) -> anyhow::Result<()> {
    let env = bench.env;
    let chain_id = target.chain_id;
    let table = env.stack.table().await;
    let generation = list_generation(bench, &table, list_url).await?;
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let spacing = Duration::from_secs(1) / WRITES_PER_SECOND as u32;
    let mut next = Instant::now();
    let mut tasks = vec![];
    let mut new_wallets = 0u64;
    for i in 0u32.. {
        tokio::time::sleep_until(next).await;
        if !quota.take().await {
            break;
        }
        next = Instant::now() + spacing;
        let permit = gate.clone().acquire_owned().await?;
        let fresh = i % 2 == 0;
        let probe = fresh && target.probes && {
            new_wallets += 1;
            new_wallets.is_multiple_of(PROBE_EVERY)
        };
        let (write, holdings) = if fresh {
            let owner = fresh_owner();
            let held: Vec<(Address, Address, U256)> = list_tokens
                .choose_multiple(&mut rand::rng(), crate::scale::HELD)
                .map(|t| (*t, owner, U256::from(1_000_000u64)))
                .collect();
            let write = Write::New {
                owner,
                held: held.iter().map(|(t, _, v)| (*t, *v)).collect(),
            };
            (write, held)
        } else {
            let write = Write::Grow {
                owner: target
                    .old
                    .choose(&mut rand::rng())
                    .copied()
                    .unwrap_or_else(fresh_owner),
                token: grow_tokens
                    .choose(&mut rand::rng())
                    .copied()
                    .unwrap_or_default(),
            };
            (write, vec![])
        };
        let (table, counters, write_ms, ready, list_url) = (
            table.clone(),
            counters.clone(),
            write_ms.clone(),
            ready.clone(),
            list_url.to_string(),
        );
        // Each write's chain calls in its own task: anvil answers none while it mines (2-3 s
        // at 100,000 wallets), and made one after another they held the writers to a dozen
        // writes a block.
        tasks.push(tokio::spawn(async move {
            let block = env.block_number().await?;
            crate::tokens::set_balances(env, &holdings).await?;
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
        // The idle figure: both idle windows (the same number of blocks each), minutes apart.
        let idle_cpu = self.idle_cpu_ms.iter().sum::<f64>() / self.idle_cpu_ms.len() as f64;
        let quiet_cpu = self.without_writes.cpu_ms_per_block();
        let elsewhere_cpu = self.writes_elsewhere.cpu_ms_per_block();
        // What the writes cost the poller beyond what the same load on this machine costs it
        // when none of them is its own.
        let net_cpu = cpu - (elsewhere_cpu - quiet_cpu);
        let writes = (self.new_sessions + self.grown_sessions).max(1) as f64;
        // New wallets' transfers written in their block's step at least as often as old ones'.
        let [n, o] = self.in_their_step;
        let new_in_step_met =
            (n.timed > 0 && o.timed > 0).then(|| n.written * o.timed >= o.written * n.timed);
        let new = summary_ms(&self.new_first_transfer_ms);
        let old = summary_ms(&self.old_transfer_ms);
        json!({
            "mode": self.mode,
            "wallets": self.wallets,
            "session_writes_per_second_asked": WRITES_PER_SECOND,
            "session_writes_per_block_granted": WRITES_PER_BLOCK,
            "session_writes_per_second_done": round(self.rate()),
            "session_writes_per_block": round(self.rate() * self.blocks.seconds / self.blocks.blocks as f64),
            "new_sessions": self.new_sessions,
            "grown_sessions": self.grown_sessions,
            "failed_writes": self.failed_writes,
            "session_write_ms": summary_ms(&self.write_ms),
            "blocks": self.blocks.to_json(),
            "blocks_without_session_writes": self.without_writes.to_json(),
            "blocks_with_session_writes_to_another_chain": self.writes_elsewhere.to_json(),
            "session_writes_to_another_chain": {
                "new": self.elsewhere_sessions[0],
                "grown": self.elsewhere_sessions[1],
                "failed": self.elsewhere_sessions[2],
                "session_write_ms": summary_ms(&self.elsewhere_write_ms),
            },
            "rounds_poller_cpu_ms_per_block": self.rounds_cpu_ms.iter().map(|[quiet, elsewhere, churned]| json!({
                "without_session_writes": round(*quiet),
                "with_session_writes_to_another_chain": round(*elsewhere),
                "with_session_writes": round(*churned),
            })).collect::<Vec<_>>(),
            "poller_cpu_ms_per_block": round(cpu),
            "poller_cpu_ms_per_block_without_session_writes": round(quiet_cpu),
            "poller_cpu_ms_per_block_with_session_writes_to_another_chain": round(elsewhere_cpu),
            "poller_cpu_ms_per_block_less_what_the_load_alone_adds": round(net_cpu),
            "idle_poller_cpu_ms_per_block": round(idle_cpu),
            "idle_poller_cpu_ms_per_block_each_window": self.idle_cpu_ms.map(round),
            "cpu_ratio_to_idle": two(cpu / idle_cpu),
            "cpu_ratio_to_each_idle_window": self.idle_cpu_ms.map(|idle| two(cpu / idle)),
            "cpu_ratio_to_the_same_blocks_without_session_writes": two(cpu / quiet_cpu),
            "cpu_ratio_to_idle_less_what_the_load_alone_adds": two(net_cpu / idle_cpu),
            "poller_cpu_ms_per_session_write": two(
                (cpu - quiet_cpu) * self.blocks.blocks as f64 / writes
            ),
            "poller_cpu_ms_per_session_write_beyond_the_load": two(
                (cpu - elsewhere_cpu) * self.blocks.blocks as f64 / writes
            ),
            "table_read_units_per_block": round(read),
            "idle_table_read_units_per_block": round(self.idle_read_units),
            "changed_sessions_own_read_units_per_block": round(own),
            "new_wallet_first_transfer_ms": new,
            "old_wallet_transfer_ms": old,
            "old_wallet_transfer_ms_without_session_writes": summary_ms(&self.old_transfer_ms_without_writes),
            "new_wallet_first_transfer_written_in_its_block": self.in_their_step[0].to_json(),
            "old_wallet_transfer_written_in_its_block": self.in_their_step[1].to_json(),
            "late_on_the_stream": { "new": self.late[0], "old": self.late[1], "after_ms": e2e::DEADLINE.as_millis() as u64 },
            "targets": {
                "cpu": "<= 1.5 x idle (the mean of the two idle 1 s windows)",
                "table_reads": "<= 2 x idle + the changed sessions' own reads",
                "new_wallet": "first transfer p50 as fast as an old wallet's",
            },
            "met": {
                "cpu": cpu <= 1.5 * idle_cpu,
                "cpu_against_each_idle_window": self.idle_cpu_ms.map(|idle| cpu <= 1.5 * idle),
                "cpu_against_the_same_blocks_without_session_writes": cpu <= 1.5 * quiet_cpu,
                "cpu_less_what_the_load_alone_adds": net_cpu <= 1.5 * idle_cpu,
                "table_reads": read <= 2.0 * self.idle_read_units + own,
                "new_wallet_p50": new["p50_ms"].as_f64().zip(old["p50_ms"].as_f64()).map(|(n, o)| n <= o * 1.1),
                "new_wallet_written_in_its_block": new_in_step_met,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_block_grants_twenty_writes_and_a_closed_quota_stops_the_writers() {
        let quota = BlockQuota::default();
        assert!(
            quota.0.try_acquire().is_err(),
            "nothing before the first block"
        );
        quota.grant();
        for _ in 0..WRITES_PER_BLOCK {
            assert!(quota.take().await);
        }
        assert!(
            quota.0.try_acquire().is_err(),
            "the block's writes are used up"
        );
        quota.grant();
        quota.grant();
        assert_eq!(
            quota.0.available_permits(),
            WRITES_PER_BLOCK,
            "a block's writes left unmade are not carried over"
        );
        assert!(quota.take().await, "the next block grants its own");
        quota.close();
        assert!(!quota.take().await);
    }
}
