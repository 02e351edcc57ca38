"""Consortium: membership, roles and M-of-N governance on the in-process chain."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_abi import encode
from eth_utils import keccak

from consentledger import governance as gov
from consentledger.errors import ContractRevertError
from consentledger.governance import PAYLOAD_TYPES, ProposedAction
from consentledger.types import Action, MemberStatus, Role

from .world import CONTACT_TRACE, DAY, EPIDEMIC, VOTING_PERIOD, Net, rule_args


def admit_with_raw_roles(account: str, roles: int) -> ProposedAction:
    """Return an AdmitMember proposal with a roles byte the Python Role type would refuse."""
    types = list(PAYLOAD_TYPES[Action.ADMIT_MEMBER])
    return ProposedAction(Action.ADMIT_MEMBER, encode(types, [account, roles, "x", b"\0" * 32, ""]))


def open_access(net: Net) -> None:
    """Have transport read the OPEN stats record (needs only an active REQUESTER)."""
    net.access(net.transport, net.records.stats, EPIDEMIC)


# ---------------------------------------------------------------------- deployment and setup


def test_founding_admins_and_threshold_are_in_place(net: Net) -> None:
    """The constructor admits each founding admin as ACTIVE ADMIN and sets the 2-of-3 threshold."""
    ledger = net.ledger
    assert ledger.threshold() == 2
    assert ledger.consortium.functions.activeAdmins().call() == 3
    founders = [ledger.member(a.address) for a in net.cast.admins]
    assert [m.name for m in founders] == ["ministry", "city", "province"]
    assert all(m.roles == Role.ADMIN and m.status is MemberStatus.ACTIVE for m in founders)


def test_admitted_member_has_roles_keys_and_gateway(net: Net) -> None:
    """A member admitted by governance carries its roles, X25519 key and gateway URL."""
    health = net.ledger.member(net.health.address)
    assert health.roles == Role.CUSTODIAN
    assert health.status is MemberStatus.ACTIVE
    assert health.x25519_key == b"\x01" * 32
    assert health.gateway_url == "http://health"


def test_unknown_account_has_status_none(net: Net) -> None:
    """`member` of a never-admitted account reports status NONE and no roles."""
    outsider = net.ledger.member(net.outsider.address)
    assert outsider.status is MemberStatus.NONE
    assert outsider.roles == Role(0)


# ---------------------------------------------------------------------- proposals and approvals


def test_proposal_below_threshold_has_not_run(net: Net) -> None:
    """A 1-of-2 approved proposal is open and its action has not happened."""
    proposal, ran = net.ledger.propose(net.admin0, gov.suspend_member(net.transport.address))

    assert not ran
    state = net.ledger.proposal(proposal)
    assert (state.approvals, state.executed) == (1, False)
    assert net.ledger.member(net.transport.address).status is MemberStatus.ACTIVE


def test_execute_below_threshold_is_refused(net: Net) -> None:
    """`execute` of a proposal with fewer approvals than the threshold reverts."""
    proposal = net.propose(gov.suspend_member(net.transport.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.execute(net.admin2, proposal)
    assert e.value.rule == "ConsortiumThresholdNotReached"
    assert rule_args(e.value) == (proposal, 1, 2)


def test_second_approval_runs_the_proposal(net: Net) -> None:
    """The approval that reaches the threshold runs the action in the same transaction."""
    proposal = net.propose(gov.suspend_member(net.transport.address))

    assert net.ledger.approve(net.admin2, proposal)
    assert net.ledger.proposal(proposal).executed
    assert net.ledger.member(net.transport.address).status is MemberStatus.SUSPENDED


def test_execute_runs_a_proposal_once_the_threshold_fell(net: Net) -> None:
    """A proposal that has enough approvals after the threshold is lowered runs via `execute`."""
    pending = net.propose(gov.suspend_member(net.transport.address))
    net.govern(gov.set_threshold(1))

    net.ledger.execute(net.admin2, pending)

    assert net.ledger.proposal(pending).executed
    assert net.ledger.member(net.transport.address).status is MemberStatus.SUSPENDED


def test_approval_of_an_admin_suspended_since_no_longer_counts(net: Net) -> None:
    """Only ACTIVE admins' approvals count: a vote by an admin suspended since does not."""
    # Counting votes when cast would let admin2's vote stand and admin0 alone run the proposal.
    proposal, _ = net.ledger.propose(net.admin2, gov.suspend_member(net.transport.address))
    net.suspend(net.admin2)

    ran = net.ledger.approve(net.admin0, proposal)
    assert not ran
    assert net.ledger.member(net.transport.address).status is MemberStatus.ACTIVE


