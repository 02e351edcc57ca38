"""`consentledger override-policy` and `override`: the policy governed, overrides listed and reviewed on anvil."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from eth_utils import keccak

from consentledger import governance as gov
from consentledger.chain.node import ChainKind, start_node

from .legal_world import AUDITOR, DAY, EPIDEMIC, POLICE, RECORD, TRANSPORT, World, account, build_world

pytestmark = pytest.mark.process

RECORD_HEX = "0x" + RECORD.hex()
JUSTIFICATION = keccak(text="unconscious patient, contact of a confirmed case")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One anvil chain and governed deployment for the module."""
    with start_node(ChainKind.ANVIL, accounts=12) as node:
        yield build_world(node, tmp_path_factory.mktemp("overrides"))


@pytest.fixture
def chain(world: World) -> Iterator[World]:
    """The world as set up, rewound after the test."""
    yield world
    world.fresh()


def record_override(world: World) -> int:
    """Allow overrides for epidemic control (review within 3 days) and have transport record one; return its seq."""
    world.govern(gov.set_override_policy([EPIDEMIC], 3 * DAY))
    ledger = world.ledger()
    entry = ledger.request_access_override(ledger.sender(account(TRANSPORT)), RECORD, EPIDEMIC, JUSTIFICATION)
    return entry.seq


def test_policy_set_is_a_proposal_shown_readably_and_then_in_force(chain: World) -> None:
    """Purposes by name, durations in words: the proposal waits, is listed readably, and once approved is shown."""
    out = chain.ok("override-policy", "set", "--purposes", "epidemic-control", "--review-within", "72h",
                   "--max", "5", "--per", "30d", "--dev-account", "0")
    assert out.strip() == ("proposal 10: set_override_policy(purposes 1, review within 3d, at most 5 per 30d) — "
                           "waiting for approvals (1 of 2)")
    assert "no emergency override is allowed" in chain.ok("override-policy", "show")
    chain.ok("org", "approve", "10", "--dev-account", "1")
    assert json.loads(chain.ok("override-policy", "show", "--json")) == {
        "purposes": [1], "purpose_names": ["epidemic-control"], "review_period": 3 * DAY, "max_overrides": 5,
        "rate_window": 30 * DAY,
    }
    shown = chain.ok("override-policy", "show")
    assert "purposes      1 epidemic-control" in shown and "review within 3d (259200 s)" in shown
    assert "rate limit    5 per agency per 30d" in shown
    assert "set_override_policy(purposes 1, review within 3d, at most 5 per 30d)" in chain.ok("org", "proposals")


@pytest.mark.parametrize(("options", "code", "message"), [
    (("--purposes", "epidemic-control", "--review-within", "3d", "--max", "5"), 2, "--max needs --per"),
    (("--purposes", "epidemic-control"), 2, "give --review-within"),
    (("--purposes", "vital-interest", "--review-within", "3d"), 8, "no purpose 'vital-interest' in the catalog"),
    (("--purposes", "1", "--review-within", "soon"), 2, "bad duration 'soon'"),
])
def test_a_policy_the_chain_would_refuse_is_refused_before_sending(
    chain: World, options: tuple[str, ...], code: int, message: str
) -> None:
    """Each refusal is one line with its exit code, and no proposal was made."""
    before = chain.proposal_count()
    result = chain.cli("override-policy", "set", *options, "--dev-account", "0")
    assert result.returncode == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert chain.proposal_count() == before


def test_the_emergency_role_is_granted_by_name(chain: World) -> None:
    """`org propose set-roles` takes `emergency`; once approved the member lists with it."""
    police = account(POLICE).address
    out = chain.ok("org", "propose", "set-roles", "--account", police, "--roles", "requester,emergency",
                   "--dev-account", "0")
    assert f"proposal 10: set_roles({police}, requester,emergency) — waiting for approvals (1 of 2)" in out
    chain.ok("org", "approve", "10", "--dev-account", "1")
    row = next(line for line in chain.ok("org", "list").splitlines() if police in line)
    assert "requester,emergency" in row


