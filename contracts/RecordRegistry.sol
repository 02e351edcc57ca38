// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsortiumMember} from "./ConsortiumMember.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";

/// @title RecordRegistry — registration and tombstoning of off-chain records.
abstract contract RecordRegistry is IRecordRegistry, ConsortiumMember {
    /// @notice Most original sources a derived record may have (bounds the loop in requestAccess).
    uint256 public constant MAX_SOURCES = 32;

    /// @dev The part of a record read (and, via `accesses`, written) on every access: one slot.
    /// A record exists iff retainUntil != 0 (retention is never zero).
    struct RecordCore {
        address subject;
        uint16 category;
        uint40 retainUntil;
        TombstoneReason tombstone;
        bool derived;
        uint24 accesses;
    }

    struct RecordMeta {
        address custodian;
        uint40 createdAt;
    }

    mapping(bytes32 recordId => RecordCore) internal _records;
    mapping(bytes32 recordId => bytes32[]) internal _sources;
    mapping(bytes32 recordId => RecordMeta) private _meta;
    mapping(bytes32 recordId => bytes32) private _commitments;

    /// @notice Registers record `id` held off chain by the caller.
    /// @dev Requirements: caller is an ACTIVE CUSTODIAN; category exists; id, commitment non-zero;
    /// subject non-zero unless the record is derived; id unused; every source existing and live.
    /// A derived source is replaced by its own original sources; at most MAX_SOURCES originals.
    /// retainUntil = now + the category's retention. Emits RecordRegistered (with `derivedFrom` as given).
    /// @param commitment keccak256(salt ‖ canonical plaintext), checked by requesters after decrypting.
    function registerRecord(
        bytes32 id,
        address subject,
        uint16 categoryId,
        bytes32 commitment,
        bytes32[] calldata derivedFrom
    ) external {
        uint40 retention = _consortium.custodianPolicy(msg.sender, categoryId);
        if (id == bytes32(0)) revert RecordRegistryInvalidRecord(id, "zero id");
        if (commitment == bytes32(0)) revert RecordRegistryInvalidRecord(id, "zero commitment");
        if (subject == address(0) && derivedFrom.length == 0) revert RecordRegistryInvalidRecord(id, "zero subject");
        if (_records[id].retainUntil != 0) revert RecordRegistryRecordExists(id);
        if (derivedFrom.length > MAX_SOURCES) revert RecordRegistryTooManySources(derivedFrom.length, MAX_SOURCES);
        bytes32[] storage originals = _sources[id];
        for (uint256 i = 0; i < derivedFrom.length; ++i) {
            RecordCore storage source = _existing(derivedFrom[i]);
            if (source.tombstone != TombstoneReason.None) {
                revert RecordRegistryRecordTombstoned(derivedFrom[i], source.tombstone);
            }
            if (block.timestamp > source.retainUntil) revert RecordRegistrySourceExpired(derivedFrom[i], source.retainUntil);
            if (source.derived) {
                // Data derived from derived data answers to the original subjects, so keep the
                // originals, not the intermediate result (whose `subject` is the custodian's word).
                bytes32[] storage inherited = _sources[derivedFrom[i]];
                for (uint256 j = 0; j < inherited.length; ++j) originals.push(inherited[j]);
            } else {
                originals.push(derivedFrom[i]);
            }
            if (originals.length > MAX_SOURCES) revert RecordRegistryTooManySources(originals.length, MAX_SOURCES);
        }
        uint40 retainUntil = uint40(block.timestamp) + retention;
        _records[id] = RecordCore({
            subject: subject,
            category: categoryId,
            retainUntil: retainUntil,
            tombstone: TombstoneReason.None,
            derived: derivedFrom.length != 0,
            accesses: 0
        });
        _meta[id] = RecordMeta({custodian: msg.sender, createdAt: uint40(block.timestamp)});
        _commitments[id] = commitment;
        emit RecordRegistered(id, msg.sender, subject, categoryId, commitment, retainUntil, derivedFrom);
    }

    /// @notice Marks record `id` destroyed for `reason`; no access to it works afterwards.
    /// @dev Requirements: caller is the record's custodian (whatever its membership status: the
    /// duty to destroy outlives a suspension); reason is not None; not already tombstoned.
    /// Emits RecordTombstoned.
    function tombstone(bytes32 id, TombstoneReason reason) external {
        RecordCore storage core = _existing(id);
        if (_meta[id].custodian != msg.sender) revert RecordRegistryNotCustodian(id, msg.sender);
        if (reason == TombstoneReason.None) revert RecordRegistryInvalidRecord(id, "no tombstone reason");
        if (core.tombstone != TombstoneReason.None) revert RecordRegistryRecordTombstoned(id, core.tombstone);
        core.tombstone = reason;
        emit RecordTombstoned(id, msg.sender, reason);
    }

    /// @inheritdoc IRecordRegistry
    function record(bytes32 id) external view returns (RecordView memory) {
        RecordCore storage core = _existing(id);
        RecordMeta storage meta = _meta[id];
        return RecordView({
            custodian: meta.custodian,
            subject: core.subject,
            category: core.category,
            createdAt: meta.createdAt,
            retainUntil: core.retainUntil,
            tombstone: core.tombstone,
            commitment: _commitments[id],
            derivedFrom: _sources[id],
            accesses: core.accesses
        });
    }

    function _existing(bytes32 id) internal view returns (RecordCore storage core) {
        core = _records[id];
        if (core.retainUntil == 0) revert RecordRegistryUnknownRecord(id);
    }
}
