"""Emergency overrides: an EMERGENCY requester breaks the glass, justified, and an auditor of another org reviews it."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from consentledger import governance as gov
from consentledger.chain.sender import TransactionSender
from consentledger.errors import ContractRevertError
from consentledger.governance import PAYLOAD_TYPES, ProposedAction
from consentledger.types import (
    AccessEntry,
    Action,
    ActorId,
    Address,
    LegalBasis,
    MemberStatus,
    OverridePolicy,
    OverrideState,
    ReviewStatus,
    Role,
    TombstoneReason,
)

from .test_access import expected_head
from .test_consortium import admit_with_raw_roles
from .world import (
    CONTACT_TRACE,
    DAY,
    DISTRICT_STATS,
    EPIDEMIC,
    LAB_RESULT,
    RESEARCH,
    Net,
    commitment_of,
    hex32,
    record_id,
    rule_args,
)

ZERO = b"\0" * 32
OVERRIDE = 2
"""The basis word of an emergency override's entry (IAccessLedger.LegalBasis.Override)."""
REVIEW_PERIOD = 3 * DAY
JUSTIFICATION = keccak(text="Unconscious patient at the scene, exposure unknown: reach their contacts tonight.")
EMERGENCY_REQUESTER = Role.REQUESTER | Role.EMERGENCY


def allow_overrides(net: Net, *purposes: int) -> None:
    """Give police the EMERGENCY role and let overrides name `purposes` (epidemic control if none)."""
    net.govern(gov.set_roles(net.police.address, EMERGENCY_REQUESTER))
    net.govern(gov.set_override_policy(purposes or (EPIDEMIC,), REVIEW_PERIOD))


def override(net: Net, requester: TransactionSender, record: bytes, purpose: int = EPIDEMIC,
             justification: bytes = JUSTIFICATION, actor: bytes = ZERO) -> AccessEntry:
    """Record an emergency override of `record` and return its entry."""
    return net.ledger.request_access_override(requester, record, purpose, justification, actor=ActorId(actor))


def refusal(net: Net, requester: TransactionSender, record: bytes, purpose: int = EPIDEMIC,
            justification: bytes = JUSTIFICATION) -> ContractRevertError:
    """Return the revert of an emergency override of `record`."""
    with pytest.raises(ContractRevertError) as e:
        override(net, requester, record, purpose, justification)
    return e.value


def review_refusal(net: Net, auditor: TransactionSender, record: bytes, seq: int, reason: str = "justified",
                   accepted: bool = True) -> ContractRevertError:
    """Return the revert of a review of access `seq` of `record`."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.review_override(auditor, record, seq, accepted, reason)
    return e.value


def refused(net: Net, proposed: ProposedAction) -> ContractRevertError:
    """Propose `proposed` and return the revert of the approval that would run it."""
    proposal = net.propose(proposed)
    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    return e.value


def raw_policy(purposes: int, review_period: int, max_overrides: int = 0, rate_window: int = 0) -> ProposedAction:
    """Return a SetOverridePolicy proposal with a raw purpose mask (purpose_mask refuses bit 0)."""
    types = list(PAYLOAD_TYPES[Action.SET_OVERRIDE_POLICY])
    payload = encode(types, [purposes, review_period, max_overrides, rate_window])
    return ProposedAction(Action.SET_OVERRIDE_POLICY, payload)


# ---------------------------------------------------------------------- who may override


def test_a_requester_without_the_emergency_role_cannot_override(net: Net) -> None:
    """Transport is a plain REQUESTER: it needs REQUESTER and EMERGENCY (20) to break the glass."""
    allow_overrides(net)

    error = refusal(net, net.transport, net.records.contact)
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMissingRole", (net.transport.address, int(EMERGENCY_REQUESTER)))


def test_the_emergency_role_without_the_requester_role_cannot_override(net: Net) -> None:
    """EMERGENCY alone is not enough: it only extends a requester's means."""
    allow_overrides(net)
    net.govern(gov.set_roles(net.police.address, Role.EMERGENCY))

    error = refusal(net, net.police, net.records.contact)
    assert (error.rule, rule_args(error)) == ("ConsortiumMissingRole", (net.police.address, int(EMERGENCY_REQUESTER)))


