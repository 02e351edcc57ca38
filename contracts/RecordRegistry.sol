// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ConsortiumMember} from "./ConsortiumMember.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";

/// @title RecordRegistry — registration, subject attestation and tombstoning of off-chain records.
/// @notice Attestations are signed in the ledger's EIP-712 domain (see ConsentRegistry, which names it).
abstract contract RecordRegistry is IRecordRegistry, EIP712, ConsortiumMember {
    /// @notice Most original sources a derived record may have (bounds the loop in requestAccess).
    uint256 public constant MAX_SOURCES = 32;
    bytes32 public constant RECORD_ATTESTATION_TYPEHASH =
        keccak256("RecordAttestation(bytes32 record,address custodian,uint16 category,bytes32 commitment)");

    /// @dev The part of a record read (and, via `accesses`, written) on every access: one slot.
    /// A record exists iff retainUntil != 0 (retention is never zero).
    struct RecordCore {
        address subject;
        uint16 category;
        uint40 retainUntil;
        TombstoneReason tombstone;
        RecordKind kind;
        uint24 accesses;
    }

    /// @dev `attested` shares the slot with the custodian, so attesting costs one warm-slot write.
    struct RecordMeta {
        address custodian;
        uint40 createdAt;
        bool attested;
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
    /// @param commitment keccak256 over the record's salted field commitments, checked by requesters.
    function registerRecord(
        bytes32 id,
        address subject,
        uint16 categoryId,
        bytes32 commitment,
        bytes32[] calldata derivedFrom
    ) external {
        if (subject == address(0) && derivedFrom.length == 0) revert RecordRegistryInvalidRecord(id, "zero subject");
        RecordKind kind = derivedFrom.length == 0 ? RecordKind.Plain : RecordKind.Derived;
        _register(id, subject, categoryId, commitment, derivedFrom, kind);
    }

    /// @notice Registers `id`, held off chain by the caller, as an anonymous aggregate of `derivedFrom`.
    /// @dev As registerRecord for a derived record without subject, and the original sources
    /// attested by their subjects (attestRecord) must cover at least the category's
    /// minAggregateSubjects (K > 0) distinct subjects: a custodian can register records about any
    /// address, so only a subject's own signature makes them count. Unattested sources may be part of
    /// the aggregate but count for nothing. Accessing an aggregate needs no consent (it identifies
    /// nobody) but, like any derived record, live sources.
    /// Emits RecordRegistered and AggregateRegistered (with the attested distinct subjects).
    function registerAggregate(bytes32 id, uint16 categoryId, bytes32 commitment, bytes32[] calldata derivedFrom)
        external
    {
        if (derivedFrom.length == 0) revert RecordRegistryInvalidRecord(id, "an aggregate needs sources");
        bytes32[] storage originals =
            _register(id, address(0), categoryId, commitment, derivedFrom, RecordKind.Aggregate);
        uint256 required = _consortium.category(categoryId).minAggregateSubjects;
        uint256 subjects = _distinctAttestedSubjects(originals);
        if (required == 0 || subjects < required) revert RecordRegistryTooFewSubjects(id, subjects, required);
        emit AggregateRegistered(id, uint16(subjects));
    }

    /// @notice Marks record `id` as confirmed by its subject, who signed EIP-712
    /// `RecordAttestation(record, custodian, category, commitment)` over its on-chain terms; anyone may relay.
    /// @dev Requirements: the record exists, is a collected (Plain) record and is not tombstoned; it is
    /// not attested yet; the signature is a valid low-s ECDSA signature recovering to the record's
    /// subject (the rules consents are checked by).
    /// Emits RecordAttested.
    function attestRecord(bytes32 id, bytes calldata signature) external {
        RecordCore storage core = _existing(id);
        if (core.kind != RecordKind.Plain) revert RecordRegistryInvalidRecord(id, "only a collected record is attested");
        if (core.tombstone != TombstoneReason.None) revert RecordRegistryRecordTombstoned(id, core.tombstone);
        RecordMeta storage meta = _meta[id];
        if (meta.attested) revert RecordRegistryAlreadyAttested(id);
        address subject = core.subject;
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(RECORD_ATTESTATION_TYPEHASH, id, meta.custodian, core.category, _commitments[id]))
        );
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        if (error != ECDSA.RecoverError.NoError || signer != subject) revert RecordRegistryInvalidAttestation(id);
        meta.attested = true;
        emit RecordAttested(id, subject);
    }

    /// @notice Marks record `id` destroyed for `reason`; no access to it works afterwards.
    /// @dev Requirements: caller is the record's custodian, or the signer it rotated to (whatever its
    /// membership status: the duty to destroy outlives a suspension); reason is not None; not already
    /// tombstoned.
    /// Emits RecordTombstoned.
    function tombstone(bytes32 id, TombstoneReason reason) external {
        RecordCore storage core = _existing(id);
        address custodian = _meta[id].custodian;
        if (custodian != msg.sender && _consortium.currentSigner(custodian) != msg.sender) {
            revert RecordRegistryNotCustodian(id, msg.sender);
        }
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
            accesses: core.accesses,
            kind: core.kind,
            attested: meta.attested
        });
    }

    /// @dev Stores a record of `kind` and returns its original sources (see registerRecord).
    function _register(
        bytes32 id,
        address subject,
        uint16 categoryId,
        bytes32 commitment,
        bytes32[] calldata derivedFrom,
        RecordKind kind
    ) private returns (bytes32[] storage originals) {
        uint40 retention = _consortium.custodianPolicy(msg.sender, categoryId);
        if (id == bytes32(0)) revert RecordRegistryInvalidRecord(id, "zero id");
        if (commitment == bytes32(0)) revert RecordRegistryInvalidRecord(id, "zero commitment");
        if (_records[id].retainUntil != 0) revert RecordRegistryRecordExists(id);
        if (derivedFrom.length > MAX_SOURCES) revert RecordRegistryTooManySources(derivedFrom.length, MAX_SOURCES);
        originals = _sources[id];
        for (uint256 i = 0; i < derivedFrom.length; ++i) {
            RecordCore storage source = _existing(derivedFrom[i]);
            if (source.tombstone != TombstoneReason.None) {
                revert RecordRegistryRecordTombstoned(derivedFrom[i], source.tombstone);
            }
            if (block.timestamp > source.retainUntil) revert RecordRegistrySourceExpired(derivedFrom[i], source.retainUntil);
            if (source.kind != RecordKind.Plain) {
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
            kind: kind,
            accesses: 0
        });
        _meta[id] = RecordMeta({custodian: msg.sender, createdAt: uint40(block.timestamp), attested: false});
        _commitments[id] = commitment;
        emit RecordRegistered(id, msg.sender, subject, categoryId, commitment, retainUntil, derivedFrom);
    }

    /// @dev Counts the distinct subjects of the attested `sources` (at most MAX_SOURCES, so quadratic is fine).
    function _distinctAttestedSubjects(bytes32[] storage sources) private view returns (uint256 count) {
        address[] memory seen = new address[](sources.length);
        for (uint256 i = 0; i < sources.length; ++i) {
            if (!_meta[sources[i]].attested) continue;
            address subject = _records[sources[i]].subject;
            bool known;
            for (uint256 j = 0; j < count; ++j) {
                if (seen[j] == subject) {
                    known = true;
                    break;
                }
            }
            if (!known) seen[count++] = subject;
        }
    }

    /// @dev Returns record `id`'s core (retainUntil 0 if absent) read with one SLOAD: copying the packed
    /// struct field by field costs a warm SLOAD per field (its enum checks split the optimizer's blocks),
    /// and every access pays it. The shifts follow RecordCore's declaration order, which fills the slot.
    function _loadCore(bytes32 id) internal view returns (RecordCore memory core) {
        RecordCore storage stored = _records[id];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(stored.slot)
        }
        core.subject = address(uint160(word));
        core.category = uint16(word >> 160);
        core.retainUntil = uint40(word >> 176);
        core.tombstone = TombstoneReason(uint8(word >> 216));
        core.kind = RecordKind(uint8(word >> 224));
        core.accesses = uint24(word >> 232);
    }

    function _existing(bytes32 id) internal view returns (RecordCore storage core) {
        core = _records[id];
        if (core.retainUntil == 0) revert RecordRegistryUnknownRecord(id);
    }
}
