// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @notice A rebasing token for the tests: `rebase` changes every balance without emitting
/// any event, as stETH-like tokens do. Only a periodic re-read can notice.
contract RebasingToken {
    uint256 public index = 1e18;
    mapping(address => uint256) internal shares;

    event Transfer(address indexed from, address indexed to, uint256 value);

    function balanceOf(address owner) external view returns (uint256) {
        return shares[owner] * index / 1e18;
    }

    function allowance(address, address) external pure returns (uint256) {
        return 0;
    }

    function mint(address to, uint256 amount) external {
        shares[to] += amount * 1e18 / index;
        emit Transfer(address(0), to, amount);
    }

    function rebase(uint256 newIndex) external {
        index = newIndex;
    }
}
