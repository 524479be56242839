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
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        function balanceOf(address owner) external view returns (uint256);
        function allowance(address owner, address spender) external view returns (uint256);
        function symbol() external view returns (string);
        function decimals() external view returns (uint8);
    }

    #[sol(rpc)]
    interface TestWETH {
        function deposit() external payable;
        function withdraw(uint256 wad) external;
    }

    #[sol(rpc)]
    interface RevertingToken {
        function poke(address to) external;
    }

    #[sol(rpc)]
    interface EthForwarder {
        function forward(address to) external payable;
    }

    /// The test router that spends through Permit2 (source: `Permit2Router.sol`).
    #[sol(rpc)]
    interface Permit2Router {
        function permit2() external view returns (address);
        function pull(address token, uint160 amount, address to) external;
    }

    #[sol(rpc)]
    interface RebasingToken {
        function mint(address to, uint256 amount) external;
        function rebase(uint256 newIndex) external;
    }
}

/// Artifacts of the contracts, as written by the compile script.
pub const MULTICALL3_ARTIFACT: &str = include_str!("../../contracts/build/Multicall3.json");
pub const TEST_TOKEN_ARTIFACT: &str = include_str!("../../contracts/build/TestToken.json");
pub const TEST_WETH_ARTIFACT: &str = include_str!("../../contracts/build/TestWETH.json");
pub const REVERTING_TOKEN_ARTIFACT: &str =
    include_str!("../../contracts/build/RevertingToken.json");
pub const REBASING_TOKEN_ARTIFACT: &str = include_str!("../../contracts/build/RebasingToken.json");
pub const ETH_FORWARDER_ARTIFACT: &str = include_str!("../../contracts/build/EthForwarder.json");
pub const PERMIT2_ROUTER_ARTIFACT: &str = include_str!("../../contracts/build/Permit2Router.json");
/// Uniswap's Permit2 creation code, vendored (not compiled here): see `contracts/vendor/`.
pub const PERMIT2_ARTIFACT: &str = include_str!("../../contracts/vendor/Permit2.json");

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
