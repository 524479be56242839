//! What one chain's watcher reports as it goes: the state `/health` and the metrics read
//! (processed block, head, failing steps, trace support, how native changes are found,
//! wallets watched and still unlearned, writes, session changes applied), the `progress` log
//! line every 30 s, which the deployed lag alarm reads, and a summary line of the session
//! changes applied every 30 s there were any.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use crate::metrics::{Metrics, TraceSupport};

/// How often the `progress` line is logged (the deployed lag alarm reads it; its period is
/// the alarm's).
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(30);
/// How often a summary of the session changes applied is logged (when there were any).
const SESSION_SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// One chain's reporting to the process's metrics.
#[derive(Debug)]
pub(crate) struct ChainReport {
    chain_id: u64,
    metrics: Arc<Metrics>,
    /// When the last `progress` line was logged.
    progress_logged: Instant,
    /// Session changes applied since the last summary line, by kind, and when that was logged.
    session_changes: BTreeMap<&'static str, u64>,
    session_summary_logged: Instant,
}

/// Where the chain's watched set stands, for the session summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WatchedCounts {
    pub wallets: usize,
    /// Sessions whose writer is still storing their values.
    pub waiting: usize,
}

/// Where a step left the chain, for the `progress` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub block: u64,
    pub head: u64,
    pub wallets: usize,
    pub held: usize,
}

impl ChainReport {
    pub(crate) fn new(chain_id: u64, metrics: Arc<Metrics>) -> Self {
        Self {
            chain_id,
            metrics,
            progress_logged: Instant::now() - PROGRESS_LOG_EVERY,
            session_changes: BTreeMap::new(),
            session_summary_logged: Instant::now(),
        }
    }

    /// The node's newest head: known before anything can fail, so `/health` shows how far
    /// behind a failing poller is.
    pub(crate) fn head_seen(&self, head: u64) {
        self.metrics.set_head(self.chain_id, head);
    }

    /// A step completed (a new block, or an idle check) with `block` processed.
    pub(crate) fn progressed(&self, block: u64) {
        self.metrics.progressed(self.chain_id, block);
    }

    /// A step completed: over new blocks, or idle work between them.
    pub(crate) fn stepped(&self, over_blocks: bool) {
        let kind = if over_blocks { "blocks" } else { "idle" };
        self.metrics.count_step(self.chain_id, kind);
    }

    /// A step failed with an error of `kind`.
    pub(crate) fn step_failed(&self, kind: &'static str) {
        self.metrics.step_failed(self.chain_id, kind);
    }

    pub(crate) fn traces(&self, support: TraceSupport) {
        self.metrics.set_traces(self.chain_id, support);
    }

    /// How native balance changes are found now.
    pub(crate) fn native_source(&self, name: &'static str) {
        self.metrics.set_native_source(self.chain_id, name);
    }

    pub(crate) fn unlearned(&self, wallets: usize) {
        self.metrics.set_unlearned(self.chain_id, wallets as u64);
    }

    /// Counts `by` session changes of `kind` applied (`poller_session_changes_total{kind}`,
    /// and the next summary line).
    pub(crate) fn session_changes(&mut self, kind: &'static str, by: u64) {
        if by == 0 {
            return;
        }
        self.metrics.count_session_changes(self.chain_id, kind, by);
        *self.session_changes.entry(kind).or_default() += by;
    }

    /// One line every half minute with the session changes applied since the last (if any).
    pub(crate) fn log_session_summary(&mut self, watched: WatchedCounts) {
        if self.session_summary_logged.elapsed() < SESSION_SUMMARY_EVERY
            || self.session_changes.is_empty()
        {
            return;
        }
        self.session_summary_logged = Instant::now();
        let applied = std::mem::take(&mut self.session_changes);
        info!(
            chain = self.chain_id,
            wallets = watched.wallets,
            waiting = watched.waiting,
            changes = ?applied,
            "session changes applied"
        );
    }

    /// Counts a catch-up of newly learned wallets by where its events came from: `memory`
    /// (the logs of the blocks processed last) or `provider`.
    pub(crate) fn catch_up(&self, source: &'static str) {
        self.metrics.count_catch_up(self.chain_id, source);
    }

    /// Counts a step's value writes: those that changed the table and those it skipped.
    pub(crate) fn writes(&self, written: usize, skipped: usize) {
        self.metrics
            .count_writes(self.chain_id, "written", written as u64);
        self.metrics
            .count_writes(self.chain_id, "skipped", skipped as u64);
    }

    /// The wallets watched after a step over blocks, and one `progress` line per 30 s;
    /// whether it was logged.
    pub(crate) fn log_progress(&mut self, progress: Progress) -> bool {
        self.metrics
            .set_watched(self.chain_id, progress.wallets as u64);
        if self.progress_logged.elapsed() < PROGRESS_LOG_EVERY {
            return false;
        }
        self.progress_logged = Instant::now();
        let Progress {
            block,
            head,
            wallets,
            held,
        } = progress;
        info!(
            chain = self.chain_id,
            block,
            head,
            blocks_behind = head - block,
            wallets,
            held,
            "progress"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_sees_the_head_before_the_step_and_progress_after_it() {
        let metrics = Arc::new(Metrics::default());
        let report = ChainReport::new(7, metrics.clone());
        report.head_seen(120);
        report.step_failed("chain");
        let state = metrics.chains()[&7];
        assert_eq!(
            (state.head, state.processed, state.failing_steps),
            (120, 0, 1)
        );
        report.progressed(118);
        let state = metrics.chains()[&7];
        assert_eq!(
            (state.head, state.processed, state.failing_steps),
            (120, 118, 0)
        );
        assert!(state.last_progress > 0);
    }

    #[test]
    fn the_progress_line_is_logged_once_per_period() {
        let metrics = Arc::new(Metrics::default());
        let mut report = ChainReport::new(7, metrics.clone());
        let progress = Progress {
            block: 10,
            head: 12,
            wallets: 3,
            held: 5,
        };
        assert!(report.log_progress(progress), "the first at once");
        assert!(!report.log_progress(progress));
        assert_eq!(metrics.chains()[&7].watched, 3, "the wallets every time");
        report.progress_logged -= PROGRESS_LOG_EVERY;
        assert!(report.log_progress(progress));
    }
}
