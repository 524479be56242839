//! One chain's watcher: follow heads; per block range, re-read exactly what the chain says may
//! have changed for a watched wallet — values its logs touch (owner-topic filters), native
//! balances of the accounts its traces name — plus this step's share of the sweeps, the
//! first reads of newly tracked values and the re-reads streams asked for; write what
//! changed; store the cursor. A parent-hash mismatch rewinds to the common ancestor.
//!
//! Nothing here grows with the size of the token lists wallets follow: a step's work follows
//! what changed on chain and what wallets hold (see `held`, `watched`).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::Address;
use live_balances::NATIVE_TOKEN;
use live_balances::backoff::Backoff;
use live_balances::chain::{
    ALCHEMY_UNITS, BalanceReader, Fault, LogOverflow, NativeCost, NativeSource, NativeStep,
    TraceProbe,
};
use live_balances::clock::unix_now;
use live_balances::config::{NativeBalances, Settings};
use live_balances::model::{BalanceKey, CURSOR_RECENT_BLOCKS, ChainCursor};
use live_balances::plan::{ReadPlan, touches};
use live_balances::poller_health;
use live_balances::storage::{Table, retry};
use live_balances::sweep::Sweep;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::PollerError;
use crate::heads::{Head, HeadSignal};
use crate::held::{HeldValues, ValueId};
use crate::metrics::{Metrics, TraceSupport};
use crate::reload::SessionTail;
use crate::watched::WatchedSet;

/// Longest pause between failed steps. Short: a failed step has already waited out its
/// requests' rate limits and failing endpoints (see the chain adapter's transport), so a
/// long pause would only delay noticing that the provider is back.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const STEP_BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), MAX_BACKOFF);
/// How often the `progress` line is logged (the deployed lag alarm reads it; its period is
/// the alarm's).
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(30);
/// Safety-net polling period while a head subscription is live: at least this, and at least
/// twice the chain's last gap between announced heads (up to the maximum), so a healthy
/// subscription on a 12 s chain never sets it off — a check due before the next block is
/// due would cost a request per block and find nothing.
const SUBSCRIBED_POLL_INTERVAL: Duration = Duration::from_secs(10);
const MAX_SUBSCRIBED_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// How soon the node is asked again about trace methods after a question that settled
/// nothing (a rate limit, a timeout, an outage), and after it said it offers none.
const REPROBE_UNSETTLED: Duration = Duration::from_secs(30);
const REPROBE_MISSING: Duration = Duration::from_secs(600);
/// Most whole-token-set re-reads (asked for by streams opening) in one step, in values: the
/// rest wait for the next step, so one block's work stays bounded.
const RESCAN_READS_PER_STEP: usize = 12_000;

/// What a step achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// No new block.
    Idle,
    /// Processed up to the head.
    CaughtUp,
    /// Processed a range; more blocks are waiting.
    Behind,
}

/// Settings a watcher reads every step.
#[derive(Debug, Clone)]
pub(crate) struct WatcherSettings {
    pub head_poll_interval: Duration,
    pub max_block_range: u64,
    pub feed_ttl: Duration,
    pub max_discovered: usize,
}

pub struct ChainWatcher {
    pub(crate) chain_id: u64,
    pub(crate) reader: BalanceReader,
    pub(crate) table: Table,
    pub(crate) metrics: Arc<Metrics>,
    heads: Arc<HeadSignal>,
    pub(crate) settings: WatcherSettings,
    native_mode: NativeBalances,
    native_poll_interval: Duration,
    /// The trace method the node answers, once known.
    traces: Option<NativeSource>,
    /// When to ask the node about trace methods again (`None`: never, or not before start).
    next_trace_probe: Option<Instant>,
    /// How the last step found native changes.
    native_step: NativeStep,
    pub(crate) watched: WatchedSet,
    pub(crate) held: HeldValues,
    /// Tokens whose reads fail for every holder on this chain: never read per wallet.
    pub(crate) unreadable: BTreeSet<Address>,
    /// Where this watcher stands with the chain's sessions and their log.
    pub(crate) sessions: SessionTail,
    /// Work waiting for the next step: first reads of newly tracked values, re-reads.
    pub(crate) pending: ReadPlan,
    /// Wallets learned since the last step whose events between the api's read and this
    /// poller's cursor must be caught up on, with the block to start from.
    pub(crate) catch_up: Vec<(Address, u64)>,
    /// Wallets whose streams asked for a re-read of their whole token set.
    pub(crate) rescans: VecDeque<Address>,
    /// Incoming transfers of tokens a wallet with discovery on does not track yet.
    pub(crate) discoveries: BTreeSet<(Address, Address)>,
    /// Which values each recent block wrote: a rewind re-reads them.
    pub(crate) recent_writes: VecDeque<(u64, Vec<ValueId>)>,
    /// After a rewind: values stored from blocks above this are on the dropped branch.
    rewound_above: Option<u64>,
    silent_sweep: Sweep<ValueId>,
    all_sweep: Sweep<ValueId>,
    native_sweep: Sweep<Address>,
    last_sweep: Instant,
    last_step: Instant,
    /// Last time the head was asked for over HTTP, or announced by the subscription.
    last_poll: Instant,
    /// When the subscription last announced a head, and the gap before it.
    last_announced: Instant,
    last_announced_number: u64,
    announced_gap: Duration,
    last_progress_log: Instant,
}

