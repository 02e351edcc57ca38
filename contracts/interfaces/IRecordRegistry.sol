// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRecordRegistry — what exists off chain, who holds it, whose it is, and until when.
/// @notice Only a salted commitment to the plaintext is on chain; payloads never are.
interface IRecordRegistry {
    /// @notice Why a record was destroyed. None means the record is live. SourceDestroyed: a
    /// derived record or aggregate whose original source was tombstoned, destroyed with it.
    enum TombstoneReason {
        None,
        Retention,
        Erasure,
        Sunset,
        Custodian,
        SourceDestroyed
    }

    /// @notice What a record is: collected about one subject, derived from other records (an
    /// analysis result, needing every source subject's consent), or an anonymous aggregate over at
    /// least the category's K distinct subjects (no consent, sources still alive).
    enum RecordKind {
        Plain,
        Derived,
        Aggregate
    }

    /// @notice A record as returned by `record()`; `derivedFrom` lists its original (non-derived)
    /// sources, whose subjects must consent to any access unless `kind` is Aggregate. `attested`: the
    /// subject confirmed the record with their own signature (only attested records count toward K).
    struct RecordView {
        address custodian;
        address subject;
        uint16 category;
        uint40 createdAt;
        uint40 retainUntil;
        TombstoneReason tombstone;
        bytes32 commitment;
        bytes32[] derivedFrom;
        uint24 accesses;
        RecordKind kind;
        bool attested;
    }

    /// @dev No record has this id.
    error RecordRegistryUnknownRecord(bytes32 record);
    /// @dev A record with this id already exists.
    error RecordRegistryRecordExists(bytes32 record);
    /// @dev The record id, subject or commitment is zero where it may not be.
    error RecordRegistryInvalidRecord(bytes32 record, string reason);
    /// @dev A derived record lists more sources than allowed.
    error RecordRegistryTooManySources(uint256 count, uint256 max);
    /// @dev The record has been destroyed.
    error RecordRegistryRecordTombstoned(bytes32 record, TombstoneReason reason);
    /// @dev A source is past its retention period, so nothing may be derived from it.
    error RecordRegistrySourceExpired(bytes32 record, uint40 retainUntil);
    /// @dev Only the record's custodian may do this.
    error RecordRegistryNotCustodian(bytes32 record, address caller);
    /// @dev An aggregate's attested sources cover fewer distinct subjects than its category's K (0:
    /// the category allows no anonymous aggregates).
    error RecordRegistryTooFewSubjects(bytes32 record, uint256 subjects, uint256 required);
    /// @dev The attestation is not a valid (low-s) signature by the record's subject over its terms.
    error RecordRegistryInvalidAttestation(bytes32 record);
    /// @dev The record's subject has already attested it.
    error RecordRegistryAlreadyAttested(bytes32 record);

    /// @notice A record was registered by its custodian.
    event RecordRegistered(
        bytes32 indexed record,
        address indexed custodian,
        address indexed subject,
        uint16 category,
        bytes32 commitment,
        uint40 retainUntil,
        bytes32[] derivedFrom
    );
    /// @notice Record `record` (registered in the same transaction) is an anonymous aggregate over
    /// `subjects` distinct data subjects who attested its sources.
    event AggregateRegistered(bytes32 indexed record, uint16 subjects);
    /// @notice `subject` confirmed record `record` (its custodian, category and commitment) with their signature.
    event RecordAttested(bytes32 indexed record, address indexed subject);
    /// @notice A record was destroyed (crypto-shredded off chain) for `reason`.
    event RecordTombstoned(bytes32 indexed record, address indexed custodian, TombstoneReason reason);

    /// @notice Registers a record held by the caller. See RecordRegistry for requirements.
    function registerRecord(
        bytes32 id,
        address subject,
        uint16 categoryId,
        bytes32 commitment,
        bytes32[] calldata derivedFrom
    ) external;

    /// @notice Registers an anonymous aggregate held by the caller. See RecordRegistry for requirements.
    function registerAggregate(bytes32 id, uint16 categoryId, bytes32 commitment, bytes32[] calldata derivedFrom)
        external;

    /// @notice Marks a record confirmed by its subject's EIP-712 `RecordAttestation` signature;
    /// anyone may relay. See RecordRegistry for requirements.
    function attestRecord(bytes32 id, bytes calldata signature) external;

    /// @notice Marks a record destroyed. See RecordRegistry for requirements.
    function tombstone(bytes32 id, TombstoneReason reason) external;

    /// @notice Returns record `id`. Reverts with RecordRegistryUnknownRecord if absent.
    function record(bytes32 id) external view returns (RecordView memory);
}
