//! What hosted providers bill per request, and which way of finding native balance changes
//! costs least for a step.
//!
//! Units are Alchemy's compute units, from its published table
//! (<https://www.alchemy.com/docs/reference/compute-unit-costs> and the per-method pages of
//! its Debug and Trace APIs, read 2026-12-05): `eth_call` 26, `eth_getLogs` 60,
//! `eth_getBlockByNumber` 20, `eth_blockNumber` 10, `debug_traceBlockByNumber` 40 (and 1,000
//! *throughput* units: one trace a second uses most of a free plan's rate), `trace_block` 20.
//! Other providers weigh methods alike (a trace several reads), and many plans offer no trace
//! method at all.
//!
//! Per block, finding native changes by trace costs one trace call (plus the block body when
//! the header lists withdrawals), whatever the number of wallets; by reads it costs the
//! Multicall3 `eth_call`s that the wallets' native reads add to the step's own — none while
//! they fit in the chunk the step sends anyway, one per `MULTICALL_CHUNK` wallets beyond. So
//! reads win for a few thousand streamed wallets and traces beyond; a long catch-up is cheaper
//! read once per wallet than traced block by block.

use super::NativeSource;

/// Billed units per JSON-RPC method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitCosts {
    pub eth_call: u64,
    pub eth_get_logs: u64,
    pub eth_get_block_by_number: u64,
    pub eth_block_number: u64,
    pub debug_trace_block_by_number: u64,
    pub trace_block: u64,
}

/// Alchemy's compute units (see the module docs).
pub const ALCHEMY_UNITS: UnitCosts = UnitCosts {
    eth_call: 26,
    eth_get_logs: 60,
    eth_get_block_by_number: 20,
    eth_block_number: 10,
    debug_trace_block_by_number: 40,
    trace_block: 20,
};

impl UnitCosts {
    /// The units of one request of `method` (0 for one the table does not bill, such as
    /// `eth_chainId`; `eth_subscribe` notifications are billed by bandwidth, the same in
    /// every mode).
    pub fn of(&self, method: &str) -> u64 {
        match method {
            "eth_call" => self.eth_call,
            "eth_getLogs" => self.eth_get_logs,
            "eth_getBlockByNumber" => self.eth_get_block_by_number,
            "eth_blockNumber" => self.eth_block_number,
            "debug_traceBlockByNumber" => self.debug_trace_block_by_number,
            "trace_block" => self.trace_block,
            _ => 0,
        }
    }

    fn trace(&self, source: NativeSource) -> Option<u64> {
        source.method().map(|m| self.of(m))
    }
}

/// How a step finds the native balance changes of watched wallets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeStep {
    /// Trace each block of the range; re-read the watched wallets the traces name.
    Trace,
    /// Read the native balance of every wallet with an open stream, and of this step's share
    /// of the others (each read once per `NATIVE_POLL_SECS`).
    ReadStreamed,
    /// Read every watched wallet's native balance once (a catch-up over many blocks).
    ReadAll,
}

impl NativeStep {
    /// What `/health` and the metrics call the way native changes were found.
    pub fn name(self, traced_by: NativeSource) -> &'static str {
        match self {
            Self::Trace => traced_by.name(),
            Self::ReadStreamed | Self::ReadAll => NativeSource::Reads.name(),
        }
    }
}

/// What one step must cover, for [`NativeCost::cheapest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeCost {
    /// Blocks in the step's range.
    pub blocks: u64,
    /// Of them, blocks whose header lists withdrawals (their body is fetched when traced).
    pub blocks_with_withdrawals: u64,
    /// Wallets with an open stream: their changes must show at the next block.
    pub streamed: usize,
    /// Every watched wallet.
    pub wallets: usize,
    /// This step's share of the periodic reads of wallets without a stream.
    pub polled: usize,
    /// Values the step reads anyway (touched by logs, swept, first reads).
    pub other_reads: usize,
    /// Most reads per `eth_call`.
    pub chunk: usize,
}

impl NativeCost {
    /// Units the `eth_call`s for `reads` native reads add to the step's own.
    fn reads(&self, units: &UnitCosts, reads: usize) -> u64 {
        let calls = |n: usize| n.div_ceil(self.chunk.max(1)) as u64;
        (calls(self.other_reads + reads) - calls(self.other_reads)) * units.eth_call
    }

