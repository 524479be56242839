// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @notice Sends ETH on from inside a contract, for the tests: the recipient's native balance
/// changes with no log and without being the transaction's sender or recipient, so only the
/// block's call traces (or a per-wallet read) can tell the poller.
contract EthForwarder {
    function forward(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "EthForwarder: send failed");
    }
}
