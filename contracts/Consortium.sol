// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LegalBases} from "./LegalBases.sol";
import {IConsortium, Roles} from "./interfaces/IConsortium.sol";

/// @title Consortium — member organisations, their keys, and M-of-N governance over members and catalog.
/// @notice Every change to membership, roles, keys, the threshold, the data catalog or the legal
/// bases beside consent (mandates, the override policy) is a proposal
/// that runs once `threshold` distinct ACTIVE admins approved it within the voting period.
contract Consortium is IConsortium, LegalBases {
    /// @notice How long a proposal stays open for approvals.
    uint40 public constant VOTING_PERIOD = 7 days;
    /// @notice Most rotations `currentSigner` follows from one account (bounds its loop).
    uint256 public constant MAX_ROTATIONS = 16;

    /// @dev The part of a member read on every access, packed in one slot.
    struct Standing {
        uint8 roles;
        MemberStatus status;
        uint40 since;
    }

    struct Profile {
        bytes32 x25519Key;
        string name;
        string gatewayUrl;
    }

    mapping(address account => Standing) private _standings;
    mapping(address account => Profile) private _profiles;
    address[] private _memberList;
    mapping(address previous => address successor) private _successors;
    uint256 private _activeAdmins;
    uint16 private _threshold;

    mapping(uint256 proposalId => Proposal) private _proposals;
    mapping(uint256 proposalId => mapping(address admin => bool)) private _approved;
    mapping(uint256 proposalId => address[]) private _approvers;
    uint256 private _proposalCount;

    /// @notice Founds the consortium with `admins` (ACTIVE, ADMIN role) and an M-of-N `threshold`.
    /// @dev Requirements: no zero or duplicate admin; 1 <= threshold <= admins.length.
    /// Emits MemberAdmitted per admin and ThresholdChanged.
    constructor(address[] memory admins, string[] memory names, uint16 threshold_) {
        for (uint256 i = 0; i < admins.length; ++i) {
            _admit(admins[i], Roles.ADMIN, i < names.length ? names[i] : "", bytes32(0), "");
        }
        _setThreshold(threshold_);
    }

    // ----------------------------------------------------------------- governance

    /// @notice Proposes `action` with its ABI-encoded `payload`; counts the proposer's approval and
    /// runs the action at once if that reaches the threshold.
    /// @dev Requirements: caller is an ACTIVE admin.
    /// Emits ProposalCreated, ProposalApproved, and ProposalExecuted plus the action's event when run.
    /// @return id The new proposal's id (1-based).
    function propose(Action action, bytes calldata payload) external returns (uint256 id) {
        _requireActive(msg.sender, Roles.ADMIN);
        id = ++_proposalCount;
        uint40 deadline = uint40(block.timestamp) + VOTING_PERIOD;
        _proposals[id] = Proposal({
            action: action,
            approvals: 0,
            executed: false,
            deadline: deadline,
            proposer: msg.sender,
            payload: payload
        });
        emit ProposalCreated(id, action, msg.sender, payload, deadline);
        _approve(id);
    }

    /// @notice Approves proposal `id`; runs it when the approvals of admins still ACTIVE reach the threshold.
    /// @dev Requirements: caller is an ACTIVE admin who has not approved it yet; the proposal exists,
    /// is not executed and not expired. Emits ProposalApproved, and ProposalExecuted when run.
    function approve(uint256 id) external {
        _requireActive(msg.sender, Roles.ADMIN);
        _approve(id);
    }

    /// @notice Runs proposal `id` if it already has enough approvals (e.g. after the threshold fell).
    /// @dev Requirements: caller is an ACTIVE admin; approvals by admins still ACTIVE >= threshold;
    /// open and not expired.
    /// Emits ProposalExecuted and the action's event.
    function execute(uint256 id) external {
        _requireActive(msg.sender, Roles.ADMIN);
        Proposal storage p = _openProposal(id);
        uint16 live = _liveApprovals(id);
        if (live < _threshold) revert ConsortiumThresholdNotReached(id, live, _threshold);
        _execute(id, p);
    }

    /// @notice Returns proposal `id`.
    function proposal(uint256 id) external view returns (Proposal memory) {
        if (id == 0 || id > _proposalCount) revert ConsortiumUnknownProposal(id);
        return _proposals[id];
    }

    /// @notice Returns how many proposals were ever created (ids are 1..count).
    function proposalCount() external view returns (uint256) {
        return _proposalCount;
    }

    /// @notice Returns whether `admin` approved proposal `id`.
    function hasApproved(uint256 id, address admin) external view returns (bool) {
        return _approved[id][admin];
    }

    /// @notice Returns the number of approvals a proposal needs.
    function threshold() external view returns (uint16) {
        return _threshold;
    }

    /// @notice Returns the number of ACTIVE members holding the ADMIN role.
    function activeAdmins() external view returns (uint256) {
        return _activeAdmins;
    }

    // ----------------------------------------------------------------- membership views

    /// @inheritdoc IConsortium
    function member(address account) external view returns (Member memory) {
        Standing memory standing = _standings[account];
        Profile storage profile = _profiles[account];
        return Member({
            roles: standing.roles,
            status: standing.status,
            since: standing.since,
            x25519Key: profile.x25519Key,
            name: profile.name,
            gatewayUrl: profile.gatewayUrl
        });
    }

    /// @inheritdoc IConsortium
    function currentSigner(address account) external view returns (address) {
        return _signerOf(account);
    }

    function _signerOf(address account) internal view override returns (address) {
        for (uint256 i = 0; i < MAX_ROTATIONS; ++i) {
            address next = _successors[account];
            if (next == address(0)) break;
            account = next;
        }
        return account;
    }

    /// @notice Returns every account ever admitted, in admission order.
    function members() external view returns (address[] memory) {
        return _memberList;
    }

    /// @inheritdoc IConsortium
    function requireActive(address account, uint8 role) external view {
        _requireActive(account, role);
    }

    /// @inheritdoc IConsortium
    function accessPolicy(address requester, uint16 categoryId, uint8 purposeId)
        external
        view
        returns (Sensitivity)
    {
        _requireActive(requester, Roles.REQUESTER);
        return _checkUse(categoryId, purposeId);
    }

    /// @inheritdoc IConsortium
    function custodianPolicy(address custodian, uint16 categoryId) external view returns (uint40) {
        _requireActive(custodian, Roles.CUSTODIAN);
        return _retentionOf(categoryId);
    }

    // ----------------------------------------------------------------- internals

    function _requireActive(address account, uint8 role) internal view override {
        Standing memory standing = _standings[account];
        if (standing.status != MemberStatus.Active) revert ConsortiumMemberNotActive(account, standing.status);
        if (standing.roles & role != role) revert ConsortiumMissingRole(account, role);
    }

    function _openProposal(uint256 id) private view returns (Proposal storage p) {
        if (id == 0 || id > _proposalCount) revert ConsortiumUnknownProposal(id);
        p = _proposals[id];
        if (p.executed) revert ConsortiumProposalExecuted(id);
        if (block.timestamp > p.deadline) revert ConsortiumProposalExpired(id, p.deadline);
    }

    function _approve(uint256 id) private {
        Proposal storage p = _openProposal(id);
        if (_approved[id][msg.sender]) revert ConsortiumAlreadyApproved(id, msg.sender);
        _approved[id][msg.sender] = true;
        _approvers[id].push(msg.sender);
        uint16 approvals = p.approvals + 1;
        p.approvals = approvals;
        emit ProposalApproved(id, msg.sender, approvals);
        if (_liveApprovals(id) >= _threshold) _execute(id, p);
    }

    /// @dev Approvals that still count: those of approvers who are ACTIVE admins now, so a vote by
    /// an admin suspended, revoked or stripped of ADMIN since does not. Bounded by the admins.
    function _liveApprovals(uint256 id) private view returns (uint16 live) {
        address[] storage approvers = _approvers[id];
        for (uint256 i = 0; i < approvers.length; ++i) {
            Standing memory standing = _standings[approvers[i]];
            if (standing.status == MemberStatus.Active && standing.roles & Roles.ADMIN != 0) ++live;
        }
    }

    function _execute(uint256 id, Proposal storage p) private {
        p.executed = true;
        Action action = p.action;
        bytes memory payload = p.payload;
        emit ProposalExecuted(id, action);
        if (action == Action.AdmitMember) {
            (address account, uint8 roles, string memory name, bytes32 key, string memory url) =
                abi.decode(payload, (address, uint8, string, bytes32, string));
            _admit(account, roles, name, key, url);
        } else if (action == Action.SuspendMember) {
            _moveStatus(abi.decode(payload, (address)), MemberStatus.Active, MemberStatus.Suspended);
        } else if (action == Action.ReinstateMember) {
            _moveStatus(abi.decode(payload, (address)), MemberStatus.Suspended, MemberStatus.Active);
        } else if (action == Action.RevokeMember) {
            address account = abi.decode(payload, (address));
            MemberStatus status = _standings[account].status;
            _moveStatus(account, status == MemberStatus.Suspended ? status : MemberStatus.Active, MemberStatus.Revoked);
        } else if (action == Action.SetRoles) {
            (address account, uint8 roles) = abi.decode(payload, (address, uint8));
            _setRoles(account, roles);
        } else if (action == Action.SetMemberKeys) {
            (address account, bytes32 key, string memory url) = abi.decode(payload, (address, bytes32, string));
            _setKeys(account, key, url);
        } else if (action == Action.SetThreshold) {
            _setThreshold(abi.decode(payload, (uint16)));
        } else if (action == Action.AddCategory) {
            _executeAddCategory(payload);
        } else if (action == Action.SetCategoryPurposes) {
            (uint16 categoryId, uint128 allowed) = abi.decode(payload, (uint16, uint128));
            _setCategoryPurposes(categoryId, allowed);
        } else if (action == Action.AddPurpose) {
            (uint8 purposeId, string memory name, uint40 sunset) = abi.decode(payload, (uint8, string, uint40));
            _addPurpose(purposeId, name, sunset);
        } else if (action == Action.SetPurposeSunset) {
            (uint8 purposeId, uint40 sunset) = abi.decode(payload, (uint8, uint40));
            _setPurposeSunset(purposeId, sunset);
        } else if (action == Action.RotateSigner) {
            (address previous, address successor) = abi.decode(payload, (address, address));
            _rotateSigner(previous, successor);
        } else if (action == Action.GrantMandate) {
            _grantMandate(payload);
        } else if (action == Action.RevokeMandate) {
            _revokeMandate(abi.decode(payload, (uint256)));
        } else {
            (uint128 purposes, uint40 reviewPeriod, uint16 maxOverrides, uint40 rateWindow) =
                abi.decode(payload, (uint128, uint40, uint16, uint40));
            _setOverridePolicy(OverridePolicy(purposes, reviewPeriod, maxOverrides, rateWindow));
        }
    }

    function _executeAddCategory(bytes memory payload) private {
        (
            uint16 categoryId,
            string memory name,
            uint8 sensitivity,
            uint40 retention,
            uint16 minAggregateSubjects,
            uint128 allowed,
            string[] memory fields,
            string[] memory identifying
        ) = abi.decode(payload, (uint16, string, uint8, uint40, uint16, uint128, string[], string[]));
        if (sensitivity > uint8(Sensitivity.Protected)) revert DataCatalogInvalidCategory(categoryId, "unknown sensitivity");
        _addCategory(
            categoryId, name, Sensitivity(sensitivity), retention, minAggregateSubjects, allowed, fields, identifying
        );
    }

    function _admit(address account, uint8 roles, string memory name, bytes32 key, string memory url) private {
        if (account == address(0)) revert ConsortiumZeroAddress();
        if (_standings[account].status != MemberStatus.None) revert ConsortiumAlreadyMember(account);
        if (roles == 0 || roles & ~Roles.ALL != 0) revert ConsortiumInvalidRoles(roles);
        _standings[account] = Standing({roles: roles, status: MemberStatus.Active, since: uint40(block.timestamp)});
        _profiles[account] = Profile({x25519Key: key, name: name, gatewayUrl: url});
        _memberList.push(account);
        if (roles & Roles.ADMIN != 0) ++_activeAdmins;
        emit MemberAdmitted(account, roles, name, key, url);
    }

    function _moveStatus(address account, MemberStatus from, MemberStatus to) private {
        Standing storage standing = _standings[account];
        if (standing.status != from) revert ConsortiumInvalidStatus(account, standing.status);
        bool admin = standing.roles & Roles.ADMIN != 0;
        standing.status = to;
        if (admin && from == MemberStatus.Active) _dropAdmin();
        if (admin && to == MemberStatus.Active) ++_activeAdmins;
        emit MemberStatusChanged(account, to);
    }

    function _setRoles(address account, uint8 roles) private {
        Standing storage standing = _standings[account];
        if (standing.status == MemberStatus.None || standing.status == MemberStatus.Revoked) {
            revert ConsortiumInvalidStatus(account, standing.status);
        }
        if (roles == 0 || roles & ~Roles.ALL != 0) revert ConsortiumInvalidRoles(roles);
        bool wasAdmin = standing.roles & Roles.ADMIN != 0;
        bool isAdmin = roles & Roles.ADMIN != 0;
        standing.roles = roles;
        if (standing.status == MemberStatus.Active && wasAdmin != isAdmin) {
            if (isAdmin) ++_activeAdmins;
            else _dropAdmin();
        }
        emit MemberRolesChanged(account, roles);
    }

    function _setKeys(address account, bytes32 key, string memory url) private {
        MemberStatus status = _standings[account].status;
        if (status == MemberStatus.None || status == MemberStatus.Revoked) revert ConsortiumInvalidStatus(account, status);
        Profile storage profile = _profiles[account];
        profile.x25519Key = key;
        profile.gatewayUrl = url;
        emit MemberKeysChanged(account, key, url);
    }

    /// @dev Moves a live member to a new signing key. The successor keeps the member's roles, status,
    /// profile and (through `currentSigner`) its records and consents; the old key is REVOKED, so it
    /// can do nothing any more. The count of active admins is unchanged: one admin replaces another.
    function _rotateSigner(address previous, address successor) private {
        if (successor == address(0)) revert ConsortiumZeroAddress();
        Standing memory standing = _standings[previous];
        if (standing.status != MemberStatus.Active && standing.status != MemberStatus.Suspended) {
            revert ConsortiumInvalidStatus(previous, standing.status);
        }
        if (_standings[successor].status != MemberStatus.None) revert ConsortiumAlreadyMember(successor);
        Profile memory profile = _profiles[previous];
        _standings[successor] = Standing({roles: standing.roles, status: standing.status, since: uint40(block.timestamp)});
        _profiles[successor] = profile;
        _memberList.push(successor);
        _standings[previous].status = MemberStatus.Revoked;
        _successors[previous] = successor;
        emit MemberAdmitted(successor, standing.roles, profile.name, profile.x25519Key, profile.gatewayUrl);
        if (standing.status == MemberStatus.Suspended) emit MemberStatusChanged(successor, MemberStatus.Suspended);
        emit MemberStatusChanged(previous, MemberStatus.Revoked);
        emit MemberSignerRotated(previous, successor);
    }

    function _setThreshold(uint16 threshold_) private {
        if (threshold_ == 0 || threshold_ > _activeAdmins) revert ConsortiumInvalidThreshold(threshold_, _activeAdmins);
        _threshold = threshold_;
        emit ThresholdChanged(threshold_);
    }

    /// @dev Losing an admin must never leave fewer active admins than approvals needed.
    function _dropAdmin() private {
        uint256 remaining = _activeAdmins - 1;
        if (remaining < _threshold) revert ConsortiumInvalidThreshold(_threshold, remaining);
        _activeAdmins = remaining;
    }
}
