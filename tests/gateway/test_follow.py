"""Custodians follow the chain's tombstones: derived data dies with its sources across agencies, a tombstone sent
with the org's key outside the gateway shreds the record, and a nonce taken outside the gateway loses no write.

A second custodian, the clinic, runs its own gateway for this module. It signs with a fresh account funded by the
admin, so no other test shares its key and nonces; its key is also used "outside the gateway" here, on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from consentledger.chain.node import LocalNode
from consentledger.client import GatewayClient
from consentledger.gateway.admin.setup import init_agency
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV, Agency, admit
from consentledger.ports import held_port, hold_port
from consentledger.store import OutboxStatus, RecordState, Store, StoredRecord, make_engine
from consentledger.store.tables import records
from consentledger.types import RecordKind, Role, TombstoneReason

from .conftest import SWEEP_OFTEN
from .lifecycle import eventually, tombstones_on_chain
from .world import DISTRICT_STATS, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process

REORG_DEPTH = 12
"""The indexer's default reorg depth: how many blocks back a gateway's later rounds look for tombstones again."""


@dataclass(frozen=True)
class Clinic:
    """The second custodian: its agency (a running gateway) and the account it signs with."""

    agency: Agency
    account: LocalAccount

    def store(self) -> Store:
        """Return a Store over the clinic's SQLite database (the one its gateway writes)."""
        return Store(make_engine(f"sqlite:///{self.agency.directory / 'agency.db'}"))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """Send a request to the clinic's gateway signed by the clinic itself."""
        return signed(self.agency, bytes(self.account.key), method, path, body)

    def put(self, body: dict[str, Any]) -> str:
        """Collect a record at the clinic; return its id once registered on chain."""
        answer = expect(self.request("POST", "/v1/records", body), 201)
        return str(answer["record"])

    def stored(self, record: str) -> StoredRecord:
        """Return the clinic's stored row of `record`."""
        stored = self.store().get_record(record)
        assert stored is not None, record
        return stored


def _fund(consortium: Consortium, address: str) -> None:
    """Send 10 ETH from the admin to `address`, through the admin's own nonce allocator."""
    admin, w3 = consortium.admin, consortium.ledger.w3
    with admin.nonces.signing_lock(admin.address):
        tx = {"to": address, "value": 10 * 10**18, "gas": 21_000, "gasPrice": w3.eth.gas_price,
              "nonce": admin.nonces.allocate(admin.address), "chainId": w3.eth.chain_id}
        signed_tx = admin.account.sign_transaction(tx)
        admin.broadcast(bytes(signed_tx.raw_transaction))
    admin.wait_receipt(bytes(signed_tx.hash))


