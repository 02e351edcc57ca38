"""ConsentRegistry: EIP-712 consents granted by relay, their ids, and revocation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from consentledger.consent import (
    Consent,
    Eip712Domain,
    consent_id,
    consent_typed_data,
    sign_revocation,
)
from consentledger.errors import ContractRevertError
from consentledger.types import ConsentStatus

from .world import CONTACT_TRACE, DAY, EPIDEMIC, LAB_RESULT, Net, hex32, rule_args

ZERO_ADDRESS = "0x" + "00" * 20


def contact_consent(net: Net, **terms: Any) -> Consent:
    """Return alice's consent letting transport use her contact traces for epidemic control."""
    return net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC, **terms)


# ---------------------------------------------------------------------- EIP-712 interoperability


def test_domain_is_read_with_eip5267(net: Net) -> None:
    """`eip712Domain()` names ConsentLedger v1 on this chain at the AccessLedger address."""
    domain = net.ledger.domain()
    assert domain == Eip712Domain(
        "ConsentLedger", "1", net.w3.eth.chain_id, net.ledger.access.address
    )
    fields, *_ = net.ledger.access.functions.eip712Domain().call()
    assert fields == b"\x0f"  # name, version, chainId, verifyingContract


def test_consent_typehash_matches_the_python_type(net: Net) -> None:
    """The contract hashes the same Consent type string the Python signer encodes."""
    encoded = (
        "Consent(address subject,address grantee,uint16 category,bytes32 record,uint8 purpose,"
        "uint40 validUntil,uint32 maxUses,bool identified,uint64 nonce)"
    )
    assert net.ledger.access.functions.CONSENT_TYPEHASH().call() == keccak(text=encoded)


def test_consent_id_view_equals_python_consent_id(net: Net) -> None:
    """`consentId(terms)` on chain equals `consent_id` computed off chain."""
    consent = contact_consent(net, max_uses=7, identified=True, record=net.records.contact)

    on_chain = net.ledger.access.functions.consentId(consent.as_tuple()).call()
    assert on_chain == consent_id(consent, net.ledger.domain())


def test_plain_eth_account_signature_is_accepted(net: Net) -> None:
    """A wallet signing `consent_typed_data` with eth_account produces a grantable signature."""
    consent = contact_consent(net)
    typed = consent_typed_data(consent, net.ledger.domain())
    signature = Account.sign_typed_data(net.cast.alice.key, full_message=typed).signature

    granted = net.grant(consent, signature=bytes(signature))
    assert granted == consent_id(consent, net.ledger.domain())
    assert net.ledger.consent_state(granted) == (ConsentStatus.GRANTED, 0)


def test_signature_for_another_verifying_contract_is_refused(net: Net) -> None:
    """The domain binds a consent to this ledger: one signed for another contract fails."""
    consent = contact_consent(net)
    elsewhere = replace(net.ledger.domain(), verifying_contract=net.ledger.consortium.address)
    typed = consent_typed_data(consent, elsewhere)
    signature = Account.sign_typed_data(net.cast.alice.key, full_message=typed).signature

    with pytest.raises(ContractRevertError) as e:
        net.grant(consent, signature=bytes(signature))
    assert e.value.rule == "ConsentRegistryInvalidSignature"


# ---------------------------------------------------------------------- granting


def test_grant_emits_consent_granted_with_the_terms(net: Net) -> None:
    """A relayed consent is stored as GRANTED, unused, and its terms are in the event."""
    consent = contact_consent(net, max_uses=3, identified=True)
    relayed = net.ledger.access.functions.grantConsent(consent.as_tuple(), net.sign(consent))
    receipt = net.admin2.transact(relayed)

    (event,) = net.events(net.ledger.access.events.ConsentGranted(), receipt)
    cid = consent_id(consent, net.ledger.domain())
    assert event == {
        "consent": cid, "subject": net.alice.address, "grantee": net.transport.address,
        "category": CONTACT_TRACE, "record": b"\0" * 32, "purpose": EPIDEMIC,
        "validUntil": consent.valid_until, "maxUses": 3, "identified": True,
        "nonce": consent.nonce,
    }
    assert net.ledger.consent_state(cid) == (ConsentStatus.GRANTED, 0)


