"""How records and consents end, from the index: tombstones with their tx, live consents, the catalog's purposes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from consentledger.audit import tables as t
from consentledger.consent import Consent
from consentledger.types import TombstoneReason


@dataclass(frozen=True)
class Tombstone:
    """A record's on-chain tombstone: why, and the transaction and block that carry it."""

    record: str
    subject: str
    custodian: str
    reason: TombstoneReason
    tx_hash: str
    block: int
    timestamp: int

    def to_json(self) -> dict[str, Any]:
        """Return the tombstone as JSON-ready data (reason in lower case, time as ISO-8601 UTC and unix)."""
        return {
            "record": self.record, "subject": self.subject, "custodian": self.custodian,
            "reason": self.reason.name.lower(), "tx_hash": self.tx_hash, "block": self.block,
            "timestamp": self.timestamp,
            "time": datetime.fromtimestamp(self.timestamp, UTC).isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class IndexedConsent:
    """A consent granted on chain, as the index holds it: its id, terms and where it was granted."""

    id: str
    consent: Consent
    granted_tx: str
    granted_block: int

    def to_json(self) -> dict[str, Any]:
        """Return `{id, consent (Consent.to_json), granted_tx, granted_block}`."""
        return {"id": self.id, "consent": self.consent.to_json(), "granted_tx": self.granted_tx,
                "granted_block": self.granted_block}


def catalog_purposes(conn: Connection) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Return the indexed catalog's current state: each category's allowed purposes, each purpose's sunset (0: none)."""
    categories = {row.id: list(row.allowed_purposes) for row in conn.execute(
        select(t.categories.c.id, t.categories.c.allowed_purposes))}
    sunsets = {row.id: int(row.sunset) for row in conn.execute(select(t.purposes.c.id, t.purposes.c.sunset))}
    return categories, sunsets


def tombstones(
    engine: Engine, *, subject: str | None = None, records: Iterable[str] | None = None
) -> list[Tombstone]:
    """Return the indexed tombstones of `subject`'s records and/or of the given record ids, in chain order."""
    r = t.records.c
    query = select(t.records).where(r.tombstone.is_not(None))
    if subject is not None:
        query = query.where(r.subject == subject)
    if records is not None:
        query = query.where(r.id.in_([record.lower() for record in records]))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(r.tombstoned_block, r.tombstoned_log_index)).mappings().all()
    return [
        Tombstone(row["id"], row["subject"], row["custodian"], TombstoneReason(row["tombstone"]),
                  row["tombstoned_tx"], int(row["tombstoned_block"]), int(row["tombstoned_at"]))
        for row in rows
    ]


def live_consents(engine: Engine, subject: str, now: int) -> list[IndexedConsent]:
    """Return `subject`'s consents granted on chain, not revoked and not expired at block time `now`, oldest first.

    (A consent whose uses are spent still counts: the index does not track uses, and revoking it is harmless.)
    """
    c = t.consents.c
    query = (
        select(t.consents)
        .where(c.subject == subject, c.granted_block.is_not(None), c.revoked_block.is_(None), c.valid_until >= now)
        .order_by(c.granted_block, c.granted_log_index)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [IndexedConsent(row["id"], _terms(row), row["granted_tx"], int(row["granted_block"])) for row in rows]


def revocations(engine: Engine, consent_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
    """Return (tx hash, block) of each given consent's indexed revocation, for those revoked."""
    c = t.consents.c
    query = select(c.id, c.revoked_tx, c.revoked_block).where(
        c.id.in_([i.lower() for i in consent_ids]), c.revoked_block.is_not(None)
    )
    with engine.connect() as conn:
        return {row.id: (row.revoked_tx, int(row.revoked_block)) for row in conn.execute(query)}


def _terms(row: Any) -> Consent:
    return Consent(
        subject=row["subject"], grantee=row["grantee"], category=int(row["category"]), purpose=int(row["purpose"]),
        valid_until=int(row["valid_until"]), max_uses=int(row["max_uses"]),
        record=bytes.fromhex(str(row["record"]).removeprefix("0x")), identified=bool(row["identified"]),
        nonce=int(row["nonce"]),
    )


@dataclass(frozen=True)
class ConsentStanding:
    """A consent's terms as the index holds them, the accesses made under it, and its state at a block time."""

    id: str
    consent: Consent
    uses: int
    revoked_at: int | None
    state: str
    """"live", "revoked", "expired" or "exhausted" (every use spent)."""


def consent_standings(engine: Engine, consent_ids: Iterable[str], now: int) -> dict[str, ConsentStanding]:
    """Return each given (granted) consent's terms, uses so far and state at block time `now`, by id."""
    ids = sorted({i.lower() for i in consent_ids})
    if not ids:
        return {}
    c, a = t.consents.c, t.accesses.c
    with engine.connect() as conn:
        rows = conn.execute(select(t.consents).where(c.id.in_(ids), c.granted_block.is_not(None))).mappings().all()
        uses = {row.consent: int(row.n) for row in conn.execute(
            select(a.consent, func.count().label("n")).where(a.consent.in_(ids)).group_by(a.consent))}
    standings = {}
    for row in rows:
        terms, used = _terms(row), uses.get(row["id"], 0)
        revoked_at = int(row["revoked_at"] or 0) if row["revoked_block"] is not None else None
        state = ("revoked" if revoked_at is not None else "expired" if terms.valid_until < now
                 else "exhausted" if used >= terms.max_uses else "live")
        standings[row["id"]] = ConsentStanding(row["id"], terms, used, revoked_at, state)
    return standings
