"""Re-wrapping record DEKs under a new KEK: every live record moves, payloads stay, shredded ones are skipped."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select

from consentledger.crypto.keyfiles import kek_id
from consentledger.crypto.vault import new_dek, open_sealed, record_aad, seal, unwrap_dek, wrap_dek
from consentledger.errors import ConfigurationError, IntegrityError
from consentledger.store import Store, StoredRecord
from consentledger.store.rotation import Kek, census, require_one_kek, rewrap_all, rewrap_batch
from consentledger.store.tables import records

from .conftest import CUSTODIAN, SUBJECT

CATEGORY = 3


def _kek() -> Kek:
    key = new_dek()
    return Kek(kek_id(key), key)


def _put(store: Store, kek: Kek, n: int) -> StoredRecord:
    """Store record number `n` the way the gateway does: payload sealed under a fresh DEK, the DEK under `kek`."""
    rid, dek = os.urandom(32), new_dek()
    payload = json.dumps({"n": n}).encode()
    record = StoredRecord(
        record_id="0x" + rid.hex(), custodian=CUSTODIAN, subject=SUBJECT, category=CATEGORY,
        ciphertext=seal(dek, payload, record_aad(rid, CATEGORY)), wrapped_dek=wrap_dek(kek.key, dek, rid),
        kek_id=kek.id, salt=os.urandom(16), commitment=os.urandom(32), request_hash=f"h-{n}",
    )
    return store.add_record(record, outbox_kind="register_record", outbox_payload={}, signer=CUSTODIAN)


def _shred(store: Store, record_id: str) -> None:
    """Crypto-shred a record as the lifecycle does: state shredded, wrapped DEK emptied."""
    with store.engine.begin() as conn:
        conn.execute(records.update().where(records.c.record_id == record_id).values(state="shredded", wrapped_dek=b""))


def _payload(store: Store, kek: Kek, record_id: str) -> dict[str, int]:
    """Return the payload of a stored record, opened with `kek` (IntegrityError if it does not open)."""
    stored = store.get_record(record_id)
    assert stored is not None
    rid = bytes.fromhex(record_id[2:])
    dek = unwrap_dek(kek.key, stored.wrapped_dek, rid)
    payload: dict[str, int] = json.loads(open_sealed(dek, stored.ciphertext, record_aad(rid, CATEGORY)))
    return payload


def _rows(store: Store) -> dict[str, tuple[str, bytes, bytes]]:
    with store.engine.connect() as conn:
        query = select(records.c.record_id, records.c.kek_id, records.c.wrapped_dek, records.c.ciphertext)
        return {r.record_id: (r.kek_id, bytes(r.wrapped_dek), bytes(r.ciphertext)) for r in conn.execute(query)}


def test_rewrap_all_moves_every_record_to_the_new_kek_and_leaves_payload_ciphertexts_alone(store: Store) -> None:
    """After the pass every record is under the new KEK id, opens with the new KEK only, and its ciphertext is
    byte-for-byte what it was."""
    old, new = _kek(), _kek()
    stored = [_put(store, old, n) for n in range(7)]
    before = _rows(store)

    moved = rewrap_all(store.engine, old, new, batch=3)

    after = _rows(store)
    assert moved == 7
    assert census(store.engine).wrapped == {new.id: 7}
    for n, record in enumerate(stored):
        assert after[record.record_id][0] == new.id
        assert after[record.record_id][2] == before[record.record_id][2]
        assert _payload(store, new, record.record_id) == {"n": n}
        with pytest.raises(IntegrityError):
            _payload(store, old, record.record_id)


def test_shredded_records_are_skipped(store: Store) -> None:
    """A shredded record keeps its empty wrapped DEK and its row untouched; census counts it apart."""
    old, new = _kek(), _kek()
    live, shredded = _put(store, old, 1), _put(store, old, 2)
    _shred(store, shredded.record_id)
    row_before = _rows(store)[shredded.record_id]

    assert rewrap_all(store.engine, old, new) == 1

    assert _rows(store)[shredded.record_id] == row_before
    assert _payload(store, new, live.record_id) == {"n": 1}
    assert census(store.engine).wrapped == {new.id: 1} and census(store.engine).shredded == 1


def test_an_interrupted_pass_is_finished_by_the_next_one(store: Store) -> None:
    """Batches committed before a crash stay; a new pass moves only what is still under the old KEK."""
    old, new = _kek(), _kek()
    for n in range(5):
        _put(store, old, n)
    first, last_seen = rewrap_batch(store.engine, old, new, limit=2)
    assert first == 2 and last_seen
    assert census(store.engine).wrapped == {old.id: 3, new.id: 2}

    assert rewrap_all(store.engine, old, new, batch=2) == 3

    assert census(store.engine).wrapped == {new.id: 5}


def test_batch_progress_is_reported_per_committed_batch(store: Store) -> None:
    """`on_batch` hears each batch's count, in order, summing to the records moved."""
    old, new = _kek(), _kek()
    for n in range(5):
        _put(store, old, n)
    heard: list[int] = []

    rewrap_all(store.engine, old, new, batch=2, on_batch=heard.append)

    assert heard == [2, 2, 1]


def test_a_dek_that_does_not_open_under_the_old_kek_leaves_its_batch_unchanged(store: Store) -> None:
    """A wrapped DEK that fails authentication raises IntegrityError naming its record; its batch rolls back."""
    old, new = _kek(), _kek()
    good, bad = _put(store, old, 1), _put(store, _kek(), 2)
    with store.engine.begin() as conn:  # labelled with the old id, wrapped under another KEK
        conn.execute(records.update().where(records.c.record_id == bad.record_id).values(kek_id=old.id))
    before = _rows(store)

    with pytest.raises(IntegrityError, match=f"record {bad.record_id}: .* does not open under KEK {old.id}"):
        rewrap_all(store.engine, old, new)

    assert _rows(store) == before
    assert _payload(store, old, good.record_id) == {"n": 1}


def test_census_counts_records_per_kek_and_the_shredded(store: Store) -> None:
    """Records holding a key count under their KEK id; shredded ones only as shredded."""
    first, second = _kek(), _kek()
    _put(store, first, 1)
    _put(store, first, 2)
    _put(store, second, 3)
    _shred(store, _put(store, second, 4).record_id)

    counted = census(store.engine)

    assert counted.wrapped == {first.id: 2, second.id: 1}
    assert counted.shredded == 1
    assert counted.others(first.id) == {second.id: 1}


def test_require_one_kek_names_records_under_another_kek(store: Store) -> None:
    """A store with records under a KEK other than the gateway's refuses it, saying how many and which."""
    mine, other = _kek(), _kek()
    _put(store, mine, 1)
    require_one_kek(store.engine, mine.id)
    _put(store, other, 2)

    with pytest.raises(ConfigurationError, match=f"1 under {other.id}.*rotate-kek"):
        require_one_kek(store.engine, mine.id)
