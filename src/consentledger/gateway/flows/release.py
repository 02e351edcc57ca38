"""Custodian side of an access: disclose a record only for an access recorded on chain.

The record's key never leaves the custodian. For each access the custodian decrypts the record,
withholds what the access may not see (identifying fields unless the chain recorded the access as
identified), seals the disclosure under a fresh one-time key bound to the access, and wraps that
key for the requester's X25519 key as registered on chain now.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from eth_utils import to_checksum_address

from consentledger.chain.ledger import entry_from_event
from consentledger.crypto.commitment import canonical_json
from consentledger.crypto.disclosure import Withholding, disclose, pseudonym_key_for
from consentledger.crypto.keyx import access_context, wrap_for
from consentledger.crypto.vault import new_dek, open_sealed, record_aad, seal, unwrap_dek
from consentledger.errors import AuthorizationError, NotFoundError
from consentledger.gateway.flows.sources import refuse_dead_sources
from consentledger.gateway.flows.tombstones import destroyed
from consentledger.gateway.runtime import Gateway
from consentledger.store import RecordState
from consentledger.types import AccessEntry, MemberStatus, Role, Sensitivity, TombstoneReason


def find_access(gw: Gateway, record_id: bytes, seq: int, block: int) -> AccessEntry:
    """Return the AccessRecorded entry (record, seq) mined in `block`; AuthorizationError if absent."""
    events = gw.ledger.access.events.AccessRecorded().get_logs(
        from_block=block, to_block=block, argument_filters={"record": record_id, "seq": seq}
    )
    if not events:
        raise AuthorizationError(f"no access {seq} to record 0x{record_id.hex()} is recorded in block {block}")
    return entry_from_event(events[0])


def release_key(
    gw: Gateway, requester: str, record_id: bytes, seq: int, block: int, withhold: Withholding = Withholding.REMOVE
) -> dict[str, Any]:
    """Return the record's disclosure for access (record, seq), sealed for the requester's registered X25519 key.

    Refused unless the access is on chain, was made by this requester, the record is this
    custodian's, live on chain and in the store, and the requester is still an ACTIVE REQUESTER.
    Identifying fields are removed or pseudonymised (`withhold`) unless the entry is identified.
    A PROTECTED record's disclosure is marked for immediate use: the requester must not keep it.
    """
    stored = gw.store.get_record("0x" + record_id.hex())
    if stored is None or stored.custodian != gw.org:
        raise NotFoundError(f"record 0x{record_id.hex()} is not held here")
    if stored.state is RecordState.SHREDDED:
        raise destroyed(gw.store, stored.record_id)
    entry = find_access(gw, record_id, seq, block)
    if entry.requester != to_checksum_address(requester):
        raise AuthorizationError("this access was recorded for another organisation")
    info = gw.ledger.record(record_id)
    if info.tombstone is not TombstoneReason.NONE:
        raise destroyed(gw.store, stored.record_id, info.tombstone)
    refuse_dead_sources(gw, info)  # a derived record dies with any of its original sources
    member = gw.ledger.member(requester)  # fresh: the key must be the one registered now
    if member.status is not MemberStatus.ACTIVE or Role.REQUESTER not in member.roles:
        raise AuthorizationError("the requester is no longer an active requester")
    if not any(member.x25519_key):
        raise AuthorizationError("the requester has no X25519 key registered on chain")
    dek = unwrap_dek(gw.kek, stored.wrapped_dek, record_id)
    payload = json.loads(open_sealed(dek, stored.ciphertext, record_aad(record_id, stored.category)))
    category = gw.ledger.category(stored.category)
    hidden = () if entry.identified else category.identifying_fields
    disclosure = disclose(
        stored.salt, payload, hidden, withholding=withhold,
        pseudonym_key=pseudonym_key_for(gw.pseudonym_secret, member.address),
    )
    context = access_context(record_id, seq, member.address)
    access_key = new_dek()
    sealed = seal(access_key, canonical_json(disclosure.to_json()), context)
    return {
        "record": stored.record_id,
        "seq": seq,
        "category": stored.category,
        "identified": entry.identified,
        "use": "immediate" if category.sensitivity is Sensitivity.PROTECTED else "standard",
        "disclosure": base64.b64encode(sealed).decode(),
        "wrapped_key": wrap_for(member.x25519_key, access_key, context).to_json(),
    }
