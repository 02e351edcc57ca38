"""What following the chain's tombstones costs a custodian each upkeep round, at scale (no chain, temp SQLite).

Builds a store of N records held by one custodian (every tenth derived from a source held elsewhere)
with their audit-index rows, then indexes T tombstones in the last block: half of the custodian's
own records (sent "elsewhere"), half of sources its derived records were built on. Times the first
round (a full look, shredding what is doomed), then rounds with nothing new, full and incremental.

    .venv/bin/python bench/follow.py                 # 100,000 records, 100 tombstones
    .venv/bin/python bench/follow.py --records 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from eth_utils import to_checksum_address
from sqlalchemy import insert

from consentledger.audit import tables as t
from consentledger.gateway.flows.follow import follow_batch
from consentledger.store import Store, create_schema, make_engine
from consentledger.store.tables import records

CUSTODIAN = to_checksum_address("0x" + "ab" * 20)
SUBJECT = to_checksum_address("0x" + "11" * 20)


def _id() -> str:
    return "0x" + os.urandom(32).hex()


def build(path: Path, n: int, tombstones: int) -> tuple[Store, int]:
    """Return a store of `n` records with `tombstones` tombstones indexed in the last block, and that block."""
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    t.create_index_schema(engine)
    now = datetime.now(UTC)
    held, indexed, sources = [], [], []
    for i in range(n):
        record = _id()
        derived = i % 10 == 0
        held.append({"record_id": record, "custodian": CUSTODIAN, "subject": SUBJECT, "category": 1,
                     "ciphertext": os.urandom(256), "wrapped_dek": os.urandom(60), "kek_id": "kek",
                     "salt": os.urandom(16),
                     "commitment": os.urandom(32), "derived_from": [], "state": "registered", "request_hash": "h",
                     "created_at": now, "updated_at": now})
        indexed.append({"id": record, "custodian": CUSTODIAN, "subject": SUBJECT, "category": 1,
                        "commitment": "0x" + "00" * 32, "retain_until": 2**40, "derived_from": [],
                        "kind": 1 if derived else 0, "registered_block": i, "registered_tx": "0x" + "00" * 32,
                        "registered_at": 0})
        if derived:
            source = _id()
            indexed.append({**indexed[-1], "id": source, "kind": 0, "custodian": "0x" + "cd" * 20})
            sources.append({"record": record, "position": 0, "source": source, "block": i})
    last = n + 1
    own = [row["record_id"] for row in held[1:tombstones:2]]
    foreign = [row["source"] for row in sources[: tombstones - len(own)]]
    events = [{"block": last, "log_index": k, "tx_hash": "0x" + "00" * 32, "timestamp": 0, "contract": "0x" + "00" * 20,
               "name": "RecordTombstoned", "args": {"record": record, "custodian": CUSTODIAN, "reason": 2}}
              for k, record in enumerate(own + foreign)]
    with engine.begin() as conn:
        for table, rows in ((records, held), (t.records, indexed), (t.record_sources, sources), (t.events, events)):
            for at in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[at:at + 5000])
        for k, record in enumerate(own + foreign):
            conn.execute(t.records.update().where(t.records.c.id == record).values(
                tombstone=2, tombstoned_at=0, tombstoned_block=last, tombstoned_log_index=k,
                tombstoned_tx="0x" + "00" * 32))
    return Store(engine), last


def timed(step: Callable[[], object], repeat: int) -> list[float]:
    """Return the milliseconds of `repeat` runs of `step`."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tombstones", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        store, last = build(Path(directory) / "follow.sqlite", args.records, args.tombstones)
        print(f"built {args.records:,} records, {args.tombstones} tombstones in {time.perf_counter() - started:.1f} s")
        start = time.perf_counter()
        first = follow_batch(store, CUSTODIAN, limit=1000)
        print(f"first round (full look + shredding): {(time.perf_counter() - start) * 1000:.0f} ms, shredded "
              f"{len(first.tombstoned_elsewhere)} tombstoned elsewhere + {len(first.sources_destroyed)} derived")
        for name, since in (("full look, nothing new", None), ("incremental, last 12 blocks", last - 12)):
            times = timed(lambda s=since: follow_batch(store, CUSTODIAN, limit=1000, since=s), args.repeat)
            print(f"{name}: p50 {statistics.median(times):.2f} ms, max {max(times):.2f} ms ({args.repeat} rounds)")


if __name__ == "__main__":
    main()
