"""Statutory mandates: governance grants an institution access without consent, inside a scope and until a date."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from eth_utils import keccak

from consentledger import governance as gov
from consentledger.chain.sender import TransactionSender
from consentledger.errors import ContractRevertError
from consentledger.governance import ProposedAction
from consentledger.types import AccessEntry, ActorId, Address, LegalBasis, Mandate, MemberStatus, Role, TombstoneReason

from .test_access import expected_head
from .world import (
    CONTACT_TRACE,
    DAY,
    DISTRICT_STATS,
    EPIDEMIC,
    LAB_RESULT,
    RESEARCH,
    Net,
    Party,
    address_of,
    commitment_of,
    hex32,
    record_id,
    rule_args,
)

ZERO = b"\0" * 32
LEGAL_TEXT = b"Epidemic Control Act, art. 12: the transport bureau may trace contacts of the infected."
LEGAL_TEXT_HASH = keccak(LEGAL_TEXT)
LEGAL_TEXT_URI = "https://laws.example/epidemic-control-act#art-12"
MANDATE = 1
"""The basis word of an entry under a statutory mandate (IAccessLedger.LegalBasis.Mandate)."""


def mandate_for(
    net: Net,
    institution: Party,
    *,
    purpose: int = EPIDEMIC,
    categories: Sequence[int] = (CONTACT_TRACE, LAB_RESULT),
    valid_until: int | None = None,
    identified: bool = True,
) -> ProposedAction:
    """Return a GrantMandate proposal (by default: epidemic control, contact traces and lab results, 30 days)."""
    return gov.grant_mandate(
        address_of(institution), purpose, categories, valid_until or net.next_time() + 30 * DAY,
        LEGAL_TEXT_HASH, LEGAL_TEXT_URI, identified=identified,
    )


def grant(
    net: Net,
    institution: Party,
    *,
    purpose: int = EPIDEMIC,
    categories: Sequence[int] = (CONTACT_TRACE, LAB_RESULT),
    valid_until: int | None = None,
    identified: bool = True,
) -> int:
    """Grant a mandate (terms as `mandate_for`) through governance and return its id."""
    net.govern(mandate_for(net, institution, purpose=purpose, categories=categories, valid_until=valid_until,
                           identified=identified))
    return int(net.ledger.consortium.functions.mandateCount().call())


def refused(net: Net, proposed: ProposedAction) -> ContractRevertError:
    """Propose `proposed` and return the revert of the approval that would run it."""
    proposal = net.propose(proposed)
    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert not net.ledger.proposal(proposal).executed
    return e.value


def use(net: Net, requester: TransactionSender, record: bytes, purpose: int, mandate: int,
        actor: bytes = ZERO) -> AccessEntry:
    """Request an access to `record` under `mandate` and return the appended entry."""
    return net.ledger.request_access_under_mandate(requester, record, purpose, mandate, actor=ActorId(actor))


def refusal(net: Net, requester: TransactionSender, record: bytes, purpose: int, mandate: int) -> ContractRevertError:
    """Return the revert of an access to `record` under `mandate`."""
    with pytest.raises(ContractRevertError) as e:
        use(net, requester, record, purpose, mandate)
    return e.value


# ---------------------------------------------------------------------- granting


def test_a_granted_mandate_reads_back_and_is_announced(net: Net) -> None:
    """GrantMandate stores every term under id 1, counts it, and MandateGranted carries them all."""
    valid_until = net.next_time() + 30 * DAY
    start = net.w3.eth.block_number + 1

    mid = grant(net, net.transport, valid_until=valid_until, identified=False)

    assert mid == 1
    assert net.ledger.consortium.functions.mandateCount().call() == 1
    assert net.ledger.mandate(mid) == Mandate(
        1, Address(net.transport.address), EPIDEMIC, (CONTACT_TRACE, LAB_RESULT), valid_until, False, False,
        LEGAL_TEXT_HASH, LEGAL_TEXT_URI,
    )
    [granted] = net.events_since(net.ledger.consortium.events.MandateGranted(), start)
    assert {**granted, "categories": list(granted["categories"])} == {
        "mandate": 1, "institution": net.transport.address, "purpose": EPIDEMIC,
        "categories": [CONTACT_TRACE, LAB_RESULT], "validUntil": valid_until, "identified": False,
        "legalTextHash": LEGAL_TEXT_HASH, "legalTextUri": LEGAL_TEXT_URI,
    }


def test_mandate_ids_count_up_from_one(net: Net) -> None:
    """Each grant takes the next id; `mandates` lists them in id order."""
    first = grant(net, net.transport)
    second = grant(net, net.police, purpose=RESEARCH, categories=[LAB_RESULT])

    assert (first, second) == (1, 2)
    assert [(m.id, m.institution, m.purpose) for m in net.ledger.mandates()] == [
        (1, net.transport.address, EPIDEMIC), (2, net.police.address, RESEARCH)]


def test_reading_an_unknown_mandate_is_refused(net: Net) -> None:
    """Ids start at 1 and end at mandateCount: `mandate(0)` and `mandate(count + 1)` revert."""
    grant(net, net.transport)
    for unknown in (0, 2):
        with pytest.raises(ContractRevertError) as e:
            net.ledger.mandate(unknown)
        assert (e.value.rule, e.value.rule_args) == ("LegalBasesUnknownMandate", (unknown,))


@pytest.mark.parametrize(("purpose", "categories", "reason"), [
    (EPIDEMIC, [], "1 to 32 categories"),
    (EPIDEMIC, list(range(1, 34)), "1 to 32 categories"),
    (RESEARCH, [CONTACT_TRACE], "a category does not allow the purpose"),
    (RESEARCH, [LAB_RESULT, CONTACT_TRACE], "a category does not allow the purpose"),
])
def test_a_mandate_outside_the_catalog_rules_cannot_be_granted(
    net: Net, purpose: int, categories: list[int], reason: str
) -> None:
    """No categories, more than 32, or a category that does not allow the purpose: LegalBasesInvalidMandate."""
    error = refused(net, mandate_for(net, net.transport, purpose=purpose, categories=categories))

    assert (error.rule, error.rule_args) == ("LegalBasesInvalidMandate", (reason,))
    assert net.ledger.consortium.functions.mandateCount().call() == 0


def test_a_mandate_without_a_legal_text_hash_cannot_be_granted(net: Net) -> None:
    """The mandate must cite the text authorising it: a zero hash is refused."""
    proposed = gov.grant_mandate(net.transport.address, EPIDEMIC, [CONTACT_TRACE], net.next_time() + DAY,
                                 ZERO, LEGAL_TEXT_URI)

    error = refused(net, proposed)
    assert (error.rule, error.rule_args) == ("LegalBasesInvalidMandate", ("no legal text hash",))


def test_a_mandate_must_end_in_the_future(net: Net) -> None:
    """validUntil at the approving block's own time is refused; one second later is granted."""
    approved_at = net.next_time() + 1  # the proposal's block, then the approval's
    proposal = net.propose(mandate_for(net, net.transport, valid_until=approved_at))
    assert net.next_time() == approved_at
    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert (e.value.rule, e.value.rule_args) == ("LegalBasesInvalidMandate", ("ends in the past",))

    approved_at = net.next_time() + 1
    proposal = net.propose(mandate_for(net, net.transport, valid_until=approved_at + 1))
    assert net.next_time() == approved_at
    assert net.ledger.approve(net.admin1, proposal)


