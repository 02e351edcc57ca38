"""The outbox relay on a chain that mines at an interval: independent rows share a block instead of one block each."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consentledger import governance
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import ChainKind, start_node
from consentledger.chain.relay import OutboxRelay, register_record_payload, tombstone_payload
from consentledger.store import OutboxStatus, Store, StoredRecord, create_schema, make_engine
from consentledger.types import Address, Role, Sensitivity, TombstoneReason

pytestmark = pytest.mark.process

CATEGORY = 1
ADMIN, CUSTODIAN = 0, 1


@dataclass
class Interval:
    """A deployment with one custodian on an anvil mining a block a second, and a SQLite store."""

    ledger: Ledger
    store: Store

    def queue(self, count: int) -> list[StoredRecord]:
        """Store `count` records of the custodian, each with its register_record row."""
        custodian = dev_account(CUSTODIAN).address
        queued = []
        for _ in range(count):
            record = StoredRecord(
                record_id="0x" + os.urandom(32).hex(), custodian=Address(custodian), subject=Address(custodian),
                category=CATEGORY, ciphertext=b"sealed", wrapped_dek=b"dek", kek_id="kek-1", salt=os.urandom(16),
                commitment=os.urandom(32), request_hash="h",
            )
            queued.append(self.store.add_record(record, outbox_kind="register_record",
                                                outbox_payload=register_record_payload(record), signer=custodian))
        return queued

    def relay(self, pipeline: int) -> OutboxRelay:
        """Return the custodian's relay sending up to `pipeline` rows before the first is mined."""
        return OutboxRelay(self.store, self.ledger, self.ledger.sender(dev_account(CUSTODIAN)), pipeline=pipeline)

    def blocks_of(self, records: list[StoredRecord]) -> list[int]:
        """Return the block each record's registration was mined in."""
        w3 = self.ledger.w3
        rows = [row for r in records for row in self.store.outbox_of_record(r.record_id)
                if row.kind == "register_record"]
        assert all(row.status is OutboxStatus.DONE for row in rows), [row.status for row in rows]
        return [int(w3.eth.get_transaction_receipt(str(row.tx_hash))["blockNumber"]) for row in rows]


@pytest.fixture(scope="module")
def interval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interval]:
    """One custodian admitted on its own anvil (1 s blocks, free gas)."""
    with start_node(ChainKind.ANVIL, block_time=1, free_gas=True) as node:
        w3 = connect(node.rpc_url)
        admin = dev_account(ADMIN)
        ledger = deploy(w3, admin, [admin.address], 1)
        proposer = ledger.sender(admin)
        for action in (
            governance.add_purpose(1, "epidemic-control"),
            governance.add_category(CATEGORY, "contact-trace", Sensitivity.PROTECTED, 86_400, ["name"], ["name"], [1]),
            governance.admit_member(dev_account(CUSTODIAN).address, Role.CUSTODIAN, "health bureau"),
        ):
            ledger.propose(proposer, action)
        engine = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('pipeline')) / 'gateway.sqlite'}")
        create_schema(engine)
        yield Interval(ledger, Store(engine))
        engine.dispose()


def test_independent_registrations_land_in_one_block_not_one_block_each(interval: Interval) -> None:
    """Eight registrations relayed 8 deep share a block or two; four relayed one by one take four blocks."""
    together = interval.queue(8)
    assert interval.relay(pipeline=8).run_once() == 8
    blocks = interval.blocks_of(together)
    assert blocks == sorted(blocks) and blocks[-1] - blocks[0] <= 1, blocks

    alone = interval.queue(4)
    assert interval.relay(pipeline=1).run_once() == 4
    blocks = interval.blocks_of(alone)
    assert len(set(blocks)) == 4, blocks


def test_a_tombstone_behind_its_own_registration_waits_for_it(interval: Interval) -> None:
    """register X, register Y, tombstone X: X's tombstone is not sent before X is mined, and all three land."""
    x, y = interval.queue(2)
    custodian = dev_account(CUSTODIAN).address
    interval.store.enqueue("tombstone", tombstone_payload(x.record_id, TombstoneReason.ERASURE), signer=custodian,
                           record_id=x.record_id)
    assert interval.relay(pipeline=8).run_once() == 3
    (registered_x,), (registered_y,) = interval.blocks_of([x]), interval.blocks_of([y])
    tombstones = [row for row in interval.store.outbox_of_record(x.record_id) if row.kind == "tombstone"]
    assert [row.status for row in tombstones] == [OutboxStatus.DONE]
    w3 = interval.ledger.w3
    tombstoned = int(w3.eth.get_transaction_receipt(str(tombstones[0].tx_hash))["blockNumber"])
    assert registered_x == registered_y < tombstoned
    assert interval.ledger.record(bytes.fromhex(x.record_id[2:])).tombstone == TombstoneReason.ERASURE
