// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @notice A broken token for the tests: its reads revert, yet it emits a normal Transfer.
/// A tracker must record the failure for this token alone and keep serving the others.
contract RevertingToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    function balanceOf(address) external pure returns (uint256) {
        revert("RevertingToken: no balances here");
    }

    function allowance(address, address) external pure returns (uint256) {
        revert("RevertingToken: no allowances here");
    }

    function poke(address to) external {
        emit Transfer(msg.sender, to, 1);
    }
}
