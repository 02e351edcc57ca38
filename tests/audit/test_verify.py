"""Verify passes a faithful index and names every planted discrepancy: kind, record, seq and transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, insert, select, update

from consentledger import audit
from consentledger import governance as gov
from consentledger.audit import tables as t
from consentledger.audit.checks import DiscrepancyKind as Kind
from consentledger.governance import purpose_mask
from consentledger.types import MemberStatus, Role, Sensitivity, TombstoneReason

from .world import (
    AGGREGATE_K,
    CONTACT,
    EPIDEMIC,
    FLEETING,
    FLEETING_RETENTION,
    LAB,
    REFUSED,
    RESEARCH,
    World,
    hexid,
)

pytestmark = pytest.mark.process

TEMPORARY = TEMPORARY_LOG = 60
"""A purpose and a category that only the sunset test uses."""


@pytest.fixture
def indexed(world: World, sqlite_engine: Engine) -> Engine:
    """The world indexed into a SQLite file, ready to be tampered with."""
    audit.Indexer(sqlite_engine, world.ledger()).sync()
    return sqlite_engine


def findings(report: audit.VerifyReport) -> set[tuple[Kind, str | None, int | None]]:
    """Return (kind, record, seq) of every discrepancy."""
    return {(d.kind, d.record, d.seq) for d in report.discrepancies}


def access(engine: Engine, record: str, seq: int) -> dict[str, object]:
    """Return one indexed access row."""
    with engine.connect() as conn:
        row = conn.execute(select(t.accesses).where(t.accesses.c.record == record, t.accesses.c.seq == seq))
        return dict(row.mappings().one())


def test_a_faithful_index_verifies_on_both_backends(world: World, engine: Engine) -> None:
    """Heads, consents (derived ones resolved from calldata), retention and membership all check out."""
    audit.Indexer(engine, world.ledger()).sync()
    report = audit.verify(engine, world.ledger())
    assert report.ok, [d.line() for d in report.discrepancies]
    assert report.accesses == len(world.entries())
    assert report.records == report.heads_checked == len(world.records)
    assert report.members == 5 and report.consents == len(world.consents)
    assert report.summary().startswith(f"verified {len(world.records)} records")
    assert report.refusals == len(REFUSED)
    assert f", {len(REFUSED)} refused attempts (on no hash chain) up to block" in report.summary()


def test_a_deleted_access_row_shows_as_a_gap_and_a_head_mismatch(world: World, indexed: Engine) -> None:
    """Removing access 2 of a record breaks the seq run at 3 and the recomputed head."""
    lab = hexid(world.records["lab-alice"])
    with indexed.begin() as conn:
        conn.execute(delete(t.accesses).where(t.accesses.c.record == lab, t.accesses.c.seq == 2))
    report = audit.verify(indexed, world.ledger())
    assert findings(report) == {(Kind.SEQ_GAP, lab, 3), (Kind.HEAD_MISMATCH, lab, None)}
    gap = next(d for d in report.discrepancies if d.kind is Kind.SEQ_GAP)
    assert gap.tx_hash == access(indexed, lab, 3)["tx_hash"]
    assert gap.line().startswith(f"seq_gap record={lab} seq=3 tx=0x") and "missing" in gap.line()


def test_an_altered_purpose_breaks_the_entry_hash_and_the_consent(world: World, indexed: Engine) -> None:
    """A purpose rewritten in the index no longer hashes to the emitted head nor matches the consent."""
    lab = hexid(world.records["lab-alice"])
    with indexed.begin() as conn:
        conn.execute(
            update(t.accesses).where(t.accesses.c.record == lab, t.accesses.c.seq == 1).values(purpose=RESEARCH)
        )
    report = audit.verify(indexed, world.ledger())
    assert findings(report) == {
        (Kind.ENTRY_HASH_MISMATCH, lab, 1), (Kind.WRONG_PURPOSE, lab, 1), (Kind.HEAD_MISMATCH, lab, None),
    }
    wrong = next(d for d in report.discrepancies if d.kind is Kind.WRONG_PURPOSE)
    assert f"is for purpose 1, the access for purpose {RESEARCH}" in wrong.message


def test_a_consent_revoked_before_an_access_is_caught(world: World, indexed: Engine) -> None:
    """A consent row that says it was revoked right after its grant invalidates the access that followed."""
    consent = world.consent_id("contact")
    with indexed.begin() as conn:
        granted = conn.execute(select(t.consents).where(t.consents.c.id == consent)).mappings().one()
        conn.execute(
            update(t.consents).where(t.consents.c.id == consent)
            .values(revoked_block=granted["granted_block"], revoked_log_index=granted["granted_log_index"] + 1)
        )
    report = audit.verify(indexed, world.ledger())
    contact = hexid(world.records["contact-alice"])
    assert findings(report) == {(Kind.CONSENT_REVOKED, contact, 1)}
    assert f"consent {consent} was revoked at block {granted['granted_block']}" in report.discrepancies[0].message


def test_an_access_by_a_suspended_requester_is_caught(world: World, indexed: Engine) -> None:
    """A suspension recorded before police's first access makes that access (only) a finding."""
    stats = hexid(world.records["stats-bob"])
    first = access(indexed, stats, 1)
    assert first["requester"] == world.police.address
    with indexed.begin() as conn:
        conn.execute(insert(t.membership_changes).values(
            block=int(str(first["block"])) - 1, log_index=10_000, account=world.police.address,
            status=MemberStatus.SUSPENDED, timestamp=first["timestamp"], tx_hash="0x" + "ab" * 32,
        ))
    report = audit.verify(indexed, world.ledger())
    assert findings(report) == {(Kind.INACTIVE_REQUESTER, stats, 1)}
    assert "was suspended from block" in report.discrepancies[0].message