/// Which wallets' native balances a step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NativeReads {
    All,
    /// Every streamed wallet, and the share of the others due now.
    StreamedAndPolled,
    /// The share of the unstreamed wallets due now.
    Polled,
}

/// Why the head is asked for over HTTP while a subscription is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollReason {
    /// A new subscription announces nothing made before it.
    CatchUp,
    /// The subscription has been quiet for a while.
    Safety,
}

impl ChainWatcher {
    pub fn new(
        chain_id: u64,
        reader: BalanceReader,
        table: Table,
        settings: &Settings,
        metrics: Arc<Metrics>,
        heads: Arc<HeadSignal>,
    ) -> Self {
        let tracking = &settings.tracking;
        Self {
            chain_id,
            reader,
            table,
            metrics,
            heads,
            settings: WatcherSettings {
                head_poll_interval: settings.poller.head_poll_interval,
                max_block_range: settings.poller.max_block_range,
                feed_ttl: settings.feed_ttl,
                max_discovered: tracking.max_discovered_tokens,
            },
            native_mode: tracking.native_balances,
            native_poll_interval: tracking.native_poll_interval,
            traces: None,
            next_trace_probe: (tracking.native_balances != NativeBalances::Reads)
                .then(Instant::now),
            native_step: NativeStep::ReadStreamed,
            watched: WatchedSet::new(settings.chains.get(&chain_id).and_then(|c| c.weth)),
            held: HeldValues::default(),
            unreadable: BTreeSet::new(),
            sessions: SessionTail::new(settings.poller.session_pass_interval),
            pending: ReadPlan::default(),
            catch_up: vec![],
            rescans: VecDeque::new(),
            discoveries: BTreeSet::new(),
            recent_writes: VecDeque::new(),
            rewound_above: None,
            silent_sweep: Sweep::new(settings.poller.snapshot_interval),
            all_sweep: Sweep::with_budget(
                tracking.sweep_all_interval,
                tracking.sweep_reads_per_block,
            ),
            native_sweep: Sweep::new(tracking.native_poll_interval),
            last_sweep: Instant::now(),
            last_step: Instant::now(),
            last_poll: Instant::now(),
            last_announced: Instant::now(),
            last_announced_number: 0,
            announced_gap: Duration::ZERO,
            last_progress_log: Instant::now() - PROGRESS_LOG_EVERY,
        }
    }

    /// Asks the node which trace method it answers, when due: at start, then while none is
    /// known — soon after a question that settled nothing (a rate limit past the wait, an
    /// outage: not taken for "no traces"), rarely after the node said it offers none (a plan
    /// can change). Meanwhile native balances are read per wallet.
    async fn probe_traces_if_due(&mut self) -> Result<(), PollerError> {
        match self.next_trace_probe {
            Some(at) if self.traces.is_none() && at <= Instant::now() => {}
            _ => return Ok(()),
        }
        let chain = self.chain_id;
        match self.reader.probe_traces().await {
            TraceProbe::Found(source) => {
                info!(chain, method = source.name(), "the node answers traces");
                self.traces = Some(source);
                self.next_trace_probe = None;
                self.metrics
                    .set_traces(chain, TraceSupport::Found(source.name()));
            }
            TraceProbe::Missing => {
                if self.native_mode == NativeBalances::Traces {
                    return Err(PollerError::NoTraces);
                }
                info!(
                    chain,
                    "the node offers no trace method; reading native balances per wallet"
                );
                self.next_trace_probe = Some(Instant::now() + REPROBE_MISSING);
                self.metrics.set_traces(chain, TraceSupport::Missing);
            }
            TraceProbe::Unknown(error) => {
                warn!(chain, %error, "asking for traces failed; reading native balances per wallet meanwhile");
                self.next_trace_probe = Some(Instant::now() + REPROBE_UNSETTLED);
                self.metrics
                    .set_traces(chain, TraceSupport::Unknown(error.fault().kind()));
            }
        }
        Ok(())
    }

