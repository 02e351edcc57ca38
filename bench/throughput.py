"""Sustained access throughput through one requester and one custodian gateway (real processes).

Starts its own chain (anvil; ganache with --chain ganache), deploys, admits a custodian and a
requester agency, starts their gateways and ingests --records small OPEN records. Then it runs,
each for --seconds:

- single: --clients concurrent clients, each sending one signed `POST /v1/access` after another
  (the requester gateway group-commits them into batch transactions);
- batch: --batch-clients concurrent clients, each sending `POST /v1/access/batch` calls of
  --batch-size accesses.

For each it prints accesses/s sustained, p50/p95/p99 latency (of an access; for the batch API, of
the call that answered it), the requester's transactions and their gas per access, and the count of
AccessRecorded events on chain, which must equal the answered accesses. Finally the per-access
ratio as `bench/access.py` prints it: one access alone vs the raw signed-transaction round trip.

Run: .venv/bin/python bench/throughput.py [--chain anvil|ganache] [--seconds 60] [--clients 64]
     [--batch-clients 8] [--batch-size 100] [--records 500] [--ratio-n 40]
Prints figures and goals; asserts nothing (but exits 1 if answers and entries disagree).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from access import (  # the shared set-up of the latency benchmark (same folder)
    FIELDS,
    OPEN,
    PURPOSE,
    RAW_DEV,
    RawRequester,
    register_client,
    set_up,
    timed,
)
from eth_account import Account

from consentledger.actors import ClientRole
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import ChainKind, start_node
from consentledger.localnet import Agency
from consentledger.signing import sign_request

GOAL_BATCH_RATE, GOAL_BATCH_P99 = 2000.0, 1.0
GOAL_SINGLE_RATE, GOAL_SINGLE_P99 = 300.0, 0.5
GOAL_RATIO = {ChainKind.GANACHE: 1.5, ChainKind.ANVIL: 2.5}


@dataclass
class Poster:
    """Signs requests as one client key for one gateway and posts them over a keep-alive connection."""

    key: bytes
    gateway: Agency
    chain_id: int
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=120, trust_env=False))

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST `body` signed; return (status, JSON answer)."""
        raw = json.dumps(body, separators=(",", ":")).encode()
        signature = sign_request(self.key, chain_id=self.chain_id, audience=self.gateway.address, method="POST",
                                 path=path, body=raw, now=int(time.time()))
        response = self.http.post(self.gateway.url + path, content=raw,
                                  headers={**signature.headers(), "Content-Type": "application/json"})
        return response.status_code, response.json()


@dataclass
class Tally:
    """What one load phase saw: per-access latencies, answers, refusals (by error code)."""

    latencies: list[float] = field(default_factory=list)
    answered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, ok: int, errors: list[str]) -> None:
        """Count `ok` answered accesses (and `errors`) of one call that took `seconds`."""
        with self.lock:
            self.latencies.extend([seconds] * (ok + len(errors)))
            self.answered += ok
            for error in errors:
                self.failed[error] = self.failed.get(error, 0) + 1


@dataclass(frozen=True)
class ChainCount:
    """The requester's footprint on chain over a phase: transactions, gas, AccessRecorded entries."""

    transactions: int
    gas: int
    entries: int


