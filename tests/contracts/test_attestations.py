"""Record attestations: a subject confirms, with their own key, a record a custodian registered about them."""

from __future__ import annotations

import pytest
from eth_account import Account

from consentledger.attestation import RecordAttestation, attestation_signer, sign_attestation
from consentledger.errors import ContractRevertError
from consentledger.types import TombstoneReason

from .world import LAB_RESULT, Net, hex32, record_id

HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def high_s(signature: bytes) -> bytes:
    """Return the other valid ECDSA signature of the same digest: s' = n - s, v flipped (malleated)."""
    s = int.from_bytes(signature[32:64], "big")
    assert s <= HALF_ORDER
    return signature[:32] + (ORDER - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def test_a_subject_attests_their_record_through_any_relayer(net: Net) -> None:
    """Alice signs her lab result's terms; the police relay it; the record is attested and the event names her."""
    lab = net.records.lab
    block = net.w3.eth.block_number + 1
    assert not net.ledger.record(lab).attested

    net.ledger.attest_record(net.police, lab, net.attestation(lab))

    assert net.ledger.record(lab).attested
    [attested] = net.events_since(net.ledger.access.events.RecordAttested(), block)
    assert attested == {"record": lab, "subject": net.cast.alice.address}


def test_an_attestation_by_another_key_is_refused(net: Net) -> None:
    """Bob cannot attest Alice's result, nor can the custodian that registered it."""
    for signer in (net.cast.bob, net.cast.health):
        with pytest.raises(ContractRevertError) as e:
            net.ledger.attest_record(net.admin2, net.records.lab, net.attestation(net.records.lab, signer))
        assert (e.value.rule, e.value.rule_args) == ("RecordRegistryInvalidAttestation", (hex32(net.records.lab),))
    assert not net.ledger.record(net.records.lab).attested


def test_a_high_s_attestation_is_refused(net: Net) -> None:
    """The malleated twin of Alice's valid signature is refused, by the chain and by the gateway's check alike."""
    signature = net.attestation(net.records.lab)
    malleated = high_s(signature)
    terms, domain = RecordAttestation.of(net.ledger.record(net.records.lab)), net.ledger.domain()
    assert attestation_signer(terms, signature, domain) == net.cast.alice.address
    assert attestation_signer(terms, malleated, domain) is None

    with pytest.raises(ContractRevertError) as e:
        net.ledger.attest_record(net.admin2, net.records.lab, malleated)
    assert e.value.rule == "RecordRegistryInvalidAttestation"


def test_an_attestation_of_other_terms_is_refused(net: Net) -> None:
    """Alice's signature over another commitment does not attest the one on chain."""
    info = net.ledger.record(net.records.lab)
    other = RecordAttestation(bytes(info.id), info.custodian, info.category, b"\x01" * 32)
    signature = sign_attestation(other, net.cast.alice.key, net.ledger.domain())
    assert attestation_signer(RecordAttestation.of(info), signature, net.ledger.domain()) != net.cast.alice.address

    with pytest.raises(ContractRevertError) as e:
        net.ledger.attest_record(net.admin2, net.records.lab, signature)
    assert e.value.rule == "RecordRegistryInvalidAttestation"


def test_attesting_twice_is_refused_clearly(net: Net) -> None:
    """A second attestation of the same record names the rule: already attested."""
    net.attest(net.records.lab)

    with pytest.raises(ContractRevertError) as e:
        net.attest(net.records.lab)
    assert (e.value.rule, e.value.rule_args) == ("RecordRegistryAlreadyAttested", (hex32(net.records.lab),))


def test_a_tombstoned_record_cannot_be_attested(net: Net) -> None:
    """Once erased, Alice's result cannot be attested (and so cannot join an aggregate's K)."""
    signature = net.attestation(net.records.lab)
    net.ledger.tombstone(net.health, net.records.lab, TombstoneReason.ERASURE)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.attest_record(net.admin2, net.records.lab, signature)
    assert (e.value.rule, e.value.rule_args) == ("RecordRegistryRecordTombstoned", (hex32(net.records.lab),
                                                                                   int(TombstoneReason.ERASURE)))


def test_only_a_collected_record_is_attested(net: Net) -> None:
    """A derived record's subject is the custodian's word about an analysis: it is not attested."""
    derived = net.register("analysis", net.alice, LAB_RESULT, [net.records.lab])

    with pytest.raises(ContractRevertError) as e:
        net.ledger.attest_record(net.admin2, derived, net.attestation(derived, net.alice))
    assert (e.value.rule, e.value.rule_args[1]) == (
        "RecordRegistryInvalidRecord", "only a collected record is attested")


def test_an_unknown_record_cannot_be_attested(net: Net) -> None:
    """Attesting an id nobody registered names the unknown record."""
    missing = record_id("never registered")
    with pytest.raises(ContractRevertError) as e:
        net.ledger.attest_record(net.admin2, missing, b"\x00" * 65)
    assert (e.value.rule, e.value.rule_args) == ("RecordRegistryUnknownRecord", (hex32(missing),))


def test_a_malformed_signature_is_refused(net: Net) -> None:
    """Sixty-four bytes are no signature the ledger accepts."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.attest_record(net.admin2, net.records.lab, net.attestation(net.records.lab)[:64])
    assert e.value.rule == "RecordRegistryInvalidAttestation"
    assert attestation_signer(RecordAttestation.of(net.ledger.record(net.records.lab)),
                              Account.create().key[:32] * 2, net.ledger.domain()) is None