def test_a_suspended_emergency_requester_cannot_override(net: Net) -> None:
    """Suspension stops overrides too."""
    allow_overrides(net)
    net.suspend(net.police)

    error = refusal(net, net.police, net.records.contact)
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMemberNotActive", (net.police.address, int(MemberStatus.SUSPENDED)))


def test_emergency_alone_is_now_a_valid_role_mask_and_32_is_not(net: Net) -> None:
    """Role bit 16 (EMERGENCY) is admitted; 32 names no role."""
    net.govern(admit_with_raw_roles(net.carol.address, 16))
    assert net.ledger.member(net.carol.address).roles == Role.EMERGENCY

    error = refused(net, admit_with_raw_roles(net.outsider.address, 32))
    assert (error.rule, error.rule_args) == ("ConsortiumInvalidRoles", (32,))


# ---------------------------------------------------------------------- what an override may name


def test_no_override_is_allowed_before_a_policy_lists_a_purpose(net: Net) -> None:
    """The policy starts all zero: even an EMERGENCY requester is refused."""
    net.govern(gov.set_roles(net.police.address, EMERGENCY_REQUESTER))

    assert net.ledger.override_policy() == OverridePolicy((), 0, 0, 0)
    error = refusal(net, net.police, net.records.contact)
    assert (error.rule, error.rule_args) == ("LegalBasesNotOverridePurpose", (EPIDEMIC,))


def test_a_purpose_the_policy_does_not_list_is_refused(net: Net) -> None:
    """Overrides are for the vital-interest purposes listed: research is not one."""
    allow_overrides(net)

    error = refusal(net, net.police, net.records.lab, RESEARCH)
    assert (error.rule, error.rule_args) == ("LegalBasesNotOverridePurpose", (RESEARCH,))


def test_an_override_without_a_justification_is_refused(net: Net) -> None:
    """Breaking the glass needs the hash of a written justification."""
    allow_overrides(net)

    error = refusal(net, net.police, net.records.contact, justification=ZERO)
    assert (error.rule, error.rule_args) == ("AccessLedgerNoJustification", ())


def test_an_override_still_obeys_the_catalog(net: Net) -> None:
    """A listed purpose the category does not allow is refused; so is one past its sunset."""
    allow_overrides(net, EPIDEMIC, RESEARCH)
    error = refusal(net, net.police, net.records.contact, RESEARCH)
    assert (error.rule, error.rule_args) == ("DataCatalogPurposeNotAllowed", (CONTACT_TRACE, RESEARCH))

    sunset = net.next_time() + DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, sunset))
    net.travel_to(sunset)
    error = refusal(net, net.police, net.records.contact)
    assert (error.rule, error.rule_args) == ("DataCatalogPurposeSunset", (EPIDEMIC, sunset))


def test_an_override_cannot_open_a_destroyed_record_or_one_with_a_destroyed_source(net: Net) -> None:
    """A tombstoned record, and a record derived from one, stay closed."""
    allow_overrides(net)
    summary = net.register("summary", None, LAB_RESULT, derived_from=[net.records.lab])
    net.ledger.tombstone(net.health, net.records.lab, TombstoneReason.ERASURE)

    assert refusal(net, net.police, net.records.lab).rule == "RecordRegistryRecordTombstoned"
    error = refusal(net, net.police, summary)
    assert (error.rule, error.rule_args) == ("AccessLedgerSourceUnavailable", (hex32(summary), hex32(net.records.lab)))


# ---------------------------------------------------------------------- the override's entry


