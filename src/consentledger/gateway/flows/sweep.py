"""The custodian's sweeper: crypto-shred records past retention or whose purposes all ended, then tombstone them.

What is due comes from the gateway's audit index, which lives in the same database as the store:
`idx_records.retain_until` is the `retainUntil` the chain set at registration (RecordRegistered
carries it), `idx_categories` and `idx_purposes` hold the catalog, and the index cursor holds the
latest indexed block and its timestamp. So the sweeper needs no column of its own: the values are
the chain's, read in bulk, undone by the indexer on a reorg, and it works for records stored before
the sweeper existed. Records are compared with the latest block's timestamp (the chain's own clock,
`consentledger.lifecycle`), never the local clock: a record is shredded only once the chain already
refuses every access to it.

Each batch shreds its records and queues their tombstones in one database transaction
(`Store.shred`), so a crash leaves each record either live with no tombstone queued or shredded with
its tombstone queued; the relay sends queued tombstones after any restart, and no record is
tombstoned on chain while its key exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, func, or_, select

from consentledger.audit import tables as t
from consentledger.audit.indexer import read_cursor
from consentledger.audit.lifecycle import catalog_purposes
from consentledger.chain.relay import tombstone_payload
from consentledger.lifecycle import ended_categories, tombstone_due
from consentledger.store import OutboxStatus, QueuedWrite, RecordState, Store
from consentledger.store.db import flush_deleted
from consentledger.store.tables import outbox, records
from consentledger.types import TombstoneReason

if TYPE_CHECKING:
    from consentledger.gateway.runtime import Gateway

SWEEPER_LOCK = "consentledger-sweeper"
"""The leader lock under which one replica at a time shreds and tombstones due records (PostgreSQL)."""

MAX_TOMBSTONE_TRIES = 3
"""How many tombstone writes a shredded record gets in all when earlier ones failed (see `sweep_batch`)."""


@dataclass(frozen=True)
class Swept:
    """A record shredded by a sweep and why its tombstone says it was destroyed."""

    record: str
    reason: TombstoneReason


@dataclass(frozen=True)
class SweepReport:
    """What a sweep did, as of the latest indexed block: records shredded, failed tombstones queued again."""

    block: int | None
    block_time: int | None
    shredded: tuple[Swept, ...] = ()
    requeued: tuple[str, ...] = ()

    def merged(self, later: SweepReport) -> SweepReport:
        """Return this report followed by a later batch's."""
        return SweepReport(later.block, later.block_time, self.shredded + later.shredded,
                           self.requeued + later.requeued)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "block": self.block,
            "block_time": self.block_time,
            "shredded": [{"record": s.record, "reason": s.reason.name.lower()} for s in self.shredded],
            "requeued": list(self.requeued),
        }


def sweep_batch(store: Store, custodian: str, *, limit: int) -> SweepReport:
    """Shred up to `limit` due records of `custodian` and queue their tombstones; the index must be synced.

    Also queues again the tombstone of a record shredded here whose tombstone writes all failed
    (e.g. the node refused the transaction) while the chain still shows it live, up to
    MAX_TOMBSTONE_TRIES writes per record, so a shredded record does not stay live on chain.
    """
    with store.engine.connect() as conn:
        cursor = read_cursor(conn)
        if cursor.timestamp is None:
            return SweepReport(cursor.block, None)
        now = cursor.timestamp
        due = _due(conn, custodian, now, limit)
        stranded = _stranded(conn, custodian, limit)
    doomed = [QueuedWrite("tombstone", tombstone_payload(record, reason), record) for record, reason in due]
    shredded = set(store.shred(doomed, signer=custodian))
    for record, reason in stranded:
        store.enqueue("tombstone", tombstone_payload(record, reason), custodian, record)
    return SweepReport(
        cursor.block, now, tuple(Swept(r, reason) for r, reason in due if r in shredded), tuple(r for r, _ in stranded)
    )


