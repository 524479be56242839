//! What the sparse tracking model costs and how fresh it keeps values: what the poller and the
//! api share about which values are read when (sweeps, native balances, rescans, detail). The
//! poller's own pace is in its crate (`poller::settings`).

use std::time::Duration;

use super::ConfigError;
use super::vars::{Vars, invalid};

/// How the poller finds native balance changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeBalances {
    /// Call traces when the node answers a trace method, else per-wallet reads.
    Auto,
    /// Call traces; the poller does not start on a node without them.
    Traces,
    /// Per-wallet reads, even where traces would work.
    Reads,
}

/// What the sparse tracking model costs and how fresh it keeps values the chain changes
/// without telling (by event).
#[derive(Debug, Clone)]
pub struct TrackingSettings {
    pub native_balances: NativeBalances,
    /// Shortest period of the slow sweep: every held value re-read once (`SWEEP_ALL_INTERVAL`),
    /// unless that takes more than `sweep_reads_per_block` a block. The frequent sweep
    /// (`SNAPSHOT_INTERVAL`) re-reads only tokens seen changing silently.
    pub sweep_all_interval: Duration,
    /// The slow sweep's read budget: most held values it re-reads per block
    /// (`SWEEP_READS_PER_BLOCK`; per step when no block comes). Past
    /// `sweep_all_interval` × this per block, the sweep takes longer instead of costing more.
    pub sweep_reads_per_block: usize,
    /// Without traces: how often a wallet with no open stream has its native balance read
    /// (wallets with one are read every block).
    pub native_poll_interval: Duration,
    /// Shortest gap between two background re-reads of a wallet's whole token set, which a
    /// stream opening asks for (a listed token that turned non-zero without an event).
    pub rescan_interval: Duration,
    /// Most tokens discovery adds to one wallet.
    pub max_discovered_tokens: usize,
    /// Sessions up to this many tokens get every token's allowances and metadata in
    /// `all_balances`; larger ones get them for named and held tokens.
    pub full_detail_max_tokens: usize,
}

impl TrackingSettings {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            native_balances: match vars.get("NATIVE_BALANCES").as_deref() {
                None | Some("auto") => NativeBalances::Auto,
                Some("traces") => NativeBalances::Traces,
                Some("reads") => NativeBalances::Reads,
                Some(other) => {
                    return Err(invalid(
                        "NATIVE_BALANCES",
                        format!("expected auto, traces or reads, got {other:?}"),
                    ));
                }
            },
            sweep_all_interval: vars.secs("SWEEP_ALL_INTERVAL", 60)?,
            sweep_reads_per_block: vars.count("SWEEP_READS_PER_BLOCK", 500)?.max(1),
            native_poll_interval: vars.secs("NATIVE_POLL_SECS", 60)?,
            rescan_interval: vars.secs("RESCAN_INTERVAL_SECS", 3600)?,
            max_discovered_tokens: vars.count("MAX_DISCOVERED_TOKENS", 100)?,
            full_detail_max_tokens: vars.count("FULL_DETAIL_MAX_TOKENS", 1000)?,
        })
    }
}