def test_a_mandate_may_not_outlast_its_purposes_sunset(net: Net) -> None:
    """With epidemic control ending at S, a mandate until S is granted and one until S + 1 refused."""
    sunset = net.next_time() + 10 * DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, sunset))

    error = refused(net, mandate_for(net, net.transport, valid_until=sunset + 1))
    assert (error.rule, error.rule_args) == ("LegalBasesInvalidMandate", ("ends after the purpose's sunset",))
    assert grant(net, net.transport, valid_until=sunset) == 1


def test_a_mandate_for_an_unknown_purpose_or_category_cannot_be_granted(net: Net) -> None:
    """The catalog names what it does not know."""
    error = refused(net, mandate_for(net, net.transport, purpose=9))
    assert (error.rule, error.rule_args) == ("DataCatalogUnknownPurpose", (9,))
    error = refused(net, mandate_for(net, net.transport, categories=[CONTACT_TRACE, 99]))
    assert (error.rule, error.rule_args) == ("DataCatalogUnknownCategory", (99,))


def test_a_mandate_goes_only_to_an_active_requester(net: Net) -> None:
    """A custodian, an outsider and a suspended requester cannot be granted a mandate."""
    error = refused(net, mandate_for(net, net.health))
    assert (error.rule, rule_args(error)) == ("ConsortiumMissingRole", (net.health.address, int(Role.REQUESTER)))
    error = refused(net, mandate_for(net, net.outsider))
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMemberNotActive", (net.outsider.address, int(MemberStatus.NONE)))
    net.suspend(net.police)
    error = refused(net, mandate_for(net, net.police))
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMemberNotActive", (net.police.address, int(MemberStatus.SUSPENDED)))