    /// Units each way costs: tracing by `source` (when the node offers it), reading the
    /// streamed wallets and the polled share, reading every wallet.
    pub fn units(&self, units: &UnitCosts, source: NativeSource) -> [(NativeStep, Option<u64>); 3] {
        // The headers of a range's inner blocks are fetched to trace them (the step has the
        // first and the last), the bodies of those with withdrawals to name their recipients.
        let trace = units.trace(source).map(|per_block| {
            self.blocks * per_block
                + self.blocks.saturating_sub(2) * units.eth_get_block_by_number
                + self.blocks_with_withdrawals * units.eth_get_block_by_number
        });
        [
            (NativeStep::Trace, trace),
            (
                NativeStep::ReadStreamed,
                Some(self.reads(units, self.streamed + self.polled)),
            ),
            (NativeStep::ReadAll, Some(self.reads(units, self.wallets))),
        ]
    }

    /// The cheaper way that keeps every streamed wallet's changes visible at the next block:
    /// reading them (with the polled share), or tracing when the node offers it and that
    /// costs less. Ties go to reads: they need no trace method. (Reading every wallet never
    /// costs less than reading the streamed ones; it is for `NATIVE_BALANCES=traces`, whose
    /// catch-ups it serves, see [`Self::units`].)
    pub fn cheapest(&self, units: &UnitCosts, source: NativeSource) -> (NativeStep, u64) {
        let [(_, trace), (_, streamed), _] = self.units(units, source);
        let streamed = streamed.unwrap_or(u64::MAX);
        match trace {
            Some(trace) if trace < streamed => (NativeStep::Trace, trace),
            _ => (NativeStep::ReadStreamed, streamed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(streamed: usize, wallets: usize) -> NativeCost {
        NativeCost {
            blocks: 1,
            blocks_with_withdrawals: 0,
            streamed,
            wallets,
            // 12 s blocks, each unstreamed wallet read once a minute.
            polled: (wallets - streamed) / 5,
            other_reads: 0,
            chunk: 1000,
        }
    }

    #[test]
    fn reads_for_few_streamed_wallets_traces_for_many() {
        let u = ALCHEMY_UNITS;
        let tracer = NativeSource::CallTracer;
        assert_eq!(
            step(1, 1).cheapest(&u, tracer),
            (NativeStep::ReadStreamed, 26)
        );
        assert_eq!(
            step(1000, 1000).cheapest(&u, tracer),
            (NativeStep::ReadStreamed, 26)
        );
        assert_eq!(
            step(10_000, 10_000).cheapest(&u, tracer),
            (NativeStep::Trace, 40)
        );
        // Without streams the periodic reads of 10,000 wallets (2,000 a block) cost 2 calls.
        assert_eq!(
            step(0, 10_000).cheapest(&u, tracer),
            (NativeStep::Trace, 40)
        );
        assert_eq!(
            step(0, 10_000).cheapest(&u, NativeSource::ParityTraces),
            (NativeStep::Trace, 20)
        );
        // No trace method: reads whatever they cost.
        assert_eq!(
            step(10_000, 10_000).cheapest(&u, NativeSource::Reads),
            (NativeStep::ReadStreamed, 260)
        );
    }

    #[test]
    fn reads_that_fit_the_steps_own_call_cost_nothing() {
        let mut s = step(10, 10);
        s.other_reads = 5;
        assert_eq!(
            s.cheapest(&ALCHEMY_UNITS, NativeSource::CallTracer),
            (NativeStep::ReadStreamed, 0)
        );
    }

    #[test]
    fn a_range_of_blocks_costs_a_trace_and_a_header_each() {
        let mut s = step(5000, 5000);
        s.blocks = 100;
        s.blocks_with_withdrawals = 100;
        let [(_, trace), (_, streamed), (_, all)] =
            s.units(&ALCHEMY_UNITS, NativeSource::CallTracer);
        // 100 traces, 98 inner headers, 100 bodies; 5,000 reads in 5 calls.
        assert_eq!((trace, streamed, all), (Some(7960), Some(130), Some(130)));
        assert_eq!(
            s.cheapest(&ALCHEMY_UNITS, NativeSource::CallTracer),
            (NativeStep::ReadStreamed, 130)
        );
        let mut s = step(3000, 20_000);
        s.blocks = 20;
        // Tracing: 20 × 40 + 18 × 20 = 1,160; streamed and polled: 6,400 reads = 7 calls = 182.
        assert_eq!(
            s.cheapest(&ALCHEMY_UNITS, NativeSource::CallTracer),
            (NativeStep::ReadStreamed, 182)
        );
        let [_, _, (_, all)] = s.units(&ALCHEMY_UNITS, NativeSource::CallTracer);
        assert_eq!(all, Some(520));
    }
}
