"""When a record must be destroyed: retention by block time, and sunset of every purpose its category allows."""

from __future__ import annotations

from consentledger.lifecycle import ended_categories, purposes_ended, retention_over, tombstone_due
from consentledger.types import TombstoneReason

NOW = 1_800_000_000


def test_retention_ends_strictly_after_retain_until_like_the_contract() -> None:
    """`block.timestamp > retainUntil`: at retain-until itself the record is still usable."""
    assert not retention_over(NOW, NOW)
    assert retention_over(NOW - 1, NOW)


def test_a_category_ends_only_when_every_allowed_purpose_has_ended() -> None:
    """One purpose still running, or one without a sunset, keeps the category alive; sunset is inclusive."""
    sunsets = {1: NOW, 2: NOW + 1, 3: 0}
    assert purposes_ended([1], sunsets, NOW)
    assert not purposes_ended([1, 2], sunsets, NOW)
    assert purposes_ended([1, 2], sunsets, NOW + 1)
    assert not purposes_ended([1, 3], sunsets, NOW + 10**6)
    assert not purposes_ended([4], sunsets, NOW)  # unknown purpose: no sunset known


def test_a_category_without_purposes_is_not_swept_for_sunset() -> None:
    """No purpose at all is not "collected only for ended purposes"."""
    assert not purposes_ended([], {1: NOW}, NOW)
    assert ended_categories({7: [], 8: [1], 9: [1, 2]}, {1: NOW, 2: 0}, NOW) == frozenset({8})


def test_retention_is_the_reason_when_both_apply() -> None:
    """A record past retention is tombstoned RETENTION even if its purposes ended too; else SUNSET; else nothing."""
    assert tombstone_due(NOW - 1, [1], {1: NOW}, NOW) is TombstoneReason.RETENTION
    assert tombstone_due(NOW + 100, [1], {1: NOW}, NOW) is TombstoneReason.SUNSET
    assert tombstone_due(NOW + 100, [1], {1: NOW + 1}, NOW) is None