# ---------------------------------------------------------------------- the entry


@pytest.mark.parametrize("identified", [True, False])
def test_an_access_under_a_mandate_is_chained_with_basis_mandate(net: Net, identified: bool) -> None:
    """No consent: the entry's basis is 1, its consent word the mandate id, `identified` the mandate's flag."""
    mid = grant(net, net.transport, identified=identified)
    clerk = keccak(b"a contact tracer of the transport bureau")
    when = net.next_time()

    receipt = net.transport.transact(net.ledger.access.functions.requestAccessUnderMandate(
        net.records.lab, EPIDEMIC, clerk, mid))

    word = mid.to_bytes(32, "big")
    head = expected_head(ZERO, 1, Address(net.transport.address), EPIDEMIC, word, when, identified, clerk, MANDATE)
    [event] = net.events(net.ledger.access.events.AccessRecorded(), receipt)
    assert event == {
        "seq": 1, "record": net.records.lab, "requester": net.transport.address, "actor": clerk,
        "purpose": EPIDEMIC, "basis": MANDATE, "consent": word, "identified": identified, "head": head,
        "timestamp": when,
    }
    assert net.ledger.head(net.records.lab) == head
    assert net.ledger.record(net.records.lab).accesses == 1


def test_the_entry_names_its_mandate(net: Net) -> None:
    """The Python entry reads the basis as MANDATE and the consent word back as the mandate id."""
    grant(net, net.police)
    mid = grant(net, net.transport)

    entry = use(net, net.transport, net.records.contact, EPIDEMIC, mid)

    assert (entry.basis, entry.mandate, entry.consent) == (LegalBasis.MANDATE, 2, (2).to_bytes(32, "big"))


def test_a_mandate_entry_continues_the_records_chain(net: Net) -> None:
    """After a consent access, the mandate access is seq 2 and hashes the previous head."""
    consent = net.consent(net.alice, net.police, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)
    first = net.access(net.police, net.records.contact, EPIDEMIC, [consent])
    mid = grant(net, net.transport, identified=False)
    when = net.next_time()

    second = use(net, net.transport, net.records.contact, EPIDEMIC, mid)

    assert second.seq == 2
    assert second.head == expected_head(
        first.head, 2, net.transport.address, EPIDEMIC, mid.to_bytes(32, "big"), when, basis=MANDATE)


def test_protected_and_one_time_records_need_no_consent_under_a_mandate(net: Net) -> None:
    """The mandate stands in for consent: a lab result and a contact trace are read without one.

    ONE_TIME bounds the uses of a consent; a mandate counts no uses, so it serves every access
    until it ends.
    """
    mid = grant(net, net.transport)

    assert use(net, net.transport, net.records.lab, EPIDEMIC, mid).seq == 1
    assert [use(net, net.transport, net.records.contact, EPIDEMIC, mid).seq for _ in range(2)] == [1, 2]


