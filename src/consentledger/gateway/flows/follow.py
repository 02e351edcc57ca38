"""Follow the chain's tombstones: shred here what the chain says is dead, every upkeep round.

Two kinds of tombstone reach a custodian from outside its own flows, both through the audit index
(chain events in the store's database, so this works whichever agency or key sent them):

- A tombstone of one of its own records that it did not send: its signer key was used outside the
  gateway. The chain already refuses every access, so the record is shredded at once (ciphertext,
  wrapped key, salt) and no second tombstone is written; the record then reads as destroyed with
  the chain's reason.
- A tombstone of an original source of a derived record or aggregate it holds, at any custodian
  (`gateway.flows.sources`): the derived record is shredded and its tombstone (SOURCE_DESTROYED)
  queued in one database transaction (`Store.shred`), as the sweeper does, and relayed at once.

It runs under the sweeper's leader lock (one replica at a time) right after each round's index sync,
so a tombstone the index has seen is acted on in the same or the next round, not at the next sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from consentledger.audit import tables as t
from consentledger.audit.indexer import read_cursor
from consentledger.chain.relay import tombstone_payload
from consentledger.gateway.flows.sources import CHUNK, orphaned
from consentledger.gateway.flows.sweep import SWEEPER_LOCK
from consentledger.gateway.runtime import Gateway
from consentledger.store import QueuedWrite, RecordState, Store
from consentledger.store.db import flush_deleted
from consentledger.store.tables import records
from consentledger.types import TombstoneReason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Followed:
    """What one round did: records shredded after a tombstone sent elsewhere, derived records shredded."""

    tombstoned_elsewhere: tuple[str, ...] = ()
    sources_destroyed: tuple[str, ...] = ()

    def merged(self, later: Followed) -> Followed:
        """Return this round's outcome followed by a later batch's."""
        return Followed(self.tombstoned_elsewhere + later.tombstoned_elsewhere,
                        self.sources_destroyed + later.sources_destroyed)


def follow_batch(store: Store, custodian: str, *, limit: int, since: int | None = None) -> Followed:
    """Shred up to `limit` records of each kind above held by `custodian`; the index must be synced.

    With `since` only tombstones indexed in blocks after it are looked at (an indexed range read of
    `idx_events`); without, every tombstone the index holds (a scan: once per process).
    """
    with store.engine.connect() as conn:
        if since is None:
            elsewhere = _tombstoned_live(conn, custodian, limit)
            derived = orphaned(conn, custodian, limit)
        else:
            ended = _tombstoned_since(conn, since)
            elsewhere = _live_among(conn, custodian, ended, limit)
            derived = orphaned(conn, custodian, limit, sources=ended)
    shredded = store.shred_tombstoned(elsewhere)
    doomed = [QueuedWrite("tombstone", tombstone_payload(record, TombstoneReason.SOURCE_DESTROYED), record)
              for record in derived]
    return Followed(tuple(shredded), tuple(store.shred(doomed, signer=custodian)))


class TombstoneFollower:
    """Follows one gateway's index round after round, remembering (in this process) how far it has read."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.seen: int | None = None  # every tombstone up to this block is acted on; None: nothing yet

    def run(self) -> Followed | None:
        """Shred what new tombstones doomed (see the module), relay the new tombstones; None if not leader.

        Reads the index as the caller's sync left it (`upkeep_once` syncs first). Blocks the last
        `reorg_depth` of those already read are read again: a reorganisation may move a tombstone
        to another block, and acting twice on one is harmless.
        """
        gw = self.gw
        done = Followed()
        with gw.sweep_lock, gw.store.leader_lock(SWEEPER_LOCK) as leader:
            if not leader:
                self.seen = None  # another replica follows now; if this one leads again, it looks at everything
                return None
            with gw.store.engine.connect() as conn:
                head = read_cursor(conn).block
            since = None if self.seen is None else self.seen - gw.indexer.reorg_depth
            batch = gw.settings.sweep_batch
            while True:
                found = follow_batch(gw.store, gw.org, limit=batch, since=since)
                done = done.merged(found)
                if found.sources_destroyed:
                    gw.relay_now()
                if len(found.tombstoned_elsewhere) < batch and len(found.sources_destroyed) < batch:
                    break
            self.seen = head
        if done.tombstoned_elsewhere or done.sources_destroyed:
            flush_deleted(gw.store.engine)
            log.info("shredded after tombstones on chain: not sent here %s; source destroyed %s",
                     list(done.tombstoned_elsewhere), list(done.sources_destroyed))
        return done


def _tombstoned_since(conn: Connection, since: int) -> list[str]:
    """Return the records tombstoned in indexed blocks after `since`, in chain order."""
    e = t.events.c
    rows = conn.execute(
        select(e.args).where(e.block > since, e.name == "RecordTombstoned").order_by(e.block, e.log_index)
    ).scalars().all()
    return [str(args["record"]).lower() for args in rows]


def _live_among(conn: Connection, custodian: str, ended: Sequence[str], limit: int) -> list[str]:
    """Return up to `limit` of the records `ended` held by `custodian` and not shredded here."""
    found: set[str] = set()
    r = records.c
    for at in range(0, len(ended), CHUNK):
        rows = conn.execute(
            select(r.record_id, r.custodian)
            .where(r.record_id.in_(ended[at:at + CHUNK]), r.state != RecordState.SHREDDED.value)
        ).all()
        # The custodian is compared here, not in SQL: there SQLite would walk the custodian's index (every record).
        found.update(row.record_id for row in rows if row.custodian == custodian)
    return sorted(found)[:limit]


def _tombstoned_live(conn: Connection, custodian: str, limit: int) -> list[str]:
    """Return up to `limit` records held by `custodian`, not shredded here, whose tombstone is on chain."""
    r, i = records.c, t.records.c
    rows = conn.execute(
        select(r.record_id)
        .select_from(records.join(t.records, i.id == r.record_id))
        .where(r.custodian == custodian, r.state != RecordState.SHREDDED.value, i.tombstone.is_not(None))
        .order_by(r.record_id)
        .limit(limit)
    ).scalars().all()
    return [str(row) for row in rows]
