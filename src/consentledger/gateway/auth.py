"""Who is calling: signed-request verification, replay refusal, the agency's clients and on-chain role checks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from consentledger.actors import ClientRole
from consentledger.errors import AuthorizationError, PayloadTooLargeError, ReplayError
from consentledger.gateway.delegation import HEADER_ON_BEHALF_OF, delegated_subject
from consentledger.gateway.runtime import Gateway
from consentledger.signing import CLOCK_WINDOW_SECONDS, RequestSignature, verify_request
from consentledger.store.clients import Client
from consentledger.types import NO_ACTOR, ActorId, Member, MemberStatus, Role


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who signed it, the exact body they signed, and the agency client it is."""

    address: str
    body: bytes
    client: Client | None = None
    """The registered client of this agency that signed (None for a member, subject or the org key)."""
    delegate: str | None = None
    """The member gateway that signed for the subject `address` (`X-CL-On-Behalf-Of`), or None: the signer itself."""

    @property
    def actor(self) -> ActorId:
        """Return the pseudonym an access by this caller carries on chain (NO_ACTOR for the org key)."""
        return self.client.actor if self.client is not None else NO_ACTOR

    @property
    def body_sha256(self) -> str:
        """Return the hex SHA-256 of the body (the idempotency request hash)."""
        return hashlib.sha256(self.body).hexdigest()


def gateway_of(request: Request) -> Gateway:
    """Return the running gateway (FastAPI dependency)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


async def authenticate(request: Request) -> Caller:
    """Verify the request's signature, clock window and nonce; return the caller (FastAPI dependency)."""
    gw = gateway_of(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > gw.settings.max_body_bytes:
        raise PayloadTooLargeError(f"request body over {gw.settings.max_body_bytes} bytes")
    body = await request.body()  # at most max_body_bytes: BodyLimit cuts a longer body while it streams in
    if len(body) > gw.settings.max_body_bytes:
        raise PayloadTooLargeError(f"request body over {gw.settings.max_body_bytes} bytes")
    signature = RequestSignature.from_headers(request.headers)
    # The signature covers the request target as sent: its raw path (percent-escapes kept) and query.
    raw_path = request.scope.get("raw_path")
    sent_path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) and raw_path else request.url.path
    path = sent_path + (f"?{request.url.query}" if request.url.query else "")
    now = int(time.time())
    signer = verify_request(
        signature, chain_id=gw.chain_id, audience=gw.org, method=request.method, path=path, body=body, now=now
    )
    expires = datetime.fromtimestamp(now + 2 * CLOCK_WINDOW_SECONDS + 1, UTC)
    fresh = await run_in_threadpool(gw.store.remember_nonce, signer, "0x" + signature.nonce.hex(), expires)
    if not fresh:
        raise ReplayError("this request was already received (nonce reused)")
    on_behalf = request.headers.get(HEADER_ON_BEHALF_OF)
    if on_behalf is not None:
        subject = await run_in_threadpool(delegated_subject, on_behalf, path=request.url.path, signer=signer,
                                          members=gw.members, chain_id=gw.chain_id, now=now)
        return Caller(subject, body, delegate=signer)
    return Caller(signer, body)


def active_member(gw: Gateway, caller: Caller, role: Role) -> Member:
    """Return the caller's member record if it is ACTIVE with `role`; AuthorizationError otherwise."""
    member = gw.members.get(caller.address)
    if member.status is not MemberStatus.ACTIVE:
        state = "not a member" if member.status is MemberStatus.NONE else member.status.name.lower()
        raise AuthorizationError(f"{caller.address} may not act: {state}")
    if role not in member.roles:
        raise AuthorizationError(f"{caller.address} lacks the {role.label()} role")
    return member


def agency_client(role: ClientRole) -> Callable[[Request], Awaitable[Caller]]:
    """Dependency: a registered, unrevoked client of this agency holding `role`, the agency ACTIVE on chain.

    The agency must hold the member role the client role needs (CUSTODIAN to collect, REQUESTER to
    request). The organisation's own signer key is accepted only where `allow_org_key_requests` is set:
    that key signs the agency's chain transactions and stays inside the gateway.
    """

    async def dependency(request: Request) -> Caller:
        caller = await authenticate(request)
        gw = gateway_of(request)
        if caller.address == gw.org:
            if not gw.settings.allow_org_key_requests:
                raise AuthorizationError("the organisation's signer key is not a client key: sign with a client key "
                                         "registered by `consentledger agency client add`")
        else:
            client = await run_in_threadpool(gw.clients.get, caller.address)
            if client is None or not client.active:
                state = "was revoked" if client is not None else "is not a registered client of this agency"
                raise AuthorizationError(f"{caller.address} {state}")
            if not client.holds(role):
                raise AuthorizationError(f"client {client.name!r} holds the {client.role.value} role, "
                                         f"not {role.value}")
            caller = replace(caller, client=client)
        if role.member_role is not None:
            await run_in_threadpool(active_member, gw, Caller(gw.org, b""), role.member_role)
        return caller

    return dependency


def member_with(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """Dependency: the caller must be any ACTIVE member holding `role`."""

    async def dependency(request: Request) -> Caller:
        caller = await authenticate(request)
        await run_in_threadpool(active_member, gateway_of(request), caller, role)
        return caller

    return dependency
