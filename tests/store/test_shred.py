"""Crypto-shredding in the store: key, ciphertext and salt go in the same transaction that queues the tombstone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, text

from consentledger.errors import NotFoundError
from consentledger.store import OutboxStatus, QueuedWrite, RecordState, Store, StoredRecord, create_schema, make_engine
from consentledger.store.db import flush_deleted

from .conftest import CUSTODIAN

MakeRecord = Callable[..., StoredRecord]


def _stored(store: Store, make_record: MakeRecord) -> StoredRecord:
    record = make_record()
    return store.add_record(record, outbox_kind="register_record", outbox_payload={"record_id": record.record_id},
                            signer=CUSTODIAN)


def _tombstone(record_id: str) -> QueuedWrite:
    return QueuedWrite("tombstone", {"record_id": record_id, "reason": 1}, record_id)


def test_shred_destroys_key_ciphertext_and_salt_and_queues_one_tombstone(
    store: Store, make_record: MakeRecord
) -> None:
    """The row stays (state shredded, commitment kept) with empty key, ciphertext and salt; one tombstone queued."""
    record = _stored(store, make_record)

    assert store.shred([_tombstone(record.record_id)], signer=CUSTODIAN) == [record.record_id]

    shredded = store.get_record(record.record_id)
    assert shredded is not None and shredded.state is RecordState.SHREDDED
    assert (shredded.wrapped_dek, shredded.ciphertext, shredded.salt) == (b"", b"", b"")
    assert shredded.commitment == record.commitment
    register, tombstone = store.outbox_of_record(record.record_id)
    assert register.kind == "register_record"
    assert (tombstone.kind, tombstone.status, tombstone.payload["reason"]) == ("tombstone", OutboxStatus.PENDING, 1)


def test_shredding_twice_queues_nothing_more(store: Store, make_record: MakeRecord) -> None:
    """A record already shredded (by a sweep or an erasure racing it) is skipped with its write."""
    record = _stored(store, make_record)
    store.shred([_tombstone(record.record_id)], signer=CUSTODIAN)

    assert store.shred([_tombstone(record.record_id)], signer=CUSTODIAN,
                       then=[QueuedWrite("revoke_consent", {"consent": {}})]) == []

    assert [w.kind for w in store.outbox_of_record(record.record_id)] == ["register_record", "tombstone"]
    assert store.count_by_status()["pending"] == 3  # register, tombstone, and the `then` write


def test_shred_tombstoned_destroys_the_key_and_queues_nothing(store: Store, make_record: MakeRecord) -> None:
    """A record the chain already tombstoned is shredded with no write queued; one shredded before is skipped."""
    record, earlier = _stored(store, make_record), _stored(store, make_record)
    store.shred([_tombstone(earlier.record_id)], signer=CUSTODIAN)

    assert store.shred_tombstoned([record.record_id, earlier.record_id, "0x" + "99" * 32]) == [record.record_id]

    shredded = store.get_record(record.record_id)
    assert shredded is not None and shredded.state is RecordState.SHREDDED
    assert (shredded.wrapped_dek, shredded.ciphertext, shredded.salt) == (b"", b"", b"")
    assert [w.kind for w in store.outbox_of_record(record.record_id)] == ["register_record"]


def test_shred_is_one_transaction(store: Store, make_record: MakeRecord) -> None:
    """A write that cannot be queued rolls the whole batch back: every key is still there, nothing queued."""
    first, second = _stored(store, make_record), _stored(store, make_record)

    with pytest.raises(ValueError, match="names no record"):
        store.shred([_tombstone(first.record_id), QueuedWrite("tombstone", {})], signer=CUSTODIAN)
    with pytest.raises(sqlalchemy.exc.IntegrityError):  # an outbox row without a kind
        store.shred([_tombstone(first.record_id)], signer=CUSTODIAN, then=[QueuedWrite(None, {})])  # type: ignore[arg-type]

    for record in (first, second):
        kept = store.get_record(record.record_id)
        assert kept is not None and kept.state is RecordState.PENDING and kept.wrapped_dek == record.wrapped_dek
        assert [w.kind for w in store.outbox_of_record(record.record_id)] == ["register_record"]


def test_registration_landing_after_an_erasure_does_not_revive_the_record(
    store: Store, make_record: MakeRecord
) -> None:
    """`set_record_state(..., unless=SHREDDED)` leaves a shredded record shredded; an unknown id is still NotFound."""
    record = _stored(store, make_record)
    store.shred([_tombstone(record.record_id)], signer=CUSTODIAN)

    store.set_record_state(record.record_id, RecordState.REGISTERED, unless=RecordState.SHREDDED)

    kept = store.get_record(record.record_id)
    assert kept is not None and kept.state is RecordState.SHREDDED
    with pytest.raises(NotFoundError):
        store.set_record_state("0x" + "ee" * 32, RecordState.REGISTERED, unless=RecordState.SHREDDED)


def test_sqlite_overwrites_shredded_bytes_in_the_files(tmp_path: Path, make_record: MakeRecord) -> None:
    """With secure_delete on and a checkpoint after shredding, neither the database nor its WAL holds the bytes."""
    path = tmp_path / "gateway.sqlite"
    engine: Engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    store = Store(engine)
    secret = b"ciphertext-that-must-go-" + bytes(range(200))
    record = make_record(ciphertext=secret, wrapped_dek=b"wrapped-key-that-must-go" * 3, salt=b"salt-that-must-go")
    store.add_record(record, outbox_kind="register_record", outbox_payload={}, signer=CUSTODIAN)
    flush_deleted(engine)
    assert secret in path.read_bytes()
    with engine.connect() as conn:
        assert conn.scalar(text("PRAGMA secure_delete")) == 1

    store.shred([_tombstone(record.record_id)], signer=CUSTODIAN)
    flush_deleted(engine)

    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gateway.sqlite"))
    for gone in (secret[:40], b"wrapped-key-that-must-go", b"salt-that-must-go"):
        assert gone not in files
    engine.dispose()
