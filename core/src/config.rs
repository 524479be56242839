//! Configuration from environment variables, parsed once at start-up into typed settings.
//!
//! Parsing is a pure function of the variables so every rule is unit-tested; binaries call
//! [`Settings::from_env`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use alloy::primitives::{Address, address};
use thiserror::Error;

use crate::chain::known_chains::known_wrapped_native;
use crate::domain::address::parse_address;
use crate::runtime::redact::redact_url;

/// Multicall3's address on nearly every EVM chain.
pub const DEFAULT_MULTICALL: Address = address!("0xcA11bde05977b3631167028862bE2a173976CA11");
/// CoW Protocol's GPv2VaultRelayer: the spender whose allowance a CoW front end cares about.
pub const DEFAULT_SPENDER: Address = address!("0xC92E8bdf79f0507f65a392b0ab4667716BFE0110");

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

/// Where to reach one chain: one or more URLs of each kind, tried in order (the first while it
/// answers, the next while it is down or rate limited). `Debug` hides paths and queries, where
/// providers put API keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainEndpoints {
    pub chain_id: u64,
    /// Never empty.
    pub rpc_urls: Vec<String>,
    pub ws_urls: Vec<String>,
    /// The wrapped native token, always tracked (`WETH_<chainId>`, or the known one).
    pub weth: Option<Address>,
}

impl fmt::Debug for ChainEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>();
        f.debug_struct("ChainEndpoints")
            .field("chain_id", &self.chain_id)
            .field("rpc_urls", &redacted(&self.rpc_urls))
            .field("ws_urls", &redacted(&self.ws_urls))
            .field("weth", &self.weth)
            .finish()
    }
}

/// How every binary that reaches a chain treats its endpoints.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// Longest one JSON-RPC request waits out rate limits (`Retry-After`) and failing
    /// endpoints before it fails (`RPC_MAX_WAIT_MS`).
    pub max_wait: Duration,
}

/// Seed variable names kept for compatibility: (name, chain id, is WebSocket).
const SEED_NAMES: [(&str, u64, bool); 5] = [
    ("ETH_RPC", 1, false),
    ("ETH_WC_RPC", 1, true),
    ("ARBITRUM_RPC", 42161, false),
    ("SEPOLIA_RPC", 11155111, false),
    ("SEPOLIA_WC_RPC", 11155111, true),
];

/// Every setting of the service, grouped by the binary that reads it; what several binaries
/// share stays at the top.
#[derive(Debug, Clone)]
pub struct Settings {
    pub chains: BTreeMap<u64, ChainEndpoints>,
    pub rpc: RpcSettings,
    pub table_name: String,
    /// DynamoDB endpoint override (DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    pub multicall: Address,
    /// Most calls per Multicall3 `aggregate3` (the poller's reads and the api's alike).
    pub multicall_chunk: usize,
    pub default_spender: Address,
    /// Per chain, the spender an order's allowance is judged against when the order names
    /// none (`ORDER_SPENDER_<chainId>`); chains not named use [`DEFAULT_SPENDER`] — CoW
    /// Protocol's GPv2VaultRelayer, at the same address on every chain it settles on.
    pub order_spenders: BTreeMap<u64, Address>,
    /// How long change-feed entries are kept for `Last-Event-ID` replay.
    pub feed_ttl: Duration,
    /// Whether the fanout also appends to the per-chain change log the server tails (off in a
    /// deployment without the server: nothing would read it).
    pub chain_log_enabled: bool,
    pub poller: PollerSettings,
    pub streams: StreamSettings,
    pub limits: ApiLimits,
    pub token_lists: TokenListSettings,
    pub tracking: TrackingSettings,
    pub webhooks: crate::domain::webhook::WebhookSettings,
    pub bounds: RequestBounds,
    /// Where the data key that seals webhook secrets at rest comes from.
    pub sealing: SealingSource,
    pub metrics: MetricsSettings,
}

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
}

/// What the api grants one client: how much a session, a batch or a wallet may hold, how
/// often sessions may be written, and how long an idle session lives.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// How long a session lives without an open stream.
    pub session_ttl: Duration,
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

/// Where the data key that seals webhook secrets comes from ([`crate::runtime::kms`]).
#[derive(Clone, PartialEq, Eq)]
pub enum SealingSource {
    /// None configured: webhook subscriptions cannot be created or delivered.
    None,
    /// `WEBHOOK_SECRETS_KEY`: 32 bytes, base64 — the local stack's and the tests' key.
    Local([u8; 32]),
    /// `WEBHOOK_SECRETS_KMS_KEY`: a KMS key (id or ARN) that wraps the data key kept in the
    /// table; each container unwraps it once.
    Kms(String),
}

impl fmt::Debug for SealingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Local(_) => f.write_str("Local(<redacted>)"),
            Self::Kms(key) => f.debug_tuple("Kms").field(key).finish(),
        }
    }
}

/// The long-lived HTTP server's own settings: what the function URL does for the function.
/// Read by the server alone ([`ServerSettings::from_env`]), not part of [`Settings`]: no
/// other binary parses the server's origins or address.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub addr: std::net::SocketAddr,
    /// Behind a load balancer that appends the client's address to `X-Forwarded-For`: rate
    /// limits key on that last entry. Off, they key on the peer address.
    pub trust_forwarded_for: bool,
    /// Origins allowed by CORS (`*`: any), as the function URL's CORS configuration.
    pub cors_allow_origins: Vec<String>,
    /// Longest a request may take to be answered (an SSE stream: to start).
    pub request_timeout: Duration,
    /// After SIGTERM, how long open requests get to finish before the process exits.
    pub drain_timeout: Duration,
}

/// Where the long-lived processes (the poller, the server) report their metrics. The functions
/// always write the Embedded Metric Format: a function has no port to scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// Prometheus text at the process's `/metrics` (`METRICS_FORMAT=prometheus`, the default).
    Prometheus,
    /// CloudWatch Embedded Metric Format lines on stdout every `METRICS_FLUSH_SECS`
    /// (`METRICS_FORMAT=emf`): CloudWatch Logs turns them into metrics, no scraper needed.
    Emf,
}

