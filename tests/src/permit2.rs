//! Uniswap's Permit2 on the test stack's anvil: installing it at its canonical address, the
//! two layers of an owner's approval (the token's allowance to Permit2, Permit2's own amount
//! and expiration per spender), a signed permit submitted by someone else, a router spending
//! through Permit2, a lockdown, and reading Permit2's allowance back.

use alloy::primitives::aliases::{U48, U160};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::SignerSync;
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolCall, SolStruct, SolValue, eip712_domain};
use anyhow::Context;
use local_stack::contracts::{PERMIT2_ROUTER_ARTIFACT, Permit2Router};
use local_stack::devnet::Wallet;

pub use local_stack::permit2::{PERMIT2, install_permit2};

sol! {
    /// The parts of Permit2's `AllowanceTransfer` the tests drive.
    #[sol(rpc)]
    interface IPermit2 {
        struct PermitDetails {
            address token;
            uint160 amount;
            uint48 expiration;
            uint48 nonce;
        }

        struct PermitSingle {
            PermitDetails details;
            address spender;
            uint256 sigDeadline;
        }

        struct TokenSpenderPair {
            address token;
            address spender;
        }

        function DOMAIN_SEPARATOR() external view returns (bytes32);
        function allowance(address user, address token, address spender)
            external view returns (uint160 amount, uint48 expiration, uint48 nonce);
        function approve(address token, address spender, uint160 amount, uint48 expiration)
            external;
        function permit(address owner, PermitSingle permitSingle, bytes signature) external;
        function lockdown(TokenSpenderPair[] approvals) external;
        function invalidateNonces(address token, address spender, uint48 newNonce) external;
    }
}

/// Permit2's allowance of one (owner, token, spender): what a spender may still move, until
/// when (unix seconds), and the nonce the owner's next signed permit must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit2Allowance {
    pub amount: U160,
    pub expiration: u64,
    pub nonce: u64,
}

/// Permit2's EIP-712 domain on `chain_id` (Permit2's domain has no version).
pub fn domain(chain_id: u64) -> Eip712Domain {
    eip712_domain! {
        name: "Permit2",
        chain_id: chain_id,
        verifying_contract: PERMIT2,
    }
}

/// The domain separator Permit2 at [`PERMIT2`] reports on chain.
pub async fn domain_separator(wallet: &Wallet) -> anyhow::Result<B256> {
    Ok(IPermit2::new(PERMIT2, &wallet.provider)
        .DOMAIN_SEPARATOR()
        .call()
        .await?)
}

/// Permit2's allowance of `owner`'s `token` to `spender`, at the latest block.
pub async fn allowance(
    wallet: &Wallet,
    owner: Address,
    token: Address,
    spender: Address,
) -> anyhow::Result<Permit2Allowance> {
    let read = IPermit2::new(PERMIT2, &wallet.provider)
        .allowance(owner, token, spender)
        .call()
        .await
        .context("Permit2.allowance")?;
    Ok(Permit2Allowance {
        amount: read.amount,
        expiration: read.expiration.to::<u64>(),
        nonce: read.nonce.to::<u64>(),
    })
}

/// The first layer: `owner`'s ERC-20 allowance of `token` to Permit2 itself.
pub async fn approve_token(
    owner: &Wallet,
    token: Address,
    amount: U256,
) -> anyhow::Result<TransactionReceipt> {
    owner.approve(token, PERMIT2, amount).await
}

/// The second layer, set by the owner's own transaction: `Permit2.approve`.
pub async fn approve(
    owner: &Wallet,
    token: Address,
    spender: Address,
    amount: U160,
    expiration: u64,
) -> anyhow::Result<TransactionReceipt> {
    let call = IPermit2::approveCall {
        token,
        spender,
        amount,
        expiration: uint48(expiration)?,
    };
    owner.call(PERMIT2, call.abi_encode()).await
}