def test_a_derived_record_under_a_mandate_needs_no_source_consent_but_live_sources(net: Net) -> None:
    """A cohort of alice's and bob's results is read without their consents, until a source is destroyed."""
    cohort = net.register("cohort", None, LAB_RESULT, derived_from=[net.records.lab, net.records.lab_bob])
    mid = grant(net, net.transport)

    assert use(net, net.transport, cohort, EPIDEMIC, mid).seq == 1
    net.ledger.tombstone(net.health, net.records.lab_bob, TombstoneReason.ERASURE)
    error = refusal(net, net.transport, cohort, EPIDEMIC, mid)
    assert (error.rule, error.rule_args) == (
        "AccessLedgerSourceUnavailable", (hex32(cohort), hex32(net.records.lab_bob)))


def test_a_derived_record_under_a_mandate_stops_when_a_source_outlives_its_retention(net: Net) -> None:
    """A derived lab summary of a 30-day contact trace is unusable after the trace's retention."""
    summary = net.register("summary", None, LAB_RESULT, derived_from=[net.records.contact])
    mid = grant(net, net.transport, valid_until=net.next_time() + 60 * DAY)

    net.travel_to(net.ledger.record(net.records.contact).retain_until + 1)
    error = refusal(net, net.transport, summary, EPIDEMIC, mid)
    assert (error.rule, error.rule_args) == (
        "AccessLedgerSourceUnavailable", (hex32(summary), hex32(net.records.contact)))


def test_an_aggregate_under_an_identifying_mandate_is_never_identified(net: Net) -> None:
    """An anonymous aggregate stays anonymous: the entry is not identified whatever the mandate says."""
    net.attest(net.records.lab, net.records.lab_bob)
    rid = record_id("by-district")
    net.ledger.register_aggregate(net.health, rid, DISTRICT_STATS, commitment_of("by-district"),
                                  [net.records.lab, net.records.lab_bob])
    mid = grant(net, net.transport, categories=[DISTRICT_STATS], identified=True)

    entry = use(net, net.transport, rid, EPIDEMIC, mid)

    assert (entry.basis, entry.identified) == (LegalBasis.MANDATE, False)


def test_a_tombstoned_record_is_closed_to_a_mandate(net: Net) -> None:
    """An erased record cannot be read under a mandate either."""
    mid = grant(net, net.transport)
    net.ledger.tombstone(net.health, net.records.lab, TombstoneReason.ERASURE)

    assert refusal(net, net.transport, net.records.lab, EPIDEMIC, mid).rule == "RecordRegistryRecordTombstoned"


# ---------------------------------------------------------------------- scope


def test_a_mandate_for_another_purpose_is_refused(net: Net) -> None:
    """An epidemic-control mandate does not cover research; the error names the mandate's purpose."""
    mid = grant(net, net.transport)

    error = refusal(net, net.transport, net.records.lab, RESEARCH, mid)
    assert (error.rule, error.rule_args) == ("LegalBasesMandateWrongPurpose", (mid, EPIDEMIC))


def test_a_mandate_for_other_categories_is_refused(net: Net) -> None:
    """A contact-trace mandate does not open a lab result."""
    mid = grant(net, net.transport, categories=[CONTACT_TRACE])

    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, error.rule_args) == ("LegalBasesMandateWrongCategory", (mid, LAB_RESULT))
    assert use(net, net.transport, net.records.contact, EPIDEMIC, mid).seq == 1


def test_a_mandate_works_until_valid_until_and_expires_after(net: Net) -> None:
    """validUntil is the mandate's last second."""
    valid_until = net.next_time() + 5 * DAY
    mid = grant(net, net.transport, valid_until=valid_until)

    net.travel_to(valid_until)
    use(net, net.transport, net.records.lab, EPIDEMIC, mid)
    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, error.rule_args) == ("LegalBasesMandateExpired", (mid, valid_until))


def test_a_sunset_set_later_ends_the_mandate_before_its_valid_until(net: Net) -> None:
    """Governance ending epidemic control at S stops a mandate granted to run past S."""
    mid = grant(net, net.transport, valid_until=net.next_time() + 30 * DAY)
    sunset = net.next_time() + 5 * DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, sunset))

    net.travel_to(sunset - 1)
    use(net, net.transport, net.records.lab, EPIDEMIC, mid)
    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, error.rule_args) == ("DataCatalogPurposeSunset", (EPIDEMIC, sunset))


