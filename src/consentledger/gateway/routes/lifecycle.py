"""The end of a record's life over HTTP: a data subject's consents and erasure, the custodian's sweep."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from consentledger.consent import Consent
from consentledger.errors import AuthorizationError
from consentledger.gateway.auth import Caller, authenticate, gateway_of
from consentledger.gateway.flows import erasure
from consentledger.gateway.flows.sweep import sweep_now
from consentledger.gateway.flows.tombstones import ON_CHAIN
from consentledger.gateway.openapi import signed_body
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import ErasureIn, SweepIn, parse

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
Signed = Annotated[Caller, Depends(authenticate)]


async def own_org_any_standing(request: Request) -> Caller:
    """Dependency: the caller is this gateway's own organisation, whatever its standing.

    The duty to destroy outlives a suspension (the contract lets a suspended custodian tombstone too).
    """
    caller = await authenticate(request)
    if caller.address != gateway_of(request).org:
        raise AuthorizationError("only this gateway's own organisation may use this endpoint")
    return caller


@router.get("/subjects/me/consents", summary="The signing data subject's live consents (to revoke on erasure)")
def my_consents(gw: GatewayDep, caller: Signed) -> dict[str, Any]:
    """Return `{subject, block, block_time, consents}`: each consent granted, not revoked, not expired.

    Each item carries the consent's id and terms: sign `Revocation(bytes32 consent)` over the id and
    send terms and signature in the erasure request.
    """
    return erasure.my_consents(gw, caller.address)


@router.post("/subjects/me/erasure", summary="Erase the signing data subject's records here; revoke their consents",
             openapi_extra=signed_body(ErasureIn),
             responses={202: {"description": "Erased here; some tombstones or revocations still queued"}})
def erase(gw: GatewayDep, caller: Signed) -> JSONResponse:
    """Shred and tombstone (ERASURE) the signer's records held here and relay their signed revocations.

    422 `consents_not_revoked` (with `missing`) unless every live consent is revoked in the body;
    200 when every tombstone and revocation is on chain, 202 while some are still queued.
    """
    body = parse(ErasureIn, caller.body)
    signed = [(Consent.from_json(r.consent.model_dump()), bytes.fromhex(r.signature[2:])) for r in body.revocations]
    answer = erasure.erase(gw, caller.address, signed)
    settled = all(r["tombstone"] == ON_CHAIN for r in answer["records"]) and all(
        c["revocation"] == ON_CHAIN for c in answer["consents"]
    )
    return JSONResponse(answer, status_code=200 if settled else 202)


@router.post("/sweep", summary="Shred and tombstone every record past retention or sunset now (own organisation)",
             openapi_extra=signed_body(SweepIn))
def sweep(gw: GatewayDep, caller: Annotated[Caller, Depends(own_org_any_standing)]) -> dict[str, Any]:
    """Run the sweeper now (it also runs every `sweep_interval` seconds) and return its report.

    `{swept: false}` when another replica holds the sweeper's lock; `queued` counts this
    organisation's chain writes still waiting for the relay.
    """
    body = parse(SweepIn, caller.body)
    report = sweep_now(gw, body.batch)
    counts = gw.store.count_by_status()
    queued = counts["pending"] + counts["sent"]
    if report is None:
        return {"swept": False, "queued": queued}
    return {"swept": True, **report.to_json(), "queued": queued}
