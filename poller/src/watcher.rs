//! One chain's watcher: follow heads, ask for the logs that touch watched owners, re-read the
//! touched values plus every owner's native balance in Multicall3 at the range's last block,
//! write what changed, store the cursor. A parent-hash mismatch rewinds to the common
//! ancestor and re-reads every watched value.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use futures::{StreamExt, TryStreamExt, stream};
use live_balances::abi::IERC20;
use live_balances::chain::BalanceReader;
use live_balances::clock::unix_now;
use live_balances::config::{Settings, redact_urls};
use live_balances::model::{BalanceItem, BalanceKey, ChainCursor, TokenRead};
use live_balances::plan::{ReadPlan, Watchlist, owner_in_topic1_signatures, touches, watchlist};
use live_balances::storage::{Table, Written};
use live_balances::sweep::Sweep;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::PollerError;
use crate::heads::{Head, HeadSignal};
use crate::metrics::Metrics;

/// Most owners in one `eth_getLogs` topic filter; more are split over several requests.
const OWNERS_PER_FILTER: usize = 1000;
/// How many table writes run at once.
const WRITE_CONCURRENCY: usize = 16;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest a cursor goes unwritten while the chain is quiet.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Safety-net polling period while a head subscription is live.
const SUBSCRIBED_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Sessions are reloaded in full at least this often, even when their version says nothing
/// changed (a lost version bump costs at most this much delay).
const FULL_RELOAD: Duration = Duration::from_secs(60);

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

