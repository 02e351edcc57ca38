"""EIP-712 consents: the terms a data subject signs, their id, and the signature."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.datatypes import Signature as KeySignature
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import keccak, to_checksum_address

CONSENT_FIELDS: list[dict[str, str]] = [
    {"name": "subject", "type": "address"},
    {"name": "grantee", "type": "address"},
    {"name": "category", "type": "uint16"},
    {"name": "record", "type": "bytes32"},
    {"name": "purpose", "type": "uint8"},
    {"name": "validUntil", "type": "uint40"},
    {"name": "maxUses", "type": "uint32"},
    {"name": "identified", "type": "bool"},
    {"name": "nonce", "type": "uint64"},
]
REVOCATION_FIELDS: list[dict[str, str]] = [{"name": "consent", "type": "bytes32"}]
NO_RECORD = b"\0" * 32


@dataclass(frozen=True)
class Eip712Domain:
    """The ledger's EIP-712 domain, as `eip712Domain()` (EIP-5267) reports it."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        """Return the domain in eth_account's `domain_data` form."""
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True)
class Consent:
    """A subject's grant: who may use which data, for what, until when, how often."""

    subject: str
    grantee: str
    category: int
    purpose: int
    valid_until: int
    max_uses: int = 1
    record: bytes = NO_RECORD
    identified: bool = False
    nonce: int = 0

    @classmethod
    def new(cls, **terms: Any) -> Consent:
        """Return a consent with a fresh random 64-bit nonce (so equal terms get distinct ids)."""
        terms.setdefault("nonce", secrets.randbits(64))
        return cls(**terms)

    def message(self) -> dict[str, Any]:
        """Return the EIP-712 message (camelCase names, checksummed addresses)."""
        return {
            "subject": to_checksum_address(self.subject),
            "grantee": to_checksum_address(self.grantee),
            "category": self.category,
            "record": self.record,
            "purpose": self.purpose,
            "validUntil": self.valid_until,
            "maxUses": self.max_uses,
            "identified": self.identified,
            "nonce": self.nonce,
        }

    def as_tuple(self) -> tuple[Any, ...]:
        """Return the terms in struct order, as the contract's `Consent` argument."""
        return tuple(self.message().values())

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (record as 0x hex, the uint64 nonce as a decimal string).

        JavaScript reads a JSON number above 2^53 rounded, so a page or wallet would sign another nonce.
        """
        data = asdict(self)
        data["record"] = "0x" + self.record.hex()
        data["nonce"] = str(self.nonce)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Consent:
        """Inverse of `to_json`; the nonce may be a decimal string (as JSON for JavaScript carries a uint64)."""
        values = dict(data)
        values["record"] = bytes.fromhex(str(values.get("record", "0x" + "00" * 32))[2:])
        values["nonce"] = int(values.get("nonce", 0))
        return cls(**values)


def consent_typed_data(consent: Consent, domain: Eip712Domain) -> dict[str, Any]:
    """Return the full EIP-712 typed data a wallet signs for `consent` (`eth_signTypedData_v4`), as valid JSON.

    `record` is 0x hex; `validUntil`, `maxUses` and `nonce` are decimal strings (a uint64 does not
    survive a JavaScript number), the small `category`, `purpose` and `chainId` are numbers.
    """
    message = consent.message()
    message.update(record="0x" + consent.record.hex(), validUntil=str(consent.valid_until),
                   maxUses=str(consent.max_uses), nonce=str(consent.nonce))
    return _typed_data("Consent", CONSENT_FIELDS, domain, message)


def revocation_typed_data(consent_id_: bytes, domain: Eip712Domain) -> dict[str, Any]:
    """Return the full EIP-712 typed data of `Revocation(bytes32 consent)` a wallet signs, as valid JSON."""
    return _typed_data("Revocation", REVOCATION_FIELDS, domain, {"consent": "0x" + consent_id_.hex()})


def _typed_data(primary: str, fields: list[dict[str, str]], domain: Eip712Domain,
                message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": DOMAIN_FIELDS, primary: fields},
        "primaryType": primary,
        "domain": domain.as_dict(),
        "message": message,
    }


def consent_id(consent: Consent, domain: Eip712Domain) -> bytes:
    """Return the consent's id: its EIP-712 digest, as the contract computes it."""
    return typed_digest(domain, {"Consent": CONSENT_FIELDS}, consent.message())


