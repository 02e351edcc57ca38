"""Relaying a data subject's signed consents and revocations to the chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from consentledger.consent import Consent, consent_id
from consentledger.errors import AuthorizationError
from consentledger.gateway.auth import Caller, authenticate, gateway_of
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import ConsentTerms, SignedConsentIn, parse
from consentledger.types import MemberStatus

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]


def consent_terms(terms: ConsentTerms) -> Consent:
    return Consent.from_json(terms.model_dump())

@router.post("/consents", status_code=201, summary="Relay a subject-signed EIP-712 consent")
def grant_consent(gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]) -> dict[str, Any]:
    """Relay `grantConsent`; the request must be signed by the consent's subject or an active member."""
    body = parse(SignedConsentIn, caller.body)
    consent = consent_terms(body.consent)
    _subject_or_member(gw, caller, consent.subject)
    consent_id = gw.ledger.grant_consent(gw.sender, consent, bytes.fromhex(body.signature[2:]))
    return {"consent": "0x" + consent_id.hex(), "status": "granted"}

@router.post("/consents/revoke", summary="Relay a subject-signed revocation")
def revoke_consent(gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]) -> dict[str, Any]:
    """Relay `revokeConsentBySignature` (the subject's EIP-712 Revocation signature)."""
    body = parse(SignedConsentIn, caller.body)
    consent = consent_terms(body.consent)
    _subject_or_member(gw, caller, consent.subject)
    gw.ledger.revoke_consent_by_signature(gw.sender, consent, bytes.fromhex(body.signature[2:]))
    return {"consent": "0x" + consent_id(consent, gw.ledger.domain()).hex(), "status": "revoked"}

def _subject_or_member(gw: Gateway, caller: Caller, subject: str) -> None:
    if caller.address.lower() == subject.lower():
        return
    member = gw.members.get(caller.address)
    if member.status is not MemberStatus.ACTIVE:
        raise AuthorizationError("a consent is relayed for its subject or by an active member")
