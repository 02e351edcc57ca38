"""Per-signer nonce allocation that stays correct under concurrency.

web3's automatic nonce filling reads `eth_getTransactionCount` per transaction, so concurrent sends
from one signer race and lose transactions. The allocator hands out nonces under a lock and only
asks the chain again when told a send failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from eth_utils import to_checksum_address
from web3 import Web3


class NonceAllocator:
    """Hands out consecutive nonces per address, starting from the chain's pending count."""

    def __init__(self, pending_count: Callable[[str], int]) -> None:
        self._pending_count = pending_count
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._signing: dict[str, threading.RLock] = {}

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

    def signing_lock(self, address: str) -> threading.RLock:
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
