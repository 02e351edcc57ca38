"""Selective disclosure: per-field commitments verify what is shown, reveal nothing withheld; pseudonyms."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentledger.crypto.disclosure import (
    Disclosure,
    Withholding,
    disclose,
    field_leaf,
    field_salt,
    pseudonym_key_for,
    record_commitment,
)
from consentledger.errors import IntegrityError

PAYLOAD = {"name": "Lee", "phone": "555-0101", "district": "North", "visited_at": "2026-11-20"}
IDENTIFYING = ("name", "phone")
TRANSPORT, POLICE = "0x" + "71" * 20, "0x" + "90" * 20
SALT = bytes(range(32))


def test_the_commitment_binds_every_field_and_not_their_order() -> None:
    """Reordering fields keeps the commitment; changing, adding or dropping any field changes it."""
    root = record_commitment(SALT, PAYLOAD)

    assert record_commitment(SALT, dict(reversed(PAYLOAD.items()))) == root
    assert record_commitment(SALT, {**PAYLOAD, "district": "South"}) != root
    assert record_commitment(SALT, {**PAYLOAD, "extra": 1}) != root
    assert record_commitment(SALT, {k: v for k, v in PAYLOAD.items() if k != "phone"}) != root
    assert record_commitment(os.urandom(32), PAYLOAD) != root


def test_each_field_has_its_own_salt() -> None:
    """Field salts differ per field and per record, so a leaf reveals nothing across fields or records."""
    assert field_salt(SALT, "name") != field_salt(SALT, "phone")
    assert field_salt(SALT, "name") != field_salt(os.urandom(32), "name")
    with pytest.raises(ValueError, match="32 bytes"):
        field_salt(b"short", "name")


@pytest.mark.parametrize("withholding", list(Withholding))
def test_a_disclosure_without_identifying_fields_verifies_against_the_commitment(withholding: Withholding) -> None:
    """The requester checks the shown fields plus withheld leaves against the chain; no withheld value is sent."""
    key = pseudonym_key_for(os.urandom(32), TRANSPORT)
    shown = disclose(SALT, PAYLOAD, IDENTIFYING, withholding=withholding, pseudonym_key=key)

    shown.verify(record_commitment(SALT, PAYLOAD))
    assert shown.fields == {"district": "North", "visited_at": "2026-11-20"}
    assert set(shown.withheld) == set(IDENTIFYING)
    wire = json.dumps(shown.to_json())
    assert "Lee" not in wire and "555-0101" not in wire
    assert field_salt(SALT, "name").hex() not in wire  # the withheld value's salt never leaves
    if withholding is Withholding.PSEUDONYMISE:
        assert set(shown.visible_payload()) == set(PAYLOAD)
        assert all(shown.visible_payload()[f].startswith("pseudonym:") for f in IDENTIFYING)
    else:
        assert shown.visible_payload() == {"district": "North", "visited_at": "2026-11-20"}


def test_pseudonyms_are_stable_for_a_requester_and_differ_between_requesters() -> None:
    """The same person gets the same pseudonym at transport every time, another one at police."""
    secret = os.urandom(32)
    transport, police = pseudonym_key_for(secret, TRANSPORT), pseudonym_key_for(secret, POLICE)

    def names(key: bytes, salt: bytes, payload: dict[str, Any]) -> str:
        return disclose(salt, payload, IDENTIFYING, withholding=Withholding.PSEUDONYMISE,
                        pseudonym_key=key).pseudonyms["name"]

    first = names(transport, SALT, PAYLOAD)
    assert names(transport, os.urandom(32), PAYLOAD) == first  # another record of the same person
    assert names(police, SALT, PAYLOAD) != first
    assert names(transport, SALT, {**PAYLOAD, "name": "Kim"}) != first
    assert names(pseudonym_key_for(os.urandom(32), TRANSPORT), SALT, PAYLOAD) != first


@pytest.mark.parametrize("tamper", ["value", "salt", "leaf", "drop", "add"])
def test_a_tampered_disclosure_fails_verification(tamper: str) -> None:
    """Any change to a shown value, a salt or a withheld leaf, or a dropped or added field, is caught."""
    data = disclose(SALT, PAYLOAD, IDENTIFYING).to_json()
    if tamper == "value":
        data["fields"]["district"] = "South"
    elif tamper == "salt":
        data["salts"]["district"] = os.urandom(32).hex()
    elif tamper == "leaf":
        data["withheld"]["name"] = field_leaf(field_salt(SALT, "name"), "name", "Kim").hex()
    elif tamper == "drop":
        del data["fields"]["visited_at"], data["salts"]["visited_at"]
    else:
        data["fields"]["extra"], data["salts"]["extra"] = 1, os.urandom(32).hex()

    with pytest.raises(IntegrityError, match="on-chain commitment"):
        Disclosure.from_json(data).verify(record_commitment(SALT, PAYLOAD))


@pytest.mark.parametrize("data", [
    {},
    {"fields": {"a": 1}, "salts": {}, "withheld": {}, "pseudonyms": {}},
    {"fields": {"a": 1}, "salts": {"a": "00"}, "withheld": {"a": "00"}, "pseudonyms": {}},
    {"fields": {}, "salts": {}, "withheld": {}, "pseudonyms": {"a": "pseudonym:00"}},
    {"fields": {}, "salts": {}, "withheld": {"a": "zz"}, "pseudonyms": {}},
    {"fields": [], "salts": {}, "withheld": {}, "pseudonyms": {}},
])
def test_a_malformed_disclosure_is_refused(data: dict[str, Any]) -> None:
    """Missing parts, a field without salt, a field both shown and withheld, a stray pseudonym, bad hex."""
    with pytest.raises(IntegrityError, match="malformed"):
        Disclosure.from_json(data)


def test_pseudonymising_needs_a_key() -> None:
    """Asking for pseudonyms without the requester's key is a programming error, said plainly."""
    with pytest.raises(ValueError, match="pseudonym key"):
        disclose(SALT, PAYLOAD, IDENTIFYING, withholding=Withholding.PSEUDONYMISE)


_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                    st.lists(st.integers(), max_size=3))


@given(payload=st.dictionaries(st.text(min_size=1, max_size=12), _values, min_size=1, max_size=8), data=st.data())
def test_any_payload_and_any_withheld_subset_round_trips_and_verifies(payload: dict[str, Any], data: Any) -> None:
    """Whatever the fields and whichever are withheld, the JSON disclosure verifies against the commitment."""
    hidden = data.draw(st.sets(st.sampled_from(sorted(payload))))
    salt = bytes(32)
    shown = Disclosure.from_json(json.loads(json.dumps(disclose(salt, payload, hidden).to_json())))

    shown.verify(record_commitment(salt, payload))
    assert shown.fields == {k: v for k, v in payload.items() if k not in hidden}
