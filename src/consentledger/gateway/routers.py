"""The gateway's HTTP endpoints: parse, call one library function, render."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse

from consentledger.consent import Consent, consent_id
from consentledger.errors import AuthorizationError, ChainUnavailableError, NotFoundError
from consentledger.gateway import access, ingest, release
from consentledger.gateway.auth import Caller, authenticate, gateway_of, member_with, own_org
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import AccessIn, ConsentTerms, KeyRequestIn, RecordIn, SignedConsentIn, parse
from consentledger.gateway.tombstones import destroyed
from consentledger.store import RecordState, StoredRecord
from consentledger.types import MemberStatus, Role

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]


def _record_view(record: StoredRecord) -> dict[str, Any]:
    return {
        "record": record.record_id,
        "state": record.state.value,
        "commitment": "0x" + record.commitment.hex(),
        "category": record.category,
        "subject": record.subject,
        "derived_from": list(record.derived_from),
    }


def _consent(terms: ConsentTerms) -> Consent:
    return Consent.from_json(terms.model_dump())


@router.get("/health", summary="Liveness, this gateway's organisation and chain (unsigned)")
def health(gw: GatewayDep) -> dict[str, Any]:
    """Return status, org address and name, chain id and the latest block; 503 if the chain is unreachable."""
    try:
        block = gw.ledger.w3.eth.block_number
    except OSError as exc:  # requests' connection errors and timeouts; anything else stays a 500
        raise ChainUnavailableError(f"chain unreachable: {exc}") from None
    return {"status": "ok", "org": gw.org, "name": gw.settings.name, "chain_id": gw.chain_id, "block": block}


@router.get("/chain/domain", summary="The ledger's EIP-712 domain for signing consents (unsigned)")
def domain(gw: GatewayDep) -> dict[str, Any]:
    """Return the EIP-712 domain read from `eip712Domain()`."""
    return gw.ledger.domain().as_dict()


@router.post("/records", status_code=201, summary="Collect a record (custodian's own org)")
def put_record(
    gw: GatewayDep,
    caller: Annotated[Caller, Depends(own_org(Role.CUSTODIAN))],
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


@router.get("/records/{record_id}", summary="A record's metadata (custodian's own org)")
def get_record(
    record_id: str, gw: GatewayDep, caller: Annotated[Caller, Depends(own_org(Role.CUSTODIAN))]
) -> dict[str, Any]:
    """Return the stored record's metadata (never its content); 410 naming why if it was destroyed."""
    stored = gw.store.get_record(record_id.lower())
    if stored is None:
        raise NotFoundError(f"record {record_id} is not held here")
    if stored.state is RecordState.SHREDDED:
        raise destroyed(gw.store, stored.record_id)
    return _record_view(stored)


@router.post("/consents", status_code=201, summary="Relay a subject-signed EIP-712 consent")
def grant_consent(gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]) -> dict[str, Any]:
    """Relay `grantConsent`; the request must be signed by the consent's subject or an active member."""
    body = parse(SignedConsentIn, caller.body)
    consent = _consent(body.consent)
    _subject_or_member(gw, caller, consent.subject)
    consent_id = gw.ledger.grant_consent(gw.sender, consent, bytes.fromhex(body.signature[2:]))
    return {"consent": "0x" + consent_id.hex(), "status": "granted"}


@router.post("/consents/revoke", summary="Relay a subject-signed revocation")
def revoke_consent(gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]) -> dict[str, Any]:
    """Relay `revokeConsentBySignature` (the subject's EIP-712 Revocation signature)."""
    body = parse(SignedConsentIn, caller.body)
    consent = _consent(body.consent)
    _subject_or_member(gw, caller, consent.subject)
    gw.ledger.revoke_consent_by_signature(gw.sender, consent, bytes.fromhex(body.signature[2:]))
    return {"consent": "0x" + consent_id(consent, gw.ledger.domain()).hex(), "status": "revoked"}


@router.post("/access", summary="Access a record for a purpose (requester's own org)")
def request_access(
    gw: GatewayDep, caller: Annotated[Caller, Depends(own_org(Role.REQUESTER))]
) -> JSONResponse:
    """Record the access on chain, fetch the disclosure from the custodian, verify and decrypt it."""
    body = parse(AccessIn, caller.body)
    consents = [_consent(c) for c in body.consents]
    answer = access.request_access(gw, bytes.fromhex(body.record[2:]), body.purpose, consents, body.withhold)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


@router.post("/keys/{record_id}/{seq}", summary="Release a record key for an access on chain (requester org)")
def release_key(
    record_id: str,
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
    answer = release.release_key(gw, caller.address, record, seq, body.block, body.withhold)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


def _subject_or_member(gw: Gateway, caller: Caller, subject: str) -> None:
    if caller.address.lower() == subject.lower():
        return
    member = gw.members.get(caller.address)
    if member.status is not MemberStatus.ACTIVE:
        raise AuthorizationError("a consent is relayed for its subject or by an active member")

