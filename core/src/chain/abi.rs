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
        function getCurrentBlockTimestamp() external view returns (uint256 timestamp);
    }

    /// Uniswap's Permit2: the allowance it keeps per owner, token and spender, and the events
    /// that change it (the owner is the first indexed topic of each).
    interface IPermit2 {
        event Approval(address indexed owner, address indexed token, address indexed spender, uint160 amount, uint48 expiration);
        event Permit(address indexed owner, address indexed token, address indexed spender, uint160 amount, uint48 expiration, uint48 nonce);
        event Lockdown(address indexed owner, address token, address spender);
        event NonceInvalidation(address indexed owner, address indexed token, address indexed spender, uint48 newNonce, uint48 oldNonce);
        function allowance(address owner, address token, address spender) external view returns (uint160 amount, uint48 expiration, uint48 nonce);
    }
}
