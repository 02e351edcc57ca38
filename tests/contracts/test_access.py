"""AccessLedger.requestAccess: who may read which record, for what, under which consent."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from consentledger.consent import consent_id
from consentledger.errors import ContractRevertError
from consentledger.types import ConsentStatus, MemberStatus, TombstoneReason

from .world import (
    CONTACT_TRACE,
    DAY,
    EPIDEMIC,
    LAB_RESULT,
    RESEARCH,
    Net,
    hex32,
    rule_args,
)

ZERO = b"\0" * 32


def expected_head(previous: bytes, seq: int, requester: str, purpose: int, consent: bytes,
                  timestamp: int, identified: bool = False, actor: bytes = ZERO, basis: int = 0) -> bytes:
    """Return keccak256(abi.encode(previous, seq, requester, actor, purpose, basis, consent, identified, timestamp))."""
    return keccak(encode(
        ["bytes32", "uint24", "address", "bytes32", "uint8", "uint8", "bytes32", "bool", "uint256"],
        [previous, seq, requester, actor, purpose, basis, consent, identified, timestamp],
    ))


# ---------------------------------------------------------------------- successful accesses


def test_one_time_consent_grants_one_access_and_emits_access_recorded(net: Net) -> None:
    """A ONE_TIME consent lets its grantee read once; the access is chained and announced."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    cid = net.grant(consent)
    when = net.next_time()

    clerk = keccak(b"a clerk of the transport bureau")
    call = net.ledger.access.functions.requestAccess(
        net.records.contact, EPIDEMIC, clerk, [consent.as_tuple()]
    )
    receipt = net.transport.transact(call)

    (event,) = net.events(net.ledger.access.events.AccessRecorded(), receipt)
    head = expected_head(ZERO, 1, net.transport.address, EPIDEMIC, cid, when, actor=clerk)
    assert event == {
        "seq": 1, "record": net.records.contact, "requester": net.transport.address, "actor": clerk,
        "purpose": EPIDEMIC, "basis": 0, "consent": cid, "identified": False, "head": head, "timestamp": when,
    }
    assert net.ledger.head(net.records.contact) == head
    assert net.ledger.record(net.records.contact).accesses == 1
    assert net.ledger.consent_state(cid) == (ConsentStatus.GRANTED, 1)


def test_open_category_access_without_consent_is_traced(net: Net) -> None:
    """OPEN data needs no consent, but the access is still appended to the record's chain."""
    when = net.next_time()
    entry = net.access(net.transport, net.records.stats, RESEARCH)

    assert (entry.seq, entry.consent, entry.timestamp) == (1, ZERO, when)
    assert entry.head == expected_head(ZERO, 1, net.transport.address, RESEARCH, ZERO, when)
    assert net.ledger.head(net.records.stats) == entry.head
    assert net.ledger.record(net.records.stats).accesses == 1


def test_open_category_access_with_a_consent_consumes_it(net: Net) -> None:
    """A consent presented for OPEN data is checked, used and named in the chain."""
    consent = net.consent(net.bob, net.transport, 3, EPIDEMIC, max_uses=2)
    cid = net.grant(consent)

    entry = net.access(net.transport, net.records.stats, EPIDEMIC, [consent])
    assert entry.consent == cid
    assert net.ledger.consent_state(cid) == (ConsentStatus.GRANTED, 1)


def test_protected_record_consent_allows_max_uses_then_is_exhausted(net: Net) -> None:
    """A PROTECTED record-scoped consent with maxUses=2 works twice, then reverts."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, RESEARCH, record=lab, max_uses=2)
    cid = net.grant(consent)

    assert [net.access(net.transport, lab, RESEARCH, [consent]).seq for _ in range(2)] == [1, 2]
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, lab, RESEARCH, [consent])
    assert e.value.rule == "ConsentRegistryConsentExhausted"
    assert e.value.rule_args == (hex32(cid), 2, 2)
    assert net.ledger.consent_state(cid) == (ConsentStatus.GRANTED, 2)


def test_one_time_category_consent_is_single_use_whatever_its_max_uses(net: Net) -> None:
    """ONE_TIME forces a single use even when the subject signed maxUses=5."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC, max_uses=5)
    cid = net.grant(consent)
    net.access(net.transport, net.records.contact, EPIDEMIC, [consent])

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryConsentExhausted"
    assert e.value.rule_args == (hex32(cid), 1, 1)


