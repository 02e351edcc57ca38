"""Soak: mixed load for --minutes against a real chain, a custodian and a requester gateway; resources over time.

Starts anvil, deploys, admits a custodian, a requester and an auditor (`access.py`'s set-up), starts
both gateways as real processes (the requester on PostgreSQL with --postgres, in its own schema of
db `test` on 127.0.0.1:5432, dropped at the end) and runs --workers client threads, each with its
own data subjects, drawing operations at random by weight:

  ingest (custodian), consent grant (subject, at the requester), access (OPEN; ONE_TIME under a
  consent), batch access, consent request (filed by the requester's client, granted by the subject),
  revoke (then an access under the revoked consent, which must be refused), erasure (subject, at the
  custodian), audit reads (auditor listing, subject history, full verify), and a stranger (a fresh key,
  no member) asking for the audit listing, which must be refused.

Every --interval seconds it prints, for each gateway and the chain, resident memory, open file
descriptors (/proc/PID/fd) and threads, each store's size, and per operation the count, p50/p95/p99
and errors in the interval. At the end: the growth of each resource from the first to the last third
of the run (per minute), a flag on anything still growing at that rate in the last third, the stores'
bytes per record and per access in each half, and which tables grew by how many rows.

Run: .venv/bin/python bench/soak.py [--minutes 10] [--interval 30] [--workers 4] [--postgres] [--weight OP=N ...]
Prints figures; asserts nothing (exits 1 if an operation failed or something looks unbounded).
"""

from __future__ import annotations

import argparse
import random
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from access import ONE_TIME, OPEN, PURPOSE, _stopper, register_client, set_up  # the shared set-up (same folder)
from eth_account import Account
from eth_account.signers.local import LocalAccount
from soak_probe import PostgresProbe, ProcessSample, SqliteProbe, StoreProbe, Trend, sample_process, trend
from sqlalchemy import text

from consentledger import governance
from consentledger.actors import ClientRole
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.node import ChainKind, start_node
from consentledger.client import AccessAsk, GatewayClient
from consentledger.client_requests import file_request, grant_request
from consentledger.consent import Consent
from consentledger.errors import ConsentLedgerError, GatewayError, GatewayUnavailableError
from consentledger.localnet import Agency
from consentledger.store import make_engine
from consentledger.types import Role

AUDITOR_DEV = 8
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MIB = 1 << 20
BATCH = 20
CONSENT_USES = 1  # a ONE_TIME category's consents allow one use each
WEIGHTS = {
    "ingest": 16, "access": 22, "access.consent": 10, "access.batch": 4, "grant": 10, "request": 5,
    "revoke": 5, "erasure": 2, "audit.accesses": 6, "audit.history": 5, "audit.verify": 1, "stranger": 2,
}
"""How often each operation is drawn (one that cannot run for lack of data falls back to ingest or grant)."""
# Growth counted as unbounded: more than this much (absolute, relative to the first third), still climbing.
LIMITS = {"rss": (16 * MIB, 0.10), "fds": (8, 0.20), "threads": (4, 0.20)}


def _error_code(exc: BaseException) -> str:
    """Return a short name for a failed call: HTTP status and error code, or the exception's kind."""
    if isinstance(exc, GatewayError):
        return f"{exc.status} {exc.code}"
    if isinstance(exc, GatewayUnavailableError):
        return "unreachable"
    return type(exc).__name__


@dataclass
class Recorder:
    """Latencies and errors per operation, for the current interval and for the whole run."""

    interval: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    total: dict[str, list[float]] = field(default_factory=dict)
    total_errors: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"records": 0, "accesses": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, op: str, seconds: float) -> None:
        """Count one answered call of `op` that took `seconds`."""
        with self.lock:
            self.interval.setdefault(op, []).append(seconds)
            self.total.setdefault(op, []).append(seconds)

    def fail(self, op: str, code: str, detail: str = "") -> None:
        """Count one failure of `op` (the first three of each kind shown in full, to stderr)."""
        key = f"{op}: {code}"
        with self.lock:
            self.errors[key] = self.errors.get(key, 0) + 1
            self.total_errors[key] = self.total_errors.get(key, 0) + 1
            show = self.total_errors[key] <= 3
        if show:
            print(f"  ! {key} {detail[:1000]}", file=sys.stderr, flush=True)

    def add(self, what: str, n: int = 1) -> None:
        """Add `n` to a running count (records ingested, accesses answered)."""
        with self.lock:
            self.counts[what] += n

    def take(self) -> tuple[dict[str, list[float]], dict[str, int], dict[str, int]]:
        """Return and reset this interval's latencies and errors, with the running counts."""
        with self.lock:
            taken = self.interval, self.errors, dict(self.counts)
            self.interval, self.errors = {}, {}
            return taken


