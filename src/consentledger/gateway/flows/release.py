"""Custodian side of an access: disclose a record only for an access recorded on chain.

The record's key never leaves the custodian. For each access the custodian decrypts the record,
withholds what the access may not see (identifying fields unless the chain recorded the access as
identified), seals the disclosure under a fresh one-time key bound to the access, and wraps that
key for the requester's X25519 key as registered on chain now.

A release is bound to the trace: only while every consent behind the access is still granted and
unexpired on chain, only within `release_window` seconds of the access's block, and at most
`max_releases` times per access (once for a PROTECTED record). Each release is committed to the
custodian's release log before the sealed disclosure leaves.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

from eth_utils import keccak, to_checksum_address

from consentledger.chain.ledger import entry_from_event
from consentledger.consent import Consent, consent_id
from consentledger.crypto.commitment import canonical_json
from consentledger.crypto.disclosure import Withholding, disclose, pseudonym_key_for
from consentledger.crypto.keyx import access_context, wrap_for
from consentledger.crypto.vault import new_dek, open_sealed, record_aad, seal, unwrap_dek
from consentledger.errors import AuthorizationError, NotFoundError, ReleaseRefusedError
from consentledger.gateway.flows.sources import refuse_dead_sources
from consentledger.gateway.flows.tombstones import destroyed
from consentledger.gateway.runtime import Gateway
from consentledger.store import RecordState, Release, ReleaseLog
from consentledger.types import AccessEntry, ConsentStatus, MemberStatus, Role, Sensitivity, TombstoneReason

_NO_CONSENT = bytes(32)


def find_access(gw: Gateway, record_id: bytes, seq: int, block: int) -> AccessEntry:
    """Return the AccessRecorded entry (record, seq) mined in `block`; AuthorizationError if absent."""
    events = gw.ledger.access.events.AccessRecorded().get_logs(
        from_block=block, to_block=block, argument_filters={"record": record_id, "seq": seq}
    )
    if not events:
        raise AuthorizationError(f"no access {seq} to record 0x{record_id.hex()} is recorded in block {block}")
    return entry_from_event(events[0])


def release_key(
    gw: Gateway, requester: str, record_id: bytes, seq: int, block: int, withhold: Withholding = Withholding.REMOVE,
    consents: Sequence[Consent] = (), *, now: float | None = None,
) -> dict[str, Any]:
    """Return the record's disclosure for access (record, seq), sealed for the requester's registered X25519 key.

    Refused unless the access is on chain, was made by this requester, the record is this
    custodian's, live on chain and in the store, and the requester is still an ACTIVE REQUESTER;
    ReleaseRefusedError unless `consents` (the terms the access presented, in order) hash to the
    entry's consent reference and each is still granted and unexpired at `now` (default: the later
    of this machine's clock and the latest block's time, so a consent expired by either is), the
    access's block is at most `release_window` seconds old, and the access was released fewer than
    `max_releases` times (a PROTECTED record's: not yet). The release is logged before
    the answer is returned.
    Identifying fields are removed or pseudonymised (`withhold`) unless the entry is identified.
    A PROTECTED record's disclosure is marked for immediate use: the requester must not keep it.
    """
    gw.chain.refresh()  # every tombstone, revocation and membership change up to the latest block is seen
    now = max(time.time(), gw.chain.latest_time) if now is None else now
    stored = gw.store.get_record("0x" + record_id.hex())
    if stored is None or stored.custodian != gw.org:
        raise NotFoundError(f"record 0x{record_id.hex()} is not held here")
    if stored.state is RecordState.SHREDDED:
        raise destroyed(gw.store, stored.record_id)
    entry = find_access(gw, record_id, seq, block)
    if entry.requester != to_checksum_address(requester):
        raise AuthorizationError("this access was recorded for another organisation")
    info = gw.chain.record(record_id)
    if info.tombstone is not TombstoneReason.NONE:
        raise destroyed(gw.store, stored.record_id, info.tombstone)
    refuse_dead_sources(gw, info)  # a derived record dies with any of its original sources
    member = gw.chain.member(requester)  # as of the refresh: the key must be the one registered now
    if member.status is not MemberStatus.ACTIVE or Role.REQUESTER not in member.roles:
        raise AuthorizationError("the requester is no longer an active requester")
    if not any(member.x25519_key):
        raise AuthorizationError("the requester has no X25519 key registered on chain")
    _within_window(entry, gw.settings.release_window, now)
    checked = _consents_still_valid(gw, entry, consents, now)
    dek = unwrap_dek(gw.kek, stored.wrapped_dek, record_id)
    payload = json.loads(open_sealed(dek, stored.ciphertext, record_aad(record_id, stored.category)))
    category = gw.chain.category(stored.category)
    hidden = () if entry.identified else category.identifying_fields
    disclosure = disclose(
        stored.salt, payload, hidden, withholding=withhold,
        pseudonym_key=pseudonym_key_for(gw.pseudonym_secret, member.address),
    )
    context = access_context(record_id, seq, member.address)
    access_key = new_dek()
    sealed = seal(access_key, canonical_json(disclosure.to_json()), context)
    protected = category.sensitivity is Sensitivity.PROTECTED
    withheld = tuple(name for name in hidden if name in payload)
    use = "immediate" if protected else "standard"
    answer = {
        "record": stored.record_id,
        "seq": seq,
        "category": stored.category,
        "identified": entry.identified,
        "use": use,
        "disclosure": base64.b64encode(sealed).decode(),
        "wrapped_key": wrap_for(member.x25519_key, access_key, context).to_json(),
    }
    release = Release(
        record_id=stored.record_id, seq=seq, requester=member.address, access_block=entry.block_number,
        access_tx="0x" + entry.tx_hash.hex(), access_time=entry.timestamp, consents=checked,
        withheld=withheld, withholding=withhold.value if withheld else "none", use=use,
    )
    limit = 1 if protected else gw.settings.max_releases
    if ReleaseLog(gw.store.engine).record(release, limit=limit) is None:
        if protected:
            raise ReleaseRefusedError("protected_released", f"access {seq} to PROTECTED record {stored.record_id} "
                                      "was already released once; a new use needs a new access",
                                      record=stored.record_id, seq=seq)
        raise ReleaseRefusedError("limit_reached", f"access {seq} to record {stored.record_id} was already "
                                  f"released {limit} times, the most allowed", record=stored.record_id, seq=seq)
    return answer


def _within_window(entry: AccessEntry, window: int, now: float) -> None:
    """Refuse the release of an access whose block is more than `window` seconds old."""
    age = now - entry.timestamp
    if age > window:
        raise ReleaseRefusedError(
            "window_closed", f"access {entry.seq} to record 0x{entry.record.hex()} was recorded {int(age)} s ago; "
            f"its key is released only within {window} s of its block (a new use needs a new access)",
            record="0x" + entry.record.hex(), seq=entry.seq,
        )


def _consents_still_valid(gw: Gateway, entry: AccessEntry, consents: Sequence[Consent], now: float) -> tuple[str, ...]:
    """Return the ids of the consents behind the access, each checked granted and unexpired on chain now.

    The entry names its consent by reference only: the consent id itself, or keccak256 of the ids
    when a derived record's access presented several, so the requester sends the terms it
    presented and they must hash to that reference. An access without consent (OPEN) has none.
    """
    record, seq = "0x" + entry.record.hex(), entry.seq
    if entry.consent == _NO_CONSENT:
        return ()
    domain = gw.ledger.domain()
    ids = [consent_id(terms, domain) for terms in consents]
    reference = b"" if not ids else ids[0] if len(ids) == 1 else keccak(b"".join(ids))
    if reference != entry.consent:
        raise ReleaseRefusedError(
            "consents_mismatch", f"the consents sent ({len(ids)}) are not the ones access {seq} to record {record} "
            f"presented (reference 0x{entry.consent.hex()}); send their terms in the order presented",
            record=record, seq=seq,
        )
    for terms, cid in zip(consents, ids, strict=True):
        status = gw.chain.consent_status(cid)
        if status is ConsentStatus.REVOKED:
            raise ReleaseRefusedError("consent_revoked", f"consent 0x{cid.hex()} behind access {seq} to record "
                                      f"{record} was revoked by its subject", record=record, seq=seq)
        if status is not ConsentStatus.GRANTED:
            raise ReleaseRefusedError("consent_not_granted", f"consent 0x{cid.hex()} behind access {seq} to record "
                                      f"{record} is not granted on chain", record=record, seq=seq)
        if now > terms.valid_until:
            raise ReleaseRefusedError("consent_expired", f"consent 0x{cid.hex()} behind access {seq} to record "
                                      f"{record} expired at {terms.valid_until}", record=record, seq=seq)
    return tuple("0x" + cid.hex() for cid in ids)
