"""End-to-end access latency through two real gateways vs the raw signed-transaction round trip.

Starts its own chain, deploys, sets up a purpose and two categories (OPEN, and ONE_TIME with a fresh
consent per access), admits a custodian and a requester agency, starts their real gateway processes
and ingests small records through the custodian. Then, on the same chain, it times:

- gateway access: one signed `POST /v1/access` to the requester gateway, client signing included
  (requestAccess tx, record read, the custodian's key release, unwrap, decrypt, commitment check);
- raw round trip: build + sign + `send_raw_transaction` + receipt of `requestAccess` on the same OPEN
  records, from another dev account admitted as REQUESTER, with a locally counted nonce and fixed gas;
- a large record (one field of --big-mib MiB) accessed end to end several times.

The two OPEN loops are interleaved record by record so both see the same chain state. The ONE_TIME
consent grant is not timed. Prints figures and goals; asserts nothing.

Run: .venv/bin/python bench/access.py [--chain ganache|anvil] [-n 200] [--size-kib 1] [--big-mib 1]
     [--big-runs 10] [--poll-ms 2] [--block-time SECONDS]   (no --block-time: a block per transaction)
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger import governance
from consentledger.actors import ClientRole
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import ChainKind, start_node
from consentledger.chain.sender import TransactionSender
from consentledger.consent import Consent, sign_consent
from consentledger.gateway.admin.clients import agency_clients
from consentledger.localnet import Agency, admit, create_agency
from consentledger.settings import load_settings
from consentledger.signing import sign_request
from consentledger.types import Role, Sensitivity

PURPOSE, OPEN, ONE_TIME = 1, 1, 2
FIELDS = ["name", "note"]
CUSTODIAN_DEV, REQUESTER_DEV, RAW_DEV = 5, 6, 7
WARMUP = 5
MIB = 1 << 20
GOAL_RATIO, GOAL_BIG_SECONDS = 1.5, 0.2


@dataclass(frozen=True)
class Stats:
    """Latency percentiles of one timed loop, in milliseconds."""

    p50: float
    p95: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        """Return the stats of `seconds` (at least two samples)."""
        ms = [s * 1000 for s in seconds]
        return cls(statistics.median(ms), statistics.quantiles(ms, n=20)[18], statistics.fmean(ms))

    def line(self, label: str) -> str:
        """Return one aligned report line."""
        return f"{label:<34} p50 {self.p50:7.1f} ms   p95 {self.p95:7.1f} ms   mean {self.mean:7.1f} ms"


@dataclass
class SignedPoster:
    """Signs requests as one key for one gateway and posts them over a keep-alive connection."""

    http: httpx.Client
    key: bytes
    gateway: Agency
    chain_id: int

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` signed; return the JSON answer, raise RuntimeError on any refusal."""
        raw = json.dumps(body, separators=(",", ":")).encode()
        signature = sign_request(self.key, chain_id=self.chain_id, audience=self.gateway.address, method="POST",
                                 path=path, body=raw, now=int(time.time()))
        headers = {**signature.headers(), "Content-Type": "application/json"}
        response = self.http.post(self.gateway.url + path, content=raw, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"{self.gateway.name} {path}: HTTP {response.status_code} {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer


RAW_ACTOR = bytes.fromhex("5a" * 32)
"""The raw sender names a non-zero actor, as a gateway does for its clients (same calldata cost)."""


class RawRequester:
    """Sends `requestAccess` directly: fixed gas and gas price, nonce counted here, wait for the receipt."""

    def __init__(self, ledger: Ledger, account: LocalAccount, sample_record: str, poll_seconds: float) -> None:
        self._ledger, self._account, self._poll = ledger, account, poll_seconds
        w3 = ledger.w3
        estimate = self._call(sample_record).estimate_gas({"from": account.address})
        self._fixed: dict[str, Any] = {"from": account.address, "gas": int(estimate * 1.25) + 10_000,
                                       "gasPrice": w3.eth.gas_price, "chainId": w3.eth.chain_id}
        self._nonce = int(w3.eth.get_transaction_count(account.address, "pending"))

    def _call(self, record: str) -> Any:
        return self._ledger.access.functions.requestAccess(bytes.fromhex(record[2:]), PURPOSE, RAW_ACTOR, [])

    def round_trip(self, record: str) -> None:
        """Build, sign, send and wait for one access transaction; raise if it reverted."""
        tx = self._call(record).build_transaction({**self._fixed, "nonce": self._nonce})  # no RPC: all fields set
        signed = self._account.sign_transaction(tx)
        tx_hash = self._ledger.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonce += 1
        receipt = self._ledger.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=self._poll)
        if receipt["status"] != 1:
            raise RuntimeError(f"raw requestAccess 0x{tx_hash.hex()} reverted")


