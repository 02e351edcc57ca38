"""The rules of the legal bases beside consent, checked without I/O: statutory mandates and emergency overrides.

`AccessChecker` calls `mandate_findings` and `OverrideRate` for each access under those bases, in
chain order; `review_findings` judges every indexed override's review as of the index's cursor.
They mirror LegalBases.mandatePolicy and overrideCheck, and AccessLedger.reviewOverride.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consentledger.audit.events import AccessRow

Position = tuple[int, int]
"""(block number, log index): an event's place in the chain."""


@dataclass(frozen=True)
class MandateFacts:
    """A statutory mandate as indexed: its terms, and where it was granted and (if ever) revoked."""

    institution: str
    purpose: int
    categories: frozenset[int]
    valid_until: int
    identified: bool
    granted: Position
    revoked: Position | None = None
    legal_text_uri: str = ""


@dataclass(frozen=True)
class PolicyFacts:
    """An override policy as set by governance (OverridePolicyChanged)."""

    purposes: frozenset[int]
    review_period: int
    max_overrides: int
    """0: no limit."""
    rate_window: int


@dataclass(frozen=True)
class OverrideFacts:
    """An emergency override as indexed: when it was due for review and when (if ever) it was reviewed."""

    record: str
    seq: int
    requester: str
    review_due: int
    recorded_tx: str
    recorded_block: int
    reviewed_at: int | None = None
    reviewed_tx: str | None = None
    reviewed_block: int | None = None


def mandate_findings(
    row: AccessRow, mandate: MandateFacts, *, category: int, holder: bool, sunset: int | None,
) -> list[str]:
    """Return why the access `row` to a record of `category` fell outside `mandate` (empty: within it).

    `holder` says whether the requester is the mandate's institution or the signer it rotated to;
    `sunset` is the purpose's sunset as it stood before the access (None or 0: none).
    """
    here = (row.block, row.log_index)
    outside: list[str] = []
    if not holder:
        outside.append(f"it was granted to {mandate.institution}, not to the requester {row.requester}")
    if mandate.purpose != row.purpose:
        outside.append(f"it is for purpose {mandate.purpose}, the access was for purpose {row.purpose}")
    if category not in mandate.categories:
        outside.append(f"it covers categories {sorted(mandate.categories)}, not category {category}")
    if row.timestamp > mandate.valid_until:
        outside.append(f"it ended at {_time(mandate.valid_until)}, the access was at {_time(row.timestamp)}")
    if mandate.revoked is not None and mandate.revoked < here:
        outside.append(f"governance revoked it at block {mandate.revoked[0]}, before the access")
    if sunset and row.timestamp >= sunset:
        outside.append(f"its purpose {row.purpose} reached its sunset at {_time(sunset)}, before the access")
    return outside


@dataclass
class OverrideRate:
    """Counts each agency's overrides in chain order, to find those above the policy's rate."""

    _times: dict[str, list[int]] = field(default_factory=dict)

    def count(self, row: AccessRow, policy: PolicyFacts | None) -> int | None:
        """Record the override `row`; return how many the requester recorded within the policy's window up to it,
        if that is above the policy's maximum (None: within it, or no limit in force)."""
        times = self._times.setdefault(row.requester, [])
        times.append(row.timestamp)
        if policy is None or not policy.max_overrides:
            return None
        within = len(times) - bisect.bisect_right(times, row.timestamp - policy.rate_window)
        return within if within > policy.max_overrides else None


def review_findings(overrides: Iterable[OverrideFacts], now: int) -> list[tuple[str, OverrideFacts, str]]:
    """Return ("unreviewed" | "late", override, sentence) for each override not reviewed by its due time.

    An override still pending is unreviewed once `now` (the index cursor's time) is past its due
    time; a review recorded after the due time is late.
    """
    found: list[tuple[str, OverrideFacts, str]] = []
    for override in overrides:
        if override.reviewed_at is None:
            if now > override.review_due:
                found.append(("unreviewed", override, f"the emergency override by {override.requester} was due "
                              f"for review at {_time(override.review_due)} and is still unreviewed at {_time(now)}"))
        elif override.reviewed_at > override.review_due:
            late = override.reviewed_at - override.review_due
            found.append(("late", override, f"the emergency override by {override.requester} was due for review at "
                          f"{_time(override.review_due)} and was reviewed {late} s late, at "
                          f"{_time(override.reviewed_at)}"))
    return found


def _time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")