@dataclass
class Subject:
    """One data subject a worker owns: their key, their records by category, their live consents."""

    account: LocalAccount = field(default_factory=Account.create)
    open_records: list[str] = field(default_factory=list)
    one_time: list[str] = field(default_factory=list)
    consents: list[tuple[Consent, int]] = field(default_factory=list)  # (consent, uses left)


@dataclass
class World:
    """What every worker talks to: the two gateways, the client keys, the chain id."""

    custodian: Agency
    requester: Agency
    clerk: LocalAccount
    analyst: LocalAccount
    auditor: LocalAccount
    chain_id: int

    def client(self, agency: Agency, account: LocalAccount) -> GatewayClient:
        """Return a client of `agency`'s gateway signing as `account` (no /v1/health round trip)."""
        return GatewayClient(agency.url, account, audience=agency.address, chain_id=self.chain_id, timeout=120)


class Worker:
    """One client thread: owns a few data subjects and draws operations on them until the deadline."""

    def __init__(self, world: World, recorder: Recorder, seed: int, weights: dict[str, int]) -> None:
        self.world, self.rec, self.rng, self.weights = world, recorder, random.Random(seed), weights
        self.subjects = [Subject() for _ in range(3)]
        self.clerk = world.client(world.custodian, world.clerk)
        self.analyst = world.client(world.requester, world.analyst)
        self.auditor = world.client(world.custodian, world.auditor)
        self.ops: dict[str, Callable[[], bool]] = {
            "ingest": self.ingest, "access": self.access, "access.consent": self.access_consent,
            "access.batch": self.batch, "grant": self.grant, "request": self.request, "revoke": self.revoke,
            "erasure": self.erasure, "audit.accesses": self.audit, "audit.history": self.history,
            "audit.verify": self.verify, "stranger": self.stranger,
        }

    def run(self, deadline: float) -> None:
        """Draw and run operations until `deadline` (monotonic seconds)."""
        names, weights = list(self.weights), list(self.weights.values())
        try:
            while time.monotonic() < deadline:
                name = self.rng.choices(names, weights)[0]
                if not self.timed(name, self.ops[name]):
                    self.timed("grant" if self.rng.random() < 0.3 else "ingest",
                               self.grant if self.rng.random() < 0.3 else self.ingest)
        finally:
            for client in (self.clerk, self.analyst, self.auditor):
                client.close()

    def timed(self, name: str, op: Callable[[], bool]) -> bool:
        """Run `op`, recording its latency under `name` or its failure; return False if it could not run."""
        start = time.perf_counter()
        try:
            ran = op()
        except (ConsentLedgerError, OSError, RuntimeError) as exc:
            self.rec.fail(name, _error_code(exc), str(exc))
            return True
        if ran:
            self.rec.ok(name, time.perf_counter() - start)
        return ran

    def _subject(self, has: Callable[[Subject], bool] = lambda s: True) -> Subject | None:
        found = [s for s in self.subjects if has(s)]
        return self.rng.choice(found) if found else None

    # -- the operations: each returns False when there is nothing to run it on -------------------

    def ingest(self) -> bool:
        if len(self.subjects) < 3 or (len(self.subjects) < 8 and self.rng.random() < 0.1):
            self.subjects.append(Subject())
        subject = self._subject()
        assert subject is not None  # a worker always keeps subjects
        category = ONE_TIME if self.rng.random() < 0.3 else OPEN
        payload = {"name": f"subject {self.rng.randrange(10**6)}", "note": secrets.token_hex(256)}
        key = secrets.token_hex(16) if self.rng.random() < 0.5 else None  # half of them retry-safe
        answer = self.clerk.put_record(subject.account.address, category, payload, idempotency_key=key)
        if answer.get("state") != "registered":
            raise RuntimeError(f"record {answer.get('record')} is {answer.get('state')}, not registered")
        (subject.one_time if category == ONE_TIME else subject.open_records).append(str(answer["record"]))
        self.rec.add("records")
        return True

    def access(self) -> bool:
        subject = self._subject(lambda s: bool(s.open_records))
        if subject is None:
            return False
        self.analyst.request_access(self.rng.choice(subject.open_records), PURPOSE)
        self.rec.add("accesses")
        return True

    def access_consent(self) -> bool:
        subject = self._subject(lambda s: bool(s.one_time and s.consents))
        if subject is None:
            return False
        index = self.rng.randrange(len(subject.consents))
        consent, uses = subject.consents[index]
        self.analyst.request_access(self.rng.choice(subject.one_time), PURPOSE, [consent])
        if uses > 1:
            subject.consents[index] = (consent, uses - 1)
        else:
            subject.consents.pop(index)
        self.rec.add("accesses")
        return True

    def batch(self) -> bool:
        records = [r for s in self.subjects for r in s.open_records]
        if not records:
            return False
        asks = [AccessAsk(self.rng.choice(records), PURPOSE) for _ in range(BATCH)]
        answers = self.analyst.request_access_batch(asks)
        refused = [f"{a.get('status')} {a.get('error')}" for a in answers if a.get("status") != 200]
        self.rec.add("accesses", len(answers) - len(refused))
        for code in refused:
            self.rec.fail("access.batch item", code)
        return True

    def grant(self) -> bool:
        subject = self._subject()
        assert subject is not None
        consent = Consent.new(subject=subject.account.address, grantee=self.world.requester.address,
                              category=ONE_TIME, purpose=PURPOSE, valid_until=int(time.time()) + 3600,
                              max_uses=CONSENT_USES)
        with self.world.client(self.world.requester, subject.account) as client:
            client.sign_and_grant(consent, check_catalog=False)
        subject.consents.append((consent, CONSENT_USES))
        return True

    def request(self) -> bool:
        subject = self._subject()
        assert subject is not None
        start = time.perf_counter()
        filed = file_request(self.analyst, subject.account.address, ONE_TIME, PURPOSE, int(time.time()) + 3600,
                             "soak", max_uses=CONSENT_USES)
        self.rec.ok("request.file", time.perf_counter() - start)
        with self.world.client(self.world.requester, subject.account) as client:
            granted = grant_request(client, str(filed["id"]))
        if granted.get("state") != "granted" or not isinstance(granted.get("consent"), dict):
            raise RuntimeError(f"request {filed['id']} is {granted.get('state')} after the grant")
        subject.consents.append((Consent.from_json(granted["consent"]), CONSENT_USES))
        return True

    def revoke(self) -> bool:
        subject = self._subject(lambda s: bool(s.consents and s.one_time))
        if subject is None:
            return False
        consent, _ = subject.consents.pop(self.rng.randrange(len(subject.consents)))
        with self.world.client(self.world.requester, subject.account) as client:
            client.sign_and_revoke(consent)
        try:
            self.analyst.request_access(self.rng.choice(subject.one_time), PURPOSE, [consent])
        except GatewayError as exc:
            if exc.status != 403:
                raise
            return True  # refused, as it must be
        raise RuntimeError(f"an access under revoked consent {consent.nonce} was answered")

    def erasure(self) -> bool:
        if len(self.subjects) < 2:
            return False
        subject = self._subject(lambda s: bool(s.open_records or s.one_time))
        if subject is None:
            return False
        with self.world.client(self.world.custodian, subject.account) as client:
            answer = client.request_erasure()
        held = len(subject.open_records) + len(subject.one_time)
        if len(answer.get("records", [])) != held:
            raise RuntimeError(f"erasure shredded {len(answer.get('records', []))} of {held} records")
        self.subjects.remove(subject)
        return True

    def audit(self) -> bool:
        subject = self._subject()
        assert subject is not None
        self.auditor.audit_accesses(subject=subject.account.address, limit=50)
        return True

    def history(self) -> bool:
        subject = self._subject(lambda s: bool(s.open_records or s.one_time))
        if subject is None:
            return False
        with self.world.client(self.world.custodian, subject.account) as client:
            client.my_history()
        return True

    def stranger(self) -> bool:
        """A fresh key, no member, asks for the audit listing: refused, and nothing kept of it grows for good."""
        with self.world.client(self.world.custodian, Account.create()) as client:
            try:
                client.audit_accesses(limit=1)
            except GatewayError as exc:
                if exc.status != 403:
                    raise
                return True
        raise RuntimeError("a stranger's key was let read the audit listing")

    def verify(self) -> bool:
        answer = self.auditor.audit_verify()
        if not answer.get("ok"):
            raise RuntimeError(f"audit verify found discrepancies: {answer.get('discrepancies')}")
        return True


