//! The step planner: one ordered recipe of stages for every step, with or without a new
//! block. A step over blocks runs them all against a range that continues the cursor (the
//! checkpoint); a quiet step — no new block, but sweeps, first reads and re-reads due — runs
//! the same recipe at the block already processed, leaving out what only new blocks call for.
//! A range that does not continue the cursor is unwound instead: back to the common ancestor,
//! whose next step re-reads what the dropped branch wrote (reth's stages — `execute` and
//! `unwind` with a checkpoint — are the model).

use alloy::eips::BlockNumberOrTag;
use live_balances::domain::model::ChainCursor;
use live_balances::domain::plan::ReadPlan;
use live_balances::runtime::clock::unix_now;
use tracing::{debug, warn};

use super::ChainWatcher;
use super::pacing::HeadCheck;
use super::touches::CatchUp;
use crate::error::PollerError;
use crate::heads::Head;

/// One stage of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The watched set brought up to date: session log, lists, facts, the background pass.
    Refresh,
    /// The range continues the cursor, else the step unwinds to the common ancestor.
    Fork,
    /// The plan starts from the queued work: first reads, re-reads.
    Backlog,
    /// Events between the api's read of newly learned wallets and the cursor, and their
    /// native balances. Over blocks, fetched beside the range's logs (one round trip) and
    /// planned before them: the range's own touches then name each value's latest
    /// transaction.
    CatchUp,
    /// What the range's logs touch for watched wallets; incoming tokens for discovery.
    Logs,
    /// Native balances the range may have changed — or, without a block, the polled share.
    Native,
    /// This step's share of the sweeps of held values.
    Sweeps,
    /// Permit2 allowances whose expiration the range's last block is past (no event says
    /// so): read at that block, which finds them expired.
    Expiries,
    /// Whole-token-set re-reads streams asked for, within the step's budget.
    Rescans,
    /// Tokens noted for discovery start being tracked (after `Logs`, which notes them).
    Discover,
    /// The plan read at the step's block and what changed written: after every stage that
    /// adds to it. A rewind's dropped branch is replaced once these writes land.
    Write,
    /// The cursor stored past the range: last, so a failed step is done again whole.
    Checkpoint,
}

/// Which path a step takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// New blocks up to this head.
    Blocks(Head),
    /// No new block: idle work at the block already processed.
    Quiet,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    /// Processed blocks up to this one.
    Processed(u64),
    /// Idle work done at the cursor.
    Quiet,
    /// Unwound to the common ancestor.
    Unwound,
}

/// Every stage, in the order every step runs them.
pub(crate) const RECIPE: [Stage; 12] = [
    Stage::Refresh,
    Stage::Fork,
    Stage::Backlog,
    Stage::CatchUp,
    Stage::Logs,
    Stage::Native,
    Stage::Sweeps,
    Stage::Expiries,
    Stage::Rescans,
    Stage::Discover,
    Stage::Write,
    Stage::Checkpoint,
];

impl Stage {
    /// Whether a step on `path` runs this stage: a quiet step has no range to check, no logs
    /// to read, no new block time for allowances to lapse by and no cursor to move.
    fn runs_on(self, path: &Path) -> bool {
        match path {
            Path::Blocks(_) => true,
            Path::Quiet => !matches!(
                self,
                Self::Fork | Self::Logs | Self::Expiries | Self::Checkpoint
            ),
        }
    }
}

/// The stages a step on `path` runs, in order.
pub(crate) fn stages(path: &Path) -> impl Iterator<Item = Stage> + '_ {
    RECIPE.into_iter().filter(move |s| s.runs_on(path))
}

/// The blocks a step over new blocks covers: `first` continues the cursor.
#[derive(Debug, Clone, Copy)]
struct Range {
    first: Head,
    last: Head,
}