# ---------------------------------------------------------------------- who asks


def test_non_member_cannot_access(net: Net) -> None:
    """An account never admitted is refused, consent or not."""
    consent = net.consent(net.alice, net.outsider, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.outsider, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsortiumMemberNotActive"
    assert rule_args(e.value) == (net.outsider.address, int(MemberStatus.NONE))


def test_suspended_requester_cannot_use_its_consent(net: Net) -> None:
    """A suspended grantee cannot use a valid consent; reinstated, it can."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)
    net.suspend(net.transport)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsortiumMemberNotActive"
    net.reinstate(net.transport)
    net.access(net.transport, net.records.contact, EPIDEMIC, [consent])


def test_consent_for_another_grantee_is_refused(net: Net) -> None:
    """Police cannot use a consent alice gave transport."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    cid = net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.police, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryWrongGrantee"
    assert rule_args(e.value) == (hex32(cid), net.transport.address, net.police.address)


# ---------------------------------------------------------------------- which consent


def test_consent_that_was_never_granted_is_refused(net: Net) -> None:
    """Signed but not relayed terms authorise nothing."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryNotGranted"
    assert e.value.rule_args == (hex32(consent_id(consent, net.ledger.domain())),)


def test_consent_is_needed_outside_open_categories(net: Net) -> None:
    """A ONE_TIME or PROTECTED record without a consent reverts on the consent count."""
    for record in (net.records.contact, net.records.lab):
        with pytest.raises(ContractRevertError) as e:
            net.access(net.transport, record, EPIDEMIC)
        assert e.value.rule == "AccessLedgerConsentCountMismatch"
        assert e.value.rule_args == (hex32(record), 1, 0)


def test_plain_record_takes_exactly_one_consent(net: Net) -> None:
    """Two consents for a plain (non-derived) record are refused."""
    first = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    second = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    net.grant(first)
    net.grant(second)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [first, second])
    assert e.value.rule == "AccessLedgerConsentCountMismatch"
    assert e.value.rule_args == (hex32(net.records.contact), 1, 2)


def test_consent_for_another_purpose_is_refused(net: Net) -> None:
    """A research consent does not cover an epidemic-control access."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, RESEARCH, record=lab)
    cid = net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, lab, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryWrongPurpose"
    assert e.value.rule_args == (hex32(cid), RESEARCH)


def test_consent_from_someone_other_than_the_subject_is_refused(net: Net) -> None:
    """Bob cannot consent to the use of alice's contact trace."""
    consent = net.consent(net.bob, net.transport, CONTACT_TRACE, EPIDEMIC)
    cid = net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryWrongSubject"
    assert rule_args(e.value) == (hex32(cid), net.bob.address)


def test_protected_category_needs_a_record_scoped_consent(net: Net) -> None:
    """A category-wide consent does not open a PROTECTED record."""
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, max_uses=3)
    cid = net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.lab, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryRecordScopeRequired"
    assert e.value.rule_args == (hex32(cid), hex32(net.records.lab))


def test_consent_scoped_to_another_record_is_refused(net: Net) -> None:
    """A consent naming one record does not cover another, even of the same category."""
    second_lab = net.register("lab-2", net.alice, LAB_RESULT)
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=second_lab)
    cid = net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.lab, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryWrongScope"
    assert e.value.rule_args == (hex32(cid), hex32(net.records.lab))


