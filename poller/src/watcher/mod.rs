//! One chain's watcher: follow heads; per block range, re-read exactly what the chain says may
//! have changed for a watched wallet — values its logs touch (owner-topic filters), native
//! balances of the accounts its traces name — plus this step's share of the sweeps, the
//! first reads of newly tracked values and the re-reads streams asked for; write what
//! changed; store the cursor. A parent-hash mismatch rewinds to the common ancestor.
//!
//! Nothing here grows with the size of the token lists wallets follow: a step's work follows
//! what changed on chain and what wallets hold (see `held`, `watched`).
//!
//! This file is the loop (start, steps, pauses, heartbeat, stop). A step is one recipe of
//! stages (`step`) drawing on the watcher's state, a type per concern: head pacing
//! (`pacing`), the sweeps (`sweeps`), work owed to the next step (`backlog`), what a reorg
//! must undo (`reorg`), how native changes are found (`native`, read by `native_reads`), the
//! watched set and the session log that keeps it current (`sessions`), the values held and
//! when the Permit2 allowances among them lapse (`crate::held`), the table's facts about the
//! chain's tokens (`token_facts`), and what the watcher reports
//! (`report`). `touches` plans what logs name; `writes` reads a plan, writes what changed
//! and starts tracking tokens found by discovery.

mod backlog;
mod native;
mod native_reads;
mod pacing;
mod recent_logs;
mod reorg;
mod report;
mod sessions;
mod step;
mod sweeps;
mod token_facts;
mod touches;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use live_balances::chain::{BalanceReader, NativeSource};
use live_balances::domain::model::ChainCursor;
use live_balances::runtime::backoff::Backoff;
use live_balances::runtime::clock::unix_now;
use live_balances::runtime::poller_health;
use live_balances::storage::{Table, retry};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::PollerError;
use crate::heads::{Head, HeadSignal};
use crate::held::HeldValues;
use crate::metrics::Metrics;
use crate::settings::PollerSettings;
use backlog::Backlog;
use native::NativeChoice;
use pacing::HeadPacing;
use recent_logs::RecentLogs;
use reorg::ReorgMemory;
use report::{ChainReport, Progress};
use sessions::Watching;
use step::{Done, Path};
use sweeps::Sweeps;
use token_facts::TokenFactsRead;

/// Longest pause between failed steps. Short: a failed step has already waited out its
/// requests' rate limits and failing endpoints (see the chain adapter's transport), so a
/// long pause would only delay noticing that the provider is back.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const STEP_BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), MAX_BACKOFF);

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

/// Settings a watcher's steps read.
#[derive(Debug, Clone)]
struct WatcherSettings {
    max_block_range: u64,
    feed_ttl: Duration,
    max_discovered: usize,
}

pub struct ChainWatcher {
    chain_id: u64,
    reader: BalanceReader,
    table: Table,
    settings: WatcherSettings,
    report: ChainReport,
    pacing: HeadPacing,
    sweeps: Sweeps,
    backlog: Backlog,
    reorg: ReorgMemory,
    recent_logs: RecentLogs,
    native: NativeChoice,
    watching: Watching,
    held: HeldValues,
    token_facts: TokenFactsRead,
}

impl ChainWatcher {
    pub fn new(
        chain_id: u64,
        reader: BalanceReader,
        table: Table,
        settings: &PollerSettings,
        metrics: Arc<Metrics>,
        heads: Arc<HeadSignal>,
    ) -> Self {
        Self {
            chain_id,
            reader,
            table,
            settings: WatcherSettings {
                max_block_range: settings.rpc.max_block_range,
                feed_ttl: settings.feed_ttl,
                max_discovered: settings.max_discovered_tokens,
            },
            report: ChainReport::new(chain_id, metrics),
            pacing: HeadPacing::new(
                heads,
                settings.head_poll_interval,
                settings.snapshot_interval,
            ),
            sweeps: Sweeps::new(
                settings.snapshot_interval,
                settings.sweep_all_interval,
                settings.sweep_reads_per_block,
                settings.native_poll_interval,
            ),
            backlog: Backlog::default(),
            reorg: ReorgMemory::default(),
            recent_logs: RecentLogs::default(),
            native: NativeChoice::new(settings.native_balances, settings.native_poll_interval),
            watching: Watching::new(
                settings.chains.get(&chain_id).and_then(|c| c.weth),
                settings.session_pass_interval,
            ),
            held: HeldValues::default(),
            token_facts: TokenFactsRead::default(),
        }
    }

