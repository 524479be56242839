//! Configuration from environment variables, parsed once at start-up into typed settings.
//!
//! Here are the settings two or more binaries share, in files by concern: the chains and how
//! they are reached (`chains`, `chain_secret`), webhooks and their sealing key (`webhooks`),
//! metrics (`metrics`), and how the environment is read (`vars`). What one binary alone reads
//! lives in its own crate, parsed from the same [`Vars`]: the api's limits, streams, token
//! lists and snapshot detail (`api::settings`), the server's address and CORS origins
//! (`api_server::settings`), the poller's pace, sweeps, native balances and discovery
//! (`poller::settings`), whether the fanout writes the chain change log (`fanout::settings`).
//!
//! Parsing is a pure function of the variables so every rule is unit-tested; binaries call
//! [`Settings::from_env`] (or [`crate::runtime::secrets::load_settings`], which reads the chain secret).

mod chain_secret;
mod chains;
mod metrics;
#[cfg(test)]
mod props;
mod vars;
mod webhooks;

use std::time::Duration;

use alloy::primitives::{Address, address};
use thiserror::Error;

pub use chain_secret::ChainSecret;
pub use chains::{ChainEndpoints, DEFAULT_MULTICALL, RpcSettings, chain_id};
pub use metrics::{MetricsFormat, MetricsSettings};
pub use vars::{Vars, invalid};
pub use webhooks::{DeliverySettings, SealingSource, SubscriptionLimits, WebhookSettings};

/// CoW Protocol's GPv2VaultRelayer: the spender whose allowance a CoW front end cares about.
pub const DEFAULT_SPENDER: Address = address!("0xC92E8bdf79f0507f65a392b0ab4667716BFE0110");

/// The most `MAX_PAIRS_PER_STREAM` may be: a stream id of this many pairs is at most
/// [`crate::feed::stream_id::max_len`]`(32)` = 875 characters.
pub const MAX_PAIRS_LIMIT: u64 = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: String, reason: String },
    #[error("{name} is set but chain {chain_id} has no RPC URL (set RPC_URL_{chain_id})")]
    WebSocketWithoutRpc { name: String, chain_id: u64 },
    /// What the chain secret holds does not fit. Never quotes a value: values are URLs with
    /// API keys.
    #[error("chain secret {secret_id}: {reason}")]
    ChainSecret { secret_id: String, reason: String },
}

/// The settings two or more binaries read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub chains: std::collections::BTreeMap<u64, ChainEndpoints>,
    pub rpc: RpcSettings,
    pub table: TableSettings,
    /// How long change-feed entries are kept for `Last-Event-ID` replay.
    pub feed_ttl: Duration,
    /// How long a session lives without an open stream or a hold (`SESSION_TTL_SECS`): the api
    /// reads it, and the webhooks function, which lets a disabled subscription's wallets go.
    pub session_ttl: Duration,
    pub webhooks: WebhookSettings,
    /// Where the data key that seals webhook secrets at rest comes from.
    pub sealing: SealingSource,
    pub metrics: MetricsSettings,
}

/// The one table every binary reads and writes.
#[derive(Debug, Clone)]
pub struct TableSettings {
    /// `TABLE_NAME`.
    pub name: String,
    /// DynamoDB endpoint override (DynamoDB Local).
    pub endpoint: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(&Vars::from_env())
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::parse(&Vars::new(vars))
    }

    pub fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            chains: chains::chains(vars)?,
            rpc: RpcSettings::from_vars(vars)?,
            table: TableSettings {
                name: vars
                    .get("TABLE_NAME")
                    .unwrap_or_else(|| "live-balances".into()),
                endpoint: vars.get("DYNAMODB_ENDPOINT"),
            },
            feed_ttl: vars.secs("FEED_TTL_SECS", 86_400)?,
            session_ttl: vars.secs("SESSION_TTL_SECS", 3600)?,
            webhooks: webhooks::webhook_settings(vars)?,
            sealing: SealingSource::from_vars(vars)?,
            metrics: MetricsSettings::from_vars(vars)?,
        })
    }
}

#[cfg(test)]
mod tests;
