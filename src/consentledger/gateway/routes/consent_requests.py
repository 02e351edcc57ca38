"""Consent requests over HTTP: the agency's requester clients file and poll, the data subject lists and answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from consentledger.actors import ClientRole
from consentledger.errors import NotFoundError
from consentledger.gateway.auth import Caller, agency_client, authenticate, gateway_of
from consentledger.gateway.flows import consent_requests as flow
from consentledger.gateway.openapi import signed_body
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import DenyRequestIn, parse

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
Signed = Annotated[Caller, Depends(authenticate)]
Requester = Annotated[Caller, Depends(agency_client(ClientRole.REQUEST))]


@router.post("/consent-requests", status_code=201, summary="Ask a data subject for a consent (a requester client)",
             openapi_extra=signed_body(flow.ConsentRequestIn))
def file_request(gw: GatewayDep, caller: Requester) -> JSONResponse:
    """Store a request to `subject` for the consent described, naming this agency as grantee; 201 with the request.

    The subject answers it at this gateway (`/v1/subjects/me/consent-requests`); poll
    `GET /v1/consent-requests/{id}` for the outcome. 422 for terms off the positive list.
    """
    body = parse(flow.ConsentRequestIn, caller.body)
    filed = flow.file_request(gw, caller.client.address if caller.client else None, body)
    return JSONResponse(filed, status_code=201)


@router.get("/consent-requests", summary="This agency's consent requests (a requester client)")
def agency_requests(gw: GatewayDep, caller: Requester, state: str | None = None) -> dict[str, Any]:
    """Return `{requests}` this agency filed, newest first, optionally only those in `state` now."""
    return flow.listed(gw, state=state)


@router.get("/consent-requests/{request_id}", summary="One consent request and its outcome (requester or subject)")
async def one_request(gw: GatewayDep, caller: Signed, request_id: str) -> dict[str, Any]:
    """Return the request in its state now, to its subject or to this agency's requester clients; 404 to others."""
    request = await run_in_threadpool(flow.find, gw, request_id)
    if caller.address.lower() != request.subject.lower():
        await _is_requester_client(gw, caller, request_id)
    return await run_in_threadpool(flow.view, gw, request)


@router.get("/subjects/me/consent-requests", summary="The signing data subject's consent requests")
def my_requests(gw: GatewayDep, caller: Signed, state: str | None = None) -> dict[str, Any]:
    """Return `{requests}` to the signer, newest first; `state=requested` lists those awaiting an answer."""
    return flow.listed(gw, subject=caller.address, state=state)


@router.post("/subjects/me/consent-requests/{request_id}/grant", summary="Grant a consent request, maybe narrowed",
             openapi_extra=signed_body(flow.GrantRequestIn))
def grant_request(gw: GatewayDep, caller: Signed, request_id: str) -> dict[str, Any]:
    """Relay the signer's consent for the request (narrowed as the body says) and return the request, granted.

    The signature is the subject's EIP-712 `Consent` over the request's terms with the narrowing and
    nonce applied. 422 for a term wider than asked or a bad signature, 409 answered, 410 expired,
    404 not this subject's request.
    """
    body = parse(flow.GrantRequestIn, caller.body)
    return flow.grant(gw, caller.address, request_id, flow.narrowing_of(body), bytes.fromhex(body.signature[2:]))


@router.post("/subjects/me/consent-requests/{request_id}/deny", summary="Deny a consent request",
             openapi_extra=signed_body(DenyRequestIn))
def deny_request(gw: GatewayDep, caller: Signed, request_id: str) -> dict[str, Any]:
    """Record the signer's refusal and return the request, denied; 409 answered, 410 expired, 404 not theirs."""
    parse(DenyRequestIn, caller.body)
    return flow.deny(gw, caller.address, request_id)


async def _is_requester_client(gw: Gateway, caller: Caller, request_id: str) -> None:
    """Return if the caller may read this agency's requests; NotFoundError (as for an unknown id) otherwise."""
    if caller.address == gw.org and gw.settings.allow_org_key_requests:
        return
    client = await run_in_threadpool(gw.clients.get, caller.address)
    if client is None or not client.active or client.role is not ClientRole.REQUEST:
        raise NotFoundError(f"no consent request {request_id} at this gateway")
