"""Emergency overrides at the requester's gateway: the justification kept here, its salted hash on chain.

The client's justification is stored (`store.justifications`) before the override is sent, through
the same recording path as any access (`flows.recording`: group commit queue, signer nonce,
Idempotency-Key). The consortium's auditors read it back here by the access's (record, seq) and
check it against the chain: keccak256(salt ‖ text) is the entry's word and OverrideRecorded's.
"""

from __future__ import annotations

from typing import Any

from consentledger.chain.batch import AccessRequest
from consentledger.errors import ContractRevertError, NotFoundError
from consentledger.gateway.flows.recording import record_access
from consentledger.gateway.flows.release import recorded_entry
from consentledger.gateway.runtime import Gateway
from consentledger.store.access_keys import Idempotency
from consentledger.types import NO_ACTOR, AccessEntry, ActorId, LegalBasis


def record_override(
    gw: Gateway, record_id: bytes, purpose: int, text: str, *, actor: ActorId = NO_ACTOR,
    idempotency: Idempotency | None = None,
) -> AccessEntry:
    """Keep `text` salted, then record the override on chain under its hash; return the entry (a refusal raises).

    A refused override leaves no justification behind. A retry under an Idempotency-Key gets the
    first attempt's override, whose justification is the one kept (this attempt's is dropped).
    """
    kept = gw.justifications.keep(text, record="0x" + record_id.hex(), purpose=purpose, actor="0x" + bytes(actor).hex())
    try:
        entry = record_access(gw, AccessRequest(record_id, purpose, (), actor, justification=kept.hash), idempotency)
    except ContractRevertError:
        gw.justifications.drop(kept)
        raise
    if entry.consent != kept.hash:
        gw.justifications.drop(kept)
    return entry


def justification_of(gw: Gateway, record_id: bytes, seq: int) -> dict[str, Any]:
    """Return override (record, seq)'s justification as this agency keeps it, with its hash and the chain's entry.

    NotFoundError unless the chain holds that access as an override by this agency whose
    justification is stored here.
    """
    record = "0x" + record_id.hex()
    entry = recorded_entry(gw, record_id, seq)
    if entry.basis is not LegalBasis.OVERRIDE:
        raise NotFoundError(f"access {seq} to record {record} is no emergency override "
                            f"(its basis is {entry.basis.name.lower()})")
    if entry.requester != gw.org:
        raise NotFoundError(f"override {seq} to record {record} was recorded by {entry.requester}: its gateway "
                            "keeps the justification")
    kept = gw.justifications.find(entry.consent)
    if kept is None:
        raise NotFoundError(f"the justification of override {seq} to record {record} is not kept here")
    return {
        "record": record, "seq": seq, "justification": kept.text, "salt": "0x" + kept.salt.hex(),
        "hash": "0x" + kept.hash.hex(), "actor": "0x" + bytes(entry.actor).hex(), "recorded_at": entry.timestamp,
        "tx": "0x" + entry.tx_hash.hex(), "block": entry.block_number,
    }