/// How every binary reports its metrics.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub format: MetricsFormat,
    /// CloudWatch namespace of the EMF lines (`METRICS_NAMESPACE`).
    pub namespace: String,
    /// How often a long-lived process writes its EMF lines (`METRICS_FLUSH_SECS`).
    pub flush_every: Duration,
}

impl MetricsSettings {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            format: match vars.get("METRICS_FORMAT").as_deref() {
                None | Some("prometheus") => MetricsFormat::Prometheus,
                Some("emf") => MetricsFormat::Emf,
                Some(other) => {
                    return Err(invalid(
                        "METRICS_FORMAT",
                        format!("expected prometheus or emf, got {other:?}"),
                    ));
                }
            },
            namespace: vars
                .get("METRICS_NAMESPACE")
                .unwrap_or_else(|| "LiveBalances".into()),
            flush_every: vars
                .secs("METRICS_FLUSH_SECS", 60)?
                .max(Duration::from_secs(1)),
        })
    }
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

/// Limits of token-list fetching: every one of them stands between a client and a request the
/// service makes on its behalf.
#[derive(Debug, Clone)]
pub struct TokenListSettings {
    /// Development only: allow `http://` and loopback hosts (a list served on this machine).
    pub allow_insecure: bool,
    /// How long a fetched list is used before it is revalidated.
    pub ttl: Duration,
    /// Whole fetch, redirects included.
    pub timeout: Duration,
    /// Largest list body, counted while it streams in.
    pub max_bytes: usize,
    pub max_redirects: usize,
    /// Most `tokensListsUrls` in one request.
    pub max_per_request: usize,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars = Vars::new(vars);
        Ok(Self {
            chains: chains(&vars)?,
            rpc: RpcSettings {
                max_wait: vars.millis("RPC_MAX_WAIT_MS", 15_000)?,
            },
            table_name: vars
                .get("TABLE_NAME")
                .unwrap_or_else(|| "live-balances".into()),
            dynamodb_endpoint: vars.get("DYNAMODB_ENDPOINT"),
            multicall: vars.address("MULTICALL_ADDRESS", DEFAULT_MULTICALL)?,
            multicall_chunk: vars.number("MULTICALL_CHUNK", 1000)?.max(1) as usize,
            default_spender: vars.address("DEFAULT_SPENDER", DEFAULT_SPENDER)?,
            order_spenders: order_spenders(&vars)?,
            feed_ttl: vars.secs("FEED_TTL_SECS", 86_400)?,
            chain_log_enabled: match vars.get("CHAIN_LOG_ENABLED") {
                None => true,
                v => flag("CHAIN_LOG_ENABLED", v)?,
            },
            poller: PollerSettings::from_vars(&vars)?,
            streams: StreamSettings::from_vars(&vars)?,
            limits: ApiLimits::from_vars(&vars)?,
            token_lists: TokenListSettings::from_vars(&vars)?,
            tracking: TrackingSettings::from_vars(&vars)?,
            webhooks: webhook_settings(&vars)?,
            bounds: RequestBounds::from_vars(&vars)?,
            sealing: SealingSource::from_vars(&vars)?,
            metrics: MetricsSettings::from_vars(&vars)?,
        })
    }
}

impl RequestBounds {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
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

impl SealingSource {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        use base64::Engine;
        match (
            vars.get("WEBHOOK_SECRETS_KEY"),
            vars.get("WEBHOOK_SECRETS_KMS_KEY"),
        ) {
            (None, None) => Ok(Self::None),
            (Some(_), Some(_)) => Err(invalid(
                "WEBHOOK_SECRETS_KEY",
                "set it or WEBHOOK_SECRETS_KMS_KEY, not both",
            )),
            (Some(local), None) => base64::engine::general_purpose::STANDARD
                .decode(local)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .map(Self::Local)
                // Never quotes the value: it is a key.
                .ok_or_else(|| invalid("WEBHOOK_SECRETS_KEY", "expected 32 bytes in base64")),
            (None, Some(kms)) => Ok(Self::Kms(kms)),
        }
    }
}

impl PollerSettings {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            snapshot_interval: vars.secs("SNAPSHOT_INTERVAL", 300)?,
            head_poll_interval: vars.millis("HEAD_POLL_INTERVAL_MS", 1000)?,
            max_block_range: vars.number("MAX_BLOCK_RANGE", 500)?.max(1),
            http_addr: vars.socket("POLLER_HTTP_ADDR")?,
            session_pass_interval: vars.secs("SESSION_PASS_SECS", 600)?,
        })
    }
}

impl StreamSettings {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
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
        })
    }
}

impl ApiLimits {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            session_ttl: vars.secs("SESSION_TTL_SECS", 3600)?,
            max_tokens_per_session: vars.count("MAX_TOKENS_PER_SESSION", 20_000)?,
            batch_max_tokens: vars.count("BATCH_MAX_TOKENS", 500)?,
            session_writes_per_source: vars.number("SESSION_WRITES_PER_SOURCE_PER_MINUTE", 120)?,
            session_writes_per_owner: vars.number("SESSION_WRITES_PER_OWNER_PER_MINUTE", 30)?,
            max_sessions_per_chain: vars.number("MAX_SESSIONS_PER_CHAIN", 20_000)?,
            max_orders_per_wallet: vars.number("MAX_ORDERS_PER_WALLET", 100)? as usize,
        })
    }
}

impl TokenListSettings {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_insecure: vars.flag("TOKEN_LIST_ALLOW_INSECURE")?,
            ttl: vars.secs("TOKEN_LIST_TTL_SECS", 3600)?,
            timeout: vars.millis("TOKEN_LIST_TIMEOUT_MS", 5000)?,
            max_bytes: vars.count("TOKEN_LIST_MAX_BYTES", 5 << 20)?,
            max_redirects: vars.count("TOKEN_LIST_MAX_REDIRECTS", 3)?,
            max_per_request: vars.count("MAX_TOKEN_LISTS_PER_REQUEST", 5)?,
        })
    }
}

impl ServerSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars = &Vars::new(vars);
        Ok(Self {
            addr: vars.socket("SERVER_ADDR")?,
            trust_forwarded_for: vars.flag("TRUST_X_FORWARDED_FOR")?,
            cors_allow_origins: origins(vars.get("CORS_ALLOW_ORIGIN"))?,
            request_timeout: vars.secs("SERVER_REQUEST_TIMEOUT_SECS", 60)?,
            drain_timeout: vars.secs("SERVER_DRAIN_SECS", 20)?,
        })
    }
}

