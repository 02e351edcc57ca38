"""After a signer rotation the gateway takes over its predecessor key's records and unsigned chain writes."""

from __future__ import annotations

from collections.abc import Callable

from eth_account import Account
from sqlalchemy import select

from consentledger.store import Store, StoredRecord
from consentledger.store.custody import adopt_predecessors
from consentledger.store.tables import outbox, records
from consentledger.types import Address

from .conftest import CUSTODIAN

MakeRecord = Callable[..., StoredRecord]
NEW_KEY = Address(Account.from_key(b"\x03" * 32).address)
STRANGER = Address(Account.from_key(b"\x04" * 32).address)


def test_records_of_a_rotated_key_move_to_its_successor_and_no_one_elses(
    store: Store, make_record: MakeRecord
) -> None:
    """CUSTODIAN rotated to NEW_KEY: its records and its unsigned outbox row follow; a stranger's stay put,
    and a row already signed by the old key is left to the relay."""
    mine = [make_record(), make_record()]
    theirs = make_record(custodian=STRANGER)
    for record in (*mine, theirs):
        store.add_record(record, outbox_kind="register_record", outbox_payload={"record_id": record.record_id},
                         signer=record.custodian)
    signed_item = store.pending(signer=CUSTODIAN)[0]
    store.mark_sent(signed_item.id, 7, b"raw", "0x" + "ab" * 32)
    rotations = {CUSTODIAN: NEW_KEY}

    adopted = adopt_predecessors(store.engine, NEW_KEY, lambda account: rotations.get(account, account))

    assert adopted == {CUSTODIAN: 2}
    with store.engine.connect() as conn:
        holders = dict(conn.execute(select(records.c.record_id, records.c.custodian)).all())
        signers = dict(conn.execute(select(outbox.c.id, outbox.c.signer)).all())
    assert holders == {mine[0].record_id: NEW_KEY, mine[1].record_id: NEW_KEY, theirs.record_id: STRANGER}
    assert signers[signed_item.id] == CUSTODIAN
    assert sorted(signers.values()) == sorted([CUSTODIAN, NEW_KEY, STRANGER])
    assert adopt_predecessors(store.engine, NEW_KEY, lambda account: rotations.get(account, account)) == {}
