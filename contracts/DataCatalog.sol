// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDataCatalog} from "./interfaces/IDataCatalog.sol";

/// @title DataCatalog — storage and rules of the positive list.
/// @notice Mutators are internal: the Consortium calls them only when a governance proposal passes.
abstract contract DataCatalog is IDataCatalog {
    /// @dev The part of a category read on every access, packed in one slot. `watchFrom` is the
    /// earliest sunset among its allowed purposes (0 = none): before it no purpose of the category
    /// can be past sunset, so an access need not read the purpose. It may be early, never late.
    struct CategoryPolicy {
        bool exists;
        Sensitivity sensitivity;
        uint40 retention;
        uint16 minAggregateSubjects;
        uint128 allowedPurposes;
        uint40 watchFrom;
    }

    struct CategoryText {
        string name;
        string[] fields;
        string[] identifyingFields;
    }

    struct PurposeState {
        bool exists;
        uint40 sunset;
    }

    uint8 private constant _MAX_PURPOSE_ID = 127;

    mapping(uint16 categoryId => CategoryPolicy) private _policies;
    mapping(uint16 categoryId => CategoryText) private _texts;
    mapping(uint8 purposeId => PurposeState) private _purposes;
    mapping(uint8 purposeId => string) private _purposeNames;
    uint16[] private _categoryIds;
    uint8[] private _purposeIds;

    /// @inheritdoc IDataCatalog
    function category(uint16 id) external view returns (Category memory) {
        CategoryPolicy memory policy = _existingPolicy(id);
        CategoryText storage text = _texts[id];
        return Category({
            id: id,
            sensitivity: policy.sensitivity,
            retention: policy.retention,
            minAggregateSubjects: policy.minAggregateSubjects,
            allowedPurposes: policy.allowedPurposes,
            name: text.name,
            fields: text.fields,
            identifyingFields: text.identifyingFields
        });
    }

    /// @inheritdoc IDataCatalog
    function categoryIds() external view returns (uint16[] memory) {
        return _categoryIds;
    }

    /// @inheritdoc IDataCatalog
    function purpose(uint8 id) external view returns (Purpose memory) {
        PurposeState memory state = _purposes[id];
        if (!state.exists) revert DataCatalogUnknownPurpose(id);
        return Purpose({id: id, sunset: state.sunset, name: _purposeNames[id]});
    }

    /// @inheritdoc IDataCatalog
    function purposeIds() external view returns (uint8[] memory) {
        return _purposeIds;
    }

    /// @dev Returns the category's sensitivity after checking `purposeId` is allowed for it and
    /// not past its sunset.
    function _checkUse(uint16 categoryId, uint8 purposeId) internal view returns (Sensitivity) {
        CategoryPolicy memory policy = _existingPolicy(categoryId);
        if (policy.allowedPurposes & (uint128(1) << purposeId) == 0) {
            revert DataCatalogPurposeNotAllowed(categoryId, purposeId);
        }
        if (policy.watchFrom != 0 && block.timestamp >= policy.watchFrom) {
            uint40 sunset = _purposes[purposeId].sunset;
            if (sunset != 0 && block.timestamp >= sunset) revert DataCatalogPurposeSunset(purposeId, sunset);
        }
        return policy.sensitivity;
    }

    /// @dev Returns the retention of an existing category.
    function _retentionOf(uint16 categoryId) internal view returns (uint40) {
        return _existingPolicy(categoryId).retention;
    }

    /// @dev Returns whether existing category `categoryId` allows `purposeId` (sunset aside).
    function _allows(uint16 categoryId, uint8 purposeId) internal view returns (bool) {
        return _existingPolicy(categoryId).allowedPurposes & (uint128(1) << purposeId) != 0;
    }

    /// @dev Returns the sunset of existing purpose `purposeId` (0: none).
    function _purposeSunset(uint8 purposeId) internal view returns (uint40) {
        PurposeState memory state = _purposes[purposeId];
        if (!state.exists) revert DataCatalogUnknownPurpose(purposeId);
        return state.sunset;
    }

    /// @dev Returns the mask of every purpose added so far.
    function _knownPurposes() internal view returns (uint128 known) {
        uint8[] storage ids = _purposeIds;
        for (uint256 i = 0; i < ids.length; ++i) known |= uint128(1) << ids[i];
    }

    function _existingPolicy(uint16 categoryId) private view returns (CategoryPolicy memory policy) {
        policy = _policies[categoryId];
        if (!policy.exists) revert DataCatalogUnknownCategory(categoryId);
    }

    /// @dev Adds a category. Emits CategoryAdded.
    function _addCategory(
        uint16 id,
        string memory name,
        Sensitivity sensitivity,
        uint40 retention,
        uint16 minAggregateSubjects,
        uint128 allowedPurposes,
        string[] memory fields,
        string[] memory identifyingFields
    ) internal {
        if (_policies[id].exists) revert DataCatalogCategoryExists(id);
        if (fields.length == 0) revert DataCatalogInvalidCategory(id, "no fields");
        if (retention == 0) revert DataCatalogInvalidCategory(id, "zero retention");
        for (uint256 i = 0; i < identifyingFields.length; ++i) {
            if (!_contains(fields, identifyingFields[i])) {
                revert DataCatalogInvalidCategory(id, "identifying field not among fields");
            }
        }
        _requireKnownPurposes(id, allowedPurposes);
        _policies[id] = CategoryPolicy({
            exists: true,
            sensitivity: sensitivity,
            retention: retention,
            minAggregateSubjects: minAggregateSubjects,
            allowedPurposes: allowedPurposes,
            watchFrom: _earliestSunset(allowedPurposes)
        });
        CategoryText storage text = _texts[id];
        text.name = name;
        for (uint256 i = 0; i < fields.length; ++i) text.fields.push(fields[i]);
        for (uint256 i = 0; i < identifyingFields.length; ++i) text.identifyingFields.push(identifyingFields[i]);
        _categoryIds.push(id);
        emit CategoryAdded(
            id, name, sensitivity, retention, minAggregateSubjects, allowedPurposes, fields, identifyingFields
        );
    }

    /// @dev Replaces a category's allowed purposes. Emits CategoryPurposesChanged.
    function _setCategoryPurposes(uint16 id, uint128 allowedPurposes) internal {
        _existingPolicy(id);
        _requireKnownPurposes(id, allowedPurposes);
        _policies[id].allowedPurposes = allowedPurposes;
        _policies[id].watchFrom = _earliestSunset(allowedPurposes);
        emit CategoryPurposesChanged(id, allowedPurposes);
    }

    /// @dev Adds a purpose. Emits PurposeAdded.
    function _addPurpose(uint8 id, string memory name, uint40 sunset) internal {
        if (id == 0 || id > _MAX_PURPOSE_ID) revert DataCatalogInvalidPurposeId(id);
        if (_purposes[id].exists) revert DataCatalogPurposeExists(id);
        _purposes[id] = PurposeState({exists: true, sunset: sunset});
        _purposeNames[id] = name;
        _purposeIds.push(id);
        emit PurposeAdded(id, name, sunset);
    }

    /// @dev Sets (or with 0 clears) a purpose's sunset. Emits PurposeSunsetChanged.
    function _setPurposeSunset(uint8 id, uint40 sunset) internal {
        if (!_purposes[id].exists) revert DataCatalogUnknownPurpose(id);
        _purposes[id].sunset = sunset;
        uint128 bit = uint128(1) << id;
        uint16[] storage ids = _categoryIds;
        for (uint256 i = 0; i < ids.length; ++i) {
            CategoryPolicy storage policy = _policies[ids[i]];
            if (policy.allowedPurposes & bit != 0) policy.watchFrom = _earliestSunset(policy.allowedPurposes);
        }
        emit PurposeSunsetChanged(id, sunset);
    }

    /// @dev Earliest non-zero sunset among `purposeMask`'s purposes, 0 if none has one.
    /// Governance-time only: loops over the (governance-bounded) purpose list.
    function _earliestSunset(uint128 purposeMask) private view returns (uint40 earliest) {
        uint8[] storage ids = _purposeIds;
        for (uint256 i = 0; i < ids.length; ++i) {
            if (purposeMask & (uint128(1) << ids[i]) == 0) continue;
            uint40 sunset = _purposes[ids[i]].sunset;
            if (sunset != 0 && (earliest == 0 || sunset < earliest)) earliest = sunset;
        }
    }

    function _requireKnownPurposes(uint16 categoryId, uint128 allowedPurposes) private view {
        if (allowedPurposes & 1 != 0) revert DataCatalogInvalidCategory(categoryId, "purpose bit 0 is unused");
        if (allowedPurposes & ~_knownPurposes() != 0) revert DataCatalogInvalidCategory(categoryId, "unknown purpose");
    }

    function _contains(string[] memory list, string memory item) private pure returns (bool) {
        bytes32 wanted = keccak256(bytes(item));
        for (uint256 i = 0; i < list.length; ++i) {
            if (keccak256(bytes(list[i])) == wanted) return true;
        }
        return false;
    }
}