impl TrackingSettings {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
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

/// The variables as [`Settings::from_vars`] reads them: trimmed, a blank one absent, each
/// read with its default and named in the error when it does not parse.
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(
            vars.into_iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<String> {
        asked::record(name);
        self.0.get(name).map(|v| v.trim().to_string())
    }

    /// The variables named `{prefix}<id>`, one per chain: (name, the id's text, value).
    fn per_chain<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a str, &'a String)> {
        asked::record(&format!("{prefix}<id>"));
        self.0
            .iter()
            .filter_map(move |(name, value)| name.strip_prefix(prefix).map(|id| (name, id, value)))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        number(name, self.get(name), default)
    }

    fn count(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        Ok(self.number(name, default as u64)? as usize)
    }

    fn secs(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.number(name, default)?))
    }

    fn millis(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.number(name, default)?))
    }

    fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        flag(name, self.get(name))
    }

    fn address(&self, name: &str, default: Address) -> Result<Address, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_address(&v).map_err(|e| invalid(name, e.to_string())),
        }
    }

    /// A listening address, `0.0.0.0:8080` when unset.
    fn socket(&self, name: &str) -> Result<std::net::SocketAddr, ConfigError> {
        match self.get(name) {
            None => Ok(std::net::SocketAddr::from(([0, 0, 0, 0], 8080))),
            Some(v) => v
                .parse()
                .map_err(|_| invalid(name, "expected host:port, e.g. 0.0.0.0:8080")),
        }
    }
}

impl Settings {
    /// The spender an order on `chain_id` is judged against when it names none.
    pub fn order_spender(&self, chain_id: u64) -> Address {
        self.order_spenders
            .get(&chain_id)
            .copied()
            .unwrap_or(DEFAULT_SPENDER)
    }
}

/// `ORDER_SPENDER_<chainId>` variables: each chain's default order spender.
fn order_spenders(vars: &Vars) -> Result<BTreeMap<u64, Address>, ConfigError> {
    vars.per_chain("ORDER_SPENDER_")
        .map(|(name, chain, value)| {
            let chain_id = chain_id(name, chain)?;
            let spender = parse_address(value.trim()).map_err(|e| invalid(name, e.to_string()))?;
            Ok((chain_id, spender))
        })
        .collect()
}

/// Where a deployment keeps its chain endpoints: one Secrets Manager secret
/// (`CHAIN_SECRET_ID`, a name or ARN) holding a JSON object whose keys are the endpoint
/// variables themselves (`{"RPC_URL_1":"https://…","WS_URL_1":"wss://…",…}`, a value listing
/// several URLs separated by commas as the variable would), read at start
/// by every binary that reaches a chain; `CHAIN_IDS` (`1,42161`) names the chains this
/// deployment serves. So no RPC URL, API key and all, sits in a function's or a task's plain
/// configuration. Without `CHAIN_SECRET_ID` the endpoints come from the environment (the
/// local stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSecret {
    pub secret_id: String,
    /// The chains served. The secret may hold more: a chain's URLs go into the secret before
    /// the deploy that lists it, and stay until after the deploy that drops it.
    pub chain_ids: BTreeSet<u64>,
}

impl ChainSecret {
    /// `CHAIN_SECRET_ID` with `CHAIN_IDS`, both or neither; `None` when neither is set.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| {
            asked::record(name);
            vars.iter()
                .rev()
                .find(|(k, v)| k == name && !v.trim().is_empty())
                .map(|(_, v)| v.trim())
        };
        match (get("CHAIN_SECRET_ID"), get("CHAIN_IDS")) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(invalid(
                "CHAIN_IDS",
                "names the chains of CHAIN_SECRET_ID, which is not set",
            )),
            (Some(_), None) => Err(invalid(
                "CHAIN_IDS",
                "required with CHAIN_SECRET_ID: the chains served, e.g. 1,42161",
            )),
            (Some(secret_id), Some(list)) => {
                let mut chain_ids = BTreeSet::new();
                for id in list.split(',').map(str::trim) {
                    if !chain_ids.insert(chain_id("CHAIN_IDS", id)?) {
                        return Err(invalid("CHAIN_IDS", format!("chain {id} is listed twice")));
                    }
                }
                Ok(Some(Self {
                    secret_id: secret_id.to_string(),
                    chain_ids,
                }))
            }
        }
    }

    /// `vars` with the endpoints of the served chains from `secret` (the secret's JSON text)
    /// added, ready for [`Settings::from_vars`]. The environment must not name endpoints of
    /// its own: two sources for one URL would leave which one is used to chance.
    pub fn merge(
        &self,
        vars: Vec<(String, String)>,
        secret: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        if let Some((name, _)) = vars
            .iter()
            .find(|(k, v)| is_endpoint_variable(k) && !v.trim().is_empty())
        {
            return Err(invalid(
                name,
                "chain endpoints come from CHAIN_SECRET_ID; remove it from the environment",
            ));
        }
        let fail = |reason: String| ConfigError::ChainSecret {
            secret_id: self.secret_id.clone(),
            reason,
        };
        // serde_json's syntax errors give a position, never the text around it.
        let document: serde_json::Value =
            serde_json::from_str(secret).map_err(|e| fail(format!("not JSON ({e})")))?;
        let object = document.as_object().ok_or_else(|| {
            fail(r#"expected a JSON object such as {"RPC_URL_1":"https://…"}"#.into())
        })?;
        let mut merged = vars;
        let mut has_rpc = BTreeSet::new();
        for (key, value) in object {
            let chain = key
                .strip_prefix("RPC_URL_")
                .or_else(|| key.strip_prefix("WS_URL_"))
                .and_then(|id| chain_id(key, id).ok())
                .ok_or_else(|| {
                    fail(format!(
                        "key {key:?} is not RPC_URL_<chainId> or WS_URL_<chainId>"
                    ))
                })?;
            let value = value
                .as_str()
                .ok_or_else(|| fail(format!("{key} is not a string")))?;
            if !self.chain_ids.contains(&chain) {
                continue;
            }
            if key.starts_with("RPC_URL_") {
                has_rpc.insert(chain);
            }
            merged.push((key.clone(), value.to_string()));
        }
        if let Some(missing) = self.chain_ids.difference(&has_rpc).next() {
            return Err(fail(format!(
                "no RPC_URL_{missing}, and CHAIN_IDS lists chain {missing}"
            )));
        }
        Ok(merged)
    }
}

