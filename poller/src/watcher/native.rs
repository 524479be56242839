//! How a watcher finds native balance changes: whether the node answers a trace method
//! (asked at start, then again while none is known — soon after a question that settled
//! nothing, rarely after the node said it offers none), and which way each step uses — the
//! cheapest in billed units (see `chain::billing`) that keeps every streamed wallet's changes
//! visible at the next block under `NATIVE_BALANCES=auto`; traces under `traces` (a long
//! catch-up excepted); reads under `reads`, or while the node offers no trace method.

use std::time::Duration;

use live_balances::chain::{ALCHEMY_UNITS, NativeCost, NativeSource, NativeStep, TraceProbe};
use tokio::time::Instant;

use crate::error::PollerError;
use crate::metrics::TraceSupport;
use crate::settings::NativeBalances;

/// How soon the node is asked again about trace methods after a question that settled
/// nothing (a rate limit, a timeout, an outage), and after it said it offers none.
const REPROBE_UNSETTLED: Duration = Duration::from_secs(30);
const REPROBE_MISSING: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub(crate) struct NativeChoice {
    mode: NativeBalances,
    /// How often an unstreamed wallet's native balance is read (`NATIVE_POLL_SECS`).
    poll_interval: Duration,
    /// The trace method the node answers, once known.
    traces: Option<NativeSource>,
    /// When to ask the node about trace methods again (`None`: never, or not before start).
    next_probe: Option<Instant>,
    /// How the last step found native changes.
    step: NativeStep,
}

impl NativeChoice {
    pub(crate) fn new(mode: NativeBalances, poll_interval: Duration) -> Self {
        Self {
            mode,
            poll_interval,
            traces: None,
            next_probe: (mode != NativeBalances::Reads).then(Instant::now),
            step: NativeStep::ReadStreamed,
        }
    }

    /// Whether the node is to be asked about trace methods now.
    pub(crate) fn probe_due(&self) -> bool {
        self.traces.is_none() && self.next_probe.is_some_and(|at| at <= Instant::now())
    }

    /// Takes what asking the node found: what to report. Fatal when traces were required
    /// and the node offers none.
    pub(crate) fn probed(&mut self, probe: &TraceProbe) -> Result<TraceSupport, PollerError> {
        Ok(match probe {
            TraceProbe::Found(source) => {
                self.traces = Some(*source);
                self.next_probe = None;
                TraceSupport::Found(source.name())
            }
            TraceProbe::Missing => {
                if self.mode == NativeBalances::Traces {
                    return Err(PollerError::NoTraces);
                }
                self.next_probe = Some(Instant::now() + REPROBE_MISSING);
                TraceSupport::Missing
            }
            TraceProbe::Unknown(error) => {
                self.next_probe = Some(Instant::now() + REPROBE_UNSETTLED);
                TraceSupport::Unknown(error.fault().kind())
            }
        })
    }

    /// The node stopped answering traces (its plan changed): reads until it is asked again.
    pub(crate) fn traces_lost(&mut self) {
        self.traces = None;
        self.next_probe = Some(Instant::now() + REPROBE_MISSING);
    }

    /// The trace method the node answers, once known.
    pub(crate) fn traces(&self) -> Option<NativeSource> {
        self.traces
    }

    /// What a traced step traces with (reads while none is known).
    pub(crate) fn source(&self) -> NativeSource {
        self.traces.unwrap_or(NativeSource::Reads)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// How the last step found native changes.
    pub(crate) fn last_step(&self) -> NativeStep {
        self.step
    }

    /// The way a step that must cover `cost` finds native changes.
    pub(crate) fn choose(&self, cost: &NativeCost) -> NativeStep {
        let Some(source) = self.traces else {
            return NativeStep::ReadStreamed;
        };
        match self.mode {
            NativeBalances::Reads => NativeStep::ReadStreamed,
            NativeBalances::Auto => cost.cheapest(&ALCHEMY_UNITS, source).0,
            // Traces as asked, but for a catch-up over several blocks that one read of every
            // wallet covers for less.
            NativeBalances::Traces => match cost.units(&ALCHEMY_UNITS, source) {
                [(_, Some(trace)), _, (_, Some(all))] if cost.blocks > 1 && all < trace => {
                    NativeStep::ReadAll
                }
                _ => NativeStep::Trace,
            },
        }
    }

    /// Records the way this step uses; the previous one when it changed.
    pub(crate) fn switch_to(&mut self, step: NativeStep) -> Option<NativeStep> {
        let before = std::mem::replace(&mut self.step, step);
        (before != step).then_some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(60);

    /// One block with `streamed` of `wallets` streamed.
    fn cost(blocks: u64, streamed: usize, wallets: usize) -> NativeCost {
        NativeCost {
            blocks,
            blocks_with_withdrawals: 0,
            streamed,
            wallets,
            polled: 0,
            other_reads: 0,
            chunk: 500,
        }
    }

    #[test]
    fn reads_until_the_node_answers_a_trace_method() {
        let mut choice = NativeChoice::new(NativeBalances::Auto, POLL);
        assert!(choice.probe_due());
        assert_eq!(
            choice.choose(&cost(1, 10_000, 10_000)),
            NativeStep::ReadStreamed
        );
        assert_eq!(
            choice.probed(&TraceProbe::Missing).expect("not fatal"),
            TraceSupport::Missing
        );
        assert!(!choice.probe_due(), "asked again much later");
        assert_eq!(choice.source(), NativeSource::Reads);
        let found = choice.probed(&TraceProbe::Found(NativeSource::CallTracer));
        assert_eq!(found.expect("found"), TraceSupport::Found("call_tracer"));
        assert!(!choice.probe_due(), "known: never asked again");
        // Many streamed wallets: tracing the block costs less than reading them.
        assert_eq!(choice.choose(&cost(1, 10_000, 10_000)), NativeStep::Trace);
        choice.traces_lost();
        assert_eq!(choice.traces(), None);
        assert_eq!(
            choice.choose(&cost(1, 10_000, 10_000)),
            NativeStep::ReadStreamed
        );
    }

    #[test]
    fn reads_mode_never_asks_and_traces_mode_requires_them() {
        let reads = NativeChoice::new(NativeBalances::Reads, POLL);
        assert!(!reads.probe_due());
        let mut traces = NativeChoice::new(NativeBalances::Traces, POLL);
        assert!(matches!(
            traces.probed(&TraceProbe::Missing),
            Err(PollerError::NoTraces)
        ));
    }

    #[test]
    fn traces_mode_reads_every_wallet_once_for_a_long_catch_up() {
        let mut choice = NativeChoice::new(NativeBalances::Traces, POLL);
        choice
            .probed(&TraceProbe::Found(NativeSource::ParityTraces))
            .expect("found");
        assert_eq!(choice.choose(&cost(1, 0, 3)), NativeStep::Trace);
        assert_eq!(choice.choose(&cost(1_000, 0, 3)), NativeStep::ReadAll);
    }

    #[test]
    fn a_change_of_way_is_reported_once() {
        let mut choice = NativeChoice::new(NativeBalances::Auto, POLL);
        assert_eq!(choice.switch_to(NativeStep::ReadStreamed), None);
        assert_eq!(
            choice.switch_to(NativeStep::Trace),
            Some(NativeStep::ReadStreamed)
        );
        assert_eq!(choice.last_step(), NativeStep::Trace);
        assert_eq!(choice.switch_to(NativeStep::Trace), None);
    }
}
