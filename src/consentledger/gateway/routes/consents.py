"""Relaying a data subject's signed consents and revocations to the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from consentledger.consent import Consent
from consentledger.gateway.auth import Caller, authenticate, gateway_of
from consentledger.gateway.flows import consents
from consentledger.gateway.openapi import signed_body
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import ConsentTerms, SignedConsentIn, parse

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]


def consent_terms(terms: ConsentTerms) -> Consent:
    return Consent.from_json(terms.model_dump())

@router.post("/consents", status_code=201, summary="Relay a subject-signed EIP-712 consent",
             openapi_extra=signed_body(SignedConsentIn),
             responses={200: {"description": "Already on chain: its state (`granted` or `revoked`, `uses`)"}})
def grant_consent(gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]) -> JSONResponse:
    """Relay `grantConsent`: signed by the subject or an active member, for an ACTIVE REQUESTER grantee.

    201 granted now; 200 with its state (`granted` / `revoked`, `already_on_chain`, `uses`) if it is
    on chain already; 422 `invalid_signature` for a signature the contract would refuse.
    """
    body = parse(SignedConsentIn, caller.body)
    relayed = consents.relay_grant(gw, caller.address, consent_terms(body.consent), bytes.fromhex(body.signature[2:]))
    return JSONResponse(relayed.body, status_code=relayed.status_code)

@router.post("/consents/revoke", summary="Relay a subject-signed revocation",
             openapi_extra=signed_body(SignedConsentIn))
def revoke_consent(gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]) -> JSONResponse:
    """Relay `revokeConsentBySignature` (the subject's EIP-712 Revocation signature); 200 with its state."""
    body = parse(SignedConsentIn, caller.body)
    relayed = consents.relay_revocation(gw, caller.address, consent_terms(body.consent),
                                        bytes.fromhex(body.signature[2:]))
    return JSONResponse(relayed.body, status_code=relayed.status_code)
