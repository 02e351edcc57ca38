"""Index a deployment's chain events into SQL, resumably and safely across chain reorganisations.

Each range of blocks is read (logs and the headers they need), then written in one database
transaction together with the cursor, so a crash leaves the index at the end of the last written
range and the next sync reads the interrupted range again. Before each range the indexer checks
the chain still holds the block the cursor names; if not, it finds the first block that changed
(comparing the stored hashes of recent blocks and of every block that had events) and deletes
everything indexed from there on before reading again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, select, update

from consentledger.audit import tables as t
from consentledger.audit.events import ACCESS_RECORDED, ACCESS_RECORDED_ABI, EventDecoder
from consentledger.audit.rules import RuleDecoder
from consentledger.audit.source import BlockRef, ChainSource
from consentledger.audit.writer import WriteCounts, insert, rollback_from, write_events
from consentledger.errors import ChainUnavailableError, IndexMismatchError

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

BATCH_BLOCKS = 2000
"""Default `batch_blocks`: blocks read with one eth_getLogs and written in one database transaction."""
_MAX_RETRIES = 5
"""How many times one range is read again because the chain changed while it was being read."""


@dataclass(frozen=True)
class SyncProgress:
    """Where a sync stands: blocks first..last are to be indexed, up to `block` are done."""

    first: int
    block: int
    last: int

    @property
    def done(self) -> int:
        """Return how many blocks of this sync are indexed."""
        return self.block - self.first + 1

    @property
    def total(self) -> int:
        """Return how many blocks this sync indexes in all."""
        return self.last - self.first + 1


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: the blocks it read, the events it wrote, and any reorg it undid."""

    first_block: int | None
    last_block: int | None
    events: int
    accesses: int
    ranges: int
    rolled_back_from: int | None = None
    refusals: int = 0
    """AccessRefused events among `events`: accesses a batch asked for that broke a rule."""

    def describe(self) -> str:
        """Return a one-line summary."""
        if self.first_block is None:
            done = f"index up to date at block {self.last_block}"
        else:
            done = (
                f"indexed blocks {self.first_block}..{self.last_block}: {self.events} events "
                f"({self.accesses} accesses"
                + (f", {self.refusals} refused attempts" if self.refusals else "") + ")"
            )
        return done + (f"; reorg undone from block {self.rolled_back_from}" if self.rolled_back_from else "")


@dataclass(frozen=True)
class Cursor:
    """The last indexed block (None before the first range) and the deployment the index holds."""

    block: int | None
    hash: str | None
    timestamp: int | None
    deploy_block: int


