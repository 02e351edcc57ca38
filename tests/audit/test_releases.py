"""Verify judges a custodian's release log kept beside the index: each release backed by an access on chain,
within the release window after its block and the count per access (PROTECTED: once)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from consentledger import audit
from consentledger.audit.checks import DiscrepancyKind as Kind
from consentledger.audit.indexer import read_cursor
from consentledger.audit.releases import ReleaseRules
from consentledger.store import create_schema
from consentledger.store.tables import releases
from consentledger.types import AccessEntry

from .world import World, hexid

pytestmark = pytest.mark.process

RULES = ReleaseRules(window=300, max_releases=3)


def entry(world: World, record: str, seq: int) -> AccessEntry:
    """Return the world's access (record name, seq)."""
    rid = world.records[record]
    return next(e for e in world.entries() if e.record == rid and e.seq == seq)


def release(access: AccessEntry, ordinal: int, *, after: int = 1, **overrides: Any) -> dict[str, Any]:
    """A release-log row for `access`, `after` seconds after its block."""
    row: dict[str, Any] = {
        "record_id": hexid(access.record), "seq": access.seq, "ordinal": ordinal, "requester": access.requester,
        "access_block": access.block_number, "access_tx": hexid(access.tx_hash), "access_time": access.timestamp,
        "consents": [], "withheld": [], "withholding": "none", "use": "standard",
        "released_at": datetime.fromtimestamp(access.timestamp + after, UTC),
    }
    row.update(overrides)
    return row


def verified(world: World, engine: Engine, rows: list[dict[str, Any]]) -> audit.VerifyReport:
    """Index the world into `engine`, put `rows` in the release log beside it, and verify."""
    audit.Indexer(engine, world.ledger()).sync()
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(releases.insert(), rows)
    return audit.verify(engine, world.ledger(), release_rules=RULES)


def test_releases_within_the_rules_verify(world: World, engine: Engine) -> None:
    """Three releases of an OPEN access and one of a PROTECTED access, each within the window: no discrepancy."""
    stats, lab = entry(world, "stats-bob", 1), entry(world, "lab-alice", 1)

    rows = [release(stats, n, after=n) for n in (1, 2, 3)] + [release(lab, 1, use="immediate")]

    report = verified(world, engine, rows)

    assert report.ok, [d.line() for d in report.discrepancies]
    assert report.releases == 4 and "4 releases" in report.summary()


def test_planted_releases_are_flagged(world: World, engine: Engine) -> None:
    """A release for an access not on chain, one to another organisation than the access's, one 301 s after the
    block, a fourth release of an access and a second of a PROTECTED access are each named by kind."""
    stats, contact, lab = entry(world, "stats-bob", 1), entry(world, "contact-alice", 1), entry(world, "lab-alice", 2)
    ghost = release(stats, 1, record_id="0x" + "5e" * 32)
    stolen = release(contact, 1, requester=world.police.address)
    late = release(stats, 1, after=RULES.window + 1)
    twice_protected = [release(lab, 1), release(lab, 2)]
    once_protected = release(entry(world, "lab-alice", 3), 1)
    four_times = [release(entry(world, "stats-bob", 2), n) for n in (1, 2, 3, 4)]

    report = verified(world, engine, [ghost, stolen, late, *twice_protected, once_protected, *four_times])

    found = {(d.kind, d.record, d.seq) for d in report.discrepancies if d.kind.value.startswith("release_")}
    assert found == {
        (Kind.RELEASE_WITHOUT_ACCESS, ghost["record_id"], 1),
        (Kind.RELEASE_WITHOUT_ACCESS, hexid(contact.record), 1),
        (Kind.RELEASE_OUTSIDE_WINDOW, hexid(stats.record), 1),
        (Kind.RELEASE_OVER_LIMIT, hexid(lab.record), 2),
        (Kind.RELEASE_OVER_LIMIT, hexid(stats.record), 2),
    }
    assert report.releases == 10


def test_an_index_without_a_release_log_checks_no_releases(world: World, engine: Engine) -> None:
    """An auditor's own index (no `releases` table beside it) verifies as before, with no releases counted."""
    audit.Indexer(engine, world.ledger()).sync()

    report = audit.verify(engine, world.ledger(), release_rules=RULES)

    assert report.releases == 0 and "releases" not in report.summary()


def test_a_release_of_an_access_past_the_cursor_in_its_seconds_waits_for_a_later_run(
    world: World, engine: Engine
) -> None:
    """A chain that mines a block per transaction puts many blocks in one second: a release of an access mined
    after the index's cursor, in the cursor block's own second, is not judged yet (the soak saw it flagged as an
    access not on chain); a release a second before the cursor block's time naming a later block still is."""
    audit.Indexer(engine, world.ledger()).sync()
    with engine.connect() as conn:
        cursor = read_cursor(conn)
    assert cursor.block is not None and cursor.timestamp is not None
    stats = entry(world, "stats-bob", 1)
    pending = release(stats, 1, record_id="0x" + "6a" * 32, access_block=cursor.block + 1,
                      released_at=datetime.fromtimestamp(cursor.timestamp, UTC))
    impossible = release(stats, 1, record_id="0x" + "6b" * 32, access_block=cursor.block + 1,
                         released_at=datetime.fromtimestamp(cursor.timestamp - 1, UTC))

    report = verified(world, engine, [pending, impossible])

    found = [(d.kind, d.record) for d in report.discrepancies]
    assert found == [(Kind.RELEASE_WITHOUT_ACCESS, impossible["record_id"])]
    assert report.releases == 1