def test_consent_for_another_category_is_refused(net: Net) -> None:
    """A category-wide consent covers its own category only."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.lab, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryWrongScope"


def test_consent_works_until_valid_until_and_expires_after(net: Net) -> None:
    """validUntil is the last second a consent works; the next block it has expired."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab,
                          max_uses=5, valid_for=600)
    cid = net.grant(consent)

    net.travel_to(consent.valid_until)
    net.access(net.transport, lab, EPIDEMIC, [consent])
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, lab, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryConsentExpired"
    assert e.value.rule_args == (hex32(cid), consent.valid_until)


def test_revoked_consent_blocks_next_access(net: Net) -> None:
    """A consent with uses left stops working as soon as its subject revokes it."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab, max_uses=3)
    cid = net.grant(consent)
    net.access(net.transport, lab, EPIDEMIC, [consent])
    net.ledger.revoke_consent(net.alice, consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, lab, EPIDEMIC, [consent])
    assert e.value.rule == "ConsentRegistryConsentRevoked"
    assert net.ledger.consent_state(cid) == (ConsentStatus.REVOKED, 1)


# ---------------------------------------------------------------------- which record


def test_tombstoned_record_refuses_a_valid_consent(net: Net) -> None:
    """A destroyed record cannot be read even under a consent with uses left."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)
    net.ledger.tombstone(net.health, net.records.contact, TombstoneReason.ERASURE)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    assert e.value.rule == "RecordRegistryRecordTombstoned"


def test_record_past_retention_cannot_be_accessed(net: Net) -> None:
    """retainUntil is the last second a record may be used."""
    retain_until = net.ledger.record(net.records.stats).retain_until

    net.travel_to(retain_until)
    net.access(net.transport, net.records.stats, EPIDEMIC)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.stats, EPIDEMIC)
    assert e.value.rule == "AccessLedgerRetentionExpired"
    assert e.value.rule_args == (hex32(net.records.stats), retain_until)


# ---------------------------------------------------------------------- derived records


def test_derived_record_without_every_source_subjects_consent_is_refused(net: Net) -> None:
    """A cohort of alice's and bob's results needs bob's consent too."""
    cohort = net.register("cohort", None, LAB_RESULT,
                          derived_from=[net.records.lab, net.records.lab_bob])
    consent = net.consent(net.alice, net.transport, LAB_RESULT, RESEARCH, record=cohort)
    net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, cohort, RESEARCH, [consent])
    assert e.value.rule == "AccessLedgerMissingSourceConsent"
    assert rule_args(e.value) == (hex32(cohort), hex32(net.records.lab_bob), net.bob.address)


def test_derived_record_with_every_source_subjects_consent_consumes_each(net: Net) -> None:
    """With alice's and bob's consents the access succeeds, uses both, and chains their hash."""
    cohort = net.register("cohort", None, LAB_RESULT,
                          derived_from=[net.records.lab, net.records.lab_bob])
    consents = [
        net.consent(subject, net.transport, LAB_RESULT, RESEARCH, record=cohort, max_uses=2)
        for subject in (net.bob, net.alice)
    ]
    ids = [net.grant(c) for c in consents]

    entry = net.access(net.transport, cohort, RESEARCH, consents)
    assert entry.consent == keccak(b"".join(ids))
    assert [net.ledger.consent_state(i) for i in ids] == [(ConsentStatus.GRANTED, 1)] * 2


def test_derived_record_from_one_source_chains_the_single_consent_id(net: Net) -> None:
    """With a single consent the chain names its id, as for a plain record."""
    summary = net.register("summary", None, LAB_RESULT, derived_from=[net.records.lab])
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=summary)
    cid = net.grant(consent)

    assert net.access(net.transport, summary, EPIDEMIC, [consent]).consent == cid


def test_derived_record_refuses_a_consent_from_outside_its_sources(net: Net) -> None:
    """Consents by anyone but the sources' subjects are refused, even alongside the right ones."""
    summary = net.register("summary", None, LAB_RESULT, derived_from=[net.records.lab])
    good = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=summary)
    stranger = net.consent(net.carol, net.transport, LAB_RESULT, EPIDEMIC, record=summary)
    net.grant(good)
    stranger_id = net.grant(stranger)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, summary, EPIDEMIC, [good, stranger])
    assert e.value.rule == "ConsentRegistryWrongSubject"
    assert rule_args(e.value) == (hex32(stranger_id), net.carol.address)


