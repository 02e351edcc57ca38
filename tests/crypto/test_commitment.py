"""Record commitments: one canonical JSON per payload, keccak256(salt ‖ canonical), checked in constant time."""

from __future__ import annotations

import json
import math

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from consentledger.crypto.commitment import SALT_BYTES, canonical_json, commitment, new_salt, verify_commitment
from consentledger.errors import IntegrityError

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


def test_commitment_is_keccak_of_salt_then_canonical() -> None:
    """The commitment is keccak256 over the salt followed by the canonical bytes."""
    canonical = canonical_json(PAYLOAD)
    assert commitment(SALT, canonical) == keccak(SALT + canonical)
    assert len(commitment(SALT, canonical)) == 32


def test_commitment_refuses_a_salt_that_is_not_32_bytes() -> None:
    """A short salt would make (salt, content) splits ambiguous, so it raises ValueError."""
    with pytest.raises(ValueError, match="salt is 32 bytes"):
        commitment(SALT[:16], b"{}")


def test_new_salt_is_32_fresh_bytes() -> None:
    """Each salt is 32 bytes and differs from the last."""
    first, second = new_salt(), new_salt()
    assert len(first) == len(second) == SALT_BYTES == 32
    assert first != second


def test_verify_commitment_accepts_matching_content() -> None:
    """Content, salt and commitment that agree pass silently."""
    canonical = canonical_json(PAYLOAD)
    verify_commitment(SALT, canonical, commitment(SALT, canonical))


@pytest.mark.parametrize(
    ("salt", "canonical"),
    [
        (SALT, canonical_json({**PAYLOAD, "age": 42})),
        (bytes(32), canonical_json(PAYLOAD)),
        (SALT[:31], canonical_json(PAYLOAD)),
        (SALT, canonical_json(PAYLOAD) + b" "),
    ],
    ids=["changed field", "other salt", "short salt", "extra byte"],
)
def test_verify_commitment_rejects_anything_else(salt: bytes, canonical: bytes) -> None:
    """Changed content, another salt or a malformed salt raises IntegrityError."""
    expected = commitment(SALT, canonical_json(PAYLOAD))
    with pytest.raises(IntegrityError, match="record content does not match its on-chain commitment"):
        verify_commitment(salt, canonical, expected)


def test_verify_commitment_rejects_a_truncated_expected_value() -> None:
    """An on-chain value of the wrong length never matches."""
    canonical = canonical_json(PAYLOAD)
    with pytest.raises(IntegrityError):
        verify_commitment(SALT, canonical, commitment(SALT, canonical)[:31])


def test_canonical_json_rejects_text_that_is_not_unicode() -> None:
    """A lone surrogate has no UTF-8 encoding and raises ValueError."""
    with pytest.raises(ValueError):
        canonical_json({"name": "\ud800"})
