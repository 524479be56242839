//! The fanout's settings: those every binary shares ([`Settings`], reached through
//! [`std::ops::Deref`]), whether it writes the chain change log, which it alone reads, and how
//! many wallets' records one invocation writes at once.

use std::ops::Deref;

use live_balances::config::{ConfigError, Settings, Vars};

/// Every setting the fanout reads.
#[derive(Debug, Clone)]
pub struct FanoutSettings {
    pub shared: Settings,
    /// Whether the fanout also appends to the per-chain change log the server tails
    /// (`CHAIN_LOG_ENABLED`; off in a deployment without the server: nothing would read it).
    pub chain_log_enabled: bool,
    /// Wallets whose records one invocation writes at once, each wallet's in order
    /// (`FANOUT_CONCURRENCY`, at least 1).
    pub concurrency: usize,
}

/// Wallets written at once by default: a batch of 100 records then takes a few round trips
/// to the table, not 200 in a row.
const DEFAULT_CONCURRENCY: usize = 16;

impl FanoutSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&Vars::from_env())
    }

    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            shared: Settings::parse(vars)?,
            chain_log_enabled: vars.flag_or("CHAIN_LOG_ENABLED", true)?,
            concurrency: vars
                .count("FANOUT_CONCURRENCY", DEFAULT_CONCURRENCY)?
                .max(1),
        })
    }
}

impl Deref for FanoutSettings {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<FanoutSettings, ConfigError> {
        FanoutSettings::from_vars(&Vars::new(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        ))
    }

    #[test]
    fn chain_log() {
        let s = settings(&[]).unwrap();
        assert!(s.chain_log_enabled);
        let s = settings(&[("CHAIN_LOG_ENABLED", "false")]).unwrap();
        assert!(!s.chain_log_enabled);
        assert!(settings(&[("CHAIN_LOG_ENABLED", "maybe")]).is_err());
    }

    #[test]
    fn concurrency() {
        assert_eq!(settings(&[]).unwrap().concurrency, DEFAULT_CONCURRENCY);
        let s = settings(&[("FANOUT_CONCURRENCY", "4")]).unwrap();
        assert_eq!(s.concurrency, 4);
        let s = settings(&[("FANOUT_CONCURRENCY", "0")]).unwrap();
        assert_eq!(s.concurrency, 1);
        assert!(settings(&[("FANOUT_CONCURRENCY", "many")]).is_err());
    }
}