impl ChainWatcher {
    /// The chain's newest head, when there may be one to process: the one the subscription
    /// announced, else (no WebSocket, reconnecting, or the periodic safety check) asked for.
    /// `None`: the subscription is live and quiet, nothing to do.
    pub(super) async fn next_head(
        &mut self,
        cursor: &ChainCursor,
    ) -> Result<Option<Head>, PollerError> {
        let reason = match self.pacing.check(cursor) {
            HeadCheck::Announced(head) => return Ok(Some(head)),
            HeadCheck::Quiet => return Ok(None),
            HeadCheck::Ask(reason) => reason,
        };
        let head = self.head(BlockNumberOrTag::Latest).await?;
        if self.pacing.asked(reason, &head) {
            // Blocks the live subscription never announced: it is silent, not the chain.
            warn!(
                chain = self.chain_id,
                head = head.number,
                last_announced = self.pacing.last_announced(),
                "the head subscription missed blocks; subscribing again"
            );
            self.pacing.resubscribe();
        }
        Ok(Some(head))
    }

    /// Runs one step on `path`: the recipe's stages in order. A step that fails gives back
    /// the work it took from the backlog — and everything else it had planned, which is
    /// harmless to read again — so the step done again whole loses nothing: a rewind's
    /// re-reads, new values' first reads, a new wallet's catch-up.
    pub(super) async fn execute(
        &mut self,
        cursor: &mut ChainCursor,
        path: Path,
    ) -> Result<Done, PollerError> {
        let mut plan = ReadPlan::default();
        let mut catch_up = None;
        let done = self
            .run_stages(cursor, path, &mut plan, &mut catch_up)
            .await;
        if done.is_err() {
            self.backlog.queue_reads(plan);
            if let Some(due) = catch_up {
                self.backlog.give_back_catch_up(due.into_pending());
            }
        }
        done
    }

    async fn run_stages(
        &mut self,
        cursor: &mut ChainCursor,
        path: Path,
        plan: &mut ReadPlan,
        catch_up: &mut Option<CatchUp>,
    ) -> Result<Done, PollerError> {
        let mut range = None;
        let (mut logs, mut written) = (0, 0);
        for stage in stages(&path) {
            match stage {
                Stage::Refresh => self.refresh_watched(cursor.block).await?,
                Stage::Fork => {
                    let Path::Blocks(head) = path else { continue };
                    match self.continuing_range(cursor, head).await? {
                        Some(found) => range = Some(found),
                        None => {
                            self.rewind(cursor, head).await?;
                            return Ok(Done::Unwound);
                        }
                    }
                }
                Stage::Backlog => *plan = self.backlog.take_reads(),
                Stage::CatchUp => {
                    // The blocks before the range; the cursor's own on a quiet step, which
                    // has no range's logs to fetch it beside.
                    let through = range.map_or(cursor.block, |r: Range| r.first.number - 1);
                    *catch_up = self.catch_up_due(through, plan);
                    if range.is_none() {
                        self.catch_up_reads(catch_up, plan).await?;
                    }
                }
                Stage::Logs => {
                    if let Some(Range { first, last }) = range {
                        logs = self
                            .log_reads(first.number, (last.number, last.hash), catch_up, plan)
                            .await?;
                    }
                }
                Stage::Native => match range {
                    Some(Range { first, last }) => self.native_reads(&first, &last, plan).await?,
                    None => self.polled_native_reads(plan),
                },
                Stage::Sweeps => {
                    for (owner, key) in self.sweeps.held_share(&self.held) {
                        plan.add(owner, key);
                    }
                }
                Stage::Expiries => {
                    if let Some(Range { last, .. }) = range {
                        // Touched: time passing is the chain's change, not a silent one.
                        for (owner, key) in self.held.lapsed(last.timestamp) {
                            plan.add_touched(owner, key, None);
                        }
                    }
                }
                Stage::Rescans => {
                    let (watched, held) = (self.watching.set(), &self.held);
                    self.backlog.rescan_reads(
                        |owner| watched.tokens(owner),
                        |token| !held.is_unreadable(token),
                        plan,
                    );
                }
                Stage::Discover => self.discover(plan).await?,
                Stage::Write => {
                    let block = range.map_or(cursor.block, |r| r.last.number);
                    written = self.apply(plan, block, self.reorg.rewound_above()).await?;
                    self.reorg.settled();
                }
                Stage::Checkpoint => {
                    if let Some(Range { last, .. }) = range {
                        *cursor = cursor.advanced(last.number, last.hash, unix_now());
                        self.store_cursor(cursor).await?;
                    }
                }
            }
        }
        self.pacing.stepped();
        self.report.stepped(range.is_some());
        let Some(Range { first, last }) = range else {
            if !plan.is_empty() {
                debug!(
                    chain = self.chain_id,
                    block = cursor.block,
                    reads = plan.len(),
                    "quiet step"
                );
            }
            return Ok(Done::Quiet);
        };
        debug!(
            chain = self.chain_id,
            from = first.number,
            to = last.number,
            logs,
            reads = plan.len(),
            written,
            lapsing = self.held.lapsing(),
            "processed"
        );
        Ok(Done::Processed(last.number))
    }

