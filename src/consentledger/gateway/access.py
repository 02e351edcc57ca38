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
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap
from consentledger.crypto.vault import open_sealed, record_aad
from consentledger.errors import IntegrityError, PeerError
from consentledger.gateway.runtime import Gateway
from consentledger.policy import visible_payload
from consentledger.signing import sign_request


def request_access(gw: Gateway, record_id: bytes, purpose: int, consents: Sequence[Consent]) -> dict[str, Any]:
    """Record the access on chain, then return the decrypted, commitment-checked payload.

    Identifying fields of the category are withheld unless the chain recorded the access as
    identified (every presented consent allows it).
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
    dek = unwrap(gw.x25519, wrapped, access_context(record_id, entry.seq, gw.org))
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
        "identified": entry.identified,
        "payload": visible_payload(json.loads(canonical), category.identifying_fields, entry.identified),
    }


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

