"""Consent requests an agency filed with data subjects: stored terms, and one answer each (granted or denied).

A request's stored state is `requested`, `granted` or `denied`; whether an unanswered request has
expired, or a granted consent has since been revoked or lapsed, is read when the request is shown
(`flows.consent_requests`), so nothing has to sweep this table for its own sake (the courier looks
for lapsed requests only to owe their `expired` callbacks). An answer is one conditional UPDATE
(`state = 'requested' AND expires_at > now`), so of two answers racing only one wins.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, insert, select, update

from consentledger.errors import ConsentRequestAnsweredError, ConsentRequestExpiredError, NotFoundError
from consentledger.store.request_callbacks import forget_callback, queue_callback
from consentledger.store.tables import consent_requests

MAX_LISTED = 500
"""Most requests one listing returns (newest first)."""


class RequestState(StrEnum):
    """The stored state of a request (expired and revoked are read from time and the chain)."""

    REQUESTED = "requested"
    GRANTED = "granted"
    DENIED = "denied"


@dataclass(frozen=True)
class ConsentRequest:
    """What a requester asked a subject for, and the subject's answer once given."""

    id: str
    requester: str
    client: str | None
    subject: str
    category: int
    purpose: int
    record: str | None
    valid_until: int
    max_uses: int
    identified: bool
    reason: str
    state: RequestState
    created_at: datetime
    expires_at: datetime
    answered_at: datetime | None = None
    callback_url: str | None = None
    consent: dict[str, Any] | None = None
    consent_id: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ConsentRequests:
    """File, read and answer consent requests in the gateway's database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self._clock = clock

    def file(self, *, requester: str, client: str | None, subject: str, category: int, purpose: int,
             record: str | None, valid_until: int, max_uses: int, identified: bool, reason: str,
             expires_at: datetime, callback_url: str | None = None) -> ConsentRequest:
        """Store a new request in state `requested` and return it."""
        request = ConsentRequest(
            id="0x" + secrets.token_hex(16), requester=requester, client=client, subject=subject, category=category,
            purpose=purpose, record=record, valid_until=valid_until, max_uses=max_uses, identified=identified,
            reason=reason, state=RequestState.REQUESTED, created_at=self._clock(), expires_at=expires_at,
            callback_url=callback_url,
        )
        with self.engine.begin() as conn:
            conn.execute(insert(consent_requests).values(
                id=request.id, requester=requester, client=client, subject=subject, category=category,
                purpose=purpose, record=record, valid_until=valid_until, max_uses=max_uses,
                identified=int(identified), reason=reason, callback_url=callback_url, state=request.state.value,
                created_at=request.created_at, expires_at=expires_at,
            ))
        return request

    def get(self, request_id: str) -> ConsentRequest:
        """Return the request; NotFoundError if there is none of that id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(consent_requests).where(consent_requests.c.id == request_id.lower())
                               ).mappings().first()
        if row is None:
            raise NotFoundError(f"no consent request {request_id} at this gateway")
        return _request(row)

    def listed(self, *, subject: str | None = None, requester: str | None = None,
               state: RequestState | None = None) -> list[ConsentRequest]:
        """Return the requests to `subject` and/or by `requester` (in stored `state`), newest first."""
        query = select(consent_requests)
        if subject is not None:
            query = query.where(consent_requests.c.subject == subject)
        if requester is not None:
            query = query.where(consent_requests.c.requester == requester)
        if state is not None:
            query = query.where(consent_requests.c.state == state.value)
        query = query.order_by(consent_requests.c.created_at.desc(), consent_requests.c.id).limit(MAX_LISTED)
        with self.engine.connect() as conn:
            return [_request(row) for row in conn.execute(query).mappings()]

    def open_or_refuse(self, request: ConsentRequest) -> None:
        """Return if `request` may still be answered; ConsentRequestAnsweredError / ExpiredError otherwise."""
        if request.state is not RequestState.REQUESTED:
            raise ConsentRequestAnsweredError(f"consent request {request.id} was {request.state.value} already")
        if request.expires_at <= self._clock():
            raise ConsentRequestExpiredError(
                f"consent request {request.id} expired unanswered at {request.expires_at.isoformat(timespec='seconds')}"
            )

    def answer(self, request: ConsentRequest, state: RequestState, *, consent: dict[str, Any] | None = None,
               consent_id: str | None = None) -> ConsentRequest:
        """Record the subject's answer once and return the request as answered; refuses as `open_or_refuse`.

        With a callback URL, the callback announcing the answer is owed in the same transaction
        (`store.request_callbacks`).
        """
        self.open_or_refuse(request)
        now = self._clock()
        with self.engine.begin() as conn:
            won = conn.execute(
                update(consent_requests)
                .where(consent_requests.c.id == request.id, consent_requests.c.state == RequestState.REQUESTED.value,
                       consent_requests.c.expires_at > now)
                .values(state=state.value, consent=consent, consent_id=consent_id, answered_at=now)
            ).rowcount
            if won == 1 and request.callback_url:
                queue_callback(conn, request.id, state.value, request.callback_url, now)
        if won != 1:
            self.open_or_refuse(self.get(request.id))  # the answer that won, or the expiry, names the refusal
        return self.get(request.id)

    def reopen(self, request_id: str, consent_id: str) -> None:
        """Undo a grant whose consent did not reach the chain, so the subject may answer again (and its callback)."""
        with self.engine.begin() as conn:
            undone = conn.execute(
                update(consent_requests)
                .where(consent_requests.c.id == request_id, consent_requests.c.consent_id == consent_id)
                .values(state=RequestState.REQUESTED.value, consent=None, consent_id=None, answered_at=None)
            ).rowcount
            if undone == 1:
                forget_callback(conn, request_id, RequestState.GRANTED.value)


def _request(row: Any) -> ConsentRequest:
    r = dict(row)
    return ConsentRequest(
        id=r["id"], requester=r["requester"], client=r["client"], subject=r["subject"], category=r["category"],
        purpose=r["purpose"], record=r["record"], valid_until=int(r["valid_until"]), max_uses=int(r["max_uses"]),
        identified=bool(r["identified"]), reason=r["reason"], state=RequestState(r["state"]),
        created_at=r["created_at"], expires_at=r["expires_at"], answered_at=r["answered_at"],
        callback_url=r["callback_url"],
        consent=r["consent"], consent_id=r["consent_id"],
    )
