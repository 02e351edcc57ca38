"""What this gateway has read from the chain: immutable facts read once, mutable ones followed by chain events.

The custodian trusts nothing it has not read from the chain, but reads it once. An access is
accepted on chain before its release is asked for, so whatever could make a release wrong later (a
tombstone, a revoked consent, a membership change, a catalog change such as a sunset) is a chain
event, and `refresh()`, which the custodian runs before a release decides, has applied it by then:

- categories and purposes: read when first asked for, dropped when a catalog event names them (the
  list of their ids at any event of their kind), and kept `catalog_ttl` seconds at most whatever
  happens (a safety net);
- records: their immutable metadata read once (the `max_records` most recently used are kept),
  their tombstone followed by RecordTombstoned;
- consents: their status read once, then followed by ConsentGranted and ConsentRevoked;
- statutory mandates: read once (their terms never change), their end followed by MandateRevoked;
- members: the `MembershipCache`, invalidated by membership events.

The chain is followed from the block the view opened at (nothing is cached before). A chain that
reorganised empties the view and follows it again from its new head: the head went back (a
development chain reverted to a snapshot), or the block last seen was replaced, at the same height
or by a longer chain (what was read from it may be gone, and the events of the blocks replacing it
lie below the cursor). A permissioned chain (QBFT) has immediate finality and never reorganises.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from consentledger.catalog import Catalog
from consentledger.chain.ledger import Ledger
from consentledger.gateway.membership import MEMBERSHIP_EVENTS, MembershipCache
from consentledger.settings import LOGS_BLOCK_RANGE
from consentledger.types import Category, ConsentStatus, Mandate, Member, Purpose, RecordInfo, TombstoneReason

K = TypeVar("K")
V = TypeVar("V")

MAX_LOG_RANGE = LOGS_BLOCK_RANGE
"""Most blocks one `eth_getLogs` spans: Besu's default `--rpc-max-logs-range`."""
MAX_RECORDS = 100_000
"""Records whose metadata is kept (least recently used go first)."""
MAX_CONSENTS = 100_000
"""Consents whose status is kept (least recently used go first)."""
MAX_MANDATES = 10_000
"""Mandates kept (least recently used go first); governance grants few."""

CATEGORY_EVENTS = ("CategoryAdded", "CategoryPurposesChanged")
PURPOSE_EVENTS = ("PurposeAdded", "PurposeSunsetChanged")
MANDATE_EVENTS = ("MandateRevoked",)
LEDGER_EVENTS = ("RecordTombstoned", "ConsentGranted", "ConsentRevoked")
_CONSORTIUM_EVENTS = MEMBERSHIP_EVENTS + CATEGORY_EVENTS + PURPOSE_EVENTS + MANDATE_EVENTS
_CATEGORY_IDS, _PURPOSE_IDS = 0, 1
"""Keys of the two id lists among the cached catalog entries."""
_CONSENT_STATUS = {"ConsentGranted": ConsentStatus.GRANTED, "ConsentRevoked": ConsentStatus.REVOKED}


