"""The portal's plain words: dates as dates, catalog names as people read them, and the sentence of an access."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from consentledger.types import TombstoneReason

RECORD_STATES = {
    TombstoneReason.ERASURE: ("erased", "erased at your request"),
    TombstoneReason.RETENTION: ("expired", "deleted at the end of the time it may be kept"),
    TombstoneReason.SUNSET: ("sunset", "deleted because the purpose it was kept for has ended"),
    TombstoneReason.CUSTODIAN: ("erased", "deleted by the organisation holding it"),
    TombstoneReason.SOURCE_DESTROYED: ("erased", "deleted because the record it was made from was deleted"),
}
"""What a tombstone's reason makes of a record: its state and the words saying why it ended."""


def date_text(unix: int) -> str:
    """Return a day as people write it: "1 March 2027" (UTC)."""
    moment = datetime.fromtimestamp(unix, UTC)
    return f"{moment.day} {moment:%B %Y}"


def moment_text(unix: int) -> str:
    """Return a moment as people write it: "2 December 2026 at 10:04 UTC"."""
    moment = datetime.fromtimestamp(unix, UTC)
    return f"{date_text(unix)} at {moment:%H:%M} UTC"


def iso(unix: int) -> str:
    """Return the ISO-8601 UTC form of a unix time, with a Z."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def label(name: str | None, fallback: str) -> str:
    """Return a catalog name as a label ("lab-result" -> "Lab result"), or `fallback` for an unknown one."""
    if not name:
        return fallback
    words = name.replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def listing(items: Sequence[str]) -> str:
    """Return "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def mandate_words(mandate: int, legal_text_uri: str) -> str:
    """Return how an access under a statutory mandate reads: "accessed under statutory mandate 3 (https://…)"."""
    return f"accessed under statutory mandate {mandate}" + (f" ({legal_text_uri})" if legal_text_uri else "")


def override_words(review: str, review_due: int) -> str:
    """Return how an emergency override reads, its review "pending", "accepted" or "rejected" (due `review_due`)."""
    said = f"pending, due by {date_text(review_due)}" if review == "pending" else f"{review} by an auditor"
    return f"accessed in an emergency without your consent (override; review: {said})"


def access_sentence(*, who: str, category: str, when: int, purpose: str, identified: bool,
                    identifying: Sequence[str], consent_granted_at: int | None, derived: bool,
                    basis_words: str | None = None) -> str:
    """Return the sentence telling the subject about one access, e.g.

    "Regional Lab looked at your Lab result on 2 December 2026 at 10:04 UTC for Epidemic control; your
    name and address were hidden from them; under your consent of 1 December 2026."

    `basis_words` (`mandate_words`, `override_words`) say the legal basis of an access made without consent.
    """
    what = f"a record made from your {category}" if derived else f"your {category}"
    parts = [f"{who} looked at {what} on {moment_text(when)} for {purpose}"]
    fields = [f.replace("_", " ") for f in identifying]
    if fields and not identified:
        parts.append(f"your {listing(fields)} {'was' if len(fields) == 1 else 'were'} hidden from them")
    elif fields:
        parts.append(f"they saw your {listing(fields)}")
    if basis_words is not None:
        parts.append(basis_words)
    elif consent_granted_at is not None:
        parts.append(f"under your consent of {date_text(consent_granted_at)}")
    else:
        parts.append("no consent of yours was needed for this kind of record and purpose")
    return "; ".join(parts) + "."
