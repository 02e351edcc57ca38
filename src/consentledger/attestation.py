"""EIP-712 record attestations: a data subject confirms, with their own key, a record held about them.

A custodian can register a record about any address it likes, so an anonymous aggregate counts only
sources whose subjects signed `RecordAttestation(record, custodian, category, commitment)` over the
record's on-chain terms. The check here is the contract's (OpenZeppelin `ECDSA.tryRecover`): a
65-byte signature, v 27 or 28, s in the lower half of the curve order, recovering to the subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

from consentledger.consent import DOMAIN_FIELDS, Eip712Domain, recover_as_contract, typed_digest
from consentledger.types import RecordInfo

ATTESTATION_FIELDS: list[dict[str, str]] = [
    {"name": "record", "type": "bytes32"},
    {"name": "custodian", "type": "address"},
    {"name": "category", "type": "uint16"},
    {"name": "commitment", "type": "bytes32"},
]


@dataclass(frozen=True)
class RecordAttestation:
    """The terms a subject signs to confirm a record: which record, who holds it, of what, committing to what."""

    record: bytes
    custodian: str
    category: int
    commitment: bytes

    @classmethod
    def of(cls, info: RecordInfo) -> RecordAttestation:
        """Return the terms of the record the chain describes as `info`."""
        return cls(bytes(info.id), str(info.custodian), info.category, info.commitment)

    def message(self) -> dict[str, Any]:
        """Return the EIP-712 message (checksummed custodian)."""
        return {
            "record": self.record,
            "custodian": to_checksum_address(self.custodian),
            "category": self.category,
            "commitment": self.commitment,
        }

    def to_json(self) -> dict[str, Any]:
        """Return the terms as JSON-ready data (bytes as 0x hex)."""
        return {
            "record": "0x" + self.record.hex(),
            "custodian": to_checksum_address(self.custodian),
            "category": self.category,
            "commitment": "0x" + self.commitment.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordAttestation:
        """Inverse of `to_json`; ValueError if a field is malformed."""
        record = bytes.fromhex(str(data["record"]).removeprefix("0x"))
        commitment = bytes.fromhex(str(data["commitment"]).removeprefix("0x"))
        if len(record) != 32 or len(commitment) != 32:
            raise ValueError("record and commitment are 32 bytes each")
        return cls(record, to_checksum_address(str(data["custodian"])), int(data["category"]), commitment)


def attestation_typed_data(terms: RecordAttestation, domain: Eip712Domain) -> dict[str, Any]:
    """Return the full EIP-712 typed data a wallet signs for `terms`."""
    return {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "RecordAttestation": ATTESTATION_FIELDS},
        "primaryType": "RecordAttestation",
        "domain": domain.as_dict(),
        "message": terms.message(),
    }


def sign_attestation(terms: RecordAttestation, private_key: bytes | str, domain: Eip712Domain) -> bytes:
    """Return the subject's 65-byte signature over `terms`."""
    signed = Account.sign_typed_data(
        private_key, domain.as_dict(), {"RecordAttestation": ATTESTATION_FIELDS}, terms.message()
    )
    return bytes(signed.signature)


def attestation_signer(terms: RecordAttestation, signature: bytes, domain: Eip712Domain) -> str | None:
    """Return who signed `terms`, or None where the contract would find no valid signature.

    The contract's own rules (`consent.recover_as_contract`): 65 bytes, v 27 or 28, low s, a real signer.
    """
    digest = typed_digest(domain, {"RecordAttestation": ATTESTATION_FIELDS}, terms.message())
    return recover_as_contract(digest, signature).signer


