//! The poller's settings: those every binary shares ([`Settings`], reached through
//! [`std::ops::Deref`]) and the poller's own — how often it looks for heads, re-reads held
//! values (its sweeps and their read budget) and passes over every session, how it finds
//! native balance changes, how many tokens discovery adds to a wallet, and where it answers
//! health checks. Read by the poller alone.

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use live_balances::config::{ConfigError, Settings, Vars, invalid};

/// How the poller finds native balance changes (`NATIVE_BALANCES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeBalances {
    /// Call traces when the node answers a trace method, else per-wallet reads.
    Auto,
    /// Call traces; the poller does not start on a node without them.
    Traces,
    /// Per-wallet reads, even where traces would work.
    Reads,
}

/// Every setting the poller reads.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    pub shared: Settings,
    /// Period of the poller's frequent sweep (`SNAPSHOT_INTERVAL`, seconds): it re-reads
    /// only tokens seen changing silently.
    pub snapshot_interval: Duration,
    /// Shortest period of the slow sweep: every held value re-read once (`SWEEP_ALL_INTERVAL`),
    /// unless that takes more than `sweep_reads_per_block` a block.
    pub sweep_all_interval: Duration,
    /// The slow sweep's read budget: most held values it re-reads per block
    /// (`SWEEP_READS_PER_BLOCK`; per step when no block comes). Past
    /// `sweep_all_interval` × this per block, the sweep takes longer instead of costing more.
    pub sweep_reads_per_block: usize,
    pub native_balances: NativeBalances,
    /// Without traces: how often a wallet with no open stream has its native balance read
    /// (`NATIVE_POLL_SECS`; wallets with one are read every block).
    pub native_poll_interval: Duration,
    /// Most tokens discovery adds to one wallet (`MAX_DISCOVERED_TOKENS`).
    pub max_discovered_tokens: usize,
    /// How often the poller asks for a new head when it has no WebSocket
    /// (`HEAD_POLL_INTERVAL_MS`).
    pub head_poll_interval: Duration,
    /// Where the poller serves `/health` and `/metrics` (`POLLER_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// The period of the poller's background pass over every session, its safety net for a
    /// change whose session-log entry it never saw (`SESSION_PASS_SECS`).
    pub session_pass_interval: Duration,
}

impl PollerSettings {
    /// The poller's own settings from `vars` beside the `shared` ones (read with the chain
    /// secret, [`live_balances::runtime::secrets::load_settings`]).
    pub fn new(shared: Settings, vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            shared,
            snapshot_interval: vars.secs("SNAPSHOT_INTERVAL", 300)?,
            sweep_all_interval: vars.secs("SWEEP_ALL_INTERVAL", 60)?,
            sweep_reads_per_block: vars.count("SWEEP_READS_PER_BLOCK", 500)?.max(1),
            native_balances: native_balances(vars)?,
            native_poll_interval: vars.secs("NATIVE_POLL_SECS", 60)?,
            max_discovered_tokens: vars.count("MAX_DISCOVERED_TOKENS", 100)?,
            head_poll_interval: vars.millis("HEAD_POLL_INTERVAL_MS", 1000)?,
            http_addr: vars.socket("POLLER_HTTP_ADDR")?,
            session_pass_interval: vars.secs("SESSION_PASS_SECS", 600)?,
        })
    }

    /// Every setting from `vars` alone.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Self::new(Settings::parse(vars)?, vars)
    }
}

fn native_balances(vars: &Vars) -> Result<NativeBalances, ConfigError> {
    match vars.get("NATIVE_BALANCES").as_deref() {
        None | Some("auto") => Ok(NativeBalances::Auto),
        Some("traces") => Ok(NativeBalances::Traces),
        Some("reads") => Ok(NativeBalances::Reads),
        Some(other) => Err(invalid(
            "NATIVE_BALANCES",
            format!("expected auto, traces or reads, got {other:?}"),
        )),
    }
}

impl Deref for PollerSettings {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<PollerSettings, ConfigError> {
        PollerSettings::from_vars(&Vars::new(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        ))
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.snapshot_interval, Duration::from_secs(300));
        assert_eq!(s.head_poll_interval, Duration::from_millis(1000));
        assert_eq!(s.http_addr, SocketAddr::from(([0, 0, 0, 0], 8080)));
        assert_eq!(s.session_pass_interval, Duration::from_secs(600));
        assert_eq!(s.sweep_all_interval, Duration::from_secs(60));
        assert_eq!(s.sweep_reads_per_block, 500);
        assert_eq!(s.native_balances, NativeBalances::Auto);
        assert_eq!(s.native_poll_interval, Duration::from_secs(60));
        assert_eq!(s.max_discovered_tokens, 100);
    }

    #[test]
    fn its_own_variables_are_read_and_checked() {
        let s = settings(&[
            ("SNAPSHOT_INTERVAL", "30"),
            ("HEAD_POLL_INTERVAL_MS", "250"),
            ("POLLER_HTTP_ADDR", "127.0.0.1:9100"),
            ("SESSION_PASS_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(s.snapshot_interval, Duration::from_secs(30));
        assert_eq!(s.head_poll_interval, Duration::from_millis(250));
        assert_eq!(s.http_addr, SocketAddr::from(([127, 0, 0, 1], 9100)));
        assert_eq!(s.session_pass_interval, Duration::ZERO);
        assert!(settings(&[("POLLER_HTTP_ADDR", "everywhere")]).is_err());
        assert!(settings(&[("SNAPSHOT_INTERVAL", "soon")]).is_err());
    }

    #[test]
    fn sweeps_native_balances_and_discovery() {
        let s = settings(&[
            ("SWEEP_ALL_INTERVAL", "0"),
            ("SWEEP_READS_PER_BLOCK", "0"),
            ("NATIVE_BALANCES", "reads"),
            ("NATIVE_POLL_SECS", "0"),
            ("MAX_DISCOVERED_TOKENS", "7"),
        ])
        .unwrap();
        assert_eq!(s.sweep_all_interval, Duration::ZERO);
        assert_eq!(s.sweep_reads_per_block, 1, "at least one read a block");
        assert_eq!(s.native_balances, NativeBalances::Reads);
        assert_eq!(s.native_poll_interval, Duration::ZERO);
        assert_eq!(s.max_discovered_tokens, 7);
        let traces = settings(&[("NATIVE_BALANCES", "traces")]).unwrap();
        assert_eq!(traces.native_balances, NativeBalances::Traces);
        let refused = settings(&[("NATIVE_BALANCES", "sometimes")]).unwrap_err();
        assert!(refused.to_string().contains("NATIVE_BALANCES"), "{refused}");
        assert!(settings(&[("SWEEP_READS_PER_BLOCK", "many")]).is_err());
    }
}