def test_anyone_may_relay_a_consent(net: Net) -> None:
    """A non-member relays a subject-signed consent; the signature is what counts."""
    consent = contact_consent(net)

    net.grant(consent, relayer=net.outsider)
    net.access(net.transport, net.records.contact, EPIDEMIC, [consent])


def test_replayed_consent_signature_is_refused(net: Net) -> None:
    """A signature is usable once: relaying the same consent again reverts."""
    consent = contact_consent(net)
    signature = net.sign(consent)
    cid = net.grant(consent, signature=signature)

    with pytest.raises(ContractRevertError) as e:
        net.grant(consent, signature=signature, relayer=net.police)
    assert e.value.rule == "ConsentRegistryAlreadyGranted"
    assert e.value.rule_args == (hex32(cid),)


def test_consent_signed_by_another_key_is_refused(net: Net) -> None:
    """Bob cannot sign a consent in alice's name."""
    consent = contact_consent(net)

    with pytest.raises(ContractRevertError) as e:
        net.grant(consent, signature=net.sign(consent, signer=net.bob))
    assert e.value.rule == "ConsentRegistryInvalidSignature"
    assert e.value.rule_args == (hex32(consent_id(consent, net.ledger.domain())),)


@pytest.mark.parametrize("term", ["max_uses", "grantee", "purpose", "valid_until", "record"])
def test_terms_tampered_after_signing_are_refused(net: Net, term: str) -> None:
    """Changing any term after the subject signed breaks the signature."""
    consent = contact_consent(net)
    signature = net.sign(consent)
    changed = {
        "max_uses": 100, "grantee": net.police.address, "purpose": 2,
        "valid_until": 2**40 - 1, "record": net.records.contact,
    }[term]
    tampered = replace(consent, **{term: changed})

    with pytest.raises(ContractRevertError) as e:
        net.grant(tampered, signature=signature)
    assert e.value.rule == "ConsentRegistryInvalidSignature"
    assert e.value.rule_args == (hex32(consent_id(tampered, net.ledger.domain())),)


@pytest.mark.parametrize(
    "signature", [b"", b"\0" * 65, b"\x01" * 64], ids=["empty", "zeros", "64-bytes"]
)
def test_malformed_signature_is_refused(net: Net, signature: bytes) -> None:
    """A signature that recovers nobody is an invalid signature, not a crash."""
    consent = contact_consent(net)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.grant_consent(net.admin2, consent, signature)
    assert e.value.rule == "ConsentRegistryInvalidSignature"


@pytest.mark.parametrize(
    ("field", "reason"),
    [("max_uses", "zero maxUses"), ("grantee", "zero grantee"), ("subject", "zero subject")],
)
def test_unusable_terms_are_refused(net: Net, field: str, reason: str) -> None:
    """Zero maxUses, a zero grantee or a zero subject make a consent unusable."""
    zero = 0 if field == "max_uses" else ZERO_ADDRESS
    consent = replace(contact_consent(net), **{field: zero})

    with pytest.raises(ContractRevertError) as e:
        net.grant(consent, signature=net.sign(consent, signer=net.alice))
    assert e.value.rule == "ConsentRegistryInvalidTerms"
    assert e.value.rule_args == (hex32(consent_id(consent, net.ledger.domain())), reason)


def test_consent_expired_at_grant_is_refused(net: Net) -> None:
    """A consent whose validity ended before the relay's block cannot be granted."""
    consent = contact_consent(net, valid_for=-1)

    with pytest.raises(ContractRevertError) as e:
        net.grant(consent)
    assert e.value.rule == "ConsentRegistryConsentExpired"
    assert rule_args(e.value)[1] == consent.valid_until


def test_consent_valid_until_the_grant_block_is_accepted(net: Net) -> None:
    """validUntil equal to the block time is still valid (expiry is strictly after)."""
    consent = contact_consent(net, valid_for=0)
    assert consent.valid_until == net.next_time()

    net.grant(consent)


# ---------------------------------------------------------------------- revoking


