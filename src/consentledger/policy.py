"""Pure access-policy decisions (no I/O): what a requester may see of a decrypted record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from consentledger.consent import Consent


def identified_access(consents: Sequence[Consent]) -> bool:
    """Return whether identified access was consented: only when every presented consent says so."""
    return bool(consents) and all(consent.identified for consent in consents)


def visible_payload(payload: Mapping[str, Any], identifying_fields: Iterable[str], identified: bool) -> dict[str, Any]:
    """Return the payload a requester may receive: identifying fields withheld unless the access is identified."""
    if identified:
        return dict(payload)
    withheld = set(identifying_fields)
    return {field: value for field, value in payload.items() if field not in withheld}
