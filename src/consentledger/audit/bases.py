"""Statutory mandates and emergency overrides as the index holds them: listings for `audit mandates`,
`audit overrides` and the report's "Legal bases" section.

Lateness is judged as of the index cursor's block time, the moment the index is true to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from consentledger.audit import tables as t
from consentledger.audit.indexer import read_cursor
from consentledger.types import LegalBasis, ReviewStatus


@dataclass(frozen=True)
class MandateLine:
    """One statutory mandate: its terms, where it was granted and revoked, and how many accesses used it."""

    id: int
    institution: str
    institution_name: str | None
    purpose: int
    purpose_name: str | None
    categories: tuple[int, ...]
    valid_until: int
    identified: bool
    legal_text_hash: str
    legal_text_uri: str
    granted_at: int
    granted_block: int
    granted_tx: str
    revoked_at: int | None
    revoked_block: int | None
    revoked_tx: str | None
    accesses: int
    as_of: int
    """The index cursor's time: what `state` is judged at."""

    @property
    def state(self) -> str:
        """Return "revoked", "ended" (past valid_until) or "in force", as of the index's cursor."""
        if self.revoked_at is not None:
            return "revoked"
        return "ended" if self.as_of > self.valid_until else "in force"

    def to_json(self) -> dict[str, Any]:
        """Return the mandate as JSON-ready data (times as unix seconds and ISO-8601 UTC)."""
        return {
            "id": self.id, "institution": self.institution, "institution_name": self.institution_name,
            "purpose": self.purpose, "purpose_name": self.purpose_name, "categories": list(self.categories),
            "valid_until": self.valid_until, "valid_until_time": _iso(self.valid_until),
            "identified": self.identified, "legal_text_hash": self.legal_text_hash,
            "legal_text_uri": self.legal_text_uri, "granted_at": self.granted_at, "granted_block": self.granted_block,
            "granted_tx": self.granted_tx, "revoked_at": self.revoked_at, "revoked_block": self.revoked_block,
            "revoked_tx": self.revoked_tx, "state": self.state, "accesses": self.accesses,
        }


@dataclass(frozen=True)
class OverrideLine:
    """One emergency override: who recorded it and why (the justification's hash), and its review."""

    record: str
    seq: int
    requester: str
    requester_name: str | None
    purpose: int | None
    purpose_name: str | None
    justification: str
    recorded_at: int
    recorded_block: int
    recorded_tx: str
    review_due: int
    reviewed_by: str | None
    reviewer_name: str | None
    accepted: bool | None
    reason: str | None
    reviewed_at: int | None
    reviewed_tx: str | None
    as_of: int
    """The index cursor's time: what lateness of a pending review is judged at."""

    @property
    def status(self) -> ReviewStatus:
        """Return PENDING, ACCEPTED or REJECTED."""
        if self.accepted is None:
            return ReviewStatus.PENDING
        return ReviewStatus.ACCEPTED if self.accepted else ReviewStatus.REJECTED

    @property
    def late_by(self) -> int:
        """Return how many seconds past its due time the review came (or, pending, has not come yet); 0: on time."""
        until = self.reviewed_at if self.reviewed_at is not None else self.as_of
        return max(0, until - self.review_due)

    def lateness(self) -> str:
        """Return the review's timeliness in words: "on time", "due in N s", "overdue by N s", "N s late"."""
        if self.reviewed_at is not None:
            return f"{self.late_by} s late" if self.late_by else "on time"
        return f"overdue by {self.late_by} s" if self.late_by else f"due in {self.review_due - self.as_of} s"

    def to_json(self) -> dict[str, Any]:
        """Return the override as JSON-ready data (status in lower case, lateness in seconds and words)."""
        return {
            "record": self.record, "seq": self.seq, "requester": self.requester,
            "requester_name": self.requester_name, "purpose": self.purpose, "purpose_name": self.purpose_name,
            "justification": self.justification, "recorded_at": self.recorded_at,
            "recorded_time": _iso(self.recorded_at), "recorded_block": self.recorded_block,
            "recorded_tx": self.recorded_tx, "review_due": self.review_due, "review_due_time": _iso(self.review_due),
            "status": self.status.name.lower(), "reviewed_by": self.reviewed_by, "reviewer_name": self.reviewer_name,
            "accepted": self.accepted, "reason": self.reason, "reviewed_at": self.reviewed_at,
            "reviewed_tx": self.reviewed_tx, "late": self.late_by > 0, "late_by": self.late_by,
            "lateness": self.lateness(),
        }


