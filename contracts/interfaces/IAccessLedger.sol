// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./IConsentRegistry.sol";
import {IRecordRegistry} from "./IRecordRegistry.sol";

/// @title IAccessLedger — the chain of responsibility.
/// @notice Every granted access appends to its record's hash chain:
/// head = keccak256(abi.encode(previousHead, seq, requester, purpose, consentRef, identified, timestamp)),
/// where seq counts the record's accesses from 1, so a missing entry shows as a gap, and
/// `identified` says whether the custodian may release identifying fields (every consent allows it).
interface IAccessLedger is IRecordRegistry, IConsentRegistry {
    /// @dev The record's retention period is over.
    error AccessLedgerRetentionExpired(bytes32 record, uint40 retainUntil);
    /// @dev The number of consents does not match what the record needs.
    error AccessLedgerConsentCountMismatch(bytes32 record, uint256 expected, uint256 given);
    /// @dev A derived record's source subject gave no consent among those presented.
    error AccessLedgerMissingSourceConsent(bytes32 record, bytes32 source, address subject);
    /// @dev A derived record's source is destroyed, so the derived data may not be used.
    error AccessLedgerSourceUnavailable(bytes32 record, bytes32 source);
    /// @dev A batch holds no request.
    error AccessLedgerBatchEmpty();
    /// @dev A batch holds more requests than MAX_BATCH.
    error AccessLedgerBatchTooLarge(uint256 given, uint256 max);
    /// @dev Item `index` of a batch failed without a rule (out of gas): the whole batch reverts,
    /// so no refusal is recorded that no rule made.
    error AccessLedgerBatchItemFailed(uint256 index);
    /// @dev A batch item's entry (recordBatchItem) was called by someone else than the ledger itself.
    error AccessLedgerSelfCallOnly(address caller);

    /// @notice One access asked for in a batch: what `requestAccess` takes, per item.
    struct AccessRequest {
        bytes32 record;
        uint8 purpose;
        bytes32 actor;
        Consent[] consents;
    }

    /// @notice An access was granted and appended to the record's hash chain.
    /// @param consent The consent id, 0 for an OPEN category without consent, or for several
    /// consents (derived records) keccak256 of their ids in the order presented.
    /// @param actor The acting client of the requester (pseudonymous; 0 for the organisation itself).
    /// @param identified True iff at least one consent was presented and every one allows identified
    /// access; otherwise the custodian removes or pseudonymises the category's identifying fields.
    event AccessRecorded(
        uint24 indexed seq,
        bytes32 indexed record,
        address indexed requester,
        bytes32 actor,
        uint8 purpose,
        bytes32 consent,
        bool identified,
        bytes32 head,
        uint40 timestamp
    );

    /// @notice An access asked for in a batch broke a rule and was not recorded; nothing of it changed.
    /// @param rule The selector of the custom error that fired; `reason` is the full error data.
    event AccessRefused(
        bytes32 indexed record,
        address indexed requester,
        uint8 purpose,
        bytes32 actor,
        bytes4 rule,
        bytes reason
    );

    /// @notice Records an access by the caller's `actor` to `recordId` for `purposeId` under `consents`.
    function requestAccess(bytes32 recordId, uint8 purposeId, bytes32 actor, Consent[] calldata consents)
        external
        returns (uint24 seq);

    /// @notice Applies `requestAccess` to each request in order, as the caller; an item breaking a
    /// rule is refused (AccessRefused, its changes undone) instead of reverting the batch.
    /// Emits exactly one AccessRecorded or AccessRefused per item, in item order.
    /// @return seqs Each item's seq, 0 for a refused item.
    function requestAccessBatch(AccessRequest[] calldata requests) external returns (uint24[] memory seqs);

    /// @notice Returns the head of `recordId`'s access hash chain (0 before the first access).
    function head(bytes32 recordId) external view returns (bytes32);
}