def test_a_category_no_longer_allowing_the_purpose_closes_the_mandate(net: Net) -> None:
    """The catalog rules still hold: once lab results are research-only, the epidemic mandate cannot open them."""
    mid = grant(net, net.transport)
    net.govern(gov.set_category_purposes(LAB_RESULT, [RESEARCH]))

    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, error.rule_args) == ("DataCatalogPurposeNotAllowed", (LAB_RESULT, EPIDEMIC))


def test_a_revoked_mandate_is_refused_and_cannot_be_revoked_again(net: Net) -> None:
    """RevokeMandate ends it for good and is announced; a second revocation is refused."""
    mid = grant(net, net.transport)
    use(net, net.transport, net.records.lab, EPIDEMIC, mid)
    start = net.w3.eth.block_number + 1

    net.govern(gov.revoke_mandate(mid))

    assert net.events_since(net.ledger.consortium.events.MandateRevoked(), start) == [{"mandate": mid}]
    assert net.ledger.mandate(mid).revoked
    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, error.rule_args) == ("LegalBasesMandateRevoked", (mid,))
    error = refused(net, gov.revoke_mandate(mid))
    assert (error.rule, error.rule_args) == ("LegalBasesMandateRevoked", (mid,))


def test_revoking_an_unknown_mandate_is_refused(net: Net) -> None:
    """Governance cannot revoke a mandate that was never granted."""
    error = refused(net, gov.revoke_mandate(1))
    assert (error.rule, error.rule_args) == ("LegalBasesUnknownMandate", (1,))


# ---------------------------------------------------------------------- who holds it


def test_another_institution_cannot_use_the_mandate(net: Net) -> None:
    """Police cannot read under the transport bureau's mandate."""
    mid = grant(net, net.transport)

    error = refusal(net, net.police, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, rule_args(error)) == (
        "LegalBasesMandateNotHolder", (mid, net.transport.address, net.police.address))


def test_an_unknown_mandate_id_is_refused(net: Net) -> None:
    """Mandate 0 and one past the count authorise nothing."""
    grant(net, net.transport)
    for unknown in (0, 2):
        error = refusal(net, net.transport, net.records.lab, EPIDEMIC, unknown)
        assert (error.rule, error.rule_args) == ("LegalBasesUnknownMandate", (unknown,))


def test_a_suspended_holder_cannot_use_its_mandate_until_reinstated(net: Net) -> None:
    """Suspension stops every access, a mandate's too; reinstated, the holder uses it again."""
    mid = grant(net, net.transport)
    net.suspend(net.transport)

    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMemberNotActive", (net.transport.address, int(MemberStatus.SUSPENDED)))
    net.reinstate(net.transport)
    assert use(net, net.transport, net.records.lab, EPIDEMIC, mid).seq == 1


def test_a_holder_that_lost_the_requester_role_cannot_use_its_mandate(net: Net) -> None:
    """Only an active REQUESTER reads: turned custodian, the holder is refused."""
    mid = grant(net, net.transport)
    net.govern(gov.set_roles(net.transport.address, Role.CUSTODIAN))

    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, rule_args(error)) == ("ConsortiumMissingRole", (net.transport.address, int(Role.REQUESTER)))


def test_the_holders_rotated_signer_uses_the_mandate_and_the_old_key_cannot(net: Net) -> None:
    """The mandate names the institution's first key; after rotation the new key holds it."""
    mid = grant(net, net.transport)
    net.govern(gov.rotate_signer(net.transport.address, net.outsider.address))

    error = refusal(net, net.transport, net.records.lab, EPIDEMIC, mid)
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMemberNotActive", (net.transport.address, int(MemberStatus.REVOKED)))
    entry = use(net, net.outsider, net.records.lab, EPIDEMIC, mid)
    assert (entry.requester, entry.basis, entry.mandate) == (net.outsider.address, LegalBasis.MANDATE, mid)