@pytest.fixture
def fleeting(world: World) -> Iterator[str]:
    """A record whose category keeps it two seconds; tombstoned afterwards so the world stays clean."""
    record = world.register("fleeting", world.bob, FLEETING)
    try:
        yield record
    finally:
        if world.ledger().record(world.records["fleeting"]).tombstone is TombstoneReason.NONE:
            world.tombstone("fleeting")


def test_a_record_past_retention_without_tombstone_is_caught(
    world: World, fleeting: str, sqlite_engine: Engine
) -> None:
    """Once the chain clock passes retain-until, an untombstoned record is overdue; the tombstone clears it."""
    world.advance(FLEETING_RETENTION + 3)
    indexer = audit.Indexer(sqlite_engine, world.ledger())
    indexer.sync()
    report = audit.verify(sqlite_engine, world.ledger())
    assert findings(report) == {(Kind.RETENTION_OVERDUE, fleeting, None)}
    assert "still not tombstoned" in report.discrepancies[0].line()
    world.tombstone("fleeting")
    indexer.sync()
    assert audit.verify(sqlite_engine, world.ledger()).ok


def plant_before(engine: Engine, access_row: dict[str, object], name: str, **args: object) -> None:
    """Index a `name` governance event with `args` just before `access_row` (a copy of the real one, altered)."""
    with engine.begin() as conn:
        real = conn.execute(select(t.events).where(t.events.c.name == name)).mappings().first()
        assert real is not None, f"the world emits no {name}"
        conn.execute(insert(t.events).values({
            **real, "block": int(str(access_row["block"])) - 1, "log_index": 10_000, "args": {**real["args"], **args},
        }))


def test_an_access_by_a_member_without_the_requester_role_is_caught(world: World, indexed: Engine) -> None:
    """Police stripped to AUDITOR before its first access: each police access (not transport's) is a finding."""
    stats, contact = hexid(world.records["stats-bob"]), hexid(world.records["contact-bob"])
    plant_before(indexed, access(indexed, stats, 1), "MemberRolesChanged", account=world.police.address,
                 roles=int(Role.AUDITOR))
    report = audit.verify(indexed, world.ledger())
    assert findings(report) == {
        (Kind.MISSING_REQUESTER_ROLE, stats, 1), (Kind.MISSING_REQUESTER_ROLE, stats, 2),
        (Kind.MISSING_REQUESTER_ROLE, contact, 1),
    }
    assert f"requester {world.police.address} held roles auditor from block" in report.discrepancies[0].message


def test_an_access_for_a_purpose_its_category_did_not_allow_is_caught(world: World, indexed: Engine) -> None:
    """LAB narrowed to RESEARCH before transport's first EPIDEMIC access: its three lab accesses are findings."""
    lab = hexid(world.records["lab-alice"])
    plant_before(indexed, access(indexed, lab, 1), "CategoryPurposesChanged", category=LAB,
                 allowedPurposes=purpose_mask([RESEARCH]))
    report = audit.verify(indexed, world.ledger())
    assert findings(report) == {(Kind.PURPOSE_NOT_ALLOWED, lab, seq) for seq in (1, 2, 3)}
    assert f"purpose {EPIDEMIC} was not allowed for category {LAB}, which allowed [{RESEARCH}]" in (
        report.discrepancies[0].message
    )


def test_an_access_at_its_purposes_sunset_is_caught(world: World, indexed: Engine) -> None:
    """RESEARCH sunset at the very second of police's first research access: that access and the later one."""
    stats, contact = hexid(world.records["stats-bob"]), hexid(world.records["contact-bob"])
    research = access(indexed, stats, 2)
    assert research["purpose"] == RESEARCH
    plant_before(indexed, research, "PurposeSunsetChanged", purpose=RESEARCH, sunset=research["timestamp"])
    report = audit.verify(indexed, world.ledger())
    assert findings(report) == {(Kind.PURPOSE_SUNSET, stats, 2), (Kind.PURPOSE_SUNSET, contact, 1)}
    assert f"purpose {RESEARCH} was sunset at" in report.discrepancies[0].message