def test_an_override_is_chained_flagged_and_awaits_review(net: Net) -> None:
    """Basis 2, the justification hash as consent word, identified; OverrideRecorded names the review's due time."""
    allow_overrides(net)
    medic = keccak(b"a police medic")
    when = net.next_time()

    receipt = net.police.transact(net.ledger.access.functions.requestAccessOverride(
        net.records.contact, EPIDEMIC, medic, JUSTIFICATION))

    head = expected_head(ZERO, 1, net.police.address, EPIDEMIC, JUSTIFICATION, when, True, medic, OVERRIDE)
    [event] = net.events(net.ledger.access.events.AccessRecorded(), receipt)
    assert event == {
        "seq": 1, "record": net.records.contact, "requester": net.police.address, "actor": medic,
        "purpose": EPIDEMIC, "basis": OVERRIDE, "consent": JUSTIFICATION, "identified": True, "head": head,
        "timestamp": when,
    }
    [recorded] = net.events(net.ledger.access.events.OverrideRecorded(), receipt)
    assert recorded == {
        "record": net.records.contact, "seq": 1, "requester": net.police.address,
        "justification": JUSTIFICATION, "reviewDue": when + REVIEW_PERIOD,
    }
    assert net.ledger.head(net.records.contact) == head
    assert net.ledger.override_state(net.records.contact, 1) == OverrideState(
        Address(net.police.address), when, when + REVIEW_PERIOD, ReviewStatus.PENDING)


def test_overrides_need_no_consent_for_protected_data_and_continue_the_chain(net: Net) -> None:
    """A lab result opens without consent; a second override is seq 2, hashing the first head."""
    allow_overrides(net)
    first = override(net, net.police, net.records.lab)
    when = net.next_time()

    second = override(net, net.police, net.records.lab)

    assert (first.basis, first.seq, second.seq) == (LegalBasis.OVERRIDE, 1, 2)
    assert second.head == expected_head(first.head, 2, net.police.address, EPIDEMIC, JUSTIFICATION, when, True,
                                        basis=OVERRIDE)
    assert net.ledger.override_state(net.records.lab, 2).status is ReviewStatus.PENDING


def test_an_override_of_an_aggregate_is_not_identified(net: Net) -> None:
    """An anonymous aggregate has nobody to reach: the entry stays unidentified."""
    allow_overrides(net)
    net.attest(net.records.lab, net.records.lab_bob)
    rid = record_id("by-district")
    net.ledger.register_aggregate(net.health, rid, DISTRICT_STATS, commitment_of("by-district"),
                                  [net.records.lab, net.records.lab_bob])

    entry = override(net, net.police, rid)
    assert (entry.basis, entry.identified) == (LegalBasis.OVERRIDE, False)


# ---------------------------------------------------------------------- review


@pytest.mark.parametrize(("accepted", "status"), [(True, ReviewStatus.ACCEPTED), (False, ReviewStatus.REJECTED)])
def test_an_auditor_of_another_org_reviews_an_override(net: Net, accepted: bool, status: ReviewStatus) -> None:
    """The auditor's verdict and reason are announced and the override's state moves on."""
    allow_overrides(net)
    entry = override(net, net.police, net.records.contact)
    reason = "the call log confirms the emergency" if accepted else "no emergency: a routine check"
    when = net.next_time()

    receipt = net.ledger.review_override(net.auditor, net.records.contact, entry.seq, accepted, reason)

    [reviewed] = net.events(net.ledger.access.events.OverrideReviewed(), receipt)
    assert reviewed == {
        "record": net.records.contact, "seq": 1, "auditor": net.auditor.address, "accepted": accepted,
        "reason": reason, "reviewedAt": when,
    }
    state = net.ledger.override_state(net.records.contact, 1)
    assert (state.status, state.requester, state.review_due) == (status, net.police.address,
                                                                  entry.timestamp + REVIEW_PERIOD)


def test_an_override_is_reviewed_once(net: Net) -> None:
    """A second review, by the same or another auditor, is refused; the first verdict stands."""
    allow_overrides(net)
    override(net, net.police, net.records.contact)
    net.ledger.review_override(net.auditor, net.records.contact, 1, False, "not an emergency")

    error = review_refusal(net, net.auditor, net.records.contact, 1)
    assert (error.rule, error.rule_args) == ("AccessLedgerOverrideAlreadyReviewed", (hex32(net.records.contact), 1))
    assert net.ledger.override_state(net.records.contact, 1).status is ReviewStatus.REJECTED


