"""A data subject's erasure: shred and tombstone their records here, and revoke every consent they gave.

Revoking a consent on chain takes the subject's own signature (EIP-712 `Revocation(bytes32
consent)`, relayed by anyone), which the gateway cannot make. So the subject's client first asks
for the subject's live consents (`GET /v1/subjects/me/consents`, from the gateway's audit index),
signs a revocation for each and sends them all with the erasure request. The gateway refuses the
request (422, naming the missing consent ids) unless every live consent of the subject it knows is
covered, and each revocation is signed exactly as the contract requires (`consent.recover_as_contract`:
65 bytes, low s, v 27/28, the subject's); a signature the contract would refuse is a 422 naming the
consent, before anything is shredded. A revocation of a consent never granted on chain (withdrawn
before its grantee relays it) is relayed only if the grantee is an active requester, as its grant
would be: otherwise any key could make the gateway pay for made-up revocations (403). Only then,
in one database transaction, it shreds the records and queues their tombstones (reason ERASURE)
and the revocations in the outbox (each row keyed by its consent id). Nothing is half done: the
relay sends every queued write after any restart, each effect once; the answer says where each
revocation is (on chain with tx and block, queued, sent, or failed with the chain's reason), so a
revocation that does not land is never silent.
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
    InvalidSignatureError,
    UncoveredConsentsError,
)
from consentledger.gateway.flows.consents import grantee_may_receive
from consentledger.gateway.flows.tombstones import ON_CHAIN, write_status
from consentledger.gateway.runtime import Gateway
from consentledger.store import OutboxStatus, QueuedWrite, RecordState
from consentledger.store.db import flush_deleted
from consentledger.types import ConsentStatus, TombstoneReason

log = logging.getLogger(__name__)

SignedRevocation = tuple[Consent, bytes]
"""A consent's terms and its subject's signature over `Revocation(bytes32 consent)`."""


def my_consents(gw: Gateway, subject: str) -> dict[str, Any]:
    """Return `{subject, block, block_time, consents}`: the subject's live consents an erasure must revoke.

    A consent whose revocation this gateway queued but that has not landed carries
    `revocation: {status (queued, sent or failed), tx_hash, error (the chain's reason, if failed)}`.
    """
    with gw.index_held():
        cursor = gw.indexer.cursor()
        live = live_consents(gw.store.engine, to_checksum_address(subject), cursor.timestamp or 0)
    listed = []
    for indexed in live:
        shown = indexed.to_json()
        status = revocation_status(gw, indexed.id, None)
        if status["revocation"] != "none":
            shown["revocation"] = {"status": status["revocation"], "tx_hash": status["tx_hash"],
                                   "error": status.get("error")}
        listed.append(shown)
    return {"subject": to_checksum_address(subject), "block": cursor.block, "block_time": cursor.timestamp,
            "consents": listed}


def erase(gw: Gateway, subject: str, signed: Sequence[SignedRevocation]) -> dict[str, Any]:
    """Shred and tombstone `subject`'s records held here and revoke their consents; return what was affected.

    Raises AuthorizationError for a revocation of another subject's consent (or of one never granted
    on chain whose grantee is no active requester: the gateway pays for no such transaction), InvalidSignatureError
    for one the contract would refuse (not the subject's, malleable, malformed), UncoveredConsentsError
    if a live consent is not revoked, InsufficientFundsError if the signer cannot pay for the chain
    writes; all before anything is shredded or queued.
    A repeated erasure shreds nothing more and queues only what is still needed.
    """
    subject = to_checksum_address(subject)
    offered = _checked(gw, subject, signed)
    gw.sender.funds.require()  # its tombstones and revocations could not be sent: refuse before shredding
    with gw.index_held():
        cursor = gw.indexer.cursor()
        live = {c.id for c in live_consents(gw.store.engine, subject, cursor.timestamp or 0)}
        missing = sorted(live - offered.keys())
        if missing:
            raise UncoveredConsentsError(missing)
        done = revocations(gw.store.engine, offered)
        for name in sorted(offered.keys() - live - done.keys()):
            _withdrawable(gw, name, offered[name][0])
        held = [r for r in gw.store.records_by_subject(subject) if r.custodian == gw.org]
        doomed = [QueuedWrite("tombstone", tombstone_payload(r.record_id, TombstoneReason.ERASURE), r.record_id)
                  for r in held if r.state is not RecordState.SHREDDED]
        queued = [QueuedWrite("revoke_consent", revocation_payload(*offered[i]), i) for i in sorted(offered)
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
        problem = revocation_signer(cid, signature, domain).refusal(subject)
        if problem is not None:
            raise InvalidSignatureError(name, "revocation", problem)
        offered[name] = (consent, signature)
    return offered


def _withdrawable(gw: Gateway, name: str, consent: Consent) -> None:
    """Check a revocation of a consent not live in the index may be relayed: granted (perhaps expired), or
    never granted but naming an active requester (withdrawn before its grantee relays it)."""
    status, _ = gw.ledger.consent_state(bytes.fromhex(name[2:]))
    if status is ConsentStatus.NONE:
        try:
            grantee_may_receive(gw, consent.grantee)
        except AuthorizationError as exc:
            raise AuthorizationError(f"consent {name} was never granted: {exc}") from None


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
        "consents": [revocation_status(gw, c, revoked.get(c)) for c in consents],
    }


def revocation_status(gw: Gateway, consent: str, indexed: tuple[str, int] | None) -> dict[str, Any]:
    """Return where the revocation of `consent` is: on chain (tx, block) per the index, else its latest outbox row.

    A row the relay gave up on shows `failed` with the chain's reason: the consent still stands.
    """
    if indexed is not None:
        return {"consent": consent, "revocation": ON_CHAIN, "tx_hash": indexed[0], "block": indexed[1]}
    writes = [w for w in gw.store.outbox_of_record(consent) if w.kind == "revoke_consent"]
    if not writes:
        return {"consent": consent, "revocation": "none", "tx_hash": None, "block": None}
    last = writes[-1]
    shown: dict[str, Any] = {"consent": consent, "revocation": write_status(last), "tx_hash": last.tx_hash,
                             "block": None}
    if last.status is OutboxStatus.FAILED:
        shown["error"] = last.last_error
    return shown