def timed(operation: Callable[[], object]) -> float:
    """Return the seconds one call of `operation` took."""
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def set_up(ledger: Ledger, admin: TransactionSender, root: Path, rpc_url: str, *,
           requester_store: str | None = None) -> tuple[Agency, Agency]:
    """Add the purpose and categories, create and admit both agencies and the raw requester.

    `requester_store` is the requester's store URL (default: SQLite in its directory).
    """
    for proposed in (
        governance.add_purpose(PURPOSE, "benchmark"),
        governance.add_category(OPEN, "bench-open", Sensitivity.OPEN, 86400 * 30, FIELDS, (), [PURPOSE]),
        governance.add_category(ONE_TIME, "bench-one-time", Sensitivity.ONE_TIME, 86400 * 30, FIELDS, (), [PURPOSE]),
        governance.admit_member(dev_account(RAW_DEV).address, Role.REQUESTER, "raw requester"),
    ):
        ledger.propose(admin, proposed)
    manifest = root / "deployment.json"
    custodian = create_agency(root, "custodian", dev_index=CUSTODIAN_DEV, rpc_url=rpc_url, manifest=manifest)
    requester = create_agency(root, "requester", dev_index=REQUESTER_DEV, rpc_url=rpc_url, manifest=manifest,
                              store_url=requester_store)
    admit(ledger, admin, [], custodian, Role.CUSTODIAN)
    admit(ledger, admin, [], requester, Role.REQUESTER)
    return custodian, requester


def register_client(agency: Agency, role: ClientRole) -> LocalAccount:
    """Register a fresh client key of `agency` (as `agency client add --address` does); return it."""
    client = Account.create()
    agency_clients(load_settings(agency.created.config)).add(client.address, f"bench {role.value}", role)
    return client


@dataclass(frozen=True)
class Options:
    """What to run: the command line."""

    chain: ChainKind
    n: int
    size_kib: float
    big_mib: float
    big_runs: int
    poll_ms: float
    block_time: float | None


