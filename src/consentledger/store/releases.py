"""The custodian's release log: every disclosure it sealed for an access, counted per access without races.

A release takes the next ordinal of its access (record, seq) and the pair is unique in the table,
so two concurrent releases can never both take the last allowed one: the slower insert fails on
the constraint, reads the count again and finds the limit reached. This holds on SQLite and on
PostgreSQL alike, and needs no lock held across requests.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Connection, Engine, Row, func, select, tuple_
from sqlalchemy.exc import IntegrityError

from consentledger.store.tables import releases
from consentledger.types import Address

_CHUNK = 500
"""How many accesses one count query names at most (SQLite allows a few thousand parameters)."""


@dataclass(frozen=True)
class Release:
    """One release of an access's disclosure: to whom, for which access, what was withheld, and when.

    `ordinal` and `released_at` are set by the log when the release is recorded.
    """

    record_id: str
    seq: int
    requester: Address
    access_block: int
    access_tx: str
    access_time: int
    consents: tuple[str, ...]
    withheld: tuple[str, ...]
    withholding: str
    use: str
    ordinal: int = 0
    released_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the release as an auditor sees it beside its access (times as ISO-8601 UTC)."""
        when = self.released_at.isoformat(timespec="seconds") if self.released_at else None
        return {
            "ordinal": self.ordinal, "released_at": when, "requester": self.requester,
            "consents": list(self.consents), "withheld": list(self.withheld), "withholding": self.withholding,
            "use": self.use,
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ReleaseLog:
    """The releases a custodian's gateway made, in its database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self._clock = clock

    def record(self, release: Release, *, limit: int) -> Release | None:
        """Commit `release` as its access's next release and return it; None if `limit` releases already exist.

        Race-free: of concurrent calls for one access, at most `limit` in all ever succeed.
        """
        return self.record_many([(release, limit)])[0]

    def record_many(self, wanted: Sequence[tuple[Release, int]]) -> list[Release | None]:
        """Commit each (release, limit) as its access's next release, all in one transaction; None past the limit.

        Each item keeps its own `limit`, counted over the releases already logged and the earlier
        items of the same call (two items for one access take consecutive ordinals). Race-free as
        `record`: a concurrent release taking an ordinal of ours fails our insert on the unique
        constraint, and the whole call is counted and written again.
        """
        if not wanted:
            return []
        rows = [(_values(replace(r, requester=Address(to_checksum_address(r.requester)))), limit)
                for r, limit in wanted]
        accesses = sorted({(r.record_id, r.seq) for r, _ in wanted})
        # Each failed attempt means another release took an ordinal of one of these accesses, and at most
        # sum(limits) can ever be taken, so that many attempts plus one always decide.
        for _ in range(sum(limit for _, limit in wanted) + 1):
            with self.engine.connect() as conn:
                before = self._counts(conn, accesses)
            decided = _next_ordinals(rows, before, self._clock())
            try:
                with self.engine.begin() as conn:
                    inserted = [row for row in decided if row is not None]
                    if inserted:
                        conn.execute(releases.insert(), inserted)
            except IntegrityError:
                with self.engine.connect() as conn:
                    if self._counts(conn, accesses) == before:
                        raise  # no other release took an ordinal: the rows themselves are bad
                continue
            return [None if row is None else _release_from_values(row) for row in decided]
        return [None] * len(wanted)

    def count(self, record_id: str, seq: int) -> int:
        """Return how many times access (record, seq) was released."""
        with self.engine.connect() as conn:
            return self._count(conn, record_id, seq)

    def of_access(self, record_id: str, seq: int) -> list[Release]:
        """Return the releases of access (record, seq), first first."""
        query = (select(releases).where(releases.c.record_id == record_id, releases.c.seq == seq)
                 .order_by(releases.c.ordinal))
        with self.engine.connect() as conn:
            return [_release_from(row) for row in conn.execute(query)]

    def of_records(self, record_ids: Collection[str]) -> dict[tuple[str, int], list[Release]]:
        """Return the releases of every access to `record_ids`, by (record, seq), first first."""
        if not record_ids:
            return {}
        query = (select(releases).where(releases.c.record_id.in_(sorted(set(record_ids))))
                 .order_by(releases.c.record_id, releases.c.seq, releases.c.ordinal))
        found: dict[tuple[str, int], list[Release]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                found.setdefault((row.record_id, row.seq), []).append(_release_from(row))
        return found

    @staticmethod
    def _counts(conn: Connection, accesses: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Return the releases logged so far of each of `accesses` (absent: none)."""
        counts: dict[tuple[str, int], int] = {}
        for at in range(0, len(accesses), _CHUNK):
            access = tuple_(releases.c.record_id, releases.c.seq)
            query = (select(releases.c.record_id, releases.c.seq, func.max(releases.c.ordinal))
                     .where(access.in_(accesses[at:at + _CHUNK])).group_by(releases.c.record_id, releases.c.seq))
            counts.update({(row[0], row[1]): int(row[2]) for row in conn.execute(query)})
        return counts

    @staticmethod
    def _count(conn: Connection, record_id: str, seq: int) -> int:
        query = select(func.coalesce(func.max(releases.c.ordinal), 0)).where(
            releases.c.record_id == record_id, releases.c.seq == seq
        )
        return int(conn.scalar(query) or 0)


def _next_ordinals(
    rows: Sequence[tuple[dict[str, Any], int]], taken: dict[tuple[str, int], int], now: datetime
) -> list[dict[str, Any] | None]:
    """Return each row with its access's next ordinal after `taken`, or None where its limit is reached."""
    counts = dict(taken)
    decided: list[dict[str, Any] | None] = []
    for values, limit in rows:
        access = (values["record_id"], values["seq"])
        if counts.get(access, 0) >= limit:
            decided.append(None)
            continue
        counts[access] = counts.get(access, 0) + 1
        decided.append({**values, "ordinal": counts[access], "released_at": now})
    return decided


def _values(release: Release) -> dict[str, Any]:
    return {
        "record_id": release.record_id, "seq": release.seq, "requester": release.requester,
        "access_block": release.access_block, "access_tx": release.access_tx, "access_time": release.access_time,
        "consents": list(release.consents), "withheld": list(release.withheld),
        "withholding": release.withholding, "use": release.use,
    }


def _release_from_values(values: dict[str, Any]) -> Release:
    return Release(
        record_id=values["record_id"], seq=values["seq"], requester=Address(values["requester"]),
        access_block=values["access_block"], access_tx=values["access_tx"], access_time=values["access_time"],
        consents=tuple(values["consents"]), withheld=tuple(values["withheld"]), withholding=values["withholding"],
        use=values["use"], ordinal=values["ordinal"], released_at=values["released_at"],
    )


def _release_from(row: Row[Any]) -> Release:
    return _release_from_values(dict(row._mapping))
