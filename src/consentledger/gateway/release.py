"""Custodian side of an access: release a record's key only for an access recorded on chain."""

from __future__ import annotations

import base64
from typing import Any

from eth_utils import to_checksum_address

from consentledger.chain.ledger import entry_from_event
from consentledger.crypto.keyx import access_context, wrap_for
from consentledger.crypto.vault import unwrap_dek
from consentledger.errors import AuthorizationError, NotFoundError
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.tombstones import destroyed
from consentledger.store import RecordState
from consentledger.types import AccessEntry, MemberStatus, Role, TombstoneReason


def find_access(gw: Gateway, record_id: bytes, seq: int, block: int) -> AccessEntry:
    """Return the AccessRecorded entry (record, seq) mined in `block`; AuthorizationError if absent."""
    events = gw.ledger.access.events.AccessRecorded().get_logs(
        from_block=block, to_block=block, argument_filters={"record": record_id, "seq": seq}
    )
    if not events:
        raise AuthorizationError(f"no access {seq} to record 0x{record_id.hex()} is recorded in block {block}")
    return entry_from_event(events[0])


def release_key(gw: Gateway, requester: str, record_id: bytes, seq: int, block: int) -> dict[str, Any]:
    """Return the record's ciphertext and its DEK wrapped for the requester's registered X25519 key.

    Refused unless the access (record, seq) is on chain, was made by this requester, the record is
    this custodian's, live on chain and in the store, and the requester is still an ACTIVE REQUESTER.
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
    member = gw.ledger.member(requester)  # fresh: the key must be the one registered now
    if member.status is not MemberStatus.ACTIVE or Role.REQUESTER not in member.roles:
        raise AuthorizationError("the requester is no longer an active requester")
    if not any(member.x25519_key):
        raise AuthorizationError("the requester has no X25519 key registered on chain")
    dek = unwrap_dek(gw.kek, stored.wrapped_dek, record_id)
    wrapped = wrap_for(member.x25519_key, dek, access_context(record_id, seq, member.address))
    return {
        "record": stored.record_id,
        "seq": seq,
        "category": stored.category,
        "ciphertext": base64.b64encode(stored.ciphertext).decode(),
        "salt": "0x" + stored.salt.hex(),
        "wrapped_key": wrapped.to_json(),
    }
