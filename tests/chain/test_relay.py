"""The outbox relay on a real ganache chain: one on-chain effect per row, whatever crashes when."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from consentledger import governance
from consentledger.chain.accounts import dev_accounts
from consentledger.chain.compile import ContractArtifact, compile_contracts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.funds import SignerFunds
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import LocalNode
from consentledger.chain.relay import OutboxRelay, register_record_payload, tombstone_payload
from consentledger.chain.transfer import send_value
from consentledger.store import OutboxItem, OutboxStatus, RecordState, Store, StoredRecord, create_schema, make_engine
from consentledger.types import Address, Role, Sensitivity, TombstoneReason

pytestmark = pytest.mark.process

CATEGORY = 1
# Dev accounts 16-19 are this module's own, so no other test's nonces or memberships interfere.
ADMIN, CUSTODIAN, OTHER_CUSTODIAN, OUTSIDER = 16, 17, 18, 19


@dataclass
class World:
    """A fresh deployment with two custodians and an outsider, and a SQLite store."""

    w3: Web3
    ledger: Ledger
    artifacts: dict[str, ContractArtifact]
    store: Store
    custodian: LocalAccount
    other_custodian: LocalAccount
    outsider: LocalAccount
    pipeline: int  # rows the relays send before the first is mined (1: one at a time)

    def relay(self, account: LocalAccount, *, restarted: bool = False, **options: float) -> OutboxRelay:
        """Return a relay for `account`; `restarted` gives it a new Ledger, as a new process would have."""
        ledger = Ledger(self.w3, self.ledger.deployment, self.artifacts) if restarted else self.ledger
        sender = ledger.sender(account)
        if "timeout" in options:
            sender.timeout = options.pop("timeout")
        return OutboxRelay(self.store, ledger, sender, **{"pipeline": self.pipeline, **options})  # type: ignore[arg-type]

    def add_record(self, custodian: LocalAccount | None = None) -> StoredRecord:
        """Store a new record of `custodian` (default: the custodian) with its register_record row."""
        account = custodian or self.custodian
        record = StoredRecord(
            record_id="0x" + os.urandom(32).hex(), custodian=Address(account.address),
            subject=Address(self.outsider.address), category=CATEGORY, ciphertext=b"sealed", wrapped_dek=b"dek",
            kek_id="kek-1", salt=os.urandom(16), commitment=os.urandom(32), request_hash="h",
        )
        return self.store.add_record(record, outbox_kind="register_record",
                                     outbox_payload=register_record_payload(record), signer=account.address)

    def row_of(self, record: StoredRecord) -> OutboxItem:
        """Return the outbox row that registers `record`."""
        (item,) = self.store.outbox_of_record(record.record_id)
        return item

    def nonce(self, account: LocalAccount) -> int:
        """Return how many transactions `account` has sent (mined or pending)."""
        return self.w3.eth.get_transaction_count(account.address, "pending")


@pytest.fixture(scope="module")
def artifacts() -> dict[str, ContractArtifact]:
    """The compiled contracts (from the build cache after the first compile)."""
    return compile_contracts()


@pytest.fixture(params=[1, 4], ids=["one-by-one", "pipelined"])
def world(ganache: LocalNode, artifacts: dict[str, ContractArtifact], tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[World]:
    """A fresh consortium: one admin, a category, two custodians; an empty SQLite store; relays one by one or 4 deep."""
    w3 = connect(ganache.rpc_url)
    admin, custodian, other, outsider = (dev_accounts(20)[i] for i in (ADMIN, CUSTODIAN, OTHER_CUSTODIAN, OUTSIDER))
    ledger = deploy(w3, admin, [admin.address], 1, artifacts=artifacts)
    proposer = ledger.sender(admin)
    for action in (
        governance.add_purpose(1, "epidemic-control"),
        governance.add_category(CATEGORY, "contact-trace", Sensitivity.PROTECTED, 86_400, ["name"], ["name"], [1]),
        governance.admit_member(custodian.address, Role.CUSTODIAN, "health bureau"),
        governance.admit_member(other.address, Role.CUSTODIAN, "labour bureau"),
    ):
        ledger.propose(proposer, action)
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    create_schema(engine)
    yield World(w3, ledger, artifacts, Store(engine), custodian, other, outsider, request.param)
    engine.dispose()


def test_pending_registration_is_relayed_and_the_record_marked_registered(world: World) -> None:
    """A stored record's row goes on chain with its commitment; the row is done, the record registered."""
    record = world.add_record()
    assert world.relay(world.custodian).run_once() == 1
    on_chain = world.ledger.record(bytes.fromhex(record.record_id[2:]))
    assert (on_chain.custodian, on_chain.subject, on_chain.commitment) == (
        world.custodian.address, world.outsider.address, record.commitment,
    )
    row = world.row_of(record)
    assert row.status is OutboxStatus.DONE and row.tx_hash is not None
    assert world.w3.eth.get_transaction_receipt(row.tx_hash)["status"] == 1  # type: ignore[arg-type]
    stored = world.store.get_record(record.record_id)
    assert stored is not None and stored.state is RecordState.REGISTERED


