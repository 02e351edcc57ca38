// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ConsortiumMember} from "./ConsortiumMember.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IDataCatalog} from "./interfaces/IDataCatalog.sol";

/// @title ConsentRegistry — subject-signed EIP-712 consents, relayable by anyone.
/// @notice The EIP-712 domain is ("ConsentLedger", "1", chainId, this contract); read it with
/// `eip712Domain()` (EIP-5267).
abstract contract ConsentRegistry is IConsentRegistry, EIP712, ConsortiumMember {
    bytes32 public constant CONSENT_TYPEHASH = keccak256(
        "Consent(address subject,address grantee,uint16 category,bytes32 record,uint8 purpose,uint40 validUntil,uint32 maxUses,bool identified,uint64 nonce)"
    );
    bytes32 public constant REVOCATION_TYPEHASH = keccak256("Revocation(bytes32 consent)");

    struct ConsentState {
        ConsentStatus status;
        uint32 uses;
    }

    mapping(bytes32 consentId => ConsentState) private _consents;

    constructor() EIP712("ConsentLedger", "1") {}

    /// @notice Registers `terms` signed by `terms.subject`; anyone may relay it.
    /// @dev Requirements: the signature recovers to the subject; this consent id was never
    /// registered or revoked (a signature is usable once); grantee and subject non-zero; maxUses > 0;
    /// validUntil in the future. Emits ConsentGranted.
    /// @return id The consent id (its EIP-712 digest).
    function grantConsent(Consent calldata terms, bytes calldata signature) external returns (bytes32 id) {
        id = _consentId(terms);
        ConsentStatus status = _consents[id].status;
        if (status == ConsentStatus.Granted) revert ConsentRegistryAlreadyGranted(id);
        if (status == ConsentStatus.Revoked) revert ConsentRegistryConsentRevoked(id);
        if (terms.subject == address(0)) revert ConsentRegistryInvalidTerms(id, "zero subject");
        if (terms.grantee == address(0)) revert ConsentRegistryInvalidTerms(id, "zero grantee");
        if (terms.maxUses == 0) revert ConsentRegistryInvalidTerms(id, "zero maxUses");
        if (!_signedBy(id, signature, terms.subject)) revert ConsentRegistryInvalidSignature(id);
        if (block.timestamp > terms.validUntil) revert ConsentRegistryConsentExpired(id, terms.validUntil);
        _consents[id].status = ConsentStatus.Granted;
        emit ConsentGranted(
            id,
            terms.subject,
            terms.grantee,
            terms.category,
            terms.record,
            terms.purpose,
            terms.validUntil,
            terms.maxUses,
            terms.identified,
            terms.nonce
        );
    }

    /// @notice Revokes `terms`; works before relay too, so a signed consent can be withdrawn unused.
    /// @dev Requirements: caller is the subject; not already revoked. Emits ConsentRevoked.
    function revokeConsent(Consent calldata terms) external {
        bytes32 id = _consentId(terms);
        if (msg.sender != terms.subject) revert ConsentRegistryNotSubject(id, msg.sender);
        _revoke(id, terms.subject);
    }

    /// @notice Revokes `terms` with the subject's signature over EIP-712 `Revocation(bytes32 consent)`.
    /// @dev Requirements: the signature recovers to the subject; not already revoked.
    /// Emits ConsentRevoked.
    function revokeConsentBySignature(Consent calldata terms, bytes calldata signature) external {
        bytes32 id = _consentId(terms);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(REVOCATION_TYPEHASH, id)));
        if (!_signedBy(digest, signature, terms.subject)) revert ConsentRegistryInvalidSignature(id);
        _revoke(id, terms.subject);
    }

    /// @inheritdoc IConsentRegistry
    function consentId(Consent calldata terms) external view returns (bytes32) {
        return _consentId(terms);
    }

    /// @inheritdoc IConsentRegistry
    function consentState(bytes32 id) external view returns (ConsentStatus status, uint32 uses) {
        ConsentState memory state = _consents[id];
        return (state.status, state.uses);
    }

    /// @dev Checks `terms` authorise `requester`'s access to `recordId` (of `categoryId`, with
    /// `sensitivity`) for `purposeId` now, then counts one use. The caller checks the subject.
    function _consume(
        address requester,
        Consent calldata terms,
        bytes32 recordId,
        uint16 categoryId,
        IDataCatalog.Sensitivity sensitivity,
        uint8 purposeId
    ) internal returns (bytes32 id) {
        id = _consentId(terms);
        ConsentState storage stored = _consents[id];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(stored.slot) // once: a field-by-field copy loads the slot per field
        }
        ConsentState memory state = ConsentState(ConsentStatus(uint8(word)), uint32(word >> 8));
        if (state.status != ConsentStatus.Granted) {
            if (state.status == ConsentStatus.Revoked) revert ConsentRegistryConsentRevoked(id);
            revert ConsentRegistryNotGranted(id);
        }
        if (terms.grantee != requester && _consortium.currentSigner(terms.grantee) != requester) {
            // A consent to an organisation stays with it when it rotates its signing key.
            revert ConsentRegistryWrongGrantee(id, terms.grantee, requester);
        }
        if (terms.purpose != purposeId) revert ConsentRegistryWrongPurpose(id, terms.purpose);
        if (terms.category != categoryId || (terms.record != bytes32(0) && terms.record != recordId)) {
            revert ConsentRegistryWrongScope(id, recordId);
        }
        if (sensitivity == IDataCatalog.Sensitivity.Protected && terms.record != recordId) {
            revert ConsentRegistryRecordScopeRequired(id, recordId);
        }
        if (block.timestamp > terms.validUntil) revert ConsentRegistryConsentExpired(id, terms.validUntil);
        uint32 maxUses = sensitivity == IDataCatalog.Sensitivity.OneTime ? 1 : terms.maxUses;
        if (state.uses >= maxUses) revert ConsentRegistryConsentExhausted(id, state.uses, maxUses);
        stored.uses = state.uses + 1;
    }

    function _consentId(Consent calldata terms) internal view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CONSENT_TYPEHASH,
                    terms.subject,
                    terms.grantee,
                    terms.category,
                    terms.record,
                    terms.purpose,
                    terms.validUntil,
                    terms.maxUses,
                    terms.identified,
                    terms.nonce
                )
            )
        );
    }

    function _revoke(bytes32 id, address subject) private {
        if (_consents[id].status == ConsentStatus.Revoked) revert ConsentRegistryConsentRevoked(id);
        _consents[id].status = ConsentStatus.Revoked;
        emit ConsentRevoked(id, subject);
    }

    function _signedBy(bytes32 digest, bytes calldata signature, address signer) private pure returns (bool) {
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        return error == ECDSA.RecoverError.NoError && recovered == signer;
    }
}
