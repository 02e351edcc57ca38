"""What the sweeper picks from a store and the audit index beside it (SQLite and PostgreSQL), without a chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import insert

from consentledger.audit import tables as t
from consentledger.gateway.flows.sweep import MAX_TOMBSTONE_TRIES, sweep_batch
from consentledger.store import OutboxStatus, QueuedWrite, RecordState, Store, StoredRecord
from consentledger.types import TombstoneReason

from .conftest import CUSTODIAN, SUBJECT

NOW = 1_800_000_000
BLOCK = 500
OTHER = Account.from_key(b"\x03" * 32).address
EPIDEMIC, FLOOD = 1, 2
CONTACTS, SHELTERS = 1, 2
"""Contacts serve epidemic control; shelters serve flood relief only (ended at NOW)."""

MakeRecord = Callable[..., StoredRecord]


@pytest.fixture
def indexed(store: Store) -> Store:
    """The store with an index at block 500 (time NOW): two categories, flood relief ended at NOW."""
    t.create_index_schema(store.engine)
    with store.engine.begin() as conn:
        conn.execute(insert(t.cursor).values(
            id=1, chain_id=1337, consortium=OTHER, access_ledger=OTHER, deploy_block=1, block_number=BLOCK,
            block_hash="0x" + "bb" * 32, block_timestamp=NOW))
        conn.execute(insert(t.purposes), [
            {"id": EPIDEMIC, "name": "epidemic", "sunset": 0, "added_block": 1, "updated_block": 1},
            {"id": FLOOD, "name": "flood", "sunset": NOW, "added_block": 1, "updated_block": 1}])
        conn.execute(insert(t.categories), [
            _category(CONTACTS, [EPIDEMIC]), _category(SHELTERS, [FLOOD])])
    return store


def _category(category: int, purposes: list[int]) -> dict[str, Any]:
    return {"id": category, "name": f"c{category}", "sensitivity": 1, "retention": 86400, "min_aggregate_subjects": 0,
            "allowed_purposes": purposes, "fields": ["a"], "identifying_fields": [], "added_block": 1,
            "updated_block": 1}


def _held(store: Store, make_record: MakeRecord, retain_until: int, *, category: int = CONTACTS,
          custodian: str = CUSTODIAN, tombstone: int | None = None, on_chain: bool = True) -> str:
    """Store a record of `custodian` and (unless not `on_chain`) index its registration; return its id."""
    record = make_record(custodian=custodian, category=category)
    store.add_record(record, outbox_kind="register_record", outbox_payload={}, signer=custodian)
    if on_chain:
        with store.engine.begin() as conn:
            conn.execute(insert(t.records).values(
                id=record.record_id, custodian=custodian, subject=SUBJECT, category=category,
                commitment="0x" + "cc" * 32, retain_until=retain_until, derived_from=[], registered_block=2,
                registered_tx="0x" + "dd" * 32, registered_at=retain_until - 86400, tombstone=tombstone))
    return record.record_id


def test_records_past_retention_or_sunset_are_shredded_with_their_reason(
    indexed: Store, make_record: MakeRecord
) -> None:
    """Due: retain-until before the block's time (RETENTION), or only ended purposes (SUNSET); oldest first."""
    late = _held(indexed, make_record, NOW - 1)
    early = _held(indexed, make_record, NOW - 100)
    sunset = _held(indexed, make_record, NOW + 100, category=SHELTERS)
    at_the_limit = _held(indexed, make_record, NOW)

    report = sweep_batch(indexed, CUSTODIAN, limit=10)

    assert (report.block, report.block_time) == (BLOCK, NOW)
    assert [(s.record, s.reason) for s in report.shredded] == [
        (early, TombstoneReason.RETENTION), (late, TombstoneReason.RETENTION), (sunset, TombstoneReason.SUNSET)]
    for record in (early, late, sunset):
        shredded = indexed.get_record(record)
        assert shredded is not None and shredded.state is RecordState.SHREDDED
    kept = indexed.get_record(at_the_limit)
    assert kept is not None and kept.state is RecordState.PENDING and kept.wrapped_dek
    assert [w.payload["reason"] for w in indexed.outbox_of_record(sunset) if w.kind == "tombstone"] == [
        int(TombstoneReason.SUNSET)]


def test_records_not_ours_tombstoned_unregistered_or_shredded_are_left(
    indexed: Store, make_record: MakeRecord
) -> None:
    """Another custodian's, one already tombstoned on chain, one not yet registered: none is touched."""
    theirs = _held(indexed, make_record, NOW - 10, custodian=OTHER)
    tombstoned = _held(indexed, make_record, NOW - 10, tombstone=int(TombstoneReason.CUSTODIAN))
    unregistered = _held(indexed, make_record, NOW - 10, on_chain=False)

    assert sweep_batch(indexed, CUSTODIAN, limit=10).shredded == ()
    for record in (theirs, tombstoned, unregistered):
        kept = indexed.get_record(record)
        assert kept is not None and kept.state is RecordState.PENDING


def test_a_batch_is_limited(indexed: Store, make_record: MakeRecord) -> None:
    """At most `limit` records per batch; the next batch takes the rest."""
    records = [_held(indexed, make_record, NOW - 10 - n) for n in range(5)]

    assert len(sweep_batch(indexed, CUSTODIAN, limit=3).shredded) == 3
    assert len(sweep_batch(indexed, CUSTODIAN, limit=3).shredded) == 2
    assert sweep_batch(indexed, CUSTODIAN, limit=3).shredded == ()
    assert all(indexed.get_record(r).state is RecordState.SHREDDED for r in records)  # type: ignore[union-attr]


def test_a_failed_tombstone_is_queued_again_a_few_times(indexed: Store, make_record: MakeRecord) -> None:
    """A shredded record still live on chain whose tombstone failed gets it queued again (same reason), until
    MAX_TOMBSTONE_TRIES writes; never while one is unfinished."""
    record = _held(indexed, make_record, NOW + 100)
    indexed.shred([QueuedWrite("tombstone", {"record_id": record, "reason": 2}, record)], signer=CUSTODIAN)
    assert sweep_batch(indexed, CUSTODIAN, limit=10).requeued == ()  # the first write is still pending

    for attempt in range(1, MAX_TOMBSTONE_TRIES + 1):
        (last,) = [w for w in indexed.outbox_of_record(record)
                   if w.kind == "tombstone" and w.status is OutboxStatus.PENDING]
        indexed.mark_failed(last.id, "node refused the transaction")
        report = sweep_batch(indexed, CUSTODIAN, limit=10)
        assert report.requeued == ((record,) if attempt < MAX_TOMBSTONE_TRIES else ())
    writes = [w for w in indexed.outbox_of_record(record) if w.kind == "tombstone"]
    assert len(writes) == MAX_TOMBSTONE_TRIES
    assert {w.payload["reason"] for w in writes} == {int(TombstoneReason.ERASURE)}