def test_derived_record_refuses_a_consent_scoped_to_a_source(net: Net) -> None:
    """Consent to use the source record is not consent to use data derived from it."""
    summary = net.register("summary", None, LAB_RESULT, derived_from=[net.records.lab])
    for_source = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=net.records.lab)
    net.grant(for_source)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, summary, EPIDEMIC, [for_source])
    assert e.value.rule == "ConsentRegistryWrongScope"


def test_derived_record_is_unavailable_once_a_source_is_tombstoned(net: Net) -> None:
    """Destroying a source makes its derived data unusable."""
    summary = net.register("summary", None, LAB_RESULT, derived_from=[net.records.lab])
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=summary)
    net.grant(consent)
    net.ledger.tombstone(net.health, net.records.lab, TombstoneReason.ERASURE)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, summary, EPIDEMIC, [consent])
    assert e.value.rule == "AccessLedgerSourceUnavailable"
    assert e.value.rule_args == (hex32(summary), hex32(net.records.lab))


def test_derived_record_is_unavailable_once_a_source_outlived_its_retention(net: Net) -> None:
    """A 90-day derived record from a 30-day contact trace stops working after 30 days."""
    summary = net.register("summary", None, LAB_RESULT, derived_from=[net.records.contact])
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=summary,
                          valid_for=60 * DAY)
    net.grant(consent)

    net.travel_to(net.ledger.record(net.records.contact).retain_until + 1)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, summary, EPIDEMIC, [consent])
    assert e.value.rule == "AccessLedgerSourceUnavailable"


def test_second_level_derivation_needs_the_original_subjects_consent(net: Net) -> None:
    """A derived source cannot stand in for its own sources' subjects: alice is asked, not carol."""
    # The first derivation names carol as its subject (the custodian's word, not alice's).
    first = net.register("first", net.carol, LAB_RESULT, derived_from=[net.records.lab])
    second = net.register("second", None, LAB_RESULT, derived_from=[first])
    by_carol = net.consent(net.carol, net.transport, LAB_RESULT, EPIDEMIC, record=second)
    by_alice = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=second)
    net.grant(by_carol)
    net.grant(by_alice)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, second, EPIDEMIC, [by_carol])
    assert e.value.rule == "ConsentRegistryWrongSubject"
    assert net.access(net.transport, second, EPIDEMIC, [by_alice]).seq == 1


# ---------------------------------------------------------------------- identified access


@pytest.mark.parametrize("identified", [True, False])
def test_the_entry_records_whether_the_consent_allows_identified_access(net: Net, identified: bool) -> None:
    """The access entry carries the consent's `identified` term, and the head hashes it."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC, identified=identified)
    cid = net.grant(consent)
    when = net.next_time()

    entry = net.access(net.transport, net.records.contact, EPIDEMIC, [consent])

    assert entry.identified is identified
    assert entry.head == expected_head(ZERO, 1, net.transport.address, EPIDEMIC, cid, when, identified)


def test_an_open_access_without_consent_is_never_identified(net: Net) -> None:
    """No consent, no identified access."""
    assert net.access(net.police, net.records.stats, EPIDEMIC).identified is False


@pytest.mark.parametrize("terms", [(True, True), (True, False)])
def test_a_derived_access_is_identified_only_if_every_source_subject_allows_it(
    net: Net, terms: tuple[bool, bool]
) -> None:
    """Alice and Bob both allowing identified access makes it identified; one refusal makes it not."""
    cohort = net.register("cohort", None, LAB_RESULT, derived_from=[net.records.lab, net.records.lab_bob])
    consents = [
        net.consent(subject, net.transport, LAB_RESULT, RESEARCH, record=cohort, identified=allows)
        for subject, allows in zip((net.alice, net.bob), terms, strict=True)
    ]
    for consent in consents:
        net.grant(consent)

    assert net.access(net.transport, cohort, RESEARCH, consents).identified is all(terms)
