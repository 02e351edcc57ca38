"""Requester side of an access: record it on chain, fetch the key from the custodian, verify, decrypt."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from consentledger.consent import Consent
from consentledger.crypto.commitment import verify_commitment
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap_any
from consentledger.crypto.vault import open_sealed, record_aad
from consentledger.errors import IntegrityError, PeerError
from consentledger.gateway.runtime import Gateway
from consentledger.policy import identified_access, visible_payload
from consentledger.signing import sign_request


def request_access(gw: Gateway, record_id: bytes, purpose: int, consents: Sequence[Consent]) -> dict[str, Any]:
    """Record the access on chain, then return the decrypted, commitment-checked payload.

    Identifying fields of the category are withheld unless every presented consent allows
    identified access.
    """
    entry = gw.ledger.request_access(gw.sender, record_id, purpose, consents)
    info = gw.ledger.record(record_id)
    custodian = gw.members.get(info.custodian)
    released = _fetch_key(gw, custodian.gateway_url, info.custodian, record_id, entry.seq, entry.block_number)
    try:
        wrapped = WrappedKey.from_json(released["wrapped_key"])
        ciphertext = base64.b64decode(released["ciphertext"], validate=True)
        salt = bytes.fromhex(str(released["salt"]).removeprefix("0x"))
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"malformed key release from the custodian: {exc}") from None
    dek = _unwrap(gw, wrapped, access_context(record_id, entry.seq, gw.org))
    canonical = open_sealed(dek, ciphertext, record_aad(record_id, info.category))
    verify_commitment(salt, canonical, info.commitment)
    category = gw.ledger.category(info.category)
    return {
        "record": "0x" + record_id.hex(),
        "seq": entry.seq,
        "tx": "0x" + entry.tx_hash.hex(),
        "block": entry.block_number,
        "category": info.category,
        "custodian": info.custodian,
        "identified": identified_access(consents),
        "payload": visible_payload(json.loads(canonical), category.identifying_fields, consents),
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


def _fetch_key(gw: Gateway, url: str, custodian: str, record_id: bytes, seq: int, block: int) -> dict[str, Any]:
    if not url:
        raise PeerError(f"custodian {custodian} has no gateway URL on chain")
    path = f"/v1/keys/0x{record_id.hex()}/{seq}"
    body = json.dumps({"block": block}, separators=(",", ":")).encode()
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
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:200]
        raise PeerError(f"custodian gateway refused the key (HTTP {response.status_code}): {detail}")
    result: dict[str, Any] = response.json()
    return result