def test_crash_after_persisting_before_broadcast_sends_the_same_transaction_once(world: World) -> None:
    """A row signed and persisted but never broadcast is sent by the next process: same hash, same nonce."""
    record = world.add_record()
    before = world.nonce(world.custodian)
    signed = world.relay(world.custodian).sign_and_persist(world.row_of(record))
    assert signed is not None and signed.status is OutboxStatus.SENT and signed.tx_nonce == before
    # the process dies here; a new one starts with a new nonce allocator, and a newer row is queued
    later = world.add_record()
    assert world.relay(world.custodian, restarted=True).run_once() == 2
    row = world.row_of(record)
    assert (row.status, row.tx_hash, row.tx_nonce) == (OutboxStatus.DONE, signed.tx_hash, before)
    assert world.row_of(later).tx_nonce == before + 1  # the persisted nonce was not handed out again
    assert world.nonce(world.custodian) == before + 2
    assert world.ledger.record(bytes.fromhex(record.record_id[2:])).commitment == record.commitment


def test_crash_after_broadcast_before_done_finds_the_receipt(world: World) -> None:
    """A row broadcast and mined but not marked done is finished from its receipt; nothing is resent."""
    record = world.add_record()
    before = world.nonce(world.custodian)
    relay = world.relay(world.custodian)
    signed = relay.sign_and_persist(world.row_of(record))
    assert signed is not None and signed.raw_tx is not None and signed.tx_hash is not None
    relay.sender.broadcast(signed.raw_tx)
    relay.sender.wait_receipt(bytes.fromhex(signed.tx_hash[2:]))
    # the process dies here, before mark_done
    assert world.relay(world.custodian, restarted=True).run_once() == 1
    row = world.row_of(record)
    assert (row.status, row.tx_hash) == (OutboxStatus.DONE, signed.tx_hash)
    assert world.nonce(world.custodian) == before + 1
    stored = world.store.get_record(record.record_id)
    assert stored is not None and stored.state is RecordState.REGISTERED


def test_reverting_row_fails_with_its_rule_and_does_not_block_the_next(world: World) -> None:
    """Tombstoning another custodian's record fails naming the rule; the row after it still goes through."""
    foreign = os.urandom(32)
    world.ledger.register_record(world.ledger.sender(world.other_custodian), foreign, world.outsider.address,
                                 CATEGORY, os.urandom(32))
    failing = world.store.enqueue("tombstone", tombstone_payload("0x" + foreign.hex(), TombstoneReason.ERASURE),
                                  world.custodian.address)
    record = world.add_record()
    before = world.nonce(world.custodian)
    assert world.relay(world.custodian).run_once() == 2
    failed = world.store.get_outbox(failing.id)
    assert failed is not None and failed.status is OutboxStatus.FAILED and failed.tx_hash is None
    assert failed.last_error is not None and failed.last_error.startswith("RecordRegistryNotCustodian")
    assert world.row_of(record).status is OutboxStatus.DONE
    assert world.nonce(world.custodian) == before + 1  # the refused row took no nonce


def test_registration_by_a_non_custodian_fails_and_leaves_other_signers_rows(world: World) -> None:
    """A non-member's registration fails with the membership rule; the custodian's row is untouched, then sent."""
    outsiders = world.add_record(world.outsider)
    custodians = world.add_record()
    assert world.relay(world.outsider).run_once() == 1
    failed = world.row_of(outsiders)
    assert failed.status is OutboxStatus.FAILED
    assert failed.last_error is not None and failed.last_error.startswith("ConsortiumMemberNotActive")
    assert world.row_of(custodians).status is OutboxStatus.PENDING
    assert world.relay(world.custodian).run_once() == 1
    assert world.row_of(custodians).status is OutboxStatus.DONE