    /// Runs until `stop` turns true; the block being processed is finished first.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), PollerError> {
        let mut cursor = loop {
            match self.start_cursor().await {
                Ok(c) => break c,
                Err(error) => {
                    warn!(chain = self.chain_id, %error, "cannot start yet; retrying");
                    if wait_or_stop(&mut stop, &self.heads, Duration::from_secs(2)).await {
                        return Ok(());
                    }
                }
            }
        };
        self.probe_traces_if_due().await?;
        info!(
            chain = self.chain_id,
            block = cursor.block,
            traces = self.traces.map(NativeSource::name),
            "resuming from cursor"
        );
        self.metrics.progressed(self.chain_id, cursor.block);
        self.metrics
            .set_native_source(self.chain_id, NativeSource::Reads.name());
        let mut failures = 0u32;
        loop {
            let outcome = match self.probe_traces_if_due().await {
                Err(fatal @ PollerError::NoTraces) => return Err(fatal),
                _ => self.step(&mut cursor).await,
            };
            let outcome = match outcome {
                // No new block: sweeps, first reads and re-reads still run on time, at the
                // block already processed (on a chain that makes blocks only for
                // transactions, a silent change must not wait for the next one).
                Ok(Step::Idle) if self.idle_work_due() => {
                    let quiet = self.quiet_step(&cursor).await.map(|()| Step::Idle);
                    if quiet.is_ok() {
                        self.metrics.progressed(self.chain_id, cursor.block);
                    }
                    quiet
                }
                other => other,
            };
            let pause = match outcome {
                Ok(Step::Behind) => {
                    failures = 0;
                    Duration::ZERO
                }
                // Caught up: the next head is announced (or polled for); asking again now
                // would only cost a request per block.
                Ok(Step::Idle | Step::CaughtUp) => {
                    failures = 0;
                    // A quiet chain still gets a heartbeat, so health checks can tell a
                    // stalled poller from an idle chain.
                    if unix_now().saturating_sub(cursor.updated_at)
                        >= poller_health::CURSOR_HEARTBEAT.as_secs()
                    {
                        cursor.updated_at = unix_now();
                        if let Err(error) = self.table.put_cursor(&cursor).await {
                            warn!(chain = self.chain_id, %error, "heartbeat not stored");
                        }
                    }
                    // With a live subscription a new head wakes us; polling is only a safety
                    // net — but idle work that falls due wakes us too.
                    let poll = if self.heads.subscribed.load(Ordering::SeqCst) {
                        self.settings
                            .head_poll_interval
                            .max(self.safety_poll_interval())
                    } else {
                        self.settings.head_poll_interval
                    };
                    poll.min(self.idle_after())
                }
                Err(error) => {
                    failures += 1;
                    self.metrics.step_failed(self.chain_id, error.kind());
                    let pause = backoff(failures);
                    warn!(chain = self.chain_id, %error, retry_in_ms = pause.as_millis() as u64, "step failed");
                    pause
                }
            };
            if *stop.borrow() || wait_or_stop(&mut stop, &self.heads, pause).await {
                info!(chain = self.chain_id, block = cursor.block, "stopped");
                return Ok(());
            }
        }
    }

    async fn start_cursor(&mut self) -> Result<ChainCursor, PollerError> {
        if let Some(cursor) = self.table.cursor(self.chain_id).await? {
            return Ok(cursor);
        }
        // First start on this chain: begin at the head; sessions' values were read by the api.
        let head = self.head(BlockNumberOrTag::Latest).await?;
        let cursor = ChainCursor {
            chain_id: self.chain_id,
            block: head.number,
            hash: head.hash,
            recent: vec![(head.number, head.hash)],
            updated_at: unix_now(),
        };
        self.table.put_cursor(&cursor).await?;
        Ok(cursor)
    }

    /// How long a chain may go without a step before the sweeps run on their own: shorter
    /// than mainnet's 12 s blocks would only split each block's sweep in two.
    fn idle_after(&self) -> Duration {
        (self.silent_sweep.interval() / 4)
            .min(Duration::from_secs(15))
            .max(Duration::from_millis(500))
    }

    fn idle_work_due(&self) -> bool {
        self.last_step.elapsed() >= self.idle_after()
    }

    /// Processes the next range of blocks.
    async fn step(&mut self, cursor: &mut ChainCursor) -> Result<Step, PollerError> {
        let Some(head) = self.next_head(cursor).await? else {
            return Ok(Step::Idle);
        };
        // Known before anything can fail: `/health` shows how far behind a failing poller is.
        self.metrics.set_head(self.chain_id, head.number);
        // A head at or below the cursor is news only if its hash differs from the one we
        // processed at that height: the chain was replaced by another, maybe shorter, one.
        let replaced = cursor.hash_at(head.number).is_some_and(|h| h != head.hash);
        if head.number <= cursor.block && !replaced {
            self.metrics.progressed(self.chain_id, cursor.block);
            return Ok(Step::Idle);
        }
        self.refresh_watched(cursor.block).await?;
        if head.number <= cursor.block {
            return self.rewind(cursor, head).await.map(|_| Step::Behind);
        }
        let from = cursor.block + 1;
        let to = head
            .number
            .min(cursor.block + self.settings.max_block_range);
        let first = if from == head.number {
            head
        } else {
            self.head(from.into()).await?
        };
        if first.parent_hash != cursor.hash {
            return self.rewind(cursor, head).await.map(|_| Step::Behind);
        }
        let last = if to == head.number {
            head
        } else {
            self.head(to.into()).await?
        };
        self.process(cursor, (&first, &last)).await?;
        self.metrics.progressed(self.chain_id, to);
        self.log_progress(to, head.number);
        Ok(if to == head.number {
            Step::CaughtUp
        } else {
            Step::Behind
        })
    }

    /// The chain's newest head, when there may be one to process: the one the subscription
    /// announced, else (no WebSocket, reconnecting, or the periodic safety check) asked for.
    /// `None`: the subscription is live and quiet, nothing to do.
    async fn next_head(&mut self, cursor: &ChainCursor) -> Result<Option<Head>, PollerError> {
        // With a live subscription the newest header is already here: no request for it.
        // Otherwise (no WebSocket, reconnecting, or the periodic safety check) ask for it.
        let announced = self
            .heads
            .latest()
            .filter(|h| cursor.hash_at(h.number) != Some(h.hash));
        let subscribed = self.heads.subscribed.load(Ordering::SeqCst);
        let reason = match announced {
            Some(head) if subscribed => {
                // A head that arrives proves the subscription alive: the safety-net check
                // is only for one that has gone quiet.
                self.last_poll = Instant::now();
                self.announced_gap = self.last_announced.elapsed();
                self.last_announced = Instant::now();
                self.last_announced_number = head.number;
                return Ok(Some(head));
            }
            _ if subscribed => match self.poll_reason() {
                Some(reason) => Some(reason),
                None => return Ok(None),
            },
            _ => None,
        };
        self.last_poll = Instant::now();
        let head = self.head(BlockNumberOrTag::Latest).await?;
        match reason {
            Some(PollReason::CatchUp) => {
                // Counted from the new subscription.
                self.last_announced = Instant::now();
                self.last_announced_number = head.number;
            }
            // Blocks the live subscription never announced: it is silent, not the chain.
            Some(PollReason::Safety) if head.number > self.last_announced_number + 1 => {
                warn!(
                    chain = self.chain_id,
                    head = head.number,
                    last_announced = self.last_announced_number,
                    "the head subscription missed blocks; subscribing again"
                );
                self.heads.resubscribe();
            }
            _ => {}
        }
        Ok(Some(head))
    }

    /// Blocks `first` to `last` (which continue the cursor): every value they may have
    /// changed re-read and written, then the cursor stored past them.
    async fn process(
        &mut self,
        cursor: &mut ChainCursor,
        (first, last): (&Head, &Head),
    ) -> Result<(), PollerError> {
        let (from, to) = (first.number, last.number);
        let mut plan = std::mem::take(&mut self.pending);
        // The catch-up's older logs first: the range's own touches then name the latest
        // transaction of each value.
        self.catch_up_reads(from.saturating_sub(1), &mut plan)
            .await?;
        let logs = self.log_reads(from, to, &mut plan).await?;
        self.native_reads(from, to, first, last, &mut plan).await?;
        self.sweep_reads(&mut plan);
        self.rescan_reads(&mut plan);
        self.discover(&mut plan).await?;
        let rewound_above = self.rewound_above;
        let written = self.apply(&plan, to, rewound_above).await?;
        self.rewound_above = None;
        *cursor = cursor.advanced(to, last.hash, unix_now());
        self.store_cursor(cursor).await?;
        self.last_step = Instant::now();
        debug!(
            chain = self.chain_id,
            from,
            to,
            logs,
            reads = plan.len(),
            written,
            "processed"
        );
        Ok(())
    }

    /// One line per 30 s: the deployed lag alarm reads `blocks_behind` from it.
    fn log_progress(&mut self, block: u64, head: u64) {
        self.metrics
            .set_watched(self.chain_id, self.watched.len() as u64);
        if self.last_progress_log.elapsed() >= PROGRESS_LOG_EVERY {
            self.last_progress_log = Instant::now();
            info!(
                chain = self.chain_id,
                block,
                head,
                blocks_behind = head - block,
                wallets = self.watched.len(),
                held = self.held.len(),
                "progress"
            );
        }
    }

    /// A step without a new block: reload if due, then the sweeps, first reads and re-reads
    /// at the block already processed.
    async fn quiet_step(&mut self, cursor: &ChainCursor) -> Result<(), PollerError> {
        self.refresh_watched(cursor.block).await?;
        let mut plan = std::mem::take(&mut self.pending);
        self.catch_up_reads(cursor.block, &mut plan).await?;
        // No new block: nothing streamed changed; the others' periodic reads stay on time.
        if self.native_step != NativeStep::Trace {
            self.wallet_native_reads(&mut plan, NativeReads::Polled);
        }
        self.sweep_reads(&mut plan);
        self.rescan_reads(&mut plan);
        self.discover(&mut plan).await?;
        let rewound_above = self.rewound_above;
        self.apply(&plan, cursor.block, rewound_above).await?;
        self.rewound_above = None;
        self.last_step = Instant::now();
        if !plan.is_empty() {
            debug!(
                chain = self.chain_id,
                block = cursor.block,
                reads = plan.len(),
                "quiet step"
            );
        }
        Ok(())
    }

    fn safety_poll_interval(&self) -> Duration {
        safety_poll_interval(self.announced_gap)
    }

    /// Whether an HTTP head check is due while subscribed, and why: right after a
    /// (re)subscription, which announces nothing produced before it, and then as a periodic
    /// safety net.
    fn poll_reason(&self) -> Option<PollReason> {
        if self.heads.catch_up.swap(false, Ordering::SeqCst) {
            Some(PollReason::CatchUp)
        } else if self.last_poll.elapsed() >= self.safety_poll_interval() {
            Some(PollReason::Safety)
        } else {
            None
        }
    }

    /// Adds what the range's logs touch for watched wallets: balances of tracked tokens (a
    /// zero one too), a sender's allowances of the token it sent (a spender's `transferFrom`
    /// lowers an allowance with no `Approval`), approvals to tracked spenders; and notes
    /// incoming tokens for wallets with discovery on. Returns how many logs there were.
    async fn log_reads(
        &mut self,
        from: u64,
        to: u64,
        plan: &mut ReadPlan,
    ) -> Result<usize, PollerError> {
        let owners: Vec<Address> = self.watched.wallets().map(|(o, _)| *o).collect();
        let found = self.reader.owner_logs(from, to, &owners).await?;
        self.plan_touches(&found.logs, None, plan);
        self.plan_overflows(&found.overflows, plan);
        Ok(found.logs.len())
    }

    /// Every tracked value of owners whose logs in some block were more than the provider
    /// returns: any of them may have changed there.
    fn plan_overflows(&mut self, overflows: &[LogOverflow], plan: &mut ReadPlan) {
        for overflow in overflows {
            let Some(wallet) = self.watched.wallet(&overflow.owner) else {
                continue;
            };
            let spenders = wallet.spenders.clone();
            warn!(
                chain = self.chain_id,
                block = overflow.block,
                "a watched wallet's logs in one block exceed the provider's result cap; \
                 re-reading every value it tracks"
            );
            for token in self.watched.tokens(&overflow.owner) {
                if self.unreadable.contains(&token) {
                    continue;
                }
                plan.add_touched(overflow.owner, BalanceKey::Balance { token }, None);
                if token == NATIVE_TOKEN {
                    continue;
                }
                for spender in &spenders {
                    plan.add_touched(
                        overflow.owner,
                        BalanceKey::Allowance {
                            token,
                            spender: *spender,
                        },
                        None,
                    );
                }
            }
        }
    }

    /// The reads `logs` call for; `only` limits them to some wallets (a catch-up).
    fn plan_touches(
        &mut self,
        logs: &[alloy::rpc::types::Log],
        only: Option<&BTreeSet<Address>>,
        plan: &mut ReadPlan,
    ) {
        for log in logs {
            for touch in touches(&log.inner, log.transaction_hash) {
                if only.is_some_and(|o| !o.contains(&touch.owner)) {
                    continue;
                }
                let Some(wallet) = self.watched.wallet(&touch.owner) else {
                    continue;
                };
                let token = touch.key.token();
                if self.unreadable.contains(&token) {
                    continue;
                }
                match touch.key {
                    BalanceKey::Balance { .. } if self.watched.tracks(&touch.owner, &token) => {
                        plan.add_touched(touch.owner, touch.key, touch.tx_hash);
                        // Every tracked spender's: a zero one cannot go lower, but what the
                        // poller holds may lag what another writer stored.
                        if touch.sent && token != NATIVE_TOKEN {
                            for spender in &wallet.spenders {
                                let key = BalanceKey::Allowance {
                                    token,
                                    spender: *spender,
                                };
                                plan.add_touched(touch.owner, key, touch.tx_hash);
                            }
                        }
                    }
                    BalanceKey::Balance { .. } => {
                        if wallet.discover
                            && !touch.sent
                            && wallet.discovered < self.settings.max_discovered
                        {
                            self.discoveries.insert((touch.owner, token));
                        }
                    }
                    BalanceKey::Allowance { spender, .. } => {
                        if self
                            .watched
                            .tracks_allowance(&touch.owner, &token, &spender)
                        {
                            plan.add_touched(touch.owner, touch.key, touch.tx_hash);
                        }
                    }
                }
            }
        }
    }

    /// For wallets learned from the table since the last step: the events between the block
    /// their values were read at and this poller's cursor (`through`), which the poller
    /// processed before it watched them; and their native balance.
    async fn catch_up_reads(
        &mut self,
        through: u64,
        plan: &mut ReadPlan,
    ) -> Result<(), PollerError> {
        let pending = std::mem::take(&mut self.catch_up);
        if pending.is_empty() {
            return Ok(());
        }
        let wallets: BTreeSet<Address> = pending.iter().map(|(o, _)| *o).collect();
        for owner in &wallets {
            plan.add_touched(
                *owner,
                BalanceKey::Balance {
                    token: NATIVE_TOKEN,
                },
                None,
            );
        }
        let start = pending.iter().map(|(_, b)| *b).min().unwrap_or(through + 1);
        if start > through {
            return Ok(());
        }
        let start = start.max(through.saturating_sub(self.settings.max_block_range));
        let owners: Vec<Address> = wallets.iter().copied().collect();
        let found = self.reader.owner_logs(start, through, &owners).await?;
        self.plan_touches(&found.logs, Some(&wallets), plan);
        self.plan_overflows(&found.overflows, plan);
        debug!(
            chain = self.chain_id,
            wallets = wallets.len(),
            from = start,
            to = through,
            logs = found.logs.len(),
            "caught up"
        );
        Ok(())
    }

    /// How this step finds native balance changes: the cheapest way in billed units (see
    /// `chain::billing`) that keeps every streamed wallet's changes visible at the next block
    /// under `NATIVE_BALANCES=auto`; traces under `traces` (a long catch-up excepted); reads
    /// under `reads`, or while the node offers no trace method.
    fn choose_native_step(
        &self,
        from: u64,
        to: u64,
        first: &Head,
        last: &Head,
        plan: &ReadPlan,
    ) -> NativeStep {
        let Some(source) = self.traces else {
            return NativeStep::ReadStreamed;
        };
        let now = unix_now();
        let wallets = self.watched.len();
        let streamed = self
            .watched
            .wallets()
            .filter(|(_, w)| w.streaming_until > now)
            .count();
        let blocks = to - from + 1;
        let with_withdrawals = if blocks == 1 {
            u64::from(last.has_withdrawals())
        } else if first.has_withdrawals() || last.has_withdrawals() {
            blocks
        } else {
            0
        };
        let elapsed = self.last_sweep.elapsed().as_secs_f64();
        let poll = self.native_poll_interval.as_secs_f64().max(1.0);
        let cost = NativeCost {
            blocks,
            blocks_with_withdrawals: with_withdrawals,
            streamed,
            wallets,
            polled: ((wallets - streamed) as f64 * elapsed / poll).ceil() as usize,
            other_reads: plan.len(),
            chunk: self.reader.chunk(),
        };
        match self.native_mode {
            NativeBalances::Reads => NativeStep::ReadStreamed,
            NativeBalances::Auto => cost.cheapest(&ALCHEMY_UNITS, source).0,
            // Traces as asked, but for a catch-up over several blocks that one read of every
            // wallet covers for less.
            NativeBalances::Traces => match cost.units(&ALCHEMY_UNITS, source) {
                [(_, Some(trace)), _, (_, Some(all))] if blocks > 1 && all < trace => {
                    NativeStep::ReadAll
                }
                _ => NativeStep::Trace,
            },
        }
    }

    /// Native balances the range may have changed: with traces, those of the watched wallets
    /// its blocks name (senders, recipients, internal transfers, fee recipient,
    /// withdrawals); with reads, every streamed wallet's and the polled share of the others'
    /// (or, for a long catch-up, every wallet's once).
    async fn native_reads(
        &mut self,
        from: u64,
        to: u64,
        first: &Head,
        last: &Head,
        plan: &mut ReadPlan,
    ) -> Result<(), PollerError> {
        let step = self.choose_native_step(from, to, first, last, plan);
        let source = self.traces.unwrap_or(NativeSource::Reads);
        if step != self.native_step {
            debug!(
                chain = self.chain_id,
                from = self.native_step.name(source),
                to = step.name(source),
                "native balance changes found another way (cheaper now)"
            );
        }
        self.native_step = step;
        self.metrics
            .set_native_source(self.chain_id, step.name(source));
        match step {
            NativeStep::ReadStreamed => {
                self.wallet_native_reads(plan, NativeReads::StreamedAndPolled);
                return Ok(());
            }
            NativeStep::ReadAll => {
                self.wallet_native_reads(plan, NativeReads::All);
                return Ok(());
            }
            NativeStep::Trace => {}
        }
        match self
            .traced_native_reads(from, to, first, last, source, plan)
            .await
        {
            Err(PollerError::Chain(error)) if error.fault() == Fault::Unsupported => {
                // The plan no longer offers traces: every wallet read once covers this
                // range, and reads go on until the node is asked again.
                warn!(chain = self.chain_id, %error, "the node stopped answering traces; reading native balances per wallet");
                self.traces = None;
                self.next_trace_probe = Some(Instant::now() + REPROBE_MISSING);
                self.metrics
                    .set_traces(self.chain_id, TraceSupport::Missing);
                self.wallet_native_reads(plan, NativeReads::All);
                Ok(())
            }
            other => other,
        }
    }

    async fn traced_native_reads(
        &mut self,
        from: u64,
        to: u64,
        first: &Head,
        last: &Head,
        source: NativeSource,
        plan: &mut ReadPlan,
    ) -> Result<(), PollerError> {
        for number in from..=to {
            let head = if number == from {
                *first
            } else if number == to {
                *last
            } else {
                self.head(number.into()).await?
            };
            let accounts = self.reader.native_changes(&head, source).await?;
            for account in accounts {
                if self.watched.wallet(&account).is_some() {
                    plan.add_touched(
                        account,
                        BalanceKey::Balance {
                            token: NATIVE_TOKEN,
                        },
                        None,
                    );
                }
            }
        }
        Ok(())
    }

    /// Per-wallet native reads: every wallet, or those with an open stream (every step) and
    /// this step's share of the others (spread over the native poll interval), or that share
    /// alone.
    fn wallet_native_reads(&mut self, plan: &mut ReadPlan, which: NativeReads) {
        let now = unix_now();
        let native = BalanceKey::Balance {
            token: NATIVE_TOKEN,
        };
        let mut others = std::collections::BTreeMap::new();
        for (owner, wallet) in self.watched.wallets() {
            let streamed = wallet.streaming_until > now;
            if which == NativeReads::All || (streamed && which == NativeReads::StreamedAndPolled) {
                // Read, not touched: nothing on chain named the wallet, so a zero it holds
                // needs no tombstone write every block.
                plan.add(*owner, native);
            } else if !streamed {
                others.insert(*owner, ());
            }
        }
        let elapsed = self.last_sweep.elapsed();
        for owner in self.native_sweep.take(&others, elapsed) {
            plan.add(owner, native);
        }
    }

    /// This step's share of the two sweeps of held values: tokens seen changing silently
    /// every `SNAPSHOT_INTERVAL`, everything else every `SWEEP_ALL_INTERVAL` or, past
    /// `SWEEP_READS_PER_BLOCK` values a step, as fast as that budget allows.
    fn sweep_reads(&mut self, plan: &mut ReadPlan) {
        let elapsed = self.last_sweep.elapsed();
        self.last_sweep = Instant::now();
        for (owner, key) in self.silent_sweep.take(self.held.silent_values(), elapsed) {
            plan.add(owner, key);
        }
        for (owner, key) in self.all_sweep.take(self.held.all(), elapsed) {
            plan.add(owner, key);
        }
    }

    /// Re-reads of whole token sets that streams asked for, within this step's budget.
    fn rescan_reads(&mut self, plan: &mut ReadPlan) {
        let mut done = BTreeSet::new();
        let mut budget = RESCAN_READS_PER_STEP;
        while let Some(owner) = self.rescans.front().copied() {
            let tokens = self.watched.tokens(&owner);
            if !done.is_empty() && tokens.len() > budget {
                break;
            }
            self.rescans.pop_front();
            budget = budget.saturating_sub(tokens.len());
            for token in tokens.into_iter().filter(|t| !self.unreadable.contains(t)) {
                plan.add(owner, BalanceKey::Balance { token });
            }
            done.insert(owner);
        }
    }

    /// Rewinds after a reorg: finds the common ancestor in the cursor's history and moves the
    /// cursor back to it; the next step processes the new branch from there and re-reads
    /// every value written on the dropped one, letting those writes replace its values.
    async fn rewind(&mut self, cursor: &mut ChainCursor, head: Head) -> Result<(), PollerError> {
        let mut ancestor = None;
        for &(number, hash) in cursor.recent.iter().rev() {
            if number > head.number {
                continue;
            }
            if self.head(number.into()).await?.hash == hash {
                ancestor = Some((number, hash));
                break;
            }
        }
        // Deeper than the history: everything after its oldest block is suspect, and the
        // values written before the poller's memory of writes began are re-read in full.
        let (number, hash) = match ancestor {
            Some(found) => found,
            None => {
                let oldest = cursor
                    .recent
                    .first()
                    .map_or(0, |(n, _)| n.saturating_sub(1));
                let block = self.head(oldest.into()).await?;
                for (owner, key) in self.held.all().keys() {
                    self.pending.add_touched(*owner, *key, None);
                }
                (block.number, block.hash)
            }
        };
        warn!(
            chain = self.chain_id,
            from = cursor.block,
            ancestor = number,
            head = head.number,
            "reorg: rewinding"
        );
        for (block, ids) in &self.recent_writes {
            if *block > number {
                for (owner, key) in ids {
                    self.pending.add_touched(*owner, *key, None);
                }
            }
        }
        self.recent_writes.retain(|(block, _)| *block <= number);
        self.rewound_above = Some(number);
        let mut rewound = cursor.clone();
        rewound.recent.retain(|(n, _)| *n < number);
        *cursor = rewound.advanced(number, hash, unix_now());
        self.store_cursor(cursor).await
    }

    /// Stores the cursor, riding out a passing outage: the step's values are written by now,
    /// and only the cursor says so.
    async fn store_cursor(&self, cursor: &ChainCursor) -> Result<(), PollerError> {
        let chain = self.chain_id;
        retry::with_retry(
            || self.table.put_cursor(cursor),
            |attempt, error| warn!(chain, attempt, error, "cursor write failed; retrying"),
        )
        .await?;
        Ok(())
    }

    /// Remembers which values `block` wrote, for a rewind.
    pub(crate) fn remember_writes(&mut self, block: u64, ids: Vec<ValueId>) {
        if ids.is_empty() {
            return;
        }
        self.recent_writes.push_back((block, ids));
        while self.recent_writes.len() > CURSOR_RECENT_BLOCKS {
            self.recent_writes.pop_front();
        }
    }

    pub(crate) async fn head(&self, tag: BlockNumberOrTag) -> Result<Head, PollerError> {
        self.reader
            .head(tag)
            .await?
            .ok_or(PollerError::MissingBlock(
                tag.as_number().unwrap_or_default(),
            ))
    }
}