def test_admin_cannot_approve_twice(net: Net) -> None:
    """The proposer's approval is counted, so approving again is a double vote."""
    proposal = net.propose(gov.suspend_member(net.transport.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin0, proposal)
    assert e.value.rule == "ConsortiumAlreadyApproved"
    assert rule_args(e.value) == (proposal, net.admin0.address)


def test_requester_cannot_propose(net: Net) -> None:
    """An active member without the ADMIN role cannot propose."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.propose(net.transport, gov.set_threshold(1))
    assert e.value.rule == "ConsortiumMissingRole"
    assert rule_args(e.value) == (net.transport.address, int(Role.ADMIN))


def test_outsider_cannot_propose(net: Net) -> None:
    """An account that was never admitted cannot propose."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.propose(net.outsider, gov.set_threshold(1))
    assert e.value.rule == "ConsortiumMemberNotActive"
    assert rule_args(e.value) == (net.outsider.address, int(MemberStatus.NONE))


def test_non_admin_cannot_approve(net: Net) -> None:
    """Only admins approve: a requester's approval reverts."""
    proposal = net.propose(gov.set_threshold(1))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.police, proposal)
    assert e.value.rule == "ConsortiumMissingRole"


def test_approving_unknown_proposal_is_refused(net: Net) -> None:
    """Proposal ids start at 1 and end at the count; anything else is unknown."""
    count = net.ledger.consortium.functions.proposalCount().call()
    for proposal in (0, count + 1):
        with pytest.raises(ContractRevertError) as e:
            net.ledger.approve(net.admin1, proposal)
        assert e.value.rule == "ConsortiumUnknownProposal"


def test_proposal_can_be_approved_until_its_deadline(net: Net) -> None:
    """The last second of the voting period still accepts approvals."""
    proposal = net.propose(gov.suspend_member(net.transport.address))
    deadline = net.ledger.proposal(proposal).deadline
    assert deadline == net.now() + VOTING_PERIOD

    net.travel_to(deadline)
    assert net.ledger.approve(net.admin1, proposal)


def test_expired_proposal_cannot_be_approved(net: Net) -> None:
    """After the 7-day voting period the proposal can no longer be approved or executed."""
    proposal = net.propose(gov.suspend_member(net.transport.address))
    deadline = net.ledger.proposal(proposal).deadline

    net.travel_to(deadline + 1)
    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumProposalExpired"
    assert rule_args(e.value) == (proposal, deadline)
    with pytest.raises(ContractRevertError) as e:
        net.ledger.execute(net.admin1, proposal)
    assert e.value.rule == "ConsortiumProposalExpired"