pub struct ChainWatcher {
    chain_id: u64,
    reader: BalanceReader,
    table: Table,
    metrics: Arc<Metrics>,
    heads: Arc<HeadSignal>,
    head_poll_interval: Duration,
    max_block_range: u64,
    sweep: Sweep,
    last_sweep: Instant,
    /// Last time the head was asked for over HTTP.
    last_poll: Instant,
    last_progress_log: Instant,
    /// Every watched value in a fixed order, rebuilt when the watchlist changes.
    all_values: Vec<(Address, BalanceKey)>,
    watchlist: Watchlist,
    /// Last value written (or found already stored) per watched value: unchanged values cost
    /// no table write at all.
    known: HashMap<(Address, BalanceKey), TokenRead>,
    /// The sessions version the watchlist was built from; `None` before the first load.
    sessions_version: Option<u64>,
    /// Earliest expiry among the loaded sessions: past it, they are reloaded (an open stream
    /// may have extended it, or the session ends).
    next_expiry: u64,
    last_full_reload: Instant,
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
        Self {
            chain_id,
            reader,
            table,
            metrics,
            heads,
            head_poll_interval: settings.head_poll_interval,
            max_block_range: settings.max_block_range,
            sweep: Sweep::new(settings.snapshot_interval),
            last_sweep: Instant::now(),
            last_poll: Instant::now(),
            last_progress_log: Instant::now() - HEARTBEAT,
            all_values: vec![],
            watchlist: Watchlist::new(),
            known: HashMap::new(),
            sessions_version: None,
            next_expiry: 0,
            last_full_reload: Instant::now(),
        }
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
        info!(
            chain = self.chain_id,
            block = cursor.block,
            "resuming from cursor"
        );
        let mut failures = 0u32;
        loop {
            let outcome = self.step(&mut cursor).await;
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
                    if unix_now().saturating_sub(cursor.updated_at) >= HEARTBEAT.as_secs() {
                        cursor.updated_at = unix_now();
                        if let Err(error) = self.table.put_cursor(&cursor).await {
                            warn!(chain = self.chain_id, %error, "heartbeat not stored");
                        }
                    }
                    // With a live subscription a new head wakes us; polling is only a safety net.
                    if self.heads.subscribed.load(Ordering::SeqCst) {
                        self.head_poll_interval.max(SUBSCRIBED_POLL_INTERVAL)
                    } else {
                        self.head_poll_interval
                    }
                }
                Err(error) => {
                    failures += 1;
                    self.metrics.count_error(self.chain_id, error.kind());
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
        // First start on this chain: begin at the head; sessions' values are read in full
        // when the watchlist is first loaded.
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

    /// Processes the next range of blocks.
    async fn step(&mut self, cursor: &mut ChainCursor) -> Result<Step, PollerError> {
        // With a live subscription the newest header is already here: no request for it.
        // Otherwise (no WebSocket, reconnecting, or the periodic safety check) ask for it.
        let announced = self
            .heads
            .latest()
            .filter(|h| cursor.hash_at(h.number) != Some(h.hash));
        let head = match announced {
            Some(head) if self.heads.subscribed.load(Ordering::SeqCst) => {
                // A head that arrives proves the subscription alive: the safety-net check
                // is only for one that has gone quiet.
                self.last_poll = Instant::now();
                head
            }
            _ if self.heads.subscribed.load(Ordering::SeqCst) && !self.poll_due() => {
                return Ok(Step::Idle);
            }
            _ => {
                self.last_poll = Instant::now();
                self.head(BlockNumberOrTag::Latest).await?
            }
        };
        // A head at or below the cursor is news only if its hash differs from the one we
        // processed at that height: the chain was replaced by another, maybe shorter, one.
        let replaced = cursor.hash_at(head.number).is_some_and(|h| h != head.hash);
        if head.number <= cursor.block && !replaced {
            self.metrics
                .set_chain(self.chain_id, cursor.block, head.number);
            return Ok(Step::Idle);
        }
        let mut plan = self.refresh_watchlist().await?;
        if head.number <= cursor.block {
            return self.rewind(cursor, head).await.map(|_| Step::CaughtUp);
        }
        let from = cursor.block + 1;
        let to = head.number.min(cursor.block + self.max_block_range);
        let first = if from == head.number {
            head
        } else {
            self.head(from.into()).await?
        };
        if first.parent_hash != cursor.hash {
            return self.rewind(cursor, head).await.map(|_| Step::CaughtUp);
        }
        let last = if to == head.number {
            head
        } else {
            self.head(to.into()).await?
        };

        let logs = self.owner_logs(from, to).await?;
        let touched = logs
            .iter()
            .flat_map(|l| touches(&l.inner, l.transaction_hash));
        let from_logs = ReadPlan::from_touches(touched, &self.watchlist);
        plan.reads.extend(from_logs.reads);
        plan.add_native_balances(&self.watchlist);
        let elapsed = self.last_sweep.elapsed();
        self.last_sweep = Instant::now();
        for (owner, key) in self.sweep.take(&self.all_values, elapsed) {
            plan.add(owner, key);
        }
        let written = self.apply(&plan, to, None).await?;
        *cursor = cursor.advanced(to, last.hash, unix_now());
        self.table.put_cursor(cursor).await?;
        self.metrics.set_chain(self.chain_id, to, head.number);
        if self.last_progress_log.elapsed() >= HEARTBEAT {
            self.last_progress_log = Instant::now();
            // One line per 30 s: the deployed lag alarm reads `blocks_behind` from it.
            info!(
                chain = self.chain_id,
                block = to,
                head = head.number,
                blocks_behind = head.number - to,
                "progress"
            );
        }
        debug!(
            chain = self.chain_id,
            from,
            to,
            logs = logs.len(),
            reads = plan.len(),
            written,
            "processed"
        );
        Ok(if to == head.number {
            Step::CaughtUp
        } else {
            Step::Behind
        })
    }

    /// Whether an HTTP head check is due while subscribed: right after a (re)subscription,
    /// which announces nothing produced before it, and then as a periodic safety net.
    fn poll_due(&self) -> bool {
        self.heads.catch_up.swap(false, Ordering::SeqCst)
            || self.last_poll.elapsed() >= SUBSCRIBED_POLL_INTERVAL
    }

    /// Reloads live sessions when they may have changed (their version moved, one of them
    /// reached its expiry, or the periodic full reload is due); returns a plan reading every
    /// value that is newly watched. Otherwise it costs one small read.
    async fn refresh_watchlist(&mut self) -> Result<ReadPlan, PollerError> {
        let now = unix_now();
        // Read before the sessions: a bump landing in between triggers another reload.
        let version = self.table.sessions_version(self.chain_id).await?;
        let due = self.sessions_version != Some(version)
            || now >= self.next_expiry
            || self.last_full_reload.elapsed() >= FULL_RELOAD;
        if !due {
            return Ok(ReadPlan::default());
        }
        let sessions = self.table.sessions(self.chain_id).await?;
        let live: Vec<_> = sessions.iter().filter(|s| s.expires_at > now).collect();
        let next_expiry = live.iter().map(|s| s.expires_at).min().unwrap_or(u64::MAX);
        // The api refuses new sessions past MAX_SESSIONS_PER_CHAIN by this count. Advisory:
        // a failed write is retried at the next reload, and never holds the watchlist back.
        if let Err(error) = self
            .table
            .set_live_sessions(self.chain_id, live.len() as u64)
            .await
        {
            warn!(chain = self.chain_id, %error, "live session count not stored");
        }
        let fresh = watchlist(live);
        let mut plan = ReadPlan::default();
        for (owner, watch) in &fresh {
            let before = self.watchlist.get(owner);
            if before == Some(watch) {
                continue;
            }
            let known: BTreeSet<BalanceKey> =
                before.map(|b| b.keys().collect()).unwrap_or_default();
            for key in watch.keys().filter(|k| !known.contains(k)) {
                plan.add(*owner, key);
            }
        }
        let dropped: BTreeSet<Address> = self
            .watchlist
            .keys()
            .filter(|o| !fresh.contains_key(*o))
            .copied()
            .collect();
        if !dropped.is_empty() {
            self.known.retain(|(owner, _), _| !dropped.contains(owner));
            info!(
                chain = self.chain_id,
                owners = dropped.len(),
                "sessions expired; no longer watched"
            );
        }
        if !plan.is_empty() {
            info!(
                chain = self.chain_id,
                values = plan.len(),
                "newly watched values"
            );
            self.learn_stored_values(&plan).await?;
        }
        if !plan.is_empty() || !dropped.is_empty() {
            self.all_values = fresh
                .iter()
                .flat_map(|(owner, watch)| watch.keys().map(move |k| (*owner, k)))
                .collect();
            self.all_values.sort();
        }
        self.watchlist = fresh;
        // Marked as loaded only now: a reload that failed half-way is tried again next block.
        self.sessions_version = Some(version);
        self.next_expiry = next_expiry;
        self.last_full_reload = Instant::now();
        Ok(plan)
    }

    /// Learns what the table already holds for newly watched values (the api wrote their
    /// initial values when the session was created), so reading them costs no table write
    /// unless they changed since: one query per wallet instead of a conditional write per
    /// value — 10,000 for a 5,000-token session.
    async fn learn_stored_values(&mut self, plan: &ReadPlan) -> Result<(), PollerError> {
        let owners: BTreeSet<Address> = plan.reads.keys().map(|(owner, _)| *owner).collect();
        let table = &self.table;
        let known = &mut self.known;
        let chain_id = self.chain_id;
        // Each wallet's items are folded in as they arrive: holding every wallet's items at
        // once would make the poller's peak memory that of the whole table's share of it.
        let mut stored = stream::iter(owners)
            .map(|owner| async move { table.balances(chain_id, &owner).await })
            .buffer_unordered(WRITE_CONCURRENCY);
        while let Some(items) = stored.try_next().await? {
            for item in items {
                let pair = (item.owner, item.key);
                if plan.reads.contains_key(&pair) {
                    known.entry(pair).or_insert(item.read);
                }
            }
        }
        Ok(())
    }

    /// Rewinds after a reorg: finds the common ancestor in the cursor's history, re-reads
    /// every watched value at the new head, and lets those writes replace values read on the
    /// dropped branch.
    async fn rewind(&mut self, cursor: &mut ChainCursor, head: Head) -> Result<(), PollerError> {
        let mut ancestor = None;
        for &(number, hash) in cursor.recent.iter().rev() {
            if number > head.number {
                continue;
            }
            if self.head(number.into()).await?.hash == hash {
                ancestor = Some(number);
                break;
            }
        }
        // Deeper than the history: everything after its oldest block is suspect.
        let ancestor = ancestor.unwrap_or_else(|| {
            cursor
                .recent
                .first()
                .map_or(0, |(n, _)| n.saturating_sub(1))
        });
        warn!(
            chain = self.chain_id,
            from = cursor.block,
            ancestor,
            head = head.number,
            "reorg: rewinding"
        );
        let mut plan = ReadPlan::default();
        plan.add_everything(&self.watchlist);
        self.known.clear();
        self.apply(&plan, head.number, Some(ancestor)).await?;
        let mut rewound = cursor.clone();
        rewound.recent.retain(|(n, _)| *n <= ancestor);
        *cursor = rewound.advanced(head.number, head.hash, unix_now());
        self.table.put_cursor(cursor).await?;
        Ok(())
    }

    /// Reads the plan at `block` and writes what changed. Returns how many items were written.
    async fn apply(
        &mut self,
        plan: &ReadPlan,
        block: u64,
        rewound_above: Option<u64>,
    ) -> Result<usize, PollerError> {
        if plan.is_empty() {
            return Ok(0);
        }
        let pairs: Vec<(Address, BalanceKey)> = plan.reads.keys().copied().collect();
        for _ in 0..pairs.len().div_ceil(self.reader.chunk()) {
            self.metrics.count_rpc(self.chain_id, "eth_call");
        }
        let reads = self.reader.read(&pairs, block).await?;
        let now = unix_now();
        let changed: Vec<BalanceItem> = pairs
            .iter()
            .zip(reads)
            .filter(|(pair, read)| self.known.get(pair) != Some(read))
            .map(|(&(owner, key), read)| BalanceItem {
                chain_id: self.chain_id,
                owner,
                key,
                read,
                block,
                tx_hash: plan.reads.get(&(owner, key)).copied().flatten(),
            })
            .collect();
        let table = &self.table;
        let outcomes: Vec<(BalanceItem, Written)> = stream::iter(changed)
            .map(|item| async move {
                let written = table.put_balance(&item, now, rewound_above).await?;
                Ok::<_, PollerError>((item, written))
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut written = 0;
        let attempted = outcomes.len() as u64;
        for (item, outcome) in outcomes {
            if outcome == Written::Yes {
                written += 1;
            }
            self.known.insert((item.owner, item.key), item.read);
        }
        self.metrics
            .count_writes(self.chain_id, "written", written as u64);
        self.metrics
            .count_writes(self.chain_id, "skipped", attempted - written as u64);
        Ok(written)
    }

    /// Logs in `[from, to]` that can touch a watched owner: one filter with the owner as first
    /// indexed topic (Transfer from, Approval owner, WETH Deposit/Withdrawal) and one with the
    /// owner as second (Transfer to), per chunk of owners.
    async fn owner_logs(&self, from: u64, to: u64) -> Result<Vec<Log>, PollerError> {
        let owners: Vec<B256> = self.watchlist.keys().map(|o| o.into_word()).collect();
        let mut logs = vec![];
        for chunk in owners.chunks(OWNERS_PER_FILTER) {
            let base = Filter::new().from_block(from).to_block(to);
            let by_topic1 = base
                .clone()
                .event_signature(owner_in_topic1_signatures())
                .topic1(chunk.to_vec());
            let by_topic2 = base
                .event_signature(IERC20::Transfer::SIGNATURE_HASH)
                .topic2(chunk.to_vec());
            let provider = self.reader.provider();
            self.metrics.count_rpc(self.chain_id, "eth_getLogs");
            self.metrics.count_rpc(self.chain_id, "eth_getLogs");
            let (a, b) =
                tokio::try_join!(provider.get_logs(&by_topic1), provider.get_logs(&by_topic2))
                    .map_err(|e| PollerError::Rpc(redact_urls(&e.to_string())))?;
            logs.extend(a.into_iter().chain(b).filter(|l| !l.removed));
        }
        // Oldest first, so the last transaction to touch a value is the one reported.
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        Ok(logs)
    }

    async fn head(&self, tag: BlockNumberOrTag) -> Result<Head, PollerError> {
        self.metrics
            .count_rpc(self.chain_id, "eth_getBlockByNumber");
        let block = self
            .reader
            .provider()
            .get_block_by_number(tag)
            .await
            .map_err(|e| PollerError::Rpc(redact_urls(&e.to_string())))?;
        let block = block.ok_or(PollerError::MissingBlock(
            tag.as_number().unwrap_or_default(),
        ))?;
        Ok(Head {
            number: block.header.number,
            hash: block.header.hash,
            parent_hash: block.header.parent_hash,
        })
    }
}

/// Exponential backoff with jitter, capped.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1 << failures.min(8))
        .min(MAX_BACKOFF);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Up to +50%: enough to keep two pollers from retrying in lockstep.
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
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
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_millis(500));
        assert!(backoff(2) >= Duration::from_millis(1000));
        assert!(backoff(30) <= MAX_BACKOFF + MAX_BACKOFF / 2);
    }
}
