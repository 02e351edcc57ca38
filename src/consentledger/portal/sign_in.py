"""The portal's sign-in: EIP-712 `PortalSignIn`, signed by the data subject's own wallet (`eth_signTypedData_v4`).

The signed message is also the subject's proof, for the length of the session, that the gateway it
names may act for them at the other member gateways (`gateway.delegation`), so it says so in its
`statement`, which wallets show. It is signed in the gateway request domain of `signing.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_account.messages import encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address

from consentledger.consent import SignatureCheck, recover_as_contract
from consentledger.errors import AuthenticationError
from consentledger.signing import gateway_domain

SIGN_IN_FIELDS: list[dict[str, str]] = [
    {"name": "subject", "type": "address"},
    {"name": "gateway", "type": "address"},
    {"name": "statement", "type": "string"},
    {"name": "issuedAt", "type": "uint64"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "challenge", "type": "bytes32"},
]
DOMAIN_FIELDS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]
MAX_STATEMENT = 1000
_DECIMAL = re.compile(r"^[0-9]{1,20}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class SignIn:
    """What the subject signs to sign in: who, at which gateway, what they allow, from when until when."""

    subject: str
    gateway: str
    statement: str
    issued_at: int
    expires_at: int
    challenge: bytes

    def message(self) -> dict[str, Any]:
        """Return the EIP-712 message as JSON a wallet takes (uint64 as decimal strings, challenge as 0x hex)."""
        return {
            "subject": to_checksum_address(self.subject),
            "gateway": to_checksum_address(self.gateway),
            "statement": self.statement,
            "issuedAt": str(self.issued_at),
            "expiresAt": str(self.expires_at),
            "challenge": "0x" + self.challenge.hex(),
        }

    @classmethod
    def from_message(cls, data: Any) -> SignIn:
        """Inverse of `message`; AuthenticationError for anything that is not such a message."""
        if not isinstance(data, dict) or set(data) != {f["name"] for f in SIGN_IN_FIELDS}:
            raise AuthenticationError("the sign-in message is not a PortalSignIn message")
        subject, gateway, statement = data["subject"], data["gateway"], data["statement"]
        issued, expires, challenge = data["issuedAt"], data["expiresAt"], data["challenge"]
        if not (isinstance(subject, str) and is_address(subject) and isinstance(gateway, str) and is_address(gateway)
                and isinstance(statement, str) and len(statement) <= MAX_STATEMENT
                and isinstance(issued, str) and _DECIMAL.match(issued) and isinstance(expires, str)
                and _DECIMAL.match(expires) and isinstance(challenge, str) and _BYTES32.match(challenge)):
            raise AuthenticationError("the sign-in message is malformed")
        return cls(to_checksum_address(subject), to_checksum_address(gateway), statement, int(issued), int(expires),
                   bytes.fromhex(challenge[2:]))


def sign_in_typed_data(sign_in: SignIn, chain_id: int) -> dict[str, Any]:
    """Return the full typed data a wallet signs to sign in (valid JSON, 64-bit values as strings)."""
    return {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "PortalSignIn": SIGN_IN_FIELDS},
        "primaryType": "PortalSignIn",
        "domain": gateway_domain(chain_id),
        "message": sign_in.message(),
    }


def sign_in_signer(sign_in: SignIn, signature: bytes, chain_id: int) -> SignatureCheck:
    """Return who signed `sign_in`, by the same rules as the contracts' signatures (65 bytes, low s, v 27/28)."""
    signable = encode_typed_data(full_message=sign_in_typed_data(sign_in, chain_id))
    return recover_as_contract(keccak(b"\x19" + signable.version + signable.header + signable.body), signature)


def sign_in_statement(org_name: str, expires_at: int) -> str:
    """Return the sentence the wallet shows: what signing in lets this gateway do, until when, and what it costs."""
    until = datetime.fromtimestamp(expires_at, UTC).strftime("%-d %B %Y at %H:%M UTC")
    return (f"Sign in to the consent portal of {org_name}. Until {until} this gateway may list and answer your "
            "consent requests and ask for the erasure of your records at the other member gateways on your "
            "behalf. Signing costs nothing and moves no funds.")
