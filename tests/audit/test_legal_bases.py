"""The audit knows the legal bases beside consent: statutory mandates and emergency overrides, on a real chain.

The module's world adds to the audit world: transport holds EMERGENCY, overrides are allowed for
epidemic control (review within an hour, at most two per agency per day), police holds mandate 1
(lab results and contact traces for epidemic control, identifying fields withheld) and accessed
alice's lab result under it; mandate 2 was granted to police and revoked; transport broke the glass
on bob's contact trace and police (an auditor of another organisation) accepted the override.
Tests that move the chain (time, more overrides) run inside an evm snapshot and revert it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from sqlalchemy import Engine, delete, update

from consentledger import audit
from consentledger import governance as gov
from consentledger.audit import tables as t
from consentledger.audit.bases import mandate_lines, override_lines
from consentledger.audit.checks import DiscrepancyKind as Kind
from consentledger.audit.processing import processing_record
from consentledger.audit.trace import parse_basis
from consentledger.errors import ConfigurationError
from consentledger.types import AccessEntry, LegalBasis, ReviewStatus, Role

from .test_audit_cli import run_cli
from .world import CONTACT, DAY, EPIDEMIC, LAB, World, assert_same_index, hexid, rows

pytestmark = pytest.mark.process

REVIEW_PERIOD = 3600
MAX_OVERRIDES = 2
LAW_URI = "https://law.example/epidemic-act/section-12"
JUSTIFICATION = keccak(text="bob collapsed at the station; his contacts must be reached")


class Bases:
    """The world with its legal bases, and the two accesses made under them."""

    def __init__(self, world: World) -> None:
        self.world = world
        world.govern(
            gov.set_roles(world.transport.address, Role.REQUESTER | Role.EMERGENCY),
            gov.set_override_policy([EPIDEMIC], REVIEW_PERIOD, MAX_OVERRIDES, DAY),
            gov.grant_mandate(world.police.address, EPIDEMIC, [LAB, CONTACT], world.now() + 30 * DAY,
                              keccak(text="epidemic act, section 12"), LAW_URI, identified=False),
            gov.grant_mandate(world.police.address, EPIDEMIC, [LAB], world.now() + 30 * DAY,
                              keccak(text="repealed act"), "https://law.example/repealed"),
            gov.revoke_mandate(2),
        )
        ledger = world.ledger()
        self.mandated = ledger.request_access_under_mandate(
            ledger.sender(world.police), world.records["lab-alice"], EPIDEMIC, 1)
        self.overridden = self.override("contact-bob")
        self.review(self.overridden, accepted=True)

    def override(self, record: str) -> AccessEntry:
        """Have transport break the glass on the named record for epidemic control."""
        ledger = self.world.ledger()
        return ledger.request_access_override(
            ledger.sender(self.world.transport), self.world.records[record], EPIDEMIC, JUSTIFICATION)

    def review(self, entry: AccessEntry, *, accepted: bool) -> None:
        """Have police (an auditor of another organisation) review the override `entry`."""
        ledger = self.world.ledger()
        ledger.review_override(ledger.sender(self.world.police), entry.record, entry.seq, accepted,
                               "vital interest documented" if accepted else "no vital interest")


@pytest.fixture(scope="module")
def bases(world: World) -> Bases:
    """The module's world with mandates, an override policy, a mandate access and a reviewed override."""
    return Bases(world)


@pytest.fixture
def moved(bases: Bases) -> Iterator[Bases]:
    """The world inside an evm snapshot: whatever the test adds to the chain is reverted after it."""
    snapshot = bases.world.w3.testing.snapshot()
    try:
        yield bases
    finally:
        bases.world.w3.testing.revert(snapshot)


@pytest.fixture
def indexed(bases: Bases, sqlite_engine: Engine) -> Engine:
    """The world indexed into a SQLite file, ready to be tampered with."""
    audit.Indexer(sqlite_engine, bases.world.ledger()).sync()
    return sqlite_engine


def sync_and_verify(bases: Bases, engine: Engine) -> audit.VerifyReport:
    """Bring the index up to the chain and verify it."""
    audit.Indexer(engine, bases.world.ledger()).sync()
    return audit.verify(engine, bases.world.ledger())


