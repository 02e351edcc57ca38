"""Requester side of an access: record it on chain, fetch the key from the custodian, verify, decrypt."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from consentledger.chain.batch import AccessRequest, batch_outcomes
from consentledger.consent import Consent
from consentledger.crypto.disclosure import Disclosure, Withholding
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap_any
from consentledger.crypto.vault import open_sealed
from consentledger.errors import (
    ConsentLedgerError,
    ContractRevertError,
    IdempotencyConflictError,
    IntegrityError,
    PeerError,
    RecordDestroyedError,
    ReleaseRefusedError,
)
from consentledger.gateway.runtime import Gateway
from consentledger.policy import visible_payload
from consentledger.signing import sign_request
from consentledger.store.access_keys import Idempotency
from consentledger.types import NO_ACTOR, AccessEntry, AccessRefusal, ActorId, Member, MemberStatus, Sensitivity


def request_access(
    gw: Gateway, record_id: bytes, purpose: int, consents: Sequence[Consent],
    withhold: Withholding = Withholding.REMOVE, *, actor: ActorId = NO_ACTOR, idempotency: Idempotency | None = None,
) -> dict[str, Any]:
    """Record the access on chain for `actor`, then return the custodian's disclosure, checked against the commitment.

    Identifying fields are removed or pseudonymised (`withhold`) by the custodian unless the chain
    recorded the access as identified (every presented consent allows it); this gateway drops any
    it would still receive. Nothing of the record or its one-time key is kept here.
    """
    entry = record_access(gw, AccessRequest(record_id, purpose, tuple(consents), actor), idempotency)
    info = gw.ledger.record(record_id)
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
    category = gw.ledger.category(info.category)
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


def record_access(gw: Gateway, request: AccessRequest, idempotency: Idempotency | None = None) -> AccessEntry:
    """Record one access on chain (group-committed with whatever else is asked now); its refusal raises.

    A refused access is on the ledger too (AccessRefused), and raises the ContractRevertError naming
    the rule, exactly as the contract's own revert would. With `idempotency`, a retry gets the
    access the first request recorded (see `store.access_keys`), never a second one.
    """
    if idempotency is None:
        outcome = gw.batcher.submit(request).result()
    else:
        with gw.access_keys.claim([idempotency]):
            outcome = resumed(gw, idempotency) or gw.batcher.submit(request, idempotency=idempotency).result()
    if isinstance(outcome, AccessRefusal):
        raise ContractRevertError(outcome.rule, outcome.rule_args)
    return outcome


def record_all(
    gw: Gateway, requests: Sequence[AccessRequest], idempotencies: Sequence[Idempotency] | None = None,
) -> list[AccessEntry | AccessRefusal | ConsentLedgerError]:
    """Record many accesses on chain (group-committed); return each one's entry, refusal, or why it is not on chain.

    With `idempotencies` (one key per request), requests a retry finds already recorded are not
    recorded again (see `record_access`).
    """
    if idempotencies is None:
        return list(gw.batcher.record(requests))
    with gw.access_keys.claim(idempotencies):
        outcomes: list[AccessEntry | AccessRefusal | ConsentLedgerError | None] = []
        for ask in idempotencies:
            try:
                outcomes.append(resumed(gw, ask))
            except ConsentLedgerError as exc:
                outcomes.append(exc)
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        fresh = gw.batcher.record([requests[i] for i in todo], [idempotencies[i] for i in todo])
        for i, outcome in zip(todo, fresh, strict=True):
            outcomes[i] = outcome  # type: ignore[assignment]
    return outcomes  # type: ignore[return-value]


def resumed(gw: Gateway, ask: Idempotency) -> AccessEntry | AccessRefusal | None:
    """Return what the chain decided for an access asked earlier with this key, or None if it must be recorded.

    Mined: its outcome, read from the receipt. Signed but not mined: the saved transaction is
    broadcast again and awaited. Never to be mined (the signer's nonce moved past it without it, or
    its batch reverted as a whole): the key is forgotten and None says to record the access anew.
    """
    found = gw.access_keys.find(ask.caller, ask.key)
    if found is None:
        return None
    if found.idempotency.request_hash != ask.request_hash:
        raise IdempotencyConflictError("this Idempotency-Key was already used for a different access request")
    receipt = gw.sender.receipt(found.tx_hash)
    if receipt is None and gw.sender.mined_nonce() > found.nonce:
        receipt = gw.sender.receipt(found.tx_hash)  # mined just now, or its nonce went to another transaction
        if receipt is None:
            gw.access_keys.forget(ask)
            return None
    if receipt is None:
        gw.sender.broadcast(found.raw_tx, resend=True)
        try:
            receipt = gw.sender.wait_receipt(found.tx_hash)
        except ContractRevertError:
            receipt = gw.sender.receipt(found.tx_hash)
    if receipt is None or receipt["status"] != 1:
        gw.access_keys.forget(ask)  # the batch reverted as a whole: none of it is on chain
        return None
    return batch_outcomes(gw.ledger, receipt, found.size)[found.index]


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

