"""The indexer captures every event of both contracts, resumes from its cursor, and survives reorgs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from consentledger import audit
from consentledger import governance as gov
from consentledger.audit import tables as t
from consentledger.audit.events import ACCESS_RECORDED, ACCESS_RECORDED_ABI, decode_access_log
from consentledger.audit.source import ChainSource
from consentledger.chain.deploy import deploy
from consentledger.errors import IndexMismatchError
from consentledger.store import make_engine
from consentledger.types import AccessEntry, MemberStatus, RecordKind, Role, Sensitivity, TombstoneReason

from .world import (
    ANALYST,
    CONTACT,
    EPIDEMIC,
    FLEETING,
    LAB,
    REFUSED,
    RESEARCH,
    STATS,
    World,
    assert_same_index,
    hexid,
    record_id,
    rows,
)

pytestmark = pytest.mark.process


def access_rows(entries: list[AccessEntry]) -> list[tuple[Any, ...]]:
    """Return chain entries as (record, seq, requester, purpose, consent, head, timestamp, block, tx) tuples."""
    return [
        (hexid(e.record), e.seq, e.requester, e.purpose, hexid(e.consent), hexid(e.head), e.timestamp,
         e.block_number, hexid(e.tx_hash))
        for e in entries
    ]


def indexed_accesses(engine: Engine) -> list[tuple[Any, ...]]:
    """Return the indexed accesses in chain order, shaped like `access_rows`."""
    return [
        (r["record"], r["seq"], r["requester"], r["purpose"], r["consent"], r["head"], r["timestamp"], r["block"],
         r["tx_hash"])
        for r in rows(engine, t.accesses, "block", "log_index")
    ]


def status_of(engine: Engine, member: str) -> int:
    """Return the indexed status of a member."""
    return next(m["status"] for m in rows(engine, t.members) if m["address"] == member)


def test_sync_indexes_every_event_kind_with_its_fields(world: World, engine: Engine) -> None:
    """Members, membership changes, catalog, records, consents and accesses land with the chain's values."""
    head = world.w3.eth.block_number
    result = audit.Indexer(engine, world.ledger()).sync()
    assert result.first_block == world.deployment.deploy_block and result.last_block == head
    assert indexed_accesses(engine) == access_rows(world.entries())
    assert result.accesses == len(world.entries())

    members = {m["address"]: m for m in rows(engine, t.members)}
    assert {m["name"] for m in members.values()} == {"ministry", "deputy", "health bureau", "transport bureau",
                                                      "police"}
    police, transport = members[world.police.address], members[world.transport.address]
    assert police["roles"] == Role.REQUESTER | Role.AUDITOR and police["status"] == MemberStatus.ACTIVE
    assert transport["x25519"] == "0x" + "22" * 32 and transport["gateway"] == "http://transport:9002"
    changes = [c["status"] for c in rows(engine, t.membership_changes) if c["account"] == world.police.address]
    assert changes == [MemberStatus.ACTIVE, MemberStatus.SUSPENDED, MemberStatus.ACTIVE]

    categories = {c["id"]: c for c in rows(engine, t.categories)}
    assert categories[CONTACT]["sensitivity"] == Sensitivity.ONE_TIME
    assert categories[CONTACT]["fields"] == ["name", "phone"] and categories[CONTACT]["identifying_fields"] == ["name"]
    assert categories[LAB]["allowed_purposes"] == [EPIDEMIC, RESEARCH]  # after CategoryPurposesChanged
    assert categories[FLEETING]["retention"] == 2
    purposes = {p["id"]: p for p in rows(engine, t.purposes)}
    assert purposes[EPIDEMIC]["name"] == "epidemic-control" and purposes[EPIDEMIC]["sunset"] == 0
    assert purposes[RESEARCH]["sunset"] > world.now()

    records = {r["id"]: r for r in rows(engine, t.records)}
    derived = records[hexid(world.records["derived"])]
    sources = [hexid(world.records["contact-alice"]), hexid(world.records["stats-bob"])]
    assert derived["derived_from"] == sources and derived["category"] == CONTACT
    assert [s["source"] for s in rows(engine, t.record_sources, "position") if s["record"] == derived["id"]] == sources
    district = records[hexid(world.records["district"])]
    assert district["kind"] == RecordKind.AGGREGATE and district["subject"] == "0x" + "00" * 20
    attested = records[hexid(world.records["stats-bob"])]
    assert attested["attested_block"] is not None and attested["attested_tx"] is not None
    assert attested["attested_block"] < district["registered_block"]
    assert records[hexid(world.records["lab-alice"])]["attested_block"] is None
    assert records[hexid(world.records["erased"])]["tombstone"] == TombstoneReason.ERASURE
    assert records[hexid(world.records["lab-alice"])]["subject"] == world.alice.address
    assert records[hexid(world.records["lab-alice"])]["tombstone"] is None

    consents = {c["id"]: c for c in rows(engine, t.consents)}
    lab = consents[world.consent_id("lab")]
    assert lab["grantee"] == world.transport.address and lab["max_uses"] == 5
    assert lab["record"] == hexid(world.records["lab-alice"]) and lab["nonce"] == str(world.consents["lab"].nonce)
    assert lab["revoked_block"] > lab["granted_block"]
    withdrawn = consents[world.consent_id("withdrawn")]
    assert withdrawn["granted_block"] is None and withdrawn["revoked_block"] is not None

    names = {e["name"] for e in rows(engine, t.events)}
    assert {"MemberAdmitted", "MemberStatusChanged", "MemberRolesChanged", "MemberKeysChanged", "CategoryAdded",
            "CategoryPurposesChanged", "PurposeAdded", "PurposeSunsetChanged", "RecordRegistered",
            "RecordTombstoned", "RecordAttested", "AggregateRegistered", "ConsentGranted", "ConsentRevoked",
            "ProposalCreated", "ProposalExecuted"} <= names
    assert ACCESS_RECORDED not in names


