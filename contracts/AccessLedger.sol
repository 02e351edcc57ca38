// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentRegistry} from "./ConsentRegistry.sol";
import {ConsortiumMember} from "./ConsortiumMember.sol";
import {RecordRegistry} from "./RecordRegistry.sol";
import {IAccessLedger} from "./interfaces/IAccessLedger.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {IDataCatalog} from "./interfaces/IDataCatalog.sol";

/// @title AccessLedger — records, consents and the per-record hash chain of accesses.
/// @notice One deployment holds the record registry, the consent registry and the access ledger,
/// so an access reads records and consents from its own storage and calls the Consortium once.
contract AccessLedger is IAccessLedger, RecordRegistry, ConsentRegistry {
    mapping(bytes32 recordId => bytes32) private _heads;

    /// @notice Binds the ledger to `consortium_`, whose members and catalog it enforces.
    constructor(IConsortium consortium_) ConsortiumMember(consortium_) {}

    /// @notice Most requests one `requestAccessBatch` call may hold (bounds its loop and its gas).
    uint256 public constant MAX_BATCH = 256;

    /// @notice Records an access by the caller to `recordId` for `purposeId` on behalf of `actor`,
    /// consuming one use of each consent, and appends it to the record's hash chain.
    /// @param actor The acting person or application inside the caller's organisation, pseudonymous:
    /// keccak256(abi.encode(client address, salt)) with a salt only the organisation holds (it
    /// discloses the pair to an auditor in a signed statement); 0 when the organisation acted itself.
    /// @dev Requirements:
    /// - the record exists, is not tombstoned and is within retention;
    /// - the caller is an ACTIVE REQUESTER; the purpose is allowed for the category and not past sunset;
    /// - plain record: one consent by the record's subject that is granted, not revoked, for the caller,
    ///   the purpose and the record's category or the record itself (the record itself for PROTECTED),
    ///   unexpired, with uses left (one use for ONE_TIME); OPEN categories may present no consent;
    /// - derived record: every source live, and one such consent (scoped to the derived record) by
    ///   each source's subject, and no consent by anyone else;
    /// - anonymous aggregate: every source live, and no consent.
    /// The entry is `identified` iff consents were presented and every one allows identified access.
    /// Emits AccessRecorded.
    /// @return seq The access's position in the record's chain (1-based); (record, seq) names it.
    function requestAccess(bytes32 recordId, uint8 purposeId, bytes32 actor, Consent[] calldata consents)
        external
        returns (uint24 seq)
    {
        return _recordAccess(msg.sender, recordId, purposeId, actor, consents);
    }

    /// @notice Applies `requestAccess`'s rules to each request in order, as the caller; an item
    /// breaking a rule is refused instead of reverting the batch: its changes are undone and
    /// AccessRefused records it, naming the rule.
    /// @dev Each item runs in its own call frame (`recordBatchItem`, a call to this contract), so a
    /// refused item's consent uses and chain writes revert with it while earlier items stay. Items see
    /// the effects of the items before them: two items of one record get consecutive seqs, a
    /// ONE_TIME consent presented twice is refused the second time.
    /// A caller that is not an ACTIVE REQUESTER gets every item refused (ConsortiumMemberNotActive or
    /// ConsortiumMissingRole, unless an earlier rule fired), so the attempt is on the ledger too.
    /// Requirements:
    /// - 1 <= requests.length <= MAX_BATCH;
    /// - every item fails, if it fails, with revert data (a rule's custom error): an item failing
    ///   without any (out of gas) reverts the whole batch with AccessLedgerBatchItemFailed(index),
    ///   so no refusal is recorded that no rule made.
    /// Emits, per item and in item order, exactly one AccessRecorded (accepted) or AccessRefused
    /// (refused, `rule` the custom error's selector, `reason` its full revert data) and nothing
    /// else: the n-th of these events in the receipt answers the n-th item.
    /// @return seqs Each item's seq, 0 for a refused item.
    function requestAccessBatch(AccessRequest[] calldata requests) external returns (uint24[] memory seqs) {
        uint256 count = requests.length;
        if (count == 0) revert AccessLedgerBatchEmpty();
        if (count > MAX_BATCH) revert AccessLedgerBatchTooLarge(count, MAX_BATCH);
        seqs = new uint24[](count);
        for (uint256 i = 0; i < count; ++i) {
            AccessRequest calldata request = requests[i];
            try this.recordBatchItem(msg.sender, request) returns (uint24 seq) {
                seqs[i] = seq;
            } catch (bytes memory reason) {
                if (reason.length < 4) revert AccessLedgerBatchItemFailed(i);
                emit AccessRefused(request.record, msg.sender, request.purpose, request.actor, bytes4(reason), reason);
            }
        }
    }

    /// @notice One item of a batch: `requestAccess` by `requester`. Only this contract may call it.
    /// @dev Requirements: the caller is this contract (requestAccessBatch), else
    /// AccessLedgerSelfCallOnly; then those of requestAccess, for `requester`. Emits AccessRecorded.
    /// @return seq The access's position in the record's chain.
    function recordBatchItem(address requester, AccessRequest calldata request) external returns (uint24 seq) {
        if (msg.sender != address(this)) revert AccessLedgerSelfCallOnly(msg.sender);
        return _recordAccess(requester, request.record, request.purpose, request.actor, request.consents);
    }

    /// @inheritdoc IAccessLedger
    function head(bytes32 recordId) external view returns (bytes32) {
        return _heads[recordId];
    }


    /// @dev The rules of requestAccess (see there) for an access by `requester`: the one implementation
    /// the single and the batched entry share. Emits AccessRecorded.
    function _recordAccess(
        address requester,
        bytes32 recordId,
        uint8 purposeId,
        bytes32 actor,
        Consent[] calldata consents
    ) private returns (uint24 seq) {
        RecordCore memory core = _records[recordId];
        if (core.retainUntil == 0) revert RecordRegistryUnknownRecord(recordId);
        if (core.tombstone != TombstoneReason.None) revert RecordRegistryRecordTombstoned(recordId, core.tombstone);
        if (block.timestamp > core.retainUntil) revert AccessLedgerRetentionExpired(recordId, core.retainUntil);
        IDataCatalog.Sensitivity sensitivity = _consortium.accessPolicy(requester, core.category, purposeId);

        bytes32 consentRef;
        if (core.kind == RecordKind.Aggregate) {
            if (consents.length != 0) revert AccessLedgerConsentCountMismatch(recordId, 0, consents.length);
            _requireLiveSources(recordId);
        } else if (core.kind == RecordKind.Derived) {
            _requireLiveSources(recordId);
            consentRef = _consumeSourceConsents(requester, recordId, core.category, sensitivity, purposeId, consents);
        } else if (consents.length != 0 || sensitivity != IDataCatalog.Sensitivity.Open) {
            if (consents.length != 1) revert AccessLedgerConsentCountMismatch(recordId, 1, consents.length);
            consentRef = _consume(requester, consents[0], recordId, core.category, sensitivity, purposeId);
            if (consents[0].subject != core.subject) revert ConsentRegistryWrongSubject(consentRef, consents[0].subject);
        }

        bool identified = _allIdentified(consents);
        seq = core.accesses + 1;
        _records[recordId].accesses = seq;
        bytes32 newHead = keccak256(
            abi.encode(_heads[recordId], seq, requester, actor, purposeId, consentRef, identified, block.timestamp)
        );
        _heads[recordId] = newHead;
        emit AccessRecorded(
            seq, recordId, requester, actor, purposeId, consentRef, identified, newHead, uint40(block.timestamp)
        );
    }

    /// @dev Consumes every presented consent and checks they cover exactly the sources' subjects.
    /// Bounded: sources <= MAX_SOURCES, consents are paid for by the caller.
    function _consumeSourceConsents(
        address requester,
        bytes32 recordId,
        uint16 categoryId,
        IDataCatalog.Sensitivity sensitivity,
        uint8 purposeId,
        Consent[] calldata consents
    ) private returns (bytes32) {
        bytes32[] storage sources = _sources[recordId];
        address[] memory subjects = new address[](sources.length);
        for (uint256 i = 0; i < sources.length; ++i) {
            subjects[i] = _records[sources[i]].subject;
        }
        bytes32[] memory ids = new bytes32[](consents.length);
        for (uint256 j = 0; j < consents.length; ++j) {
            ids[j] = _consume(requester, consents[j], recordId, categoryId, sensitivity, purposeId);
            if (!_includes(subjects, consents[j].subject)) revert ConsentRegistryWrongSubject(ids[j], consents[j].subject);
        }
        for (uint256 i = 0; i < subjects.length; ++i) {
            if (!_presented(consents, subjects[i])) {
                revert AccessLedgerMissingSourceConsent(recordId, sources[i], subjects[i]);
            }
        }
        return ids.length == 1 ? ids[0] : keccak256(abi.encodePacked(ids));
    }

    /// @dev Reverts unless every source of derived record `recordId` is untombstoned and within retention.
    function _requireLiveSources(bytes32 recordId) private view {
        bytes32[] storage sources = _sources[recordId];
        for (uint256 i = 0; i < sources.length; ++i) {
            RecordCore storage source = _records[sources[i]];
            if (source.tombstone != TombstoneReason.None || block.timestamp > source.retainUntil) {
                revert AccessLedgerSourceUnavailable(recordId, sources[i]);
            }
        }
    }

    /// @dev True iff at least one consent is given and every one allows identified access.
    function _allIdentified(Consent[] calldata consents) private pure returns (bool) {
        for (uint256 j = 0; j < consents.length; ++j) {
            if (!consents[j].identified) return false;
        }
        return consents.length != 0;
    }

    function _includes(address[] memory list, address item) private pure returns (bool) {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == item) return true;
        }
        return false;
    }

    function _presented(Consent[] calldata consents, address subject) private pure returns (bool) {
        for (uint256 j = 0; j < consents.length; ++j) {
            if (consents[j].subject == subject) return true;
        }
        return false;
    }
}
