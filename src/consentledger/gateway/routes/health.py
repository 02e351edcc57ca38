"""Unsigned endpoints: liveness, readiness, the ledger's EIP-712 domain and the positive list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from consentledger.errors import ChainUnavailableError
from consentledger.gateway.auth import gateway_of
from consentledger.gateway.flows.catalog import current_catalog
from consentledger.gateway.openapi import response_schema
from consentledger.gateway.responses import CatalogOut, HealthOut, ReadyOut
from consentledger.gateway.runtime import Gateway

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]


@router.get("/health", summary="Liveness, this gateway's organisation and chain, its signer's funding (unsigned)",
            response_model=None, responses={200: response_schema(HealthOut, "Alive; the signer's funding")})
def health(gw: GatewayDep) -> dict[str, Any]:
    """Return status, org address and name, chain id, the latest block and whether the signer can pay for a write.

    503 if the chain is unreachable. A signer that cannot pay still answers 200 here (the gateway is
    alive, and reads and key releases work); `/v1/ready` refuses then.
    """
    try:
        block = gw.ledger.w3.eth.block_number
    except OSError as exc:  # requests' connection errors and timeouts; anything else stays a 500
        raise ChainUnavailableError(f"chain unreachable: {exc}") from None
    return {"status": "ok", "org": gw.org, "name": gw.settings.name, "chain_id": gw.chain_id, "block": block,
            "funding": gw.sender.funds.funding().as_json()}


@router.get("/ready", summary="Whether this gateway can take chain writes now (unsigned)",
            response_model=None, responses={200: response_schema(ReadyOut, "Ready for chain writes")})
def ready(gw: GatewayDep) -> dict[str, Any]:
    """Return the signer's funding when it can pay for a write; 503 `insufficient_funds` naming the command to fund
    it otherwise, 503 `chain_unavailable` without a chain."""
    gw.sender.funds.require()
    return {"status": "ready", "org": gw.org, "funding": gw.sender.funds.funding().as_json()}

@router.get("/chain/domain", summary="The ledger's EIP-712 domain for signing consents (unsigned)")
def domain(gw: GatewayDep) -> dict[str, Any]:
    """Return the EIP-712 domain read from `eip712Domain()`."""
    return gw.ledger.domain().as_dict()


@router.get("/catalog", summary="The positive list: categories and purposes, as of the latest block (unsigned)",
            response_model=CatalogOut)
def catalog(gw: GatewayDep) -> dict[str, Any]:
    """Return every category (fields, identifying fields, sensitivity, retention, allowed purposes) and purpose
    (sunset, whether still in use) as the chain has them at the latest block.

    Public, like the chain it is read from: a data subject checks a consent's terms here before signing.
    """
    return current_catalog(gw).to_json()
