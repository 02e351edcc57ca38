"""Calling the other member gateways for a data subject: signed by this org, carrying the subject's delegation.

The portal asks every ACTIVE member's gateway (its URL as the Consortium holds it) at once, with
a short timeout (`portal_peer_timeout`). A peer that cannot be reached, or answers with an error,
is reported as unreachable with the reason, never silently left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from consentledger.errors import GatewayError, GatewayUnavailableError, NotFoundError, PeerRefusedError
from consentledger.gateway.delegation import Delegation
from consentledger.gateway.runtime import Gateway
from consentledger.types import MemberStatus

T = TypeVar("T")


@dataclass(frozen=True)
class Peer:
    """Another member's gateway: the organisation, its name and its URL."""

    org: str
    name: str
    url: str

    def named(self) -> dict[str, str]:
        """Return `{org, name}` as the portal shows an organisation."""
        return {"org": self.org, "name": self.name}


@dataclass(frozen=True)
class Unreachable:
    """A peer that did not answer as asked, and why."""

    peer: Peer
    error: str

    def to_json(self) -> dict[str, str]:
        """Return `{org, name, error}`."""
        return {**self.peer.named(), "error": self.error}


def peers(gw: Gateway) -> list[Peer]:
    """Return every ACTIVE member other than this gateway's organisation, in admission order."""
    return [Peer(m.address, m.name, m.gateway_url) for m in gw.ledger.members()
            if m.status is MemberStatus.ACTIVE and m.address.lower() != gw.org.lower()]


def peer(gw: Gateway, org: str) -> Peer:
    """Return the ACTIVE member `org`'s gateway; NotFoundError if it is none."""
    member = gw.members.get(org)
    if member.status is not MemberStatus.ACTIVE:
        raise NotFoundError(f"{org} is not an active member gateway")
    return Peer(member.address, member.name, member.gateway_url)


def call(gw: Gateway, to: Peer, method: str, path: str, body: dict[str, Any] | None,
         delegation: Delegation) -> dict[str, Any]:
    """Send one request to `to`'s gateway for the delegating subject; return its JSON answer.

    GatewayUnavailableError if it cannot be reached in time; PeerRefusedError with the peer's status,
    code and detail if it refuses (so the portal says what that gateway said); GatewayError for a non-JSON answer.
    """
    if not to.url:
        raise GatewayUnavailableError("(none)", f"{to.name} registered no gateway URL")
    raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    headers = {**gw.signed_headers(audience=to.org, method=method, path=path, body=raw), **delegation.header()}
    url = to.url.rstrip("/") + path
    try:
        response = gw.peers.request(method, url, content=raw, headers=headers, timeout=gw.settings.portal_peer_timeout)
    except httpx.HTTPError as exc:
        raise GatewayUnavailableError(to.url, str(exc) or type(exc).__name__) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise GatewayError(response.status_code, "gateway_error", f"{to.name} answered {response.text[:200]!r}")
    if response.status_code >= 400:
        raise PeerRefusedError(to.name, response.status_code, str(answer.get("error", "gateway_error")),
                               str(answer.get("detail", "")), answer.get("rule"))
    return answer


def ask_all(
    gw: Gateway, asked: Sequence[Peer], ask: Callable[[Peer], T]
) -> tuple[list[tuple[Peer, T]], list[Unreachable]]:
    """Run `ask` for every peer in parallel; return the answers and the peers that failed, each in `asked` order."""
    if not asked:
        return [], []

    def one(to: Peer) -> tuple[Peer, T | None, str | None]:
        try:
            return to, ask(to), None
        except (GatewayError, GatewayUnavailableError) as exc:
            return to, None, str(exc)

    with ThreadPoolExecutor(min(len(asked), 16), thread_name_prefix="portal-peer") as pool:
        results = list(pool.map(one, asked))
    answered = [(to, answer) for to, answer, error in results if error is None and answer is not None]
    failed = [Unreachable(to, error) for to, _, error in results if error is not None]
    return answered, failed
