"""Audit index at scale: decode + bulk insert, subject trace latency, full hash-chain verification.

Builds an index of N synthetic AccessRecorded events without a chain:

- generation: raw JSON-RPC logs (0x-hex topics and data, block numbers, block/tx hashes, log
  indexes) over R records of S subjects, whose heads form real hash chains per record (the keccak
  formula of `chain.history.link`, cross-checked against `link` itself on the first events);
- decoding: every log through `audit.decode_access_log`, the indexer's own path;
- insert: `audit.bulk_insert_accesses` in batches, one transaction per batch as the indexer does.

The reference rows trace and verify join are written untimed: the governance events (purposes,
categories, member admissions) as the indexer stores them, replayed into their tables by the
writer's own `rebuild_governance`, then records, one consent per PROTECTED record, and the cursor.
Then it times `audit.trace(engine, subject=…)` over random subjects, and `audit.verify` over the
whole index. verify asks the chain for each record's head; here a clearly labelled stand-in
(`_StandInChain`) answers those `eth_call`s from the heads computed during generation, in memory,
so the figure is the index read + every rule check + the full hash-chain recomputation, without
network time. Prints figures and goals; asserts nothing.

Run: .venv/bin/python bench/audit.py [--events 1000000] [--subjects 10000] [--records 100000]
     [--db sqlite:///path.db | postgresql://postgres@127.0.0.1:5432/test] [--batch 5000] [--traces 200]
     (default --db: a temp SQLite file; a PostgreSQL URL gets a temp schema, dropped at the end)
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy
from eth_utils import keccak, to_checksum_address
from sqlalchemy import Engine, text

from consentledger.audit import bulk_insert_accesses, decode_access_log, trace, verify
from consentledger.audit import tables as t
from consentledger.audit.events import ACCESS_RECORDED_ABI, ZERO_HASH
from consentledger.audit.writer import insert, rebuild_governance
from consentledger.chain.compile import compile_contracts
from consentledger.chain.history import GENESIS, link
from consentledger.chain.ledger import Ledger
from consentledger.governance import purpose_mask
from consentledger.store import make_engine
from consentledger.types import Role, Sensitivity

OPEN_CATEGORY, PROTECTED_CATEGORY = 1, 2
PROTECTED_SHARE = 0.3
"""Share of records in the PROTECTED category (each with one consent naming it); the rest are OPEN."""
PURPOSES = {1: "epidemic-control", 2: "research", 3: "statistics", 4: "audit"}
REQUESTERS, CUSTODIANS = 16, 4
ACTORS = 50
"""Acting clients (staff and apps) of the requesters, as pseudonyms on chain."""
LOGS_PER_BLOCK = 8
FIRST_BLOCK, BLOCK_SECONDS, GENESIS_TIME = 100, 2, 1_700_000_000
FAR_FUTURE = 2**39
CROSS_CHECK = 2_000
"""How many generated heads are recomputed with `chain.history.link` itself."""
TRACE_WARMUP = 5
GOAL_TRACE_P50_MS, GOAL_VERIFY_S = 50.0, 20.0

ACCESS_SIGNATURE = "AccessRecorded(uint24,bytes32,address,bytes32,uint8,bytes32,bool,bytes32,uint40)"
ACCESS_TOPIC = "0x" + keccak(text=ACCESS_SIGNATURE).hex()
ACCESS_LEDGER = to_checksum_address(keccak(text="bench access ledger")[:20])
CONSORTIUM = to_checksum_address(keccak(text="bench consortium")[:20])


def address(label: str) -> str:
    """Return a deterministic checksummed address for `label`."""
    return str(to_checksum_address(keccak(text=label)[:20]))


def word(value: int) -> bytes:
    """Return `value` as one big-endian 32-byte ABI word."""
    return value.to_bytes(32, "big")


@dataclass(frozen=True)
class Record:
    """A synthetic record: its id, owner, category, and (PROTECTED only) the one requester/purpose/consent."""

    id: bytes
    subject: str
    custodian: str
    category: int
    requester: str | None
    purpose: int | None
    consent: bytes


@dataclass
class World:
    """The synthetic consortium: members, subjects, records, and each record's chain so far."""

    requesters: list[str]
    custodians: list[str]
    subjects: list[str]
    records: list[Record]
    seq: list[int] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)
    actors: list[bytes] = field(default_factory=lambda: [keccak(text=f"bench clerk {i}") for i in range(ACTORS)])

    @classmethod
    def build(cls, subjects: int, records: int, rng: random.Random) -> World:
        """Return a world of `subjects` subjects owning `records` records, none accessed yet."""
        requesters = [address(f"bench requester {i}") for i in range(REQUESTERS)]
        custodians = [address(f"bench custodian {i}") for i in range(CUSTODIANS)]
        people = [address(f"bench subject {i}") for i in range(subjects)]
        items = []
        for i in range(records):
            rid = keccak(text=f"bench record {i}")
            subject, custodian = people[i % subjects], custodians[rng.randrange(CUSTODIANS)]
            if rng.random() < PROTECTED_SHARE:
                consent = keccak(text=f"bench consent {i}")
                items.append(Record(rid, subject, custodian, PROTECTED_CATEGORY, rng.choice(requesters),
                                    rng.choice(list(PURPOSES)), consent))
            else:
                items.append(Record(rid, subject, custodian, OPEN_CATEGORY, None, None, bytes(32)))
        return cls(requesters, custodians, people, items, [0] * records, [GENESIS] * records)