    /// The next range up to `head` (at most `MAX_BLOCK_RANGE` blocks), when it continues the
    /// cursor; `None` when the chain the cursor followed was replaced.
    async fn continuing_range(
        &self,
        cursor: &ChainCursor,
        head: Head,
    ) -> Result<Option<Range>, PollerError> {
        if head.number <= cursor.block {
            return Ok(None);
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
            return Ok(None);
        }
        let last = if to == head.number {
            head
        } else {
            self.head(to.into()).await?
        };
        Ok(Some(Range { first, last }))
    }

    /// Unwinds after a reorg: finds the common ancestor in the cursor's history and moves the
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
            Some(found) => {
                self.recent_logs.rewind_to(found.0);
                found
            }
            None => {
                // The blocks the memory of logs holds may all be of the dropped branch.
                self.recent_logs.clear();
                let oldest = cursor
                    .recent
                    .first()
                    .map_or(0, |(n, _)| n.saturating_sub(1));
                let block = self.head(oldest.into()).await?;
                for (owner, key) in self.held.all().keys() {
                    self.backlog.queue_reread(*owner, *key);
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
        for (owner, key) in self.reorg.rewind_to(number) {
            self.backlog.queue_reread(owner, key);
        }
        let mut rewound = cursor.clone();
        rewound.recent.retain(|(n, _)| *n < number);
        *cursor = rewound.advanced(number, hash, unix_now());
        self.store_cursor(cursor).await
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};

    use super::*;

    fn position(stage: Stage) -> usize {
        RECIPE
            .iter()
            .position(|s| *s == stage)
            .expect("in the recipe")
    }

    fn blocks() -> Path {
        Path::Blocks(Head {
            number: 1,
            hash: B256::ZERO,
            parent_hash: B256::ZERO,
            beneficiary: Address::ZERO,
            withdrawals_root: None,
            timestamp: 0,
        })
    }

    #[test]
    fn both_paths_run_one_recipe_in_one_order() {
        let quiet: Vec<Stage> = stages(&Path::Quiet).collect();
        let block: Vec<Stage> = stages(&blocks()).collect();
        assert_eq!(block, RECIPE);
        // The quiet path is the same recipe without what only new blocks call for.
        let without: Vec<Stage> = RECIPE
            .into_iter()
            .filter(|s| ![Stage::Fork, Stage::Logs, Stage::Expiries, Stage::Checkpoint].contains(s))
            .collect();
        assert_eq!(quiet, without);
    }

    #[test]
    fn the_order_keeps_each_stage_after_what_it_depends_on() {
        // The watched set is current before anything reads it, and the range is known to
        // continue the cursor before anything is planned for it.
        assert_eq!(position(Stage::Refresh), 0);
        assert_eq!(position(Stage::Fork), 1);
        // Queued work first; a catch-up's older logs before the range's own.
        assert!(position(Stage::Backlog) < position(Stage::CatchUp));
        assert!(position(Stage::CatchUp) < position(Stage::Logs));
        // Discovery takes what the logs noted.
        assert!(position(Stage::Logs) < position(Stage::Discover));
        // Every stage that adds reads runs before the write, the cursor after it.
        for stage in [
            Stage::Backlog,
            Stage::CatchUp,
            Stage::Logs,
            Stage::Native,
            Stage::Sweeps,
            Stage::Expiries,
            Stage::Rescans,
            Stage::Discover,
        ] {
            assert!(position(stage) < position(Stage::Write), "{stage:?}");
        }
        assert_eq!(position(Stage::Checkpoint), RECIPE.len() - 1);
    }
}
