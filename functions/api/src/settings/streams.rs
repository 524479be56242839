//! How an SSE stream runs: its pace, its length, and what it asks of a client.

use std::time::Duration;

use live_balances::config::{ConfigError, MAX_PAIRS_LIMIT, Vars, invalid};

/// How an SSE stream runs: its pace, its length, and what it asks of a client.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// How often an SSE stream queries its feed.
    pub feed_interval: Duration,
    pub ping_interval: Duration,
    /// Longest an SSE stream runs before it ends itself (the client reconnects).
    pub max_duration: Duration,
    /// `retry:` hint sent to clients.
    pub retry: Duration,
    /// How often an open stream pushes its session's expiry forward.
    pub keep_alive: Duration,
    /// How long a stream waits for a client to take an event before dropping it (the client
    /// resumes with `Last-Event-ID`); nothing is buffered for it beyond a few events.
    pub slow_client: Duration,
    /// Most (chain, wallet) pairs one multi-wallet stream or one `POST /sessions` takes
    /// (`MAX_PAIRS_PER_STREAM`, 1 to [`MAX_PAIRS_LIMIT`]): bounds the stream's composite event
    /// id, which browsers send back in a header.
    pub max_pairs: usize,
    /// How often a server reads each chain's change log.
    pub chain_log_interval: Duration,
    /// Shortest gap between two background re-reads of a wallet's whole token set, which a
    /// stream opening asks for (a listed token that turned non-zero without an event;
    /// `RESCAN_INTERVAL_SECS`).
    pub rescan_interval: Duration,
}

impl StreamSettings {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            feed_interval: vars.millis("SSE_FEED_INTERVAL_MS", 200)?,
            ping_interval: vars.secs("SSE_PING_SECS", 15)?,
            max_duration: vars.secs("SSE_MAX_SECS", 840)?,
            retry: vars.millis("SSE_RETRY_MS", 1000)?,
            keep_alive: vars
                .secs("SSE_KEEPALIVE_SECS", 60)?
                .max(Duration::from_secs(1)),
            slow_client: vars.millis("SSE_SLOW_CLIENT_MS", 10_000)?,
            max_pairs: match vars.number("MAX_PAIRS_PER_STREAM", 10)? {
                n @ 1..=MAX_PAIRS_LIMIT => n as usize,
                _ => {
                    return Err(invalid(
                        "MAX_PAIRS_PER_STREAM",
                        format!("expected 1 to {MAX_PAIRS_LIMIT}"),
                    ));
                }
            },
            chain_log_interval: vars
                .millis("CHAIN_LOG_INTERVAL_MS", 50)?
                .max(Duration::from_millis(1)),
            rescan_interval: vars.secs("RESCAN_INTERVAL_SECS", 3600)?,
        })
    }
}