def findings(report: audit.VerifyReport) -> set[tuple[Kind, str | None, int | None]]:
    """Return (kind, record, seq) of every discrepancy."""
    return {(d.kind, d.record, d.seq) for d in report.discrepancies}


def where(entry: AccessEntry) -> tuple[str, int]:
    """Return (record, seq) of an entry as the index names them."""
    return hexid(entry.record), entry.seq


# ---------------------------------------------------------------------- the index


def test_mandates_policies_and_overrides_are_indexed_on_both_backends(bases: Bases, engine: Engine) -> None:
    """idx_mandates holds both mandates (the second revoked), idx_override_policies the policy, idx_overrides the
    override with its review; the accesses carry their basis; and the whole index verifies clean."""
    report = sync_and_verify(bases, engine)
    assert report.ok, [d.line() for d in report.discrepancies]
    mandates = rows(engine, t.mandates)
    assert [(m["id"], m["institution"], m["purpose"], m["categories"], m["identified"]) for m in mandates] == [
        (1, bases.world.police.address, EPIDEMIC, [LAB, CONTACT], False),
        (2, bases.world.police.address, EPIDEMIC, [LAB], True),
    ]
    assert mandates[0]["legal_text_uri"] == LAW_URI and mandates[0]["revoked_block"] is None
    assert mandates[0]["ref"] == "0x" + (1).to_bytes(32, "big").hex()
    assert mandates[1]["revoked_block"] is not None and mandates[1]["revoked_tx"].startswith("0x")
    (policy,) = rows(engine, t.override_policies)
    assert (policy["purposes"], policy["review_period"], policy["max_overrides"], policy["rate_window"]) == (
        [EPIDEMIC], REVIEW_PERIOD, MAX_OVERRIDES, DAY)
    (override,) = rows(engine, t.overrides)
    record, seq = where(bases.overridden)
    assert (override["record"], override["seq"], override["requester"]) == (record, seq, bases.world.transport.address)
    assert override["justification"] == hexid(JUSTIFICATION)
    assert override["review_due"] == override["recorded_at"] + REVIEW_PERIOD
    assert (override["reviewed_by"], override["accepted"]) == (bases.world.police.address, True)
    assert override["reason"] == "vital interest documented" and override["reviewed_at"] <= override["review_due"]


def test_a_reorg_drops_orphaned_mandates_overrides_and_reviews(moved: Bases, engine: Engine,
                                                               sqlite_engine: Engine) -> None:
    """Blocks a reorg replaced take their mandate grant, override and review out of the index with them."""
    world = moved.world
    indexer = audit.Indexer(engine, world.ledger())
    indexer.sync()
    snapshot = world.w3.testing.snapshot()
    try:
        world.govern(gov.grant_mandate(world.transport.address, EPIDEMIC, [LAB], world.now() + DAY,
                                       keccak(text="orphan act"), "https://law.example/orphan"),
                     gov.set_override_policy([EPIDEMIC], 2 * REVIEW_PERIOD))
        moved.review(moved.override("contact-alice"), accepted=False)
        indexer.sync()
        assert len(rows(engine, t.mandates)) == 3 and len(rows(engine, t.overrides)) == 2
        assert len(rows(engine, t.override_policies)) == 2
    finally:
        world.w3.testing.revert(snapshot)
    world.advance(1)  # a block where there were several

    result = indexer.sync()
    assert result.rolled_back_from is not None
    assert len(rows(engine, t.mandates)) == 2 and len(rows(engine, t.override_policies)) == 1
    (override,) = rows(engine, t.overrides)
    assert (override["record"], override["seq"]) == where(moved.overridden)
    audit.Indexer(sqlite_engine, world.ledger()).sync()
    assert_same_index(engine, sqlite_engine)
    assert audit.verify(engine, world.ledger()).ok


# ---------------------------------------------------------------------- verify


