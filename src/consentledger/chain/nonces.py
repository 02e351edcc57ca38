"""Per-signer nonce allocation that stays correct under concurrency, and a bound on pending transactions.

web3's automatic nonce filling reads `eth_getTransactionCount` per transaction, so concurrent sends
from one signer race and lose transactions. The allocator hands out nonces under a lock and only
asks the chain again when told a send failed.

A node's pool keeps only so many pending transactions per sender (Besu: a handful by default, then
"nonce too distant from current sender nonce"), so senders reserve a pending slot per transaction
before they take a nonce and give it back once it is mined or given up.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager

from eth_utils import to_checksum_address
from web3 import Web3


class NonceAllocator:
    """Hands out consecutive nonces per address, starting from the chain's pending count."""

    def __init__(self, pending_count: Callable[[str], int]) -> None:
        self._pending_count = pending_count
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._signing: dict[str, threading.RLock] = {}
        self._slots = threading.Condition()
        self._pending: dict[str, int] = {}
        self._queues: dict[str, deque[object]] = {}

    @classmethod
    def for_chain(cls, w3: Web3) -> NonceAllocator:
        """Return an allocator that starts each signer at its pending transaction count on `w3`."""
        return cls(lambda address: w3.eth.get_transaction_count(to_checksum_address(address), "pending"))

    def allocate(self, address: str) -> int:
        """Return the next unused nonce for `address`."""
        with self._lock:
            nonce = self._next.get(address)
            if nonce is None:
                nonce = self._pending_count(address)
            self._next[address] = nonce + 1
            return nonce

    def signing_lock(self, address: str) -> AbstractContextManager[object]:
        """Return the lock to hold from allocating a nonce until its transaction is broadcast.

        Held that way, no signed-but-unsent transaction exists when another sender fails and
        resyncs, so a resync can never hand out a nonce a pending transaction still owns.
        """
        with self._lock:
            return self._signing.setdefault(address, threading.RLock())

    def resync(self, address: str) -> None:
        """Forget the local counter so the next allocation asks the chain (after a failed send)."""
        with self._lock:
            self._next.pop(address, None)

    def reserve_pending(self, address: str, limit: int, timeout: float) -> Callable[[], None] | None:
        """Take one of `limit` pending-transaction slots of `address`; return its release, or None on timeout.

        Waits, in turn with the other callers, up to `timeout` seconds while `limit` transactions of
        `address` are pending. Call the returned function once the transaction is mined or given up,
        or was never sent; calling it again does nothing.
        """
        deadline = time.monotonic() + timeout
        ticket = object()
        with self._slots:
            # First come, first served: a crowd of senders must not starve one of them for ever.
            queue = self._queues.setdefault(address, deque())
            queue.append(ticket)
            try:
                while queue[0] is not ticket or self._pending.get(address, 0) >= limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._slots.wait(remaining)
            finally:
                queue.remove(ticket)
                self._slots.notify_all()  # the next in line may go now
            self._pending[address] = self._pending.get(address, 0) + 1
        released = threading.Event()

        def release() -> None:
            with self._slots:
                if released.is_set():
                    return
                released.set()
                self._pending[address] -= 1
                self._slots.notify_all()

        return release

    def pending(self, address: str) -> int:
        """Return how many pending-transaction slots of `address` are taken."""
        with self._slots:
            return self._pending.get(address, 0)
