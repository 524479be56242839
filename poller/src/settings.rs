//! The poller's settings: those every binary shares ([`Settings`], reached through
//! [`std::ops::Deref`]) and the poller's own pace — how often it looks for heads, re-reads
//! and passes over every session, and where it answers health checks. Read by the poller
//! alone.

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use live_balances::config::{ConfigError, Settings, Vars};

/// Every setting the poller reads.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    pub shared: Settings,
    /// Period of the poller's frequent sweep (`SNAPSHOT_INTERVAL`, seconds).
    pub snapshot_interval: Duration,
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
}
