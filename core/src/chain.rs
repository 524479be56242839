//! The chain adapter: everything the service asks of a chain's node, made to survive real
//! providers.
//!
//! - `transport`: the HTTP transport under every request — several URLs per chain with
//!   failover, rate limits waited out as the provider says (`fault` recognises what providers
//!   answer), a bound on every request's total wait;
//! - this file: balances, allowances and native balances in Multicall3 `aggregate3` batches
//!   at one block (each call may fail on its own — a reverting or non-standard token — without
//!   failing the batch), and token metadata;
//! - `blocks`: headers; `logs`: the logs that touch watched owners, split adaptively when a
//!   provider refuses a range or a result count; `traces`: the accounts a block changed the
//!   native balance of, and which trace method (if any) the node offers; `subscription`: new
//!   heads over WebSocket; `billing`: what providers bill per request and which way of finding
//!   native changes costs least; `observer`: what the adapter reports as it works.

mod billing;
mod blocks;
mod fault;
mod logs;
mod observer;
mod subscription;
mod traces;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::{Address, U256};
use alloy::providers::bindings::IMulticall3;
use alloy::providers::{CallItem, DynProvider, Failure, MulticallError, Provider, RootProvider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use alloy::transports::TransportError;
use futures::{StreamExt, TryStreamExt, stream};
use thiserror::Error;

pub use billing::{ALCHEMY_UNITS, NativeCost, NativeStep, UnitCosts};
pub use blocks::BlockHead;
pub use fault::Fault;
pub use logs::{LogOverflow, MAX_FILTERED_OWNERS, OWNERS_PER_FILTER, OwnerLogs};
pub use observer::{LogLimitsView, RpcObserver, Unobserved, method_label};
pub use subscription::HeadSubscription;
pub use traces::{NativeSource, TraceProbe};

use crate::NATIVE_TOKEN;
use crate::abi::{IERC20, IERC20Metadata, IMulticall3Helpers, IPermit2};
use crate::model::{BalanceKey, TokenRead};
use crate::permit2::{PERMIT2, Permit2Allowance};
use crate::token_metadata::{TokenMetadata, bytes32_text};

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
            message: crate::redact::redact_urls(&message.to_string()),
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
        message: crate::redact::redact_urls(&e.to_string()),
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
            max_log_range: settings.poller.max_block_range,
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
                    .map_err(|_| ChainError::BadUrl(crate::redact::redact_url(url)))
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

    /// Reads every `(owner, key)` at the latest block; returns that block and the reads.
    pub async fn read_latest(
        &self,
        reads: &[(Address, BalanceKey)],
    ) -> Result<(u64, Vec<TokenRead>), ChainError> {
        let block = self.block_number().await?;
        Ok((block, self.read(reads, block).await?))
    }

    /// Reads every `(owner, key)` at `block`, in order. Large sets are split into concurrent
    /// `aggregate3` calls of at most `chunk` reads, all pinned to the same block, at most
    /// [`CONCURRENT_CHUNKS`] in flight.
    pub async fn read(
        &self,
        reads: &[(Address, BalanceKey)],
        block: u64,
    ) -> Result<Vec<TokenRead>, ChainError> {
        // The futures are built up front (they do nothing until polled): a closure in the
        // stream would be generic over the chunk's lifetime, which `Send` callers cannot prove.
        let calls: Vec<_> = reads
            .chunks(self.chunk)
            .map(|chunk| self.read_chunk(chunk, block))
            .collect();
        let batches: Vec<Vec<TokenRead>> = stream::iter(calls)
            .buffered(CONCURRENT_CHUNKS)
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }

    async fn read_chunk(
        &self,
        reads: &[(Address, BalanceKey)],
        block: u64,
    ) -> Result<Vec<TokenRead>, ChainError> {
        // One `aggregate3` at the block, each call allowed to fail on its own. Balances and
        // ERC-20 allowances return one word; Permit2's allowances return three and need the
        // block's timestamp (asked last, in the same batch) to say whether each has expired.
        let permit2 = reads
            .iter()
            .any(|(_, key)| matches!(key, BalanceKey::Permit2 { .. }));
        let mut calls: Vec<IMulticall3::Call3> = reads
            .iter()
            .map(|(owner, key)| self.value_call(*owner, *key))
            .collect();
        if permit2 {
            calls.push(IMulticall3::Call3 {
                target: self.multicall,
                allowFailure: false,
                callData: IMulticall3Helpers::getCurrentBlockTimestampCall {}
                    .abi_encode()
                    .into(),
            });
        }
        let request = TransactionRequest::default()
            .to(self.multicall)
            .input(IMulticall3::aggregate3Call { calls }.abi_encode().into());
        let answer = self
            .provider
            .call(request)
            .block(BlockId::number(block))
            .await
            .map_err(rpc_error)?;
        let mut results =
            IMulticall3::aggregate3Call::abi_decode_returns(&answer).map_err(ChainError::other)?;
        let block_time = match permit2 {
            true => results
                .pop()
                .filter(|r| r.success)
                .and_then(|r| {
                    IMulticall3Helpers::getCurrentBlockTimestampCall::abi_decode_returns(
                        &r.returnData,
                    )
                    .ok()
                })
                .ok_or_else(|| ChainError::other("Multicall3 gave no block timestamp"))?
                .saturating_to::<u64>(),
            false => 0,
        };
        if results.len() != reads.len() {
            return Err(ChainError::other(format!(
                "Multicall3 answered {} results for {} calls",
                results.len(),
                reads.len()
            )));
        }
        Ok(reads
            .iter()
            .zip(results)
            .map(|((_, key), result)| match result.success {
                false => TokenRead::Failed,
                true => decode_value(key, &result.returnData, block_time),
            })
            .collect())
    }

    /// The call reading one value.
    fn value_call(&self, owner: Address, key: BalanceKey) -> IMulticall3::Call3 {
        let (target, input): (Address, Vec<u8>) = match key {
            BalanceKey::Balance { token } if token == NATIVE_TOKEN => (
                self.multicall,
                IMulticall3Helpers::getEthBalanceCall { addr: owner }.abi_encode(),
            ),
            BalanceKey::Balance { token } => (token, IERC20::balanceOfCall { owner }.abi_encode()),
            BalanceKey::Allowance { token, spender } => {
                (token, IERC20::allowanceCall { owner, spender }.abi_encode())
            }
            BalanceKey::Permit2 { token, spender } => (
                PERMIT2,
                IPermit2::allowanceCall {
                    owner,
                    token,
                    spender,
                }
                .abi_encode(),
            ),
        };
        IMulticall3::Call3 {
            target,
            allowFailure: true,
            callData: input.into(),
        }
    }
}