    /// Runs until `stop` turns true; the block being processed is finished first.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), PollerError> {
        let mut cursor = loop {
            match self.start_cursor().await {
                Ok(c) => break c,
                Err(error) => {
                    warn!(chain = self.chain_id, %error, "cannot start yet; retrying");
                    if self
                        .pacing
                        .wait_or_stop(&mut stop, Duration::from_secs(2))
                        .await
                    {
                        return Ok(());
                    }
                }
            }
        };
        self.probe_traces_if_due().await?;
        info!(
            chain = self.chain_id,
            block = cursor.block,
            traces = self.native.traces().map(NativeSource::name),
            "resuming from cursor"
        );
        self.report.progressed(cursor.block);
        self.report.native_source(NativeSource::Reads.name());
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
                Ok(Step::Idle) if self.pacing.idle_work_due() => {
                    let quiet = self.execute(&mut cursor, Path::Quiet).await;
                    if quiet.is_ok() {
                        self.report.progressed(cursor.block);
                    }
                    quiet.map(|_| Step::Idle)
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
                    self.heartbeat(&mut cursor).await;
                    self.pacing.caught_up_pause()
                }
                Err(error) => {
                    failures += 1;
                    self.report.step_failed(error.kind());
                    let pause = backoff(failures);
                    warn!(chain = self.chain_id, %error, retry_in_ms = pause.as_millis() as u64, "step failed");
                    pause
                }
            };
            if *stop.borrow() || self.pacing.wait_or_stop(&mut stop, pause).await {
                info!(chain = self.chain_id, block = cursor.block, "stopped");
                return Ok(());
            }
        }
    }

    /// A quiet chain still gets a heartbeat, so health checks can tell a stalled poller from
    /// an idle chain.
    async fn heartbeat(&self, cursor: &mut ChainCursor) {
        if unix_now().saturating_sub(cursor.updated_at) >= poller_health::CURSOR_HEARTBEAT.as_secs()
        {
            cursor.updated_at = unix_now();
            if let Err(error) = self.table.put_cursor(cursor).await {
                warn!(chain = self.chain_id, %error, "heartbeat not stored");
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

    /// Processes the next range of blocks, if there is one.
    async fn step(&mut self, cursor: &mut ChainCursor) -> Result<Step, PollerError> {
        let Some(head) = self.next_head(cursor).await? else {
            return Ok(Step::Idle);
        };
        self.report.head_seen(head.number);
        // A head at or below the cursor is news only if its hash differs from the one we
        // processed at that height: the chain was replaced by another, maybe shorter, one.
        let replaced = cursor.hash_at(head.number).is_some_and(|h| h != head.hash);
        if head.number <= cursor.block && !replaced {
            self.report.progressed(cursor.block);
            return Ok(Step::Idle);
        }
        let to = match self.execute(cursor, Path::Blocks(head)).await? {
            Done::Processed(to) => to,
            Done::Unwound | Done::Quiet => return Ok(Step::Behind),
        };
        self.report.progressed(to);
        self.report.log_progress(Progress {
            block: to,
            head: head.number,
            wallets: self.watching.set().len(),
            held: self.held.len(),
        });
        Ok(if to == head.number {
            Step::CaughtUp
        } else {
            Step::Behind
        })
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

    async fn head(&self, tag: BlockNumberOrTag) -> Result<Head, PollerError> {
        self.reader
            .head(tag)
            .await?
            .ok_or(PollerError::MissingBlock(
                tag.as_number().unwrap_or_default(),
            ))
    }
}

/// The pause after `failures` failed steps in a row: exponential with jitter (two pollers on
/// one chain do not retry in lockstep), capped.
fn backoff(failures: u32) -> Duration {
    STEP_BACKOFF.pause_with_jitter(failures)
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
