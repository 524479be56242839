//! The chain adapter: reads balances, allowances and native balances in Multicall3
//! `aggregate3` batches at one block. Each call may fail on its own (a reverting or
//! non-standard token) without failing the batch.

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes};
use alloy::providers::{CallItem, DynProvider, Provider, RootProvider};
use alloy::sol_types::SolCall;
use futures::future::try_join_all;
use thiserror::Error;

use crate::NATIVE_TOKEN;
use crate::abi::{IERC20, IMulticall3Helpers};
use crate::model::{BalanceKey, TokenRead};

#[derive(Debug, Error)]
pub enum ChainError {
    #[error("RPC request failed: {0}")]
    Rpc(String),
    #[error("RPC URL is not valid: {0}")]
    BadUrl(String),
}

/// Reads wallet values on one chain.
#[derive(Debug, Clone)]
pub struct BalanceReader {
    provider: DynProvider,
    multicall: Address,
    chunk: usize,
}

impl BalanceReader {
    pub fn new(provider: DynProvider, multicall: Address, chunk: usize) -> Self {
        Self {
            provider,
            multicall,
            chunk: chunk.max(1),
        }
    }

    /// A reader over plain HTTP JSON-RPC.
    pub fn connect_http(url: &str, multicall: Address, chunk: usize) -> Result<Self, ChainError> {
        let url = url
            .parse()
            .map_err(|_| ChainError::BadUrl(crate::config::redact_url(url)))?;
        Ok(Self::new(
            RootProvider::new_http(url).erased(),
            multicall,
            chunk,
        ))
    }

    /// Most reads per `aggregate3` call.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| ChainError::Rpc(crate::config::redact_urls(&e.to_string())))
    }

    /// Reads every `(owner, key)` at `block`, in order. Large sets are split into concurrent
    /// `aggregate3` calls of at most `chunk` reads, all pinned to the same block.
    pub async fn read(
        &self,
        reads: &[(Address, BalanceKey)],
        block: u64,
    ) -> Result<Vec<TokenRead>, ChainError> {
        let batches = reads
            .chunks(self.chunk)
            .map(|chunk| self.read_chunk(chunk, block));
        Ok(try_join_all(batches).await?.into_iter().flatten().collect())
    }

    async fn read_chunk(
        &self,
        reads: &[(Address, BalanceKey)],
        block: u64,
    ) -> Result<Vec<TokenRead>, ChainError> {
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
            .map_err(|e| ChainError::Rpc(crate::config::redact_urls(&e.to_string())))?;
        Ok(results
            .into_iter()
            .map(|r| r.map_or(TokenRead::Failed, TokenRead::Value))
            .collect())
    }
}