@pytest.fixture(scope="module")
def clinic(consortium: Consortium, ganache: LocalNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    """The clinic: a custodian admitted by governance, its gateway running (sweeping every second)."""
    account: LocalAccount = Account.create()
    _fund(consortium, account.address)
    directory = tmp_path_factory.mktemp("clinic") / "clinic"
    manifest = consortium.health.directory.parent / "deployment.json"
    hold = hold_port()  # kept until the gateway inherits it: no other process can take the port
    created = init_agency(directory, "clinic", DEV_PASSWORD, rpc_url=ganache.rpc_url, manifest=manifest,
                          port=held_port(hold), password_env=PASSWORD_ENV, account=account)
    with created.config.open("a") as config:
        # As every test gateway of the package (world.start_consortium): org keys call, and it sweeps every second.
        config.writelines(f"{key} = {json.dumps(value)}\n"
                          for key, value in {"allow_org_key_requests": True, **SWEEP_OFTEN}.items())
    agency = Agency("clinic", directory, created, hold=hold)
    admit(consortium.ledger, consortium.admin, [], agency, Role.CUSTODIAN)
    agency.start()
    try:
        yield Clinic(agency, account)
    finally:
        agency.stop()
        agency.release()


def _release(consortium: Consortium, clinic: Clinic, requester_key: bytes, answer: dict[str, Any]) -> httpx.Response:
    """Ask the clinic again for the key of an access made earlier (its record, seq and block)."""
    return signed(clinic.agency, requester_key, "POST", f"/v1/keys/{answer['record']}/{answer['seq']}",
                  {"block": answer["block"]})


def _shredded(store: Store, record: str) -> bool:
    stored = store.get_record(record)
    return stored is not None and stored.state is RecordState.SHREDDED


def _eventually_destroyed(consortium: Consortium, store: Store, record: str) -> None:
    """Wait until `record` is shredded in `store` and tombstoned SOURCE_DESTROYED on chain, once."""
    eventually(lambda: _shredded(store, record), bool, what=f"{record} shredded")
    _assert_shredded(store, record)
    eventually(lambda: tombstones_on_chain(consortium.ledger, record),
               lambda t: t == [TombstoneReason.SOURCE_DESTROYED], what=f"{record} tombstoned")


def _assert_shredded(store: Store, record: str) -> None:
    with store.engine.connect() as conn:
        row = conn.execute(select(records.c.ciphertext, records.c.wrapped_dek, records.c.salt, records.c.state)
                           .where(records.c.record_id == record)).one()
    assert tuple(row) == (b"", b"", b"", RecordState.SHREDDED.value)


def test_erasure_at_one_custodian_ends_what_another_derived_from_it(consortium: Consortium, clinic: Clinic) -> None:
    """C's lab result at health feeds health's analysis and the clinic's analysis of that analysis; transport read
    the clinic's. C erases at health: the clinic refuses the old access at once (410 source_destroyed), then
    shreds its record and tombstones it SOURCE_DESTROYED, as health does with its own derived record."""
    subject = Account.create()
    source = consortium.ingest({"test": "pcr", "result": "positive"}, category=LAB_RESULT, subject=subject.address)
    analysis = expect(signed(consortium.health, consortium.key(consortium.health), "POST", "/v1/records",
                             {"category": LAB_RESULT, "payload": {"test": "cohort", "result": "1/1"},
                              "derived_from": [source]}), 201)["record"]
    derived = clinic.put({"category": LAB_RESULT, "payload": {"test": "cohort-2", "result": "1/1"},
                          "derived_from": [analysis]})
    on_chain = consortium.ledger.record(bytes.fromhex(derived[2:]))
    assert (on_chain.kind, on_chain.derived_from) == (RecordKind.DERIVED, (bytes.fromhex(source[2:]),))
    consent = consortium.grant(subject, consortium.transport, LAB_RESULT, record=bytes.fromhex(derived[2:]),
                               max_uses=5)
    accessed = expect(consortium.access(consortium.transport, derived, [consent]), 200)
    assert accessed["payload"]["result"] == "1/1"

    with GatewayClient(consortium.health.url, subject) as client:
        client.request_erasure()
    eventually(lambda: tombstones_on_chain(consortium.ledger, source), lambda t: t == [TombstoneReason.ERASURE],
               what="the source tombstoned")

    refused = expect(_release(consortium, clinic, consortium.key(consortium.transport), accessed), 410,
                     "record_destroyed")
    assert refused["reason"] == "source_destroyed" and refused["record"] == derived
    for custodian_store, record in ((clinic.store(), derived), (consortium.store(consortium.health), analysis)):
        _eventually_destroyed(consortium, custodian_store, record)
    gone = expect(clinic.request("GET", f"/v1/records/{derived}"), 410, "record_destroyed")
    assert gone["reason"] == "source_destroyed"
    eventually(lambda: expect(clinic.request("GET", f"/v1/records/{derived}"), 410)["tombstone"]["status"],
               lambda status: status == "on chain", what="the tombstone shown on chain")
    expect(_release(consortium, clinic, consortium.key(consortium.transport), accessed), 410, "record_destroyed")


def test_an_aggregate_dies_with_a_tombstoned_source(consortium: Consortium, clinic: Clinic) -> None:
    """District figures at the clinic over two subjects' results at health, read by police: one subject erases at
    health, and the clinic refuses the old access, shreds the aggregate and tombstones it SOURCE_DESTROYED."""
    first, second = Account.create(), Account.create()
    sources = [consortium.ingest({"test": "pcr", "result": r}, category=LAB_RESULT, subject=s.address)
               for s, r in ((first, "positive"), (second, "negative"))]
    for subject, source in zip((first, second), sources, strict=True):
        consortium.attest(subject, source)  # only attested sources count toward the category's K
    aggregate = clinic.put({"category": DISTRICT_STATS, "payload": {"district": "West", "cases": 1},
                            "derived_from": sources, "aggregate": True})
    accessed = expect(consortium.access(consortium.police, aggregate), 200)
    other = clinic.put({"category": DISTRICT_STATS, "payload": {"district": "West", "cases": 2},
                        "subject": second.address})

    with GatewayClient(consortium.health.url, first) as client:
        client.request_erasure()
    eventually(lambda: tombstones_on_chain(consortium.ledger, sources[0]), lambda t: t == [TombstoneReason.ERASURE],
               what="the first source tombstoned")

    refused = expect(_release(consortium, clinic, consortium.key(consortium.police), accessed), 410,
                     "record_destroyed")
    assert refused["reason"] == "source_destroyed"
    eventually(lambda: tombstones_on_chain(consortium.ledger, aggregate),
               lambda t: t == [TombstoneReason.SOURCE_DESTROYED], what="the aggregate tombstoned")
    _assert_shredded(clinic.store(), aggregate)
    expect(consortium.access(consortium.police, aggregate), 403, "rule_violated", "RecordRegistryRecordTombstoned")
    assert expect(clinic.request("GET", f"/v1/records/{other}"), 200)["state"] == "registered"
    assert tombstones_on_chain(consortium.ledger, other) == []


def test_a_custodian_down_when_the_source_died_ends_its_derived_record_on_start(
    consortium: Consortium, clinic: Clinic
) -> None:
    """The clinic's gateway is stopped while the source of its analysis is erased at health: started again, it
    shreds and tombstones the analysis (its first round looks at every tombstone the index holds)."""
    subject = Account.create()
    source = consortium.ingest({"test": "pcr", "result": "negative"}, category=LAB_RESULT, subject=subject.address)
    derived = clinic.put({"category": LAB_RESULT, "payload": {"test": "cohort-3", "result": "0/1"},
                          "derived_from": [source]})
    clinic.agency.stop()
    try:
        with GatewayClient(consortium.health.url, subject) as client:
            client.request_erasure()
        eventually(lambda: tombstones_on_chain(consortium.ledger, source), lambda t: t == [TombstoneReason.ERASURE],
                   what="the source tombstoned")
        assert clinic.stored(derived).state is RecordState.REGISTERED  # nobody was there to act
        for _ in range(REORG_DEPTH + 8):  # the tombstone lies deeper than any block a later round reads again
            consortium.ledger.w3.provider.make_request("evm_mine", [])
    finally:
        clinic.agency.start()

    _eventually_destroyed(consortium, clinic.store(), derived)


def test_a_tombstone_sent_with_the_orgs_key_outside_the_gateway_shreds_the_record(
    consortium: Consortium, clinic: Clinic
) -> None:
    """The clinic's key tombstones one of its records directly on the contract: the gateway shreds it (ciphertext,
    wrapped key, salt) within a few upkeep rounds, says 410 with the chain's reason, and sends no second tombstone."""
    record = clinic.put({"category": DISTRICT_STATS, "payload": {"district": "South", "cases": 3},
                         "subject": Account.create().address})
    kept = clinic.put({"category": DISTRICT_STATS, "payload": {"district": "South", "cases": 4},
                       "subject": Account.create().address})

    consortium.ledger.tombstone(consortium.ledger.sender(clinic.account), bytes.fromhex(record[2:]),
                                TombstoneReason.CUSTODIAN)

    eventually(lambda: _shredded(clinic.store(), record), bool, what="the record shredded")
    _assert_shredded(clinic.store(), record)
    gone = expect(clinic.request("GET", f"/v1/records/{record}"), 410, "record_destroyed")
    assert (gone["reason"], gone["tombstone"]["status"]) == ("custodian", "on chain")
    assert [w.kind for w in clinic.store().outbox_of_record(record)] == ["register_record"]
    assert tombstones_on_chain(consortium.ledger, record) == [TombstoneReason.CUSTODIAN]
    assert clinic.stored(kept).state is RecordState.REGISTERED


def test_a_record_collected_after_an_out_of_band_transaction_is_registered_not_failed(
    consortium: Consortium, clinic: Clinic
) -> None:
    """A plain value transfer sent with the clinic's key takes the nonce its gateway would use next; the next
    record collected is still registered on chain (its write signed again with a fresh nonce), not failed."""
    w3 = consortium.ledger.w3
    clinic.put({"category": DISTRICT_STATS, "payload": {"district": "North", "cases": 5},
                "subject": Account.create().address})  # the gateway's nonce counter is warm
    tx = {"to": Account.create().address, "value": 1, "gas": 21_000, "gasPrice": w3.eth.gas_price,
          "nonce": w3.eth.get_transaction_count(clinic.account.address, "pending"), "chainId": w3.eth.chain_id}
    sent = w3.eth.send_raw_transaction(clinic.account.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(sent)["status"] == 1

    answer = clinic.request("POST", "/v1/records", {"category": DISTRICT_STATS,
                                                    "payload": {"district": "North", "cases": 6},
                                                    "subject": Account.create().address})
    assert answer.status_code in (201, 202), answer.text
    record = str(answer.json()["record"])

    eventually(lambda: clinic.stored(record).state, lambda s: s is RecordState.REGISTERED, what="registered")
    (write,) = clinic.store().outbox_of_record(record)
    assert write.status is OutboxStatus.DONE
    assert consortium.ledger.record(bytes.fromhex(record[2:])).commitment == clinic.stored(record).commitment

