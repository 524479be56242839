//! Blocks as the poller needs them: a header's identity and what it says about native
//! balances (fee recipient, withdrawals).

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;

use super::{BalanceReader, ChainError, rpc_error};

/// The root of an empty withdrawals list: a block whose header has it withdrew nothing.
const EMPTY_ROOT: B256 =
    alloy::primitives::b256!("0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// A block's identity and what its header says about native balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHead {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// The fee recipient: its balance changes in every block with a fee.
    pub beneficiary: Address,
    /// `None` before withdrawals existed; the empty root when there were none.
    pub withdrawals_root: Option<B256>,
    /// Unix seconds: what time-bound values (a Permit2 allowance's expiration) are judged by.
    pub timestamp: u64,
}

impl BlockHead {
    pub(super) fn of(header: &alloy::rpc::types::Header) -> Self {
        Self {
            number: header.number,
            hash: header.hash,
            parent_hash: header.parent_hash,
            beneficiary: header.beneficiary,
            withdrawals_root: header.withdrawals_root,
            timestamp: header.timestamp,
        }
    }

    /// Whether the block withdrew to anyone (its body must then be read for the recipients).
    pub fn has_withdrawals(&self) -> bool {
        self.withdrawals_root.is_some_and(|root| root != EMPTY_ROOT)
    }
}

impl BalanceReader {
    /// A block's header; `None` when the node does not have it (yet).
    pub async fn head(&self, tag: BlockNumberOrTag) -> Result<Option<BlockHead>, ChainError> {
        let block = self
            .provider
            .get_block_by_number(tag)
            .await
            .map_err(rpc_error)?;
        Ok(block.map(|b| BlockHead::of(&b.header)))
    }
}