def test_subject_revokes_directly(net: Net) -> None:
    """The subject's own revocation emits ConsentRevoked and blocks the next access."""
    consent = contact_consent(net, valid_for=DAY)
    cid = net.grant(consent)

    receipt = net.ledger.revoke_consent(net.alice, consent)
    (event,) = net.events(net.ledger.access.events.ConsentRevoked(), receipt)
    assert event == {"consent": cid, "subject": net.alice.address}
    assert net.ledger.consent_state(cid) == (ConsentStatus.REVOKED, 0)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryConsentRevoked"
    assert e.value.rule_args == (hex32(cid),)


def test_revocation_signature_relayed_by_another_account_revokes(net: Net) -> None:
    """A subject-signed EIP-712 Revocation works whoever relays it."""
    consent = contact_consent(net)
    cid = net.grant(consent)
    signature = sign_revocation(cid, net.cast.alice.key, net.ledger.domain())

    receipt = net.ledger.revoke_consent_by_signature(net.police, consent, signature)
    (event,) = net.events(net.ledger.access.events.ConsentRevoked(), receipt)
    assert event == {"consent": cid, "subject": net.alice.address}
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryConsentRevoked"


def test_revocation_signed_by_another_key_is_refused(net: Net) -> None:
    """Only the subject's key can sign a revocation."""
    consent = contact_consent(net)
    cid = net.grant(consent)
    signature = sign_revocation(cid, net.cast.bob.key, net.ledger.domain())

    with pytest.raises(ContractRevertError) as e:
        net.ledger.revoke_consent_by_signature(net.police, consent, signature)
    assert e.value.rule == "ConsentRegistryInvalidSignature"
    assert net.ledger.consent_state(cid) == (ConsentStatus.GRANTED, 0)


def test_consent_signature_does_not_work_as_a_revocation(net: Net) -> None:
    """The Revocation type is distinct: relaying the consent signature cannot revoke."""
    consent = contact_consent(net)
    signature = net.sign(consent)
    net.grant(consent, signature=signature)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.revoke_consent_by_signature(net.police, consent, signature)
    assert e.value.rule == "ConsentRegistryInvalidSignature"


def test_non_subject_cannot_revoke_directly(net: Net) -> None:
    """Bob (or the grantee) cannot withdraw alice's consent."""
    consent = contact_consent(net)
    cid = net.grant(consent)

    for caller in (net.bob, net.transport):
        with pytest.raises(ContractRevertError) as e:
            net.ledger.revoke_consent(caller, consent)
        assert e.value.rule == "ConsentRegistryNotSubject"
        assert rule_args(e.value) == (hex32(cid), caller.address)


def test_consent_cannot_be_revoked_twice(net: Net) -> None:
    """A second revocation reverts (the first one stands)."""
    consent = contact_consent(net)
    cid = net.grant(consent)
    net.ledger.revoke_consent(net.alice, consent)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.revoke_consent(net.alice, consent)
    assert e.value.rule == "ConsentRegistryConsentRevoked"
    assert e.value.rule_args == (hex32(cid),)


def test_revoking_before_relay_makes_a_later_grant_fail(net: Net) -> None:
    """A signed consent withdrawn before anyone relayed it can never be granted."""
    consent = contact_consent(net)
    signature = net.sign(consent)
    net.ledger.revoke_consent(net.alice, consent)

    with pytest.raises(ContractRevertError) as e:
        net.grant(consent, signature=signature)
    assert e.value.rule == "ConsentRegistryConsentRevoked"
    cid = consent_id(consent, net.ledger.domain())
    assert net.ledger.consent_state(cid) == (ConsentStatus.REVOKED, 0)


def test_signed_revocation_before_relay_makes_a_later_grant_fail(net: Net) -> None:
    """A relayed Revocation signature also works on a consent never granted."""
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=net.records.lab)
    cid = consent_id(consent, net.ledger.domain())
    net.ledger.revoke_consent_by_signature(
        net.outsider, consent, sign_revocation(cid, net.cast.alice.key, net.ledger.domain())
    )

    with pytest.raises(ContractRevertError) as e:
        net.grant(consent)
    assert e.value.rule == "ConsentRegistryConsentRevoked"


def test_unknown_consent_state_is_none(net: Net) -> None:
    """A consent id never seen on chain reads as NONE with no uses."""
    assert net.ledger.consent_state(keccak(text="nothing")) == (ConsentStatus.NONE, 0)
