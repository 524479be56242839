//! Solidity interfaces the service reads and the events it follows (alloy `sol!`).

use alloy::sol;

sol! {
    /// The ERC-20 surface the service reads and follows.
    #[sol(rpc)]
    interface IERC20 {
        event Transfer(address indexed from, address indexed to, uint256 value);
        event Approval(address indexed owner, address indexed spender, uint256 value);
        function balanceOf(address owner) external view returns (uint256);
        function allowance(address owner, address spender) external view returns (uint256);
    }

    /// The optional ERC-20 metadata, read once per custom token.
    interface IERC20Metadata {
        function symbol() external view returns (string);
        function name() external view returns (string);
        function decimals() external view returns (uint8);
    }

    /// WETH's wrap and unwrap events: balance changes without a Transfer log.
    interface IWETH {
        event Deposit(address indexed dst, uint256 wad);
        event Withdrawal(address indexed src, uint256 wad);
    }

    /// The Multicall3 helpers used alongside `aggregate3`.
    interface IMulticall3Helpers {
        function getEthBalance(address addr) external view returns (uint256 balance);
    }
}
