"""The agency's clients and who its actors are: for its audit liaison and for the consortium's auditors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from consentledger.actors import ClientRole
from consentledger.gateway.auth import Caller, active_member, agency_client, authenticate, gateway_of
from consentledger.gateway.flows.actors import disclose_actor
from consentledger.gateway.runtime import Gateway
from consentledger.types import Role

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
Liaison = Annotated[Caller, Depends(agency_client(ClientRole.AUDIT_LIAISON))]
ACTOR_PATTERN = r"^0x[0-9a-fA-F]{64}$"


async def auditor_or_liaison(request: Request) -> Caller:
    """Dependency: an ACTIVE AUDITOR member of the consortium, or this agency's audit-liaison client."""
    caller = await authenticate(request)
    gw = gateway_of(request)
    client = await run_in_threadpool(gw.clients.get, caller.address)
    if client is not None and client.active and client.role is ClientRole.AUDIT_LIAISON:
        return caller
    await run_in_threadpool(active_member, gw, caller, Role.AUDITOR)
    return caller


@router.get("/clients", summary="This agency's registered clients and their actor pseudonyms (audit liaison)")
def list_clients(gw: GatewayDep, caller: Liaison) -> dict[str, Any]:
    """Return every client (name, role, actor, added, revoked), without the salts."""
    return {"org": gw.org, "clients": [c.to_json() for c in gw.clients.all()]}


@router.get("/actors/{actor}", summary="Who an actor is, in a statement signed by this organisation (auditors)")
def who_is(
    actor: Annotated[str, Path(pattern=ACTOR_PATTERN, description="The actor pseudonym of an access entry")],
    gw: GatewayDep,
    caller: Annotated[Caller, Depends(auditor_or_liaison)],
) -> dict[str, Any]:
    """Return `{statement, signature, revoked_at}`; check it with `consentledger audit check-actor`."""
    return disclose_actor(gw, bytes.fromhex(actor[2:]))