/// Whether `name` is a variable [`chains`] reads an endpoint from.
fn is_endpoint_variable(name: &str) -> bool {
    name.starts_with("RPC_URL")
        || name.starts_with("WS_URL")
        || SEED_NAMES.iter().any(|(n, ..)| *n == name)
}

/// `WEBHOOK_*`: delivery and subscription limits (see [`crate::domain::webhook::WebhookSettings`]).
fn webhook_settings(vars: &Vars) -> Result<crate::domain::webhook::WebhookSettings, ConfigError> {
    use crate::domain::webhook::{MAX_WALLETS_LIMIT, WebhookSettings};
    let d = WebhookSettings::default();
    let ms = |name: &str, default: Duration| vars.millis(name, default.as_millis() as u64);
    let secs = |name: &str, default: Duration| vars.secs(name, default.as_secs());
    let max_wallets = vars.count("WEBHOOK_MAX_WALLETS", d.max_wallets)?;
    if !(1..=MAX_WALLETS_LIMIT).contains(&max_wallets) {
        return Err(invalid(
            "WEBHOOK_MAX_WALLETS",
            format!("expected 1 to {MAX_WALLETS_LIMIT}"),
        ));
    }
    Ok(WebhookSettings {
        allow_insecure: vars.flag("WEBHOOK_ALLOW_INSECURE")?,
        timeout: ms("WEBHOOK_TIMEOUT_MS", d.timeout)?,
        attempts: vars
            .number("WEBHOOK_ATTEMPTS", u64::from(d.attempts))?
            .clamp(1, 20) as u32,
        retry_first: ms("WEBHOOK_RETRY_FIRST_MS", d.retry_first)?,
        retry_max: ms("WEBHOOK_RETRY_MAX_MS", d.retry_max)?,
        disable_after: secs("WEBHOOK_DISABLE_AFTER_SECS", d.disable_after)?,
        parked_ttl: secs("WEBHOOK_PARKED_TTL_SECS", d.parked_ttl)?,
        max_wallets,
        max_tokens: vars.count("WEBHOOK_MAX_TOKENS", d.max_tokens)?,
        max_per_wallet: vars
            .count("WEBHOOK_MAX_PER_WALLET", d.max_per_wallet)?
            .max(1),
        creates_per_source: vars.number(
            "WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE",
            d.creates_per_source,
        )?,
        concurrency: vars.count("WEBHOOK_CONCURRENCY", d.concurrency)?.max(1),
        batch_budget: secs("WEBHOOK_BATCH_SECS", d.batch_budget)?.max(Duration::from_secs(1)),
        secret_overlap: secs("WEBHOOK_SECRET_OVERLAP_SECS", d.secret_overlap)?,
    })
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        reason: reason.into(),
    }
}

fn number(name: &str, value: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(name, format!("expected a whole number, got {v:?}"))),
    }
}

fn flag(name: &str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(invalid(
            name,
            format!("expected true or false, got {other:?}"),
        )),
    }
}

/// `CORS_ALLOW_ORIGIN`: `*`, or comma-separated origins (`scheme://host[:port]`, no path).
fn origins(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(vec!["*".into()]);
    };
    let list: Vec<String> = value
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    for origin in &list {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let well_formed = origin == "*"
            || rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', ' ']));
        if !well_formed {
            return Err(invalid(
                "CORS_ALLOW_ORIGIN",
                format!("{origin:?} is not * or an origin such as https://app.example"),
            ));
        }
    }
    if list.len() > 1 && list.iter().any(|o| o == "*") {
        return Err(invalid(
            "CORS_ALLOW_ORIGIN",
            "* cannot be combined with origins",
        ));
    }
    Ok(list)
}

/// An endpoint variable's value: one URL, or several separated by commas (a comma inside a
/// URL is written `%2C`), each of the scheme the variable takes, none twice. Errors name the
/// variable and the item's position, never a value (values hold API keys).
fn urls(name: &str, value: &str, ws: bool) -> Result<Vec<String>, ConfigError> {
    let allowed: &[&str] = if ws {
        &["ws://", "wss://"]
    } else {
        &["http://", "https://"]
    };
    let mut list: Vec<String> = vec![];
    for (i, item) in value.split(',').map(str::trim).enumerate() {
        let position = i + 1;
        if !allowed.iter().any(|p| item.starts_with(p)) {
            let which = if value.contains(',') {
                format!("URL {position} ")
            } else {
                String::new()
            };
            return Err(invalid(
                name,
                format!("{which}must start with {}", allowed.join(" or ")),
            ));
        }
        if list.iter().any(|u| u == item) {
            return Err(invalid(name, format!("URL {position} is listed twice")));
        }
        list.push(item.to_string());
    }
    Ok(list)
}

