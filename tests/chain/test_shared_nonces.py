"""Nonces shared by replicas through PostgreSQL, on a real anvil: one gapless sequence, whoever signs and whoever dies.

Each "replica" here is an allocator over its own engine (its own connections) on one schema; the
killed one is a real process. Every transaction is a governance `propose` of a 2-of-2 consortium: it
never runs, so any number can be sent.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, select, text
from web3 import Web3
from web3.contract.contract import ContractFunction

from consentledger import governance
from consentledger.chain.accounts import dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.manifest import Deployment
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.chain.shared_nonces import SharedNonceAllocator, replica_nonces
from consentledger.errors import SignerBusyError
from consentledger.store import create_schema, make_engine
from consentledger.store.tables import signer_nonces
from pg_schema import POSTGRES_URL, postgres_schema_engine

pytestmark = pytest.mark.process


@dataclass
class Chain:
    """A 2-of-2 consortium on one anvil process."""

    node: LocalNode
    w3: Web3
    deployment: Deployment
    admin: LocalAccount

    def nonce(self, block: str = "latest") -> int:
        """Return the admin's transaction count at `block` ("pending" counts the pool too)."""
        return int(self.w3.eth.get_transaction_count(self.admin.address, block))  # type: ignore[arg-type]


@dataclass
class Replicas:
    """Two engines on one PostgreSQL schema: what two gateway processes of one agency open."""

    schema: str
    a: Engine
    b: Engine


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    """An anvil process with a deployed 2-of-2 consortium."""
    with start_node(ChainKind.ANVIL, accounts=2) as node:
        w3 = connect(node.rpc_url)
        admin, other = dev_accounts(2)
        ledger = deploy(w3, admin, [admin.address, other.address], 2)
        ledger.close()
        yield Chain(node, w3, ledger.deployment, admin)


@pytest.fixture
def replicas() -> Iterator[Replicas]:
    """Two engines on a fresh schema holding the gateway's tables."""
    a, drop = postgres_schema_engine()
    create_schema(a)
    with a.connect() as conn:
        schema = str(conn.scalar(text("SELECT current_schema()")))
    b = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield Replicas(schema, a, b)
    finally:
        b.dispose()
        drop()


def propose(ledger: Ledger, n: int) -> ContractFunction:
    """Return a `propose` call that can be sent any number of times (it never reaches the threshold)."""
    action = governance.add_purpose(1 + n % 100, f"purpose {n}")
    return ledger.consortium.functions.propose(int(action.action), action.payload)


def stored_next(engine: Engine, address: str) -> int | None:
    """Return the signer's next nonce as the shared row holds it."""
    with engine.connect() as conn:
        value = conn.scalar(select(signer_nonces.c.next_nonce).where(signer_nonces.c.signer == address))
    return None if value is None else int(value)


def test_replicas_sending_at_once_share_one_gapless_nonce_sequence(chain: Chain, replicas: Replicas) -> None:
    """Two replicas, four threads each, 60 transactions of one signer: 60 consecutive nonces, all mined, 0 pending."""
    first = chain.nonce()
    ledgers = [Ledger(connect(chain.node.rpc_url), chain.deployment) for _ in range(2)]
    senders = [ledger.sender(chain.admin, max_pending=4, nonces=SharedNonceAllocator.for_store(engine, ledger.w3))
               for ledger, engine in zip(ledgers, (replicas.a, replicas.b), strict=True)]
    try:
        with ThreadPoolExecutor(8) as pool:
            receipts = list(pool.map(
                lambda n: senders[n % 2].transact(propose(ledgers[n % 2], n), gas=400_000), range(60)))
    finally:
        for ledger in ledgers:
            ledger.close()
    assert all(receipt["status"] == 1 for receipt in receipts)
    nonces = sorted(chain.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == list(range(first, first + 60))
    assert chain.nonce("pending") == chain.nonce() == first + 60
    assert stored_next(replicas.a, chain.admin.address) == first + 60


def test_a_replica_killed_between_allocation_and_broadcast_leaves_no_gap(chain: Chain, replicas: Replicas,
                                                                         tmp_path: Path) -> None:
    """A process holding the signer's row with a nonce allocated dies (-9): the other replica gets that very nonce."""
    first = chain.nonce()
    held = tmp_path / "held"
    script = textwrap.dedent(f"""
        import pathlib, time
        from consentledger.chain.connect import connect
        from consentledger.chain.shared_nonces import SharedNonceAllocator
        from consentledger.store import make_engine
        engine = make_engine({POSTGRES_URL!r}, connect_args={{"options": "-csearch_path={replicas.schema}"}})
        nonces = SharedNonceAllocator.for_store(engine, connect({chain.node.rpc_url!r}))
        with nonces.signing_lock({chain.admin.address!r}):
            pathlib.Path({str(held)!r}).write_text(str(nonces.allocate({chain.admin.address!r})))
            time.sleep(600)
    """)
    replica = subprocess.Popen([sys.executable, "-c", script])
    try:
        _wait_for(held, replica)
        assert int(held.read_text()) == first
        busy = SharedNonceAllocator.for_store(replicas.b, chain.w3)
        busy._lock_timeout = 0.3  # the row is held: a sender gives up instead of waiting on
        with pytest.raises(SignerBusyError, match="another replica held the nonces"):
            busy.allocate(chain.admin.address)
    finally:
        replica.kill()
        replica.wait()
    ledger = Ledger(connect(chain.node.rpc_url), chain.deployment)
    try:
        survivor = ledger.sender(chain.admin, nonces=SharedNonceAllocator.for_store(replicas.b, ledger.w3))
        receipt = survivor.transact(propose(ledger, 1), gas=400_000)
    finally:
        ledger.close()
    assert chain.w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == first
    assert chain.nonce("pending") == chain.nonce() == first + 1


def test_a_block_that_raises_leaves_the_next_nonce_to_the_chain(chain: Chain, replicas: Replicas) -> None:
    """A send that failed under the lock may or may not have reached the node: the next allocation asks the chain."""
    a = SharedNonceAllocator.for_store(replicas.a, chain.w3)
    b = SharedNonceAllocator.for_store(replicas.b, chain.w3)
    address = chain.admin.address
    with a.signing_lock(address):
        assert a.allocate(address) == chain.nonce("pending")
        assert a.allocate(address) == chain.nonce("pending") + 1
    assert stored_next(replicas.a, address) == chain.nonce("pending") + 2  # committed when the lock ended
    with pytest.raises(RuntimeError), a.signing_lock(address):
        a.allocate(address)
        raise RuntimeError("broadcast failed")
    assert stored_next(replicas.a, address) is None
    assert b.allocate(address) == chain.nonce("pending")  # the chain's count, not the one allocated in vain


def test_sqlite_gateways_keep_the_in_process_allocator(tmp_path: Path, chain: Chain) -> None:
    """One process per SQLite file: no shared allocator (and none can be built on SQLite)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'agency.db'}")
    assert replica_nonces(engine, chain.w3) is None
    with pytest.raises(ValueError, match="need PostgreSQL"):
        SharedNonceAllocator.for_store(engine, chain.w3)


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert process.poll() is None, "the replica process exited"
        assert time.monotonic() < deadline, "the replica process never held the row"
        time.sleep(0.05)
