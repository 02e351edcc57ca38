"""Emergency overrides and their reviews, read back from the chain's OverrideRecorded/OverrideReviewed events."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from consentledger.settings import LOGS_BLOCK_RANGE
from consentledger.types import Address, RecordId, ReviewStatus

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

LOG_RANGE = LOGS_BLOCK_RANGE
"""Blocks per `eth_getLogs` (Besu's default `--rpc-max-logs-range`)."""


@dataclass(frozen=True)
class Review:
    """An auditor's review of an override, as OverrideReviewed carries it."""

    auditor: Address
    accepted: bool
    reason: str
    reviewed_at: int


@dataclass(frozen=True)
class Override:
    """An emergency override: the access it was, when it must be reviewed, and its review if any."""

    record: RecordId
    seq: int
    requester: Address
    justification: bytes
    recorded_at: int
    review_due: int
    block: int
    review: Review | None = None

    @property
    def status(self) -> ReviewStatus:
        """Return PENDING until reviewed, then ACCEPTED or REJECTED."""
        if self.review is None:
            return ReviewStatus.PENDING
        return ReviewStatus.ACCEPTED if self.review.accepted else ReviewStatus.REJECTED

    def marker(self, now: int) -> str:
        """Return "overdue" (unreviewed past its due time at `now`), "late" (reviewed after it) or ""."""
        if self.review is None:
            return "overdue" if now > self.review_due else ""
        return "late" if self.review.reviewed_at > self.review_due else ""


def read_overrides(ledger: Ledger, *, log_range: int = LOG_RANGE) -> list[Override]:
    """Return every override since the deployment, in chain order, each with its review if one was recorded."""
    latest = ledger.block_number()
    events = []
    for start in range(ledger.deployment.deploy_block, latest + 1, log_range):
        events.extend(ledger.followed_events((), ("OverrideRecorded", "OverrideReviewed"), start,
                                             min(start + log_range - 1, latest)))
    recorded: dict[tuple[bytes, int], Override] = {}
    reviews: dict[tuple[bytes, int], Review] = {}
    for event in events:
        args = event["args"]
        key = (bytes(args["record"]), int(args["seq"]))
        if event["event"] == "OverrideRecorded":
            state = ledger.override_state(key[0], key[1])
            recorded[key] = Override(
                RecordId(key[0]), key[1], Address(args["requester"]), bytes(args["justification"]),
                state.recorded_at, int(args["reviewDue"]), int(event["blockNumber"]),
            )
        else:
            reviews[key] = Review(Address(args["auditor"]), bool(args["accepted"]), str(args["reason"]),
                                  int(args["reviewedAt"]))
    return [replace(o, review=reviews.get(key)) for key, o in recorded.items()]
