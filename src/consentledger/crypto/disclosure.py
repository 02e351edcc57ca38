"""Selective disclosure of a record: per-field salted commitments, withheld fields, pseudonyms.

A record commits on chain to the keccak256 of its fields' leaves, in field-name order, where each
leaf is keccak256(field salt ‖ canonical JSON [name, value]) and each field's salt is derived from
the record's salt with HMAC-SHA256. The custodian can then send a requester only some fields (with
their salts) and, for the others, only their leaves: the requester recomputes the root and checks
it against the chain, learning nothing of a withheld value (its salt stays with the custodian).

A pseudonym replaces a withheld value with HMAC-SHA256 under a key derived for one requester from
the custodian's pseudonym secret: stable for that requester (the same person maps to the same
pseudonym in every access), unlinkable across requesters.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_utils import keccak, to_canonical_address

from consentledger.crypto.commitment import SALT_BYTES, canonical_json
from consentledger.errors import IntegrityError

_FIELD_SALT_TAG = b"consentledger/field-salt/v1:"
_PSEUDONYM_KEY_TAG = b"consentledger/pseudonym-key/v1:"
PSEUDONYM_PREFIX = "pseudonym:"
"""What a pseudonymised value starts with, so nobody mistakes it for the real one."""


class Withholding(StrEnum):
    """What happens to an identifying field the access may not see."""

    REMOVE = "remove"
    PSEUDONYMISE = "pseudonymise"


def field_salt(record_salt: bytes, name: str) -> bytes:
    """Return the salt of field `name`: HMAC-SHA256(record salt, tag ‖ name)."""
    if len(record_salt) != SALT_BYTES:
        raise ValueError(f"a record salt is {SALT_BYTES} bytes, got {len(record_salt)}")
    return hmac.new(record_salt, _FIELD_SALT_TAG + name.encode("utf-8"), hashlib.sha256).digest()


def field_leaf(salt: bytes, name: str, value: Any) -> bytes:
    """Return keccak256(salt ‖ canonical JSON [name, value]): one field's committed leaf."""
    return keccak(salt + _canonical_pair(name, value))


def record_commitment(record_salt: bytes, payload: Mapping[str, Any]) -> bytes:
    """Return the on-chain commitment of `payload`: keccak256 of its leaves in field-name order."""
    return _root({name: field_leaf(field_salt(record_salt, name), name, value) for name, value in payload.items()})


@dataclass(frozen=True)
class Disclosure:
    """What a custodian sends for one access: fields shown with their salts, leaves of the withheld ones,
    and pseudonyms standing in for some withheld values."""

    fields: dict[str, Any]
    salts: dict[str, bytes]
    withheld: dict[str, bytes]
    pseudonyms: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """Return the disclosure as JSON-ready data (bytes as hex)."""
        return {
            "fields": self.fields,
            "salts": {name: salt.hex() for name, salt in self.salts.items()},
            "withheld": {name: leaf.hex() for name, leaf in self.withheld.items()},
            "pseudonyms": self.pseudonyms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Disclosure:
        """Return the disclosure `to_json` described; IntegrityError if it is malformed."""
        parts = ("fields", "salts", "withheld", "pseudonyms")
        if not all(isinstance(data.get(part), Mapping) for part in parts):
            raise IntegrityError(f"malformed disclosure from the custodian: {', '.join(parts)} must be objects")
        try:
            disclosure = cls(
                fields=dict(data["fields"]),
                salts={str(n): bytes.fromhex(s) for n, s in data["salts"].items()},
                withheld={str(n): bytes.fromhex(leaf) for n, leaf in data["withheld"].items()},
                pseudonyms={str(n): str(p) for n, p in data["pseudonyms"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise IntegrityError("malformed disclosure from the custodian") from None
        if set(disclosure.fields) != set(disclosure.salts) or set(disclosure.fields) & set(disclosure.withheld):
            raise IntegrityError("malformed disclosure: every shown field needs its salt, none may be withheld too")
        if not set(disclosure.pseudonyms) <= set(disclosure.withheld):
            raise IntegrityError("malformed disclosure: a pseudonym stands only for a withheld field")
        return disclosure

    def verify(self, expected: bytes) -> None:
        """Return if the shown fields and withheld leaves hash to the on-chain `expected`; IntegrityError otherwise."""
        leaves = {name: field_leaf(self.salts[name], name, value) for name, value in self.fields.items()}
        leaves.update(self.withheld)
        if not hmac.compare_digest(_root(leaves), expected):
            raise IntegrityError("record content does not match its on-chain commitment")

    def visible_payload(self) -> dict[str, Any]:
        """Return what the requester's caller sees: shown fields, and pseudonyms in place of their values."""
        return {**self.fields, **self.pseudonyms}


def disclose(
    record_salt: bytes,
    payload: Mapping[str, Any],
    withheld: Iterable[str],
    *,
    withholding: Withholding = Withholding.REMOVE,
    pseudonym_key: bytes | None = None,
) -> Disclosure:
    """Return the disclosure of `payload` with the `withheld` fields removed or pseudonymised.

    Pseudonymising needs `pseudonym_key` (see `pseudonym_key_for`).
    """
    hidden = set(withheld) & set(payload)
    if withholding is Withholding.PSEUDONYMISE and pseudonym_key is None:
        raise ValueError("pseudonymising needs the requester's pseudonym key")
    salts = {name: field_salt(record_salt, name) for name in payload}
    return Disclosure(
        fields={name: value for name, value in payload.items() if name not in hidden},
        salts={name: salt for name, salt in salts.items() if name not in hidden},
        withheld={name: field_leaf(salts[name], name, payload[name]) for name in hidden},
        pseudonyms=(
            {name: pseudonym(pseudonym_key, name, payload[name]) for name in hidden}
            if withholding is Withholding.PSEUDONYMISE and pseudonym_key is not None else {}
        ),
    )


def pseudonym_key_for(secret: bytes, requester: str) -> bytes:
    """Return the pseudonym key of one requester: HMAC-SHA256(custodian secret, tag ‖ requester address)."""
    return hmac.new(secret, _PSEUDONYM_KEY_TAG + to_canonical_address(requester), hashlib.sha256).digest()


def pseudonym(key: bytes, name: str, value: Any) -> str:
    """Return the pseudonym of field `name`'s `value`: "pseudonym:" + hex HMAC-SHA256(key, [name, value])."""
    return PSEUDONYM_PREFIX + hmac.new(key, _canonical_pair(name, value), hashlib.sha256).hexdigest()


def _canonical_pair(name: str, value: Any) -> bytes:
    return canonical_json({"name": name, "value": value})


def _root(leaves: Mapping[str, bytes]) -> bytes:
    return keccak(b"".join(leaves[name] for name in sorted(leaves)))