class Indexer:
    """Keeps an SQL index of one deployment's events in step with its chain."""

    def __init__(
        self, engine: Engine, ledger: Ledger, *, reorg_depth: int = 12, batch_blocks: int = BATCH_BLOCKS
    ) -> None:
        if reorg_depth < 1 or batch_blocks < 1:
            raise ValueError("reorg_depth and batch_blocks must be at least 1")
        self.engine = engine
        self.ledger = ledger
        self.reorg_depth = reorg_depth
        self.batch_blocks = batch_blocks
        self.source = ChainSource(ledger)
        self.decoder = EventDecoder([ledger.consortium.abi, ledger.access.abi])
        # Between them the two ABIs declare every custom error (AccessLedger's own and what it bubbles up).
        self.rules = RuleDecoder([ledger.consortium.abi, ledger.access.abi])
        deployed = self.decoder.event_abi(ACCESS_RECORDED)
        if deployed is None or _shape(deployed) != _shape(ACCESS_RECORDED_ABI):
            raise IndexMismatchError("the deployed AccessLedger's AccessRecorded event differs from the indexed one")
        t.create_index_schema(engine)

    def sync(
        self, to_block: int | None = None, progress: Callable[[SyncProgress], None] | None = None
    ) -> SyncResult:
        """Index every event up to `to_block` (default: the latest block); return what was done."""
        cursor = self._open_cursor()
        rolled_back = self._undo_reorg(cursor)
        cursor = self.cursor()
        head = self.source.block_number()
        last = head if to_block is None else min(to_block, head)
        first = cursor.deploy_block if cursor.block is None else cursor.block + 1
        start, events, accesses, refusals, ranges, retries = first, 0, 0, 0, 0, 0
        while start <= last:
            end = min(start + self.batch_blocks - 1, last)
            written = self._index_range(start, end, cursor)
            if written is None:  # the chain changed under us: undo what it dropped, read again
                retries += 1
                if retries > _MAX_RETRIES:
                    raise ChainUnavailableError(f"the chain kept reorganising while blocks {start}..{end} were read")
                rolled_back = self._undo_reorg(self.cursor()) or rolled_back
                cursor = self.cursor()
                last = min(last, self.source.block_number())
                start = cursor.deploy_block if cursor.block is None else cursor.block + 1
                first = min(first, start)
                continue
            events, accesses, ranges = events + written.events, accesses + written.accesses, ranges + 1
            refusals += written.refusals
            cursor = self.cursor()
            if progress is not None:
                progress(SyncProgress(first, end, last))
            start = end + 1
        return SyncResult(
            first_block=first if ranges else None,
            last_block=cursor.block,
            events=events,
            accesses=accesses,
            ranges=ranges,
            rolled_back_from=rolled_back,
            refusals=refusals,
        )

    def cursor(self) -> Cursor:
        """Return the index's cursor; raise IndexMismatchError if no sync ever ran on this database."""
        with self.engine.connect() as conn:
            return read_cursor(conn)

    # ------------------------------------------------------------------ one range

    def _index_range(self, start: int, end: int, cursor: Cursor) -> WriteCounts | None:
        """Read and write blocks start..end; return what was written, or None if the chain moved."""
        tail = range(max(start, end - self.reorg_depth + 1), end + 1)
        before = self.source.blocks([start, *tail])
        if end not in before or start not in before:
            return None
        if cursor.block is not None and before[start].parent_hash != cursor.hash:
            return None
        raw = self.source.logs(start, end)
        decoded = [e for e in (self.decoder.decode(log) for log in raw) if e is not None]
        headers = {**before, **self.source.blocks({e.block_number for e in decoded} - before.keys())}
        after = self.source.blocks([end])
        if after.get(end) != before[end]:
            return None  # a reorg between the reads: the logs may come from another fork
        if any(headers.get(e.block_number) is None or headers[e.block_number].hash != e.block_hash for e in decoded):
            return None
        event_blocks = {e.block_number for e in decoded}
        with self.engine.begin() as conn:
            counts = write_events(conn, decoded, {n: headers[n].timestamp for n in event_blocks}, self.rules)
            kept = [headers[n] for n in sorted(event_blocks | set(tail))]
            _store_blocks(conn, kept, event_blocks)
            conn.execute(
                update(t.cursor).where(t.cursor.c.id == 1)
                .values(block_number=end, block_hash=before[end].hash, block_timestamp=before[end].timestamp)
            )
            # Hashes of blocks without events are only needed near the cursor, to find a fork point.
            conn.execute(
                delete(t.blocks).where(t.blocks.c.number <= end - self.reorg_depth, t.blocks.c.has_events.is_(False))
            )
        return counts

    # ------------------------------------------------------------------ cursor and reorgs

    def _open_cursor(self) -> Cursor:
        """Return the cursor, creating it on first use; refuse an index of another deployment."""
        deployment = self.ledger.deployment
        identity = {
            "chain_id": deployment.chain_id,
            "consortium": self.source.addresses[0],
            "access_ledger": self.source.addresses[1],
            "deploy_block": deployment.deploy_block,
        }
        with self.engine.begin() as conn:
            row = conn.execute(select(t.cursor).where(t.cursor.c.id == 1)).mappings().first()
            if row is None:
                conn.execute(insert(conn, t.cursor).values(id=1, **identity).on_conflict_do_nothing())
            elif any(row[k] != v for k, v in identity.items()):
                raise IndexMismatchError(
                    f"the index holds chain {row['chain_id']} AccessLedger {row['access_ledger']}, "
                    f"not chain {deployment.chain_id} AccessLedger {identity['access_ledger']}: use another --db"
                )
            return read_cursor(conn)

    def _undo_reorg(self, cursor: Cursor) -> int | None:
        """If the chain no longer holds the cursor's block, roll the index back; return the fork block."""
        if cursor.block is None:
            return None
        fork = self._fork_point(cursor)
        if fork is None:
            return None
        parent = self.source.blocks([fork - 1]).get(fork - 1) if fork > cursor.deploy_block else None
        with self.engine.begin() as conn:
            rollback_from(conn, fork)
            conn.execute(
                update(t.cursor).where(t.cursor.c.id == 1).values(
                    block_number=parent.number if parent else None,
                    block_hash=parent.hash if parent else None,
                    block_timestamp=parent.timestamp if parent else None,
                )
            )
        return fork

    def _fork_point(self, cursor: Cursor) -> int | None:
        """Return the first indexed block the chain replaced, or None if the cursor's block stands.

        Walks the stored block hashes down from the cursor: the recent ones (every block of the
        last `reorg_depth`), then every block that had events. Blocks commit to their parents, so
        the first stored block the chain still holds marks everything above it as changed.
        """
        assert cursor.block is not None
        standing = self.source.blocks([cursor.block]).get(cursor.block)
        if standing is not None and standing.hash == cursor.hash:
            return None
        below = cursor.block + 1
        chunk = max(self.reorg_depth, 64)
        while True:
            with self.engine.connect() as conn:
                stored = conn.execute(
                    select(t.blocks.c.number, t.blocks.c.hash)
                    .where(t.blocks.c.number < below)
                    .order_by(t.blocks.c.number.desc())
                    .limit(chunk)
                ).all()
            if not stored:
                return cursor.deploy_block
            chain = self.source.blocks(n for n, _ in stored)
            for number, stored_hash in stored:
                if number in chain and chain[number].hash == stored_hash:
                    return number + 1
            below = stored[-1][0]


def read_cursor(conn: Connection) -> Cursor:
    """Return the cursor row of an index database; raise IndexMismatchError if it has never synced."""
    row = conn.execute(select(t.cursor).where(t.cursor.c.id == 1)).mappings().first()
    if row is None:
        raise IndexMismatchError("the audit index is empty: run `consentledger index` first")
    return Cursor(row["block_number"], row["block_hash"], row["block_timestamp"], row["deploy_block"])


def _store_blocks(conn: Connection, kept: Sequence[BlockRef], event_blocks: set[int]) -> None:
    rows = [{"number": b.number, "hash": b.hash, "timestamp": b.timestamp, "has_events": b.number in event_blocks}
            for b in kept]
    if rows:
        statement = insert(conn, t.blocks)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["number"],
                set_={"hash": statement.excluded.hash, "timestamp": statement.excluded.timestamp,
                      "has_events": statement.excluded.has_events},
            ),
            rows,
        )


def _shape(abi: Any) -> list[tuple[str, str, bool]]:
    return [(i["name"], i["type"], bool(i.get("indexed"))) for i in abi["inputs"]]

