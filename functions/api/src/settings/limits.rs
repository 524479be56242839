//! What the api alone grants one client: how much a session, a batch or a wallet may hold,
//! how often sessions may be written, and the bounds on what one anonymous caller can make
//! the service do.

use std::time::Duration;

use live_balances::config::{ConfigError, Vars, invalid};

/// What the api grants one client: how much a session, a batch or a wallet may hold, how
/// often sessions may be written, and how long an idle session lives.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Most tokens one session tracks, its lists' tokens included (the session item holds
    /// only the lists' URLs, so this bounds the snapshot and the reads, not the item).
    pub max_tokens_per_session: usize,
    /// Most tokens in one `POST /{chain}/balances/{owner}`.
    pub batch_max_tokens: usize,
    /// Session writes (POST/PUT) a minute from one source address.
    pub session_writes_per_source: u64,
    /// Session writes (POST/PUT) a minute for one wallet.
    pub session_writes_per_owner: u64,
    /// Live sessions one chain may hold: new sessions beyond it are refused, so a flood of
    /// random owners cannot grow the poller's work without bound.
    pub max_sessions_per_chain: u64,
    /// Most open orders one wallet may register (`MAX_ORDERS_PER_WALLET`).
    pub max_orders_per_wallet: usize,
}

/// Bounds on what one anonymous caller can make the service do — memory, node calls, open
/// streams, request sizes — and on what a back end may register. Each is refused with a clear
/// 4xx or 429 and nothing stored.
#[derive(Debug, Clone)]
pub struct RequestBounds {
    /// Most allowance spenders one session tracks (`MAX_SPENDERS_PER_SESSION`).
    pub max_spenders_per_session: usize,
    /// Most allowances one session tracks: its tokens (the native currency aside) times its
    /// spenders (`MAX_ALLOWANCES_PER_SESSION`). Bounds the reads of a session write and the
    /// size of its snapshots.
    pub max_allowances_per_session: usize,
    /// Balance reads that go to the chain (`GET /balance`, `POST /balances` of untracked
    /// tokens) a minute from one source (`CHAIN_READS_PER_SOURCE_PER_MINUTE`).
    pub chain_reads_per_source: u64,
    /// Streams opened a minute from one source (`STREAM_OPENS_PER_SOURCE_PER_MINUTE`).
    pub stream_opens_per_source: u64,
    /// Streams open at once from one source (`MAX_STREAMS_PER_SOURCE`).
    pub max_streams_per_source: u32,
    /// Streams open at once on one wallet (`MAX_STREAMS_PER_WALLET`).
    pub max_streams_per_wallet: u32,
    /// Largest request body (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Longest query string (`MAX_QUERY_BYTES`).
    pub max_query_bytes: usize,
    /// Farthest an order's `validTo` may be from now (`ORDER_MAX_VALID_SECS`): an open order
    /// keeps its wallet tracked until then.
    pub order_max_validity: Duration,
}

impl RequestBounds {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let slots = |name: &str, default: u64| -> Result<u32, ConfigError> {
            match vars.number(name, default)? {
                n @ 1..=100_000 => Ok(n as u32),
                _ => Err(invalid(name, "expected 1 to 100000")),
            }
        };
        Ok(Self {
            max_spenders_per_session: vars.count("MAX_SPENDERS_PER_SESSION", 10)?.max(1),
            max_allowances_per_session: vars.count("MAX_ALLOWANCES_PER_SESSION", 20_000)?,
            chain_reads_per_source: vars.number("CHAIN_READS_PER_SOURCE_PER_MINUTE", 60)?,
            stream_opens_per_source: vars.number("STREAM_OPENS_PER_SOURCE_PER_MINUTE", 120)?,
            max_streams_per_source: slots("MAX_STREAMS_PER_SOURCE", 50)?,
            max_streams_per_wallet: slots("MAX_STREAMS_PER_WALLET", 20)?,
            max_body_bytes: vars.count("MAX_BODY_BYTES", 256 * 1024)?.max(1024),
            max_query_bytes: vars.count("MAX_QUERY_BYTES", 4096)?.max(256),
            order_max_validity: vars.secs("ORDER_MAX_VALID_SECS", 90 * 86_400)?,
        })
    }
}

impl ApiLimits {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            max_tokens_per_session: vars.count("MAX_TOKENS_PER_SESSION", 20_000)?,
            batch_max_tokens: vars.count("BATCH_MAX_TOKENS", 500)?,
            session_writes_per_source: vars.number("SESSION_WRITES_PER_SOURCE_PER_MINUTE", 120)?,
            session_writes_per_owner: vars.number("SESSION_WRITES_PER_OWNER_PER_MINUTE", 30)?,
            max_sessions_per_chain: vars.number("MAX_SESSIONS_PER_CHAIN", 20_000)?,
            max_orders_per_wallet: vars.number("MAX_ORDERS_PER_WALLET", 100)? as usize,
        })
    }
}
