"""Resuming an access already on chain whose disclosure did not arrive: named by (record, seq), recorded nothing anew.

For a caller without its request's Idempotency-Key (or past its retention): the 502 that said the
custodian was unreachable named the access, and `POST /v1/access/resume` asks the custodian again.
Only the client whose use the chain records may resume it: the entry must be this organisation's
and its actor the caller's, so no one obtains data under an entry that holds someone else
accountable. The custodian checks the release as any other (consents still valid, the window, the
count), so a resume is no standing right to the data. An access under a statutory mandate or by
emergency override is resumed alike, without consents: the entry names its basis, and the
custodian checks the mandate is still in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consentledger.consent import Consent
from consentledger.crypto.disclosure import Withholding
from consentledger.errors import AuthorizationError
from consentledger.gateway.flows.access import RecordedAccess, disclosures
from consentledger.gateway.flows.receipts import receipt_of
from consentledger.gateway.flows.release import recorded_entry
from consentledger.gateway.runtime import Gateway
from consentledger.types import NO_ACTOR, AccessEntry, ActorId


def resume_access(
    gw: Gateway, record_id: bytes, seq: int, consents: Sequence[Consent], withhold: Withholding = Withholding.REMOVE,
    *, actor: ActorId = NO_ACTOR,
) -> dict[str, Any]:
    """Return access (record, seq)'s disclosure as `request_access` answers it, recording nothing on chain.

    `consents` are the terms the access presented, in order (the chain holds only their reference).
    NotFoundError if the chain holds no such access; AuthorizationError if another organisation, or
    another client of this one, made it.
    """
    entry = own_entry(gw, record_id, seq, actor)
    answer = disclosures(gw).submit(RecordedAccess(entry, tuple(consents), withhold)).result()
    return {**answer, "receipt": receipt_of(gw, entry)}


def own_entry(gw: Gateway, record_id: bytes, seq: int, actor: ActorId) -> AccessEntry:
    """Return the entry (record, seq) as the chain holds it, if this organisation's `actor` made it."""
    record = "0x" + record_id.hex()
    entry = recorded_entry(gw, record_id, seq)
    if entry.requester != gw.org:
        raise AuthorizationError(f"access {seq} to record {record} was recorded for another organisation: "
                                 "only its requester can resume it")
    if bytes(entry.actor) != bytes(actor):
        raise AuthorizationError(f"access {seq} to record {record} was made by another client of this agency: "
                                 "only the client the chain names can resume it")
    return entry
