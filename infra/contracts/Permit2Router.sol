// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// The one Permit2 entry point the router uses: an allowance-based transfer by an approved
/// spender (Permit2's `AllowanceTransfer.transferFrom`).
interface IPermit2AllowanceTransfer {
    function transferFrom(address from, address to, uint160 amount, address token) external;
}

/// A router that spends through Permit2 as Uniswap's routers do: the caller approves the token
/// to Permit2 and this router as a Permit2 spender, then calls the router, which pulls the
/// caller's tokens through Permit2. Permit2 lowers the router's amount and emits no event of
/// its own; the token emits its `Transfer`.
contract Permit2Router {
    IPermit2AllowanceTransfer public immutable permit2;

    constructor(address permit2_) {
        permit2 = IPermit2AllowanceTransfer(permit2_);
    }

    /// Moves `amount` of `token` from the caller to `to` through Permit2.
    function pull(address token, uint160 amount, address to) external {
        permit2.transferFrom(msg.sender, to, amount, token);
    }
}
