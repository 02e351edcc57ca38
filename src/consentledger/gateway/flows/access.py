"""Requester side of an access: record it on chain, fetch the key from the custodian, verify, decrypt.

One access (`request_access`) fetches its key with one signed call; accesses already recorded on
chain (`disclose_recorded`) fetch theirs in batches, one signed call per custodian and batch. Both
unwrap, decrypt, verify against the on-chain commitment and render the answer the same way.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from consentledger.chain.batch import AccessRequest
from consentledger.consent import Consent
from consentledger.crypto.disclosure import Disclosure, Withholding
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap_any
from consentledger.crypto.vault import open_sealed
from consentledger.errors import (
    AccessNotConfirmedError,
    ConsentLedgerError,
    DisclosurePendingError,
    IntegrityError,
    PeerError,
    RecordDestroyedError,
    ReleaseRefusedError,
)
from consentledger.gateway.disclosures import DisclosureBatcher
from consentledger.gateway.flows.confirmation_wait import until_confirmed
from consentledger.gateway.flows.key_request import KeyRequest
from consentledger.gateway.flows.overrides import record_override
from consentledger.gateway.flows.receipts import receipt_of
from consentledger.gateway.flows.recording import record_access
from consentledger.gateway.runtime import Gateway
from consentledger.policy import visible_payload
from consentledger.store.access_keys import Idempotency
from consentledger.types import (
    NO_ACTOR,
    AccessEntry,
    ActorId,
    LegalBasis,
    Member,
    MemberStatus,
    RecordInfo,
    Sensitivity,
)

BATCH_PATH = "/v1/keys/batch"
_STARTING = threading.Lock()


@dataclass(frozen=True)
class RecordedAccess:
    """An access already on chain whose disclosure is still to fetch: its entry, the consents it presented, in order,
    and what becomes of identifying fields it may not see."""

    entry: AccessEntry
    consents: tuple[Consent, ...] = ()
    withhold: Withholding = Withholding.REMOVE

    def key_request(self) -> KeyRequest:
        """Return what the custodian is asked to release for this access."""
        entry = self.entry
        return KeyRequest(bytes(entry.record), entry.seq, entry.block_number, self.withhold, self.consents)


def request_access(
    gw: Gateway, record_id: bytes, purpose: int, consents: Sequence[Consent],
    withhold: Withholding = Withholding.REMOVE, *, actor: ActorId = NO_ACTOR, idempotency: Idempotency | None = None,
    mandate: int | None = None, justification: str | None = None,
) -> dict[str, Any]:
    """Record the access on chain for `actor`, then return the custodian's disclosure, checked against the commitment.

    The access's legal basis is `consents` (none for an OPEN category), statutory `mandate` (its
    id), or an emergency override justified by `justification` (kept here, its salted hash on
    chain: `flows.overrides`); one of them. The answer carries the access's offline receipt
    (`flows.receipts`).

    Identifying fields are removed or pseudonymised (`withhold`) by the custodian unless the chain
    recorded the access as identified (every presented consent allows it); this gateway drops any
    it would still receive. Nothing of the record or its one-time key is kept here. The access is
    group-committed with others asked now, and with `idempotency` recorded once however often retried
    (`flows.recording`); its key is fetched with the others' asked now, one signed call per custodian
    (`gateway.disclosures`).
    """
    if justification is not None:
        entry = record_override(gw, record_id, purpose, justification, actor=actor, idempotency=idempotency)
    else:
        entry = record_access(gw, AccessRequest(record_id, purpose, tuple(consents), actor, mandate=mandate),
                              idempotency)
    answer = disclosures(gw).submit(RecordedAccess(entry, tuple(consents), withhold)).result()
    return {**answer, "receipt": receipt_of(gw, entry)}


def disclosures(gw: Gateway) -> DisclosureBatcher:
    """Return the gateway's group fetch of disclosures, started on first use."""
    with _STARTING:
        if gw.disclosures is None:
            gw.disclosures = DisclosureBatcher(
                partial(disclose_recorded, gw), max_items=min(gw.settings.max_batch_items, 256),
                max_in_flight=gw.settings.max_pending_per_signer,
            )
        return gw.disclosures


