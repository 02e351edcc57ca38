"""Telling an auditor who acted: the agency's signed statement naming the client behind an actor pseudonym."""

from __future__ import annotations

import time
from typing import Any

from consentledger.actors import ActorStatement
from consentledger.errors import NotFoundError
from consentledger.gateway.runtime import Gateway


def disclose_actor(gw: Gateway, actor: bytes, *, now: int | None = None) -> dict[str, Any]:
    """Return `{statement, signature}`: who `actor` is, signed with this organisation's key (EIP-712).

    NotFoundError if no client of this agency has that pseudonym. A revoked client is disclosed too:
    its past accesses stay on chain.
    """
    client = gw.clients.by_actor(actor)
    if client is None:
        raise NotFoundError(f"actor 0x{actor.hex()} is not a client of {gw.settings.name}")
    statement = ActorStatement(
        org=gw.org, actor=bytes(client.actor), client=client.address, name=client.name, role=client.role.value,
        salt=client.salt, issued_at=int(time.time()) if now is None else now,
    )
    signature = statement.sign(gw.sender.account.key, gw.chain_id)
    return {"statement": statement.to_json(), "signature": "0x" + signature.hex(),
            "revoked_at": client.revoked_at.isoformat(timespec="seconds") if client.revoked_at else None}
