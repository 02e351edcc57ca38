"""A data subject's erasure: shred and tombstone their records here, and revoke every consent they gave.

Revoking a consent on chain takes the subject's own signature (EIP-712 `Revocation(bytes32
consent)`, relayed by anyone), which the gateway cannot make. So the subject's client first asks
for the subject's live consents (`GET /v1/subjects/me/consents`, from the gateway's audit index),
signs a revocation for each and sends them all with the erasure request. The gateway refuses the
request (422, naming the missing consent ids) unless every live consent of the subject it knows is
covered, and only then, in one database transaction, shreds the records and queues their tombstones
(reason ERASURE) and the revocations in the outbox. Nothing is half done: the relay sends every
queued write after any restart, each effect once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address

from consentledger.audit.lifecycle import live_consents, revocations, tombstones
from consentledger.chain.relay import revocation_payload, tombstone_payload
from consentledger.consent import Consent, consent_id, revocation_signer
from consentledger.errors import (
    AuthorizationError,
    ChainUnavailableError,
    PayloadValidationError,
    UncoveredConsentsError,
)
from consentledger.gateway.flows.tombstones import ON_CHAIN, write_status
from consentledger.gateway.runtime import Gateway
from consentledger.store import QueuedWrite, RecordState
from consentledger.store.db import flush_deleted
from consentledger.types import TombstoneReason

log = logging.getLogger(__name__)

SignedRevocation = tuple[Consent, bytes]
"""A consent's terms and its subject's signature over `Revocation(bytes32 consent)`."""


def my_consents(gw: Gateway, subject: str) -> dict[str, Any]:
    """Return `{subject, block, block_time, consents}`: the subject's live consents an erasure must revoke."""
    with gw.index_held():
        cursor = gw.indexer.cursor()
        live = live_consents(gw.store.engine, to_checksum_address(subject), cursor.timestamp or 0)
    return {"subject": to_checksum_address(subject), "block": cursor.block, "block_time": cursor.timestamp,
            "consents": [c.to_json() for c in live]}


def erase(gw: Gateway, subject: str, signed: Sequence[SignedRevocation]) -> dict[str, Any]:
    """Shred and tombstone `subject`'s records held here and revoke their consents; return what was affected.

    Raises AuthorizationError for a revocation of another subject's consent, PayloadValidationError
    for one not signed by the subject, UncoveredConsentsError if a live consent is not revoked.
    A repeated erasure shreds nothing more and queues only what is still needed.
    """
    subject = to_checksum_address(subject)
    offered = _checked(gw, subject, signed)
    with gw.index_held():
        cursor = gw.indexer.cursor()
        live = {c.id for c in live_consents(gw.store.engine, subject, cursor.timestamp or 0)}
        missing = sorted(live - offered.keys())
        if missing:
            raise UncoveredConsentsError(missing)
        done = revocations(gw.store.engine, offered)
        held = [r for r in gw.store.records_by_subject(subject) if r.custodian == gw.org]
        doomed = [QueuedWrite("tombstone", tombstone_payload(r.record_id, TombstoneReason.ERASURE), r.record_id)
                  for r in held if r.state is not RecordState.SHREDDED]
        queued = [QueuedWrite("revoke_consent", revocation_payload(*offered[i])) for i in sorted(offered)
                  if i not in done]
        shredded = gw.store.shred(doomed, signer=gw.org, then=queued)
    if shredded:
        flush_deleted(gw.store.engine)
    try:
        gw.relay_now()  # at once when the chain is up; otherwise the upkeep loop sends them later
    except ChainUnavailableError as exc:
        log.warning("erasure of %s queued, not yet relayed: %s", subject, exc)
    return _outcome(gw, subject, [r.record_id for r in held], set(shredded), sorted(offered))


def _checked(gw: Gateway, subject: str, signed: Sequence[SignedRevocation]) -> dict[str, SignedRevocation]:
    """Return the revocations by consent id after checking each is the subject's and signed by them."""
    domain = gw.ledger.domain()
    offered: dict[str, SignedRevocation] = {}
    for consent, signature in signed:
        cid = consent_id(consent, domain)
        name = "0x" + cid.hex()
        if to_checksum_address(consent.subject) != subject:
            raise AuthorizationError(f"consent {name} is {consent.subject}'s: an erasure revokes only the signer's")
        if revocation_signer(cid, signature, domain) != subject:
            raise PayloadValidationError(f"the revocation of consent {name} is not signed by {subject}")
        offered[name] = (consent, signature)
    return offered


def _outcome(gw: Gateway, subject: str, records: list[str], shredded: set[str], consents: list[str]) -> dict[str, Any]:
    """Return the records and consents affected, each with its on-chain end where the index already has it.

    The erasure is committed by now, so with the chain gone the index is read as it stands.
    """
    try:
        with gw.index_held():
            cursor = gw.indexer.cursor()
    except ChainUnavailableError:
        cursor = gw.indexer.cursor()
    ended = {t.record: t for t in tombstones(gw.store.engine, records=records)}
    revoked = revocations(gw.store.engine, consents)
    listed = []
    for record in records:
        entry: dict[str, Any] = {"record": record, "shredded_now": record in shredded}
        if record in ended:
            entry.update(reason=ended[record].reason.name.lower(), tombstone=ON_CHAIN, tx_hash=ended[record].tx_hash,
                         block=ended[record].block)
        else:
            writes = [w for w in gw.store.outbox_of_record(record) if w.kind == "tombstone"]
            reason = TombstoneReason(int(writes[-1].payload["reason"])) if writes else TombstoneReason.ERASURE
            entry.update(reason=reason.name.lower(), tombstone=write_status(writes[-1]) if writes else "none",
                         tx_hash=writes[-1].tx_hash if writes else None, block=None)
        listed.append(entry)
    return {
        "subject": subject,
        "block": cursor.block,
        "records": listed,
        "consents": [
            {"consent": c, "revocation": ON_CHAIN, "tx_hash": revoked[c][0], "block": revoked[c][1]}
            if c in revoked else {"consent": c, "revocation": "queued", "tx_hash": None, "block": None}
            for c in consents
        ],
    }
