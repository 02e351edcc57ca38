// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDataCatalog} from "./IDataCatalog.sol";

/// @title ILegalBases — the ways into personal data besides the subject's consent.
/// @notice A statutory mandate authorises one named institution to use some categories for one
/// purpose until a date (never past the purpose's sunset), citing its legal text by hash and URI;
/// governance grants and revokes it. The emergency override lets a member holding the EMERGENCY
/// role access without consent for a vital-interest purpose the consortium lists, each override to
/// be reviewed by an auditor within the review period the consortium sets.
interface ILegalBases is IDataCatalog {
    /// @notice A statutory mandate as granted by governance.
    struct Mandate {
        address institution;
        uint8 purpose;
        bool identified;
        bool revoked;
        uint40 validUntil;
        bytes32 legalTextHash;
        uint16[] categories;
        string legalTextUri;
    }

    /// @notice The consortium's rules for emergency overrides.
    /// @param purposes Bit mask of the vital-interest purposes an override may name (bit 0 unused).
    /// @param reviewPeriod Seconds within which an auditor must review each override (at most 365 days).
    /// @param maxOverrides Most overrides one agency may record per `rateWindow` (0: no limit); the
    /// audit reports agencies above it.
    /// @param rateWindow Seconds of the window `maxOverrides` counts over.
    struct OverridePolicy {
        uint128 purposes;
        uint40 reviewPeriod;
        uint16 maxOverrides;
        uint40 rateWindow;
    }

    /// @dev No mandate has this id.
    error LegalBasesUnknownMandate(uint256 mandate);
    /// @dev The mandate cannot be granted as proposed; `reason` says why.
    error LegalBasesInvalidMandate(string reason);
    /// @dev Governance revoked the mandate.
    error LegalBasesMandateRevoked(uint256 mandate);
    /// @dev The mandate ended at `validUntil`.
    error LegalBasesMandateExpired(uint256 mandate, uint40 validUntil);
    /// @dev The mandate was granted to another institution.
    error LegalBasesMandateNotHolder(uint256 mandate, address institution, address requester);
    /// @dev The mandate is for another purpose.
    error LegalBasesMandateWrongPurpose(uint256 mandate, uint8 purpose);
    /// @dev The mandate does not cover this category.
    error LegalBasesMandateWrongCategory(uint256 mandate, uint16 category);
    /// @dev The purpose is not one the consortium allows emergency overrides for.
    error LegalBasesNotOverridePurpose(uint8 purpose);
    /// @dev The override policy is unusable; `reason` says why.
    error LegalBasesInvalidOverridePolicy(string reason);

    /// @notice Governance granted mandate `mandate`.
    event MandateGranted(
        uint256 indexed mandate,
        address indexed institution,
        uint8 purpose,
        uint16[] categories,
        uint40 validUntil,
        bool identified,
        bytes32 legalTextHash,
        string legalTextUri
    );
    /// @notice Governance revoked mandate `mandate`.
    event MandateRevoked(uint256 indexed mandate);
    /// @notice Governance set the override policy.
    event OverridePolicyChanged(uint128 purposes, uint40 reviewPeriod, uint16 maxOverrides, uint40 rateWindow);

    /// @notice Returns mandate `id` (1-based).
    function mandate(uint256 id) external view returns (Mandate memory);

    /// @notice Returns how many mandates were ever granted (ids are 1..count).
    function mandateCount() external view returns (uint256);

    /// @notice Returns the override policy (all zero: no override allowed).
    function overridePolicy() external view returns (OverridePolicy memory);

    /// @notice Checks `requester` may use `categoryId` for `purposeId` under mandate `mandateId` now
    /// (whatever the category's sensitivity: the mandate stands in for the subject's consent).
    /// @return identified Whether the mandate allows identifying fields.
    function mandatePolicy(address requester, uint256 mandateId, uint16 categoryId, uint8 purposeId)
        external
        view
        returns (bool identified);

    /// @notice Checks `requester` may override for `categoryId` and `purposeId` now.
    /// @return reviewPeriod Seconds within which the override must be reviewed.
    function overrideCheck(address requester, uint16 categoryId, uint8 purposeId)
        external
        view
        returns (uint40 reviewPeriod);
}
