"""EIP-712 consents: the terms a data subject signs, their id, and the signature."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
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
        """Return a JSON-friendly dict (record as 0x hex)."""
        data = asdict(self)
        data["record"] = "0x" + self.record.hex()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Consent:
        """Inverse of `to_json`."""
        values = dict(data)
        values["record"] = bytes.fromhex(str(values.get("record", "0x" + "00" * 32))[2:])
        return cls(**values)


def consent_typed_data(consent: Consent, domain: Eip712Domain) -> dict[str, Any]:
    """Return the full EIP-712 typed data a wallet signs for `consent`."""
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, "Consent": CONSENT_FIELDS},
        "primaryType": "Consent",
        "domain": domain.as_dict(),
        "message": consent.message(),
    }


def consent_id(consent: Consent, domain: Eip712Domain) -> bytes:
    """Return the consent's id: its EIP-712 digest, as the contract computes it."""
    return _digest(domain, {"Consent": CONSENT_FIELDS}, consent.message())


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


def revocation_signer(consent_id_: bytes, signature: bytes, domain: Eip712Domain) -> str | None:
    """Return who signed EIP-712 `Revocation(bytes32 consent)` for `consent_id_`, or None if it is no signature."""
    signable = encode_typed_data(domain.as_dict(), {"Revocation": REVOCATION_FIELDS}, {"consent": consent_id_})
    try:
        return str(Account.recover_message(signable, signature=signature))
    except Exception:  # eth_keys raises several types for malformed signatures
        return None


def _digest(domain: Eip712Domain, types: dict[str, Any], message: dict[str, Any]) -> bytes:
    signable = encode_typed_data(domain.as_dict(), types, message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