fn chains(all: &Vars) -> Result<BTreeMap<u64, ChainEndpoints>, ConfigError> {
    let vars = &all.0;
    for name in [
        "RPC_URL_<id>",
        "WS_URL_<id>",
        "WETH_<id>",
        "RPC_URL",
        "WS_URL",
    ]
    .into_iter()
    .chain(SEED_NAMES.iter().map(|(n, ..)| *n))
    {
        asked::record(name);
    }
    let mut rpc: BTreeMap<u64, (String, Vec<String>)> = BTreeMap::new();
    let mut ws: BTreeMap<u64, (String, Vec<String>)> = BTreeMap::new();
    for (name, value) in vars {
        let value = value.trim();
        let (chain_id, is_ws) = if let Some(id) = name.strip_prefix("RPC_URL_") {
            (chain_id(name, id)?, false)
        } else if let Some(id) = name.strip_prefix("WS_URL_") {
            (chain_id(name, id)?, true)
        } else if let Some((_, id, is_ws)) = SEED_NAMES.iter().find(|(n, ..)| n == name) {
            (*id, *is_ws)
        } else {
            continue;
        };
        let parsed = urls(name, value, is_ws)?;
        let target = if is_ws { &mut ws } else { &mut rpc };
        // The explicit per-chain name wins over a seed name for the same chain.
        let explicit = name.starts_with("RPC_URL_") || name.starts_with("WS_URL_");
        if explicit || !target.contains_key(&chain_id) {
            target.insert(chain_id, (name.clone(), parsed));
        }
    }
    // The single-chain form (`CHAIN_ID` with `RPC_URL`, `WS_URL`) suits deploy templates,
    // where variable names cannot be computed.
    if let Some(id) = all.get("CHAIN_ID") {
        let chain_id = chain_id("CHAIN_ID", &id)?;
        for (name, is_ws) in [("RPC_URL", false), ("WS_URL", true)] {
            if let Some(value) = vars.get(name) {
                let target = if is_ws { &mut ws } else { &mut rpc };
                target
                    .entry(chain_id)
                    .or_insert((name.to_string(), urls(name, value.trim(), is_ws)?));
            }
        }
    }
    if let Some((chain_id, (name, _))) = ws.iter().find(|(id, _)| !rpc.contains_key(id)) {
        return Err(ConfigError::WebSocketWithoutRpc {
            name: name.clone(),
            chain_id: *chain_id,
        });
    }
    rpc.into_iter()
        .map(|(chain_id, (_, rpc_urls))| {
            let ws_urls = ws
                .get(&chain_id)
                .map(|(_, u)| u.clone())
                .unwrap_or_default();
            let weth_name = format!("WETH_{chain_id}");
            let weth = match vars.get(&weth_name) {
                Some(v) => {
                    Some(parse_address(v.trim()).map_err(|e| invalid(&weth_name, e.to_string()))?)
                }
                None => known_wrapped_native(chain_id),
            };
            Ok((
                chain_id,
                ChainEndpoints {
                    chain_id,
                    rpc_urls,
                    ws_urls,
                    weth,
                },
            ))
        })
        .collect()
}

fn chain_id(name: &str, id: &str) -> Result<u64, ConfigError> {
    match id.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(
            name,
            "the suffix must be a chain id (a positive whole number)",
        )),
    }
}

/// The most `MAX_PAIRS_PER_STREAM` may be: a stream id of this many pairs is at most
/// [`crate::feed::stream_id::max_len`]`(32)` = 875 characters.
pub const MAX_PAIRS_LIMIT: u64 = 32;

#[cfg(test)]
mod page;

/// Every variable name the readers above were asked for, recorded per thread in tests (a
/// per-chain name as `PREFIX_<id>`), so a test can hold `docs/src/configuration.md` to the
/// names the code reads. Outside tests it records nothing.
mod asked {
    #[cfg(test)]
    thread_local! {
        static NAMES: std::cell::RefCell<std::collections::BTreeSet<String>> =
            const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
    }

    #[cfg(test)]
    pub(super) fn record(name: &str) {
        NAMES.with(|n| n.borrow_mut().insert(name.to_string()));
    }

    #[cfg(not(test))]
    pub(super) fn record(_: &str) {}

    /// The names recorded on this thread since the last call.
    #[cfg(test)]
    pub(super) fn take() -> std::collections::BTreeSet<String> {
        NAMES.with(|n| std::mem::take(&mut *n.borrow_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert!(s.chains.is_empty());
        assert_eq!(s.table_name, "live-balances");
        assert_eq!(s.multicall, DEFAULT_MULTICALL);
        assert_eq!(s.default_spender, DEFAULT_SPENDER);
        assert_eq!(s.streams.ping_interval, Duration::from_secs(15));
        assert_eq!(s.tracking.native_balances, NativeBalances::Auto);
        assert_eq!(s.tracking.sweep_all_interval, Duration::from_secs(60));
        assert_eq!(s.tracking.sweep_reads_per_block, 500);
        assert_eq!(s.poller.session_pass_interval, Duration::from_secs(600));
        assert_eq!(s.limits.max_tokens_per_session, 20_000);
        assert_eq!(s.streams.max_pairs, 10);
        let pairs = |v: &str| settings(&[("MAX_PAIRS_PER_STREAM", v)]).map(|s| s.streams.max_pairs);
        assert_eq!(pairs("32").unwrap(), 32);
        assert!(pairs("0").is_err() && pairs("33").is_err());
        assert_eq!(
            settings(&[("NATIVE_BALANCES", "reads")])
                .unwrap()
                .tracking
                .native_balances,
            NativeBalances::Reads
        );
        assert!(settings(&[("NATIVE_BALANCES", "sometimes")]).is_err());
    }

    #[test]
    fn metrics_are_prometheus_text_unless_emf_is_asked() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.metrics.format, MetricsFormat::Prometheus);
        assert_eq!(s.metrics.namespace, "LiveBalances");
        assert_eq!(s.metrics.flush_every, Duration::from_secs(60));
        let emf = settings(&[("METRICS_FORMAT", "emf"), ("METRICS_FLUSH_SECS", "0")]).unwrap();
        assert_eq!(emf.metrics.format, MetricsFormat::Emf);
        assert_eq!(
            emf.metrics.flush_every,
            Duration::from_secs(1),
            "at least a second"
        );
        let refused = settings(&[("METRICS_FORMAT", "statsd")]).unwrap_err();
        assert!(refused.to_string().contains("METRICS_FORMAT"), "{refused}");
    }

    #[test]
    fn chains_from_explicit_and_seed_names() {
        let s = settings(&[
            ("RPC_URL_31337", "http://127.0.0.1:8545"),
            ("WS_URL_31337", "ws://127.0.0.1:8545"),
            ("ETH_RPC", "https://eth.example/v2/KEY"),
            ("ETH_WC_RPC", "wss://eth.example/ws/KEY"),
            ("ARBITRUM_RPC", "https://arb.example"),
            ("SEPOLIA_RPC", "https://sep.example"),
        ])
        .unwrap();
        assert_eq!(
            s.chains.keys().copied().collect::<Vec<_>>(),
            vec![1, 31337, 42161, 11155111]
        );
        assert_eq!(s.chains[&1].ws_urls, ["wss://eth.example/ws/KEY"]);
        assert!(s.chains[&42161].ws_urls.is_empty());
        assert_eq!(s.chains[&1].weth, known_wrapped_native(1));
        assert_eq!(s.chains[&31337].weth, None);
        assert_eq!(s.rpc.max_wait, Duration::from_secs(15));
    }

