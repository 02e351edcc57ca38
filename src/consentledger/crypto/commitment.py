"""Salted commitments to a record's content: keccak256(salt ‖ canonical JSON), as stored on chain."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from eth_utils import keccak

from consentledger.errors import IntegrityError

SALT_BYTES = 32


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """Return the one byte string a payload commits to: UTF-8 JSON, keys sorted, no spaces.

    Raises `ValueError` for NaN or infinities (JSON has no such numbers) and `TypeError` for
    values JSON cannot hold.
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def new_salt() -> bytes:
    """Return 32 fresh random bytes to salt one record's commitment."""
    return os.urandom(SALT_BYTES)


def commitment(salt: bytes, canonical: bytes) -> bytes:
    """Return keccak256(salt ‖ canonical), the 32-byte commitment a record registers on chain."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a commitment salt is {SALT_BYTES} bytes, got {len(salt)}")
    return keccak(salt + canonical)


def verify_commitment(salt: bytes, canonical: bytes, expected: bytes) -> None:
    """Return if `canonical` salted with `salt` hashes to `expected`; raise `IntegrityError` otherwise."""
    actual = commitment(salt, canonical) if len(salt) == SALT_BYTES else b""
    if not hmac.compare_digest(actual, expected):
        raise IntegrityError("record content does not match its on-chain commitment")
