"""When a record must be destroyed: pure rules of (record, catalog, block time), no I/O.

`now` is always a block timestamp, never the local clock: the chain refuses access once
`block.timestamp > retainUntil` (AccessLedgerRetentionExpired) and once `block.timestamp >= sunset`
for the purpose asked (DataCatalogPurposeSunset), so a record is due exactly when the chain already
treats it as unusable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from consentledger.types import TombstoneReason


def retention_over(retain_until: int, now: int) -> bool:
    """Return whether a record retained until `retain_until` is past its retention at block time `now`."""
    return now > retain_until


def purposes_ended(allowed_purposes: Collection[int], sunsets: Mapping[int, int], now: int) -> bool:
    """Return whether a category was collected only for purposes that have all ended at block time `now`.

    "Collected only for ended purposes" means: the category allows at least one purpose, and every
    purpose it allows has a sunset (non-zero) at or before `now`. One purpose still running (or a
    purpose without a sunset) keeps the category's records alive until their retention ends.
    """
    return bool(allowed_purposes) and all(0 < sunsets.get(purpose, 0) <= now for purpose in allowed_purposes)


def ended_categories(
    categories: Mapping[int, Collection[int]], sunsets: Mapping[int, int], now: int
) -> frozenset[int]:
    """Return the ids of the categories (id → allowed purposes) whose every purpose has ended at `now`."""
    return frozenset(c for c, purposes in categories.items() if purposes_ended(purposes, sunsets, now))


def tombstone_due(
    retain_until: int, allowed_purposes: Collection[int], sunsets: Mapping[int, int], now: int
) -> TombstoneReason | None:
    """Return why a live record must be destroyed at block time `now` (RETENTION first, then SUNSET), or None."""
    if retention_over(retain_until, now):
        return TombstoneReason.RETENTION
    if purposes_ended(allowed_purposes, sunsets, now):
        return TombstoneReason.SUNSET
    return None