def test_an_unreviewed_override_past_its_due_time_is_flagged(moved: Bases, sqlite_engine: Engine) -> None:
    """An override nobody reviewed is fine until its review is due, then `override_unreviewed`."""
    pending = moved.override("contact-alice")
    assert sync_and_verify(moved, sqlite_engine).ok
    moved.world.advance(REVIEW_PERIOD + 60)
    report = sync_and_verify(moved, sqlite_engine)
    assert findings(report) == {(Kind.OVERRIDE_UNREVIEWED, *where(pending))}
    (finding,) = report.discrepancies
    assert finding.tx_hash == "0x" + pending.tx_hash.hex() and "still unreviewed" in finding.message
    (waiting,) = override_lines(sqlite_engine, pending=True)
    assert (waiting.record, waiting.seq, waiting.status) == (*where(pending), ReviewStatus.PENDING)
    assert waiting.late_by >= 60 and waiting.lateness().startswith("overdue by ")


def test_a_review_after_the_due_time_is_flagged_late(moved: Bases, sqlite_engine: Engine) -> None:
    """A review recorded after the due time stands on chain, and verify reports it as `override_reviewed_late`."""
    late = moved.override("contact-alice")
    moved.world.advance(REVIEW_PERIOD + 60)
    moved.review(late, accepted=False)
    report = sync_and_verify(moved, sqlite_engine)
    assert findings(report) == {(Kind.OVERRIDE_REVIEWED_LATE, *where(late))}
    assert "late" in report.discrepancies[0].message
    reviewed = {(o.record, o.seq): o for o in override_lines(sqlite_engine)}
    assert reviewed[where(late)].status is ReviewStatus.REJECTED and reviewed[where(late)].late_by >= 60
    assert reviewed[where(moved.overridden)].lateness() == "on time"
    assert override_lines(sqlite_engine, pending=True) == []


def test_overrides_above_the_policy_rate_are_flagged(moved: Bases, sqlite_engine: Engine) -> None:
    """Transport's third override within a day, with two allowed, is `override_rate_exceeded` (that one only)."""
    second = moved.override("contact-alice")
    assert sync_and_verify(moved, sqlite_engine).ok
    third = moved.override("lab-alice")
    report = sync_and_verify(moved, sqlite_engine)
    assert findings(report) == {(Kind.OVERRIDE_RATE_EXCEEDED, *where(third))}
    assert f"recorded 3 emergency overrides within {DAY} s" in report.discrepancies[0].message
    assert where(second) not in {(d.record, d.seq) for d in report.discrepancies}


def test_a_tampered_mandate_access_breaks_its_entry_hash(bases: Bases, indexed: Engine) -> None:
    """Marking the mandate access identified breaks its hash and contradicts the mandate's flag."""
    record, seq = where(bases.mandated)
    with indexed.begin() as conn:
        conn.execute(update(t.accesses).where(t.accesses.c.record == record, t.accesses.c.seq == seq)
                     .values(identified=True))
    report = audit.verify(indexed, bases.world.ledger())
    assert findings(report) == {
        (Kind.ENTRY_HASH_MISMATCH, record, seq), (Kind.IDENTIFIED_MISMATCH, record, seq),
        (Kind.HEAD_MISMATCH, record, None),
    }
    mismatch = next(d for d in report.discrepancies if d.kind is Kind.IDENTIFIED_MISMATCH)
    assert "statutory mandate 1 does not allow identified access" in mismatch.message


def test_an_access_naming_no_granted_mandate_is_flagged(bases: Bases, indexed: Engine) -> None:
    """Without mandate 1 in the index, its access names an unknown mandate."""
    with indexed.begin() as conn:
        conn.execute(delete(t.mandates).where(t.mandates.c.id == 1))
    report = audit.verify(indexed, bases.world.ledger())
    assert findings(report) == {(Kind.MANDATE_UNKNOWN, *where(bases.mandated))}
    assert "statutory mandate 1, which was never granted" in report.discrepancies[0].message


