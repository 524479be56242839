//! Wallet values in Multicall3 `aggregate3` batches at one block: balances, ERC-20 allowances,
//! native balances and Permit2 allowances, each call allowed to fail on its own (a reverting or
//! non-standard token) without failing the batch.

use alloy::eips::BlockId;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::providers::bindings::IMulticall3;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use futures::{StreamExt, TryStreamExt, stream};

use super::{BalanceReader, CONCURRENT_CHUNKS, ChainError, rpc_error};
use crate::NATIVE_TOKEN;
use crate::chain::abi::{IERC20, IMulticall3Helpers, IPermit2};
use crate::domain::model::{BalanceKey, TokenRead};
use crate::domain::permit2::{PERMIT2, Permit2Allowance};

impl BalanceReader {
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
