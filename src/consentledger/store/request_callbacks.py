"""Callbacks owed to requesters: one row per (consent request, state), delivered at most once successfully.

A row is written in the transaction that changes the request's state (`ConsentRequests.answer`
for granted and denied, `queue_expired` for a request found unanswered past its expiry), so a
state change is never without its callback, nor a callback without its state change (a grant
whose consent did not reach the chain is reopened and its row deleted in one transaction). The
courier (`gateway.flows.request_callbacks`) claims a due row by moving its `next_at` past a lease
(one conditional UPDATE, so two replicas never deliver it at once), then records a success
(`delivered_at`, never due again) or a failure (`attempts`, `last_error`, the next try after a
backoff, none after the last).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from consentledger.store.tables import consent_requests, request_callbacks


@dataclass(frozen=True)
class Callback:
    """One callback owed: which request, the state it announces, where to, and how it has gone so far."""

    request_id: str
    state: str
    url: str
    attempts: int
    next_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    def as_json(self) -> dict[str, object]:
        """Return `{state, attempts, last_error, delivered_at}` as a request's JSON shows its callback."""
        return {"state": self.state, "attempts": self.attempts, "last_error": self.last_error,
                "delivered_at": self.delivered_at.isoformat(timespec="seconds") if self.delivered_at else None}


def queue_callback(conn: Connection, request_id: str, state: str, url: str, now: datetime) -> None:
    """Owe a callback announcing `state` of `request_id`, due now (call inside the state change's transaction)."""
    conn.execute(insert(request_callbacks).values(
        request_id=request_id, state=state, url=url, attempts=0, next_at=now, created_at=now))


def forget_callback(conn: Connection, request_id: str, state: str) -> None:
    """Drop the callback owed for `state` of `request_id` (its state change is being undone in this transaction)."""
    conn.execute(delete(request_callbacks).where(request_callbacks.c.request_id == request_id,
                                                 request_callbacks.c.state == state))


class RequestCallbacks:
    """The callbacks owed, in the gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def queue_expired(self, now: datetime) -> int:
        """Return how many `expired` callbacks are newly owed: one per request unanswered past its expiry, with a URL.

        One INSERT … SELECT of those without one yet; a replica that raced us to it leaves nothing to do.
        """
        r, c = consent_requests.c, request_callbacks.c
        lapsed = (
            select(r.id, literal("expired"), r.callback_url, literal(0), literal(now, request_callbacks.c.next_at.type),
                   literal(now, request_callbacks.c.created_at.type))
            .where(r.state == "requested", r.expires_at <= now, r.callback_url.is_not(None),
                   ~select(c.request_id).where(c.request_id == r.id, c.state == "expired").exists())
        )
        try:
            with self.engine.begin() as conn:
                return len(conn.execute(insert(request_callbacks).from_select(
                    ["request_id", "state", "url", "attempts", "next_at", "created_at"], lapsed,
                ).returning(c.request_id)).all())
        except IntegrityError:  # another replica queued the same ones first
            return 0

    def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[Callback]:
        """Return up to `limit` callbacks due at `now`, each claimed until `now + lease` (no one else takes it)."""
        c = request_callbacks.c
        with self.engine.connect() as conn:
            due = conn.execute(select(request_callbacks).where(c.next_at.is_not(None), c.next_at <= now)
                               .order_by(c.next_at).limit(limit)).mappings().all()
        claimed = []
        for row in due:
            with self.engine.begin() as conn:
                won = conn.execute(update(request_callbacks).where(
                    c.request_id == row["request_id"], c.state == row["state"], c.next_at == row["next_at"],
                ).values(next_at=now + lease)).rowcount
            if won == 1:
                claimed.append(_callback(row))
        return claimed

    def delivered(self, callback: Callback, now: datetime) -> None:
        """Record the one successful delivery of `callback`: never due again."""
        self._set(callback, attempts=callback.attempts + 1, next_at=None, last_error=None, delivered_at=now)

    def failed(self, callback: Callback, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt and when to try again (None: the attempts are spent, it is not tried again)."""
        self._set(callback, attempts=callback.attempts + 1, next_at=retry_at, last_error=error[:1000])

    def postpone(self, callback: Callback, until: datetime) -> None:
        """Make `callback` due again at `until` without counting an attempt (it was not sent)."""
        self._set(callback, next_at=until)

    def of_requests(self, request_ids: Iterable[str]) -> dict[str, Callback]:
        """Return each request's latest callback (by when it was owed), for those that have one."""
        ids = list(request_ids)
        if not ids:
            return {}
        c = request_callbacks.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(request_callbacks).where(c.request_id.in_(ids))
                                .order_by(c.created_at, c.state)).mappings().all()
        return {row["request_id"]: _callback(row) for row in rows}  # later rows win

    def _set(self, callback: Callback, **values: object) -> None:
        c = request_callbacks.c
        with self.engine.begin() as conn:
            conn.execute(update(request_callbacks).where(and_(
                c.request_id == callback.request_id, c.state == callback.state, c.delivered_at.is_(None),
            )).values(**values))


def _callback(row: object) -> Callback:
    r = dict(row)  # type: ignore[call-overload]
    return Callback(request_id=r["request_id"], state=r["state"], url=r["url"], attempts=int(r["attempts"]),
                    next_at=r["next_at"], last_error=r["last_error"], delivered_at=r["delivered_at"],
                    created_at=r["created_at"])
