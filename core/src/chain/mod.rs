//! The chain adapter: everything the service asks of a chain's node, made to survive real
//! providers.
//!
//! - `transport`: the HTTP transport under every request — several URLs per chain with
//!   failover, rate limits waited out as the provider says (`fault` recognises what providers
//!   answer), a bound on every request's total wait;
//! - this file: the reader, its options and errors;
//! - `values`: balances, allowances (ERC-20 and Permit2) and native balances in Multicall3
//!   `aggregate3` batches at one block (each call may fail on its own — a reverting or
//!   non-standard token — without failing the batch); `metadata`: token metadata;
//! - `blocks`: headers; `logs`: the logs that touch watched owners, split adaptively when a
//!   provider refuses a range or a result count; `traces`: the accounts a block changed the
//!   native balance of, and which trace method (if any) the node offers; `subscription`: new
//!   heads over WebSocket; `billing`: what providers bill per request and which way of finding
//!   native changes costs least; `observer`: what the adapter reports as it works.

pub mod abi;
mod billing;
mod blocks;
mod fault;
pub mod known_chains;
mod logs;
mod metadata;
mod observer;
mod subscription;
mod traces;
mod transport;
mod values;

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::{DynProvider, MulticallError, Provider, RootProvider};
use alloy::transports::TransportError;
use thiserror::Error;

pub use billing::{ALCHEMY_UNITS, NativeCost, NativeStep, UnitCosts};
pub use blocks::BlockHead;
pub use fault::Fault;
pub use logs::{LogOverflow, MAX_FILTERED_OWNERS, OWNERS_PER_FILTER, OwnerLogs, OwnerTopics};
pub use observer::{LogLimitsView, RpcObserver, Unobserved, method_label};
pub use subscription::HeadSubscription;
pub use traces::{NativeSource, TraceProbe};

#[derive(Debug, Error)]
pub enum ChainError {
    #[error("RPC request failed ({}): {message}", fault.kind())]
    Rpc { fault: Fault, message: String },
    #[error("RPC URL is not valid: {0}")]
    BadUrl(String),
}

impl ChainError {
    /// What the failure means (a rate limit that outlasted the wait, a log refusal, …).
    pub fn fault(&self) -> Fault {
        match self {
            Self::Rpc { fault, .. } => *fault,
            Self::BadUrl(_) => Fault::Other,
        }
    }

    fn other(message: impl std::fmt::Display) -> Self {
        Self::Rpc {
            fault: Fault::Other,
            message: crate::runtime::redact::redact_urls(&message.to_string()),
        }
    }
}

/// Most `aggregate3` calls one read keeps in flight: a session's 6,000 tokens (12 calls) go at
/// once, while the poller's first read of every watched value (100 calls at 1,000 wallets)
/// neither holds every request and answer in memory together nor floods the RPC provider.
pub const CONCURRENT_CHUNKS: usize = 16;

/// Longest one JSON-RPC request may take, connection included. Without it a node that accepts
/// a request and never answers (seen with a devnet wedged mid-trace) holds the poller's step
/// forever: its heartbeat stops and no later block is read. A timed-out request counts as the
/// endpoint failing (the next endpoint is tried, or the same one after a rest). A whole
/// block's call traces on a busy chain take seconds, not tens of seconds.
pub const RPC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a connection to an endpoint may take to open: a black-holed endpoint is given up on
/// (and the next one tried) well before the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A transport failure as an error whose text names no URL (URLs carry API keys).
fn rpc_error(e: TransportError) -> ChainError {
    ChainError::Rpc {
        fault: fault::of_error(&e),
        message: crate::runtime::redact::redact_urls(&e.to_string()),
    }
}

fn multicall_error(e: MulticallError) -> ChainError {
    match e {
        MulticallError::TransportError(e) => rpc_error(e),
        other => ChainError::other(other),
    }
}

/// How a reader reaches its chain.
#[derive(Clone)]
pub struct ReaderOptions {
    /// The Multicall3 contract the reads go through.
    pub multicall: Address,
    /// Most reads per `aggregate3` call.
    pub chunk: usize,
    /// Longest one request waits out rate limits and failing endpoints before it fails.
    pub max_wait: Duration,
    /// Widest block range one `eth_getLogs` asks for (narrower when the provider refuses).
    pub max_log_range: u64,
    pub observer: Arc<dyn RpcObserver>,
}

impl std::fmt::Debug for ReaderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderOptions")
            .field("multicall", &self.multicall)
            .field("chunk", &self.chunk)
            .field("max_wait", &self.max_wait)
            .field("max_log_range", &self.max_log_range)
            .finish_non_exhaustive()
    }
}

impl ReaderOptions {
    /// The options `settings` configure, reporting to nothing.
    pub fn of(settings: &crate::config::Settings) -> Self {
        Self {
            multicall: settings.rpc.multicall,
            chunk: settings.rpc.multicall_chunk,
            max_wait: settings.rpc.max_wait,
            max_log_range: settings.rpc.max_block_range,
            observer: Arc::new(Unobserved),
        }
    }

    /// The same options, reporting to `observer`.
    pub fn observed_by(mut self, observer: Arc<dyn RpcObserver>) -> Self {
        self.observer = observer;
        self
    }
}

/// The one adapter to a chain's node: wallet values in Multicall3 batches, token metadata,
/// and (in the submodules) headers, logs, traces and head subscriptions.
#[derive(Clone)]
pub struct BalanceReader {
    provider: DynProvider,
    multicall: Address,
    chunk: usize,
    max_log_range: u64,
    observer: Arc<dyn RpcObserver>,
    /// What the provider's log refusals taught, shared by every clone.
    log_limits: Arc<logs::LogLimits>,
}

impl std::fmt::Debug for BalanceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalanceReader")
            .field("multicall", &self.multicall)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl BalanceReader {
    /// A reader over plain HTTP JSON-RPC to `urls` (tried in order, see `transport`), each
    /// request bounded by [`RPC_REQUEST_TIMEOUT`].
    pub fn connect(urls: &[String], options: ReaderOptions) -> Result<Self, ChainError> {
        if urls.is_empty() {
            return Err(ChainError::BadUrl("no RPC URL".into()));
        }
        let parsed = urls
            .iter()
            .map(|url| {
                url.parse()
                    .map_err(|_| ChainError::BadUrl(crate::runtime::redact::redact_url(url)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let http = alloy::transports::http::reqwest::Client::builder()
            .timeout(RPC_REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(ChainError::other)?;
        let transport = transport::FailoverTransport::new(
            http,
            parsed,
            options.max_wait,
            options.observer.clone(),
        );
        let client = alloy::rpc::client::RpcClient::new(transport, false);
        Ok(Self {
            provider: RootProvider::new(client).erased(),
            multicall: options.multicall,
            chunk: options.chunk.max(1),
            max_log_range: options.max_log_range.max(1),
            observer: options.observer,
            log_limits: Arc::default(),
        })
    }

    /// Most reads per `aggregate3` call.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// The Multicall3 contract the reads go through.
    pub fn multicall(&self) -> Address {
        self.multicall
    }

    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(rpc_error)
    }
}