def generate_logs(world: World, count: int, first_event: int, rng: random.Random) -> list[dict[str, Any]]:
    """Return the next `count` AccessRecorded logs in raw JSON-RPC form, advancing each record's chain."""
    logs = []
    block_hash = ""
    for n in range(first_event, first_event + count):
        block, log_index = divmod(n, LOGS_PER_BLOCK)
        block += FIRST_BLOCK
        if log_index == 0 or not block_hash:
            block_hash = "0x" + rng.randbytes(32).hex()
        index = rng.randrange(len(world.records))
        record = world.records[index]
        requester = record.requester or world.requesters[rng.randrange(REQUESTERS)]
        purpose = record.purpose or rng.randrange(1, len(PURPOSES) + 1)
        seq = world.seq[index] + 1
        timestamp = GENESIS_TIME + block * BLOCK_SECONDS
        requester_word = bytes(12) + bytes.fromhex(requester[2:])
        # The same bytes eth_abi encodes in chain.history.link: eight static words, keccak'd (never identified).
        previous, actor = world.heads[index], world.actors[rng.randrange(ACTORS)]
        head = keccak(previous + word(seq) + requester_word + actor + word(purpose) + record.consent + word(0)
                      + word(timestamp))
        world.seq[index], world.heads[index] = seq, head
        logs.append({
            "address": ACCESS_LEDGER,
            "topics": [ACCESS_TOPIC, "0x" + word(seq).hex(), "0x" + record.id.hex(), "0x" + requester_word.hex()],
            "data": "0x" + (actor + word(purpose) + record.consent + word(0) + head + word(timestamp)).hex(),
            "blockNumber": hex(block),
            "blockHash": block_hash,
            "transactionHash": "0x" + rng.randbytes(32).hex(),
            "transactionIndex": hex(log_index),
            "logIndex": hex(log_index),
            "removed": False,
        })
    return logs


def cross_check(logs: list[dict[str, Any]]) -> int:
    """Return how many of `logs` have a head that `chain.history.link` reproduces from the previous one."""
    last: dict[str, bytes] = {}
    matched = 0
    for log in logs:
        row = decode_access_log(log)
        entry = row.entry()
        matched += link(last.get(row.record, GENESIS), entry) == entry.head
        last[row.record] = entry.head
    return matched


def governance_events(world: World) -> list[dict[str, Any]]:
    """Return the purposes, categories and admissions as `idx_events` rows, as the indexer stores them."""
    category = {"retention": 10 * 365 * 86_400, "minAggregateSubjects": 0, "allowedPurposes": purpose_mask(PURPOSES),
                "fields": ["note"], "identifyingFields": []}
    members = [(a, f"requester {i}", Role.REQUESTER) for i, a in enumerate(world.requesters)]
    members += [(a, f"custodian {i}", Role.CUSTODIAN) for i, a in enumerate(world.custodians)]
    events = [(1, "PurposeAdded", {"purpose": pid, "name": name, "sunset": 0}) for pid, name in PURPOSES.items()]
    events += [
        (2, "CategoryAdded", {"category": OPEN_CATEGORY, "name": "open-stats", "sensitivity": int(Sensitivity.OPEN),
                              **category}),
        (2, "CategoryAdded", {"category": PROTECTED_CATEGORY, "name": "lab-result",
                              "sensitivity": int(Sensitivity.PROTECTED), **category}),
    ]
    events += [
        (3, "MemberAdmitted", {"account": a, "roles": int(role), "name": name, "x25519Key": ZERO_HASH,
                               "gatewayUrl": "http://bench"})
        for a, name, role in members
    ]
    return [
        {"block": block, "log_index": n, "tx_hash": ZERO_HASH, "timestamp": GENESIS_TIME + block * BLOCK_SECONDS,
         "contract": CONSORTIUM, "name": name, "args": args}
        for n, (block, name, args) in enumerate(events)
    ]