/// A successful call's answer as the value of `key`: one uint256, or Permit2's three words as
/// of a block at `block_time`. An answer of another shape (an address without code answers
/// nothing) is a failed read.
fn decode_value(key: &BalanceKey, data: &[u8], block_time: u64) -> TokenRead {
    match key {
        BalanceKey::Permit2 { .. } => IPermit2::allowanceCall::abi_decode_returns(data)
            .ok()
            .and_then(|a| {
                Permit2Allowance::read(
                    U256::from(a.amount),
                    a.expiration.to::<u64>(),
                    a.nonce.to::<u64>(),
                    block_time,
                )
                .ok()
            })
            .map_or(TokenRead::Failed, |a| TokenRead::Value(a.word())),
        _ => IERC20::balanceOfCall::abi_decode_returns(data)
            .map_or(TokenRead::Failed, TokenRead::Value),
    }
}

impl BalanceReader {
    /// Of `tokens` whose `balanceOf` failed for some wallet, those whose `balanceOf` fails for
    /// any holder at `block` (probed with the Multicall3 contract's own address, which every
    /// working token answers for): a fact about the token, not about the wallet.
    pub async fn unreadable_tokens(
        &self,
        tokens: &[Address],
        block: u64,
    ) -> Result<Vec<Address>, ChainError> {
        let probes: Vec<(Address, BalanceKey)> = tokens
            .iter()
            .map(|&token| (self.multicall, BalanceKey::Balance { token }))
            .collect();
        let reads = self.read(&probes, block).await?;
        Ok(tokens
            .iter()
            .zip(reads)
            .filter(|(_, read)| *read == TokenRead::Failed)
            .map(|(token, _)| *token)
            .collect())
    }

    /// Reads `symbol()`, `name()` and `decimals()` of each token at the latest block, in
    /// order: `None` for an address without usable metadata (not a contract, reverting, or
    /// returning garbage). Old tokens that return `bytes32` symbols are understood.
    pub async fn metadata(
        &self,
        tokens: &[Address],
    ) -> Result<Vec<Option<TokenMetadata>>, ChainError> {
        let calls: Vec<_> = tokens
            .chunks(self.chunk)
            .map(|chunk| self.metadata_chunk(chunk))
            .collect();
        let batches: Vec<Vec<Option<TokenMetadata>>> = stream::iter(calls)
            .buffered(CONCURRENT_CHUNKS)
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }

    async fn metadata_chunk(
        &self,
        tokens: &[Address],
    ) -> Result<Vec<Option<TokenMetadata>>, ChainError> {
        // symbol() and name() share a return type, so they go in one call; decimals in another.
        let texts = tokens.iter().flat_map(|token| {
            [
                CallItem::<IERC20Metadata::symbolCall>::new(
                    *token,
                    IERC20Metadata::symbolCall {}.abi_encode().into(),
                )
                .allow_failure(true),
                CallItem::<IERC20Metadata::symbolCall>::new(
                    *token,
                    IERC20Metadata::nameCall {}.abi_encode().into(),
                )
                .allow_failure(true),
            ]
        });
        let decimals = tokens.iter().map(|token| {
            CallItem::<IERC20Metadata::decimalsCall>::new(
                *token,
                IERC20Metadata::decimalsCall {}.abi_encode().into(),
            )
            .allow_failure(true)
        });
        let texts = self
            .provider
            .multicall()
            .dynamic::<IERC20Metadata::symbolCall>()
            .address(self.multicall)
            .extend_calls(texts);
        let decimals = self
            .provider
            .multicall()
            .dynamic::<IERC20Metadata::decimalsCall>()
            .address(self.multicall)
            .extend_calls(decimals);
        let (texts, decimals) = futures::try_join!(texts.aggregate3(), decimals.aggregate3())
            .map_err(multicall_error)?;
        let text = |r: &Result<String, Failure>| match r {
            Ok(s) => Some(s.clone()),
            // A successful call whose data is one word is a bytes32 string.
            Err(f) => <[u8; 32]>::try_from(f.return_data.as_ref())
                .ok()
                .and_then(|w| bytes32_text(&w)),
        };
        Ok(texts
            .chunks(2)
            .zip(decimals)
            .map(|(pair, decimals)| {
                let symbol = pair.first().and_then(text);
                let name = pair.get(1).and_then(text);
                TokenMetadata::from_contract(symbol.as_deref(), name.as_deref(), decimals.ok())
            })
            .collect())
    }
}