def test_a_late_review_is_recorded(net: Net) -> None:
    """Past reviewDue the review is still taken, stamped with its own time for the audit to call late."""
    allow_overrides(net)
    entry = override(net, net.police, net.records.contact)
    due = entry.timestamp + REVIEW_PERIOD

    net.travel_to(due + DAY)
    receipt = net.ledger.review_override(net.auditor, net.records.contact, 1, True, "justified, reviewed late")

    [reviewed] = net.events(net.ledger.access.events.OverrideReviewed(), receipt)
    assert reviewed["reviewedAt"] == due + DAY
    assert net.ledger.override_state(net.records.contact, 1) == OverrideState(
        Address(net.police.address), entry.timestamp, due, ReviewStatus.ACCEPTED)


def test_only_overrides_are_reviewed(net: Net) -> None:
    """A consent access, a mandate access and an access that never happened are no overrides."""
    allow_overrides(net)
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, EPIDEMIC)
    net.grant(consent)
    net.access(net.transport, net.records.contact, EPIDEMIC, [consent])
    net.govern(gov.grant_mandate(net.transport.address, EPIDEMIC, [LAB_RESULT], net.next_time() + DAY,
                                 keccak(b"the act"), "https://laws.example/act"))
    net.ledger.request_access_under_mandate(net.transport, net.records.lab, EPIDEMIC, 1)

    for record, seq in [(net.records.contact, 1), (net.records.lab, 1), (net.records.lab, 2)]:
        error = review_refusal(net, net.auditor, record, seq)
        assert (error.rule, error.rule_args) == ("AccessLedgerNotAnOverride", (hex32(record), seq))
        assert net.ledger.override_state(record, seq).status is ReviewStatus.NONE


@pytest.mark.parametrize("reason", ["", "é" * 512 + "!", "x" * 2000])
def test_a_review_reason_must_be_1_to_1024_bytes(net: Net, reason: str) -> None:
    """An empty reason, or one longer than 1024 bytes (UTF-8), is refused with its length."""
    allow_overrides(net)
    override(net, net.police, net.records.contact)

    error = review_refusal(net, net.auditor, net.records.contact, 1, reason)
    assert (error.rule, error.rule_args) == ("AccessLedgerInvalidReviewReason", (len(reason.encode()),))


@pytest.mark.parametrize("reason", ["y", "é" * 512])
def test_a_review_reason_of_1_or_1024_bytes_is_taken(net: Net, reason: str) -> None:
    """The bounds themselves are allowed."""
    allow_overrides(net)
    override(net, net.police, net.records.contact)

    receipt = net.ledger.review_override(net.auditor, net.records.contact, 1, True, reason)
    [reviewed] = net.events(net.ledger.access.events.OverrideReviewed(), receipt)
    assert reviewed["reason"] == reason


def test_a_member_without_the_auditor_role_cannot_review(net: Net) -> None:
    """Transport is a requester, not an auditor; an outsider is not a member."""
    allow_overrides(net)
    override(net, net.police, net.records.contact)

    error = review_refusal(net, net.transport, net.records.contact, 1)
    assert (error.rule, rule_args(error)) == ("ConsortiumMissingRole", (net.transport.address, int(Role.AUDITOR)))
    error = review_refusal(net, net.outsider, net.records.contact, 1)
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMemberNotActive", (net.outsider.address, int(MemberStatus.NONE)))


def test_a_suspended_auditor_cannot_review(net: Net) -> None:
    """Only an ACTIVE auditor reviews."""
    allow_overrides(net)
    override(net, net.police, net.records.contact)
    net.suspend(net.auditor)

    error = review_refusal(net, net.auditor, net.records.contact, 1)
    assert (error.rule, rule_args(error)) == (
        "ConsortiumMemberNotActive", (net.auditor.address, int(MemberStatus.SUSPENDED)))


def test_an_auditor_of_the_overriding_org_cannot_review_it(net: Net) -> None:
    """Police holding the AUDITOR role too may not review its own override; the independent auditor may."""
    allow_overrides(net)
    net.govern(gov.set_roles(net.police.address, EMERGENCY_REQUESTER | Role.AUDITOR))
    override(net, net.police, net.records.contact)

    error = review_refusal(net, net.police, net.records.contact, 1)
    assert (error.rule, rule_args(error)) == (
        "AccessLedgerSelfReview", (hex32(net.records.contact), 1, net.police.address))
    net.ledger.review_override(net.auditor, net.records.contact, 1, True, "justified")