def test_a_record_whose_purposes_all_ended_without_tombstone_is_caught(world: World, sqlite_engine: Engine) -> None:
    """A category kept only for a purpose that governance sunsets: its live record is overdue; a tombstone clears it."""
    world.govern(
        gov.add_purpose(TEMPORARY, "temporary-outbreak"),
        gov.add_category(TEMPORARY_LOG, "outbreak-log", Sensitivity.OPEN, 86_400, ["note"], [], [TEMPORARY]),
    )
    record = world.register("outbreak", world.bob, TEMPORARY_LOG)
    indexer = audit.Indexer(sqlite_engine, world.ledger())
    indexer.sync()
    assert not findings(audit.verify(sqlite_engine, world.ledger()))

    world.govern(gov.set_purpose_sunset(TEMPORARY, world.now() + 1))
    world.advance(3)
    indexer.sync()
    report = audit.verify(sqlite_engine, world.ledger())
    world.tombstone("outbreak")
    indexer.sync()

    assert findings(report) == {(Kind.SUNSET_OVERDUE, record, None)}
    assert "emergency sunset" in report.discrepancies[0].message
    assert not findings(audit.verify(sqlite_engine, world.ledger()))


def test_an_aggregate_whose_source_attestation_is_missing_is_caught(world: World, indexed: Engine) -> None:
    """Bob's attestation of his stats erased from the index: the district aggregate stands on one subject, below K."""
    district, stats = hexid(world.records["district"]), hexid(world.records["stats-bob"])
    assert audit.verify(indexed, world.ledger()).ok
    with indexed.begin() as conn:
        conn.execute(update(t.records).where(t.records.c.id == stats).values(attested_block=None))

    report = audit.verify(indexed, world.ledger())

    assert findings(report) == {(Kind.AGGREGATE_UNATTESTED, district, None)}
    assert report.discrepancies[0].message == (
        f"registered as an anonymous aggregate over 1 distinct attesting subjects, below the category's "
        f"K = {AGGREGATE_K}; sources not attested by their subjects before it: {stats}"
    )


def test_an_attestation_after_its_aggregate_does_not_count(world: World, indexed: Engine) -> None:
    """Alice's attestation planted after the aggregate's registration: too late to count toward its K."""
    district, contact = hexid(world.records["district"]), hexid(world.records["contact-alice"])
    with indexed.begin() as conn:
        registered = conn.execute(select(t.records.c.registered_block).where(t.records.c.id == district)).scalar_one()
        conn.execute(update(t.records).where(t.records.c.id == contact).values(attested_block=registered + 1))

    report = audit.verify(indexed, world.ledger())

    assert findings(report) == {(Kind.AGGREGATE_UNATTESTED, district, None)}
    assert f"before it: {contact}" in report.discrepancies[0].message


def test_a_batchs_accesses_verify_and_its_refusals_are_counted_not_checked(
    world: World, sqlite_engine: Engine
) -> None:
    """A batch holding a derived access (its consents found in requestAccessBatch's calldata), an open access and
    an access past retention: the index verifies clean, and the refusal counts without touching any hash chain."""
    world.consent("derived-alice-2", world.alice, world.transport, CONTACT, EPIDEMIC, record=world.records["derived"])
    world.consent("derived-bob-2", world.bob, world.transport, CONTACT, EPIDEMIC, record=world.records["derived"])
    expired = world.register("expired", world.bob, FLEETING)
    world.advance(FLEETING_RETENTION + 3)
    derived, stats, expired_entry = world.batch(world.transport, [
        world.request("derived", EPIDEMIC, ["derived-alice-2", "derived-bob-2"]),
        world.request("stats-bob", EPIDEMIC),
        world.request("expired", EPIDEMIC),
    ])
    world.tombstone("expired")
    assert getattr(expired_entry, "rule", None) == "AccessLedgerRetentionExpired"
    assert getattr(derived, "seq", None) == 2 and getattr(stats, "tx_hash", None) == getattr(derived, "tx_hash", 0)
    audit.Indexer(sqlite_engine, world.ledger()).sync()

    report = audit.verify(sqlite_engine, world.ledger())

    assert report.ok, [d.line() for d in report.discrepancies]
    assert report.refusals == len(REFUSED) + 1 and report.accesses == len(world.entries())
    [refusal] = audit.refusals(sqlite_engine, record=expired)
    assert (refusal.rule, refusal.why, refusal.category) == (
        "AccessLedgerRetentionExpired", "the record's retention period was over", FLEETING
    )
