"""Custodian side of an access: disclose a record only for an access recorded on chain.

The record's key never leaves the custodian. For each access the custodian decrypts the record,
withholds what the access may not see (identifying fields unless the chain recorded the access as
identified), seals the disclosure under a fresh one-time key bound to the access, and wraps that
key for the requester's X25519 key as registered on chain now.

A release is bound to the trace: only while every consent behind the access is still granted and
unexpired on chain (the statutory mandate behind it still in force; an emergency override stands on
its entry), only once `release_confirmations` blocks are mined on top of the access's
block (425 not_confirmed before), only within `release_window` seconds of it, and at most
`max_releases` times per access (once for a PROTECTED record). Each release is committed to the
custodian's release log before the sealed disclosure leaves.

One release (`release_key`) and a batch of one requester's (`release_keys`) take the same path:
find the entry, check, disclose, log. A batch finds its entries with one log query per block range
and logs its releases in one database transaction; each item gets its own answer or refusal.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import select

from consentledger.audit.tables import accesses
from consentledger.consent import Consent
from consentledger.crypto.commitment import canonical_json
from consentledger.crypto.disclosure import Withholding, disclose, pseudonym_key_for
from consentledger.crypto.keyx import access_context, wrap_for
from consentledger.crypto.vault import new_dek, open_sealed, record_aad, seal, unwrap_dek
from consentledger.errors import (
    AccessNotConfirmedError,
    AuthorizationError,
    ChainUnavailableError,
    ConsentLedgerError,
    NotFoundError,
    ReleaseRefusedError,
)
from consentledger.gateway.flows.key_request import KeyRequest
from consentledger.gateway.flows.release_checks import basis_still_valid, standing_of, within_window
from consentledger.gateway.flows.sources import refuse_dead_sources
from consentledger.gateway.flows.tombstones import destroyed
from consentledger.gateway.runtime import Gateway
from consentledger.store import RecordState, Release, ReleaseLog, StoredRecord
from consentledger.types import AccessEntry, Member, Sensitivity, TombstoneReason

Found = Callable[[KeyRequest], AccessEntry]
"""Returns the AccessRecorded entry a request names; AuthorizationError if the chain has none."""


@dataclass(frozen=True)
class _Sealed:
    """A release checked and sealed, not yet logged: its answer leaves only once `release` is committed."""

    answer: dict[str, Any]
    release: Release
    limit: int


def find_access(gw: Gateway, record_id: bytes, seq: int, block: int) -> AccessEntry:
    """Return the AccessRecorded entry (record, seq) mined in `block`; AuthorizationError if absent."""
    entries = gw.ledger.access_entries(block, block, records=[record_id], seqs=[seq])
    if not entries:
        raise _not_recorded(record_id, seq, block)
    return entries[0]


def recorded_entry(gw: Gateway, record_id: bytes, seq: int) -> AccessEntry:
    """Return the entry (record, seq) as the chain holds it; NotFoundError if there is none."""
    record = "0x" + record_id.hex()
    with gw.index_held(), gw.store.engine.connect() as conn:  # the index says which block; the chain says what
        block = conn.scalar(select(accesses.c.block).where(accesses.c.record == record, accesses.c.seq == seq))
    if block is None:
        raise NotFoundError(f"no access {seq} to record {record} is on chain")
    return find_access(gw, record_id, seq, int(block))


def find_accesses(gw: Gateway, requests: Sequence[KeyRequest]) -> dict[tuple[bytes, int, int], AccessEntry]:
    """Return the AccessRecorded entries the requests name, by (record, seq, block): one log query per block range.

    The requests' blocks are grouped into ranges of at most `logs_block_range` blocks (what the
    node serves in one `eth_getLogs`); each query asks only for the records and seqs requested in
    its range (any requester: an entry of another is refused as the single release refuses it), so
    it returns those entries and at most others pairing one of those records with another of the seqs.
    """
    found: dict[tuple[bytes, int, int], AccessEntry] = {}
    for first, last in block_ranges((r.block for r in requests), gw.settings.logs_block_range):
        inside = [r for r in requests if first <= r.block <= last]
        records, seqs = sorted({r.record_id for r in inside}), sorted({r.seq for r in inside})
        for entry in gw.ledger.access_entries(first, last, records=records, seqs=seqs):
            found[(bytes(entry.record), entry.seq, entry.block_number)] = entry
    return found


def block_ranges(blocks: Iterable[int], span: int) -> list[tuple[int, int]]:
    """Return the fewest (first, last) ranges of at most `span` blocks covering `blocks`, in order."""
    ranges: list[tuple[int, int]] = []
    for block in sorted(set(blocks)):
        if ranges and block - ranges[-1][0] < span:
            ranges[-1] = (ranges[-1][0], block)
        else:
            ranges.append((block, block))
    return ranges


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
    request = KeyRequest(record_id, seq, block, withhold, tuple(consents))
    (answer,) = _release(gw, requester, [request], lambda r: find_access(gw, r.record_id, r.seq, r.block), now)
    if isinstance(answer, ConsentLedgerError):
        raise answer
    return answer


def release_keys(
    gw: Gateway, requester: str, requests: Sequence[KeyRequest], *, now: float | None = None
) -> list[dict[str, Any] | ConsentLedgerError]:
    """Return, per request in order, its release as `release_key` answers it, or the error it would raise.

    The entries are found with one log query per block range (`find_accesses`) and every release
    is committed to the log in one transaction before any is returned. ChainUnavailableError (the
    node unreachable) fails the whole batch: nothing is released.
    """
    found = find_accesses(gw, requests)

    def find(request: KeyRequest) -> AccessEntry:
        entry = found.get((request.record_id, request.seq, request.block))
        if entry is None:
            raise _not_recorded(request.record_id, request.seq, request.block)
        return entry

    return _release(gw, requester, requests, find, now)


def _release(
    gw: Gateway, requester: str, requests: Sequence[KeyRequest], find: Found, now: float | None
) -> list[dict[str, Any] | ConsentLedgerError]:
    """Check and seal each request, log every sealed one in one transaction; return answers and refusals in order."""
    gw.chain.refresh()  # every tombstone, revocation and membership change up to the latest block is seen
    now = max(time.time(), gw.chain.latest_time) if now is None else now
    standing = standing_of(gw, requester)
    held = gw.store.get_records([request.record for request in requests])  # one query, not one per item
    sealed: list[_Sealed | ConsentLedgerError] = []
    for request in requests:
        try:
            sealed.append(_seal(gw, requester, request, held.get(request.record), find, standing, now))
        except ChainUnavailableError:
            raise
        except ConsentLedgerError as exc:
            sealed.append(exc)
    ready = [s for s in sealed if isinstance(s, _Sealed)]
    gw.fault("release-sealed")
    logged = ReleaseLog(gw.store.engine).record_many([(s.release, s.limit) for s in ready])
    gw.fault("release-logged")
    answers = {id(s): s.answer if release is not None else _spent(s) for s, release in zip(ready, logged, strict=True)}
    return [answers[id(s)] if isinstance(s, _Sealed) else s for s in sealed]


def _seal(
    gw: Gateway, requester: str, request: KeyRequest, stored: StoredRecord | None, find: Found,
    standing: Callable[[], Member], now: float,
) -> _Sealed:
    """Return the sealed disclosure of one request and its release to log; raise the refusal `release_key` names."""
    record_id, seq, withhold = request.record_id, request.seq, request.withhold
    if stored is None or stored.custodian != gw.org:
        raise NotFoundError(f"record {request.record} is not held here")
    if stored.state is RecordState.SHREDDED:
        raise destroyed(gw.store, stored.record_id)
    entry = find(request)
    if entry.requester != to_checksum_address(requester):
        raise AuthorizationError("this access was recorded for another organisation")
    confirmed(entry, gw.chain.latest_block, gw.settings.release_confirmations)
    info = gw.chain.record(record_id)
    if info.tombstone is not TombstoneReason.NONE:
        raise destroyed(gw.store, stored.record_id, info.tombstone)
    refuse_dead_sources(gw, info)  # a derived record dies with any of its original sources
    member = standing()
    within_window(entry, gw.settings.release_window, now)
    checked = basis_still_valid(gw, entry, request.consents, now)
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
    return _Sealed(answer, release, 1 if protected else gw.settings.max_releases)


def confirmed(entry: AccessEntry, latest: int, needed: int) -> None:
    """Return if `needed` blocks are mined on top of the access's block; AccessNotConfirmedError if not yet.

    The entry was read from the chain just now (`find`), so an access reorganised away is not found
    at all; one still on chain but shallower waits, and is looked up again when the requester asks again.
    """
    depth = max(latest - entry.block_number, 0)
    if depth < needed:
        raise AccessNotConfirmedError(
            "0x" + entry.record.hex(), entry.seq, block=entry.block_number, depth=depth, needed=needed)


def _spent(sealed: _Sealed) -> ReleaseRefusedError:
    """Return the refusal of a release its access's count no longer allows."""
    record, seq = sealed.release.record_id, sealed.release.seq
    if sealed.release.use == "immediate":
        return ReleaseRefusedError("protected_released", f"access {seq} to PROTECTED record {record} "
                                   "was already released once; a new use needs a new access", record=record, seq=seq)
    return ReleaseRefusedError("limit_reached", f"access {seq} to record {record} was already "
                               f"released {sealed.limit} times, the most allowed", record=record, seq=seq)


def _not_recorded(record_id: bytes, seq: int, block: int) -> AuthorizationError:
    return AuthorizationError(f"no access {seq} to record 0x{record_id.hex()} is recorded in block {block}")
