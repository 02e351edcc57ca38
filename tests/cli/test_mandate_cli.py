"""`consentledger mandate`: statutory mandates proposed, granted, listed, revoked and checked by the CLI on anvil."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import keccak

from consentledger import governance as gov
from consentledger.chain.node import ChainKind, start_node

from .legal_world import DAY, EPIDEMIC, LAB_RESULT, POLICE, RESEARCH, World, account, build_world

pytestmark = pytest.mark.process

LAW = b"Epidemic Control Act, section 12: the police may trace contacts during a declared epidemic.\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One anvil chain and governed deployment for the module."""
    with start_node(ChainKind.ANVIL, accounts=12) as node:
        yield build_world(node, tmp_path_factory.mktemp("mandates"))


@pytest.fixture
def chain(world: World) -> Iterator[World]:
    """The world as set up, rewound after the test."""
    yield world
    world.fresh()


@pytest.fixture
def law(tmp_path: Path) -> Path:
    """A legal text on disk."""
    path = tmp_path / "act.txt"
    path.write_bytes(LAW)
    return path


def grant(world: World, *, purpose: int = EPIDEMIC, categories: tuple[int, ...] = (1, 2), valid_for: int = 30 * DAY,
          valid_until: int | None = None) -> None:
    """Grant police a mandate through governance (not the CLI under test)."""
    until = valid_until if valid_until is not None else world.now() + valid_for
    world.govern(gov.grant_mandate(account(POLICE).address, purpose, categories, until, keccak(LAW), "https://law/eca"))


def test_proposal_by_names_waits_for_a_second_admin_then_the_mandate_is_in_force(chain: World, law: Path) -> None:
    """Names resolve to ids, the text file is hashed, the proposal waits at 1 of 2 and is listed readably; once
    approved the mandate is in force with the law's keccak256 and its URI."""
    out = chain.ok("mandate", "propose", "--institution", "police", "--purpose", "epidemic-control",
                   "--categories", "contact-trace,lab-result", "--valid-until", "+30d", "--legal-text", str(law),
                   "--legal-uri", "https://law.example/eca#12", "--dev-account", "0")
    police = account(POLICE).address
    assert out.startswith(f"proposal 10: grant_mandate({police}, purpose 1, categories 1,2, until ")
    assert f"identified, legal text 0x{keccak(LAW).hex()} 'https://law.example/eca#12') — waiting for approvals " \
           "(1 of 2)" in out
    assert chain.ledger().mandates() == []
    assert "executed" in chain.ok("org", "approve", "10", "--dev-account", "1")

    (listed,) = json.loads(chain.ok("mandate", "list", "--json"))
    assert listed["institution"] == police and listed["institution_name"] == "police"
    assert listed["purpose_name"] == "epidemic-control" and listed["categories"] == [1, 2]
    assert listed["category_names"] == ["contact-trace", "lab-result"]
    assert listed["state"] == "in force" and listed["identified"] is True and listed["revoked"] is False
    assert listed["legal_text_hash"] == "0x" + keccak(LAW).hex()
    assert abs(listed["valid_until"] - (chain.now() + 30 * DAY)) < 120
    table = chain.ok("mandate", "list")
    row = next(line for line in table.splitlines() if "police" in line)
    assert "epidemic-control" in row and "contact-trace,lab-result" in row and "in force" in row
    shown = chain.ok("mandate", "show", "1")
    assert "published at  https://law.example/eca#12" in shown and f"legal text    0x{keccak(LAW).hex()}" in shown
    assert json.loads(chain.ok("mandate", "show", "1", "--json")) == listed
    proposals = chain.ok("org", "proposals")
    assert "grant_mandate(" in proposals and "purpose 1, categories 1,2" in proposals


def test_with_a_threshold_of_one_the_proposal_executes_at_once(chain: World) -> None:
    """A 1-of-3 consortium grants at once; --legal-text-hash and --not-identified go on chain as given."""
    chain.govern(gov.set_threshold(1))
    digest = "0x" + "ab" * 32
    out = chain.ok("mandate", "propose", "--institution", account(POLICE).address, "--purpose", "1",
                   "--categories", "2", "--valid-until", "2099-01-01", "--legal-text-hash", digest,
                   "--legal-uri", "https://law/x", "--not-identified", "--dev-account", "2")
    assert "until 2099-01-01T00:00:00+00:00, not identified" in out and out.rstrip().endswith("— executed")
    shown = json.loads(chain.ok("mandate", "show", "1", "--json"))
    assert shown["identified"] is False and shown["legal_text_hash"] == digest and shown["categories"] == [2]


