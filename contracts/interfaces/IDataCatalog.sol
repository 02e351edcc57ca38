// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDataCatalog — the positive list of what agencies may collect, and why.
/// @notice Categories name the only fields that may be collected, how sensitive they are, how long
/// they may be kept and for which purposes they may be used. Purposes may carry a sunset (the end
/// of an emergency) after which no consent for them works.
interface IDataCatalog {
    /// @notice How strongly a category is protected.
    /// Open: shareable among active members for an allowed purpose, traced, no per-subject consent.
    /// OneTime: needs a consent; every consent is single-use whatever its maxUses.
    /// Protected: needs a consent scoped to the single record.
    enum Sensitivity {
        Open,
        OneTime,
        Protected
    }

    /// @notice A category as stored: the packed policy plus its descriptive fields.
    struct Category {
        uint16 id;
        Sensitivity sensitivity;
        uint40 retention;
        uint16 minAggregateSubjects;
        uint128 allowedPurposes;
        string name;
        string[] fields;
        string[] identifyingFields;
    }

    /// @notice A purpose of use; `sunset` 0 means it does not end.
    struct Purpose {
        uint8 id;
        uint40 sunset;
        string name;
    }

    /// @dev The category does not exist.
    error DataCatalogUnknownCategory(uint16 category);
    /// @dev A category with this id already exists.
    error DataCatalogCategoryExists(uint16 category);
    /// @dev The category definition is unusable (no fields, zero retention, identifying field not
    /// among the fields, purpose bit for an unknown purpose).
    error DataCatalogInvalidCategory(uint16 category, string reason);
    /// @dev The purpose does not exist.
    error DataCatalogUnknownPurpose(uint8 purpose);
    /// @dev A purpose with this id already exists.
    error DataCatalogPurposeExists(uint8 purpose);
    /// @dev Purpose ids are 1..127 (they are bits of a category's allowed-purpose mask).
    error DataCatalogInvalidPurposeId(uint8 purpose);
    /// @dev The purpose is not among the category's allowed purposes.
    error DataCatalogPurposeNotAllowed(uint16 category, uint8 purpose);
    /// @dev The purpose's sunset has passed: nothing may be used for it any more.
    error DataCatalogPurposeSunset(uint8 purpose, uint40 sunset);

    /// @notice A category was added to the positive list.
    event CategoryAdded(
        uint16 indexed category,
        string name,
        Sensitivity sensitivity,
        uint40 retention,
        uint16 minAggregateSubjects,
        uint128 allowedPurposes,
        string[] fields,
        string[] identifyingFields
    );
    /// @notice A category's allowed purposes changed.
    event CategoryPurposesChanged(uint16 indexed category, uint128 allowedPurposes);
    /// @notice A purpose was added.
    event PurposeAdded(uint8 indexed purpose, string name, uint40 sunset);
    /// @notice A purpose's sunset changed (0 = no sunset).
    event PurposeSunsetChanged(uint8 indexed purpose, uint40 sunset);

    /// @notice Returns the category `id`. Reverts with DataCatalogUnknownCategory if absent.
    function category(uint16 id) external view returns (Category memory);

    /// @notice Returns the ids of every category, in the order they were added.
    function categoryIds() external view returns (uint16[] memory);

    /// @notice Returns the purpose `id`. Reverts with DataCatalogUnknownPurpose if absent.
    function purpose(uint8 id) external view returns (Purpose memory);

    /// @notice Returns the ids of every purpose, in the order they were added.
    function purposeIds() external view returns (uint8[] memory);
}
