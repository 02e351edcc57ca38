"""The canonical JSON a record's content is committed in, and the salt of each record's commitment.

The commitment itself is per field (`consentledger.crypto.disclosure`), so parts can be disclosed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

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
