"""The custodian's release checks bound to the trace: the requester's standing, the window, the legal basis now.

By the entry's basis: its consents must still be granted and unexpired; its statutory mandate still
in force (not revoked, not past its end, its purpose not past sunset); an emergency override needs
nothing beyond the entry (it is reviewed on chain afterwards).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eth_utils import keccak

from consentledger.consent import Consent, consent_id
from consentledger.errors import AuthorizationError, ReleaseRefusedError
from consentledger.gateway.runtime import Gateway
from consentledger.legal_bases import EXPIRED, PURPOSE_ENDED, REVOKED, mandate_state
from consentledger.types import AccessEntry, ConsentStatus, LegalBasis, Member, MemberStatus, Role

_NO_CONSENT = bytes(32)


def standing_of(gw: Gateway, requester: str) -> Callable[[], Member]:
    """Return a check of the requester's standing: its member record, read on chain on first use, if it may receive.

    From the chain view, current as of the release's refresh (membership events drop it): the key a
    release is wrapped for must be the one registered now. One batch reads it once; each item checks it.
    """
    read: list[Member] = []

    def standing() -> Member:
        if not read:
            read.append(gw.chain.member(requester))
        member = read[0]
        if member.status is not MemberStatus.ACTIVE or Role.REQUESTER not in member.roles:
            raise AuthorizationError("the requester is no longer an active requester")
        if not any(member.x25519_key):
            raise AuthorizationError("the requester has no X25519 key registered on chain")
        return member

    return standing


def within_window(entry: AccessEntry, window: int, now: float) -> None:
    """Refuse the release of an access whose block is more than `window` seconds old."""
    age = now - entry.timestamp
    if age > window:
        raise ReleaseRefusedError(
            "window_closed", f"access {entry.seq} to record 0x{entry.record.hex()} was recorded {int(age)} s ago; "
            f"its key is released only within {window} s of its block (a new use needs a new access)",
            record="0x" + entry.record.hex(), seq=entry.seq,
        )


def basis_still_valid(gw: Gateway, entry: AccessEntry, consents: Sequence[Consent], now: float) -> tuple[str, ...]:
    """Return the ids of the consents behind the access, once its legal basis is checked still valid at `now`.

    Consent: `consents_still_valid`. Mandate: none, once the mandate is in force
    (`mandate_still_in_force`). Override: none (the entry names its justification; the release log,
    its tx). An access under a mandate or by override presented no consents: any sent are refused.
    """
    if entry.basis is LegalBasis.CONSENT:
        return consents_still_valid(gw, entry, consents, now)
    record = "0x" + entry.record.hex()
    if consents:
        raise ReleaseRefusedError(
            "consents_mismatch", f"access {entry.seq} to record {record} was made under "
            f"{entry.basis.name.lower()}, not consent: send no consents", record=record, seq=entry.seq)
    if entry.basis is LegalBasis.MANDATE:
        mandate_still_in_force(gw, entry, now)
    return ()


def mandate_still_in_force(gw: Gateway, entry: AccessEntry, now: float) -> None:
    """Refuse the release of an access under a mandate that governance revoked, that ended, or whose purpose ended."""
    record, seq, mandate_id = "0x" + entry.record.hex(), entry.seq, int(entry.mandate or 0)
    mandate = gw.chain.mandate(mandate_id)  # followed by MandateRevoked events
    purpose = gw.chain.purpose(entry.purpose)
    state = mandate_state(mandate, purpose, now)
    if state == REVOKED:
        raise ReleaseRefusedError("mandate_revoked", f"statutory mandate {mandate_id} behind access {seq} to record "
                                  f"{record} was revoked by governance", record=record, seq=seq)
    if state == EXPIRED:
        raise ReleaseRefusedError("mandate_expired", f"statutory mandate {mandate_id} behind access {seq} to record "
                                  f"{record} ended at {mandate.valid_until}", record=record, seq=seq)
    if state == PURPOSE_ENDED:
        raise ReleaseRefusedError("mandate_expired", f"the purpose {entry.purpose} of statutory mandate {mandate_id} "
                                  f"behind access {seq} to record {record} ended (sunset {purpose.sunset})",
                                  record=record, seq=seq)


def consents_still_valid(gw: Gateway, entry: AccessEntry, consents: Sequence[Consent], now: float) -> tuple[str, ...]:
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
        status = gw.chain.consent_status(cid)  # followed by ConsentGranted/ConsentRevoked events
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