@pytest.mark.parametrize(("change", "why"), [
    ({"institution": "0x" + "11" * 20}, "it was granted to 0x1111"),
    ({"purpose": 2}, "it is for purpose 2, the access was for purpose 1"),
    ({"categories": [CONTACT]}, f"it covers categories [{CONTACT}], not category {LAB}"),
    ({"valid_until": 1}, "it ended at 1970-01-01T00:00:01+00:00"),
    ({"revoked_block": 1, "revoked_log_index": 0}, "governance revoked it at block 1"),
])
def test_an_access_outside_its_mandate_is_flagged(bases: Bases, indexed: Engine, change: dict[str, Any],
                                                 why: str) -> None:
    """Another institution, purpose or category, after the end or after revocation: `mandate_out_of_scope`."""
    with indexed.begin() as conn:
        conn.execute(update(t.mandates).where(t.mandates.c.id == 1).values(**change))
    report = audit.verify(indexed, bases.world.ledger())
    assert findings(report) == {(Kind.MANDATE_OUT_OF_SCOPE, *where(bases.mandated))}
    assert why in report.discrepancies[0].message


def test_an_override_by_a_requester_without_emergency_is_flagged(bases: Bases, indexed: Engine) -> None:
    """Replayed without the change of roles that gave transport EMERGENCY, its override lacks the role."""
    e = t.events.c
    with indexed.begin() as conn:
        conn.execute(delete(t.events).where(e.name == "MemberRolesChanged",
                                            e.block == _roles_block(indexed, bases.world.transport.address)))
    report = audit.verify(indexed, bases.world.ledger())
    assert findings(report) == {(Kind.MISSING_EMERGENCY_ROLE, *where(bases.overridden))}
    assert "holding roles requester, without EMERGENCY" in report.discrepancies[0].message


def _roles_block(engine: Engine, account: str) -> int:
    changes = [r for r in rows(engine, t.events, "block", "log_index")
               if r["name"] == "MemberRolesChanged" and r["args"]["account"] == account]
    return int(changes[-1]["block"])


# ---------------------------------------------------------------------- words


def test_trace_names_each_basis_and_filters_by_it(bases: Bases, engine: Engine) -> None:
    """Trace lines say "mandate 1" or "override" and, for the subject, in words; --basis keeps one basis."""
    audit.Indexer(engine, bases.world.ledger()).sync()
    (mandated,) = audit.trace(engine, basis="mandate")
    assert (mandated.record, mandated.seq) == where(bases.mandated)
    assert mandated.basis_label() == "mandate 1" and mandated.mandate_uri == LAW_URI
    assert mandated.basis_words() == f"accessed under statutory mandate 1 ({LAW_URI})"
    assert mandated.to_json()["mandate"] == 1 and mandated.to_json()["basis"] == "mandate"
    (overridden,) = audit.trace(engine, basis=LegalBasis.OVERRIDE)
    assert overridden.basis_label() == "override" and overridden.review is ReviewStatus.ACCEPTED
    assert overridden.basis_words() == "emergency override (review: accepted)"
    consented = audit.trace(engine, basis="consent")
    assert len(consented) + 2 == len(audit.trace(engine))
    assert {line.basis for line in consented} == {LegalBasis.CONSENT} and all(line.review is None for line in consented)
    with pytest.raises(ConfigurationError, match="unknown legal basis 'statute'"):
        parse_basis("statute")


def test_mandates_and_overrides_are_listed_with_accesses_and_review(bases: Bases, engine: Engine) -> None:
    """Mandate 1 counts its one access and is in force, mandate 2 is revoked; the override is accepted on time."""
    audit.Indexer(engine, bases.world.ledger()).sync()
    first, second = mandate_lines(engine)
    assert (first.id, first.accesses, first.state, first.institution_name) == (1, 1, "in force", "police")
    assert (second.id, second.accesses, second.state) == (2, 0, "revoked")
    (override,) = override_lines(engine)
    assert (override.status, override.reviewer_name, override.late_by) == (ReviewStatus.ACCEPTED, "police", 0)
    assert override.to_json()["status"] == "accepted" and override.purpose_name == "epidemic-control"