/// `owner`'s signature of a permit (EIP-712 `PermitSingle`) for Permit2 on `chain_id`: 65
/// bytes, r ‖ s ‖ v.
pub fn sign_permit(
    owner: &Wallet,
    chain_id: u64,
    permit: &IPermit2::PermitSingle,
) -> anyhow::Result<Vec<u8>> {
    let hash = permit.eip712_signing_hash(&domain(chain_id));
    let signature = owner
        .signer
        .sign_hash_sync(&hash)
        .context("signing a permit")?;
    Ok(signature.as_bytes().to_vec())
}

/// A permit for `owner`'s `token` to `spender`, with the owner's next nonce, signed by
/// `owner` and submitted by `submitter`: the owner pays no gas and sends nothing.
#[allow(clippy::too_many_arguments)]
pub async fn permit(
    owner: &Wallet,
    submitter: &Wallet,
    chain_id: u64,
    token: Address,
    spender: Address,
    amount: U160,
    expiration: u64,
    sig_deadline: u64,
) -> anyhow::Result<TransactionReceipt> {
    let nonce = allowance(submitter, owner.address, token, spender)
        .await?
        .nonce;
    let permit_single = IPermit2::PermitSingle {
        details: IPermit2::PermitDetails {
            token,
            amount,
            expiration: uint48(expiration)?,
            nonce: uint48(nonce)?,
        },
        spender,
        sigDeadline: U256::from(sig_deadline),
    };
    let signature = sign_permit(owner, chain_id, &permit_single)?;
    let call = IPermit2::permitCall {
        owner: owner.address,
        permitSingle: permit_single,
        signature: signature.into(),
    };
    submitter.call(PERMIT2, call.abi_encode()).await
}

/// Deploys a [`Permit2Router`] spending through the Permit2 at [`PERMIT2`].
pub async fn deploy_router(deployer: &Wallet) -> anyhow::Result<Address> {
    deployer
        .deploy(PERMIT2_ROUTER_ARTIFACT, PERMIT2.abi_encode())
        .await
}

/// `owner` calls `router`, which moves `amount` of `token` from the owner to `to` through
/// Permit2: Permit2's amount for the router drops with no event of Permit2's own.
pub async fn spend(
    owner: &Wallet,
    router: Address,
    token: Address,
    amount: U160,
    to: Address,
) -> anyhow::Result<TransactionReceipt> {
    let call = Permit2Router::pullCall { token, amount, to };
    owner.call(router, call.abi_encode()).await
}

/// `owner` zeroes Permit2's amount of each (token, spender) at once.
pub async fn lockdown(
    owner: &Wallet,
    pairs: &[(Address, Address)],
) -> anyhow::Result<TransactionReceipt> {
    let approvals = pairs
        .iter()
        .map(|&(token, spender)| IPermit2::TokenSpenderPair { token, spender })
        .collect();
    owner
        .call(PERMIT2, IPermit2::lockdownCall { approvals }.abi_encode())
        .await
}

/// `owner` moves its nonce for (token, spender) to `new_nonce`: permits signed for the nonces
/// skipped can no longer be used.
pub async fn invalidate_nonces(
    owner: &Wallet,
    token: Address,
    spender: Address,
    new_nonce: u64,
) -> anyhow::Result<TransactionReceipt> {
    let call = IPermit2::invalidateNoncesCall {
        token,
        spender,
        newNonce: uint48(new_nonce)?,
    };
    owner.call(PERMIT2, call.abi_encode()).await
}

/// The latest block's timestamp: expirations are set relative to the chain's clock.
pub async fn chain_time(wallet: &Wallet) -> anyhow::Result<u64> {
    let block = wallet
        .provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await?
        .context("no latest block")?;
    Ok(block.header.timestamp)
}

fn uint48(value: u64) -> anyhow::Result<U48> {
    U48::try_from(value).context("does not fit Permit2's uint48")
}