/// How long a live subscription may stay silent before the head is asked for over HTTP, given
/// the last gap between two heads it announced.
fn safety_poll_interval(announced_gap: Duration) -> Duration {
    (announced_gap * 2).clamp(SUBSCRIBED_POLL_INTERVAL, MAX_SUBSCRIBED_POLL_INTERVAL)
}

/// The pause after `failures` failed steps in a row: exponential with jitter (two pollers on
/// one chain do not retry in lockstep), capped.
fn backoff(failures: u32) -> Duration {
    STEP_BACKOFF.pause_with_jitter(failures)
}

/// Sleeps for `pause` or until a new head is announced, unless told to stop first; returns
/// whether to stop.
async fn wait_or_stop(
    stop: &mut watch::Receiver<bool>,
    heads: &HeadSignal,
    pause: Duration,
) -> bool {
    if pause.is_zero() {
        return *stop.borrow();
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => *stop.borrow(),
        _ = heads.new_head.notified() => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_subscription_never_waits_out_its_safety_check() {
        let second = Duration::from_secs(1);
        assert_eq!(safety_poll_interval(second), SUBSCRIBED_POLL_INTERVAL);
        // Mainnet: the next block is due well before the check.
        assert_eq!(safety_poll_interval(12 * second), 24 * second);
        assert_eq!(
            safety_poll_interval(3600 * second),
            MAX_SUBSCRIBED_POLL_INTERVAL
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_millis(500));
        assert!(backoff(2) >= Duration::from_millis(1000));
        assert!(backoff(30) <= MAX_BACKOFF + MAX_BACKOFF / 2);
    }
}