def test_executed_proposal_cannot_be_approved_again(net: Net) -> None:
    """A third approval after the action ran is refused (an action runs once)."""
    proposal = net.govern(gov.suspend_member(net.transport.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin2, proposal)
    assert e.value.rule == "ConsortiumProposalExecuted"
    with pytest.raises(ContractRevertError) as e:
        net.ledger.execute(net.admin2, proposal)
    assert e.value.rule == "ConsortiumProposalExecuted"


def test_failing_action_leaves_the_proposal_open(net: Net) -> None:
    """When the action reverts, so does the approval that would have run it."""
    proposal = net.propose(gov.reinstate_member(net.transport.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidStatus"
    state = net.ledger.proposal(proposal)
    assert (state.approvals, state.executed) == (1, False)
    assert not net.ledger.has_approved(proposal, net.admin1.address)


def test_governance_emits_created_approved_and_executed(net: Net) -> None:
    """Propose and approve emit ProposalCreated, ProposalApproved (twice) and ProposalExecuted."""
    start = net.w3.eth.block_number + 1
    action = gov.suspend_member(net.transport.address)
    proposal = net.govern(action)

    events = net.ledger.consortium.events
    (created,) = net.events_since(events.ProposalCreated(), start)
    assert created["proposal"] == proposal
    assert created["action"] == Action.SUSPEND_MEMBER
    assert created["proposer"] == net.admin0.address
    assert created["payload"] == action.payload
    assert created["deadline"] == net.ledger.proposal(proposal).deadline
    approvals = net.events_since(events.ProposalApproved(), start)
    assert [(a["admin"], a["approvals"]) for a in approvals] == [
        (net.admin0.address, 1), (net.admin1.address, 2),
    ]
    (executed,) = net.events_since(events.ProposalExecuted(), start)
    assert (executed["proposal"], executed["action"]) == (proposal, Action.SUSPEND_MEMBER)


# ---------------------------------------------------------------------- threshold


def test_threshold_change_emits_threshold_changed(net: Net) -> None:
    """A SetThreshold proposal within 1..active admins takes effect and is announced."""
    start = net.w3.eth.block_number + 1
    net.govern(gov.set_threshold(3))

    assert net.ledger.threshold() == 3
    (changed,) = net.events_since(net.ledger.consortium.events.ThresholdChanged(), start)
    assert changed["threshold"] == 3


@pytest.mark.parametrize("threshold", [0, 4])
def test_threshold_outside_one_to_active_admins_is_refused(net: Net, threshold: int) -> None:
    """The threshold must be between 1 and the number of active admins (3)."""
    proposal = net.propose(gov.set_threshold(threshold))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidThreshold"
    assert rule_args(e.value) == (threshold, 3)
    assert net.ledger.threshold() == 2


def test_suspending_an_admin_below_the_threshold_is_refused(net: Net) -> None:
    """With 2 of 3 admins needed, suspending one is fine; suspending a second would leave 1."""
    net.suspend(net.admin2)
    assert net.ledger.consortium.functions.activeAdmins().call() == 2

    proposal = net.propose(gov.suspend_member(net.admin1.address))
    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidThreshold"
    assert rule_args(e.value) == (2, 1)
    assert net.ledger.member(net.admin1.address).status is MemberStatus.ACTIVE


def test_dropping_the_admin_role_below_the_threshold_is_refused(net: Net) -> None:
    """Taking ADMIN away counts like a suspension: it may not leave fewer admins than needed."""
    net.govern(gov.set_threshold(3))

    proposal = net.propose(gov.set_roles(net.admin2.address, Role.AUDITOR))
    net.ledger.approve(net.admin1, proposal)
    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin2, proposal)
    assert e.value.rule == "ConsortiumInvalidThreshold"
    assert rule_args(e.value) == (3, 2)


def test_suspended_admin_cannot_propose(net: Net) -> None:
    """A suspended admin has lost its voice in governance."""
    net.suspend(net.admin2)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.propose(net.admin2, gov.set_threshold(1))
    assert e.value.rule == "ConsortiumMemberNotActive"
    assert rule_args(e.value) == (net.admin2.address, int(MemberStatus.SUSPENDED))


# ---------------------------------------------------------------------- membership lifecycle


def test_admission_emits_member_admitted(net: Net) -> None:
    """Admitting a member stores it ACTIVE and emits MemberAdmitted with its profile."""
    start = net.w3.eth.block_number + 1
    net.govern(gov.admit_member(net.carol.address, Role.REQUESTER | Role.AUDITOR, "labs",
                                b"\x07" * 32, "http://labs"))

    (admitted,) = net.events_since(net.ledger.consortium.events.MemberAdmitted(), start)
    assert admitted == {
        "account": net.carol.address, "roles": int(Role.REQUESTER | Role.AUDITOR), "name": "labs",
        "x25519Key": b"\x07" * 32, "gatewayUrl": "http://labs",
    }
    member = net.ledger.member(net.carol.address)
    assert member.status is MemberStatus.ACTIVE
    assert member.since == net.now()
    assert net.carol.address in net.ledger.consortium.functions.members().call()


def test_admitting_a_member_twice_is_refused(net: Net) -> None:
    """An account that is already a member cannot be admitted again."""
    again = gov.admit_member(net.transport.address, Role.REQUESTER, "again")
    proposal = net.propose(again)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumAlreadyMember"
    assert rule_args(e.value) == (net.transport.address,)


def test_revoked_member_cannot_be_admitted_again(net: Net) -> None:
    """Revocation is final: re-admission under the same account is refused too."""
    net.govern(gov.revoke_member(net.transport.address))
    again = gov.admit_member(net.transport.address, Role.REQUESTER, "again")
    proposal = net.propose(again)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumAlreadyMember"


@pytest.mark.parametrize("roles", [0, 32, 0x80])
def test_admission_with_invalid_roles_is_refused(net: Net, roles: int) -> None:
    """Roles must be a non-empty subset of ADMIN|CUSTODIAN|REQUESTER|AUDITOR|EMERGENCY."""
    proposal = net.propose(admit_with_raw_roles(net.carol.address, roles))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidRoles"
    assert rule_args(e.value) == (roles,)


def test_admitting_the_zero_address_is_refused(net: Net) -> None:
    """The zero address can never be a member."""
    zero = admit_with_raw_roles("0x" + "00" * 20, int(Role.REQUESTER))
    proposal = net.propose(zero)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumZeroAddress"


@pytest.mark.parametrize("roles", [0, 32])
def test_set_roles_with_invalid_roles_is_refused(net: Net, roles: int) -> None:
    """SetRoles validates the mask like admission does."""
    types = list(PAYLOAD_TYPES[Action.SET_ROLES])
    action = ProposedAction(Action.SET_ROLES, encode(types, [net.police.address, roles]))
    proposal = net.propose(action)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidRoles"


def test_suspension_emits_member_status_changed(net: Net) -> None:
    """Suspend, reinstate and revoke each emit MemberStatusChanged with the new status."""
    start = net.w3.eth.block_number + 1
    net.suspend(net.transport)
    net.reinstate(net.transport)
    net.govern(gov.revoke_member(net.transport.address))

    changes = net.events_since(net.ledger.consortium.events.MemberStatusChanged(), start)
    assert [(c["account"], c["status"]) for c in changes] == [
        (net.transport.address, MemberStatus.SUSPENDED),
        (net.transport.address, MemberStatus.ACTIVE),
        (net.transport.address, MemberStatus.REVOKED),
    ]


def test_suspended_requester_cannot_access(net: Net) -> None:
    """A suspended member can do nothing: its access reverts naming its status."""
    net.suspend(net.transport)

    with pytest.raises(ContractRevertError) as e:
        open_access(net)
    assert e.value.rule == "ConsortiumMemberNotActive"
    assert rule_args(e.value) == (net.transport.address, int(MemberStatus.SUSPENDED))


def test_reinstated_member_can_act_again(net: Net) -> None:
    """Reinstating a suspended requester restores its access."""
    net.suspend(net.transport)
    net.reinstate(net.transport)

    open_access(net)
    assert net.ledger.member(net.transport.address).status is MemberStatus.ACTIVE


def test_revoked_member_cannot_be_reinstated(net: Net) -> None:
    """Revocation is final: a ReinstateMember proposal for a revoked member cannot run."""
    net.govern(gov.revoke_member(net.transport.address))
    proposal = net.propose(gov.reinstate_member(net.transport.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidStatus"
    assert rule_args(e.value) == (net.transport.address, int(MemberStatus.REVOKED))
    with pytest.raises(ContractRevertError) as e:
        open_access(net)
    assert e.value.rule == "ConsortiumMemberNotActive"
    assert rule_args(e.value) == (net.transport.address, int(MemberStatus.REVOKED))


def test_suspended_member_can_be_revoked(net: Net) -> None:
    """Revoke works from SUSPENDED as well as from ACTIVE."""
    net.suspend(net.transport)
    net.govern(gov.revoke_member(net.transport.address))

    assert net.ledger.member(net.transport.address).status is MemberStatus.REVOKED


@pytest.mark.parametrize(
    ("make", "status"),
    [(gov.suspend_member, MemberStatus.SUSPENDED), (gov.revoke_member, MemberStatus.REVOKED)],
)
def test_status_move_from_the_wrong_status_is_refused(
    net: Net, make: Callable[[str], ProposedAction], status: MemberStatus
) -> None:
    """Suspending a suspended member, or revoking a revoked one, cannot run."""
    net.govern(make(net.transport.address))
    proposal = net.propose(make(net.transport.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidStatus"
    assert rule_args(e.value) == (net.transport.address, int(status))


def test_suspending_an_unknown_account_is_refused(net: Net) -> None:
    """Only members have a status to move."""
    proposal = net.propose(gov.suspend_member(net.outsider.address))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "ConsortiumInvalidStatus"
    assert rule_args(e.value) == (net.outsider.address, int(MemberStatus.NONE))


# ---------------------------------------------------------------------- roles


def test_custodian_cannot_request_access(net: Net) -> None:
    """Requesting access needs the REQUESTER role; a custodian lacks it."""
    with pytest.raises(ContractRevertError) as e:
        net.access(net.health, net.records.stats, EPIDEMIC)
    assert e.value.rule == "ConsortiumMissingRole"
    assert rule_args(e.value) == (net.health.address, int(Role.REQUESTER))


def test_requester_cannot_register_a_record(net: Net) -> None:
    """Registering a record needs the CUSTODIAN role; a requester lacks it."""
    with pytest.raises(ContractRevertError) as e:
        net.register("by-transport", net.alice, CONTACT_TRACE, custodian=net.transport)
    assert e.value.rule == "ConsortiumMissingRole"
    assert rule_args(e.value) == (net.transport.address, int(Role.CUSTODIAN))


def test_set_roles_takes_effect_and_emits_member_roles_changed(net: Net) -> None:
    """Taking REQUESTER away from police stops its accesses; the change is announced."""
    start = net.w3.eth.block_number + 1
    net.govern(gov.set_roles(net.police.address, Role.AUDITOR))

    (changed,) = net.events_since(net.ledger.consortium.events.MemberRolesChanged(), start)
    assert changed == {"account": net.police.address, "roles": int(Role.AUDITOR)}
    with pytest.raises(ContractRevertError) as e:
        net.access(net.police, net.records.stats, EPIDEMIC)
    assert e.value.rule == "ConsortiumMissingRole"


def test_member_keys_change_emits_member_keys_changed(net: Net) -> None:
    """SetMemberKeys replaces the X25519 key and gateway URL and announces them."""
    start = net.w3.eth.block_number + 1
    key = keccak(text="new x25519 key")
    net.govern(gov.set_member_keys(net.health.address, key, "https://health.example"))

    (changed,) = net.events_since(net.ledger.consortium.events.MemberKeysChanged(), start)
    assert changed == {
        "account": net.health.address, "x25519Key": key, "gatewayUrl": "https://health.example",
    }
    health = net.ledger.member(net.health.address)
    assert (health.x25519_key, health.gateway_url) == (key, "https://health.example")


def test_voting_period_is_seven_days(net: Net) -> None:
    """The contract's VOTING_PERIOD constant is the 7 days the tests rely on."""
    assert net.ledger.consortium.functions.VOTING_PERIOD().call() == 7 * DAY
