//! The devnet's contracts: compiled offline by `infra/contracts/compile.js` (solc-js); the
//! sources sit beside the artifacts in `infra/contracts/`.

use alloy::primitives::Bytes;
use alloy::sol;
use anyhow::Context;

sol! {
    #[sol(rpc)]
    interface TestToken {
        function mint(address to, uint256 amount) external;
        function transfer(address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
        function balanceOf(address owner) external view returns (uint256);
        function allowance(address owner, address spender) external view returns (uint256);
        function symbol() external view returns (string);
        function decimals() external view returns (uint8);
    }
}

/// Artifacts of the contracts, as written by the compile script.
pub const MULTICALL3_ARTIFACT: &str = include_str!("../../contracts/build/Multicall3.json");
pub const TEST_TOKEN_ARTIFACT: &str = include_str!("../../contracts/build/TestToken.json");

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub contract_name: String,
    pub bytecode: Bytes,
    pub deployed_bytecode: Bytes,
}

pub fn artifact(json: &str) -> anyhow::Result<Artifact> {
    serde_json::from_str(json).context("contract artifact does not parse")
}
