"""The audit endpoints every gateway serves: access and refusal listings and verification for auditors, histories
for subjects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from consentledger.gateway.auth import Caller, authenticate, gateway_of, member_with
from consentledger.gateway.flows import auditing, overrides
from consentledger.gateway.openapi import response_schema
from consentledger.gateway.responses import AccessPageOut, HistoryOut, JustificationOut, RefusalPageOut
from consentledger.gateway.runtime import Gateway
from consentledger.types import Role

router = APIRouter(prefix="/v1")
GatewayDep = Annotated[Gateway, Depends(gateway_of)]
Auditor = Annotated[Caller, Depends(member_with(Role.AUDITOR))]

MAX_PAGE = 1000
MAX_OFFSET = 10**9
"""The deepest page an access listing reaches (far beyond any index; a bigger number is a 422, not a database error)."""
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
RECORD_PATTERN = r"^(0x)?[0-9a-fA-F]{64}$"
PURPOSE_PATTERN = r"^([0-9]{1,3}|[A-Za-z][A-Za-z0-9_.-]{0,63})$"
UNIX_QUERY = Query(ge=0, lt=2**40, description="Unix seconds")


@router.get("/audit/accesses", summary="Accesses recorded on chain, filtered and paged (auditors)",
            response_model=None, responses={200: response_schema(AccessPageOut, "One page of accesses")})
def audit_accesses(
    gw: GatewayDep,
    caller: Auditor,
    subject: Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="Records of this data subject")] = None,
    record: Annotated[str | None, Query(pattern=RECORD_PATTERN)] = None,
    org: Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="Requester or custodian")] = None,
    purpose: Annotated[str | None, Query(pattern=PURPOSE_PATTERN, description="Purpose id or name")] = None,
    since: Annotated[int | None, UNIX_QUERY] = None,
    until: Annotated[int | None, UNIX_QUERY] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Return `{items, limit, offset, next_offset, block}`: matching accesses oldest first, as of `block`."""
    filters = auditing.AccessFilters(subject, record, org, purpose, since, until)
    return auditing.accesses_page(gw, filters, limit=limit, offset=offset)


@router.get("/audit/refusals", summary="Refused attempts recorded on chain, filtered and paged (auditors)",
            response_model=None, responses={200: response_schema(RefusalPageOut, "One page of refused attempts")})
def audit_refusals(
    gw: GatewayDep,
    caller: Auditor,
    subject: Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="Records of this data subject")] = None,
    record: Annotated[str | None, Query(pattern=RECORD_PATTERN)] = None,
    org: Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="Requester or custodian")] = None,
    purpose: Annotated[str | None, Query(pattern=PURPOSE_PATTERN, description="Purpose id or name")] = None,
    since: Annotated[int | None, UNIX_QUERY] = None,
    until: Annotated[int | None, UNIX_QUERY] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Return `{items, limit, offset, next_offset, block}`: attempts the ledger refused (AccessRefused), oldest
    first, as of `block`; each item names the rule (`rule`, `rule_args`) and says `why` in plain words."""
    filters = auditing.AccessFilters(subject, record, org, purpose, since, until)
    return auditing.refusals_page(gw, filters, limit=limit, offset=offset)


@router.get("/audit/overrides/{record}/{seq}", summary="An emergency override's justification (auditors)",
            response_model=None, responses={200: response_schema(JustificationOut, "The justification and its salt")})
def audit_override(
    gw: GatewayDep,
    caller: Auditor,
    record: Annotated[str, Path(pattern=RECORD_PATTERN, description="The record's 32-byte id")],
    seq: Annotated[int, Path(ge=1, lt=2**24, description="The override's seq (AccessRecorded.seq)")],
) -> dict[str, Any]:
    """Return `{record, seq, justification, salt, hash, actor, recorded_at, tx, block}` of an override this agency
    recorded: keccak256(salt ‖ justification) is `hash`, what the chain holds (check it against OverrideRecorded)."""
    return overrides.justification_of(gw, bytes.fromhex(record.removeprefix("0x")), seq)


@router.get("/audit/verify", summary="Verify the chain of responsibility against the chain (auditors)")
def audit_verify(gw: GatewayDep, caller: Auditor) -> dict[str, Any]:
    """Return the verification report: `ok`, what was checked, counts by kind and every discrepancy."""
    return auditing.verify_report(gw)


@router.get("/subjects/me/history", summary="Every access to the signing data subject's records",
            response_model=None, responses={200: response_schema(HistoryOut, "The signer's history")})
def my_history(gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]) -> dict[str, Any]:
    """Return the signer's history: each access (tx hash, block) and each record's on-chain head.

    The subject is always the request's signer, never a parameter, so nobody sees another's history.
    """
    return auditing.subject_history(gw, caller.address)
