"""The accounts allowlist that follows governance: who may send transactions, from the Consortium's members.

Admitted members are on it while ACTIVE or SUSPENDED: a suspended member keeps duties it must be able
to carry out (a custodian tombstones its records when retention ends or a subject asks for erasure,
and relays revocations), and the contracts refuse everything else it tries. REVOKED members are
removed, and so are signers a member rotated away from (the contract revokes the old key). The
deployer stays unless told otherwise (it deploys upgrades); subjects never send transactions
themselves: gateways relay their signatures.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from consentledger.errors import NetworkConfigError
from consentledger.network.besu.configs import permissions_config
from consentledger.types import Address, Member, MemberStatus

ALLOWED_STATUSES = frozenset({MemberStatus.ACTIVE, MemberStatus.SUSPENDED})


@dataclass(frozen=True)
class AllowlistChange:
    """The accounts allowlist governance asks for, and what to add to and remove from the current one."""

    accounts: tuple[Address, ...]
    add: tuple[Address, ...]
    remove: tuple[Address, ...]


@dataclass(frozen=True)
class PermissionsFile:
    """The two lists of a `permissions_config.toml`."""

    nodes: tuple[str, ...]
    accounts: tuple[Address, ...]


def governed_accounts(
    members: Iterable[Member], *, deployer: str | None = None, keep: Sequence[str] = ()
) -> tuple[Address, ...]:
    """Return the accounts that may send: the deployer, every ACTIVE or SUSPENDED member, then `keep`."""
    wanted: dict[str, None] = {}
    for address in ([deployer] if deployer else []):
        wanted.setdefault(to_checksum_address(address), None)
    for member in members:
        if member.status in ALLOWED_STATUSES:
            wanted.setdefault(to_checksum_address(member.address), None)
    for address in keep:
        if not is_address(address):
            raise NetworkConfigError(f"--keep {address!r} is not an address")
        wanted.setdefault(to_checksum_address(address), None)
    return tuple(Address(a) for a in wanted)


def allowlist_change(wanted: Sequence[Address], current: Sequence[Address] = ()) -> AllowlistChange:
    """Return `wanted` with what to add to `current` and what to remove from it (each in list order)."""
    have = set(current)
    want = set(wanted)
    return AllowlistChange(
        accounts=tuple(wanted),
        add=tuple(a for a in wanted if a not in have),
        remove=tuple(a for a in current if a not in want),
    )


def read_permissions(path: Path) -> PermissionsFile:
    """Read a `permissions_config.toml`; raise NetworkConfigError naming the file and the problem."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise NetworkConfigError(f"{path}: missing") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NetworkConfigError(f"{path}: not valid TOML: {exc}") from None
    nodes = _strings(path, data, "nodes-allowlist")
    accounts = _strings(path, data, "accounts-allowlist")
    bad = [a for a in accounts if not is_address(a)]
    if bad:
        raise NetworkConfigError(f"{path}: accounts-allowlist holds non-addresses: {', '.join(bad)}")
    return PermissionsFile(tuple(nodes), tuple(Address(to_checksum_address(a)) for a in accounts))


def permissions_toml(change: AllowlistChange, nodes: Sequence[str]) -> str:
    """Return a `permissions_config.toml` with `nodes` kept and the accounts governance asks for."""
    return permissions_config(nodes=nodes, accounts=change.accounts)


def rpc_requests(change: AllowlistChange) -> list[dict[str, Any]]:
    """Return the JSON-RPC requests that turn a node's current allowlist into the wanted one (none if equal)."""
    requests: list[dict[str, Any]] = []
    for method, accounts in (
        ("perm_addAccountsToAllowlist", change.add), ("perm_removeAccountsFromAllowlist", change.remove)
    ):
        if accounts:
            requests.append({"jsonrpc": "2.0", "id": len(requests) + 1, "method": method, "params": [list(accounts)]})
    return requests


def _strings(path: Path, data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NetworkConfigError(f"{path}: {key} must be a list of strings")
    return value
