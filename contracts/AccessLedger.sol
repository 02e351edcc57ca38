// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentRegistry} from "./ConsentRegistry.sol";
import {ConsortiumMember} from "./ConsortiumMember.sol";
import {RecordRegistry} from "./RecordRegistry.sol";
import {IAccessLedger} from "./interfaces/IAccessLedger.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {IDataCatalog} from "./interfaces/IDataCatalog.sol";
import {Roles} from "./interfaces/Roles.sol";

/// @title AccessLedger — records, consents and the per-record hash chain of accesses.
/// @notice One deployment holds the record registry, the consent registry and the access ledger,
/// so an access reads records and consents from its own storage and calls the Consortium once.
/// An access is granted under the subject's consent, a statutory mandate or an emergency override.
contract AccessLedger is IAccessLedger, RecordRegistry, ConsentRegistry {
    /// @dev Storage slot 7 (offline receipts prove a head by this slot: keep it first here).
    mapping(bytes32 recordId => bytes32) private _heads;
    mapping(bytes32 recordId => mapping(uint24 seq => OverrideState)) private _overrides;

    /// @notice Longest reason an override review may give, in bytes.
    uint256 public constant MAX_REVIEW_REASON = 1024;

    /// @notice Binds the ledger to `consortium_`, whose members and catalog it enforces.
    constructor(IConsortium consortium_) ConsortiumMember(consortium_) {}

    /// @notice Most requests one `requestAccessBatch` call may hold (bounds its loop and its gas).
    uint256 public constant MAX_BATCH = 256;
    /// @dev No accessPolicy answer known yet (see _accessPolicy).
    uint256 private constant _NO_POLICY = 0;
    uint256 private constant _POLICY_KNOWN = 1 << 32;

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
        (seq,) = _recordAccess(msg.sender, recordId, purposeId, actor, consents, _NO_POLICY);
    }

    /// @notice Applies `requestAccess`'s rules to each request in order, as the caller; an item
    /// breaking a rule is refused instead of reverting the batch: its changes are undone and
    /// AccessRefused records it, naming the rule.
    /// @dev Each item runs in its own call frame (`recordBatchItem`, a call to this contract), so a
    /// refused item's consent uses and chain writes revert with it while earlier items stay. Items see
    /// the effects of the items before them: two items of one record get consecutive seqs, a
    /// ONE_TIME consent presented twice is refused the second time. The Consortium's answer to
    /// accessPolicy is passed on from an accepted item to the next, which reuses it for the same
    /// category and purpose: nothing can change the Consortium (nor the block's time) while the batch runs.
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
        uint256 policy = _NO_POLICY;
        for (uint256 i = 0; i < count; ++i) {
            AccessRequest calldata request = requests[i];
            (bool accepted, uint24 seq, uint256 used, bytes memory reason) = _runItem(request, policy);
            if (accepted) {
                seqs[i] = seq;
                policy = used;
            } else {
                if (reason.length < 4) revert AccessLedgerBatchItemFailed(i);
                emit AccessRefused(request.record, msg.sender, request.purpose, request.actor, bytes4(reason), reason);
            }
        }
    }

    /// @notice One item of a batch: `requestAccess` by `requester`. Only this contract may call it.
    /// @param policy The accessPolicy answer of an earlier item of the batch (see _accessPolicy).
    /// @dev Requirements: the caller is this contract (requestAccessBatch), else
    /// AccessLedgerSelfCallOnly; then those of requestAccess, for `requester`. Emits AccessRecorded.
    /// @return seq The access's position in the record's chain.
    /// @return used The accessPolicy answer this item used, for the next item.
    function recordBatchItem(address requester, uint256 policy, AccessRequest calldata request)
        external
        returns (uint24 seq, uint256 used)
    {
        if (msg.sender != address(this)) revert AccessLedgerSelfCallOnly(msg.sender);
        return _recordAccess(requester, request.record, request.purpose, request.actor, request.consents, policy);
    }

    /// @inheritdoc IAccessLedger
    function head(bytes32 recordId) external view returns (bytes32) {
        return _heads[recordId];
    }


    /// @dev The rules of requestAccess (see there) for an access by `requester`: the one implementation
    /// the single and the batched entry share. `policy` is an accessPolicy answer known from earlier in
    /// the transaction (_NO_POLICY for none); `usedPolicy` the one this access used. Emits AccessRecorded.
    function _recordAccess(
        address requester,
        bytes32 recordId,
        uint8 purposeId,
        bytes32 actor,
        Consent[] calldata consents,
        uint256 policy
    ) private returns (uint24 seq, uint256 usedPolicy) {
        bytes32 consentRef;
        {
            RecordCore memory core = _liveRecord(recordId);
            IDataCatalog.Sensitivity sensitivity;
            (sensitivity, usedPolicy) = _accessPolicy(requester, core.category, purposeId, policy);
            consentRef = _consumeConsents(requester, recordId, core, sensitivity, purposeId, consents);
            seq = _nextSeq(recordId, core);
        }
        _append(recordId, seq, requester, actor, purposeId, LegalBasis.Consent, consentRef, _allIdentified(consents));
    }

    /// @dev The consent rules of requestAccess for record `recordId` (see there): consumes the
    /// presented consents and returns the entry's consent reference.
    function _consumeConsents(
        address requester,
        bytes32 recordId,
        RecordCore memory core,
        IDataCatalog.Sensitivity sensitivity,
        uint8 purposeId,
        Consent[] calldata consents
    ) private returns (bytes32 consentRef) {
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
    }

    /// @notice Records an access by the caller to `recordId` for `purposeId` on behalf of `actor` under
    /// statutory mandate `mandateId`: no consent is needed. The entry's `consent` is the mandate id.
    /// @dev Requirements: the record exists, is not tombstoned and is within retention (and, for a
    /// derived record or an aggregate, every source is live); the Consortium's mandatePolicy holds:
    /// the caller is an ACTIVE REQUESTER holding the mandate, which is not revoked nor past its end,
    /// names this purpose and covers the record's category, and the purpose is allowed for the
    /// category and not past sunset. The entry is `identified` iff the mandate allows identifying
    /// fields (never for an aggregate). Emits AccessRecorded.
    /// @return seq The access's position in the record's chain.
    function requestAccessUnderMandate(bytes32 recordId, uint8 purposeId, bytes32 actor, uint256 mandateId)
        external
        returns (uint24 seq)
    {
        RecordCore memory core = _liveRecord(recordId);
        bool identified = _consortium.mandatePolicy(msg.sender, mandateId, core.category, purposeId);
        if (core.kind != RecordKind.Plain) _requireLiveSources(recordId);
        seq = _nextSeq(recordId, core);
        _append(
            recordId, seq, msg.sender, actor, purposeId, LegalBasis.Mandate, bytes32(mandateId),
            identified && core.kind != RecordKind.Aggregate
        );
    }

    /// @notice Records an emergency override ("break the glass"): an access by the caller to
    /// `recordId` for a vital-interest `purposeId` without consent, justified by the text whose
    /// keccak256 is `justification` (the caller's agency keeps the text). It is flagged on chain and
    /// awaits an auditor's review (reviewOverride) until the review period ends.
    /// @dev Requirements: a non-zero justification; the record live as for requestAccess; the
    /// Consortium's overrideCheck holds: the caller is ACTIVE with REQUESTER and EMERGENCY, the
    /// purpose is one the override policy lists, allowed for the category and not past sunset.
    /// The entry is `identified` (the point is to reach the person), except for an aggregate.
    /// Emits AccessRecorded and OverrideRecorded.
    /// @return seq The access's position in the record's chain.
    function requestAccessOverride(bytes32 recordId, uint8 purposeId, bytes32 actor, bytes32 justification)
        external
        returns (uint24 seq)
    {
        if (justification == bytes32(0)) revert AccessLedgerNoJustification();
        RecordCore memory core = _liveRecord(recordId);
        uint40 reviewPeriod = _consortium.overrideCheck(msg.sender, core.category, purposeId);
        if (core.kind != RecordKind.Plain) _requireLiveSources(recordId);
        seq = _nextSeq(recordId, core);
        uint40 reviewDue = uint40(block.timestamp) + reviewPeriod;
        _overrides[recordId][seq] = OverrideState({
            requester: msg.sender,
            recordedAt: uint40(block.timestamp),
            reviewDue: reviewDue,
            status: ReviewStatus.Pending
        });
        _append(
            recordId, seq, msg.sender, actor, purposeId, LegalBasis.Override, justification,
            core.kind != RecordKind.Aggregate
        );
        emit OverrideRecorded(recordId, seq, msg.sender, justification, reviewDue);
    }

    /// @notice Records an auditor's review of the emergency override `seq` of `recordId`.
    /// @dev Requirements: the caller is an ACTIVE AUDITOR of another organisation than the one that
    /// recorded the override; the access is an override not reviewed yet; the reason is 1 to
    /// MAX_REVIEW_REASON bytes. A review after the due time is recorded too (the audit reports it as
    /// late). Emits OverrideReviewed.
    function reviewOverride(bytes32 recordId, uint24 seq, bool accepted, string calldata reason)
        external
        onlyActive(Roles.AUDITOR)
    {
        OverrideState storage state = _overrides[recordId][seq];
        if (state.status == ReviewStatus.None) revert AccessLedgerNotAnOverride(recordId, seq);
        if (state.status != ReviewStatus.Pending) revert AccessLedgerOverrideAlreadyReviewed(recordId, seq);
        uint256 length = bytes(reason).length;
        if (length == 0 || length > MAX_REVIEW_REASON) revert AccessLedgerInvalidReviewReason(length);
        address requester = state.requester;
        if (requester == msg.sender || _consortium.currentSigner(requester) == msg.sender) {
            revert AccessLedgerSelfReview(recordId, seq, msg.sender);
        }
        state.status = accepted ? ReviewStatus.Accepted : ReviewStatus.Rejected;
        emit OverrideReviewed(recordId, seq, msg.sender, accepted, reason, uint40(block.timestamp));
    }

    /// @inheritdoc IAccessLedger
    function overrideState(bytes32 recordId, uint24 seq) external view returns (OverrideState memory) {
        return _overrides[recordId][seq];
    }

    /// @dev Returns record `recordId`'s core after checking it exists, is not tombstoned and is
    /// within retention.
    function _liveRecord(bytes32 recordId) private view returns (RecordCore memory core) {
        core = _loadCore(recordId);
        if (core.retainUntil == 0) revert RecordRegistryUnknownRecord(recordId);
        if (core.tombstone != TombstoneReason.None) revert RecordRegistryRecordTombstoned(recordId, core.tombstone);
        if (block.timestamp > core.retainUntil) revert AccessLedgerRetentionExpired(recordId, core.retainUntil);
    }

    /// @dev Counts one more access to `recordId` and returns its seq.
    function _nextSeq(bytes32 recordId, RecordCore memory core) private returns (uint24 seq) {
        seq = core.accesses + 1;
        _records[recordId].accesses = seq;
    }

    /// @dev Appends access `seq` of `recordId` to the record's hash chain. Emits AccessRecorded.
    function _append(
        bytes32 recordId,
        uint24 seq,
        address requester,
        bytes32 actor,
        uint8 purposeId,
        LegalBasis basis,
        bytes32 consentRef,
        bool identified
    ) private {
        bytes32 newHead = keccak256(
            abi.encode(
                _heads[recordId], seq, requester, actor, purposeId, basis, consentRef, identified, block.timestamp
            )
        );
        _heads[recordId] = newHead;
        emit AccessRecorded(
            seq, recordId, requester, actor, purposeId, basis, consentRef, identified, newHead, uint40(block.timestamp)
        );
    }

    /// @dev Returns the Consortium's accessPolicy(requester, categoryId, purposeId), or `known` when it
    /// is that answer already: (_POLICY_KNOWN | category << 16 | purpose << 8 | sensitivity), passed on
    /// within one batch of one requester, during which the Consortium's state cannot change.
    function _accessPolicy(address requester, uint16 categoryId, uint8 purposeId, uint256 known)
        private
        view
        returns (IDataCatalog.Sensitivity sensitivity, uint256 answer)
    {
        answer = _POLICY_KNOWN | (uint256(categoryId) << 16) | (uint256(purposeId) << 8);
        if (known & ~uint256(0xff) == answer) return (IDataCatalog.Sensitivity(uint8(known)), known);
        sensitivity = _consortium.accessPolicy(requester, categoryId, purposeId);
        answer |= uint256(sensitivity);
    }

    /// @dev Runs `request` as `recordBatchItem(msg.sender, policy, request)` in a call to this
    /// contract. The request's calldata is forwarded as it is (its offsets are relative to its own
    /// start) rather than ABI re-encoded, in free memory the next item reuses; only a refusal's
    /// `reason` stays allocated. `accepted` false: the item reverted with `reason`.
    function _runItem(AccessRequest calldata request, uint256 policy)
        private
        returns (bool accepted, uint24 seq, uint256 used, bytes memory reason)
    {
        Consent[] calldata consents = request.consents; // checks the request lies within calldata
        uint256 size;
        assembly ("memory-safe") {
            size := sub(add(consents.offset, mul(consents.length, 0x120)), request)
        }
        if (size < 0x80) size = 0x80; // consents placed inside the head: copy the head anyway
        bytes4 selector = this.recordBatchItem.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, selector)
            mstore(add(ptr, 0x04), caller())
            mstore(add(ptr, 0x24), policy)
            mstore(add(ptr, 0x44), 0x60)
            calldatacopy(add(ptr, 0x64), request, size)
            accepted := call(gas(), address(), 0, ptr, add(0x64, size), 0, 0)
            switch accepted
            case 0 {
                reason := ptr
                mstore(ptr, returndatasize())
                returndatacopy(add(ptr, 0x20), 0, returndatasize())
                mstore(0x40, add(add(ptr, 0x20), and(add(returndatasize(), 0x1f), not(0x1f))))
            }
            default {
                returndatacopy(ptr, 0, 0x40)
                seq := and(mload(ptr), 0xffffff)
                used := mload(add(ptr, 0x20))
                reason := 0x60
            }
        }
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
