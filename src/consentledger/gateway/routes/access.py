"""An access: the requester's own organisation asks, the custodian releases for an entry on chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from consentledger.actors import ClientRole
from consentledger.errors import ConsentLedgerError, NotFoundError, PayloadTooLargeError
from consentledger.gateway.auth import Caller, agency_client, gateway_of, member_with
from consentledger.gateway.flows import access, release
from consentledger.gateway.flows.key_request import KeyRequest
from consentledger.gateway.refusals import item_refusal
from consentledger.gateway.routes.consents import consent_terms
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import AccessIn, KeyBatchIn, KeyRequestIn, parse
from consentledger.types import Role

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]


@router.post("/access", summary="Access a record for a purpose (requester's own org)")
def request_access(
    gw: GatewayDep, caller: Annotated[Caller, Depends(agency_client(ClientRole.REQUEST))]
) -> JSONResponse:
    """Record the access on chain, fetch the disclosure from the custodian, verify and decrypt it."""
    body = parse(AccessIn, caller.body)
    consents = [consent_terms(c) for c in body.consents]
    answer = access.request_access(gw, bytes.fromhex(body.record[2:]), body.purpose, consents, body.withhold,
                                   actor=caller.actor)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})

@router.post("/keys/batch", summary="Release the keys of many accesses on chain of one requester (requester org)")
def release_keys(gw: GatewayDep, caller: Annotated[Caller, Depends(member_with(Role.REQUESTER))]) -> JSONResponse:
    """Return `{"items": [...]}`: per item in order, its release as POST /v1/keys/{record}/{seq} answers it, or that
    request's refusal `{"error", "detail", ..., "status"}`. Every release is logged before the answer leaves."""
    body = parse(KeyBatchIn, caller.body)
    if len(body.items) > gw.settings.max_batch_items:
        raise PayloadTooLargeError(f"a batch of {len(body.items)} items is over the {gw.settings.max_batch_items} "
                                   "allowed (max_batch_items): split it")
    requests = [
        KeyRequest(bytes.fromhex(item.record[2:]), item.seq, item.block, item.withhold,
                   tuple(consent_terms(c) for c in item.consents))
        for item in body.items
    ]
    answers = release.release_keys(gw, caller.address, requests)
    items = [item_refusal(a) if isinstance(a, ConsentLedgerError) else a for a in answers]
    return JSONResponse({"items": items}, headers={"Cache-Control": "no-store"})


@router.post("/keys/{record_id}/{seq}", summary="Release a record key for an access on chain (requester org)")
def release_key(
    record_id: Annotated[str, Path(max_length=66, description="0x-prefixed 32-byte record id")],
    seq: Annotated[int, Path(ge=1, lt=2**24, description="The access's seq (AccessRecorded.seq, a uint24)")],
    gw: GatewayDep,
    caller: Annotated[Caller, Depends(member_with(Role.REQUESTER))],
) -> JSONResponse:
    """Return the record's disclosure for this access, sealed under a one-time key wrapped for the requester."""
    body = parse(KeyRequestIn, caller.body)
    try:
        record = bytes.fromhex(record_id.removeprefix("0x"))
    except ValueError:
        raise NotFoundError(f"record {record_id} is not held here") from None
    if len(record) != 32:
        raise NotFoundError(f"record {record_id} is not held here")
    consents = [consent_terms(c) for c in body.consents]
    answer = release.release_key(gw, caller.address, record, seq, body.block, body.withhold, consents)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})
