"""A data subject attesting records held about them (what K of an anonymous aggregate counts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from consentledger.errors import PayloadValidationError
from consentledger.gateway.auth import Caller, authenticate, gateway_of
from consentledger.gateway.flows import attestation
from consentledger.gateway.openapi import signed_body
from consentledger.gateway.routes.records import RecordPath
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import AttestationIn, parse

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
Signed = Annotated[Caller, Depends(authenticate)]


def _record_id(text: str) -> bytes:
    raw = text.lower().removeprefix("0x")
    if len(raw) != 64 or any(c not in "0123456789abcdef" for c in raw):
        raise PayloadValidationError(f"a record id is 0x and 64 hex digits, got {text!r}")
    return bytes.fromhex(raw)


@router.get("/subjects/me/records", summary="The signing data subject's records held here, to attest")
def my_records(gw: GatewayDep, caller: Signed) -> dict[str, Any]:
    """Return `{subject, records}`: each live record collected about the signer, attested or not, with its terms."""
    return attestation.my_records(gw, caller.address)


@router.get("/records/{record_id}/attestation", summary="What a record's subject signs to attest it")
def attestation_terms(record_id: RecordPath, gw: GatewayDep, caller: Signed) -> dict[str, Any]:
    """Return `{record, subject, attested, terms}`: the subject signs EIP-712 `RecordAttestation` over `terms`.

    The domain is the ledger's (`/v1/chain/domain`); 404 while the record is not registered on chain.
    """
    return attestation.terms(gw, _record_id(record_id))


@router.post("/records/{record_id}/attestation", summary="Relay a subject's signed record attestation",
             openapi_extra=signed_body(AttestationIn))
def attest(record_id: RecordPath, gw: GatewayDep, caller: Signed) -> dict[str, Any]:
    """Relay `attestRecord` and return the record's attestation view with `tx` and `block` (null if already attested).

    The request is signed by the record's subject or an active member; 422 `invalid_attestation`
    unless the signature is the subject's over the record's on-chain terms (low-s, as the contract checks).
    """
    body = parse(AttestationIn, caller.body)
    return attestation.attest(gw, caller.address, _record_id(record_id), bytes.fromhex(body.signature[2:]))
