// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ILegalBases} from "./ILegalBases.sol";
import {Roles} from "./Roles.sol";

/// @title IConsortium — member organisations, their keys, and M-of-N governance.
/// @notice Admins propose and approve actions; an action runs once `threshold` distinct active
/// admins have approved it. Only ACTIVE members act anywhere in the ledger.
interface IConsortium is ILegalBases {
    /// @notice A member's standing. Revoked is final.
    enum MemberStatus {
        None,
        Active,
        Suspended,
        Revoked
    }

    /// @notice What a proposal does once approved; its payload is the ABI encoding listed per item.
    enum Action {
        AdmitMember, // (address account, uint8 roles, string name, bytes32 x25519Key, string gatewayUrl)
        SuspendMember, // (address account)
        ReinstateMember, // (address account)
        RevokeMember, // (address account)
        SetRoles, // (address account, uint8 roles)
        SetMemberKeys, // (address account, bytes32 x25519Key, string gatewayUrl)
        SetThreshold, // (uint16 threshold)
        AddCategory, // (uint16 id, string name, uint8 sensitivity, uint40 retention, uint16 minAggregateSubjects, uint128 allowedPurposes, string[] fields, string[] identifyingFields)
        SetCategoryPurposes, // (uint16 id, uint128 allowedPurposes)
        AddPurpose, // (uint8 id, string name, uint40 sunset)
        SetPurposeSunset, // (uint8 id, uint40 sunset)
        RotateSigner, // (address previous, address successor)
        GrantMandate, // (address institution, uint8 purpose, uint16[] categories, uint40 validUntil, bool identified, bytes32 legalTextHash, string legalTextUri)
        RevokeMandate, // (uint256 mandate)
        SetOverridePolicy // (uint128 purposes, uint40 reviewPeriod, uint16 maxOverrides, uint40 rateWindow)
    }

    /// @notice A member organisation.
    struct Member {
        uint8 roles;
        MemberStatus status;
        uint40 since;
        bytes32 x25519Key;
        string name;
        string gatewayUrl;
    }

    /// @notice A governance proposal.
    struct Proposal {
        Action action;
        uint16 approvals;
        bool executed;
        uint40 deadline;
        address proposer;
        bytes payload;
    }

    /// @dev The account is not a member in ACTIVE status.
    error ConsortiumMemberNotActive(address account, MemberStatus status);
    /// @dev The account lacks the role the operation needs.
    error ConsortiumMissingRole(address account, uint8 role);
    /// @dev The account is already (or was once) a member.
    error ConsortiumAlreadyMember(address account);
    /// @dev The member cannot move from its current status by this action.
    error ConsortiumInvalidStatus(address account, MemberStatus status);
    /// @dev Roles must be a non-empty subset of ADMIN|CUSTODIAN|REQUESTER|AUDITOR|EMERGENCY.
    error ConsortiumInvalidRoles(uint8 roles);
    /// @dev The account is the zero address.
    error ConsortiumZeroAddress();
    /// @dev The threshold must be between 1 and the number of active admins.
    error ConsortiumInvalidThreshold(uint16 threshold, uint256 activeAdmins);
    /// @dev No proposal has this id.
    error ConsortiumUnknownProposal(uint256 proposal);
    /// @dev The proposal has already been executed.
    error ConsortiumProposalExecuted(uint256 proposal);
    /// @dev The proposal's voting period has ended.
    error ConsortiumProposalExpired(uint256 proposal, uint40 deadline);
    /// @dev This admin has already approved this proposal.
    error ConsortiumAlreadyApproved(uint256 proposal, address admin);
    /// @dev The proposal has fewer approvals by currently ACTIVE admins than the threshold.
    error ConsortiumThresholdNotReached(uint256 proposal, uint16 approvals, uint16 threshold);

    /// @notice A member was admitted.
    event MemberAdmitted(address indexed account, uint8 roles, string name, bytes32 x25519Key, string gatewayUrl);
    /// @notice A member's status changed.
    event MemberStatusChanged(address indexed account, MemberStatus status);
    /// @notice A member's roles changed.
    event MemberRolesChanged(address indexed account, uint8 roles);
    /// @notice A member's X25519 key or gateway URL changed.
    event MemberKeysChanged(address indexed account, bytes32 x25519Key, string gatewayUrl);
    /// @notice A member's signing key moved from `previous` (now REVOKED) to `successor`, which
    /// inherits its roles, status, name and keys, its records and the consents granted to it.
    event MemberSignerRotated(address indexed previous, address indexed successor);
    /// @notice The approval threshold changed.
    event ThresholdChanged(uint16 threshold);
    /// @notice A proposal was created (the proposer's approval is counted).
    event ProposalCreated(uint256 indexed proposal, Action action, address indexed proposer, bytes payload, uint40 deadline);
    /// @notice An admin approved a proposal.
    event ProposalApproved(uint256 indexed proposal, address indexed admin, uint16 approvals);
    /// @notice A proposal reached the threshold and its action ran.
    event ProposalExecuted(uint256 indexed proposal, Action action);

    /// @notice Reverts unless `account` is ACTIVE and holds every bit of `role`.
    function requireActive(address account, uint8 role) external view;

    /// @notice Checks a requester may use `categoryId` for `purposeId` now and returns its sensitivity.
    function accessPolicy(address requester, uint16 categoryId, uint8 purposeId)
        external
        view
        returns (Sensitivity sensitivity);

    /// @notice Checks a custodian may register a record of `categoryId`; returns its retention.
    function custodianPolicy(address custodian, uint16 categoryId) external view returns (uint40 retention);

    /// @notice Returns the member record of `account` (status None if unknown).
    function member(address account) external view returns (Member memory);

    /// @notice Returns the signer `account` rotated to, following every rotation (itself if none).
    function currentSigner(address account) external view returns (address);
}
