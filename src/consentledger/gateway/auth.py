"""Who is calling: signed-request verification, replay refusal and on-chain role checks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from consentledger.errors import AuthorizationError, PayloadTooLargeError, ReplayError
from consentledger.gateway.runtime import Gateway
from consentledger.signing import CLOCK_WINDOW_SECONDS, RequestSignature, verify_request
from consentledger.types import Member, MemberStatus, Role


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who signed it and the exact body they signed."""

    address: str
    body: bytes

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
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    now = int(time.time())
    signer = verify_request(
        signature, chain_id=gw.chain_id, audience=gw.org, method=request.method, path=path, body=body, now=now
    )
    expires = datetime.fromtimestamp(now + 2 * CLOCK_WINDOW_SECONDS + 1, UTC)
    fresh = await run_in_threadpool(gw.store.remember_nonce, signer, "0x" + signature.nonce.hex(), expires)
    if not fresh:
        raise ReplayError("this request was already received (nonce reused)")
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


def own_org(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """Dependency: the caller must be this gateway's own organisation, ACTIVE, holding `role`."""

    async def dependency(request: Request) -> Caller:
        caller = await authenticate(request)
        gw = gateway_of(request)
        if caller.address != gw.org:
            raise AuthorizationError("only this gateway's own organisation may use this endpoint")
        await run_in_threadpool(active_member, gw, caller, role)
        return caller

    return dependency


def member_with(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """Dependency: the caller must be any ACTIVE member holding `role`."""

    async def dependency(request: Request) -> Caller:
        caller = await authenticate(request)
        await run_in_threadpool(active_member, gateway_of(request), caller, role)
        return caller

    return dependency
