//! What the sparse tracking model costs and how fresh it keeps values: the poller's pace
//! (`SNAPSHOT_INTERVAL`, head polling, log ranges) and what the poller and the api share about
//! which values are read when (sweeps, native balances, rescans, detail).

use std::time::Duration;

use super::ConfigError;
use super::vars::{Vars, invalid};

/// The poller's own pace: how often it looks for heads and re-reads, how far one log query
/// reaches, and where it answers health checks.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// Period of the poller's full re-read (`SNAPSHOT_INTERVAL`, seconds).
    pub snapshot_interval: Duration,
    /// How often the poller asks for a new head when it has no WebSocket.
    pub head_poll_interval: Duration,
    /// Most blocks per `eth_getLogs` range.
    pub max_block_range: u64,
    /// Where the poller serves `/health` and `/metrics`.
    pub http_addr: std::net::SocketAddr,
    /// The period of the poller's background pass over every session, its safety net for a
    /// change whose session-log entry it never saw (`SESSION_PASS_SECS`).
    pub session_pass_interval: Duration,
}

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

impl PollerSettings {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            snapshot_interval: vars.secs("SNAPSHOT_INTERVAL", 300)?,
            head_poll_interval: vars.millis("HEAD_POLL_INTERVAL_MS", 1000)?,
            max_block_range: vars.number("MAX_BLOCK_RANGE", 500)?.max(1),
            http_addr: vars.socket("POLLER_HTTP_ADDR")?,
            session_pass_interval: vars.secs("SESSION_PASS_SECS", 600)?,
        })
    }
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
