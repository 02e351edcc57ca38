"""Collecting records and reading their metadata (the custodian's own organisation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse

from consentledger.actors import ClientRole
from consentledger.errors import NotFoundError
from consentledger.gateway.auth import Caller, agency_client, gateway_of
from consentledger.gateway.flows import ingest
from consentledger.gateway.flows.tombstones import destroyed
from consentledger.gateway.openapi import response_schema, signed_body
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import RecordIn, RecordOut, parse
from consentledger.store import RecordState, StoredRecord

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
RecordPath = Annotated[str, Path(max_length=66, description="0x-prefixed 32-byte record id")]


def _record_view(record: StoredRecord) -> dict[str, Any]:
    return {
        "record": record.record_id,
        "state": record.state.value,
        "commitment": "0x" + record.commitment.hex(),
        "category": record.category,
        "subject": record.subject,
        "derived_from": list(record.derived_from),
    }

@router.post("/records", status_code=201, summary="Collect a record (custodian's own org)",
             openapi_extra=signed_body(RecordIn), response_model=RecordOut,
             responses={202: response_schema(RecordOut, "Stored; its chain registration is still queued")})
def put_record(
    gw: GatewayDep,
    caller: Annotated[Caller, Depends(agency_client(ClientRole.COLLECT))],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Check the positive list, encrypt, store and register on chain; 202 while the chain write is queued."""
    body = parse(RecordIn, caller.body)
    stored = ingest.ingest(
        gw, subject=body.subject, category_id=body.category, payload=body.payload,
        derived_from=body.derived_from, idempotency_key=idempotency_key, request_hash=caller.body_sha256,
        aggregate=body.aggregate,
    )
    status = 201 if stored.state is RecordState.REGISTERED else 202
    return JSONResponse(_record_view(stored), status_code=status)

@router.get("/records/{record_id}", summary="A record's metadata (custodian's own org)", response_model=RecordOut)
def get_record(
    record_id: RecordPath, gw: GatewayDep, caller: Annotated[Caller, Depends(agency_client(ClientRole.COLLECT))]
) -> dict[str, Any]:
    """Return the stored record's metadata (never its content); 410 naming why if it was destroyed."""
    stored = gw.store.get_record(record_id.lower())
    if stored is None:
        raise NotFoundError(f"record {record_id} is not held here")
    if stored.state is RecordState.SHREDDED:
        raise destroyed(gw.store, stored.record_id)
    return _record_view(stored)