def run(opts: Options, stack: ExitStack) -> None:
    """Set everything up, run the timed loops and print the figures; `stack` stops what was started."""
    n = opts.n
    node = stack.enter_context(start_node(opts.chain, block_time=opts.block_time))
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cl-bench-access-")))
    ledger = deploy(connect(node.rpc_url), dev_account(0), [dev_account(0).address], 1)
    ledger.deployment.save(root / "deployment.json")
    admin = ledger.sender(dev_account(0))
    custodian, requester = set_up(ledger, admin, root, node.rpc_url)
    clerk, analyst = register_client(custodian, ClientRole.COLLECT), register_client(requester, ClientRole.REQUEST)
    body_limit = {"CONSENTLEDGER_GATEWAY_MAX_BODY_BYTES": str(max(2 * MIB, int(opts.big_mib * MIB * 1.5)))}
    for agency in (custodian, requester):
        stack.push(_stopper(agency))
        agency.start(env=body_limit)

    http = stack.enter_context(httpx.Client(timeout=120, trust_env=False))
    chain_id = ledger.deployment.chain_id
    collect = SignedPoster(http, clerk.key, custodian, chain_id)  # staff sign with their own client keys
    access = SignedPoster(http, analyst.key, requester, chain_id)
    subject = Account.create()
    small = {"name": "Lee", "note": secrets.token_hex(max(1, int(opts.size_kib * 1024) // 2))}

    def ingest(category: int, payload: dict[str, str]) -> str:
        answer = collect.post("/v1/records", {"subject": subject.address, "category": category, "payload": payload})
        if answer["state"] != "registered":
            raise RuntimeError(f"record {answer['record']} is {answer['state']}, not registered on chain")
        return str(answer["record"])

    def read(record: str, consents: list[dict[str, Any]] | None = None) -> None:
        access.post("/v1/access", {"record": record, "purpose": PURPOSE, "consents": consents or []})

    def consent_for_next_access() -> dict[str, Any]:
        terms = Consent.new(subject=subject.address, grantee=requester.address, category=ONE_TIME,
                            purpose=PURPOSE, valid_until=int(time.time()) + 3600)
        ledger.grant_consent(admin, terms, sign_consent(terms, subject.key, ledger.domain()))
        return terms.to_json()

    started = time.perf_counter()
    open_records = [ingest(OPEN, small) for _ in range(n + WARMUP)]
    one_time_records = [ingest(ONE_TIME, small) for _ in range(n)]
    print(f"set up and ingested {len(open_records) + n} records in {time.perf_counter() - started:.1f} s")

    raw = RawRequester(ledger, dev_account(RAW_DEV), open_records[0], opts.poll_ms / 1000)
    for record in open_records[:WARMUP]:
        read(record)
        raw.round_trip(record)
    gateway_s: list[float] = []
    raw_s: list[float] = []
    for record in open_records[WARMUP:]:
        gateway_s.append(timed(partial(read, record)))
        raw_s.append(timed(partial(raw.round_trip, record)))
    one_time_s: list[float] = []
    for record in one_time_records:
        consents = [consent_for_next_access()]  # granted on chain before the clock starts
        one_time_s.append(timed(partial(read, record, consents)))

    big = ingest(OPEN, {"note": secrets.token_hex(int(opts.big_mib * MIB) // 2)})
    read(big)
    big_s = [timed(partial(read, big)) for _ in range(opts.big_runs)]
    report(opts, Stats.of(gateway_s), Stats.of(one_time_s), Stats.of(raw_s), big_s)


def report(opts: Options, gateway: Stats, one_time: Stats, direct: Stats, big_s: list[float]) -> None:
    """Print the figures against the goals."""
    mining = f"a block every {opts.block_time:g} s" if opts.block_time else "a block per transaction"
    print(f"\nchain {opts.chain.value} ({mining}), n={opts.n}, payload {opts.size_kib:g} KiB, {WARMUP} warm-up "
          f"accesses untimed, raw receipt polled every {opts.poll_ms:g} ms")
    print(gateway.line("gateway access, OPEN"))
    print(one_time.line("gateway access, ONE_TIME + consent"))
    print(direct.line("raw signed tx round trip"))
    print(f"ratio: {gateway.p50 / direct.p50:.2f}  (gateway OPEN p50 / raw p50; goal <= {GOAL_RATIO}x)")
    print(f"ratio ONE_TIME: {one_time.p50 / direct.p50:.2f}")
    big_p50 = statistics.median(big_s)
    print(f"{opts.big_mib:g} MiB record access, {opts.big_runs} runs: p50 {big_p50:.3f} s, max {max(big_s):.3f} s"
          f"  (goal <= {GOAL_BIG_SECONDS} s)")


def _stopper(agency: Agency) -> Callable[..., bool]:
    """Return an exit callback stopping `agency`'s gateway, showing its log if something failed."""

    def stop(exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        agency.stop()
        if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
            print(f"--- {agency.name} gateway log:\n{agency.log_tail()}")
        return False

    return stop


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind the ExitStack: gateways and chain stop


def main() -> None:
    """Parse the command line and run the benchmark, stopping every process it started."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=ChainKind, choices=list(ChainKind), default=ChainKind.GANACHE)
    parser.add_argument("-n", type=int, default=200, help="timed accesses per loop (>= 2)")
    parser.add_argument("--size-kib", type=float, default=1.0, help="size of the small records' note field")
    parser.add_argument("--big-mib", type=float, default=1.0, help="size of the large record's note field")
    parser.add_argument("--big-runs", type=int, default=10, help="timed accesses of the large record")
    parser.add_argument("--poll-ms", type=float, default=2, help="raw receipt poll interval (the sender: 50)")
    parser.add_argument("--block-time", type=float, help="mine on an interval, like a real chain (try -n 20)")
    args = parser.parse_args()
    opts = Options(args.chain, max(2, args.n), args.size_kib, args.big_mib, max(2, args.big_runs), args.poll_ms,
                   args.block_time)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as stack:
            run(opts, stack)
    except KeyboardInterrupt:
        print("\ninterrupted: gateways and chain stopped", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