def test_processing_records_count_mandate_and_override_accesses(bases: Bases, engine: Engine) -> None:
    """The custodian's lab results and contact traces, and each requester's receipts, name their bases."""
    audit.Indexer(engine, bases.world.ledger()).sync()
    held = {h.category.id: h for h in processing_record(engine, "health bureau").held}
    assert held[LAB].legal_bases == {"consent": 3, "mandate": 1}
    assert held[CONTACT].legal_bases["override"] == 1
    police = {(r.purpose, r.category.id): r for r in processing_record(engine, "police").received}
    assert police[(EPIDEMIC, LAB)].legal_bases == {"mandate": 1}
    assert police[(EPIDEMIC, LAB)].identified == 0
    transport = {(r.purpose, r.category.id): r for r in processing_record(engine, "transport bureau").received}
    assert transport[(EPIDEMIC, CONTACT)].legal_bases["override"] == 1


# ---------------------------------------------------------------------- the commands


@pytest.fixture
def workdir(bases: Bases, tmp_path: Path) -> Path:
    """A directory holding the world's deployment manifest."""
    bases.world.deployment.save(tmp_path / "deployment.json")
    return tmp_path


def test_the_commands_list_mandates_and_overrides_and_verify_prints_json(bases: Bases, workdir: Path) -> None:
    """`audit mandates`, `audit overrides`, `audit trace --basis`, `audit verify --json` and `audit report`."""
    rpc = ("--rpc", bases.world.rpc_url)
    listed = run_cli("audit", "mandates", "--json", *rpc, cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    assert [(m["id"], m["accesses"], m["state"]) for m in json.loads(listed.stdout)] == [
        (1, 1, "in force"), (2, 0, "revoked")]
    table = run_cli("audit", "mandates", "--no-sync", cwd=workdir)
    assert table.returncode == 0 and "2 mandates, 1 accesses under them" in table.stdout

    overrides = run_cli("audit", "overrides", "--json", "--no-sync", cwd=workdir)
    assert [(o["status"], o["late"]) for o in json.loads(overrides.stdout)] == [("accepted", False)]
    pending = run_cli("audit", "overrides", "--pending", "--no-sync", cwd=workdir)
    assert pending.returncode == 0 and "0 overrides awaiting review, 0 late" in pending.stdout

    traced = run_cli("audit", "trace", "--basis", "mandate", "--json", "--no-sync", cwd=workdir)
    assert [(line["basis"], line["mandate"], line["mandate_uri"]) for line in json.loads(traced.stdout)] == [
        ("mandate", 1, LAW_URI)]
    shown = run_cli("audit", "trace", "--basis", "override", "--no-sync", cwd=workdir)
    assert "override" in shown.stdout and "1 accesses" in shown.stdout
    wrong = run_cli("audit", "trace", "--basis", "statute", "--no-sync", cwd=workdir)
    assert wrong.returncode != 0 and "unknown legal basis 'statute'" in wrong.stderr + wrong.stdout

    verified = run_cli("audit", "verify", "--json", *rpc, cwd=workdir)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True

    page = run_cli("audit", "report", "--out", str(workdir / "report.html"), *rpc, cwd=workdir)
    assert page.returncode == 0, page.stderr
    html = (workdir / "report.html").read_text()
    assert '<section id="legal-bases">' in html and 'data-mandate="1" data-state="in force"' in html
    assert 'data-review="accepted" data-late="false"' in html
    mine = run_cli("audit", "report", "--subject", bases.world.alice.address, "--out",
                   str(workdir / "alice.html"), *rpc, cwd=workdir)
    assert mine.returncode == 0, mine.stderr
    assert f"accessed under statutory mandate 1 ({LAW_URI})" in (workdir / "alice.html").read_text()
    bob = run_cli("audit", "report", "--subject", bases.world.bob.address, "--out", str(workdir / "bob.html"),
                  *rpc, cwd=workdir)
    assert bob.returncode == 0 and "emergency override (review: accepted)" in (workdir / "bob.html").read_text()


def test_verify_json_exits_non_zero_with_the_findings(moved: Bases, workdir: Path) -> None:
    """An overdue override makes `audit verify --json` print it as a finding and exit 1."""
    moved.override("contact-alice")
    moved.world.advance(REVIEW_PERIOD + 60)
    verified = run_cli("audit", "verify", "--json", "--rpc", moved.world.rpc_url, cwd=workdir)
    assert verified.returncode == 1, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is False and report["counts"] == {"override_unreviewed": 1}
    assert report["discrepancies"][0]["kind"] == "override_unreviewed"
