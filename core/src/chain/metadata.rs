//! Token metadata (`symbol`, `name`, `decimals`), read once per custom token.

use alloy::primitives::Address;
use alloy::providers::{CallItem, Failure, Provider};
use alloy::sol_types::SolCall;
use futures::{StreamExt, TryStreamExt, stream};

use super::{BalanceReader, CONCURRENT_CHUNKS, ChainError, multicall_error};
use crate::chain::abi::IERC20Metadata;
use crate::domain::token_metadata::{TokenMetadata, bytes32_text};

impl BalanceReader {
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