def refused(engine: Engine) -> list[tuple[str, str, int, str]]:
    """Return the indexed refusals in chain order as (requester, record, purpose, rule)."""
    return [(r["requester"], r["record"], r["purpose"], r["rule"])
            for r in rows(engine, t.refusals, "block", "log_index")]


def expected_refusals(world: World) -> list[tuple[str, str, int, str]]:
    """Return the world's refused attempts (REFUSED) shaped like `refused`."""
    return [(getattr(world, who).address, hexid(world.records.get(name, record_id(name))), purpose, rule)
            for who, name, purpose, rule in REFUSED]


def test_refused_attempts_are_indexed_with_their_rule_named(world: World, engine: Engine) -> None:
    """Each AccessRefused lands in idx_refusals (not idx_events): requester, record, purpose, actor, the rule's
    name and named arguments decoded from the reason, the block's time and the transaction."""
    result = audit.Indexer(engine, world.ledger()).sync()

    assert refused(engine) == expected_refusals(world) and result.refusals == len(REFUSED)
    assert f"{len(REFUSED)} refused attempts" in result.describe()
    first, exhausted, tombstoned, unknown, *_, missing_role = rows(engine, t.refusals, "block", "log_index")
    assert first["actor"] == hexid(ANALYST) and exhausted["actor"] == "0x" + "00" * 32
    assert first["rule_args"] == {"consent": world.consent_id("lab")}
    assert exhausted["rule_args"] == {"consent": world.consent_id("contact"), "uses": 1, "maxUses": 1}
    assert tombstoned["rule_args"] == {"record": hexid(world.records["erased"]), "reason": TombstoneReason.ERASURE}
    assert unknown["rule_args"] == {"record": hexid(record_id("never-registered"))}
    assert missing_role["rule_args"] == {"account": world.health.address, "role": Role.REQUESTER}
    assert first["reason"].startswith("0x17d42cd4") and first["reason"].endswith(world.consent_id("lab")[2:])
    block = world.w3.eth.get_block(first["block"])
    sent = world.w3.eth.get_transaction_by_block(first["block"], 0)
    assert first["timestamp"] == block["timestamp"] and first["tx_hash"] == sent["hash"].to_0x_hex()
    assert "AccessRefused" not in {e["name"] for e in rows(engine, t.events)}


def test_second_sync_adds_only_the_new_blocks(world: World, engine: Engine) -> None:
    """A sync resumes after the cursor: it reads only blocks mined since, and a third finds nothing."""
    indexer = audit.Indexer(engine, world.ledger())
    first = indexer.sync()
    world.access(world.police, "stats-bob", EPIDEMIC)
    second = indexer.sync()
    assert second.first_block == first.last_block + 1
    assert (second.events, second.accesses) == (1, 1)
    third = indexer.sync()
    assert third.first_block is None and third.events == 0 and third.last_block == second.last_block
    assert indexed_accesses(engine) == access_rows(world.entries())


def test_sync_to_a_block_then_on_equals_one_sync(world: World, engine: Engine) -> None:
    """Indexing up to a middle block and then to the end leaves what one sync leaves."""
    indexer = audit.Indexer(engine, world.ledger(), batch_blocks=7)
    middle = world.deployment.deploy_block + 20
    assert indexer.sync(to_block=middle).last_block == middle
    indexer.sync()
    assert indexed_accesses(engine) == access_rows(world.entries())


def test_interrupted_sync_resumes_from_the_last_written_range(world: World, sqlite_engine: Engine,
                                                               tmp_path: Any) -> None:
    """A crash after some ranges keeps them (cursor included); the next sync finishes the rest alike."""
    indexer = audit.Indexer(sqlite_engine, world.ledger(), batch_blocks=5)
    calls = []

    def crash_after_two_ranges(progress: audit.SyncProgress) -> None:
        calls.append(progress.block)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        indexer.sync(progress=crash_after_two_ranges)
    assert indexer.cursor().block == world.deployment.deploy_block + 9
    resumed = indexer.sync()
    assert resumed.first_block == world.deployment.deploy_block + 10

    one_shot = make_engine(f"sqlite:///{tmp_path / 'one-shot.db'}")
    audit.Indexer(one_shot, world.ledger()).sync(to_block=resumed.last_block)
    assert_same_index(sqlite_engine, one_shot)