    #[test]
    fn several_urls_per_chain_in_order() {
        let s = settings(&[
            (
                "RPC_URL_1",
                "https://a.example/KEY1, https://b.example/KEY2",
            ),
            ("WS_URL_1", "wss://a.example/KEY1,wss://b.example/KEY2"),
            ("RPC_MAX_WAIT_MS", "2500"),
        ])
        .unwrap();
        assert_eq!(
            s.chains[&1].rpc_urls,
            ["https://a.example/KEY1", "https://b.example/KEY2"]
        );
        assert_eq!(
            s.chains[&1].ws_urls,
            ["wss://a.example/KEY1", "wss://b.example/KEY2"]
        );
        assert_eq!(s.rpc.max_wait, Duration::from_millis(2500));
        for bad in [
            "https://a.example/KEY1,",
            "https://a.example/KEY1,wss://b.example/KEY2",
            "https://a.example/KEY1,https://a.example/KEY1",
        ] {
            let error = settings(&[("RPC_URL_1", bad)]).unwrap_err();
            assert!(!error.to_string().contains("KEY"), "{error}");
            assert!(error.to_string().contains("URL 2"), "{error}");
        }
    }

    #[test]
    fn webhook_limits_have_defaults_and_bounds() {
        let d = settings(&[]).unwrap().webhooks;
        assert_eq!(
            (d.max_per_wallet, d.creates_per_source, d.max_wallets),
            (20, 10, 50)
        );
        let s = settings(&[
            ("WEBHOOK_MAX_PER_WALLET", "3"),
            ("WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE", "4"),
        ])
        .unwrap()
        .webhooks;
        assert_eq!((s.max_per_wallet, s.creates_per_source), (3, 4));
        // No wallet may be closed to every subscription.
        let s = settings(&[("WEBHOOK_MAX_PER_WALLET", "0")])
            .unwrap()
            .webhooks;
        assert_eq!(s.max_per_wallet, 1);
        assert!(settings(&[("WEBHOOK_MAX_WALLETS", "100")]).is_err());
        assert!(settings(&[("WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE", "many")]).is_err());
    }

