"""The subject's answers from the portal: each done by the existing flow, here or at the gateway that holds it.

A consent request lives at its requester's gateway, which relays the grant: one at this gateway
goes to `flows.consent_requests`, one at a peer is forwarded to that peer's `/v1/subjects/me/...`
with the subject's delegation. A revocation is relayed here (`flows.consents`). An erasure goes to
every custodian gateway holding a live record of the subject, this one by `flows.erasure`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import select

from consentledger.audit import tables as t
from consentledger.consent import Consent, consent_typed_data
from consentledger.errors import (
    ConsentLedgerError,
    ConsentRequestAnsweredError,
    ConsentRequestExpiredError,
    ErasureIncompleteError,
    GatewayUnavailableError,
    NotFoundError,
)
from consentledger.gateway.delegation import Delegation
from consentledger.gateway.flows import consent_requests, consents, erasure
from consentledger.gateway.flows.consent_requests import Narrowing
from consentledger.gateway.flows.portal.overview import MINE, names, request_item
from consentledger.gateway.flows.tombstones import ON_CHAIN
from consentledger.gateway.peers import Peer, call, peer
from consentledger.gateway.runtime import Gateway
from consentledger.store.consent_requests import ConsentRequest, RequestState
from consentledger.types import MemberStatus


@dataclass(frozen=True)
class PortalNarrowing:
    """What the subject narrows of a request (each term None: as asked), read from the page's decimal strings."""

    valid_until: int | None = None
    max_uses: int | None = None
    identified: bool | None = None
    record: str | None = None

    def with_nonce(self, nonce: int) -> Narrowing:
        """Return the grant flow's narrowing with `nonce`."""
        return Narrowing(self.valid_until, self.max_uses, self.identified, self.record, nonce)

    def grant_body(self, nonce: int, signature: str) -> dict[str, Any]:
        """Return the body of `POST /v1/subjects/me/consent-requests/{id}/grant` for this narrowing."""
        body: dict[str, Any] = {k: v for k, v in (("valid_until", self.valid_until), ("max_uses", self.max_uses),
                                                 ("identified", self.identified), ("record", self.record))
                                if v is not None}
        return {**body, "nonce": str(nonce), "signature": signature}


def consent_for(gw: Gateway, subject: str, gateway: str, request_id: str, narrowing: PortalNarrowing,
                delegation: Delegation) -> dict[str, Any]:
    """Return `{typed_data, nonce}`: the Consent the subject signs to grant the request narrowed so.

    PayloadValidationError (422) naming a term wider than asked; NotFoundError for no such request of theirs.
    """
    request = _request(gw, subject, gateway, request_id, delegation)
    nonce = secrets.randbits(64)
    consent = consent_requests.narrowed(gw, request, narrowing.with_nonce(nonce))
    return {"typed_data": consent_typed_data(consent, gw.ledger.domain()), "nonce": str(nonce)}


def grant(gw: Gateway, subject: str, gateway: str, request_id: str, narrowing: PortalNarrowing, nonce: int,
          signature: str, delegation: Delegation) -> dict[str, Any]:
    """Grant the request at the gateway holding it; return the request, granted (as that gateway answers)."""
    if _here(gw, gateway):
        view = consent_requests.grant(gw, subject, request_id, narrowing.with_nonce(nonce),
                                      bytes.fromhex(signature[2:]))
    else:
        view = call(gw, _peer(gw, gateway), "POST", f"{MINE}/{request_id}/grant",
                    narrowing.grant_body(nonce, signature), delegation)
    return request_item(names(gw.store.engine), gateway, view)


def deny(gw: Gateway, subject: str, gateway: str, request_id: str, delegation: Delegation) -> dict[str, Any]:
    """Deny the request at the gateway holding it; return the request, denied."""
    if _here(gw, gateway):
        view = consent_requests.deny(gw, subject, request_id)
    else:
        view = call(gw, _peer(gw, gateway), "POST", f"{MINE}/{request_id}/deny", {}, delegation)
    return request_item(names(gw.store.engine), gateway, view)


def revoke(gw: Gateway, subject: str, consent: Consent, signature: bytes) -> dict[str, Any]:
    """Relay the subject's revocation here; return `{consent, revocation: {status, tx_hash?}}`."""
    relayed = consents.relay_revocation(gw, subject, consent, signature)
    status = erasure.revocation_status(gw, relayed.body["consent"], None)
    shown: dict[str, Any] = {"status": relayed.body["status"]}
    if status.get("tx_hash"):
        shown["tx_hash"] = status["tx_hash"]
    return {"consent": relayed.body["consent"], "revocation": shown}


