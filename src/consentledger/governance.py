"""Governance proposals: the ABI payload of each Consortium action, built and read back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_abi import decode, encode
from eth_utils import to_checksum_address

from consentledger.types import Action, Role, Sensitivity

# The payload layout of each action, as documented on IConsortium.Action.
PAYLOAD_TYPES: dict[Action, tuple[str, ...]] = {
    Action.ADMIT_MEMBER: ("address", "uint8", "string", "bytes32", "string"),
    Action.SUSPEND_MEMBER: ("address",),
    Action.REINSTATE_MEMBER: ("address",),
    Action.REVOKE_MEMBER: ("address",),
    Action.SET_ROLES: ("address", "uint8"),
    Action.SET_MEMBER_KEYS: ("address", "bytes32", "string"),
    Action.SET_THRESHOLD: ("uint16",),
    Action.ADD_CATEGORY: (
        "uint16", "string", "uint8", "uint40", "uint16", "uint128", "string[]", "string[]",
    ),
    Action.SET_CATEGORY_PURPOSES: ("uint16", "uint128"),
    Action.ADD_PURPOSE: ("uint8", "string", "uint40"),
    Action.SET_PURPOSE_SUNSET: ("uint8", "uint40"),
    Action.ROTATE_SIGNER: ("address", "address"),
    Action.GRANT_MANDATE: ("address", "uint8", "uint16[]", "uint40", "bool", "bytes32", "string"),
    Action.REVOKE_MANDATE: ("uint256",),
    Action.SET_OVERRIDE_POLICY: ("uint128", "uint40", "uint16", "uint40"),
}


@dataclass(frozen=True)
class ProposedAction:
    """An action and its encoded payload, ready for `Consortium.propose`."""

    action: Action
    payload: bytes

    def describe(self) -> str:
        """Return a one-line human description of the action and its arguments."""
        values = decode_payload(self.action, self.payload)
        readable = _READABLE.get(self.action)
        shown = readable(*values) if readable else ", ".join(_show(v) for v in values)
        return f"{self.action.name.lower()}({shown})"


def _encode(action: Action, *values: Any) -> ProposedAction:
    return ProposedAction(action, encode(list(PAYLOAD_TYPES[action]), list(values)))


def decode_payload(action: Action, payload: bytes) -> tuple[Any, ...]:
    """Return the decoded arguments of `payload` for `action`."""
    return tuple(decode(list(PAYLOAD_TYPES[action]), payload))


def purpose_mask(purposes: Iterable[int]) -> int:
    """Return the allowed-purpose bitmask for purpose ids (1..127)."""
    mask = 0
    for purpose in purposes:
        if not 1 <= purpose <= 127:
            raise ValueError(f"purpose id {purpose} is outside 1..127")
        mask |= 1 << purpose
    return mask


def purposes_in(mask: int) -> tuple[int, ...]:
    """Return the purpose ids set in a bitmask."""
    return tuple(bit for bit in range(1, 128) if mask >> bit & 1)


def admit_member(
    account: str, roles: Role, name: str, x25519_key: bytes = b"", gateway_url: str = ""
) -> ProposedAction:
    """Admit `account` with `roles`, its X25519 public key and gateway URL."""
    return _encode(
        Action.ADMIT_MEMBER, to_checksum_address(account), int(roles), name,
        _key32(x25519_key), gateway_url,
    )


def suspend_member(account: str) -> ProposedAction:
    """Suspend an ACTIVE member: it can do nothing until reinstated."""
    return _encode(Action.SUSPEND_MEMBER, to_checksum_address(account))


def reinstate_member(account: str) -> ProposedAction:
    """Reinstate a SUSPENDED member."""
    return _encode(Action.REINSTATE_MEMBER, to_checksum_address(account))


def revoke_member(account: str) -> ProposedAction:
    """Revoke a member for good."""
    return _encode(Action.REVOKE_MEMBER, to_checksum_address(account))


def set_roles(account: str, roles: Role) -> ProposedAction:
    """Replace a member's roles."""
    return _encode(Action.SET_ROLES, to_checksum_address(account), int(roles))


def set_member_keys(account: str, x25519_key: bytes, gateway_url: str) -> ProposedAction:
    """Replace a member's X25519 public key and gateway URL."""
    return _encode(Action.SET_MEMBER_KEYS, to_checksum_address(account), _key32(x25519_key), gateway_url)


def rotate_signer(previous: str, successor: str) -> ProposedAction:
    """Move a member to a new signing key: `successor` inherits everything, `previous` is revoked."""
    return _encode(Action.ROTATE_SIGNER, to_checksum_address(previous), to_checksum_address(successor))


def set_threshold(threshold: int) -> ProposedAction:
    """Change how many admin approvals a proposal needs."""
    return _encode(Action.SET_THRESHOLD, threshold)


