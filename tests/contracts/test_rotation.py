"""Signer rotation by governance: a member moves to a new key, keeps its standing, records and consents."""

from __future__ import annotations

import pytest
from eth_account import Account

from consentledger import governance as gov
from consentledger.errors import ContractRevertError
from consentledger.types import MemberStatus, Role, TombstoneReason

from .world import CONTACT_TRACE, EPIDEMIC, Net, rule_args


def test_the_successor_inherits_the_member_and_the_old_key_is_revoked(net: Net) -> None:
    """Transport's standing moves to the new key; the events say what happened; currentSigner follows."""
    before = net.ledger.member(net.transport.address)
    start = net.w3.eth.block_number + 1

    net.govern(gov.rotate_signer(net.transport.address, net.outsider.address))

    after = net.ledger.member(net.outsider.address)
    assert (after.roles, after.status, after.name, after.x25519_key, after.gateway_url) == (
        before.roles, MemberStatus.ACTIVE, before.name, before.x25519_key, before.gateway_url)
    assert net.ledger.member(net.transport.address).status is MemberStatus.REVOKED
    assert net.ledger.current_signer(net.transport.address) == net.outsider.address
    assert net.ledger.current_signer(net.police.address) == net.police.address
    consortium = net.ledger.consortium.events
    [rotated] = net.events_since(consortium.MemberSignerRotated(), start)
    assert rotated == {"previous": net.transport.address, "successor": net.outsider.address}
    [admitted] = net.events_since(consortium.MemberAdmitted(), start)
    assert admitted["account"] == net.outsider.address
    [revoked] = net.events_since(consortium.MemberStatusChanged(), start)
    assert (revoked["account"], revoked["status"]) == (net.transport.address, MemberStatus.REVOKED)


def test_a_consent_to_the_old_key_serves_the_new_one_and_not_the_old(net: Net) -> None:
    """Alice's consent names transport's old key: after rotation the new key uses it, the old key cannot."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC, max_uses=1)
    net.grant(consent)
    net.govern(gov.rotate_signer(net.transport.address, net.outsider.address))

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsortiumMemberNotActive"

    entry = net.access(net.outsider, net.records.contact, EPIDEMIC, [consent])
    assert entry.requester == net.outsider.address


def test_a_consent_follows_every_rotation(net: Net) -> None:
    """Two rotations in a row: the consent to the first key serves the last."""
    third = Account.create()
    net.w3.eth.send_transaction({"from": net.admin0.address, "to": third.address, "value": 10**18})
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)
    net.govern(gov.rotate_signer(net.transport.address, net.outsider.address))
    net.govern(gov.rotate_signer(net.outsider.address, third.address))

    assert net.ledger.current_signer(net.transport.address) == third.address
    entry = net.access(net.ledger.sender(third), net.records.contact, EPIDEMIC, [consent])
    assert entry.requester == third.address


def test_the_new_custodian_key_may_tombstone_the_old_keys_records(net: Net) -> None:
    """Health's records stay destroyable by health after it rotates; its old key can register nothing."""
    net.govern(gov.rotate_signer(net.health.address, net.outsider.address))

    with pytest.raises(ContractRevertError) as e:
        net.register("late", net.alice, CONTACT_TRACE)
    assert e.value.rule == "ConsortiumMemberNotActive"
    net.ledger.tombstone(net.outsider, net.records.contact, TombstoneReason.CUSTODIAN)
    assert net.ledger.record(net.records.contact).tombstone is TombstoneReason.CUSTODIAN


def test_another_member_may_not_tombstone_a_rotated_custodians_records(net: Net) -> None:
    """Rotation hands the records to the successor only."""
    net.govern(gov.rotate_signer(net.health.address, net.outsider.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.tombstone(net.police, net.records.contact, TombstoneReason.CUSTODIAN)
    assert e.value.rule == "RecordRegistryNotCustodian"


def test_a_rotated_admin_votes_with_the_new_key_only(net: Net) -> None:
    """Admin0's open approval no longer counts after its rotation; the new key approves in its place."""
    proposal = net.propose(gov.set_roles(net.police.address, Role.REQUESTER))  # admin0 approved
    net.govern(gov.rotate_signer(net.admin0.address, net.outsider.address))

    assert net.ledger.approve(net.admin1, proposal) is False  # admin0's vote went with its revoked key
    assert net.ledger.approve(net.outsider, proposal) is True
    assert net.ledger.member(net.police.address).roles == Role.REQUESTER


@pytest.mark.parametrize(("previous", "successor", "rule"), [
    ("transport", "police", "ConsortiumAlreadyMember"),
    ("outsider", "carol", "ConsortiumInvalidStatus"),
    ("transport", "zero", "ConsortiumZeroAddress"),
])
def test_an_invalid_rotation_cannot_run(net: Net, previous: str, successor: str, rule: str) -> None:
    """Onto an existing member, from a non-member, or to the zero address: the proposal stays open, named."""
    addresses = {"transport": net.transport.address, "police": net.police.address,
                 "outsider": net.outsider.address, "carol": net.carol.address, "zero": "0x" + "00" * 20}
    proposal = net.propose(gov.rotate_signer(addresses[previous], addresses[successor]))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == rule
    if rule == "ConsortiumInvalidStatus":
        assert rule_args(e.value) == (net.outsider.address, int(MemberStatus.NONE))
