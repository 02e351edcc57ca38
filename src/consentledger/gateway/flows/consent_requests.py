"""Consent requests: a requester asks a data subject for a consent, the subject narrows it and grants, or denies.

A request lives at the requester's own gateway, which is also the gateway that relays consents
naming its organisation (`flows.consents`): the requester's client files it there, the subject (told
where by the requester) lists and answers it there, signing requests with their own key as for
`/v1/subjects/me/...`, and the requester polls it there or is called back once it is answered or
expires (`flows.request_callbacks`, retried until delivered). A grant carries the subject's EIP-712
signature over the consent the request describes, narrowed as the subject chose (a shorter validity,
fewer uses, unidentified, one record): the gateway rebuilds that consent from the request and the
narrowing, refuses any term wider than asked (422), checks the signature as the contract would, and
relays it on chain. State follows the consent vocabulary: `requested`, `granted`, `denied`, and as
read at the time shown, `expired` (unanswered past its expiry, or a grant past its validity) and
`revoked` (the granted consent revoked on chain).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field

from consentledger.consent import NO_RECORD, Consent, consent_id, consent_signer
from consentledger.errors import (
    ConsentLedgerError,
    ContractRevertError,
    InvalidSignatureError,
    NotFoundError,
    PayloadValidationError,
)
from consentledger.gateway.flows.catalog import check_use
from consentledger.gateway.flows.consents import relay_grant
from consentledger.gateway.runtime import Gateway
from consentledger.narrowing import GrantTerms, narrowing_refusal, wider_terms
from consentledger.store.consent_requests import ConsentRequest, ConsentRequests, RequestState
from consentledger.store.request_callbacks import Callback, RequestCallbacks
from consentledger.types import ConsentStatus

STATES = ("requested", "granted", "denied", "expired", "revoked")
"""Every state a request is shown in."""
DEFAULT_EXPIRY = 7 * 86400
MAX_EXPIRY = 90 * 86400
MAX_REASON = 1000
REQUEST_ID = re.compile(r"^0x[0-9a-f]{32}$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentRequestIn(_Body):
    """POST /v1/consent-requests: the consent this agency asks `subject` for, and why."""

    subject: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    category: int = Field(ge=1, le=65535)
    purpose: int = Field(ge=1, le=255)
    record: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{64}$", description="one record only (None: the category)")
    valid_until: int = Field(ge=0, lt=2**40, description="the longest validity asked (unix seconds)")
    max_uses: int = Field(1, ge=1, lt=2**32)
    identified: bool = False
    reason: str = Field(min_length=1, max_length=MAX_REASON, description="shown to the subject as written")
    expires_in: int = Field(DEFAULT_EXPIRY, ge=1, le=MAX_EXPIRY, description="seconds the request stays open")
    callback_url: str | None = Field(None, max_length=2000, pattern=r"^https?://[^\s]+$",
                                     description="POSTed the request, signed by this agency, once it is answered "
                                                 "or expires (retried until it answers 2xx)")


class GrantRequestIn(_Body):
    """POST /v1/subjects/me/consent-requests/{id}/grant: the narrowing chosen, the nonce and the signature.

    Terms left out are granted as asked. `nonce` is a decimal string (a uint64 does not fit a JSON number).
    """

    valid_until: int | None = Field(None, ge=0, lt=2**40)
    max_uses: int | None = Field(None, ge=1, lt=2**32)
    identified: bool | None = None
    record: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{64}$")
    nonce: str = Field(pattern=r"^[0-9]{1,20}$")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


@dataclass(frozen=True)
class Narrowing:
    """What the subject grants of a request: each term as asked unless narrowed."""

    valid_until: int | None = None
    max_uses: int | None = None
    identified: bool | None = None
    record: str | None = None
    nonce: int = 0


def narrowing_of(body: GrantRequestIn) -> Narrowing:
    """Return the narrowing a grant's body asks for; PayloadValidationError for a nonce past 64 bits."""
    nonce = int(body.nonce)
    if nonce >= 2**64:
        raise PayloadValidationError("nonce: a uint64 is below 2^64")
    return Narrowing(valid_until=body.valid_until, max_uses=body.max_uses, identified=body.identified,
                     record=body.record, nonce=nonce)


