"""A data subject confirming records held about them: the terms to sign, the relay, their records here.

A custodian can register a record about any address, so an anonymous aggregate counts only sources
whose subjects attested them on chain (`attestRecord`). The gateway relays a subject's signature
after checking it exactly as the contract will (see `consentledger.attestation`), so a bad one is a
422 naming it rather than a paid revert.
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from consentledger.attestation import RecordAttestation, attestation_signer
from consentledger.errors import AuthorizationError, ContractRevertError, InvalidAttestationError, NotFoundError
from consentledger.gateway.runtime import Gateway
from consentledger.store import RecordState
from consentledger.types import MemberStatus, RecordInfo, RecordKind


def on_chain(gw: Gateway, record_id: bytes) -> RecordInfo:
    """Return the chain's view of `record_id`; NotFoundError while it is unknown there (or still queued)."""
    try:
        return gw.ledger.record(record_id)
    except ContractRevertError as exc:
        if exc.rule != "RecordRegistryUnknownRecord":
            raise
        raise NotFoundError(f"record 0x{record_id.hex()} is not registered on chain (yet)") from None


def attestation_view(info: RecordInfo) -> dict[str, Any]:
    """Return `{record, subject, attested, terms}`: the EIP-712 RecordAttestation terms its subject signs."""
    return {
        "record": "0x" + bytes(info.id).hex(),
        "subject": info.subject,
        "attested": info.attested,
        "terms": RecordAttestation.of(info).to_json(),
    }


def terms(gw: Gateway, record_id: bytes) -> dict[str, Any]:
    """Return what the subject of `record_id` signs to attest it (public on chain already), and whether they have."""
    return attestation_view(on_chain(gw, record_id))


def attest(gw: Gateway, caller: str, record_id: bytes, signature: bytes) -> dict[str, Any]:
    """Relay the subject's attestation of `record_id`; return its view with the transaction, once mined.

    The caller is the record's subject or an active member (the gateway pays the gas). The signature
    must recover, under the contract's rules, to the record's subject over its on-chain terms
    (InvalidAttestationError otherwise); an attested record answers as it is, sending nothing.
    """
    info = on_chain(gw, record_id)
    if to_checksum_address(caller) != to_checksum_address(info.subject):
        if gw.members.get(caller).status is not MemberStatus.ACTIVE:
            raise AuthorizationError("an attestation is relayed for the record's subject or by an active member")
    signer = attestation_signer(RecordAttestation.of(info), signature, gw.ledger.domain())
    if signer is None or to_checksum_address(signer) != to_checksum_address(info.subject):
        found = "no valid low-s signature" if signer is None else f"a signature by {signer}"
        raise InvalidAttestationError(
            f"record 0x{record_id.hex()}: {found} over RecordAttestation(record, custodian, category, commitment) "
            f"as on chain; its subject {info.subject} must sign those terms"
        )
    if info.attested:
        return {**attestation_view(info), "tx": None, "block": None}
    receipt = gw.ledger.attest_record(gw.sender, record_id, signature)
    return {
        **attestation_view(gw.ledger.record(record_id)),
        "tx": "0x" + bytes(receipt["transactionHash"]).hex(),
        "block": int(receipt["blockNumber"]),
    }


def my_records(gw: Gateway, subject: str) -> dict[str, Any]:
    """Return the live records collected about `subject` held here, each with its attestation terms.

    Derived records are left out: their subject is the custodian's word about an analysis, not attested.
    """
    held = [
        r for r in gw.store.records_by_subject(subject)
        if r.custodian == gw.org and r.state is RecordState.REGISTERED
    ]
    infos = [gw.ledger.record(bytes.fromhex(r.record_id[2:])) for r in held]
    return {
        "subject": to_checksum_address(subject),
        "records": [attestation_view(i) for i in infos if i.kind is RecordKind.PLAIN],
    }
