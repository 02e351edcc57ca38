"""Many accesses in one call: recorded on chain together, disclosed per custodian in batches, answered per item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consentledger.chain.batch import AccessRequest
from consentledger.consent import Consent
from consentledger.crypto.disclosure import Withholding
from consentledger.errors import ConsentLedgerError
from consentledger.gateway.flows.access import RecordedAccess, disclose_recorded
from consentledger.gateway.flows.recording import record_all
from consentledger.gateway.refusals import item_refusal
from consentledger.gateway.runtime import Gateway
from consentledger.store.access_keys import Idempotency
from consentledger.types import NO_ACTOR, AccessRefusal, ActorId


@dataclass(frozen=True)
class AccessAsk:
    """One item of a batch: a record, a purpose, the consents presented, and what becomes of withheld fields."""

    record: bytes
    purpose: int
    consents: tuple[Consent, ...] = ()
    withhold: Withholding = Withholding.REMOVE


def request_access_batch(
    gw: Gateway, asks: Sequence[AccessAsk], *, actor: ActorId = NO_ACTOR, idempotency: Idempotency | None = None,
) -> list[dict[str, Any]]:
    """Return one answer per ask, in order: `request_access`'s answer, or the refusal it would raise, with `status`.

    Every ask is enforced and recorded on chain (accepted in its record's hash chain, or refused
    with its rule) before any disclosure is fetched. With `idempotency`, the n-th item is keyed
    "KEY#n", so a retry of the whole call records nothing twice.
    """
    requests = [AccessRequest(ask.record, ask.purpose, ask.consents, actor) for ask in asks]
    keys = None if idempotency is None else [
        Idempotency(idempotency.caller, f"{idempotency.key}#{n}", idempotency.request_hash) for n in range(len(asks))
    ]
    outcomes = record_all(gw, requests, keys)
    answers: dict[int, dict[str, Any]] = {}
    recorded: list[tuple[int, RecordedAccess]] = []
    for at, outcome in enumerate(outcomes):
        if isinstance(outcome, (AccessRefusal, ConsentLedgerError)):
            answers[at] = _refused(asks[at], outcome)
        else:
            recorded.append((at, RecordedAccess(outcome, asks[at].consents, asks[at].withhold)))
    for (at, _), disclosed in zip(recorded, disclose_recorded(gw, [r for _, r in recorded]), strict=True):
        answers[at] = _refused(asks[at], disclosed) if isinstance(disclosed, ConsentLedgerError) else {
            "status": 200, **disclosed}
    return [answers[at] for at in range(len(asks))]


def _refused(ask: AccessAsk, outcome: AccessRefusal | ConsentLedgerError) -> dict[str, Any]:
    error = outcome.error() if isinstance(outcome, AccessRefusal) else outcome
    return {"record": "0x" + ask.record.hex(), **item_refusal(error)}
