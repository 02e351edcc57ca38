// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./IConsentRegistry.sol";
import {IRecordRegistry} from "./IRecordRegistry.sol";

/// @title IAccessLedger — the chain of responsibility.
/// @notice Every granted access appends to its record's hash chain:
/// head = keccak256(abi.encode(previousHead, seq, requester, actor, purpose, basis, consentRef,
/// identified, timestamp)), where seq counts the record's accesses from 1, so a missing entry shows
/// as a gap, `basis` is the legal basis the access was granted under (consent, statutory mandate or
/// emergency override), `consentRef` what names that basis (the consent id(s), the mandate id, the
/// override's justification hash), and `identified` says whether the custodian may release
/// identifying fields.
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
    /// @dev An emergency override names no justification hash.
    error AccessLedgerNoJustification();
    /// @dev Access `seq` of `record` is not an emergency override.
    error AccessLedgerNotAnOverride(bytes32 record, uint24 seq);
    /// @dev The override was reviewed already.
    error AccessLedgerOverrideAlreadyReviewed(bytes32 record, uint24 seq);
    /// @dev A review's reason must be 1 to 1024 bytes.
    error AccessLedgerInvalidReviewReason(uint256 length);
    /// @dev An auditor may not review an override its own organisation recorded.
    error AccessLedgerSelfReview(bytes32 record, uint24 seq, address auditor);

    /// @notice What an access was granted under.
    /// Consent: the subject's consent(s), or none for an OPEN category or an anonymous aggregate.
    /// Mandate: a statutory mandate granted by governance; `consent` in the entry is its id.
    /// Override: an emergency override; `consent` in the entry is the justification's hash.
    enum LegalBasis {
        Consent,
        Mandate,
        Override
    }

    /// @notice Where an override's review stands.
    enum ReviewStatus {
        None,
        Pending,
        Accepted,
        Rejected
    }

    /// @notice An emergency override awaiting or past its review, packed in one slot.
    struct OverrideState {
        address requester;
        uint40 recordedAt;
        uint40 reviewDue;
        ReviewStatus status;
    }

    /// @notice One access asked for in a batch: what `requestAccess` takes, per item.
    struct AccessRequest {
        bytes32 record;
        uint8 purpose;
        bytes32 actor;
        Consent[] consents;
    }

    /// @notice An access was granted and appended to the record's hash chain.
    /// @param basis The legal basis the access was granted under.
    /// @param consent Under consent: the consent id, 0 for an OPEN category without consent, or for
    /// several consents (derived records) keccak256 of their ids in the order presented. Under a
    /// mandate: the mandate id. Under an override: the justification's hash.
    /// @param actor The acting client of the requester (pseudonymous; 0 for the organisation itself).
    /// @param identified True iff at least one consent was presented and every one allows identified
    /// access; otherwise the custodian removes or pseudonymises the category's identifying fields.
    event AccessRecorded(
        uint24 indexed seq,
        bytes32 indexed record,
        address indexed requester,
        bytes32 actor,
        uint8 purpose,
        LegalBasis basis,
        bytes32 consent,
        bool identified,
        bytes32 head,
        uint40 timestamp
    );

    /// @notice Access `seq` of `record` was an emergency override, to be reviewed by `reviewDue`.
    /// @param justification keccak256 of the justification text the requester's agency keeps.
    event OverrideRecorded(
        bytes32 indexed record, uint24 indexed seq, address indexed requester, bytes32 justification, uint40 reviewDue
    );

    /// @notice An auditor reviewed the override `seq` of `record`.
    event OverrideReviewed(
        bytes32 indexed record, uint24 indexed seq, address indexed auditor, bool accepted, string reason, uint40 reviewedAt
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

    /// @notice Records an access by the caller's `actor` under statutory mandate `mandateId`.
    function requestAccessUnderMandate(bytes32 recordId, uint8 purposeId, bytes32 actor, uint256 mandateId)
        external
        returns (uint24 seq);

    /// @notice Records an emergency override by the caller's `actor`, justified by the text hashing to
    /// `justification`; an auditor must review it within the consortium's review period.
    function requestAccessOverride(bytes32 recordId, uint8 purposeId, bytes32 actor, bytes32 justification)
        external
        returns (uint24 seq);

    /// @notice Records an auditor's review of override `seq` of `recordId`: accepted or rejected, and why.
    function reviewOverride(bytes32 recordId, uint24 seq, bool accepted, string calldata reason) external;

    /// @notice Returns the override state of access `seq` of `recordId` (status None: not an override).
    function overrideState(bytes32 recordId, uint24 seq) external view returns (OverrideState memory);

    /// @notice Returns the head of `recordId`'s access hash chain (0 before the first access).
    function head(bytes32 recordId) external view returns (bytes32);
}