def erase(gw: Gateway, subject: str, signed: Sequence[tuple[Consent, bytes]],
          delegation: Delegation) -> tuple[int, dict[str, Any]]:
    """Ask every custodian holding a live record of the subject to erase it; return the HTTP status and the outcome.

    `{custodians: [{org, name, status, http_status, answer | error}]}`: `status` is "erased" (every
    tombstone and revocation on chain), "queued" (shredded, some chain writes still on their way),
    "refused" or "unreachable", `http_status` that custodian's answer (503: unreachable). The status is
    200 / 202 when every custodian erased; the refusals' own status when all refused alike (422: a live
    consent not revoked), so nothing happened; else 502 `erasure_incomplete` (some erased, some not).
    With no record held anywhere the revocations are relayed here: `{custodians: [], revocations}`.
    """
    custodians = _custodians(gw, subject)
    if not custodians:
        return 200, {"custodians": [], "revocations": [revoke(gw, subject, c, s) for c, s in signed]}
    body = {"revocations": [{"consent": c.to_json(), "signature": "0x" + s.hex()} for c, s in signed]}
    known = names(gw.store.engine)
    answers = []
    for custodian in custodians:
        shown: dict[str, Any] = dict(known.org(custodian) or {})
        try:
            if _here(gw, custodian):
                answer = erasure.erase(gw, subject, signed)
            else:
                answer = call(gw, _peer(gw, custodian), "POST", "/v1/subjects/me/erasure", body, delegation)
            settled = all(r.get("tombstone") == ON_CHAIN for r in answer.get("records", [])) and all(
                c.get("revocation") == ON_CHAIN for c in answer.get("consents", []))
            shown.update(status="erased" if settled else "queued", http_status=200 if settled else 202,
                         answer=answer)
        except ConsentLedgerError as exc:  # unreachable, refused there, or refused here: said, not raised
            unreachable = isinstance(exc, GatewayUnavailableError)
            shown.update(status="unreachable" if unreachable else "refused", http_status=exc.http_status,
                         error=str(exc))
        answers.append(shown)
    statuses = {a["http_status"] for a in answers}
    if statuses <= {200, 202}:
        return max(statuses), {"custodians": answers}
    if len(statuses) == 1:
        return statuses.pop(), {"error": "erasure_refused", "detail": "; ".join(
            f"{a['name']}: {a['error']}" for a in answers), "custodians": answers}
    failed = [a for a in answers if a["http_status"] not in (200, 202)]
    return 502, {"error": ErasureIncompleteError.code, "detail": "not erased at " + "; ".join(
        f"{a['name']}: {a['error']}" for a in failed), "custodians": answers}


def _custodians(gw: Gateway, subject: str) -> list[str]:
    """Return the gateways (their current signers) holding a record of `subject` not yet tombstoned, per the index."""
    r = t.records.c
    with gw.index_held(), gw.store.engine.connect() as conn:
        held = sorted({row.custodian for row in conn.execute(
            select(r.custodian).where(r.subject == to_checksum_address(subject), r.tombstone.is_(None)))})
    current: list[str] = []
    for custodian in held:
        member = gw.members.get(custodian)
        address = gw.ledger.current_signer(custodian) if member.status is MemberStatus.REVOKED else member.address
        if address not in current:
            current.append(address)
    return current


def _request(gw: Gateway, subject: str, gateway: str, request_id: str, delegation: Delegation) -> ConsentRequest:
    """Return the subject's request `request_id` at `gateway` (asked there for a peer's)."""
    if _here(gw, gateway):
        request = consent_requests.find(gw, request_id, subject=subject)
        consent_requests.requests_of(gw).open_or_refuse(request)
        return request
    listed = call(gw, _peer(gw, gateway), "GET", MINE, None, delegation).get("requests", [])
    found = [r for r in listed if isinstance(r, dict) and str(r.get("id", "")).lower() == request_id.lower()]
    if not found:
        raise NotFoundError(f"no consent request {request_id} at the gateway of {gateway}")
    view = found[0]
    if view["state"] == "expired":
        raise ConsentRequestExpiredError(f"consent request {request_id} expired unanswered at {view['expires_at']}")
    if view["state"] != "requested":
        raise ConsentRequestAnsweredError(f"consent request {request_id} was {view['state']} already")
    return ConsentRequest(
        id=view["id"], requester=view["requester"], client=None, subject=view["subject"],
        category=int(view["category"]), purpose=int(view["purpose"]), record=view.get("record"),
        valid_until=int(view["valid_until"]), max_uses=int(view["max_uses"]), identified=bool(view["identified"]),
        reason=str(view["reason"]), state=RequestState.REQUESTED,
        created_at=datetime.fromisoformat(view["created_at"]), expires_at=datetime.fromisoformat(view["expires_at"]),
    )


def _here(gw: Gateway, org: str) -> bool:
    return org.lower() == gw.org.lower()


def _peer(gw: Gateway, org: str) -> Peer:
    return peer(gw, to_checksum_address(org))