def sign_consent(consent: Consent, private_key: bytes | str, domain: Eip712Domain) -> bytes:
    """Return the subject's 65-byte signature over `consent`."""
    signed = Account.sign_typed_data(private_key, domain.as_dict(), {"Consent": CONSENT_FIELDS}, consent.message())
    return bytes(signed.signature)


def sign_revocation(consent_id_: bytes, private_key: bytes | str, domain: Eip712Domain) -> bytes:
    """Return the subject's signature over EIP-712 `Revocation(bytes32 consent)`."""
    signed = Account.sign_typed_data(
        private_key, domain.as_dict(), {"Revocation": REVOCATION_FIELDS}, {"consent": consent_id_}
    )
    return bytes(signed.signature)


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of secp256k1; OpenZeppelin's ECDSA refuses any s above half of it (EIP-2, no malleable signatures)."""
HIGHEST_S = SECP256K1_N // 2


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on a signature, exactly as the contract (OpenZeppelin `ECDSA.tryRecover`) gives it.

    `signer` is the recovered address, or None with `problem` saying why the contract refuses it.
    """

    signer: str | None
    problem: str | None = None

    def refusal(self, expected: str) -> str | None:
        """Return why the contract refuses this signature as `expected`'s, or None if it accepts it."""
        if self.signer is None:
            return self.problem
        if self.signer.lower() != expected.lower():
            return f"it is signed by {self.signer}, not by {to_checksum_address(expected)}"
        return None


def recover_as_contract(digest: bytes, signature: bytes) -> SignatureCheck:
    """Return who signed the 32-byte `digest`, by the contract's rules: 65 bytes, s <= n/2, v 27 or 28, a real signer.

    eth_account accepts what the contract refuses (v of 0/1, high s), so a gateway that trusts it
    would queue transactions that revert; this follows OpenZeppelin ECDSA 5 and the ecrecover precompile.
    """
    if len(signature) != 65:
        return SignatureCheck(None, f"the signature is {len(signature)} bytes, not 65")
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if s > HIGHEST_S:
        return SignatureCheck(None, "its s is in the upper half of the curve order (a malleable signature)")
    if v not in (27, 28):
        return SignatureCheck(None, f"its v is {v}, not 27 or 28")
    if not (0 < r < SECP256K1_N and 0 < s):
        return SignatureCheck(None, "it recovers no signer (r or s out of range)")
    try:
        public = KeySignature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError, ValueError):
        return SignatureCheck(None, "it recovers no signer")
    return SignatureCheck(public.to_checksum_address())


def consent_signer(consent: Consent, signature: bytes, domain: Eip712Domain) -> SignatureCheck:
    """Return the verdict on `signature` over `consent`, as `grantConsent` gives it."""
    return recover_as_contract(consent_id(consent, domain), signature)


def revocation_signer(consent_id_: bytes, signature: bytes, domain: Eip712Domain) -> SignatureCheck:
    """Return the verdict on `signature` over EIP-712 `Revocation(bytes32 consent)`, as the contract gives it."""
    digest = typed_digest(domain, {"Revocation": REVOCATION_FIELDS}, {"consent": consent_id_})
    return recover_as_contract(digest, signature)


def typed_digest(domain: Eip712Domain, types: dict[str, Any], message: dict[str, Any]) -> bytes:
    """Return the EIP-712 digest of `message` of `types` in `domain` (what the contracts recover from)."""
    signable = encode_typed_data(domain.as_dict(), types, message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


DOMAIN_FIELDS = [  # EIP712Domain as the ledger declares it (EIP-5267)
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
