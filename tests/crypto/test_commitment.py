"""Record commitments: one canonical JSON per payload, keccak256(salt ‖ canonical), checked in constant time."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentledger.crypto.commitment import SALT_BYTES, canonical_json, new_salt

SALT = bytes(range(32))
PAYLOAD = {"name": "Zoë", "age": 41, "tags": ["a", "b"], "address": {"zip": "10115", "city": "Berlin"}}


def test_canonical_json_is_independent_of_key_order() -> None:
    """Payloads with the same content in any key order, at any depth, give the same bytes."""
    reordered = {"address": {"city": "Berlin", "zip": "10115"}, "tags": ["a", "b"], "age": 41, "name": "Zoë"}
    assert canonical_json(reordered) == canonical_json(PAYLOAD)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    """Keys are sorted, there are no spaces, and non-ASCII text is raw UTF-8 rather than \\u escapes."""
    assert canonical_json(PAYLOAD) == (
        '{"address":{"city":"Berlin","zip":"10115"},"age":41,"name":"Zoë","tags":["a","b"]}'.encode()
    )


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_canonical_json_rejects_nan_and_infinities(number: float) -> None:
    """NaN and infinities, which JSON cannot express, raise ValueError."""
    with pytest.raises(ValueError):
        canonical_json({"value": number})
    with pytest.raises(ValueError):
        canonical_json({"nested": [1, {"value": number}]})


def test_canonical_json_rejects_values_json_cannot_hold() -> None:
    """A value that is not JSON (bytes) raises TypeError instead of being stringified."""
    with pytest.raises(TypeError):
        canonical_json({"blob": b"\x00"})


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=8))
def test_canonical_json_survives_a_round_trip_and_reordering(payload: dict[str, object]) -> None:
    """Parsing the canonical bytes gives the payload back, and reversing key order changes nothing."""
    canonical = canonical_json(payload)
    assert json.loads(canonical) == payload
    assert canonical_json(dict(reversed(list(payload.items())))) == canonical
    assert canonical_json(json.loads(canonical)) == canonical


def test_new_salt_is_32_fresh_bytes() -> None:
    """Each salt is 32 bytes and differs from the last."""
    first, second = new_salt(), new_salt()
    assert len(first) == len(second) == SALT_BYTES == 32
    assert first != second


def test_canonical_json_rejects_text_that_is_not_unicode() -> None:
    """A lone surrogate has no UTF-8 encoding and raises ValueError."""
    with pytest.raises(ValueError):
        canonical_json({"name": "\ud800"})