def test_twenty_queued_records_go_out_in_one_run_with_consecutive_nonces(world: World) -> None:
    """One run relays twenty rows, oldest first, with consecutive nonces and no gaps."""
    records = [world.add_record() for _ in range(20)]
    before = world.nonce(world.custodian)
    assert world.relay(world.custodian).run_once() == 20
    rows = [world.row_of(r) for r in records]
    assert all(r.status is OutboxStatus.DONE for r in rows)
    assert [r.tx_nonce for r in rows] == list(range(before, before + 20))
    assert world.nonce(world.custodian) == before + 20
    assert world.store.count_by_status() == {"pending": 0, "sent": 0, "done": 20, "failed": 0}
    assert all(s is not None and s.state is RecordState.REGISTERED
               for s in (world.store.get_record(r.record_id) for r in records))


def test_registration_already_on_chain_is_done_without_a_transaction(world: World) -> None:
    """If this custodian's record with the same commitment is already on chain, the row is simply done."""
    record = world.add_record()
    world.ledger.register_record(world.ledger.sender(world.custodian), bytes.fromhex(record.record_id[2:]),
                                 record.subject, CATEGORY, record.commitment)
    before = world.nonce(world.custodian)
    assert world.relay(world.custodian).run_once() == 1
    row = world.row_of(record)
    assert (row.status, row.tx_hash) == (OutboxStatus.DONE, None)
    assert world.nonce(world.custodian) == before
    stored = world.store.get_record(record.record_id)
    assert stored is not None and stored.state is RecordState.REGISTERED


def test_same_record_id_with_another_commitment_fails(world: World) -> None:
    """A record id already on chain with a different commitment is a real conflict: the row fails."""
    record = world.add_record()
    world.ledger.register_record(world.ledger.sender(world.custodian), bytes.fromhex(record.record_id[2:]),
                                 record.subject, CATEGORY, os.urandom(32))
    assert world.relay(world.custodian).run_once() == 1
    row = world.row_of(record)
    assert row.status is OutboxStatus.FAILED
    assert row.last_error is not None and row.last_error.startswith("RecordRegistryRecordExists")


def test_transaction_reverting_when_mined_fails_the_row_with_the_rule(world: World) -> None:
    """Another custodian takes the record id between signing and mining: the mined revert names the rule."""
    record = world.add_record()
    before = world.nonce(world.custodian)
    signed = world.relay(world.custodian).sign_and_persist(world.row_of(record))
    assert signed is not None
    world.ledger.register_record(world.ledger.sender(world.other_custodian), bytes.fromhex(record.record_id[2:]),
                                 record.subject, CATEGORY, record.commitment)
    assert world.relay(world.custodian, restarted=True).run_once() == 1
    row = world.row_of(record)
    assert (row.status, row.tx_hash) == (OutboxStatus.FAILED, signed.tx_hash)
    assert row.last_error is not None and row.last_error.startswith("RecordRegistryRecordExists")
    assert world.nonce(world.custodian) == before + 1  # the one signed transaction, mined and reverted
    stored = world.store.get_record(record.record_id)
    assert stored is not None and stored.state is RecordState.PENDING


def test_row_whose_nonce_another_transaction_took_is_signed_again_and_lands_once(world: World) -> None:
    """If something else used a sent row's nonce, its transaction can never be mined: the row is signed again with
    a fresh nonce and lands once, saying why."""
    record = world.add_record()
    signed = world.relay(world.custodian).sign_and_persist(world.row_of(record))
    assert signed is not None and signed.tx_nonce is not None
    # A process that ignores the outbox sends from the same signer and takes the same nonce.
    world.ledger.register_record(world.relay(world.custodian, restarted=True).sender, os.urandom(32),
                                 world.outsider.address, CATEGORY, os.urandom(32))
    assert world.relay(world.custodian, restarted=True, rebroadcast_after=0.3, timeout=5).run_once() == 1
    row = world.row_of(record)
    assert (row.status, row.tx_nonce) == (OutboxStatus.DONE, signed.tx_nonce + 1)
    assert row.tx_hash is not None and row.tx_hash != signed.tx_hash
    assert row.last_error is not None and "used by another transaction" in row.last_error
    assert world.ledger.record(bytes.fromhex(record.record_id[2:])).commitment == record.commitment
    assert world.nonce(world.custodian) == signed.tx_nonce + 2  # the other transaction and ours, nothing more
    stored = world.store.get_record(record.record_id)
    assert stored is not None and stored.state is RecordState.REGISTERED