def requests_of(gw: Gateway) -> ConsentRequests:
    """Return the gateway's consent-request store."""
    return ConsentRequests(gw.store.engine)


def file_request(gw: Gateway, client: str | None, body: ConsentRequestIn) -> dict[str, Any]:
    """Store a request from this agency to `body.subject` after checking its terms against the catalog; return it.

    PayloadValidationError for a category or purpose not on the positive list, a purpose the category
    does not allow or past its sunset at the latest block (`flows.catalog.check_use`), a validity
    already past, or a record that is not the subject's record of that category.
    """
    now = int(time.time())
    subject = to_checksum_address(body.subject)
    check_use(gw, body.category, body.purpose)
    if body.valid_until <= now:
        raise PayloadValidationError("valid_until is in the past: ask for a consent valid from now on")
    record = body.record.lower() if body.record else None
    if record is not None:
        _subjects_record(gw, record, subject, body.category)
    request = requests_of(gw).file(
        requester=gw.org, client=client, subject=subject, category=body.category, purpose=body.purpose,
        record=record, valid_until=body.valid_until, max_uses=body.max_uses, identified=body.identified,
        reason=body.reason, callback_url=body.callback_url,
        # Whole seconds, so the `expires_at` shown (ISO, to the second) is exactly when it expires.
        expires_at=(datetime.now(UTC) + timedelta(seconds=body.expires_in)).replace(microsecond=0),
    )
    return view(gw, request)


def find(gw: Gateway, request_id: str, *, subject: str | None = None) -> ConsentRequest:
    """Return the request (to `subject`, when given); NotFoundError alike for an unknown id and another's request."""
    if not REQUEST_ID.match(request_id.lower()):
        raise NotFoundError(f"no consent request {request_id} at this gateway")
    request = requests_of(gw).get(request_id)
    if subject is not None and request.subject.lower() != subject.lower():
        raise NotFoundError(f"no consent request {request_id} at this gateway")
    return request


def listed(gw: Gateway, *, subject: str | None = None, state: str | None = None) -> dict[str, Any]:
    """Return `{requests}` to `subject` (or all of this agency's), newest first, in `state` as shown now."""
    if state is not None and state not in STATES:
        raise PayloadValidationError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    stored = {"requested": RequestState.REQUESTED, "expired": RequestState.REQUESTED, "denied": RequestState.DENIED,
              "granted": RequestState.GRANTED, "revoked": RequestState.GRANTED}.get(state or "")
    found = requests_of(gw).listed(subject=subject, state=stored)
    callbacks = RequestCallbacks(gw.store.engine).of_requests(r.id for r in found if r.callback_url)
    shown = [view(gw, r, callbacks.get(r.id)) for r in found]
    return {"requests": [r for r in shown if state is None or r["state"] == state]}


def grant(gw: Gateway, subject: str, request_id: str, narrowing: Narrowing, signature: bytes) -> dict[str, Any]:
    """Relay the subject's consent for the narrowed request on chain, record the grant, and return the request.

    PayloadValidationError naming any term wider than asked; InvalidSignatureError if the signature is
    not the subject's over exactly those terms; ConsentRequestAnsweredError / ExpiredError if the
    request is answered or expired; NotFoundError if it is not this subject's.
    """
    store = requests_of(gw)
    request = find(gw, request_id, subject=subject)
    store.open_or_refuse(request)
    consent = narrowed(gw, request, narrowing)
    domain = gw.ledger.domain()
    name = "0x" + consent_id(consent, domain).hex()
    problem = consent_signer(consent, signature, domain).refusal(request.subject)
    if problem is not None:
        raise InvalidSignatureError(name, "signature", problem)
    # Claimed before the chain write, so two grants racing do not both put a consent on chain.
    answered = store.answer(request, RequestState.GRANTED, consent=_terms_json(consent), consent_id=name)
    try:
        relay_grant(gw, subject, consent, signature)
    except ConsentLedgerError:
        store.reopen(request.id, name)
        raise
    return view(gw, answered)


