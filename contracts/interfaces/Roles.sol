// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Roles — bits of a member's role mask.
/// @notice EMERGENCY lets a REQUESTER record emergency overrides (access without consent, reviewed after).
library Roles {
    uint8 internal constant ADMIN = 1;
    uint8 internal constant CUSTODIAN = 2;
    uint8 internal constant REQUESTER = 4;
    uint8 internal constant AUDITOR = 8;
    uint8 internal constant EMERGENCY = 16;
    uint8 internal constant ALL = 31;
}