def test_the_overriding_orgs_rotated_signer_cannot_review_it(net: Net) -> None:
    """Rotating police's key does not make its own override someone else's to review."""
    allow_overrides(net)
    net.govern(gov.set_roles(net.police.address, EMERGENCY_REQUESTER | Role.AUDITOR))
    override(net, net.police, net.records.contact)
    net.govern(gov.rotate_signer(net.police.address, net.outsider.address))

    error = review_refusal(net, net.outsider, net.records.contact, 1)
    assert (error.rule, rule_args(error)) == (
        "AccessLedgerSelfReview", (hex32(net.records.contact), 1, net.outsider.address))


# ---------------------------------------------------------------------- the policy


def test_the_override_policy_reads_back_and_is_announced(net: Net) -> None:
    """SetOverridePolicy stores purposes, review period and rate, and OverridePolicyChanged carries them."""
    start = net.w3.eth.block_number + 1

    net.govern(gov.set_override_policy([EPIDEMIC, RESEARCH], REVIEW_PERIOD, 5, 7 * DAY))

    assert net.ledger.override_policy() == OverridePolicy((EPIDEMIC, RESEARCH), REVIEW_PERIOD, 5, 7 * DAY)
    assert net.events_since(net.ledger.consortium.events.OverridePolicyChanged(), start) == [{
        "purposes": (1 << EPIDEMIC) | (1 << RESEARCH), "reviewPeriod": REVIEW_PERIOD, "maxOverrides": 5,
        "rateWindow": 7 * DAY,
    }]


def test_clearing_the_policy_stops_overrides(net: Net) -> None:
    """An all-zero policy is valid and allows no override any more."""
    allow_overrides(net)
    override(net, net.police, net.records.contact)
    net.govern(gov.set_override_policy([], 0))

    error = refusal(net, net.police, net.records.contact)
    assert (error.rule, error.rule_args) == ("LegalBasesNotOverridePurpose", (EPIDEMIC,))


def test_the_review_period_in_force_at_the_override_sets_its_due_time(net: Net) -> None:
    """A later policy change does not move the due time of an override already recorded."""
    allow_overrides(net)
    entry = override(net, net.police, net.records.contact)
    net.govern(gov.set_override_policy([EPIDEMIC], DAY))

    assert net.ledger.override_state(net.records.contact, 1).review_due == entry.timestamp + REVIEW_PERIOD
    later = override(net, net.police, net.records.lab)
    assert net.ledger.override_state(net.records.lab, 1).review_due == later.timestamp + DAY


@pytest.mark.parametrize(("proposed", "reason"), [
    (raw_policy(1 | 1 << EPIDEMIC, REVIEW_PERIOD), "purpose bit 0 is unused"),
    (raw_policy(1 << 9, REVIEW_PERIOD), "unknown purpose"),
    (raw_policy(1 << EPIDEMIC, 0), "no review period"),
    (raw_policy(1 << EPIDEMIC, REVIEW_PERIOD, 5, 0), "no rate window"),
])
def test_an_unusable_override_policy_is_refused(net: Net, proposed: ProposedAction, reason: str) -> None:
    """Bit 0, an unknown purpose, purposes without a review period, a maximum without a window: refused."""
    error = refused(net, proposed)

    assert (error.rule, error.rule_args) == ("LegalBasesInvalidOverridePolicy", (reason,))
    assert net.ledger.override_policy() == OverridePolicy((), 0, 0, 0)


def test_a_review_period_over_a_year_is_refused(net: Net) -> None:
    """365 days is the longest review period; a longer one (up to uint40's end, which would make every
    override overflow) is refused."""
    net.govern(gov.set_override_policy([EPIDEMIC], 365 * DAY))
    assert net.ledger.override_policy().review_period == 365 * DAY

    for period in (365 * DAY + 1, 2**40 - 1):
        error = refused(net, gov.set_override_policy([EPIDEMIC], period))
        assert (error.rule, error.rule_args) == ("LegalBasesInvalidOverridePolicy", ("review period over 365 days",))
