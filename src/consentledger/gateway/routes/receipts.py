"""Offline receipts of accesses, for the data subject, the requester, the custodian and auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from consentledger.errors import NotFoundError
from consentledger.gateway.auth import Caller, authenticate, gateway_of
from consentledger.gateway.flows import receipts
from consentledger.gateway.openapi import response_schema
from consentledger.gateway.responses import ReceiptOut
from consentledger.gateway.runtime import Gateway

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]


@router.get("/receipts/{record_id}/{seq}", summary="The offline receipt of one access (its subject, requester, "
            "custodian, auditors)", response_model=None,
            responses={200: response_schema(ReceiptOut, "The receipt; `consentledger receipt verify` checks it")})
def access_receipt(
    record_id: Annotated[str, Path(pattern=r"^(0x)?[0-9a-fA-F]{64}$", description="0x-prefixed 32-byte record id")],
    seq: Annotated[int, Path(ge=1, lt=2**24, description="The access's seq (AccessRecorded.seq, a uint24)")],
    gw: GatewayDep,
    caller: Annotated[Caller, Depends(authenticate)],
) -> JSONResponse:
    """Return the receipt of access `seq` to the record: its entries, block header and Merkle-Patricia proofs.

    It verifies with no node, against a trusted block hash or state root (or, on QBFT, the validators).
    404 for an access that does not exist and for one the caller is no party to alike.
    """
    try:
        record = bytes.fromhex(record_id.removeprefix("0x"))
    except ValueError:
        raise NotFoundError(f"record {record_id} is unknown") from None
    return JSONResponse(receipts.access_receipt(gw, caller, record, seq), headers={"Cache-Control": "no-store"})