def write_reference_rows(engine: Engine, world: World, last_block: int) -> None:
    """Write the governance events (and their tables), records, consents and cursor that trace and verify join."""
    reg_block = FIRST_BLOCK - 1
    reg_time = GENESIS_TIME + reg_block * BLOCK_SECONDS
    zero_tx = ZERO_HASH
    with engine.begin() as conn:
        conn.execute(insert(conn, t.events), governance_events(world))
        rebuild_governance(conn)
        for start in range(0, len(world.records), 10_000):
            chunk = world.records[start : start + 10_000]
            conn.execute(insert(conn, t.records), [
                {"id": "0x" + r.id.hex(), "custodian": r.custodian, "subject": r.subject, "category": r.category,
                 "commitment": "0x" + keccak(r.id).hex(), "retain_until": FAR_FUTURE, "derived_from": [],
                 "registered_block": reg_block, "registered_tx": zero_tx, "registered_at": reg_time}
                for r in chunk
            ])
            consents = [
                {"id": "0x" + r.consent.hex(), "subject": r.subject, "grantee": r.requester,
                 "category": r.category, "record": "0x" + r.id.hex(), "purpose": r.purpose,
                 "valid_until": FAR_FUTURE, "max_uses": 2**32 - 1, "identified": False, "nonce": "0",
                 "granted_block": reg_block, "granted_log_index": 0, "granted_tx": zero_tx,
                 "granted_at": reg_time}
                for r in chunk
                if r.category == PROTECTED_CATEGORY
            ]
            if consents:
                conn.execute(insert(conn, t.consents), consents)
        conn.execute(insert(conn, t.cursor).values(
            id=1, chain_id=1337, consortium=CONSORTIUM, access_ledger=ACCESS_LEDGER, deploy_block=1,
            block_number=last_block, block_hash=ZERO_HASH, block_timestamp=GENESIS_TIME + last_block * BLOCK_SECONDS,
        ))


