"""The release log: each release of an access recorded with what was withheld, counted without races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from consentledger.store import Release, ReleaseLog
from consentledger.store.tables import releases

from .conftest import CUSTODIAN

RECORD = "0x" + "ab" * 32


def release(seq: int = 1, **overrides: object) -> Release:
    """A release of access (RECORD, seq) to CUSTODIAN's address standing in for a requester."""
    fields: dict[str, object] = {
        "record_id": RECORD, "seq": seq, "requester": CUSTODIAN.lower(), "access_block": 41,
        "access_tx": "0x" + "cd" * 32, "access_time": 1_790_000_000, "consents": ("0x" + "ef" * 32,),
        "withheld": ("name", "phone"), "withholding": "pseudonymise", "use": "standard",
    }
    fields.update(overrides)
    return Release(**fields)  # type: ignore[arg-type]


def test_a_release_is_recorded_with_what_was_withheld(engine: Engine) -> None:
    """The recorded release keeps who, which access, the consents checked, the withheld fields and mode, the use."""
    log = ReleaseLog(engine)

    recorded = log.record(release(), limit=3)

    assert recorded is not None and recorded.ordinal == 1 and recorded.released_at is not None
    (stored,) = log.of_access(RECORD, 1)
    assert stored == recorded
    assert (stored.requester, stored.access_block, stored.access_tx, stored.access_time) == (
        CUSTODIAN, 41, "0x" + "cd" * 32, 1_790_000_000)
    assert (stored.consents, stored.withheld, stored.withholding, stored.use) == (
        ("0x" + "ef" * 32,), ("name", "phone"), "pseudonymise", "standard")


def test_releases_beyond_the_limit_are_not_recorded(engine: Engine) -> None:
    """The limit counts per access: the fourth release of seq 1 is refused (None), seq 2 still has its own."""
    log = ReleaseLog(engine)

    ordinals = [log.record(release(), limit=3) for _ in range(4)]

    assert [r.ordinal if r else None for r in ordinals] == [1, 2, 3, None]
    assert log.count(RECORD, 1) == 3
    second = log.record(release(seq=2), limit=3)
    assert second is not None and second.ordinal == 1


def test_a_limit_of_one_releases_once(engine: Engine) -> None:
    """With limit 1 (a PROTECTED record) the second release is refused."""
    log = ReleaseLog(engine)

    assert log.record(release(use="immediate"), limit=1) is not None
    assert log.record(release(use="immediate"), limit=1) is None
    assert log.count(RECORD, 1) == 1


def test_concurrent_releases_never_exceed_the_limit(engine: Engine) -> None:
    """Twelve threads releasing one access at once, limit 3: exactly three succeed, with ordinals 1, 2, 3."""
    log = ReleaseLog(engine)
    start = threading.Barrier(12)

    def attempt(_: int) -> Release | None:
        start.wait()
        return log.record(release(), limit=3)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(attempt, range(12)))

    assert sorted(r.ordinal for r in results if r is not None) == [1, 2, 3]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(releases)) == 3


def test_a_batch_is_recorded_with_each_items_own_limit(engine: Engine) -> None:
    """One call for three accesses: seq 1 (already released twice, limit 3) takes its last ordinal, seq 2 (limit 1,
    PROTECTED) is released once and its second item in the same call is refused, seq 3 starts at 1."""
    log = ReleaseLog(engine)
    log.record(release(seq=1), limit=3)
    log.record(release(seq=1), limit=3)

    results = log.record_many([(release(seq=1), 3), (release(seq=2, use="immediate"), 1),
                               (release(seq=2, use="immediate"), 1), (release(seq=3), 3), (release(seq=1), 3)])

    assert [(r.seq, r.ordinal) if r else None for r in results] == [(1, 3), (2, 1), None, (3, 1), None]
    assert [log.count(RECORD, seq) for seq in (1, 2, 3)] == [3, 1, 1]
    assert {r.released_at for r in results if r is not None} == {results[0].released_at}  # type: ignore[union-attr]


def test_a_batch_is_one_transaction(engine: Engine) -> None:
    """A batch whose second row breaks a NOT NULL column raises the database's error (not a reached limit) and
    records none of its items."""
    log = ReleaseLog(engine)

    with pytest.raises(IntegrityError, match="(?i)null"):
        log.record_many([(release(seq=1), 3), (release(seq=2, use=None), 3)])

    assert (log.count(RECORD, 1), log.count(RECORD, 2)) == (0, 0)


def test_concurrent_batches_never_exceed_the_limit(engine: Engine) -> None:
    """Eight threads each releasing accesses 1 and 2 in one batch at once, limit 3: each access gets exactly
    ordinals 1, 2, 3 and the table holds six releases."""
    log = ReleaseLog(engine)
    start = threading.Barrier(8)

    def attempt(_: int) -> list[Release | None]:
        start.wait()
        return log.record_many([(release(seq=1), 3), (release(seq=2), 3)])

    with ThreadPoolExecutor(8) as pool:
        results = [r for batch in pool.map(attempt, range(8)) for r in batch]

    for seq in (1, 2):
        assert sorted(r.ordinal for r in results if r is not None and r.seq == seq) == [1, 2, 3]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(releases)) == 6