def disclose_recorded(gw: Gateway, accesses: Sequence[RecordedAccess]) -> list[dict[str, Any] | ConsentLedgerError]:
    """Return, per access in order, its disclosure as `request_access` answers it, or the error it would raise.

    The accesses are grouped by their records' custodians, and each group's keys are fetched in
    batches of at most `max_batch_items`, one signed call each (`fetch_keys`). A custodian that
    cannot be reached, or refuses a whole batch, fails that batch's items only.
    """
    answers: list[dict[str, Any] | ConsentLedgerError | None] = [None] * len(accesses)
    groups: dict[tuple[str, str], list[tuple[int, RecordInfo]]] = {}
    for at, access in enumerate(accesses):
        try:
            info = gw.chain.record(bytes(access.entry.record))
            custodian = _custodian_now(gw, info.custodian)
        except ConsentLedgerError as exc:
            answers[at] = exc
            continue
        groups.setdefault((custodian.address, custodian.gateway_url), []).append((at, info))
    size = gw.settings.max_batch_items
    for (custodian_address, url), members in groups.items():
        for start in range(0, len(members), size):
            batch = members[start:start + size]
            try:
                wanted = [accesses[at].key_request() for at, _ in batch]
                # The custodian may answer not_confirmed until the accesses are release_confirmations deep.
                released = until_confirmed(gw, partial(fetch_keys, gw, url, custodian_address), wanted)
            except ConsentLedgerError as exc:
                released = [exc] * len(batch)
            for (at, info), answer in zip(batch, released, strict=True):
                answers[at] = answer if isinstance(answer, ConsentLedgerError) else _opened_or_error(
                    gw, accesses[at].entry, info, answer)
            if None in answers:
                gw.fault("access-part-disclosed")  # mid-batch: this part's keys fetched and opened, others not
    # Each access is on chain whatever its custodian did: a PeerError names it, so the caller can resume it.
    done: list[dict[str, Any] | ConsentLedgerError] = []
    for access, outcome in zip(accesses, answers, strict=True):
        got = PeerError("no answer") if outcome is None else outcome
        done.append(_pending(access.entry, got) if isinstance(got, PeerError) else got)
    return done


def _pending(entry: AccessEntry, error: PeerError) -> DisclosurePendingError:
    """Return the error of an access on chain whose custodian did not answer: it names the access and how to resume."""
    record = "0x" + bytes(entry.record).hex()
    return DisclosurePendingError(
        f"access {entry.seq} to record {record} is on chain (block {entry.block_number}) but its disclosure did not "
        f"arrive: {error}. A retry with the same Idempotency-Key, or POST /v1/access/resume "
        "{record, seq, consents}, asks the custodian again (within its release window) without recording another "
        "access",
        record=record, seq=entry.seq, block=entry.block_number, tx="0x" + entry.tx_hash.hex())


def fetch_keys(
    gw: Gateway, url: str, custodian: str, requests: Sequence[KeyRequest]
) -> list[dict[str, Any] | ConsentLedgerError]:
    """Return the custodian's release of each request, in order, or the error its refusal stands for.

    One signed POST /v1/keys/batch. Raises PeerError when the custodian cannot be reached or
    refuses the whole call (not a member, too many items, chain down), or answers out of shape.
    """
    if not url:
        raise PeerError(f"custodian {custodian} has no gateway URL on chain")
    response = _signed_post(gw, url, custodian, BATCH_PATH, {"items": [r.to_json() for r in requests]})
    if response.status_code != 200:
        raise _refusal(response.status_code, _json_or_text(response), None, None)
    try:
        items = response.json()["items"]
        if not isinstance(items, list) or len(items) != len(requests):
            raise ValueError(f"{len(items) if isinstance(items, list) else 'no'} answers to {len(requests)} items")
    except (ValueError, KeyError, TypeError) as exc:
        raise PeerError(f"malformed batch answer from the custodian: {exc}") from None
    answers: list[dict[str, Any] | ConsentLedgerError] = []
    for request, item in zip(requests, items, strict=True):
        if not isinstance(item, dict):
            answers.append(PeerError(f"malformed answer from the custodian for access {request.seq} to record "
                                     f"{request.record}"))
        elif "error" in item:
            status = item.get("status")
            answers.append(_refusal(status if isinstance(status, int) else 502, item, request.record, request.seq))
        else:
            answers.append(item)
    return answers


