"""Stored records: round trip, atomic outbox row, idempotency keys (also under a race)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from consentledger.errors import IdempotencyConflictError, NotFoundError, RecordExistsError
from consentledger.store import OutboxStatus, RecordState, Store, StoredRecord
from consentledger.store.tables import outbox, records

from .conftest import CUSTODIAN, SUBJECT

MakeRecord = Callable[..., StoredRecord]


def _add(store: Store, record: StoredRecord, payload: object = None) -> StoredRecord:
    return store.add_record(
        record, outbox_kind="register_record", outbox_payload={"record_id": record.record_id, "extra": payload},
        signer=record.custodian,
    )


def _count(store: Store, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def test_added_record_reads_back_unchanged(store: Store, make_record: MakeRecord) -> None:
    """get_record returns every field as stored, with the store's timestamps."""
    record = make_record(derived_from=("0x" + "ab" * 32, "0x" + "cd" * 32), idempotency_key="k-1")
    stored = _add(store, record)
    assert stored.created_at is not None and stored.created_at.tzinfo is not None
    assert store.get_record(record.record_id) == stored
    assert stored.state is RecordState.PENDING
    assert stored.derived_from == record.derived_from
    assert store.get_record("0x" + "00" * 32) is None


def test_record_and_its_outbox_row_commit_together(store: Store, make_record: MakeRecord) -> None:
    """Adding a record also queues its chain write, naming the record and the signer."""
    record = make_record()
    _add(store, record)
    (item,) = store.pending()
    assert (item.kind, item.record_id, item.signer, item.status) == (
        "register_record", record.record_id, CUSTODIAN, OutboxStatus.PENDING,
    )
    assert item.payload == {"record_id": record.record_id, "extra": None}


def test_failing_outbox_insert_leaves_no_record(store: Store, make_record: MakeRecord) -> None:
    """If the chain write cannot be queued, the record is not stored either."""
    record = make_record()
    # Not JSON-serialisable: the outbox insert fails (SQLAlchemy wraps the TypeError; psycopg does not).
    with pytest.raises((StatementError, TypeError), match="JSON serializable"):
        _add(store, record, payload=object())
    assert store.get_record(record.record_id) is None
    assert _count(store, records) == 0
    assert _count(store, outbox) == 0


def test_retry_with_same_key_and_hash_returns_first_record(store: Store, make_record: MakeRecord) -> None:
    """A retried request (same key, same body) gets the first record back; nothing new is stored."""
    first = _add(store, make_record(idempotency_key="req-1", request_hash="h"))
    again = _add(store, make_record(idempotency_key="req-1", request_hash="h"))
    assert again == first
    assert _count(store, records) == 1
    assert _count(store, outbox) == 1


def test_same_key_with_another_request_raises_conflict(store: Store, make_record: MakeRecord) -> None:
    """Reusing an idempotency key for a different body is refused."""
    _add(store, make_record(idempotency_key="req-1", request_hash="h1"))
    with pytest.raises(IdempotencyConflictError, match="req-1"):
        _add(store, make_record(idempotency_key="req-1", request_hash="h2"))
    assert _count(store, records) == 1


def test_idempotency_keys_are_per_custodian(store: Store, make_record: MakeRecord) -> None:
    """Two custodians may use the same key for unrelated requests."""
    _add(store, make_record(idempotency_key="req-1", request_hash="h1"))
    _add(store, make_record(idempotency_key="req-1", request_hash="h2", custodian=SUBJECT))
    assert _count(store, records) == 2


def test_concurrent_requests_with_one_key_store_one_record(store: Store, make_record: MakeRecord) -> None:
    """Eight threads racing with the same key: one row; every thread gets that same record."""
    attempts = [make_record(idempotency_key="race", request_hash="same") for _ in range(8)]
    barrier = threading.Barrier(len(attempts))
    results: list[StoredRecord] = []
    errors: list[BaseException] = []

    def run(record: StoredRecord) -> None:
        barrier.wait()
        try:
            results.append(_add(store, record))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _count(store, records) == 1
    assert _count(store, outbox) == 1
    assert len({r.record_id for r in results}) == 1 and len(results) == 8


def test_reused_record_id_raises_record_exists(store: Store, make_record: MakeRecord) -> None:
    """A second record with a taken id (and no matching key) is refused."""
    record = _add(store, make_record())
    with pytest.raises(RecordExistsError):
        _add(store, make_record(record_id=record.record_id, idempotency_key="other"))
    assert _count(store, outbox) == 1


def test_record_state_moves_and_unknown_record_is_not_found(store: Store, make_record: MakeRecord) -> None:
    """set_record_state changes the state and the update time; an unknown id raises NotFoundError."""
    record = _add(store, make_record())
    store.set_record_state(record.record_id, RecordState.REGISTERED)
    updated = store.get_record(record.record_id)
    assert updated is not None and updated.state is RecordState.REGISTERED
    assert updated.updated_at is not None and record.updated_at is not None
    assert updated.updated_at >= record.updated_at
    with pytest.raises(NotFoundError):
        store.set_record_state("0x" + "00" * 32, RecordState.SHREDDED)


def test_records_by_subject_lists_only_that_subject(store: Store, make_record: MakeRecord) -> None:
    """records_by_subject returns the subject's records, oldest first, whatever the address case."""
    mine = [_add(store, make_record()) for _ in range(3)]
    _add(store, make_record(subject=CUSTODIAN))
    found = store.records_by_subject(SUBJECT.lower())
    assert [r.record_id for r in found] == [r.record_id for r in mine]