def sweep(gw: Gateway, *, batch: int) -> SweepReport:
    """Shred and tombstone every due record of the gateway's organisation, `batch` records per transaction.

    Each batch is chosen from a freshly synced index and its tombstones relayed before the next.
    The caller holds the sweeper's leader lock (`sweep_now`).
    """
    report: SweepReport | None = None
    try:
        while True:
            with gw.index_held():
                done = sweep_batch(gw.store, gw.org, limit=batch)
            report = done if report is None else report.merged(done)
            if done.shredded or done.requeued:
                gw.relay_now()
            if len(done.shredded) + len(done.requeued) < batch:
                return report
    finally:
        if report is not None and report.shredded:
            flush_deleted(gw.store.engine)


def sweep_now(gw: Gateway, batch: int | None = None) -> SweepReport | None:
    """Return the report of a sweep run now (`sweep`), or None if another replica is sweeping.

    One sweep at a time per process (`Gateway.sweep_lock`); one leader among replicas (SWEEPER_LOCK).
    """
    with gw.sweep_lock, gw.store.leader_lock(SWEEPER_LOCK) as leader:
        if not leader:
            return None
        return sweep(gw, batch=batch or gw.settings.sweep_batch)


def drain(gw: Gateway, *, timeout: float) -> int:
    """Relay the gateway's queued chain writes until none is left or `timeout` seconds pass; return how many remain."""
    deadline = time.monotonic() + timeout
    while True:
        counts = gw.store.count_by_status()
        left = counts[OutboxStatus.PENDING.value] + counts[OutboxStatus.SENT.value]
        if left == 0 or time.monotonic() >= deadline:
            return left
        gw.relay_now()
        time.sleep(0.05)  # a row another relay holds (PostgreSQL replicas) must not make this spin


def _due(conn: Connection, custodian: str, now: int, limit: int) -> list[tuple[str, TombstoneReason]]:
    """Return up to `limit` live, unshredded records of `custodian` due at block time `now`, oldest first."""
    categories, sunsets = catalog_purposes(conn)
    ended = ended_categories(categories, sunsets, now)
    r, i = records.c, t.records.c
    rows = conn.execute(
        select(r.record_id, i.category, i.retain_until)
        .select_from(records.join(t.records, i.id == r.record_id))
        .where(r.custodian == custodian, r.state != RecordState.SHREDDED.value, i.custodian == custodian,
               i.tombstone.is_(None), or_(i.retain_until < now, i.category.in_(ended)))
        .order_by(i.retain_until, r.record_id)
        .limit(limit)
    ).all()
    due = [(row.record_id, tombstone_due(row.retain_until, categories.get(row.category, ()), sunsets, now))
           for row in rows]
    return [(record, reason) for record, reason in due if reason is not None]


def _stranded(conn: Connection, custodian: str, limit: int) -> list[tuple[str, TombstoneReason]]:
    """Return shredded records still live on chain whose every tombstone write failed, with the reason to retry."""
    r, i, o = records.c, t.records.c, outbox.c
    tombstones = and_(o.record_id == r.record_id, o.kind == "tombstone")
    unfinished = select(o.id).where(tombstones, o.status != OutboxStatus.FAILED.value).exists()
    tries = select(func.count()).where(tombstones).scalar_subquery()
    rows = conn.execute(
        select(r.record_id)
        .select_from(records.join(t.records, i.id == r.record_id))
        .where(r.custodian == custodian, r.state == RecordState.SHREDDED.value, i.tombstone.is_(None),
               ~unfinished, tries < MAX_TOMBSTONE_TRIES)
        .limit(limit)
    ).all()
    stranded = []
    for row in rows:
        last = conn.execute(
            select(o.payload).where(o.record_id == row.record_id, o.kind == "tombstone").order_by(o.id.desc())
        ).first()
        reason = TombstoneReason(int(last.payload["reason"])) if last is not None else TombstoneReason.CUSTODIAN
        stranded.append((row.record_id, reason))
    return stranded