def _opened_or_error(
    gw: Gateway, entry: AccessEntry, info: RecordInfo, released: dict[str, Any]
) -> dict[str, Any] | ConsentLedgerError:
    try:
        return _opened(gw, entry, info, released)
    except ConsentLedgerError as exc:
        return exc


def _opened(gw: Gateway, entry: AccessEntry, info: RecordInfo, released: dict[str, Any]) -> dict[str, Any]:
    """Return the answer to an access from the custodian's release: unwrapped, decrypted, checked, rendered.

    IntegrityError if the release is malformed, its key does not unwrap for this org, or the
    disclosure does not match the record's commitment on chain.
    """
    record_id = bytes(entry.record)
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
    return {**_answer(entry, info, category.sensitivity), **_basis(gw, entry),
            # Pseudonyms stand only for withheld fields (Disclosure.from_json checks), never for their values.
            "payload": {**visible_payload(shown.fields, category.identifying_fields, entry.identified),
                        **shown.pseudonyms}}


def _answer(entry: AccessEntry, info: RecordInfo, sensitivity: Sensitivity) -> dict[str, Any]:
    """Return what an access's answer says of its entry on chain and the record."""
    record_id = bytes(entry.record)
    return {
        "record": "0x" + record_id.hex(),
        "seq": entry.seq,
        "tx": "0x" + entry.tx_hash.hex(),
        "block": entry.block_number,
        "category": info.category,
        "custodian": info.custodian,
        "identified": entry.identified,
        "actor": "0x" + entry.actor.hex(),
        "use": "immediate" if sensitivity is Sensitivity.PROTECTED else "standard",
    }


def _basis(gw: Gateway, entry: AccessEntry) -> dict[str, Any]:
    """Return the access's legal basis as the answer names it: consent, the mandate's id, or the override's review."""
    basis: dict[str, Any] = {"basis": entry.basis.name.lower()}
    if entry.basis is LegalBasis.MANDATE:
        basis["mandate"] = entry.mandate
    elif entry.basis is LegalBasis.OVERRIDE:
        state = gw.ledger.override_state(bytes(entry.record), entry.seq)
        basis["override"] = {"justification_hash": "0x" + entry.consent.hex(), "review_due": state.review_due}
    return basis


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


def _signed_post(gw: Gateway, url: str, custodian: str, path: str, request: dict[str, Any]) -> httpx.Response:
    """Send `request` to the custodian's gateway at `path`, signed by this org for that custodian."""
    body = json.dumps(request, separators=(",", ":")).encode()
    headers = gw.signed_headers(audience=custodian, method="POST", path=path, body=body)
    try:
        return gw.peers.post(url.rstrip("/") + path, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise PeerError(f"cannot reach the custodian gateway at {url}: {exc}") from None


def _json_or_text(response: httpx.Response) -> dict[str, Any]:
    """Return the refusal's JSON body, or its text as the detail when it is not JSON."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return answer if isinstance(answer, dict) else {"detail": response.text[:200]}


def _refusal(status: int, answer: dict[str, Any], record: str | None, seq: int | None) -> ConsentLedgerError:
    """Return our error for the custodian's refusal (HTTP `status`, body `answer`) of access (record, seq)."""
    detail, code = answer.get("detail", ""), answer.get("error")
    if code == IntegrityError.code:
        return IntegrityError(f"the custodian found the record damaged: {detail}")
    if code == ReleaseRefusedError.code:
        # The access is on chain, but its disclosure is not released (any more): say why, as the custodian did.
        return ReleaseRefusedError(str(answer.get("reason", "")), f"the custodian refused the release: {detail}",
                                   record=record, seq=seq)
    if code == AccessNotConfirmedError.code:  # still too shallow after `confirmation_wait`: say how deep
        number = {key: int(answer.get(key, 0)) for key in ("block", "depth", "needed")}
        return AccessNotConfirmedError(str(answer.get("record", record)), int(answer.get("seq", seq or 0)), **number)
    if code == RecordDestroyedError.code:
        # Shredded at the custodian while its tombstone was still on its way to the chain.
        return RecordDestroyedError(str(answer.get("record", "")), str(answer.get("reason", "")), str(detail),
                                    answer.get("tombstone"))
    return PeerError(f"custodian gateway refused the key (HTTP {status}): {detail}")