    #[test]
    fn order_spender_per_chain_with_the_vault_relayer_by_default() {
        let s = settings(&[
            (
                "ORDER_SPENDER_100",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ),
            ("MAX_ORDERS_PER_WALLET", "7"),
        ])
        .unwrap();
        assert_eq!(s.order_spender(1), DEFAULT_SPENDER);
        assert_eq!(
            s.order_spender(100),
            address!("0x5FbDB2315678afecb367f032d93F642f64180aa3")
        );
        assert_eq!(s.limits.max_orders_per_wallet, 7);
        assert_eq!(settings(&[]).unwrap().limits.max_orders_per_wallet, 100);
        for bad in [
            (
                "ORDER_SPENDER_x",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ),
            ("ORDER_SPENDER_5", "0x12"),
        ] {
            assert!(settings(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_list_limits_and_weth_override() {
        let s = settings(&[
            ("RPC_URL_31337", "http://127.0.0.1:8545"),
            ("WETH_31337", "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
            ("TOKEN_LIST_ALLOW_INSECURE", "true"),
        ])
        .unwrap();
        assert!(s.chains[&31337].weth.is_some());
        assert!(s.token_lists.allow_insecure);
        assert!(!settings(&[]).unwrap().token_lists.allow_insecure);
        assert_eq!(settings(&[]).unwrap().token_lists.max_bytes, 5 << 20);
        assert!(settings(&[("TOKEN_LIST_ALLOW_INSECURE", "maybe")]).is_err());
        assert!(settings(&[("RPC_URL_5", "http://x"), ("WETH_5", "0x12")]).is_err());
    }

    #[test]
    fn single_chain_form() {
        let s = settings(&[
            ("CHAIN_ID", "10"),
            ("RPC_URL", "https://op.example"),
            ("WS_URL", "wss://op.example"),
        ])
        .unwrap();
        assert_eq!(s.chains[&10].rpc_urls, ["https://op.example"]);
        assert_eq!(s.chains[&10].ws_urls, ["wss://op.example"]);
        assert!(settings(&[("CHAIN_ID", "x"), ("RPC_URL", "https://op.example")]).is_err());
    }

    #[test]
    fn explicit_name_wins_over_seed_name() {
        let s = settings(&[
            ("ETH_RPC", "https://seed"),
            ("RPC_URL_1", "https://explicit"),
        ])
        .unwrap();
        assert_eq!(s.chains[&1].rpc_urls, ["https://explicit"]);
    }

    #[test]
    fn rejects_bad_values() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("bad chain suffix", &[("RPC_URL_abc", "http://x")]),
            ("zero chain", &[("RPC_URL_0", "http://x")]),
            ("ws url in rpc", &[("RPC_URL_1", "ws://x")]),
            (
                "http url in ws",
                &[("RPC_URL_1", "http://x"), ("WS_URL_1", "http://x")],
            ),
            ("ws without rpc", &[("WS_URL_5", "ws://x")]),
            ("bad number", &[("SNAPSHOT_INTERVAL", "soon")]),
            ("bad multicall", &[("MULTICALL_ADDRESS", "0x12")]),
        ];
        for (name, vars) in cases {
            assert!(settings(vars).is_err(), "{name}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn chain_secret_is_read_with_its_chain_list() {
        assert_eq!(ChainSecret::from_vars(&vars(&[])).unwrap(), None);
        assert_eq!(
            ChainSecret::from_vars(&vars(&[("CHAIN_SECRET_ID", ""), ("CHAIN_IDS", " ")])).unwrap(),
            None
        );
        let secret = ChainSecret::from_vars(&vars(&[
            (
                "CHAIN_SECRET_ID",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:rpc-AbCdEf",
            ),
            ("CHAIN_IDS", " 42161, 1 ,8453"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            secret.secret_id,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:rpc-AbCdEf"
        );
        assert_eq!(
            secret.chain_ids.iter().copied().collect::<Vec<_>>(),
            vec![1, 8453, 42161]
        );
        let refused: &[(&str, &[(&str, &str)])] = &[
            ("ids without secret", &[("CHAIN_IDS", "1")]),
            ("secret without ids", &[("CHAIN_SECRET_ID", "rpc")]),
            (
                "not a number",
                &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "1,eth")],
            ),
            ("zero", &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "0")]),
            (
                "empty item",
                &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "1,,2")],
            ),
            (
                "twice",
                &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "1,2,1")],
            ),
        ];
        for (case, pairs) in refused {
            let error = ChainSecret::from_vars(&vars(pairs)).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { name, .. } if name == "CHAIN_IDS"),
                "{case}: {error}"
            );
        }
    }

    fn secret(ids: &[u64]) -> ChainSecret {
        ChainSecret {
            secret_id: "live-balances/rpc".into(),
            chain_ids: ids.iter().copied().collect(),
        }
    }

    #[test]
    fn chain_secret_merges_into_endpoints() {
        let env = vars(&[
            ("TABLE_NAME", "t"),
            ("WETH_8453", "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        ]);
        let document = r#"{
            "RPC_URL_1": "https://eth.example/v2/KEY1",
            "WS_URL_1": "wss://eth.example/ws/KEY1",
            "RPC_URL_8453": "https://base.example/KEY2, https://base-fallback.example/KEY3",
            "RPC_URL_10": "https://op.example/not-served-yet"
        }"#;
        let merged = secret(&[1, 8453]).merge(env, document).unwrap();
        let s = Settings::from_vars(merged).unwrap();
        assert_eq!(s.table_name, "t");
        assert_eq!(s.chains.keys().copied().collect::<Vec<_>>(), vec![1, 8453]);
        assert_eq!(s.chains[&1].rpc_urls, ["https://eth.example/v2/KEY1"]);
        assert_eq!(s.chains[&1].ws_urls, ["wss://eth.example/ws/KEY1"]);
        assert_eq!(s.chains[&1].weth, known_wrapped_native(1));
        assert!(s.chains[&8453].ws_urls.is_empty());
        assert_eq!(
            s.chains[&8453].rpc_urls,
            [
                "https://base.example/KEY2",
                "https://base-fallback.example/KEY3"
            ]
        );
        assert_eq!(
            s.chains[&8453].weth,
            Some(address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"))
        );
    }

    #[test]
    fn chain_secret_refusals_name_keys_never_values() {
        /// (case, environment, secret document)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("not json", &[], "https://x.example/KEY {"),
            ("not an object", &[], r#"["https://x.example/KEY"]"#),
            ("a bare string", &[], r#""https://x.example/KEY""#),
            ("number value", &[], r#"{"RPC_URL_1": 5}"#),
            (
                "unknown key",
                &[],
                r#"{"RPC_URL_1":"https://x.example/KEY","ETH_RPC":"https://y/KEY"}"#,
            ),
            (
                "bad chain in key",
                &[],
                r#"{"RPC_URL_one":"https://x.example/KEY"}"#,
            ),
            (
                "listed chain missing",
                &[],
                r#"{"RPC_URL_2":"https://x.example/KEY"}"#,
            ),
            ("ws only", &[], r#"{"WS_URL_1":"wss://x.example/KEY"}"#),
            (
                "endpoint in the environment too",
                &[("RPC_URL_1", "https://env.example/KEY")],
                r#"{"RPC_URL_1":"https://x.example/KEY"}"#,
            ),
            (
                "seed name in the environment",
                &[("ETH_RPC", "https://env.example/KEY")],
                r#"{"RPC_URL_1":"https://x.example/KEY"}"#,
            ),
        ];
        for (case, env, document) in cases {
            let error = secret(&[1]).merge(vars(env), document).unwrap_err();
            assert!(!error.to_string().contains("KEY"), "{case}: {error}");
        }
        // A value of the wrong scheme is refused when the endpoints are parsed, by name.
        let merged = secret(&[1])
            .merge(vec![], r#"{"RPC_URL_1":"wss://x.example/KEY"}"#)
            .unwrap();
        let error = Settings::from_vars(merged).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { name, .. } if name == "RPC_URL_1"),
            "{error}"
        );
        assert!(!error.to_string().contains("KEY"), "{error}");
    }

    #[test]
    fn server_settings() {
        let server = |vars: &[(&str, &str)]| {
            ServerSettings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        };
        let s = settings(&[]).unwrap();
        assert!(s.chain_log_enabled);
        assert_eq!(s.streams.chain_log_interval, Duration::from_millis(50));
        let d = server(&[]).unwrap();
        assert_eq!(d.cors_allow_origins, vec!["*".to_string()]);
        assert!(!d.trust_forwarded_for);
        let s = settings(&[("CHAIN_LOG_ENABLED", "false")]).unwrap();
        assert!(!s.chain_log_enabled);
        let d = server(&[
            (
                "CORS_ALLOW_ORIGIN",
                "https://app.example, http://localhost:3000/",
            ),
            ("TRUST_X_FORWARDED_FOR", "true"),
            ("SERVER_ADDR", "127.0.0.1:9100"),
        ])
        .unwrap();
        assert_eq!(
            d.cors_allow_origins,
            vec![
                "https://app.example".to_string(),
                "http://localhost:3000".into()
            ]
        );
        assert!(d.trust_forwarded_for);
        assert_eq!(d.addr.port(), 9100);
        for bad in [
            "app.example",
            "https://a.example/path",
            "*,https://a.example",
            "ftp://x",
        ] {
            assert!(server(&[("CORS_ALLOW_ORIGIN", bad)]).is_err(), "{bad}");
            // The other binaries never parse the server's origins.
            assert!(settings(&[("CORS_ALLOW_ORIGIN", bad)]).is_ok(), "{bad}");
        }
        assert!(server(&[("SERVER_ADDR", "nowhere")]).is_err());
    }

    #[test]
    fn debug_hides_keys() {
        let s = settings(&[("RPC_URL_1", "https://user:pw@eth.example/v2/SECRETKEY?k=1")]).unwrap();
        let shown = format!("{:?}", s.chains[&1]);
        assert!(
            !shown.contains("SECRETKEY") && !shown.contains("pw"),
            "{shown}"
        );
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
    }
}

#[cfg(test)]
mod props {
    //! Property tests of configuration parsing from arbitrary variable maps: no panic, every
    //! well-formed chain variable is taken, and no spelling of an endpoint leaks its key.

    use proptest::prelude::*;

    use super::*;

    /// Names the parser reads, plus junk, so maps hit every branch.
    fn var_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "RPC_URL",
                "WS_URL",
                "CHAIN_ID",
                "ETH_RPC",
                "ETH_WC_RPC",
                "ARBITRUM_RPC",
                "SEPOLIA_RPC",
                "SEPOLIA_WC_RPC",
                "TABLE_NAME",
                "MULTICALL_ADDRESS",
                "DEFAULT_SPENDER",
                "SNAPSHOT_INTERVAL",
                "HEAD_POLL_INTERVAL_MS",
                "MAX_BLOCK_RANGE",
                "MULTICALL_CHUNK",
                "SSE_MAX_SECS",
                "MAX_TOKENS_PER_SESSION",
                "POLLER_HTTP_ADDR",
            ])
            .prop_map(str::to_string),
            "(RPC_URL_|WS_URL_)[0-9a-z-]{0,22}",
            "[A-Z_]{1,12}",
        ]
    }

    fn var_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "(https?|wss?|ftp)://[a-z0-9.:@/?=&%-]{0,30}",
            "[0-9]{1,25}",
            "0x[0-9a-fA-F]{0,42}",
            "\\PC{0,20}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_any_variables(
            vars in prop::collection::vec((var_name(), var_value()), 0..12),
        ) {
            if let Ok(settings) = Settings::from_vars(vars) {
                for (id, chain) in &settings.chains {
                    prop_assert!(*id > 0);
                    prop_assert_eq!(chain.chain_id, *id);
                    prop_assert!(!chain.rpc_urls.is_empty());
                    prop_assert!(chain.rpc_urls.iter().all(|u| u.starts_with("http")));
                    prop_assert!(chain.ws_urls.iter().all(|u| u.starts_with("ws")));
                }
                prop_assert!(settings.poller.max_block_range >= 1 && settings.multicall_chunk >= 1);
            }
        }

        #[test]
        fn every_well_formed_chain_variable_is_taken(
            chains in prop::collection::btree_map(1u64..=u64::MAX, ("https?", "[a-z]{1,10}"), 1..6),
        ) {
            let vars = chains.iter().flat_map(|(id, (scheme, host))| {
                [
                    (format!("RPC_URL_{id}"), format!("{scheme}://{host}.example")),
                    (format!("WS_URL_{id}"), format!("wss://{host}.example")),
                ]
            });
            let settings = Settings::from_vars(vars).unwrap();
            prop_assert_eq!(
                settings.chains.keys().copied().collect::<Vec<_>>(),
                chains.keys().copied().collect::<Vec<_>>()
            );
            for (id, (scheme, host)) in &chains {
                let chain = &settings.chains[id];
                prop_assert_eq!(&chain.rpc_urls, &[format!("{scheme}://{host}.example")]);
                prop_assert_eq!(&chain.ws_urls, &[format!("wss://{host}.example")]);
            }
        }

        /// Keys live in userinfo, paths, queries and fragments; none survives redaction, and
        /// the endpoints' `Debug` (what logs print) is redacted.
        #[test]
        fn redaction_never_shows_a_key(
            scheme in prop::sample::select(vec!["http", "https", "ws", "wss", ""]),
            host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
            key in "[A-Z][A-Z0-9_]{7,31}",
            place in 0usize..6,
        ) {
            let sep = if scheme.is_empty() { "" } else { "://" };
            let url = match place {
                0 => format!("{scheme}{sep}{host}/v2/{key}"),
                1 => format!("{scheme}{sep}{host}?apikey={key}"),
                2 => format!("{scheme}{sep}user:{key}@{host}"),
                3 => format!("{scheme}{sep}{key}@{host}/rpc"),
                4 => format!("{scheme}{sep}{host}#{key}"),
                _ => format!("{scheme}{sep}{host}/a/b?x=1&key={key}#frag"),
            };
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&key), "{} shown as {}", url, shown);
            let endpoints = ChainEndpoints {
                chain_id: 1,
                rpc_urls: vec![url.clone(), url.clone()],
                ws_urls: vec![url.clone()],
                weth: None,
            };
            let debug = format!("{endpoints:?}");
            prop_assert!(!debug.contains(&key), "{}", debug);
        }

        /// Whatever a chain secret holds, merging it never panics and a refusal never
        /// quotes a value (values are URLs with keys).
        #[test]
        fn chain_secret_refusals_never_quote_values(
            entries in prop::collection::vec((
                prop_oneof![
                    "(RPC_URL_|WS_URL_)[0-9]{1,3}",
                    "(RPC_URL_|WS_URL_)[0-9a-z]{0,4}",
                    // Without a K, so no key name spells the marker the values carry.
                    "[A-J_]{1,10}",
                ],
                prop_oneof![
                    "(https?|wss?)://[a-z]{1,8}/KEY[A-Z0-9]{8}",
                    "[a-z]{0,6}KEY[A-Z0-9]{8}",
                ],
            ), 0..6),
            ids in prop::collection::btree_set(1u64..5, 1..3),
            shape in 0usize..3,
        ) {
            let object: serde_json::Map<String, serde_json::Value> = entries
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let document = match shape {
                0 => serde_json::Value::Object(object).to_string(),
                1 => serde_json::Value::Array(object.into_values().collect()).to_string(),
                _ => format!("{{{}", entries.iter().map(|(_, v)| v.as_str()).collect::<String>()),
            };
            let secret = ChainSecret { secret_id: "s".into(), chain_ids: ids };
            let outcome = secret
                .merge(vec![], &document)
                .and_then(Settings::from_vars);
            match outcome {
                Ok(settings) => prop_assert_eq!(
                    settings.chains.keys().copied().collect::<BTreeSet<_>>(),
                    secret.chain_ids
                ),
                Err(error) => prop_assert!(!error.to_string().contains("KEY"), "{}", error),
            }
        }
    }
}
