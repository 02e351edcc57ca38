"""Two processes of one agency's gateway on one PostgreSQL store and one signer; the leading one killed (-9) under load.

County (custodian and requester) runs as replicas A and B with the same agency.toml; only the port
and the database connection's application_name differ, so the test can see in `pg_locks` which
replica leads the relay. Clients alternate between the two URLs (no load balancer), each write with
an Idempotency-Key, and retry on the other replica when one fails. Midway, the replica holding the
relay's leader lock is killed with SIGKILL. Afterwards every write is on chain exactly once, the
signer's nonces have no gap and nothing is left pending, the survivor took over the relay and the
audit index, and (seen by a JSON-RPC forwarder between the replicas and the node) no two
transactions were signed with one nonce but at the kill. Replicas with a nonce counter each (not
shared through the store) sign about a dozen nonces twice in this load, and the retries hide it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import rlp
from eth_account import Account
from eth_utils import keccak
from sqlalchemy import Engine, func, select, text

from consentledger.audit import tables as index_tables
from consentledger.chain.accounts import dev_account
from consentledger.chain.ledger import entry_from_event
from consentledger.chain.node import ChainKind, start_node
from consentledger.localnet import Agency, admit, create_agency
from consentledger.store import OutboxStatus, RecordState
from consentledger.store.tables import outbox, records
from consentledger.types import Role
from pg_schema import POSTGRES_URL, postgres_schema_engine

from .world import DISTRICT_STATS, EPIDEMIC_CONTROL, Consortium, signed, start_consortium

pytestmark = pytest.mark.process

COUNTY = 2
"""Dev account of the replicated agency (on this module's own anvil)."""
INGESTS = ACCESSES = 40
WORKERS = 12
KILL_AFTER = 24
"""Writes answered before the leader is killed."""
RETRY_FOR = 60.0
"""Seconds a client keeps retrying one write (a liveness guard, not a timing claim)."""
RELAY_LOCK, INDEXER_LOCK = "consentledger-relay", "consentledger-indexer"


class RpcTap:
    """A JSON-RPC forwarder between county's replicas and the node, noting the nonce of every transaction signed.

    Each raw transaction broadcast is decoded for its nonce, so the test sees
    how many different transactions were signed for one nonce: replicas that collide sign several.
    """

    def __init__(self, node_url: str) -> None:
        self.signed: dict[int, set[bytes]] = defaultdict(set)  # nonce -> hashes of transactions signed with it
        self._guard = threading.Lock()
        upstream = httpx.Client(base_url=node_url, timeout=30, trust_env=False)
        tap = self

        class Forward(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server hook's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                tap.note(json.loads(body))
                answer = upstream.post("/", content=body, headers={"Content-Type": "application/json"})
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self._server.daemon_threads = True
        self._upstream = upstream
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Return the URL to give the replicas as their `rpc_url`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def note(self, request: Any) -> None:
        """Note the nonce and hash of each raw transaction in one JSON-RPC request (or batch)."""
        for call in request if isinstance(request, list) else [request]:
            if call.get("method") == "eth_sendRawTransaction":
                raw = bytes.fromhex(call["params"][0].removeprefix("0x"))
                # Legacy: RLP([nonce, ...]); typed (EIP-2718): type byte, then RLP([chain id, nonce, ...]).
                fields = rlp.decode(raw) if raw[0] >= 0xC0 else rlp.decode(raw[1:])[1:]
                nonce = int.from_bytes(fields[0], "big")
                with self._guard:
                    self.signed[nonce].add(keccak(raw))

    def reused(self) -> dict[int, int]:
        """Return the nonces more than one different transaction was signed with, and how many each."""
        with self._guard:
            return {nonce: len(hashes) for nonce, hashes in self.signed.items() if len(hashes) > 1}

    def close(self) -> None:
        """Stop forwarding."""
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()


@dataclass
class Replicated:
    """The consortium (health, a custodian) and county's two gateway processes over one schema."""

    consortium: Consortium
    county: Agency
    replicas: dict[str, Agency]  # application_name -> process
    store: Engine
    stats: str  # health's open record county reads
    tap: RpcTap  # between county's replicas and the chain

    def key(self) -> bytes:
        """Return county's signer key (its clients sign with it here: allow_org_key_requests)."""
        return bytes(dev_account(COUNTY).key)


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    """Health on SQLite and county as two replicas on a fresh PostgreSQL schema, on their own anvil."""
    root = tmp_path_factory.mktemp("replicas")
    store, drop = postgres_schema_engine()
    with store.connect() as conn:
        schema = str(conn.scalar(text("SELECT current_schema()")))
    url = POSTGRES_URL.replace("+psycopg", "") + f"?options=-csearch_path%3D{schema}"
    with start_node(ChainKind.ANVIL) as node:
        consortium = start_consortium(node.rpc_url, root, {"health": (1, Role.CUSTODIAN)})
        tap = RpcTap(node.rpc_url)
        county = create_agency(root, "county", dev_index=COUNTY, rpc_url=tap.url,
                               manifest=root / "deployment.json", store_url=url)
        with county.created.config.open("a") as config:
            config.write("allow_org_key_requests = true\n")
        admit(consortium.ledger, consortium.admin, [], county, Role.CUSTODIAN | Role.REQUESTER)
        consortium.keys[county.address] = bytes(dev_account(COUNTY).key)
        tag = schema[-8:]
        replicas = {f"replica-a-{tag}": county, f"replica-b-{tag}": county.replica()}
        try:
            with ThreadPoolExecutor(2) as pool:  # at once: both create the schema's tables
                list(pool.map(lambda named: named[1].start(env={
                    "CONSENTLEDGER_GATEWAY_STORE_URL": f"{url}&application_name={named[0]}"}), replicas.items()))
            stats = consortium.ingest({"district": "East", "cases": 4}, category=DISTRICT_STATS,
                                      subject=Account.create().address)
            yield Replicated(consortium, county, replicas, store, stats, tap)
        finally:
            for replica in replicas.values():
                replica.stop()
            tap.close()
            consortium.stop()
            drop()


@dataclass
class Write:
    """One client write, retried under one Idempotency-Key until a replica answers it."""

    kind: str  # "ingest" or "access"
    key: str
    first: int  # the replica index tried first
    answers: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def holder(engine: Engine, lock: str) -> str | None:
    """Return the application_name of the connection holding advisory lock `lock`, if one does."""
    query = text("""
        SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.objid::bigint = (hashtext(current_schema() || ':' || :lock)::bigint & 4294967295)
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """)
    with engine.connect() as conn:
        return conn.scalar(query, {"lock": lock})


def send(world: Replicated, replica: Agency, write: Write) -> httpx.Response:
    """Send `write` once to `replica`."""
    headers = {"Idempotency-Key": write.key}
    if write.kind == "ingest":
        body = {"subject": _subject(write), "category": DISTRICT_STATS,
                "payload": {"district": "North", "cases": int(write.key[-2:], 16)}}
        return signed(replica, world.key(), "POST", "/v1/records", body, headers=headers, timeout=30)
    body = {"record": world.stats, "purpose": EPIDEMIC_CONTROL, "consents": []}
    return signed(replica, world.key(), "POST", "/v1/access", body, headers=headers, timeout=30)


_SUBJECTS: dict[str, str] = {}
_SUBJECTS_LOCK = threading.Lock()


def _subject(write: Write) -> str:
    """Return the subject of an ingest: one per write, the same in every retry (the body must not change)."""
    with _SUBJECTS_LOCK:
        return _SUBJECTS.setdefault(write.key, Account.create().address)


def run(world: Replicated, write: Write, alive: Callable[[], list[Agency]]) -> None:
    """Send `write` to its replica, then to the next one alive after each failure, until one answers it."""
    deadline = time.monotonic() + RETRY_FOR
    attempt = write.first
    while time.monotonic() < deadline:
        replicas = alive()
        replica = replicas[attempt % len(replicas)]
        try:
            response = send(world, replica, write)
        except httpx.TransportError as exc:
            write.failures.append(f"{replica.url}: {type(exc).__name__}")
        else:
            if response.status_code in (200, 201, 202):
                write.answers.append(response.json())
                return
            if response.status_code < 500 and response.json().get("error") != "idempotency_conflict":
                write.failures.append(f"{replica.url}: HTTP {response.status_code} {response.text[:300]}")
                return  # refused for good: the assertions below name it
            write.failures.append(f"{replica.url}: HTTP {response.status_code} {response.json().get('error')}")
        attempt += 1
        time.sleep(0.1)


def test_one_key_sent_to_both_replicas_at_once_records_one_access_and_spoils_no_other(replicated: Replicated) -> None:
    """One key asked of A and B at once (a balancer's retry): one entry, one answer or a 409, no harm around.

    The accesses batched with it on either replica all answer: the key is held across replicas from
    before it is batched, so the second request is refused alone instead of failing a batch.
    """
    world = replicated
    a, b = world.replicas.values()
    run_id = uuid.uuid4().hex[:8]
    before = len(world.consortium.accesses(world.stats))
    twice = Write("access", f"twice-{run_id}", 0)
    others = [Write("access", f"beside-{run_id}-{i}", i) for i in range(10)]
    with ThreadPoolExecutor(len(others) + 2) as pool:
        both = [pool.submit(send, world, replica, twice) for replica in (a, b)]
        beside = [pool.submit(send, world, (a, b)[other.first % 2], other) for other in others]
        answers, around = [f.result() for f in both], [f.result() for f in beside]

    assert [r.status_code for r in around] == [200] * len(others), [r.text[:200] for r in around]
    assert sorted(r.status_code for r in answers) in ([200, 200], [200, 409]), [r.text[:200] for r in answers]
    assert all(r.json()["error"] == "idempotency_conflict" for r in answers if r.status_code == 409)
    seqs = {r.json()["seq"] for r in answers if r.status_code == 200}
    assert len(seqs) == 1
    again = send(world, b, twice)
    assert again.status_code == 200 and again.json()["seq"] in seqs
    assert len(world.consortium.accesses(world.stats)) == before + 1 + len(others)


def test_killing_the_leading_replica_under_load_loses_and_duplicates_nothing(replicated: Replicated) -> None:
    """Kill -9 the relay leader mid-load: every write on chain once, no nonce gap, the survivor leads within seconds."""
    world, w3 = replicated, replicated.consortium.ledger.w3
    signer = world.county.address
    first_nonce = w3.eth.get_transaction_count(signer)
    first_block = w3.eth.block_number
    writes = [Write("ingest" if n % 2 else "access", f"{uuid.uuid4().hex}{n:02x}", n // 2 % 2)
              for n in range(INGESTS + ACCESSES)]  # each kind goes to each replica first half the time
    names = list(world.replicas)
    dead: set[str] = set()

    def alive() -> list[Agency]:
        return [world.replicas[name] for name in names if name not in dead]

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(run, world, write, alive) for write in writes]
        while sum(1 for w in writes if w.answers) < KILL_AFTER:
            time.sleep(0.01)
        leader = None
        deadline = time.monotonic() + 10
        while leader not in world.replicas and time.monotonic() < deadline:
            leader = holder(world.store, RELAY_LOCK)
        assert leader in world.replicas, f"no replica held the relay lock within 10 s (holder: {leader})"
        victim = world.replicas[leader]
        assert victim.process is not None
        victim.process.kill()
        killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
        dead.add(leader)
        assert victim.process.wait(timeout=10) == -9
        head_at_kill = w3.eth.block_number  # only the survivor can index a block after this one
        relay_took_over = index_took_over = None
        while any(not f.done() for f in futures) or relay_took_over is None or index_took_over is None:
            if relay_took_over is None and _relayed_since(world.store, killed_wall):
                relay_took_over = time.monotonic() - killed_at
            if index_took_over is None and _indexed_block(world.store) > head_at_kill:
                index_took_over = time.monotonic() - killed_at
            assert time.monotonic() - killed_at < RETRY_FOR, "the survivor did not finish the load"
            time.sleep(0.02)
        for future in futures:
            future.result()
    caught_up = _drained(world.store)
    survivor = next(name for name in names if name not in dead)
    print(f"\nkilled {leader} (relay leader); {survivor} relayed again after {relay_took_over:.2f} s, indexed past "
          f"the kill's block after {index_took_over:.2f} s; outbox empty {caught_up:.2f} s after the load; "
          f"{sum(len(w.failures) for w in writes)} client attempts failed and were retried; "
          f"nonces signed twice: {world.tap.reused()}")

    unanswered = [(w.kind, w.failures) for w in writes if not w.answers]
    assert unanswered == []

    # Ingests: one stored record per key, each registered on chain by county, no row left to relay.
    ingests = [w for w in writes if w.kind == "ingest"]
    answered = {w.answers[0]["record"] for w in ingests}
    assert len(answered) == INGESTS
    with world.store.connect() as conn:
        stored = dict(conn.execute(select(records.c.record_id, records.c.state)).all())
        statuses = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
    assert set(stored) == answered
    assert set(stored.values()) == {RecordState.REGISTERED.value}
    assert statuses == {OutboxStatus.DONE.value: INGESTS}
    assert {world.consortium.ledger.record(bytes.fromhex(r[2:])).custodian for r in answered} == {signer}

    # Accesses: one on-chain entry per key, the one every 200 for that key answered.
    accesses = [w for w in writes if w.kind == "access"]
    seqs = {w.key: w.answers[0]["seq"] for w in accesses}
    assert len(set(seqs.values())) == ACCESSES
    logs = world.consortium.ledger.access.events.AccessRecorded().get_logs(
        from_block=first_block + 1, argument_filters={"record": bytes.fromhex(world.stats[2:])})
    on_chain = [entry_from_event(log) for log in logs]
    assert sorted(e.seq for e in on_chain if e.requester == signer) == sorted(seqs.values())

    # The signer's nonces: every transaction since the start mined, consecutive, nothing queued behind a gap.
    last_block = w3.eth.block_number
    sent = sorted(int(tx["nonce"]) for n in range(first_block + 1, last_block + 1)
                  for tx in w3.eth.get_block(n, full_transactions=True)["transactions"] if tx["from"] == signer)
    mined = w3.eth.get_transaction_count(signer)
    assert sent == list(range(first_nonce, mined))
    # Nonces from the shared store: one transaction signed per nonce, but for the one the killed
    # replica may have been holding (broadcast but not committed, or saved but not broadcast).
    reused = world.tap.reused()
    assert len(reused) <= 1 and set(reused.values()) <= {2}, reused
    assert w3.eth.get_transaction_count(signer, "pending") == mined
    txpool = w3.provider.make_request("txpool_content", [])["result"]  # type: ignore[arg-type]
    assert not any(signer.lower() == a.lower() for part in txpool.values() for a in part), json.dumps(txpool)[:500]

    assert relay_took_over is not None and relay_took_over < RETRY_FOR / 2
    assert index_took_over is not None and index_took_over < RETRY_FOR / 2


def _relayed_since(engine: Engine, since: datetime) -> bool:
    """Return whether an outbox row was finished after `since` (only the survivor relays then)."""
    with engine.connect() as conn:
        return bool(conn.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.status == OutboxStatus.DONE.value, outbox.c.updated_at > since)))


def _indexed_block(engine: Engine) -> int:
    """Return the block the shared audit index is synced to (-1 before the first sync)."""
    with engine.connect() as conn:
        block = conn.scalar(select(index_tables.cursor.c.block_number).where(index_tables.cursor.c.id == 1))
    return -1 if block is None else int(block)


def _drained(engine: Engine, timeout: float = 30.0) -> float:
    """Wait until no outbox row is pending or sent; return how long that took."""
    started = time.monotonic()
    unfinished = outbox.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENT.value])
    while True:
        with engine.connect() as conn:
            left = conn.scalar(select(func.count()).select_from(outbox).where(unfinished))
        if not left:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{left} outbox rows still unfinished"
        time.sleep(0.05)
