// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsentRegistry — data subjects' EIP-712 consents, their uses and revocations.
/// @notice A consent is identified by its EIP-712 digest. Its terms travel in calldata (and in the
/// ConsentGranted event); storage keeps only status and use count, one slot per consent.
interface IConsentRegistry {
    /// @notice The terms a subject signs. `record` 0 means every record of `category`.
    struct Consent {
        address subject;
        address grantee;
        uint16 category;
        bytes32 record;
        uint8 purpose;
        uint40 validUntil;
        uint32 maxUses;
        bool identified;
        uint64 nonce;
    }

    /// @notice Lifecycle of a consent id.
    enum ConsentStatus {
        None,
        Granted,
        Revoked
    }

    /// @dev The signature does not recover to the consent's subject.
    error ConsentRegistryInvalidSignature(bytes32 consent);
    /// @dev This consent (signature) was already registered: each is usable once.
    error ConsentRegistryAlreadyGranted(bytes32 consent);
    /// @dev The consent was revoked by its subject.
    error ConsentRegistryConsentRevoked(bytes32 consent);
    /// @dev The consent was never granted on chain.
    error ConsentRegistryNotGranted(bytes32 consent);
    /// @dev The consent's validity ended.
    error ConsentRegistryConsentExpired(bytes32 consent, uint40 validUntil);
    /// @dev The consent has no uses left (ONE_TIME categories allow one use per consent).
    error ConsentRegistryConsentExhausted(bytes32 consent, uint32 uses, uint32 maxUses);
    /// @dev The consent names another grantee than the caller.
    error ConsentRegistryWrongGrantee(bytes32 consent, address grantee, address caller);
    /// @dev The consent is for another purpose.
    error ConsentRegistryWrongPurpose(bytes32 consent, uint8 purpose);
    /// @dev The consent's scope (category or record) does not cover the record.
    error ConsentRegistryWrongScope(bytes32 consent, bytes32 record);
    /// @dev The consent was given by someone who is not the record's (or source's) subject.
    error ConsentRegistryWrongSubject(bytes32 consent, address subject);
    /// @dev A PROTECTED category needs a consent naming the single record.
    error ConsentRegistryRecordScopeRequired(bytes32 consent, bytes32 record);
    /// @dev Only the subject may revoke directly.
    error ConsentRegistryNotSubject(bytes32 consent, address caller);
    /// @dev The terms are unusable (zero subject or grantee, zero maxUses).
    error ConsentRegistryInvalidTerms(bytes32 consent, string reason);

    /// @notice A subject-signed consent was registered.
    event ConsentGranted(
        bytes32 indexed consent,
        address indexed subject,
        address indexed grantee,
        uint16 category,
        bytes32 record,
        uint8 purpose,
        uint40 validUntil,
        uint32 maxUses,
        bool identified,
        uint64 nonce
    );
    /// @notice A consent was revoked by its subject.
    event ConsentRevoked(bytes32 indexed consent, address indexed subject);

    /// @notice Registers a consent signed by its subject; anyone may relay it.
    function grantConsent(Consent calldata terms, bytes calldata signature) external returns (bytes32 id);

    /// @notice Revokes a consent; the caller must be its subject.
    function revokeConsent(Consent calldata terms) external;

    /// @notice Revokes a consent with the subject's EIP-712 `Revocation(bytes32 consent)` signature.
    function revokeConsentBySignature(Consent calldata terms, bytes calldata signature) external;

    /// @notice Returns the EIP-712 digest identifying `terms`.
    function consentId(Consent calldata terms) external view returns (bytes32);

    /// @notice Returns a consent's status and how many times it has been used.
    function consentState(bytes32 id) external view returns (ConsentStatus status, uint32 uses);
}
