"""Members' on-chain standing, cached briefly and dropped as soon as the chain says it changed."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from eth_utils import to_checksum_address

from consentledger.chain.ledger import Ledger
from consentledger.types import Member

MEMBERSHIP_EVENTS = ("MemberAdmitted", "MemberStatusChanged", "MemberRolesChanged", "MemberKeysChanged")
"""The Consortium events that change a member's standing; each names the member as `account`."""
MAX_ENTRIES = 10_000
"""Accounts whose standing is kept (least recently used dropped first): any signed request names a new account."""


class MembershipCache:
    """Reads `Consortium.member` through a TTL cache; membership events invalidate it.

    The gateway's `ChainView.refresh()` follows those events and calls `invalidate`, so an entry is
    current as of the latest refresh; the TTL is a safety net. At most `max_entries` accounts are
    kept: a caller that signs each request with a fresh key (a non-member asking member endpoints)
    must not grow the cache without bound.
    """

    def __init__(self, ledger: Ledger, ttl: float, *, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self._ledger = ledger
        self._ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Member]] = OrderedDict()
        self._epoch = 0  # bumped by every invalidation

    def __len__(self) -> int:
        """Return how many accounts' standing is cached now."""
        with self._lock:
            return len(self._entries)

    def get(self, account: str) -> Member:
        """Return the member record of `account` (status NONE if it is no member)."""
        address = to_checksum_address(account)
        now = self._clock()
        with self._lock:
            cached, epoch = self._entries.get(address), self._epoch
            if cached:
                self._entries.move_to_end(address)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        member = self._ledger.member(address)
        with self._lock:
            if self._epoch == epoch:  # an invalidation during the read may be for a change this read missed
                self._entries[address] = (now, member)
                self._entries.move_to_end(address)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return member

    def invalidate(self, account: str | None = None) -> None:
        """Forget one account's standing, or everyone's."""
        with self._lock:
            self._epoch += 1
            if account is None:
                self._entries.clear()
            else:
                self._entries.pop(to_checksum_address(account), None)