@pytest.mark.parametrize("reorg_depth", [12, 2])
def test_a_real_reorg_is_undone_and_the_new_branch_indexed(
    world: World, engine: Engine, sqlite_engine: Engine, reorg_depth: int
) -> None:
    """After evm_revert and other transactions the index drops the orphaned blocks, undoes their updates
    (tombstone, revocation, suspension) and holds exactly what a fresh index of the new chain holds."""
    indexer = audit.Indexer(engine, world.ledger(), reorg_depth=reorg_depth)
    indexer.sync()
    snapshot = world.w3.testing.snapshot()
    fork = world.w3.eth.block_number + 1
    try:
        world.access(world.police, "stats-bob", EPIDEMIC)
        orphan = world.register("orphan", world.bob, STATS)
        world.access(world.transport, "orphan", EPIDEMIC)
        world.tombstone("contact-bob")
        world.revoke("contact", world.alice)
        world.govern(gov.suspend_member(world.police.address))
        world.batch(world.transport, [world.request("erased", EPIDEMIC)])
        orphaned = indexer.sync()
        assert (orphaned.accesses, orphaned.refusals) == (2, 1)
        assert len(refused(engine)) == len(REFUSED) + 1
        assert status_of(engine, world.police.address) == MemberStatus.SUSPENDED
    finally:
        world.w3.testing.revert(snapshot)
    del world.records["orphan"]
    world.access(world.transport, "stats-bob", RESEARCH)  # one block where there were seven

    result = indexer.sync()
    assert result.rolled_back_from == fork
    assert indexed_accesses(engine) == access_rows(world.entries())
    assert refused(engine) == expected_refusals(world)
    records = {r["id"]: r for r in rows(engine, t.records)}
    assert orphan not in records and records[hexid(world.records["contact-bob"])]["tombstone"] is None
    assert status_of(engine, world.police.address) == MemberStatus.ACTIVE
    assert indexer.cursor().block == world.w3.eth.block_number
    audit.Indexer(sqlite_engine, world.ledger()).sync()
    assert_same_index(engine, sqlite_engine)
    assert audit.verify(engine, world.ledger()).ok


def test_an_index_of_another_deployment_is_refused(world: World, sqlite_engine: Engine) -> None:
    """Syncing a database that holds one deployment with another deployment raises IndexMismatchError."""
    audit.Indexer(sqlite_engine, world.ledger()).sync()
    other = deploy(world.w3, world.admin, [world.admin.address], 1, artifacts=world.artifacts)
    with pytest.raises(IndexMismatchError, match="not chain 1337 AccessLedger"):
        audit.Indexer(sqlite_engine, other).sync()


def test_decode_access_log_reads_raw_and_web3_logs_like_the_ledger(world: World) -> None:
    """The shared decoding path gives the ledger's own AccessEntry for raw and web3-formatted logs."""
    ledger = world.ledger()
    compiled = next(e for e in ledger.access.abi if e.get("name") == ACCESS_RECORDED)
    shape = [(i["name"], i["type"], i["indexed"]) for i in compiled["inputs"]]
    assert shape == [(i["name"], i["type"], i["indexed"]) for i in ACCESS_RECORDED_ABI["inputs"]]

    topic = ledger.access.events.AccessRecorded().topic
    raw = [log for log in ChainSource(ledger).logs(world.deployment.deploy_block, world.w3.eth.block_number)
           if log["topics"][0] == topic]
    assert [decode_access_log(log).entry() for log in raw] == world.entries()
    formatted = world.w3.eth.get_logs({"fromBlock": world.deployment.deploy_block, "address": ledger.access.address,
                                       "topics": [topic]})
    assert [decode_access_log(log) for log in formatted] == [decode_access_log(log) for log in raw]
    other = next(log for log in world.w3.eth.get_logs({"fromBlock": world.deployment.deploy_block,
                                                       "address": ledger.access.address})
                 if log["topics"][0].to_0x_hex() != topic)
    with pytest.raises(ValueError, match="not an AccessRecorded log"):
        decode_access_log(other)


def test_bulk_insert_accesses_keeps_rows_already_indexed(world: World, sqlite_engine: Engine) -> None:
    """Inserting the same decoded accesses twice leaves one row per (record, seq)."""
    ledger = world.ledger()
    topic = ledger.access.events.AccessRecorded().topic
    decoded = [decode_access_log(log)
               for log in ChainSource(ledger).logs(world.deployment.deploy_block, world.w3.eth.block_number)
               if log["topics"][0] == topic]
    audit.create_index_schema(sqlite_engine)
    with sqlite_engine.begin() as conn:
        audit.bulk_insert_accesses(conn, decoded)
        audit.bulk_insert_accesses(conn, decoded[:3])
    with sqlite_engine.connect() as conn:
        assert len(conn.execute(select(t.accesses)).all()) == len(decoded)
