"""Requester side of an access: record it on chain, fetch the key from the custodian, verify, decrypt."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from consentledger.consent import Consent
from consentledger.crypto.disclosure import Disclosure, Withholding
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap_any
from consentledger.crypto.vault import open_sealed
from consentledger.errors import IntegrityError, PeerError, RecordDestroyedError, ReleaseRefusedError
from consentledger.gateway.runtime import Gateway
from consentledger.policy import visible_payload
from consentledger.signing import sign_request
from consentledger.types import NO_ACTOR, ActorId, Member, MemberStatus, Sensitivity


def request_access(
    gw: Gateway, record_id: bytes, purpose: int, consents: Sequence[Consent],
    withhold: Withholding = Withholding.REMOVE, *, actor: ActorId = NO_ACTOR,
) -> dict[str, Any]:
    """Record the access on chain for `actor`, then return the custodian's disclosure, checked against the commitment.

    Identifying fields are removed or pseudonymised (`withhold`) by the custodian unless the chain
    recorded the access as identified (every presented consent allows it); this gateway drops any
    it would still receive. Nothing of the record or its one-time key is kept here.
    """
    entry = gw.ledger.request_access(gw.sender, record_id, purpose, consents, actor=actor)
    info = gw.chain.record(record_id)  # custodian, commitment, category: registered once, never change
    custodian = _custodian_now(gw, info.custodian)
    released = _fetch_key(gw, custodian.gateway_url, custodian.address, record_id, entry.seq, entry.block_number,
                          withhold, consents)
    try:
        wrapped = WrappedKey.from_json(released["wrapped_key"])
        sealed = base64.b64decode(released["disclosure"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"malformed release from the custodian: {exc}") from None
    context = access_context(record_id, entry.seq, gw.org)
    access_key = _unwrap(gw, wrapped, context)
    try:
        shown = Disclosure.from_json(json.loads(open_sealed(access_key, sealed, context)))
    except ValueError as exc:
        raise IntegrityError(f"malformed disclosure from the custodian: {exc}") from None
    shown.verify(info.commitment)
    category = gw.chain.category(info.category)
    return {
        "record": "0x" + record_id.hex(),
        "seq": entry.seq,
        "tx": "0x" + entry.tx_hash.hex(),
        "block": entry.block_number,
        "category": info.category,
        "custodian": info.custodian,
        "identified": entry.identified,
        "actor": "0x" + entry.actor.hex(),
        "use": "immediate" if category.sensitivity is Sensitivity.PROTECTED else "standard",
        # Pseudonyms stand only for withheld fields (Disclosure.from_json checks), never for their values.
        "payload": {**visible_payload(shown.fields, category.identifying_fields, entry.identified), **shown.pseudonyms},
    }


def _unwrap(gw: Gateway, wrapped: WrappedKey, context: bytes) -> bytes:
    """Return the DEK the custodian wrapped for this org's X25519 key (as registered on chain at release time).

    Mid-rotation that may be the current or the next key, so each held key is tried; if none
    opens it the key files are read again once (a rotation begun while this gateway runs).
    """
    try:
        return unwrap_any(gw.x25519_keys(), wrapped, context)
    except IntegrityError:
        return unwrap_any(gw.x25519_keys(reload=True), wrapped, context)


def _custodian_now(gw: Gateway, registered: str) -> Member:
    """Return the member holding records registered by `registered`: itself, or the signer it rotated to."""
    member = gw.members.get(registered)
    if member.status is MemberStatus.REVOKED:
        current = gw.ledger.current_signer(registered)
        if current != member.address:
            return gw.members.get(current)
    return member


def _fetch_key(
    gw: Gateway, url: str, custodian: str, record_id: bytes, seq: int, block: int, withhold: Withholding,
    consents: Sequence[Consent],
) -> dict[str, Any]:
    """Return the custodian's release for access (record, seq); its refusals become our errors.

    The consents' terms go along so the custodian can check, from the entry's consent reference,
    that they are still valid on chain at release time.
    """
    if not url:
        raise PeerError(f"custodian {custodian} has no gateway URL on chain")
    path = f"/v1/keys/0x{record_id.hex()}/{seq}"
    request = {"block": block, "withhold": withhold.value, "consents": [c.to_json() for c in consents]}
    body = json.dumps(request, separators=(",", ":")).encode()
    signature = sign_request(
        gw.sender.account.key, chain_id=gw.chain_id, audience=custodian, method="POST", path=path, body=body,
        now=int(time.time()),
    )
    headers = {**signature.headers(), "Content-Type": "application/json"}
    try:
        response = gw.peers.post(url.rstrip("/") + path, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise PeerError(f"cannot reach the custodian gateway at {url}: {exc}") from None
    if response.status_code != 200:
        try:
            answer = response.json()
            detail, code = answer.get("detail", response.text), answer.get("error")
        except (ValueError, AttributeError):
            detail, code = response.text[:200], None
        if code == IntegrityError.code:
            raise IntegrityError(f"the custodian found the record damaged: {detail}")
        if code == ReleaseRefusedError.code:
            # The access is on chain, but its disclosure is not released (any more): say why, as the custodian did.
            raise ReleaseRefusedError(str(answer.get("reason", "")), f"the custodian refused the release: {detail}",
                                      record="0x" + record_id.hex(), seq=seq)
        if code == RecordDestroyedError.code:
            # Shredded at the custodian while its tombstone was still on its way to the chain.
            raise RecordDestroyedError(str(answer.get("record", "")), str(answer.get("reason", "")), str(detail),
                                       answer.get("tombstone"))
        raise PeerError(f"custodian gateway refused the key (HTTP {response.status_code}): {detail}")
    result: dict[str, Any] = response.json()
    return result

