"""The outbox: lifecycle of a chain write, ordering, per-signer listing and counts."""

from __future__ import annotations

import pytest

from consentledger.errors import NotFoundError
from consentledger.store import OutboxStatus, Store

from .conftest import CUSTODIAN, SUBJECT


def test_write_goes_pending_sent_done(store: Store) -> None:
    """A queued write is pending, then sent with its signed transaction, then done."""
    item = store.enqueue("tombstone", {"record_id": "0x01", "reason": 2}, CUSTODIAN, record_id="0x01")
    assert (item.status, item.attempts, item.raw_tx, item.tx_hash) == (OutboxStatus.PENDING, 0, None, None)
    assert store.mark_sent(item.id, 7, b"\x02raw", "0x" + "ee" * 32)
    sent = store.get_outbox(item.id)
    assert sent is not None
    assert (sent.status, sent.tx_nonce, sent.raw_tx, sent.tx_hash, sent.attempts) == (
        OutboxStatus.SENT, 7, b"\x02raw", "0x" + "ee" * 32, 1,
    )
    assert [i.id for i in store.pending()] == [item.id]  # sent is still unfinished
    store.mark_done(item.id)
    done = store.get_outbox(item.id)
    assert done is not None and done.status is OutboxStatus.DONE
    assert store.pending() == []


def test_only_a_pending_write_can_be_marked_sent(store: Store) -> None:
    """mark_sent refuses a write that is already signed, so it is never signed twice."""
    item = store.enqueue("tombstone", {}, CUSTODIAN)
    assert store.mark_sent(item.id, 1, b"a", "0x01")
    assert not store.mark_sent(item.id, 2, b"b", "0x02")
    again = store.get_outbox(item.id)
    assert again is not None and (again.tx_nonce, again.raw_tx) == (1, b"a")


def test_unsign_puts_only_that_sent_transaction_back_to_pending(store: Store) -> None:
    """unsign drops the signed transaction of a sent write named by its hash, noting why; another hash, a pending or
    a done write is left alone, so a write is never signed again while its transaction could still land."""
    item = store.enqueue("tombstone", {}, CUSTODIAN)
    assert not store.unsign(item.id, "0x01", "not sent yet")
    assert store.mark_sent(item.id, 4, b"a", "0x01")
    assert not store.unsign(item.id, "0x02", "another transaction")

    assert store.unsign(item.id, "0x01", "nonce 4 taken")

    again = store.get_outbox(item.id)
    assert again is not None
    assert (again.status, again.tx_nonce, again.raw_tx, again.tx_hash, again.last_error) == (
        OutboxStatus.PENDING, None, None, None, "nonce 4 taken")
    assert store.mark_sent(item.id, 5, b"b", "0x02")
    store.mark_done(item.id)
    assert not store.unsign(item.id, "0x02", "too late")


def test_failed_write_keeps_its_error_and_leaves_the_queue(store: Store) -> None:
    """A failed write records why and is no longer pending."""
    item = store.enqueue("register_record", {}, CUSTODIAN)
    store.mark_failed(item.id, "RecordRegistryNotCustodian('0x01', '0x02')")
    failed = store.get_outbox(item.id)
    assert failed is not None and failed.status is OutboxStatus.FAILED
    assert failed.last_error is not None and failed.last_error.startswith("RecordRegistryNotCustodian")
    assert store.pending() == []


def test_pending_is_oldest_first_limited_and_per_signer(store: Store) -> None:
    """pending lists unfinished writes in queue order, up to `limit`, of one signer if asked."""
    ids = [store.enqueue("k", {"n": n}, CUSTODIAN if n % 2 == 0 else SUBJECT).id for n in range(6)]
    store.mark_sent(ids[0], 0, b"x", "0x00")
    store.mark_done(ids[2])
    assert [i.id for i in store.pending()] == [ids[0], ids[1], ids[3], ids[4], ids[5]]
    assert [i.id for i in store.pending(limit=2)] == [ids[0], ids[1]]
    assert [i.id for i in store.pending(signer=CUSTODIAN.lower())] == [ids[0], ids[4]]
    assert [i.payload["n"] for i in store.pending(signer=SUBJECT)] == [1, 3, 5]


def test_count_by_status_names_every_status(store: Store) -> None:
    """count_by_status reports every status, zero included."""
    assert store.count_by_status() == {"pending": 0, "sent": 0, "done": 0, "failed": 0}
    a, b, _ = (store.enqueue("k", {}, CUSTODIAN) for _ in range(3))
    store.mark_sent(a.id, 0, b"x", "0x00")
    store.mark_failed(b.id, "boom")
    assert store.count_by_status() == {"pending": 1, "sent": 1, "done": 0, "failed": 1}


def test_attempts_count_rebroadcasts(store: Store) -> None:
    """note_attempt counts a rebroadcast and keeps its error."""
    item = store.enqueue("k", {}, CUSTODIAN)
    store.mark_sent(item.id, 0, b"x", "0x00")
    store.note_attempt(item.id, "not mined in 30 s")
    again = store.get_outbox(item.id)
    assert again is not None and (again.attempts, again.last_error) == (2, "not mined in 30 s")


def test_outbox_of_record_lists_its_writes_in_order(store: Store) -> None:
    """outbox_of_record returns the rows queued for one record, oldest first."""
    first = store.enqueue("register_record", {}, CUSTODIAN, record_id="0xaa")
    store.enqueue("register_record", {}, CUSTODIAN, record_id="0xbb")
    second = store.enqueue("tombstone", {}, CUSTODIAN, record_id="0xaa")
    assert [i.id for i in store.outbox_of_record("0xaa")] == [first.id, second.id]


def test_unknown_outbox_row_is_not_found(store: Store) -> None:
    """Marking a row that does not exist raises NotFoundError; reading it gives None."""
    assert store.get_outbox(12345) is None
    with pytest.raises(NotFoundError):
        store.mark_done(12345)