class _StandInChain:
    """STAND-IN for the chain node, for verify only: answers `head(bytes32)` eth_calls from memory.

    It holds the heads computed while generating (what AccessLedger.head would return), so verify's
    head comparison runs as it does against a node, minus the network round trips.
    """

    def __init__(self, heads: dict[bytes, bytes]) -> None:
        self._heads = heads
        self.calls = 0

    def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        return self.make_batch_request([(method, params)])[0]

    def make_batch_request(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        answers = []
        for n, (method, params) in enumerate(calls):
            if method != "eth_call":
                raise NotImplementedError(f"the bench stand-in chain only answers head() calls, not {method}")
            self.calls += 1
            record = bytes.fromhex(params[0]["data"][2 + 8 :])
            answers.append({"jsonrpc": "2.0", "id": n, "result": "0x" + self._heads.get(record, GENESIS).hex()})
        return answers


def stand_in_ledger(chain: _StandInChain) -> Ledger:
    """Return the bits of a Ledger that verify touches, over the stand-in chain (real AccessLedger ABI)."""
    abi = compile_contracts()["AccessLedger"].abi
    return cast(Ledger, SimpleNamespace(
        consortium=SimpleNamespace(address=CONSORTIUM),
        access=SimpleNamespace(address=ACCESS_LEDGER, abi=abi),
        w3=SimpleNamespace(provider=chain),
    ))


@contextmanager
def index_database(url: str | None) -> Iterator[tuple[Engine, str]]:
    """Yield an empty index database and a label: a temp SQLite file, a given file, or a temp PG schema."""
    if url is None or url == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
            try:
                yield engine, f"SQLite {sqlite_version()} (temp file)"
            finally:
                engine.dispose()
        return
    if url.startswith("sqlite"):
        engine = make_engine(url)
        try:
            yield engine, f"SQLite {sqlite_version()} ({url})"
        finally:
            engine.dispose()
        return
    schema = f"bench_audit_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        yield engine, f"PostgreSQL {version} (temp schema {schema})"
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def sqlite_version() -> str:
    """Return the SQLite library version Python links."""
    import sqlite3

    return sqlite3.sqlite_version


def timed(operation: Callable[[], Any]) -> tuple[Any, float]:
    """Return what `operation` returns and how many seconds it took."""
    start = time.perf_counter()
    result = operation()
    return result, time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    """Build the index on `args.db`, then print ingest, trace and verify figures."""
    rng = random.Random(args.seed)
    world = World.build(args.subjects, args.records, rng)
    with index_database(args.db) as (engine, label):
        print(f"\n== {label}: {args.events:,} events, {args.records:,} records, {args.subjects:,} subjects ==")
        t.create_index_schema(engine)
        gen_s = decode_s = insert_s = 0.0
        matched = checked = 0
        total_start = time.perf_counter()
        for first in range(0, args.events, args.batch):
            start = time.perf_counter()
            logs = generate_logs(world, min(args.batch, args.events - first), first, rng)
            gen_s += time.perf_counter() - start
            if checked < CROSS_CHECK:
                matched += cross_check(logs[: CROSS_CHECK - checked])
                checked += min(len(logs), CROSS_CHECK - checked)
            start = time.perf_counter()
            rows = [decode_access_log(log) for log in logs]
            decode_s += time.perf_counter() - start
            start = time.perf_counter()
            with engine.begin() as conn:
                bulk_insert_accesses(conn, rows)
            insert_s += time.perf_counter() - start
        ingest_s = time.perf_counter() - total_start
        last_block = FIRST_BLOCK + (args.events - 1) // LOGS_PER_BLOCK
        _, ref_s = timed(lambda: write_reference_rows(engine, world, last_block))
        n = args.events
        print(f"heads cross-checked with chain.history.link: {matched:,}/{checked:,} match")
        print(f"generate raw logs:          {n / gen_s:>10,.0f} events/s  ({gen_s:7.1f} s)")
        print(f"decode_access_log:          {n / decode_s:>10,.0f} events/s  ({decode_s:7.1f} s)")
        print(f"bulk_insert_accesses:       {n / insert_s:>10,.0f} events/s  ({insert_s:7.1f} s, "
              f"batches of {args.batch:,})")
        print(f"decode + insert:            {n / (decode_s + insert_s):>10,.0f} events/s  "
              f"({decode_s + insert_s:7.1f} s)")
        print(f"total ingest (gen+dec+ins): {n / ingest_s:>10,.0f} events/s  ({ingest_s:7.1f} s; "
              f"reference rows, untimed above: {ref_s:.1f} s)")
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))  # autovacuum would, moments after a bulk load

        subjects = rng.sample(world.subjects, min(args.traces + TRACE_WARMUP, len(world.subjects)))
        for subject in subjects[:TRACE_WARMUP]:
            trace(engine, subject=subject)
        latencies, lines = [], []
        for subject in subjects[TRACE_WARMUP:]:
            start = time.perf_counter()
            found = trace(engine, subject=subject)
            latencies.append((time.perf_counter() - start) * 1000)
            lines.append(len(found))
        p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[18]
        print(f"trace(subject=…), {len(latencies)} subjects: p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
              f"max {max(latencies):6.1f} ms  ({statistics.fmean(lines):.0f} lines each on average)  "
              f"goal p50 <= {GOAL_TRACE_P50_MS:.0f} ms: {'met' if p50 <= GOAL_TRACE_P50_MS else 'NOT met'}")

        chain = _StandInChain({r.id: h for r, h in zip(world.records, world.heads, strict=True)})
        ledger = stand_in_ledger(chain)
        report, verify_s = timed(lambda: verify(engine, ledger))
        print(f"verify (full hash chains):  {report.accesses / verify_s:>10,.0f} events/s  ({verify_s:7.1f} s)  "
              f"goal <= {GOAL_VERIFY_S:.0f} s: {'met' if verify_s <= GOAL_VERIFY_S else 'NOT met'}")
        print(f"  {report.summary()}; {chain.calls:,} head() calls answered by the stand-in chain")
        if not report.ok:
            for discrepancy in report.discrepancies[:5]:
                print(f"  ! {discrepancy.line()}")


def main() -> None:
    """Parse the options and run the benchmark on each requested database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--db", action="append",
                        help="sqlite (temp file, the default), sqlite:///path or postgresql://…; repeatable")
    parser.add_argument("--batch", type=int, default=5_000, help="events per bulk insert (one transaction each)")
    parser.add_argument("--traces", type=int, default=200, help="subjects traced")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, {platform.machine()}, "
          f"event {ACCESS_RECORDED_ABI['name']}")
    for url in args.db or [None]:
        run(argparse.Namespace(**{**vars(args), "db": url}))


if __name__ == "__main__":
    main()
