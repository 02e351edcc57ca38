// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";

/// @title ConsortiumMember — the small shared base for contracts that admit only consortium members.
abstract contract ConsortiumMember {
    /// @dev The consortium address holds no contract.
    error ConsortiumMemberInvalidConsortium(address consortium);

    IConsortium internal immutable _consortium;

    constructor(IConsortium consortium_) {
        if (address(consortium_).code.length == 0) revert ConsortiumMemberInvalidConsortium(address(consortium_));
        _consortium = consortium_;
    }

    /// @dev Reverts (with the Consortium's error) unless the caller is ACTIVE and holds `role`.
    modifier onlyActive(uint8 role) {
        _consortium.requireActive(msg.sender, role);
        _;
    }

    /// @notice Returns the consortium whose members may use this contract.
    function consortium() external view returns (IConsortium) {
        return _consortium;
    }
}