def count_on_chain(ledger: Ledger, requester: str, first_block: int, nonce_before: int) -> ChainCount:
    """Count the requester's transactions, their gas and its AccessRecorded events since `first_block`."""
    w3 = ledger.w3
    last = w3.eth.block_number
    nonce_after = w3.eth.get_transaction_count(requester, "latest")
    gas = 0
    for number in range(first_block, last + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == requester:  # type: ignore[index]
                gas += int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"])  # type: ignore[index]
    entries = 0
    for start in range(first_block, last + 1, 2000):
        entries += len(ledger.access.events.AccessRecorded().get_logs(
            from_block=start, to_block=min(last, start + 1999), argument_filters={"requester": requester}))
    return ChainCount(nonce_after - nonce_before, gas, entries)


def run_phase(name: str, workers: int, seconds: float, work: Callable[[random.Random], tuple[float, int, list[str]]],
              ledger: Ledger, requester: str) -> tuple[Tally, ChainCount, float]:
    """Run `work` on `workers` threads for `seconds`; return the tally, the chain count and the wall time."""
    tally = Tally()
    first_block = ledger.w3.eth.block_number + 1
    nonce_before = ledger.w3.eth.get_transaction_count(requester, "latest")
    deadline = time.monotonic() + seconds

    def loop(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            tally.add(*work(rng))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(workers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    time.sleep(0.5)  # let the last receipts land before counting
    print(f"{name}: {workers} clients for {seconds:g} s done in {wall:.1f} s", flush=True)
    return tally, count_on_chain(ledger, requester, first_block, nonce_before), wall


def report(name: str, tally: Tally, chain: ChainCount, wall: float, goal_rate: float, goal_p99: float) -> bool:
    """Print one phase's figures; return whether answers and on-chain entries agree."""
    rate = tally.answered / wall
    print(f"\n{name}")
    if len(tally.latencies) >= 2:
        ms = sorted(s * 1000 for s in tally.latencies)
        cuts = statistics.quantiles(ms, n=100)
        print(f"  latency per access   p50 {statistics.median(ms):8.1f} ms   p95 {cuts[94]:8.1f} ms   "
              f"p99 {cuts[98]:8.1f} ms   (goal p99 <= {goal_p99 * 1000:g} ms)")
    print(f"  accesses answered    {tally.answered:,} in {wall:.1f} s = {rate:,.0f} accesses/s  "
          f"(goal >= {goal_rate:,.0f})")
    if tally.failed:
        print(f"  refused / failed     {tally.failed}")
    print(f"  transactions sent    {chain.transactions:,}  "
          f"({tally.answered / max(1, chain.transactions):.1f} accesses per transaction)")
    print(f"  gas per access       {chain.gas / max(1, chain.entries):,.0f}")
    agree = chain.entries == tally.answered
    print(f"  AccessRecorded       {chain.entries:,} on chain for {tally.answered:,} answered accesses: "
          f"{'equal' if agree else 'MISMATCH'}")
    return agree


@dataclass(frozen=True)
class Options:
    """What to run: the command line."""

    chain: ChainKind
    seconds: float
    clients: int
    batch_clients: int
    batch_size: int
    records: int
    ratio_n: int


def run(opts: Options, stack: ExitStack) -> bool:
    """Set everything up, run both phases and the ratio, print the figures; return whether counts agree."""
    node = stack.enter_context(start_node(opts.chain))
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cl-bench-throughput-")))
    ledger = deploy(connect(node.rpc_url), dev_account(0), [dev_account(0).address], 1)
    ledger.deployment.save(root / "deployment.json")
    admin = ledger.sender(dev_account(0))
    custodian, requester = set_up(ledger, admin, root, node.rpc_url)
    clerk, analyst = register_client(custodian, ClientRole.COLLECT), register_client(requester, ClientRole.REQUEST)
    for agency in (custodian, requester):
        stack.callback(agency.stop)
        agency.start()
    chain_id = ledger.deployment.chain_id

    started = time.perf_counter()
    records = ingest_all(Poster(clerk.key, custodian, chain_id), opts.records)
    print(f"set up and ingested {len(records)} records in {time.perf_counter() - started:.1f} s", flush=True)

    posters = threading.local()

    def poster() -> Poster:
        if not hasattr(posters, "one"):
            posters.one = Poster(analyst.key, requester, chain_id)
        return posters.one  # type: ignore[no-any-return]

    def single(rng: random.Random) -> tuple[float, int, list[str]]:
        body = {"record": rng.choice(records), "purpose": PURPOSE, "consents": []}
        start = time.perf_counter()
        status, answer = poster().post("/v1/access", body)
        took = time.perf_counter() - start
        return (took, 1, []) if status == 200 else (took, 0, [str(answer.get("error", status))])

    def batch(rng: random.Random) -> tuple[float, int, list[str]]:
        items = [{"record": rng.choice(records), "purpose": PURPOSE, "consents": []} for _ in range(opts.batch_size)]
        start = time.perf_counter()
        status, answer = poster().post("/v1/access/batch", {"items": items})
        took = time.perf_counter() - start
        if status != 200:
            return took, 0, [str(answer.get("error", status))] * len(items)
        errors = [str(item.get("error")) for item in answer["items"] if item.get("status") != 200]
        return took, len(items) - len(errors), errors

    warm = Poster(analyst.key, requester, chain_id)
    for record in records[:5]:
        warm.post("/v1/access", {"record": record, "purpose": PURPOSE, "consents": []})

    agree = True
    tally, chain, wall = run_phase("single-access requests", opts.clients, opts.seconds, single, ledger,
                                   requester.address)
    agree &= report(f"single-access requests ({opts.clients} concurrent clients, group commit)", tally, chain, wall,
                    GOAL_SINGLE_RATE, GOAL_SINGLE_P99)
    tally, chain, wall = run_phase("batch API", opts.batch_clients, opts.seconds, batch, ledger, requester.address)
    agree &= report(f"batch API ({opts.batch_clients} clients x {opts.batch_size} accesses per call)", tally, chain,
                    wall, GOAL_BATCH_RATE, GOAL_BATCH_P99)
    ratio(opts, ledger, warm, records)
    return agree


def ingest_all(collect: Poster, count: int) -> list[str]:
    """Ingest `count` small OPEN records through the custodian (8 at a time); return their ids."""
    subject = Account.create()
    ids: list[str] = []
    lock = threading.Lock()
    todo = iter(range(count))

    def worker() -> None:
        poster = Poster(collect.key, collect.gateway, collect.chain_id)
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            payload = {name: secrets.token_hex(8) for name in FIELDS}
            status, answer = poster.post("/v1/records", {"subject": subject.address, "category": OPEN,
                                                         "payload": payload})
            if status != 201 or answer.get("state") != "registered":
                raise RuntimeError(f"ingest failed: HTTP {status} {answer}")
            with lock:
                ids.append(str(answer["record"]))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(ids) != count:
        raise RuntimeError(f"ingested {len(ids)} of {count} records")
    return ids


def ratio(opts: Options, ledger: Ledger, access: Poster, records: list[str]) -> None:
    """Print one access alone vs the raw signed-transaction round trip, interleaved record by record."""
    raw = RawRequester(ledger, dev_account(RAW_DEV), records[0], 0.002)
    gateway_s: list[float] = []
    raw_s: list[float] = []
    for record in (records * (1 + opts.ratio_n // len(records)))[:opts.ratio_n]:
        gateway_s.append(timed(lambda r=record: access.post("/v1/access", {"record": r, "purpose": PURPOSE,
                                                                             "consents": []})))
        raw_s.append(timed(lambda r=record: raw.round_trip(r)))
    gateway_p50, raw_p50 = statistics.median(gateway_s) * 1000, statistics.median(raw_s) * 1000
    print(f"\none access alone, {opts.ratio_n} runs: gateway p50 {gateway_p50:.1f} ms, raw signed tx round trip "
          f"p50 {raw_p50:.1f} ms, ratio {gateway_p50 / raw_p50:.2f} (goal <= {GOAL_RATIO[opts.chain]}x on "
          f"{opts.chain.value})")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind the ExitStack: gateways and chain stop


def main() -> None:
    """Parse the command line and run the benchmark, stopping every process it started."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=ChainKind, choices=list(ChainKind), default=ChainKind.ANVIL)
    parser.add_argument("--seconds", type=float, default=60, help="length of each load phase")
    parser.add_argument("--clients", type=int, default=64, help="concurrent single-access clients")
    parser.add_argument("--batch-clients", type=int, default=8, help="concurrent batch API clients")
    parser.add_argument("--batch-size", type=int, default=100, help="accesses per batch API call (<= 256)")
    parser.add_argument("--records", type=int, default=500, help="records ingested and accessed at random")
    parser.add_argument("--ratio-n", type=int, default=40, help="runs of the lone-access ratio")
    args = parser.parse_args()
    opts = Options(args.chain, args.seconds, max(1, args.clients), max(1, args.batch_clients),
                   min(256, max(1, args.batch_size)), max(5, args.records), max(2, args.ratio_n))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as stack:
            agree = run(opts, stack)
    except KeyboardInterrupt:
        print("\ninterrupted: gateways and chain stopped", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(0 if agree else 1)


if __name__ == "__main__":
    main()