@pytest.mark.parametrize(("options", "code", "message"), [
    (("--purpose", "research", "--categories", "lab-result", "--valid-until", "+20d"), 13,
     "after purpose 2 (research) ends at"),
    (("--purpose", "research", "--categories", "contact-trace,lab-result", "--valid-until", "+5d"), 13,
     "category 1 (contact-trace) may not be used for purpose 2 (research) (LegalBasesInvalidMandate"),
    (("--institution", "library"), 13, "library is no requester (roles custodian): a mandate needs one"),
    (("--valid-until", "2001-01-01"), 13, "(LegalBasesInvalidMandate: ends in the past)"),
    (("--institution", "fire brigade"), 8, "no member 'fire brigade'; the members: ministry A,"),
    (("--categories", "contact-trace,dna"), 8, "no category 'dna' in the catalog; its categories: 1 contact-trace"),
    (("--purpose", "marketing"), 8, "no purpose 'marketing' in the catalog; its purposes: 1 epidemic-control"),
    (("--valid-until", "next tuesday"), 2, "bad time 'next tuesday'"),
    (("--legal-text-hash", "0x" + "11" * 32), 2, "give either --legal-text FILE or --legal-text-hash"),
    (("--legal-text-hash", "0x1234", "--legal-text", None), 2, "--legal-text-hash must be a non-zero 32-byte hash"),
])
def test_terms_the_chain_would_refuse_are_refused_before_anything_is_sent(
    chain: World, law: Path, options: tuple[str | None, ...], code: int, message: str
) -> None:
    """Each refusal is one line with its exit code, and no proposal was made."""
    given = dict(zip(options[::2], options[1::2], strict=True))
    terms = {"--institution": "police", "--purpose": "epidemic-control", "--categories": "contact-trace",
             "--valid-until": "+10d", "--legal-text": str(law), **given}
    args = [item for key, value in terms.items() if value is not None for item in (key, value)]
    before = chain.proposal_count()
    result = chain.cli("mandate", "propose", *args, "--legal-uri", "https://law/x", "--dev-account", "0")
    assert result.returncode == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert chain.proposal_count() == before


def test_revoke_is_a_proposal_and_a_revoked_mandate_cannot_be_revoked_again(chain: World) -> None:
    """Revoking waits for a second admin, the list then says revoked; again, or an unknown id, is refused."""
    grant(chain)
    assert "revoke_mandate(mandate 1) — waiting for approvals (1 of 2)" in chain.ok(
        "mandate", "revoke", "1", "--dev-account", "0")
    chain.ok("org", "approve", "11", "--dev-account", "2")
    assert json.loads(chain.ok("mandate", "list", "--json"))[0]["state"] == "revoked"
    again = chain.cli("mandate", "revoke", "1", "--dev-account", "0")
    assert again.returncode == 13
    assert again.stderr.strip() == "error: mandate 1 was revoked already (LegalBasesMandateRevoked)"
    unknown = chain.cli("mandate", "show", "7")
    assert (unknown.returncode, unknown.stderr.strip()) == (8, "error: no mandate 7: 1 granted so far")


def test_states_follow_the_chain_clock_expired_and_purpose_ended(chain: World) -> None:
    """A mandate past its end is expired; one whose purpose reached its sunset first says purpose ended."""
    grant(chain, valid_for=DAY)
    grant(chain, purpose=RESEARCH, categories=(LAB_RESULT,), valid_until=chain.research_sunset)
    chain.govern(gov.set_purpose_sunset(RESEARCH, chain.now() + 2 * DAY))
    assert [m["state"] for m in json.loads(chain.ok("mandate", "list", "--json"))] == ["in force", "in force"]
    chain.advance(3 * DAY)
    assert [m["state"] for m in json.loads(chain.ok("mandate", "list", "--json"))] == ["expired", "purpose ended"]


def test_check_text_tells_the_cited_text_from_an_altered_copy(chain: World, law: Path, tmp_path: Path) -> None:
    """The file the mandate cites exits 0; a copy with one word changed exits 9 naming both hashes."""
    grant(chain)
    assert f"is the legal text of mandate 1 (keccak256 0x{keccak(LAW).hex()})" in chain.ok(
        "mandate", "check-text", "1", str(law))
    altered = tmp_path / "altered.txt"
    altered.write_bytes(LAW.replace(b"police", b"mayor"))
    result = chain.cli("mandate", "check-text", "1", str(altered))
    assert result.returncode == 9
    assert result.stderr.strip() == (f"error: {altered} is not the legal text of mandate 1: it hashes to "
                                     f"0x{keccak(altered.read_bytes()).hex()}, the mandate cites 0x{keccak(LAW).hex()}")
    missing = chain.cli("mandate", "check-text", "1", str(tmp_path / "nowhere.txt"))
    assert missing.returncode == 2 and "cannot read the legal text" in missing.stderr