@dataclass(frozen=True)
class Watched:
    """A process whose resources are sampled, and its store if it has one."""

    name: str
    pid: int
    store: StoreProbe | None


@dataclass
class Samples:
    """Every sample of the run: times, per-process figures, store sizes and table rows, running counts, blocks."""

    times: list[float] = field(default_factory=list)
    processes: dict[str, list[ProcessSample]] = field(default_factory=dict)
    stores: dict[str, list[int]] = field(default_factory=dict)
    rows: dict[str, list[dict[str, int]]] = field(default_factory=dict)
    counts: list[dict[str, int]] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)


def _ms(values: list[float]) -> tuple[float, float, float]:
    """Return p50, p95, p99 of `values` (seconds) in milliseconds."""
    ms = sorted(v * 1000 for v in values)
    if len(ms) < 2:
        return ms[0], ms[0], ms[0]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return statistics.median(ms), cuts[94], cuts[98]


def print_ops(latencies: dict[str, list[float]], errors: dict[str, int], seconds: float) -> None:
    """Print one table of operations: count, rate, p50/p95/p99, errors."""
    failed: dict[str, int] = {}
    for key, n in errors.items():
        op = key.partition(":")[0]
        failed[op] = failed.get(op, 0) + n
    print(f"  {'operation':<18} {'n':>6} {'/s':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for op in sorted(set(latencies) | set(failed)):
        values = latencies.get(op, [])
        p50, p95, p99 = _ms(values) if values else (0.0, 0.0, 0.0)
        print(f"  {op:<18} {len(values):>6} {len(values) / seconds:>6.1f} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} "
              f"{failed.get(op, 0):>6}")
    for key, n in sorted(errors.items()):
        print(f"    error {key} x{n}")


def sample(watched: list[Watched], samples: Samples, recorder: Recorder, block: int, elapsed: float,
           seconds: float) -> None:
    """Take and print one interval's sample (`block`: the chain's height now)."""
    latencies, errors, counts = recorder.take()
    samples.times.append(elapsed)
    samples.counts.append(counts)
    samples.blocks.append(block)
    ops = sum(len(v) for v in latencies.values())
    print(f"\n[{elapsed:6.0f} s] {ops} calls ({ops / seconds:.1f}/s), {sum(errors.values())} errors; "
          f"{counts['records']} records ingested, {counts['accesses']} accesses answered, block {block}")
    print(f"  {'process':<10} {'rss MiB':>8} {'fds':>5} {'threads':>7} {'store MiB':>10}  on disk, MiB")
    for item in watched:
        proc = sample_process(item.pid) or ProcessSample(0, 0, 0, 0)
        samples.processes.setdefault(item.name, []).append(proc)
        store_text = ""
        if item.store is not None:
            size = item.store.size()
            samples.stores.setdefault(item.name, []).append(size.bytes)
            samples.rows.setdefault(item.name, []).append(item.store.rows())
            store_text = f"{size.bytes / MIB:>10.2f}  " + ", ".join(
                f"{name} {part / MIB:.2f}" for name, part in size.parts.items())
        print(f"  {item.name:<10} {proc.rss / MIB:>8.1f} {proc.fds:>5} {proc.threads:>7} {store_text}")
    print_ops(latencies, errors, seconds)
    sys.stdout.flush()


def _trend_cells(moved: Trend, unit: float, digits: int = 1) -> str:
    return (f"{moved.first / unit:>10.{digits}f} {moved.last / unit:>10.{digits}f} "
            f"{moved.per_minute / unit:>+10.{digits}f} {moved.tail_per_minute / unit:>+11.{digits}f}")


def summarise_processes(watched: list[Watched], samples: Samples) -> bool:
    """Print each process's resource trends; return True if no gateway's looks unbounded (the chain is not judged)."""
    times, clean = samples.times, True
    print(f"  {'process':<10} {'figure':<8} {'first':>10} {'last':>10} {'per min':>10} {'last third':>11}  verdict")
    for item in watched:
        series = samples.processes[item.name]
        for figure, unit in (("rss", MIB), ("fds", 1), ("threads", 1)):
            moved = trend(times, [float(getattr(s, figure)) for s in series])
            absolute, relative = LIMITS[figure]
            grows = moved.unbounded(absolute=absolute, relative=relative)
            verdict = "GROWS WITHOUT BOUND?" if grows else "bounded"
            if item.name != "chain":
                clean &= not grows
            elif figure == "rss":
                blocks = samples.blocks[-1] - samples.blocks[0]
                per_block = (series[-1].rss - series[0].rss) / max(1, blocks)
                verdict = (f"{'grows' if grows else 'bounded'}: {per_block / 1024:.1f} KiB per block over {blocks} "
                           "blocks (anvil holds every block and its state in memory; not judged)")
            else:
                verdict += " (anvil's own; not judged)"
            print(f"  {item.name:<10} {figure:<8} {_trend_cells(moved, unit)}  {verdict}")
    return clean


def summarise_stores(watched: list[Watched], samples: Samples) -> None:
    """Print each store's growth per record and per access in each half, and every table's row trend."""
    times, half = samples.times, len(samples.times) // 2
    counts = samples.counts[-1]
    for item in watched:
        if item.store is None:
            continue
        sizes = samples.stores[item.name]
        print(f"\n  {item.name} ({item.store.label}): {sizes[0] / MIB:.2f} -> {sizes[-1] / MIB:.2f} MiB, "
              f"{trend(times, [float(s) for s in sizes]).per_minute / MIB:+.2f} MiB/min")
        for label, a, b in (("first half", 0, half), ("second half", half, len(times) - 1)):
            grown = sizes[b] - sizes[a]
            records = samples.counts[b]["records"] - samples.counts[a]["records"]
            accesses = samples.counts[b]["accesses"] - samples.counts[a]["accesses"]
            print(f"    {label:<12} {grown / 1024:+9.0f} KiB for {records:5} records, {accesses:6} accesses: "
                  f"{grown / max(1, records):8.0f} B/record, {grown / max(1, accesses):7.0f} B/access")
        rows = samples.rows[item.name]
        print(f"    {'table rows':<26} {'first':>10} {'last':>10} {'per min':>10} {'last third':>11}  "
              f"{'at end':>8} {'/record':>8} {'/access':>8}")
        for table in sorted(rows[-1], key=lambda t: -rows[-1][t]):
            moved = trend(times, [float(r.get(table, 0)) for r in rows])
            end = rows[-1][table]
            if end == rows[0].get(table, 0):
                continue
            print(f"    {table:<26} {_trend_cells(moved, 1, 0)}  {end:>8} {end / max(1, counts['records']):>8.2f} "
                  f"{end / max(1, counts['accesses']):>8.2f}")


def summarise(watched: list[Watched], samples: Samples, recorder: Recorder, wall: float) -> bool:
    """Print the run's trends, store growth, table rows and totals; return True if no error and nothing unbounded."""
    print(f"\n=== summary: {wall / 60:.1f} min, {len(samples.times)} samples; each figure's mean over the first "
          "and the last third of the run, the growth between them per minute, and the slope within the last third")
    clean = summarise_processes(watched, samples)
    print("\n  stores: growth per record ingested and per access answered (first half, second half); rows by table")
    summarise_stores(watched, samples)
    print("\n  every operation over the whole run:")
    print_ops(recorder.total, recorder.total_errors, wall)
    return clean and not recorder.total_errors


@dataclass(frozen=True)
class Options:
    """What to run: the command line."""

    minutes: float
    interval: float
    workers: int
    postgres: bool
    weights: dict[str, int]


def _postgres_schema(stack: ExitStack) -> tuple[str, PostgresProbe]:
    """Create a fresh schema for the requester in db `test` (dropped on exit); return its URL and a probe."""
    schema = f"cl_soak_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    stack.callback(drop)
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", PostgresProbe(admin, schema)


def run(opts: Options, stack: ExitStack) -> bool:
    """Set everything up, run the load with its samples and print the summary; return True if clean."""
    node = stack.enter_context(start_node(ChainKind.ANVIL))
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cl-bench-soak-")))
    ledger = deploy(connect(node.rpc_url), dev_account(0), [dev_account(0).address], 1)
    ledger.deployment.save(root / "deployment.json")
    admin = ledger.sender(dev_account(0))
    store_url, pg_probe = _postgres_schema(stack) if opts.postgres else (None, None)
    custodian, requester = set_up(ledger, admin, root, node.rpc_url, requester_store=store_url)
    auditor = dev_account(AUDITOR_DEV)
    ledger.propose(admin, governance.admit_member(auditor.address, Role.AUDITOR, "soak auditor"))
    clerk, analyst = register_client(custodian, ClientRole.COLLECT), register_client(requester, ClientRole.REQUEST)
    for agency in (custodian, requester):
        stack.push(_stopper(agency))
        agency.start()
    assert custodian.process is not None and requester.process is not None
    world = World(custodian, requester, clerk, analyst, auditor, ledger.deployment.chain_id)
    watched = [
        Watched("custodian", custodian.process.pid, SqliteProbe(custodian.directory / "agency.db")),
        Watched("requester", requester.process.pid,
                pg_probe or SqliteProbe(requester.directory / "agency.db")),
        Watched("chain", node.process.pid, None),
    ]
    print(f"soak: {opts.minutes:g} min, {opts.workers} workers, a sample every {opts.interval:g} s; requester "
          f"store {'PostgreSQL schema ' + pg_probe.schema if pg_probe else 'SQLite'}, custodian SQLite, anvil",
          flush=True)

    recorder, samples = Recorder(), Samples()
    started = time.monotonic()
    deadline = started + opts.minutes * 60
    workers = [Worker(world, recorder, seed, opts.weights) for seed in range(opts.workers)]
    threads = [threading.Thread(target=w.run, args=(deadline,), daemon=True) for w in workers]
    height = ledger.w3.eth.get_block_number
    sample(watched, samples, recorder, height(), 0.0, 1.0)  # the baseline, before any load
    for thread in threads:
        thread.start()
    last = started
    while last + opts.interval < deadline - opts.interval / 2:  # no stub of an interval at the end
        time.sleep(max(0.0, last + opts.interval - time.monotonic()))
        now = time.monotonic()
        sample(watched, samples, recorder, height(), now - started, now - last)
        last = now
    for thread in threads:  # each finishes the call it is in
        thread.join()
    now = time.monotonic()
    sample(watched, samples, recorder, height(), now - started, now - last)
    return summarise(watched, samples, recorder, time.monotonic() - started)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind the ExitStack: gateways, chain and schema go


def main() -> None:
    """Parse the command line and run the soak, stopping every process it started."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="length of the load")
    parser.add_argument("--interval", type=float, help="seconds between samples (default 30; 10 under 5 min)")
    parser.add_argument("--workers", type=int, default=4, help="client threads, each with its own subjects")
    parser.add_argument("--postgres", action="store_true",
                        help="the requester's store in a fresh schema of db test on 127.0.0.1:5432")
    parser.add_argument("--weight", action="append", default=[], metavar="OP=N",
                        help=f"change one operation's weight (default {WEIGHTS})")
    args = parser.parse_args()
    weights = dict(WEIGHTS)
    for change in args.weight:
        op, _, n = change.partition("=")
        if op not in WEIGHTS or not n.isdigit():
            parser.error(f"--weight {change!r}: use OP=N, OP one of {', '.join(WEIGHTS)}")
        weights[op] = int(n)
    if not any(weights.values()):
        parser.error("every weight is 0")
    interval = args.interval or (30.0 if args.minutes >= 5 else 10.0)
    opts = Options(max(0.1, args.minutes), max(1.0, interval), max(1, args.workers), args.postgres,
                   weights)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as stack:
            clean = run(opts, stack)
    except KeyboardInterrupt:
        print("\ninterrupted: gateways and chain stopped", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(0 if clean else 1)


if __name__ == "__main__":
    main()
