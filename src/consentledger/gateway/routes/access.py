"""An access: the requester's own organisation asks, the custodian releases for an entry on chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse

from consentledger.actors import ClientRole
from consentledger.errors import AuthorizationError, ConsentLedgerError, NotFoundError, PayloadTooLargeError
from consentledger.gateway.auth import Caller, agency_client, gateway_of, member_with
from consentledger.gateway.flows import access, access_batch, release, resume
from consentledger.gateway.flows.access_batch import AccessAsk
from consentledger.gateway.flows.key_request import KeyRequest
from consentledger.gateway.openapi import response_schema, signed_body
from consentledger.gateway.refusals import item_refusal
from consentledger.gateway.responses import AccessBatchOut, AccessOut
from consentledger.gateway.routes.consents import consent_terms
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import AccessBatchIn, AccessIn, AccessResumeIn, KeyBatchIn, KeyRequestIn, parse
from consentledger.store.access_keys import Idempotency
from consentledger.types import Role

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]


@router.post("/access", summary="Access a record for a purpose (requester's own org)",
             openapi_extra=signed_body(AccessIn),
             responses={200: response_schema(AccessOut, "The record as released for this access")})
def request_access(
    gw: GatewayDep, caller: Annotated[Caller, Depends(agency_client(ClientRole.REQUEST))],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> JSONResponse:
    """Record the access on chain, fetch the disclosure from the custodian, verify and decrypt it.

    Under `consents`, a statutory `mandate`, or an emergency `override` (its justification kept by
    this agency for the consortium's auditors; the client needs the emergency role beside request).
    With an Idempotency-Key, a retry (after a timeout or a crash) answers the access the first
    request recorded, for the same (record, seq), and never records a second one.
    """
    body = parse(AccessIn, caller.body)
    if body.override is not None and caller.client is not None and not caller.client.holds(ClientRole.EMERGENCY):
        raise AuthorizationError(f"client {caller.client.name!r} does not hold the emergency role: an override needs "
                                 "it beside request (consentledger agency client add --role request --role emergency)")
    consents = [consent_terms(c) for c in body.consents]
    keyed = None if idempotency_key is None else Idempotency(caller.address, idempotency_key, caller.body_sha256)
    answer = access.request_access(
        gw, bytes.fromhex(body.record[2:]), body.purpose, consents, body.withhold, actor=caller.actor,
        idempotency=keyed, mandate=body.mandate,
        justification=None if body.override is None else body.override.justification,
    )
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


@router.post("/access/batch", summary="Access many records at once (requester's own org)",
             openapi_extra=signed_body(AccessBatchIn),
             responses={200: response_schema(AccessBatchOut, "One answer per item, in order: released or refused")})
def request_access_batch(
    gw: GatewayDep, caller: Annotated[Caller, Depends(agency_client(ClientRole.REQUEST))],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> JSONResponse:
    """Record every access on chain (one batch transaction, each item enforced on its own), then disclose each.

    Answers `{"items": [...]}` in order: each item is what `POST /v1/access` would answer, with its
    HTTP `status` (a refused item carries `error`, `detail` and, for a contract rule, `rule`).
    """
    body = parse(AccessBatchIn, caller.body)
    if len(body.items) > gw.settings.max_batch_items:
        raise PayloadTooLargeError(f"a batch of {len(body.items)} accesses is over the {gw.settings.max_batch_items} "
                                   "allowed (max_batch_items): split it")
    asks = [
        AccessAsk(bytes.fromhex(item.record[2:]), item.purpose, tuple(consent_terms(c) for c in item.consents),
                  item.withhold)
        for item in body.items
    ]
    keyed = None if idempotency_key is None else Idempotency(caller.address, idempotency_key, caller.body_sha256)
    answers = access_batch.request_access_batch(gw, asks, actor=caller.actor, idempotency=keyed)
    return JSONResponse({"items": answers}, headers={"Cache-Control": "no-store"})


@router.post("/access/resume", summary="Answer again an access on chain whose record did not arrive (requester org)",
             openapi_extra=signed_body(AccessResumeIn),
             responses={200: response_schema(AccessOut, "The record as released for this access")})
def resume_access(
    gw: GatewayDep, caller: Annotated[Caller, Depends(agency_client(ClientRole.REQUEST))],
) -> JSONResponse:
    """Fetch the disclosure of access (record, seq) again, as `POST /v1/access` answers it; nothing is recorded.

    For an access a 502 `custodian_unavailable` named: only the client the entry names (its actor,
    at this agency) may resume it, with the consents it presented; the custodian's release rules apply.
    """
    body = parse(AccessResumeIn, caller.body)
    consents = [consent_terms(c) for c in body.consents]
    answer = resume.resume_access(gw, bytes.fromhex(body.record[2:]), body.seq, consents, body.withhold,
                                  actor=caller.actor)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


@router.post("/keys/batch", summary="Release the keys of many accesses on chain of one requester (requester org)",
             openapi_extra=signed_body(KeyBatchIn))
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


@router.post("/keys/{record_id}/{seq}", summary="Release a record key for an access on chain (requester org)",
             openapi_extra=signed_body(KeyRequestIn))
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
