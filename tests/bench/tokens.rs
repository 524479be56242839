//! Bench tokens that look like a real token list's: every address is a token contract whose
//! `balanceOf` succeeds (the project's TestToken — a few deployed, the rest given its runtime
//! code with `anvil_setCode`), almost all of them zero for any one wallet, a few dozen held.
//! Random addresses whose reads fail would hide the real cost of reading a list.
//!
//! Balances are set straight in the token's storage (`anvil_setStorageAt` on the `balanceOf`
//! mapping), so a set-up of many wallets costs no transaction and no event.

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolCall;
use anyhow::Context;
use e2e::list_server::{ListServer, token_list};
use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::contracts::{TEST_TOKEN_ARTIFACT, TestToken, artifact};
use serde_json::json;

use crate::context::Bench;

/// TestToken's storage: name, symbol, decimals, totalSupply, then the `balanceOf` mapping.
const BALANCE_OF_SLOT: u8 = 4;

/// The storage slot of `balanceOf[owner]`: `keccak256(pad32(owner) ++ pad32(4))`.
pub fn balance_slot(owner: &Address) -> B256 {
    let mut key = [0u8; 64];
    key[12..32].copy_from_slice(owner.as_slice());
    key[63] = BALANCE_OF_SLOT;
    keccak256(key)
}

/// A token list of real token contracts, served from this machine.
pub struct BenchList {
    pub tokens: Vec<Address>,
    pub url: String,
    /// Serves the list for as long as the run.
    _server: ListServer,
}

impl Bench {
    /// `count` token contracts: `deployed` (real deployments) first, then fresh addresses
    /// given TestToken's runtime code. Checks that `balanceOf` answers on the last one.
    pub async fn token_contracts(
        &self,
        deployed: &[Address],
        count: usize,
    ) -> anyhow::Result<Vec<Address>> {
        let code = artifact(TEST_TOKEN_ARTIFACT)?.deployed_bytecode;
        let mut tokens: Vec<Address> = deployed.iter().copied().take(count).collect();
        let copies: Vec<Address> = (tokens.len()..count).map(|_| fresh_owner()).collect();
        self.env
            .rpc_batch(
                copies
                    .iter()
                    .map(|a| ("anvil_setCode", json!([lower(a), code])))
                    .collect(),
            )
            .await?;
        tokens.extend(copies);
        let last = *tokens.last().context("no tokens")?;
        let call = TestToken::balanceOfCall {
            owner: self.actor.address,
        }
        .abi_encode();
        let answer = self
            .env
            .rpc(
                "eth_call",
                json!([{"to": lower(&last), "data": alloy::primitives::Bytes::from(call)}, "latest"]),
            )
            .await?;
        anyhow::ensure!(
            answer.as_str().is_some_and(|a| a.len() == 66),
            "balanceOf of a copied token answered {answer}"
        );
        Ok(tokens)
    }

    /// A token list of `count` real token contracts (the `deployed` ones first), served at
    /// a URL of this machine.
    pub async fn token_list(
        &self,
        name: &str,
        deployed: &[Address],
        count: usize,
    ) -> anyhow::Result<BenchList> {
        let tokens = self.token_contracts(deployed, count).await?;
        let entries: Vec<(u64, String, String, u8)> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (self.chain_id(), lower(t), format!("L{i}"), 18))
            .collect();
        let server = ListServer::start().await?;
        let url = server.serve(&format!("{name}.json"), token_list(&entries));
        Ok(BenchList {
            tokens,
            url,
            _server: server,
        })
    }
}

/// Sets `balanceOf[owner]` of each token in storage: no transaction, no event.
pub async fn set_balances(
    env: &Environment,
    balances: &[(Address, Address, U256)],
) -> anyhow::Result<()> {
    env.rpc_batch(
        balances
            .iter()
            .map(|(token, owner, amount)| {
                (
                    "anvil_setStorageAt",
                    json!([
                        lower(token),
                        balance_slot(owner).to_string(),
                        B256::from(*amount).to_string()
                    ]),
                )
            })
            .collect(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_slot_is_the_solidity_mapping_slot() {
        // keccak256(abi.encode(address(0x…01), uint256(4))), as solc lays out `balanceOf`.
        let owner = Address::with_last_byte(1);
        let mut key = [0u8; 64];
        key[31] = 1;
        key[63] = 4;
        assert_eq!(balance_slot(&owner), keccak256(key));
    }
}
