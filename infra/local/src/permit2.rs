//! Uniswap's Permit2 on an anvil devnet, at its canonical address and deployed the way it was
//! on public chains: its verified creation code (vendored in `infra/contracts/vendor/`) sent
//! through the deterministic deployment proxy with Uniswap's salt.
//!
//! Not `anvil_setCode`: Permit2 caches its EIP-712 domain separator, which names the contract's
//! address, in an immutable at construction and recomputes it only when the chain id changes.
//! Runtime code copied from another address keeps that address in its separator, and permits
//! signed for the canonical address would not verify.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, address, bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use anyhow::{Context, ensure};
use serde::Deserialize;

use crate::contracts::PERMIT2_ARTIFACT;
use crate::devnet::{Wallet, plain_provider};

/// Permit2's address on every chain Uniswap deployed it to.
pub const PERMIT2: Address = address!("0x000000000022D473030F116dDEE9F6B43aC78BA3");

/// The deterministic deployment proxy (Arachnid's), which anvil predeploys.
pub const CREATE2_DEPLOYER: Address = address!("0x4e59b44847b379578588920cA78FbF26c0B4956C");

/// The proxy's runtime code, for a devnet started without it (`anvil
/// --disable-default-create2-deployer`): calldata is salt ++ init code, it returns the address.
const CREATE2_DEPLOYER_CODE: Bytes = bytes!(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3"
);

/// The vendored artifact: creation code and where CREATE2 puts it.
#[derive(Debug, Deserialize)]
struct VendoredPermit2 {
    bytecode: Bytes,
    create2: Create2Placement,
}

#[derive(Debug, Deserialize)]
struct Create2Placement {
    deployer: Address,
    salt: B256,
    address: Address,
}

/// Deploys Permit2 at [`PERMIT2`] on the devnet at `rpc_url`, unless code is already there.
/// Safe to race: a deployment that loses to another one reverts, and the code is there.
pub async fn install_permit2(rpc_url: &str) -> anyhow::Result<()> {
    let provider = plain_provider(rpc_url)?;
    if !provider.get_code_at(PERMIT2).await?.is_empty() {
        return Ok(());
    }
    let artifact: VendoredPermit2 =
        serde_json::from_str(PERMIT2_ARTIFACT).context("Permit2 artifact does not parse")?;
    let placement = &artifact.create2;
    ensure!(
        placement.deployer == CREATE2_DEPLOYER
            && placement.address == PERMIT2
            && CREATE2_DEPLOYER.create2_from_code(placement.salt, &artifact.bytecode) == PERMIT2,
        "the vendored Permit2 creation code does not deploy to {PERMIT2}"
    );
    if provider.get_code_at(CREATE2_DEPLOYER).await?.is_empty() {
        provider
            .raw_request::<_, ()>(
                "anvil_setCode".into(),
                (CREATE2_DEPLOYER, CREATE2_DEPLOYER_CODE),
            )
            .await
            .context("anvil_setCode (deployment proxy)")?;
    }
    let mut input = placement.salt.to_vec();
    input.extend_from_slice(&artifact.bytecode);
    let deployer = Wallet::fresh(rpc_url).await?;
    let sent = deployer
        .send(
            TransactionRequest::default()
                .with_to(CREATE2_DEPLOYER)
                .with_input(input),
        )
        .await;
    let landed = !provider.get_code_at(PERMIT2).await?.is_empty();
    match sent {
        Ok(_) => ensure!(landed, "Permit2's deployment left no code at {PERMIT2}"),
        // Another installer's deployment won the race.
        Err(_) if landed => {}
        Err(error) => return Err(error.context("deploying Permit2")),
    }
    Ok(())
}