def deny(gw: Gateway, subject: str, request_id: str) -> dict[str, Any]:
    """Record the subject's refusal and return the request; refuses as `grant` for answered or expired ones."""
    return view(gw, requests_of(gw).answer(find(gw, request_id, subject=subject), RequestState.DENIED))


def narrowed(gw: Gateway, request: ConsentRequest, narrowing: Narrowing) -> Consent:
    """Return the consent `request` describes, narrowed as asked; PayloadValidationError naming a wider term."""
    asked = GrantTerms(request.valid_until, request.max_uses, request.identified, request.record)
    granted = GrantTerms(
        valid_until=asked.valid_until if narrowing.valid_until is None else narrowing.valid_until,
        max_uses=asked.max_uses if narrowing.max_uses is None else narrowing.max_uses,
        identified=asked.identified if narrowing.identified is None else narrowing.identified,
        record=asked.record if narrowing.record is None else narrowing.record.lower(),
    )
    wider = wider_terms(asked, granted)
    if wider:
        raise PayloadValidationError(narrowing_refusal(wider))
    if granted.valid_until <= int(time.time()):
        raise PayloadValidationError(f"valid_until {granted.valid_until} is already past")
    if granted.record is not None and request.record is None:
        _subjects_record(gw, granted.record, request.subject, request.category)
    return Consent(
        subject=request.subject, grantee=request.requester, category=request.category, purpose=request.purpose,
        valid_until=granted.valid_until, max_uses=granted.max_uses,
        record=bytes.fromhex(granted.record[2:]) if granted.record else NO_RECORD, identified=granted.identified,
        nonce=narrowing.nonce,
    )


def view(gw: Gateway, request: ConsentRequest, callback: Callback | None = None) -> dict[str, Any]:
    """Return the request as JSON, in its state as of now (64-bit values as decimal strings).

    `callback` is how the latest callback owed to the requester has gone (`{state, attempts, last_error,
    delivered_at}`), None without a callback URL or before one is owed; read here unless given.
    """
    state, uses = _state_now(gw, request)
    if callback is None and request.callback_url:
        callback = RequestCallbacks(gw.store.engine).of_requests([request.id]).get(request.id)
    return {
        "id": request.id,
        "state": state,
        "requester": request.requester,
        "subject": request.subject,
        "category": request.category,
        "purpose": request.purpose,
        "record": request.record,
        "valid_until": request.valid_until,
        "max_uses": request.max_uses,
        "identified": request.identified,
        "reason": request.reason,
        "created_at": _iso(request.created_at),
        "expires_at": _iso(request.expires_at),
        "answered_at": _iso(request.answered_at) if request.answered_at else None,
        "consent": request.consent,
        "consent_id": request.consent_id,
        "uses": uses,
        "callback": callback.as_json() if callback is not None else None,
    }


def _state_now(gw: Gateway, request: ConsentRequest) -> tuple[str, int | None]:
    if request.state is RequestState.REQUESTED:
        return ("expired" if request.expires_at <= datetime.now(UTC) else "requested"), None
    if request.state is RequestState.DENIED or request.consent_id is None or request.consent is None:
        return request.state.value, None
    status, uses = gw.ledger.consent_state(bytes.fromhex(request.consent_id[2:]))
    if status is ConsentStatus.REVOKED:
        return "revoked", uses
    if int(request.consent["valid_until"]) <= int(time.time()):
        return "expired", uses
    return "granted", uses


def _terms_json(consent: Consent) -> dict[str, Any]:
    terms = consent.to_json()
    terms["nonce"] = str(consent.nonce)  # a uint64: JavaScript rounds a JSON number above 2^53
    return terms


def _subjects_record(gw: Gateway, record: str, subject: str, category: int) -> None:
    try:
        info = gw.chain.record(bytes.fromhex(record[2:]))
    except ContractRevertError:  # an unknown record; a chain down stays a 503
        raise PayloadValidationError(f"record {record} is not registered on chain") from None
    if info.subject.lower() != subject.lower() or info.category != category:
        raise PayloadValidationError(f"record {record} is not the subject's record of category {category}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