def _transfer_out_of_band(world: World, account: LocalAccount) -> None:
    """Send a plain value transfer with `account`'s key, as a script outside the gateway would (own nonce)."""
    nonce = world.w3.eth.get_transaction_count(account.address, "pending")
    tx = {"to": world.outsider.address, "value": 1, "gas": 21_000, "gasPrice": world.w3.eth.gas_price,
          "nonce": nonce, "chainId": world.w3.eth.chain_id}
    sent = world.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    assert world.w3.eth.wait_for_transaction_receipt(sent)["status"] == 1


def test_row_signed_after_an_out_of_band_transaction_is_signed_again_not_failed(world: World) -> None:
    """The relay's nonce counter is one behind after a transfer sent with its key elsewhere: the node refuses the
    row's first transaction (nonce used), and the row is signed again with the next nonce and lands."""
    relay = world.relay(world.custodian)
    first = world.add_record()
    assert relay.run_once() == 1 and world.row_of(first).status is OutboxStatus.DONE
    _transfer_out_of_band(world, world.custodian)
    before = world.nonce(world.custodian)

    record = world.add_record()
    assert relay.run_once() == 1

    row = world.row_of(record)
    assert (row.status, row.tx_nonce) == (OutboxStatus.DONE, before)
    assert row.last_error is not None and "taken by another transaction" in row.last_error
    assert world.ledger.record(bytes.fromhex(record.record_id[2:])).commitment == record.commitment
    assert world.nonce(world.custodian) == before + 1


def test_direct_send_after_an_out_of_band_transaction_resyncs_and_lands(world: World) -> None:
    """A direct transaction (not through the outbox) refused for a used nonce is signed again and mined once."""
    sender = world.ledger.sender(world.custodian)
    world.ledger.register_record(sender, os.urandom(32), world.outsider.address, CATEGORY, os.urandom(32))
    _transfer_out_of_band(world, world.custodian)
    before = world.nonce(world.custodian)
    record = os.urandom(32)

    receipt = world.ledger.register_record(sender, record, world.outsider.address, CATEGORY, os.urandom(32))

    assert receipt["status"] == 1
    assert world.ledger.record(record).custodian == world.custodian.address
    assert world.nonce(world.custodian) == before + 1


def test_derived_record_whose_source_died_before_registration_is_shredded_with_the_failed_row(world: World) -> None:
    """A derived record's source is tombstoned before its registration lands: the chain refuses it for good, the
    row fails naming the rule, and the record's key, ciphertext and salt are shredded (nothing to tombstone)."""
    source = os.urandom(32)
    sender = world.ledger.sender(world.custodian)
    world.ledger.register_record(sender, source, world.outsider.address, CATEGORY, os.urandom(32))
    world.ledger.tombstone(sender, source, TombstoneReason.ERASURE)
    record = StoredRecord(
        record_id="0x" + os.urandom(32).hex(), custodian=Address(world.custodian.address),
        subject=Address("0x" + "00" * 20), category=CATEGORY, ciphertext=b"sealed", wrapped_dek=b"dek",
        kek_id="kek-1", salt=os.urandom(16), commitment=os.urandom(32), request_hash="h",
        derived_from=("0x" + source.hex(),),
    )
    world.store.add_record(record, outbox_kind="register_record", outbox_payload=register_record_payload(record),
                           signer=world.custodian.address)
    kept = world.add_record()

    assert world.relay(world.custodian).run_once() == 2

    row = world.row_of(record)
    assert row.status is OutboxStatus.FAILED
    assert row.last_error is not None and row.last_error.startswith("RecordRegistryRecordTombstoned")
    stored = world.store.get_record(record.record_id)
    assert stored is not None and stored.state is RecordState.SHREDDED
    assert (stored.wrapped_dek, stored.ciphertext, stored.salt) == (b"", b"", b"")
    assert world.store.outbox_of_record(record.record_id) == [row]
    kept_stored = world.store.get_record(kept.record_id)
    assert kept_stored is not None and kept_stored.state is RecordState.REGISTERED


def test_unknown_kind_and_malformed_payload_fail_without_a_transaction(world: World) -> None:
    """Rows the relay cannot build fail with a reason; they take no nonce and block nothing."""
    unknown = world.store.enqueue("mint_tokens", {}, world.custodian.address)
    malformed = world.store.enqueue("tombstone", {"record_id": "0x1234", "reason": 2}, world.custodian.address)
    record = world.add_record()
    before = world.nonce(world.custodian)
    assert world.relay(world.custodian).run_once() == 3
    for item_id, reason in ((unknown.id, "unknown outbox kind"), (malformed.id, "malformed tombstone payload")):
        row = world.store.get_outbox(item_id)
        assert row is not None and row.status is OutboxStatus.FAILED
        assert row.last_error is not None and row.last_error.startswith(reason)
    assert world.row_of(record).status is OutboxStatus.DONE
    assert world.nonce(world.custodian) == before + 1


