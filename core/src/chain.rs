//! The chain adapter: reads balances, allowances and native balances in Multicall3
//! `aggregate3` batches at one block. Each call may fail on its own (a reverting or
//! non-standard token) without failing the batch.

mod blocks;

use std::sync::Arc;

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes};
use alloy::providers::{CallItem, DynProvider, Failure, Provider, RootProvider};
use alloy::sol_types::SolCall;
use futures::{StreamExt, TryStreamExt, stream};
use thiserror::Error;

pub use blocks::{
    BlockHead, HeadSubscription, MAX_FILTERED_OWNERS, NativeSource, OWNERS_PER_FILTER,
};

use crate::NATIVE_TOKEN;
use crate::abi::{IERC20, IERC20Metadata, IMulticall3Helpers};
use crate::model::{BalanceKey, TokenRead};
use crate::token_metadata::{TokenMetadata, bytes32_text};

#[derive(Debug, Error)]
pub enum ChainError {
    #[error("RPC request failed: {0}")]
    Rpc(String),
    #[error("RPC URL is not valid: {0}")]
    BadUrl(String),
}

/// Most `aggregate3` calls one read keeps in flight: a session's 6,000 tokens (12 calls) go at
/// once, while the poller's first read of every watched value (100 calls at 1,000 wallets)
/// neither holds every request and answer in memory together nor floods the RPC provider.
pub const CONCURRENT_CHUNKS: usize = 16;

/// Longest one JSON-RPC request may take, connection included. Without it a node that accepts
/// a request and never answers (seen with a devnet wedged mid-trace) holds the poller's step
/// forever: its heartbeat stops and no later block is read. A timed-out request fails the step,
/// which is retried with backoff like any RPC failure. A whole block's call traces on a busy
/// chain take seconds, not tens of seconds.
pub const RPC_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Called with the JSON-RPC method of every request a reader sends (the poller's metrics).
pub type RequestCounter = Arc<dyn Fn(&'static str) + Send + Sync>;

/// An RPC failure as an error whose text names no URL (URLs carry API keys).
fn rpc_error(e: impl std::fmt::Display) -> ChainError {
    ChainError::Rpc(crate::redact::redact_urls(&e.to_string()))
}

/// The one adapter to a chain's node: wallet values in Multicall3 batches, token metadata,
/// and (in `blocks`) headers, logs, traces and head subscriptions.
#[derive(Clone)]
pub struct BalanceReader {
    provider: DynProvider,
    multicall: Address,
    chunk: usize,
    counter: Option<RequestCounter>,
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
    pub fn new(provider: DynProvider, multicall: Address, chunk: usize) -> Self {
        Self {
            provider,
            multicall,
            chunk: chunk.max(1),
            counter: None,
        }
    }

    /// The same reader, reporting every request it sends to `counter`.
    pub fn with_request_counter(mut self, counter: RequestCounter) -> Self {
        self.counter = Some(counter);
        self
    }

    fn count(&self, method: &'static str) {
        if let Some(counter) = &self.counter {
            counter(method);
        }
    }

    /// A reader over plain HTTP JSON-RPC, each request bounded by [`RPC_REQUEST_TIMEOUT`].
    pub fn connect_http(url: &str, multicall: Address, chunk: usize) -> Result<Self, ChainError> {
        let url = url
            .parse()
            .map_err(|_| ChainError::BadUrl(crate::redact::redact_url(url)))?;
        let http = alloy::transports::http::reqwest::Client::builder()
            .timeout(RPC_REQUEST_TIMEOUT)
            .build()
            .map_err(rpc_error)?;
        let client = alloy::rpc::client::RpcClient::new_http_with_client(http, url);
        Ok(Self::new(
            RootProvider::new(client).erased(),
            multicall,
            chunk,
        ))
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
        self.count("eth_blockNumber");
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
        self.count("eth_call");
        // Every call here returns one uint256, so one decoder type serves them all.
        let calls = reads.iter().map(|(owner, key)| {
            let (target, input): (Address, Bytes) = match *key {
                BalanceKey::Balance { token } if token == NATIVE_TOKEN => (
                    self.multicall,
                    IMulticall3Helpers::getEthBalanceCall { addr: *owner }
                        .abi_encode()
                        .into(),
                ),
                BalanceKey::Balance { token } => (
                    token,
                    IERC20::balanceOfCall { owner: *owner }.abi_encode().into(),
                ),
                BalanceKey::Allowance { token, spender } => (
                    token,
                    IERC20::allowanceCall {
                        owner: *owner,
                        spender,
                    }
                    .abi_encode()
                    .into(),
                ),
            };
            CallItem::<IERC20::balanceOfCall>::new(target, input).allow_failure(true)
        });
        let results = self
            .provider
            .multicall()
            .dynamic::<IERC20::balanceOfCall>()
            .address(self.multicall)
            .block(BlockId::number(block))
            .extend_calls(calls)
            .aggregate3()
            .await
            .map_err(rpc_error)?;
        Ok(results
            .into_iter()
            .map(|r| r.map_or(TokenRead::Failed, TokenRead::Value))
            .collect())
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
        self.count("eth_call");
        self.count("eth_call");
        let (texts, decimals) =
            futures::try_join!(texts.aggregate3(), decimals.aggregate3()).map_err(rpc_error)?;
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