def test_an_override_is_listed_pending_then_accepted_by_another_organisations_auditor(chain: World) -> None:
    """The list names the requester and the due time; the audit office accepts; it leaves the pending list."""
    seq = record_override(chain)
    (listed,) = json.loads(chain.ok("override", "list", "--json"))
    assert listed["record"] == RECORD_HEX and listed["seq"] == seq and listed["requester_name"] == "transport bureau"
    assert listed["status"] == "pending" and listed["marker"] is None and listed["review"] is None
    assert listed["review_due"] == listed["recorded_at"] + 3 * DAY
    assert listed["justification"] == "0x" + JUSTIFICATION.hex()
    assert json.loads(chain.ok("override", "list", "--pending", "--json")) == [listed]

    out = chain.ok("override", "review", "--record", RECORD_HEX, "--seq", str(seq), "--accept",
                   "--reason", "the patient's contacts were traced in time", "--dev-account", str(AUDITOR))
    assert out.startswith(f"override {seq} of record {RECORD_HEX}: accepted in tx 0x")
    (reviewed,) = json.loads(chain.ok("override", "list", "--json"))
    assert reviewed["status"] == "accepted" and reviewed["marker"] is None
    assert reviewed["review"]["auditor_name"] == "audit office"
    assert reviewed["review"]["reason"] == "the patient's contacts were traced in time"
    assert json.loads(chain.ok("override", "list", "--pending", "--json")) == []
    assert "no pending override" in chain.ok("override", "list", "--pending")
    row = next(line for line in chain.ok("override", "list").splitlines() if RECORD_HEX in line)
    assert "transport bureau" in row and "│ accepted │ audit office │" in row


def test_an_unreviewed_override_past_its_due_time_is_overdue_and_its_review_late(chain: World) -> None:
    """Four days on the override is marked overdue; a review is still recorded, and the list then says late."""
    seq = record_override(chain)
    chain.advance(4 * DAY)
    row = next(line for line in chain.ok("override", "list", "--pending").splitlines() if RECORD_HEX in line)
    assert "│ pending │ -" in row and "│ OVERDUE │" in row
    out = chain.ok("override", "review", "--record", RECORD_HEX, "--seq", str(seq), "--reject",
                   "--reason", "no emergency was declared", "--dev-account", str(AUDITOR))
    assert ": rejected (late: it was due at " in out
    (listed,) = json.loads(chain.ok("override", "list", "--json"))
    assert listed["status"] == "rejected" and listed["marker"] == "late"


@pytest.mark.parametrize(("reviewer", "seq", "message"), [
    (TRANSPORT, None, "AccessLedgerSelfReview(record={record}, seq=1, auditor={reviewer}): an auditor may not "
                      "review its own organisation's override"),
    (POLICE, None, "ConsortiumMissingRole(account={reviewer}, role=AUDITOR)"),
    (AUDITOR, 2, "AccessLedgerNotAnOverride(record={record}, seq=2): the access is not an emergency override"),
])
def test_the_chain_refuses_a_review_in_one_line_naming_the_rule(
    chain: World, reviewer: int, seq: int | None, message: str
) -> None:
    """Its own organisation, a non-auditor, or an access that is no override: exit 5 and the rule with its words."""
    recorded = record_override(chain)
    result = chain.cli("override", "review", "--record", RECORD_HEX, "--seq", str(seq or recorded), "--accept",
                       "--reason", "fine", "--dev-account", str(reviewer))
    assert result.returncode == 5, result.stderr
    expected = message.format(record=RECORD_HEX, reviewer=account(reviewer).address)
    assert result.stderr.strip() == f"error: {expected}"


def test_a_second_review_is_refused(chain: World) -> None:
    """Once reviewed, another review is AccessLedgerOverrideAlreadyReviewed, said in words."""
    seq = record_override(chain)
    chain.ok("override", "review", "--record", RECORD_HEX, "--seq", str(seq), "--accept", "--reason", "ok",
             "--dev-account", str(AUDITOR))
    again = chain.cli("override", "review", "--record", RECORD_HEX, "--seq", str(seq), "--reject", "--reason", "no",
                      "--dev-account", str(AUDITOR))
    assert again.returncode == 5
    assert again.stderr.strip() == (f"error: AccessLedgerOverrideAlreadyReviewed(record={RECORD_HEX}, seq={seq}): "
                                    "the override was reviewed already")


@pytest.mark.parametrize(("options", "message"), [
    (("--accept", "--reject", "--reason", "x"), "give exactly one of --accept and --reject"),
    (("--reason", "x"), "give exactly one of --accept and --reject"),
    (("--accept", "--reason", ""), "--reason must be 1 to 1024 bytes, got 0"),
    (("--accept", "--reason", "x" * 1025), "--reason must be 1 to 1024 bytes, got 1025"),
])
def test_a_malformed_review_is_refused_before_sending(chain: World, options: tuple[str, ...], message: str) -> None:
    """Both or neither verdict, an empty or too long reason: exit 2, one line."""
    result = chain.cli("override", "review", "--record", RECORD_HEX, "--seq", "1", *options,
                       "--dev-account", str(AUDITOR))
    assert (result.returncode, result.stderr.strip()) == (2, f"error: {message}")