def test_tombstone_is_relayed_once_even_if_already_on_chain(world: World) -> None:
    """A tombstone row goes on chain; a second row for the same tombstone finds it done, sending nothing."""
    record = world.add_record()
    relay = world.relay(world.custodian)
    relay.run_once()
    payload = tombstone_payload(record.record_id, TombstoneReason.ERASURE)
    first = world.store.enqueue("tombstone", payload, world.custodian.address, record.record_id)
    assert relay.run_once() == 1
    before = world.nonce(world.custodian)
    again = world.store.enqueue("tombstone", payload, world.custodian.address, record.record_id)
    assert relay.run_once() == 1
    assert world.ledger.record(bytes.fromhex(record.record_id[2:])).tombstone is TombstoneReason.ERASURE
    first_row, again_row = world.store.get_outbox(first.id), world.store.get_outbox(again.id)
    assert first_row is not None and first_row.status is OutboxStatus.DONE and first_row.tx_hash is not None
    assert again_row is not None and again_row.status is OutboxStatus.DONE and again_row.tx_hash is None
    assert world.nonce(world.custodian) == before


def fresh_custodian(world: World) -> LocalAccount:
    """Admit a new key as a custodian (it holds no ether) and return it."""
    fresh: LocalAccount = Account.create()
    admin = world.ledger.sender(dev_accounts(20)[ADMIN])
    world.ledger.propose(admin, governance.admit_member(fresh.address, Role.CUSTODIAN, "unfunded bureau"))
    return fresh


def test_rows_of_a_signer_that_cannot_pay_stay_pending_until_it_is_funded(world: World) -> None:
    """No ether: a run signs nothing and sends nothing, the row stays pending with the reason; funded, it lands."""
    fresh = fresh_custodian(world)
    record = world.add_record(fresh)

    assert world.relay(fresh).run_once() == 0
    row = world.row_of(record)
    assert (row.status, row.tx_hash, row.tx_nonce) == (OutboxStatus.PENDING, None, None)
    assert row.last_error is not None and f"signer {fresh.address} has 0 wei" in row.last_error
    assert world.nonce(fresh) == 0
    send_value(world.ledger.sender(world.custodian), fresh.address, 10**17)

    assert world.relay(fresh).run_once() == 1
    assert world.row_of(record).status is OutboxStatus.DONE
    assert world.ledger.record(bytes.fromhex(record.record_id[2:])).custodian == fresh.address


def test_a_row_the_node_refuses_for_funds_goes_back_to_pending_and_lands_once_funded(world: World) -> None:
    """The signer's balance was read while it sufficed, then spent elsewhere: the node refuses the broadcast, and the
    row is unsigned again (it never entered the pool), not failed; funded, the next run signs it afresh and it lands
    exactly once."""
    fresh = fresh_custodian(world)
    send_value(world.ledger.sender(world.custodian), fresh.address, 10**16)
    relay = world.relay(fresh)
    relay.sender.funds = SignerFunds(world.w3, fresh.address, relay.sender.params, ttl=3600)
    relay.sender.funds.require()  # read now, while it suffices: the cache keeps it for an hour
    price = world.w3.eth.gas_price
    send_value(relay.sender, world.custodian.address, 10**16 - 21_000 * price - 1)  # spends all but 1 wei
    record = world.add_record(fresh)

    assert relay.run_once() == 0
    row = world.row_of(record)
    assert (row.status, row.tx_hash, row.raw_tx) == (OutboxStatus.PENDING, None, None)
    assert row.last_error is not None, row
    assert row.last_error.startswith("the node refused the transaction (insufficient funds"), row.last_error
    assert f"signer {fresh.address} has 1 wei" in row.last_error
    assert world.nonce(fresh) == 1  # the spending transfer only
    send_value(world.ledger.sender(world.custodian), fresh.address, 10**17)

    assert relay.run_once() == 1
    done = world.row_of(record)
    assert (done.status, done.tx_nonce) == (OutboxStatus.DONE, 1)
    assert world.nonce(fresh) == 2