def mandate_lines(engine: Engine) -> list[MandateLine]:
    """Return every indexed statutory mandate, in id order, with the number of accesses made under it."""
    m, a = t.mandates.c, t.accesses.c
    used = (
        select(a.consent, func.count().label("accesses"))
        .where(a.basis == int(LegalBasis.MANDATE)).group_by(a.consent).subquery()
    )
    query = (
        select(t.mandates, t.members.c.name.label("institution_name"), t.purposes.c.name.label("purpose_name"),
               func.coalesce(used.c.accesses, 0).label("accesses"))
        .outerjoin(t.members, t.members.c.address == m.institution)
        .outerjoin(t.purposes, t.purposes.c.id == m.purpose)
        .outerjoin(used, used.c.consent == m.ref)
        .order_by(m.id)
    )
    with engine.connect() as conn:
        now = read_cursor(conn).timestamp or 0
        rows = conn.execute(query).mappings().all()
    return [
        MandateLine(
            id=row["id"], institution=row["institution"], institution_name=row["institution_name"],
            purpose=row["purpose"], purpose_name=row["purpose_name"],
            categories=tuple(int(c) for c in row["categories"]), valid_until=row["valid_until"],
            identified=bool(row["identified"]), legal_text_hash=row["legal_text_hash"],
            legal_text_uri=row["legal_text_uri"], granted_at=row["granted_at"], granted_block=row["granted_block"],
            granted_tx=row["granted_tx"], revoked_at=row["revoked_at"], revoked_block=row["revoked_block"],
            revoked_tx=row["revoked_tx"], accesses=int(row["accesses"]), as_of=now,
        )
        for row in rows
    ]


def override_lines(engine: Engine, *, pending: bool = False) -> list[OverrideLine]:
    """Return every indexed emergency override (only those awaiting review if `pending`), in chain order."""
    o, a = t.overrides.c, t.accesses.c
    requester, reviewer = t.members.alias("requester_member"), t.members.alias("reviewer_member")
    query = (
        select(t.overrides, a.purpose, t.purposes.c.name.label("purpose_name"),
               requester.c.name.label("requester_name"), reviewer.c.name.label("reviewer_name"))
        .outerjoin(t.accesses, (a.record == o.record) & (a.seq == o.seq))
        .outerjoin(t.purposes, t.purposes.c.id == a.purpose)
        .outerjoin(requester, requester.c.address == o.requester)
        .outerjoin(reviewer, reviewer.c.address == o.reviewed_by)
        .order_by(o.recorded_block, o.recorded_log_index)
    )
    if pending:
        query = query.where(o.reviewed_block.is_(None))
    with engine.connect() as conn:
        now = read_cursor(conn).timestamp or 0
        rows = conn.execute(query).mappings().all()
    return [
        OverrideLine(
            record=row["record"], seq=row["seq"], requester=row["requester"], requester_name=row["requester_name"],
            purpose=row["purpose"], purpose_name=row["purpose_name"], justification=row["justification"],
            recorded_at=row["recorded_at"], recorded_block=row["recorded_block"], recorded_tx=row["recorded_tx"],
            review_due=row["review_due"], reviewed_by=row["reviewed_by"], reviewer_name=row["reviewer_name"],
            accepted=row["accepted"], reason=row["reason"], reviewed_at=row["reviewed_at"],
            reviewed_tx=row["reviewed_tx"], as_of=now,
        )
        for row in rows
    ]


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")
