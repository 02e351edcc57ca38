// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DataCatalog} from "./DataCatalog.sol";
import {ILegalBases} from "./interfaces/ILegalBases.sol";
import {Roles} from "./interfaces/Roles.sol";

/// @title LegalBases — storage and rules of statutory mandates and of the emergency override.
/// @notice Mutators are internal: the Consortium calls them only when a governance proposal passes.
abstract contract LegalBases is ILegalBases, DataCatalog {
    /// @notice Most categories one mandate may cover (bounds its loop).
    uint256 public constant MAX_MANDATE_CATEGORIES = 32;
    /// @notice Longest review period an override policy may set (a longer one would also let
    /// `block.timestamp + reviewPeriod` overflow uint40 and make every override revert).
    uint40 public constant MAX_REVIEW_PERIOD = 365 days;

    mapping(uint256 mandateId => Mandate) private _mandates;
    uint256 private _mandateCount;
    OverridePolicy private _overridePolicy;

    /// @inheritdoc ILegalBases
    function mandate(uint256 id) external view returns (Mandate memory) {
        return _existingMandate(id);
    }

    /// @inheritdoc ILegalBases
    function mandateCount() external view returns (uint256) {
        return _mandateCount;
    }

    /// @inheritdoc ILegalBases
    function overridePolicy() external view returns (OverridePolicy memory) {
        return _overridePolicy;
    }

    /// @inheritdoc ILegalBases
    /// @dev Requirements: the requester is an ACTIVE REQUESTER and holds the mandate (or is the signer
    /// its institution rotated to); the mandate is not revoked, not past `validUntil`, for this
    /// purpose and covers this category; the purpose is allowed for the category and not past sunset.
    function mandatePolicy(address requester, uint256 mandateId, uint16 categoryId, uint8 purposeId)
        external
        view
        returns (bool identified)
    {
        _requireActive(requester, Roles.REQUESTER);
        Mandate storage m = _existingMandate(mandateId);
        if (m.institution != requester && _signerOf(m.institution) != requester) {
            revert LegalBasesMandateNotHolder(mandateId, m.institution, requester);
        }
        if (m.revoked) revert LegalBasesMandateRevoked(mandateId);
        if (block.timestamp > m.validUntil) revert LegalBasesMandateExpired(mandateId, m.validUntil);
        if (m.purpose != purposeId) revert LegalBasesMandateWrongPurpose(mandateId, m.purpose);
        if (!_covers(m.categories, categoryId)) revert LegalBasesMandateWrongCategory(mandateId, categoryId);
        _checkUse(categoryId, purposeId);
        return m.identified;
    }

    /// @inheritdoc ILegalBases
    /// @dev Requirements: the requester is ACTIVE with both REQUESTER and EMERGENCY; the purpose is
    /// one the override policy lists; it is allowed for the category and not past sunset.
    function overrideCheck(address requester, uint16 categoryId, uint8 purposeId)
        external
        view
        returns (uint40 reviewPeriod)
    {
        _requireActive(requester, Roles.REQUESTER | Roles.EMERGENCY);
        OverridePolicy memory policy = _overridePolicy;
        if (policy.purposes & (uint128(1) << purposeId) == 0) revert LegalBasesNotOverridePurpose(purposeId);
        _checkUse(categoryId, purposeId);
        return policy.reviewPeriod;
    }

    /// @dev Reverts unless `account` is ACTIVE and holds every bit of `role`.
    function _requireActive(address account, uint8 role) internal view virtual;

    /// @dev Returns the signer `account` rotated to (itself if none).
    function _signerOf(address account) internal view virtual returns (address);

    /// @dev Grants a mandate from its governance payload. Emits MandateGranted.
    /// Requirements: the institution is an ACTIVE REQUESTER; 1..MAX_MANDATE_CATEGORIES categories,
    /// each allowing the purpose; a legal text hash; `validUntil` in the future and not past the
    /// purpose's sunset.
    function _grantMandate(bytes memory payload) internal {
        (
            address institution,
            uint8 purposeId,
            uint16[] memory categories,
            uint40 validUntil,
            bool identified,
            bytes32 legalTextHash,
            string memory legalTextUri
        ) = abi.decode(payload, (address, uint8, uint16[], uint40, bool, bytes32, string));
        _requireActive(institution, Roles.REQUESTER);
        if (categories.length == 0 || categories.length > MAX_MANDATE_CATEGORIES) {
            revert LegalBasesInvalidMandate("1 to 32 categories");
        }
        if (legalTextHash == bytes32(0)) revert LegalBasesInvalidMandate("no legal text hash");
        if (validUntil <= block.timestamp) revert LegalBasesInvalidMandate("ends in the past");
        uint40 sunset = _purposeSunset(purposeId);
        if (sunset != 0 && validUntil > sunset) revert LegalBasesInvalidMandate("ends after the purpose's sunset");
        for (uint256 i = 0; i < categories.length; ++i) {
            if (!_allows(categories[i], purposeId)) revert LegalBasesInvalidMandate("a category does not allow the purpose");
        }
        uint256 id = ++_mandateCount;
        _mandates[id] = Mandate({
            institution: institution,
            purpose: purposeId,
            identified: identified,
            revoked: false,
            validUntil: validUntil,
            legalTextHash: legalTextHash,
            categories: categories,
            legalTextUri: legalTextUri
        });
        emit MandateGranted(id, institution, purposeId, categories, validUntil, identified, legalTextHash, legalTextUri);
    }

    /// @dev Revokes mandate `id` (final). Emits MandateRevoked.
    function _revokeMandate(uint256 id) internal {
        Mandate storage m = _existingMandate(id);
        if (m.revoked) revert LegalBasesMandateRevoked(id);
        m.revoked = true;
        emit MandateRevoked(id);
    }

    /// @dev Replaces the override policy. Emits OverridePolicyChanged.
    /// Requirements: known purposes only (bit 0 unused); a review period when any purpose is listed,
    /// never over MAX_REVIEW_PERIOD; a rate window when a maximum is set.
    function _setOverridePolicy(OverridePolicy memory policy) internal {
        if (policy.purposes & 1 != 0) revert LegalBasesInvalidOverridePolicy("purpose bit 0 is unused");
        if (policy.purposes & ~_knownPurposes() != 0) revert LegalBasesInvalidOverridePolicy("unknown purpose");
        if (policy.purposes != 0 && policy.reviewPeriod == 0) revert LegalBasesInvalidOverridePolicy("no review period");
        if (policy.reviewPeriod > MAX_REVIEW_PERIOD) revert LegalBasesInvalidOverridePolicy("review period over 365 days");
        if (policy.maxOverrides != 0 && policy.rateWindow == 0) revert LegalBasesInvalidOverridePolicy("no rate window");
        _overridePolicy = policy;
        emit OverridePolicyChanged(policy.purposes, policy.reviewPeriod, policy.maxOverrides, policy.rateWindow);
    }

    function _existingMandate(uint256 id) private view returns (Mandate storage) {
        if (id == 0 || id > _mandateCount) revert LegalBasesUnknownMandate(id);
        return _mandates[id];
    }

    function _covers(uint16[] storage categories, uint16 categoryId) private view returns (bool) {
        for (uint256 i = 0; i < categories.length; ++i) {
            if (categories[i] == categoryId) return true;
        }
        return false;
    }
}