class ChainView:
    """What this gateway has read from the chain, current as of the latest `refresh()`.

    Thread-safe. A read that misses goes to the chain; one that raced with events being applied
    is answered but not kept (it may predate an event already applied).
    """

    def __init__(
        self, ledger: Ledger, members: MembershipCache, *, catalog_ttl: float,
        max_records: int = MAX_RECORDS, max_consents: int = MAX_CONSENTS, log_range: int = MAX_LOG_RANGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self.members = members
        self._catalog_ttl = catalog_ttl
        self._max_records = max_records
        self._max_consents = max_consents
        self._log_range = log_range
        self._clock = clock
        self._lock = threading.Lock()  # guards the entries and epochs
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._categories: dict[int, tuple[float, Category]] = {}
        self._purposes: dict[int, tuple[float, Purpose]] = {}
        self._id_lists: dict[int, tuple[float, tuple[int, ...]]] = {}  # _CATEGORY_IDS, _PURPOSE_IDS
        self._records: OrderedDict[bytes, RecordInfo] = OrderedDict()
        self._consents: OrderedDict[bytes, ConsentStatus] = OrderedDict()
        self._mandates: OrderedDict[int, Mandate] = OrderedDict()
        # Bumped whenever events of that kind are applied: a read begun before is not kept.
        self._catalog_epoch = self._record_epoch = self._consent_epoch = self._mandate_epoch = 0
        self._refreshed = 0  # time.monotonic_ns() at which the latest successful refresh began
        self._latest = ledger.latest_block()
        self._next_block = self._latest[0] + 1

    @property
    def latest_block(self) -> int:
        """Return the number of the latest block seen by `refresh()` (or at opening)."""
        return self._latest[0]

    @property
    def latest_time(self) -> int:
        """Return the timestamp of that block: the time the contracts judged expiry by."""
        return self._latest[1]

    # ------------------------------------------------------------------ following the chain

    def refresh(self) -> int:
        """Apply the events of the blocks mined since the last refresh; return how many were applied.

        One read of the latest block's header (number, timestamp, hash) when no block is new;
        otherwise also one header read (is the block last seen still there?) and one `eth_getLogs` per
        `log_range` (default `MAX_LOG_RANGE`) blocks: catalog, membership, tombstone and consent
        events together. A reorganisation empties the view (see the module docstring). Concurrent
        callers share the work: a call that waited for another refresh returns at once if one that
        began after it was called has finished (it saw every block this one would).
        """
        asked = time.monotonic_ns()
        with self._refresh_lock:
            if self._refreshed > asked:
                return 0
            began = time.monotonic_ns()
            head = self._ledger.latest_block()
            latest, timestamp, _ = head
            if self._reorganised(head):
                self._forget_all()  # what was read may be gone; the replacing blocks lie below the cursor
                self._next_block = latest + 1
            applied = 0
            while self._next_block <= latest:
                end = min(self._next_block + self._log_range - 1, latest)
                events = self._ledger.followed_events(_CONSORTIUM_EVENTS, LEDGER_EVENTS, self._next_block, end)
                applied += self._apply(events)
                self._next_block = end + 1
            self._latest = head
            self._refreshed = began
            return applied

    def _reorganised(self, head: tuple[int, int, bytes]) -> bool:
        """Tell whether the block last seen is no longer on the chain whose head is `head`."""
        seen, _, seen_hash = self._latest
        latest, _, latest_hash = head
        if latest < seen:
            return True
        if latest == seen:
            return latest_hash != seen_hash
        return self._ledger.block_hash(seen) != seen_hash

    def _apply(self, events: list[Any]) -> int:
        with self._lock:
            for event in events:
                name, args = event["event"], event["args"]
                if name in MEMBERSHIP_EVENTS:
                    self.members.invalidate(args["account"])
                elif name in CATEGORY_EVENTS:
                    self._catalog_epoch += 1
                    self._categories.pop(int(args["category"]), None)
                    self._id_lists.pop(_CATEGORY_IDS, None)
                elif name in PURPOSE_EVENTS:
                    self._catalog_epoch += 1
                    self._purposes.pop(int(args["purpose"]), None)
                    self._id_lists.pop(_PURPOSE_IDS, None)
                elif name == "RecordTombstoned":
                    self._record_epoch += 1
                    record = bytes(args["record"])
                    info = self._records.get(record)
                    if info is not None:
                        self._records[record] = replace(info, tombstone=TombstoneReason(args["reason"]))
                elif name in _CONSENT_STATUS:
                    self._consent_epoch += 1
                    consent = bytes(args["consent"])
                    known = self._consents.get(consent)
                    if known is not None:  # NONE -> GRANTED -> REVOKED, never back
                        self._consents[consent] = max(known, _CONSENT_STATUS[name])
                elif name == "MandateRevoked":
                    self._mandate_epoch += 1
                    mandate_id = int(args["mandate"])
                    held = self._mandates.get(mandate_id)
                    if held is not None:
                        self._mandates[mandate_id] = replace(held, revoked=True)
        return len(events)

    def _forget_all(self) -> None:
        with self._lock:
            self._catalog_epoch += 1
            self._record_epoch += 1
            self._consent_epoch += 1
            self._mandate_epoch += 1
            self._categories.clear()
            self._purposes.clear()
            self._id_lists.clear()
            self._records.clear()
            self._consents.clear()
            self._mandates.clear()
            self.members.invalidate()

    # ------------------------------------------------------------------ reads

    def category(self, category_id: int) -> Category:
        """Return category `category_id` of the positive list as of the latest refresh."""
        return self._catalog_entry(self._categories, category_id, self._ledger.category)

    def purpose(self, purpose_id: int) -> Purpose:
        """Return purpose `purpose_id` (its sunset included) as of the latest refresh."""
        return self._catalog_entry(self._purposes, purpose_id, self._ledger.purpose)

    def catalog(self) -> Catalog:
        """Return the whole positive list as of the latest refresh, judged at that refresh's block time."""
        block, timestamp, _ = self._latest
        categories = self._catalog_entry(self._id_lists, _CATEGORY_IDS, lambda _: self._ledger.category_ids())
        purposes = self._catalog_entry(self._id_lists, _PURPOSE_IDS, lambda _: self._ledger.purpose_ids())
        return Catalog(tuple(self.category(c) for c in categories), tuple(self.purpose(p) for p in purposes),
                       block, timestamp)

    def record(self, record_id: bytes) -> RecordInfo:
        """Return record `record_id` as the chain registered it, its tombstone as of the latest refresh.

        The metadata (custodian, subject, category, created, retain_until, commitment, sources,
        kind) never changes and is read once. `accesses` and `attested` are as first read and not
        followed (no release depends on them): callers needing them read the ledger
        (`Ledger.record`). An unknown record raises the chain's revert and is not remembered: it may
        be registered later.
        """
        key = bytes(record_id)
        with self._lock:
            info = self._records.get(key)
            if info is not None:
                self._records.move_to_end(key)
                return info
            epoch = self._record_epoch
        info = self._ledger.record(key)
        with self._lock:
            if self._record_epoch == epoch:
                _keep(self._records, key, info, self._max_records)
        return info

    def consent_status(self, consent_id: bytes) -> ConsentStatus:
        """Return consent `consent_id`'s status as of the latest refresh (read once, then followed)."""
        key = bytes(consent_id)
        with self._lock:
            status = self._consents.get(key)
            if status is not None:
                self._consents.move_to_end(key)
                return status
            epoch = self._consent_epoch
        status, _ = self._ledger.consent_state(key)
        with self._lock:
            if self._consent_epoch == epoch:
                _keep(self._consents, key, status, self._max_consents)
        return status

    def mandate(self, mandate_id: int) -> Mandate:
        """Return statutory mandate `mandate_id`, its revocation as of the latest refresh (read once, then followed).

        An unknown mandate raises the chain's revert (LegalBasesUnknownMandate) and is not remembered.
        """
        with self._lock:
            held = self._mandates.get(mandate_id)
            if held is not None:
                self._mandates.move_to_end(mandate_id)
                return held
            epoch = self._mandate_epoch
        mandate = self._ledger.mandate(mandate_id)
        with self._lock:
            if self._mandate_epoch == epoch:
                _keep(self._mandates, mandate_id, mandate, MAX_MANDATES)
        return mandate

    def member(self, account: str) -> Member:
        """Return `account`'s standing (status, roles, X25519 key, URL) as of the latest refresh."""
        return self.members.get(account)

    def _catalog_entry(self, entries: dict[int, tuple[float, V]], key: int, read: Callable[[int], V]) -> V:
        now = self._clock()
        with self._lock:
            cached, epoch = entries.get(key), self._catalog_epoch
        if cached is not None and now - cached[0] < self._catalog_ttl:
            return cached[1]
        value = read(key)
        with self._lock:
            if self._catalog_epoch == epoch:
                entries[key] = (now, value)
        return value


def _keep(entries: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    """Remember `value` as the most recently used entry, forgetting the least recently used beyond `limit`."""
    entries.setdefault(key, value)
    entries.move_to_end(key)
    while len(entries) > limit:
        entries.popitem(last=False)
