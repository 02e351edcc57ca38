"""Nonces shared by a gateway's replicas: each signer's next nonce in PostgreSQL, held from allocation to broadcast.

Replicas signing with one key must never hand out a nonce twice, nor skip one (a gap holds every
later transaction of the signer back). `SharedNonceAllocator` keeps the next nonce in the signer's
`signer_nonces` row, and its signing lock is a database transaction holding that row (SELECT … FOR
UPDATE) from the allocation until the transaction is broadcast; only then does the new value
commit. A replica killed in between leaves nothing behind: its transaction rolls back with its
connection, the allocation with it, and the row lock ends. One killed after the broadcast but
before the commit leaves the row behind the chain: the next broadcast is refused for a used nonce,
the sender resyncs (the row becomes NULL: "ask the chain") and signs again, as one process does
after any failed send. Under the row lock no replica holds a signed transaction it has not
broadcast, so the chain's pending count is then the right next nonce.

Within one process one thread at a time holds a signer's row (a local lock comes first), so a busy
process keeps one database connection waiting, not one per thread. The bound on pending
transactions (`reserve_pending`) stays per process: with R replicas at most R × `max_pending` of
the signer's transactions are pending.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils import to_checksum_address
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from web3 import Web3

from consentledger.chain.nonces import NonceAllocator
from consentledger.errors import SignerBusyError
from consentledger.store.tables import signer_nonces

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 30.0
"""Seconds a sender waits for another replica's hold on the signer's row before SignerBusyError."""


@dataclass(eq=False)
class _Hold:
    """One thread's hold on one signer's row: the open transaction and the value it will commit."""

    address: str
    conn: Connection
    next: int | None  # None: the next allocation asks the chain
    changed: bool = False
    depth: int = 1


class SharedNonceAllocator(NonceAllocator):
    """Hands out consecutive nonces per address from a shared PostgreSQL row, one holder across processes."""

    def __init__(self, engine: Engine, pending_count: Callable[[str], int], *,
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("shared nonces need PostgreSQL (row locks across processes); use NonceAllocator")
        super().__init__(pending_count)
        self._engine = engine
        self._lock_timeout = lock_timeout
        self._locals: dict[str, threading.RLock] = {}
        self._locals_lock = threading.Lock()
        self._holds = threading.local()
        self._known: set[str] = set()  # signers whose row exists

    @classmethod
    def for_store(cls, engine: Engine, w3: Web3) -> SharedNonceAllocator:
        """Return an allocator over `engine`'s `signer_nonces`, asking `w3` for a pending count when told to."""
        return cls(engine, lambda address: w3.eth.get_transaction_count(to_checksum_address(address), "pending"))

    def allocate(self, address: str) -> int:
        """Return the next unused nonce for `address` (committed when the caller's signing lock ends)."""
        address = to_checksum_address(address)
        hold = self._held().get(address)
        if hold is None:  # not under the signing lock: allocate in a hold of its own, committed at once
            with self._hold(address) as own:
                return self._take(own)
        return self._take(hold)

    def signing_lock(self, address: str) -> AbstractContextManager[object]:
        """Return the lock to hold from allocating a nonce until its transaction is broadcast (reentrant per thread).

        Entering it locks the signer's row against every other thread and replica; leaving it
        commits what was allocated, or, when the block raised, sets the row to "ask the chain" (a
        failed send may or may not have reached the node).
        """
        return self._hold(to_checksum_address(address))

    def resync(self, address: str) -> None:
        """Forget the shared counter so the next allocation, in any replica, asks the chain (after a failed send)."""
        address = to_checksum_address(address)
        hold = self._held().get(address)
        if hold is None:
            with self._hold(address) as own:
                own.next, own.changed = None, True
            return
        hold.next, hold.changed = None, True

    def _take(self, hold: _Hold) -> int:
        if hold.next is None:
            hold.next = self._pending_count(hold.address)
        nonce = hold.next
        hold.next, hold.changed = nonce + 1, True
        return nonce

    def _held(self) -> dict[str, _Hold]:
        holds: dict[str, _Hold] | None = getattr(self._holds, "by_address", None)
        if holds is None:
            holds = self._holds.by_address = {}
        return holds

    def _local(self, address: str) -> threading.RLock:
        with self._locals_lock:
            return self._locals.setdefault(address, threading.RLock())

    @contextmanager
    def _hold(self, address: str) -> Iterator[_Hold]:
        holds = self._held()
        hold = holds.get(address)
        if hold is not None:
            hold.depth += 1
            try:
                yield hold
            except BaseException:
                hold.next, hold.changed = None, True
                raise
            finally:
                hold.depth -= 1
            return
        with self._local(address):
            hold = self._begin(address)
            holds[address] = hold
            try:
                yield hold
            except BaseException:
                hold.next, hold.changed = None, True
                raise
            finally:
                del holds[address]
                self._end(hold)

    def _begin(self, address: str) -> _Hold:
        """Open a transaction holding the signer's row (created if missing); SignerBusyError if it stays held."""
        conn = self._engine.connect()
        try:
            conn.execute(text(f"SET LOCAL lock_timeout = '{int(self._lock_timeout * 1000)}ms'"))
            if address not in self._known:
                conn.execute(insert(signer_nonces).values(signer=address, next_nonce=None, updated_at=datetime.now(UTC))
                             .on_conflict_do_nothing(index_elements=["signer"]))
            value = conn.execute(select(signer_nonces.c.next_nonce).where(signer_nonces.c.signer == address)
                                 .with_for_update()).scalar_one()
        except OperationalError as exc:
            conn.close()
            if "lock timeout" in str(exc).lower():
                raise SignerBusyError(f"another replica held the nonces of {address} for {self._lock_timeout:g} s; "
                                      "nothing was sent") from None
            raise
        except BaseException:
            conn.close()
            raise
        return _Hold(address, conn, None if value is None else int(value))

    def _end(self, hold: _Hold) -> None:
        """Commit what the hold changed and release the row; a failure only leaves the row behind the chain."""
        try:
            if hold.changed:
                hold.conn.execute(update(signer_nonces).where(signer_nonces.c.signer == hold.address)
                                  .values(next_nonce=hold.next, updated_at=datetime.now(UTC)))
            hold.conn.commit()
            self._known.add(hold.address)
        except Exception as exc:
            # What was broadcast is out already; a row left behind is healed by the next clash's resync.
            log.warning("could not save the next nonce of %s: %s", hold.address, exc)
            hold.conn.invalidate()
        finally:
            hold.conn.close()


def replica_nonces(engine: Engine, w3: Web3) -> NonceAllocator | None:
    """Return the nonce allocator the replicas of a gateway over `engine` share; None on SQLite (one process).

    None means the ledger's own in-process allocator, all a gateway alone on its database needs.
    """
    if engine.dialect.name != "postgresql":
        return None
    return SharedNonceAllocator.for_store(engine, w3)
