"""What a consent request's grant may change: only narrow it (shorter, fewer uses, unidentified, one record)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GrantTerms:
    """The narrowable terms of a consent request, or of the grant a subject makes of it (`record` 0x hex or None)."""

    valid_until: int
    max_uses: int
    identified: bool
    record: str | None


def wider_terms(asked: GrantTerms, granted: GrantTerms) -> list[str]:
    """Return each way `granted` is wider than `asked`, in words (empty: it only narrows)."""
    wider = []
    if granted.valid_until > asked.valid_until:
        wider.append(f"valid_until {granted.valid_until} is later than the {asked.valid_until} asked")
    if granted.max_uses > asked.max_uses:
        wider.append(f"max_uses {granted.max_uses} is more than the {asked.max_uses} asked")
    if granted.identified and not asked.identified:
        wider.append("identified access was not asked for")
    if asked.record is not None and granted.record != asked.record:
        wider.append(f"the request is for record {asked.record} only, not {granted.record or 'the whole category'}")
    return wider


def narrowing_refusal(wider: list[str]) -> str:
    """Return the message refusing a grant wider than its request."""
    return "a grant may only narrow the request: " + "; ".join(wider)
