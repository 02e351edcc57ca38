"""Signed gateway requests: EIP-712 `GatewayRequest` binding method, path, body, time and a nonce.

Both sides use this module: the client signs, the gateway verifies. The signature names the gateway
it is meant for (its organisation's address), so a request cannot be replayed at another gateway.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, to_checksum_address

from consentledger.errors import AuthenticationError

HEADER_SIGNER = "X-CL-Signer"
HEADER_TIMESTAMP = "X-CL-Timestamp"
HEADER_NONCE = "X-CL-Nonce"
HEADER_SIGNATURE = "X-CL-Signature"
HEADER_AUDIENCE = "X-CL-Audience"
SIGNED_HEADERS = (HEADER_SIGNER, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_AUDIENCE)
CLOCK_WINDOW_SECONDS = 60

DOMAIN_NAME = "ConsentLedger Gateway"
DOMAIN_VERSION = "1"
REQUEST_FIELDS = [
    {"name": "audience", "type": "address"},
    {"name": "method", "type": "string"},
    {"name": "path", "type": "string"},
    {"name": "bodyHash", "type": "bytes32"},
    {"name": "timestamp", "type": "uint64"},
    {"name": "nonce", "type": "bytes32"},
]


@dataclass(frozen=True)
class RequestSignature:
    """What a signed request carries in its headers."""

    signer: str
    audience: str
    timestamp: int
    nonce: bytes
    signature: bytes

    def headers(self) -> dict[str, str]:
        """Return the HTTP headers carrying this signature."""
        return {
            HEADER_SIGNER: self.signer,
            HEADER_AUDIENCE: self.audience,
            HEADER_TIMESTAMP: str(self.timestamp),
            HEADER_NONCE: "0x" + self.nonce.hex(),
            HEADER_SIGNATURE: "0x" + self.signature.hex(),
        }

    @classmethod
    def from_headers(cls, headers: Any) -> RequestSignature:
        """Parse the signature headers; raise AuthenticationError naming what is missing or malformed."""
        missing = [h for h in SIGNED_HEADERS if not headers.get(h)]
        if missing:
            raise AuthenticationError(f"unsigned request: missing {', '.join(missing)}")
        signer, audience = headers[HEADER_SIGNER], headers[HEADER_AUDIENCE]
        if not is_address(signer) or not is_address(audience):
            raise AuthenticationError(f"{HEADER_SIGNER} and {HEADER_AUDIENCE} must be addresses")
        try:
            timestamp = int(headers[HEADER_TIMESTAMP])
            nonce = bytes.fromhex(headers[HEADER_NONCE].removeprefix("0x"))
            signature = bytes.fromhex(headers[HEADER_SIGNATURE].removeprefix("0x"))
        except ValueError:
            raise AuthenticationError("malformed timestamp, nonce or signature header") from None
        if len(nonce) != 32 or len(signature) != 65:
            raise AuthenticationError("the nonce must be 32 bytes and the signature 65 bytes")
        return cls(to_checksum_address(signer), to_checksum_address(audience), timestamp, nonce, signature)


def body_hash(body: bytes) -> bytes:
    """Return the SHA-256 of a request body."""
    return hashlib.sha256(body).digest()


def gateway_domain(chain_id: int) -> dict[str, Any]:
    """Return the EIP-712 domain of what gateways verify: signed requests and portal sign-ins (no contract)."""
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id}


def _message(audience: str, method: str, path: str, body: bytes, timestamp: int, nonce: bytes) -> dict[str, Any]:
    return {
        "audience": to_checksum_address(audience),
        "method": method.upper(),
        "path": path,
        "bodyHash": body_hash(body),
        "timestamp": timestamp,
        "nonce": nonce,
    }


def sign_request(
    private_key: bytes | str, *, chain_id: int, audience: str, method: str, path: str, body: bytes, now: int
) -> RequestSignature:
    """Return the signature of one request by `private_key` for the gateway of org `audience`."""
    nonce = secrets.token_bytes(32)
    account = Account.from_key(private_key)
    signed = Account.sign_typed_data(
        private_key, gateway_domain(chain_id), {"GatewayRequest": REQUEST_FIELDS},
        _message(audience, method, path, body, now, nonce),
    )
    return RequestSignature(account.address, to_checksum_address(audience), now, nonce, bytes(signed.signature))


def verify_request(
    signature: RequestSignature, *, chain_id: int, audience: str, method: str, path: str, body: bytes, now: int
) -> str:
    """Return the signer after checking audience, clock window and signature; raise AuthenticationError.

    The caller still has to check the nonce was never seen and the signer's membership.
    """
    if signature.audience != to_checksum_address(audience):
        raise AuthenticationError("the request was signed for another gateway")
    if abs(now - signature.timestamp) > CLOCK_WINDOW_SECONDS:
        raise AuthenticationError(f"request timestamp is outside the ±{CLOCK_WINDOW_SECONDS} s window")
    signable = encode_typed_data(
        gateway_domain(chain_id), {"GatewayRequest": REQUEST_FIELDS},
        _message(audience, method, path, body, signature.timestamp, signature.nonce),
    )
    try:
        recovered = Account.recover_message(signable, signature=signature.signature)
    except Exception:
        raise AuthenticationError("bad request signature") from None
    if recovered != signature.signer:
        raise AuthenticationError("the request signature does not match its signer")
    return recovered
