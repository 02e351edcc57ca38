"""Confirmations and reorgs: with `release_confirmations` 2 the custodian releases an access's key only once two
blocks are mined on top of the access's block, and an access reorganised away before then is never released.

Runs on its own anvil (instant mining, so blocks are mined here with `evm_mine`) because the reorg
(`anvil_reorg`: the latest block replaced by an empty one, the chain as long as before) drops a
transaction of the requester's signer. `confirmation_wait` is 0, so the requester's gateway passes
the custodian's 425 `not_confirmed` on at once instead of waiting for blocks no one mines here,
except in the test that turns on interval mining and gives the requester a wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from consentledger.audit import Indexer, verify
from consentledger.audit import tables as audit_tables
from consentledger.chain.node import ChainKind, start_node
from consentledger.settings import ENV_PREFIX
from consentledger.store import make_engine
from consentledger.store.tables import releases
from consentledger.types import Role

from .world import DISTRICT_STATS, Consortium, expect, signed, start_consortium

pytestmark = pytest.mark.process

CONFIRMATIONS = 2


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """A custodian (health) and a requester (transport) on their own anvil, releasing 2 blocks deep."""
    with start_node(ChainKind.ANVIL) as node:
        members = {"health": (1, Role.CUSTODIAN), "transport": (2, Role.REQUESTER)}
        settings = {"release_confirmations": CONFIRMATIONS, "confirmation_wait": 0}
        started = start_consortium(node.rpc_url, tmp_path_factory.mktemp("reorg"), members, settings=settings)
        try:
            yield started
        finally:
            started.stop()


def rpc(consortium: Consortium, method: str, params: list[Any]) -> Any:
    """Return the result of one JSON-RPC call to the node; fail the test on an RPC error."""
    answer = consortium.ledger.w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in answer, answer
    return answer["result"]


def mine(consortium: Consortium, blocks: int) -> None:
    """Mine `blocks` empty blocks."""
    for _ in range(blocks):
        rpc(consortium, "evm_mine", [])


def released(consortium: Consortium, record: str) -> list[int]:
    """Return the seqs of `record` the custodian's release log holds, one per release."""
    engine = make_engine(f"sqlite:///{consortium.health.directory / 'agency.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.scalars(select(releases.c.seq).where(releases.c.record_id == record)))
    finally:
        engine.dispose()


def ask_key(consortium: Consortium, record: str, seq: int, block: int) -> Any:
    """Return the custodian's answer to transport's own key request for access (record, seq) in `block`."""
    return signed(consortium.health, consortium.key(consortium.transport), "POST", f"/v1/keys/{record}/{seq}",
                  {"block": block})


def not_confirmed(consortium: Consortium, record: str) -> dict[str, Any]:
    """Return the 425 the requester's gateway passes on for a fresh access to `record` (recorded on chain)."""
    refused = expect(consortium.access(consortium.transport, record), 425, "not_confirmed")
    assert (refused["record"], refused["depth"], refused["needed"]) == (record, 0, CONFIRMATIONS), refused
    return refused


def test_a_key_is_released_only_once_the_access_is_deep_enough(deep: Consortium) -> None:
    """The access is recorded, but its key is refused with 425 (depth 0, then 1 of 2) and nothing is logged; two
    blocks later the same request is released once."""
    record = deep.ingest({"district": "South", "cases": 8}, category=DISTRICT_STATS)
    refused = not_confirmed(deep, record)
    seq, block = refused["seq"], refused["block"]
    assert [(e.seq, e.block_number) for e in deep.accesses(record)] == [(seq, block)]
    mine(deep, 1)
    shallow = expect(ask_key(deep, record, seq, block), 425, "not_confirmed")
    assert (shallow["depth"], shallow["needed"]) == (1, CONFIRMATIONS)
    assert released(deep, record) == []

    mine(deep, 1)
    answer = expect(ask_key(deep, record, seq, block), 200)

    assert (answer["record"], answer["seq"]) == (record, seq)
    assert released(deep, record) == [seq]


def test_the_requester_waits_for_the_depth_on_a_chain_with_a_block_interval(deep: Consortium) -> None:
    """With the chain mining a block every second (anvil interval mining) and transport's `confirmation_wait` 60 s,
    POST /v1/access answers 200 with the disclosure: transport asked again after each block until the custodian
    released, and the access it got is at least 2 blocks deep by then."""
    transport = deep.transport
    transport.stop()
    transport.start(env={ENV_PREFIX + "CONFIRMATION_WAIT": "60"})
    record = deep.ingest({"district": "West", "cases": 5}, category=DISTRICT_STATS)
    rpc(deep, "evm_setIntervalMining", [1])
    try:
        answer = expect(deep.access(transport, record), 200)
    finally:
        rpc(deep, "evm_setIntervalMining", [0])
        rpc(deep, "evm_setAutomine", [True])
        transport.stop()
        transport.start()

    assert answer["payload"] == {"district": "West", "cases": 5}
    assert released(deep, record) == [answer["seq"]]
    assert int(rpc(deep, "eth_blockNumber", []), 16) >= answer["block"] + CONFIRMATIONS


def test_an_access_reorganised_away_is_never_released_and_the_index_follows(deep: Consortium) -> None:
    """An access answered 425 is reorganised away (its block replaced by an empty one); once the chain is deeper
    than the access would need, the custodian refuses it (403: no such access), logs no release, and the audit
    index drops it (rolled back from the access's block) and verifies against the new chain."""
    engine = make_engine("sqlite://")
    try:
        indexer = Indexer(engine, deep.ledger)
        record = deep.ingest({"district": "East", "cases": 3}, category=DISTRICT_STATS)
        refused = not_confirmed(deep, record)
        seq, block = refused["seq"], refused["block"]
        assert rpc(deep, "eth_blockNumber", []) == hex(block)
        assert indexer.sync().accesses >= 1
        assert indexed(engine, record) == [seq]

        rpc(deep, "anvil_reorg", [1, []])  # the access's block replaced by an empty one
        mine(deep, CONFIRMATIONS)
        assert deep.accesses(record) == []
        answer = expect(ask_key(deep, record, seq, block), 403, "forbidden")
        assert f"no access {seq} to record {record} is recorded in block {block}" in answer["detail"]
        assert released(deep, record) == []

        result = indexer.sync()
        assert result.rolled_back_from == block
        assert indexed(engine, record) == []
        report = verify(engine, deep.ledger)
        assert report.ok, report.summary()
    finally:
        engine.dispose()


def indexed(engine: Any, record: str) -> list[int]:
    """Return the seqs of `record`'s accesses the audit index holds."""
    with engine.connect() as conn:
        table = audit_tables.accesses
        return list(conn.scalars(select(table.c.seq).where(table.c.record == record)))