def add_category(
    category_id: int,
    name: str,
    sensitivity: Sensitivity,
    retention_seconds: int,
    fields: Sequence[str],
    identifying_fields: Sequence[str] = (),
    allowed_purposes: Iterable[int] = (),
    min_aggregate_subjects: int = 0,
) -> ProposedAction:
    """Add a category to the positive list."""
    return _encode(
        Action.ADD_CATEGORY, category_id, name, int(sensitivity), retention_seconds,
        min_aggregate_subjects, purpose_mask(allowed_purposes), list(fields), list(identifying_fields),
    )


def set_category_purposes(category_id: int, allowed_purposes: Iterable[int]) -> ProposedAction:
    """Replace the purposes a category may be used for."""
    return _encode(Action.SET_CATEGORY_PURPOSES, category_id, purpose_mask(allowed_purposes))


def add_purpose(purpose_id: int, name: str, sunset: int = 0) -> ProposedAction:
    """Add a purpose (ids 1..127); `sunset` is a unix time, 0 for none."""
    return _encode(Action.ADD_PURPOSE, purpose_id, name, sunset)


def set_purpose_sunset(purpose_id: int, sunset: int) -> ProposedAction:
    """Set when a purpose ends (unix time; 0 clears it)."""
    return _encode(Action.SET_PURPOSE_SUNSET, purpose_id, sunset)


def grant_mandate(
    institution: str, purpose_id: int, categories: Sequence[int], valid_until: int, legal_text_hash: bytes,
    legal_text_uri: str, *, identified: bool = True,
) -> ProposedAction:
    """Grant `institution` a statutory mandate to use `categories` for `purpose_id` until `valid_until`.

    `legal_text_hash` is keccak256 of the legal text authorising it, `legal_text_uri` where it is
    published; `identified` whether the mandate allows identifying fields.
    """
    if len(legal_text_hash) != 32:
        raise ValueError(f"a legal text hash is 32 bytes, got {len(legal_text_hash)}")
    return _encode(Action.GRANT_MANDATE, to_checksum_address(institution), purpose_id, list(categories), valid_until,
                   identified, legal_text_hash, legal_text_uri)


def revoke_mandate(mandate_id: int) -> ProposedAction:
    """End mandate `mandate_id` now (final)."""
    return _encode(Action.REVOKE_MANDATE, mandate_id)


def set_override_policy(
    purposes: Iterable[int], review_period: int, max_overrides: int = 0, rate_window: int = 0,
) -> ProposedAction:
    """Allow emergency overrides for `purposes`, each to be reviewed within `review_period` seconds (<= 365 days).

    `max_overrides` per `rate_window` seconds is the rate per agency above which the audit reports it
    (0: no limit). No purposes: no override allowed.
    """
    return _encode(Action.SET_OVERRIDE_POLICY, purpose_mask(purposes), review_period, max_overrides, rate_window)


def _show_mandate(
    institution: str, purpose: int, categories: Sequence[int], valid_until: int, identified: bool,
    text_hash: bytes, uri: str,
) -> str:
    scope = "identified" if identified else "not identified"
    return (f"{to_checksum_address(institution)}, purpose {purpose}, categories {_ids(categories)}, "
            f"until {_iso(valid_until)}, {scope}, legal text 0x{text_hash.hex()} {uri!r}")


def _show_override_policy(purposes: int, review_period: int, max_overrides: int, rate_window: int) -> str:
    if not purposes:
        return "no override allowed"
    rate = f", at most {max_overrides} per {_span(rate_window)}" if max_overrides else ""
    return f"purposes {_ids(purposes_in(purposes))}, review within {_span(review_period)}{rate}"


def _show_admit(account: str, roles: int, name: str, key: bytes, url: str) -> str:
    return f"{to_checksum_address(account)}, {Role(roles).label()}, {name!r}, 0x{key.hex()}, {url!r}"


_READABLE: dict[Action, Callable[..., str]] = {
    Action.ADMIT_MEMBER: _show_admit,
    Action.SET_ROLES: lambda account, roles: f"{to_checksum_address(account)}, {Role(roles).label()}",
    Action.GRANT_MANDATE: _show_mandate,
    Action.REVOKE_MANDATE: lambda mandate_id: f"mandate {mandate_id}",
    Action.SET_OVERRIDE_POLICY: _show_override_policy,
}
"""The actions shown in words rather than as their raw payload values."""


def _ids(ids: Iterable[int]) -> str:
    return ",".join(map(str, ids)) or "none"


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def _span(seconds: int) -> str:
    """Return seconds as whole days, hours or minutes when they divide it (e.g. "3d", "72m"), else "Ns"."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _key32(key: bytes) -> bytes:
    if len(key) not in (0, 32):
        raise ValueError(f"an X25519 public key is 32 bytes, got {len(key)}")
    return key.rjust(32, b"\0")


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)
