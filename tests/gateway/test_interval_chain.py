"""The gateway's main flow on a chain that behaves like a free-gas Besu QBFT network.

anvil mines a block every `BLOCK_TIME` seconds (never on demand) with a zero base fee and gas price,
behind an `RpcFront` that refuses `eth_getLogs` over more than `LOGS_BLOCK_RANGE` blocks as a Besu
node does (`--rpc-max-logs-range`), and notes each range and how many transactions of each sender
the pool holds. Two gateway processes (health, transport) use the front, configured with that
range and a bound of `MAX_PENDING` transactions per signer, and the flow runs once: ingest, consent,
access (single and batch), key release opened by the requester, revocation, a refused access,
erasure, and the audit trace and verification, over HTTP and from the CLI.

Then the facts that show the profile was real: every transaction legacy (type 0) at gas price 0 and
every signer's balance untouched; blocks `BLOCK_TIME` apart with empty ones between; the gateways
paged their log reads (never refused, the audited accesses spread over more blocks than one range);
and, while a block was late (mining paused, as in a QBFT round change), transport's signer kept
`MAX_PENDING` transactions in the pool and no more.

`BLOCK_TIME` is 1 s: the flow waits for about 40 blocks one after another (deployment, catalog,
admissions, each write), so 2 s would double its minute; 1 s still puts every write in a later block
than the one it was sent in, with empty blocks between, which is what instant mining never does.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account import Account

from consentledger import governance
from consentledger.audit import Indexer, trace, verify
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import DEV_BALANCE_ETH, ChainKind, LocalNode, start_node
from consentledger.client import GatewayClient
from consentledger.consent import consent_id, sign_revocation
from consentledger.crypto.disclosure import Disclosure
from consentledger.crypto.keyfiles import load_x25519_keyfile
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap
from consentledger.crypto.vault import open_sealed
from consentledger.localnet import DEV_PASSWORD
from consentledger.store import make_engine
from consentledger.types import Role, TombstoneReason

from .lifecycle import eventually, tombstones_on_chain
from .rpc_front import RpcFront
from .world import (
    ADMIN,
    CONTACT_TRACE,
    DISTRICT_STATS,
    EPIDEMIC_CONTROL,
    LAB_RESULT,
    Consortium,
    expect,
    signed,
    start_consortium,
)

pytestmark = pytest.mark.process

BLOCK_TIME = 1
"""Seconds between blocks (see the module docstring for why not 2)."""
LOGS_BLOCK_RANGE = 3
"""Most blocks one eth_getLogs may span: small, so the flow's few dozen blocks take many ranges."""
MAX_PENDING = 2
"""Most transactions of one signer in the pool (below a Besu pool's per-sender limit)."""
HEALTH, TRANSPORT = 1, 2
CONTACT = {"name": "Ana", "phone": "555-0199", "district": "North"}
STATS = {"district": "North", "cases": 7}
LAB = {"test": "pcr", "result": "negative"}


@dataclass
class Flow:
    """What the flow left behind: the chain, the front, the consortium, and what it did and saw."""

    node: LocalNode
    front: RpcFront
    consortium: Consortium
    alice: Any
    records: dict[str, str]
    answers: dict[str, Any]
    outage: tuple[int, int]
    """The first and last block mined while the gateways' node was down."""
    stalled: list[int]
    """The pool's count of transport's transactions each time it was read while mining was paused."""
    listed: list[dict[str, Any]]
    """Alice's accesses as health's audit API listed them to an auditor."""
    verified: dict[str, Any]
    """Health's audit API's verification report."""


def head(front: RpcFront) -> int:
    """Return the chain's latest block number (asked of anvil itself)."""
    return int(front.call("eth_blockNumber", []), 16)


def pool_of(front: RpcFront, address: str) -> int:
    """Return how many transactions of `address` anvil's pool holds."""
    pending = front.call("txpool_content", [])["pending"]
    return next((len(txs) for sender, txs in pending.items() if sender.lower() == address.lower()), 0)


def until(probe: Callable[[], int], wanted: int, what: str) -> int:
    """Return `probe()` once it reaches `wanted` (polling; fail after 30 s)."""
    return eventually(probe, lambda n: n >= wanted, timeout=30, what=what)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    """Run the main flow once on the interval, free-gas anvil through the front (see the module)."""
    root = tmp_path_factory.mktemp("interval")
    with start_node(ChainKind.ANVIL, block_time=BLOCK_TIME, free_gas=True) as node:
        front = RpcFront(node.rpc_url, max_logs_range=LOGS_BLOCK_RANGE)
        members = {"health": (HEALTH, Role.CUSTODIAN), "transport": (TRANSPORT, Role.REQUESTER)}
        settings = {"logs_block_range": LOGS_BLOCK_RANGE, "max_pending_per_signer": MAX_PENDING}
        consortium = start_consortium(node.rpc_url, root, members, settings=settings, gateway_rpc=front.url)
        try:
            yield run_flow(node, front, consortium)
        finally:
            consortium.stop()
            front.close()


def run_flow(node: LocalNode, front: RpcFront, consortium: Consortium) -> Flow:
    """Ingest, grant, access (single, stalled, batch), release, revoke, refuse, erase, audit; answers asserted."""
    health, transport = consortium.health, consortium.transport
    alice = Account.create()
    contact = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=alice.address)
    stats = consortium.ingest(STATS, category=DISTRICT_STATS, subject=alice.address)
    lab = consortium.ingest(LAB, category=LAB_RESULT, subject=alice.address)
    once = consortium.grant(alice, transport, CONTACT_TRACE, identified=True)
    lab_consent = consortium.grant(alice, transport, LAB_RESULT, record=bytes.fromhex(lab[2:]), max_uses=5)

    # The gateways' node is down for more blocks than one log range: they catch up in pages once it is back.
    down_at = head(front)
    front.down.set()
    up_at = until(lambda: head(front), down_at + LOGS_BLOCK_RANGE + 1, "blocks mined while the node is down")
    front.down.clear()

    single = expect(consortium.access(transport, contact, [once]), 200)
    assert single["payload"] == CONTACT and single["seq"] == 1

    # A late block (a QBFT round change): one access fills a slot, a second the other; the third waits for one.
    stalled: list[int] = []
    with ThreadPoolExecutor(MAX_PENDING + 1) as pool:
        waves: list[Future[httpx.Response]] = []
        front.call("evm_setIntervalMining", [0])
        try:
            for wave in range(MAX_PENDING + 1):
                waves.append(pool.submit(consortium.access, transport, stats))
                if wave < MAX_PENDING:
                    stalled.append(until(lambda: pool_of(front, transport.address), wave + 1, f"{wave + 1} pending"))
            time.sleep(BLOCK_TIME)  # for the last wave to reach transport's batcher (see test_pending_bound_held)
            stalled.append(pool_of(front, transport.address))
        finally:
            front.call("evm_setIntervalMining", [BLOCK_TIME])
        late = [expect(w.result(), 200) for w in waves]
    assert sorted(a["seq"] for a in late) == [1, 2, 3]
    assert all(a["payload"] == STATS for a in late)

    items = [{"record": r, "purpose": EPIDEMIC_CONTROL, "consents": [c.to_json() for c in cs]}
             for r, cs in ((stats, []), (lab, [lab_consent]), (contact, [once]))]
    batch = expect(signed(transport, consortium.key(transport), "POST", "/v1/access/batch", {"items": items}),
                   200)["items"]
    assert [a["status"] for a in batch] == [200, 200, 403], batch
    assert batch[2]["rule"] == "ConsentRegistryConsentExhausted"
    assert (batch[0]["payload"], batch[1]["payload"]) == (STATS, LAB)

    # Health releases the keys of transport's accesses a second time, in one call over more blocks than a log range.
    presented = [(single, [once]), *((a, []) for a in late), (batch[0], []), (batch[1], [lab_consent])]
    release_items = [{"record": a["record"], "seq": a["seq"], "block": a["block"],
                      "consents": [c.to_json() for c in cs]} for a, cs in presented]
    released = expect(signed(health, consortium.key(transport), "POST", "/v1/keys/batch",
                             {"items": release_items}), 200)["items"]
    opened = [opened_by_transport(consortium, r) for r in released[:-1]]
    assert opened == [CONTACT, STATS, STATS, STATS, STATS]
    assert released[-1]["reason"] == "protected_released"  # a PROTECTED record's key leaves once

    domain = consortium.ledger.domain()
    revocation = sign_revocation(consent_id(lab_consent, domain), alice.key, domain)
    expect(signed(transport, alice.key, "POST", "/v1/consents/revoke",
                  {"consent": lab_consent.to_json(), "signature": "0x" + revocation.hex()}), 200)
    expect(consortium.access(transport, lab, [lab_consent]), 403, "rule_violated", "ConsentRegistryConsentRevoked")

    with GatewayClient(health.url, alice) as client:
        erased = client.request_erasure()
    assert sorted(r["record"] for r in erased["records"]) == sorted([contact, stats, lab])
    for record in (contact, stats, lab):
        eventually(lambda r=record: tombstones_on_chain(consortium.ledger, r), lambda t: t == [TombstoneReason.ERASURE],
                   what=f"{record} tombstoned")
    expect(consortium.access(transport, stats), 403, "rule_violated", "RecordRegistryRecordTombstoned")

    auditor = Account.create()
    consortium.govern(governance.admit_member(auditor.address, Role.AUDITOR, "audit office"))
    with GatewayClient(health.url, auditor) as client:
        listed = client.audit_accesses(subject=alice.address)["items"]
        verified = client.audit_verify()

    records = {"contact": contact, "stats": stats, "lab": lab}
    answers = {"single": single, "late": late, "batch": batch}
    return Flow(node, front, consortium, alice, records, answers, (down_at + 1, up_at), stalled, listed, verified)


def opened_by_transport(consortium: Consortium, released: dict[str, Any]) -> dict[str, Any]:
    """Return a released key's disclosure opened with transport's X25519 key, verified against the chain."""
    record_id = bytes.fromhex(str(released["record"])[2:])
    context = access_context(record_id, int(released["seq"]), consortium.transport.address)
    key = unwrap(load_x25519_keyfile(consortium.transport.directory / "x25519.pem", DEV_PASSWORD),
                 WrappedKey.from_json(released["wrapped_key"]), context)
    shown = Disclosure.from_json(json.loads(open_sealed(key, base64.b64decode(released["disclosure"]), context)))
    shown.verify(consortium.ledger.record(record_id).commitment)
    return dict(shown.visible_payload())


def test_every_transaction_is_legacy_at_gas_price_zero_and_no_signer_paid(flow: Flow) -> None:
    """Each transaction the gateways and the admin sent is type 0 with gas price 0; every balance is untouched."""
    front, consortium = flow.front, flow.consortium
    senders = {consortium.health.address.lower(), consortium.transport.address.lower()}
    assert {sender for sender, _ in front.noted.sent} == senders
    hashes = [tx for _, tx in front.noted.sent]
    start = consortium.ledger.deployment.deploy_block
    for number in range(start, head(front) + 1):
        hashes += front.call("eth_getBlockByNumber", [hex(number), False])["transactions"]
    for tx_hash in set(hashes):
        tx = front.call("eth_getTransactionByHash", [tx_hash])
        receipt = front.call("eth_getTransactionReceipt", [tx_hash])
        assert (tx["type"], int(tx["gasPrice"], 16), int(receipt["effectiveGasPrice"], 16)) == ("0x0", 0, 0), tx
    for index in (ADMIN, HEALTH, TRANSPORT):
        balance = int(front.call("eth_getBalance", [dev_account(index).address, "latest"]), 16)
        assert balance == DEV_BALANCE_ETH * 10**18


def test_blocks_come_at_the_interval_with_empty_ones_between(flow: Flow) -> None:
    """From deployment on, each block is at least BLOCK_TIME after the one before, and some hold nothing.

    Instant mining never makes an empty block; how many the interval makes depends on how fast the
    flow runs (8 of 32 on a loaded CI machine), so the count is no fixed share of the blocks.
    """
    front = flow.front
    first, last = flow.consortium.ledger.deployment.deploy_block, head(front)
    blocks = [front.call("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)]
    gaps = [int(b["timestamp"], 16) - int(a["timestamp"], 16) for a, b in zip(blocks, blocks[1:], strict=False)]
    assert min(gaps) >= BLOCK_TIME, gaps
    assert any(not b["transactions"] for b in blocks)
    late = {a["block"] for a in flow.answers["late"]}
    assert len(late) == 2  # the stalled slots' two transactions shared the block after the stall, the third came later


def test_the_gateways_page_log_reads_within_the_nodes_range(flow: Flow) -> None:
    """No eth_getLogs of a gateway spanned more than LOGS_BLOCK_RANGE blocks, though the accesses it indexed and
    released keys for lay in more (each waited for a block after the one before)."""
    noted = flow.front.noted
    assert noted.refused == []
    assert all(last - first + 1 <= LOGS_BLOCK_RANGE for first, last in noted.ranges)
    blocks = [a["block"] for a in (flow.answers["single"], *flow.answers["late"], *flow.answers["batch"][:2])]
    assert max(blocks) - min(blocks) + 1 > LOGS_BLOCK_RANGE
    assert sorted(i["block"] for i in flow.listed) == sorted(blocks)


def test_a_gateway_back_from_an_outage_longer_than_a_log_range_catches_up_in_pages(flow: Flow) -> None:
    """The blocks mined while the node was down were read in several ranges afterwards, and the access right
    after (its key released by health, whose view had to catch up first) answered its payload."""
    first, last = flow.outage
    assert last - first + 1 > LOGS_BLOCK_RANGE
    covering = [(a, b) for a, b in flow.front.noted.ranges if a <= last and b >= first]
    assert len(covering) >= 2
    assert flow.answers["single"]["payload"] == CONTACT and flow.answers["single"]["block"] > last


def test_pending_bound_held(flow: Flow) -> None:
    """While no block came, transport's signer filled MAX_PENDING pool slots and the third access waited.

    The third access had a block time to reach transport's batcher before mining resumed; had it not,
    it would still have waited (the test cannot fail a bound that holds, only miss one that broke).
    """
    assert flow.stalled == [1, 2, 2]
    assert max(flow.front.noted.most_pending.values()) == MAX_PENDING


def test_audit_listing_and_verification_agree_with_the_chain_and_an_auditors_own_index(flow: Flow) -> None:
    """Health's audit API listed alice's accesses as the chain holds them and found nothing wrong; an auditor's
    own index (what `consentledger audit trace/verify` build), read through another Besu-like front, agrees."""
    consortium = flow.consortium
    on_chain = sorted(("0x" + e.record.hex(), e.seq, "0x" + e.tx_hash.hex(), e.block_number)
                      for r in flow.records.values() for e in consortium.accesses(r))
    assert len(on_chain) == 6
    assert sorted((i["record"], i["seq"], i["tx_hash"], i["block"]) for i in flow.listed) == on_chain
    assert flow.verified["ok"] is True, flow.verified

    own_front = RpcFront(flow.node.rpc_url, max_logs_range=LOGS_BLOCK_RANGE)
    engine = make_engine("sqlite://")
    try:
        ledger = Ledger(connect(own_front.url), consortium.ledger.deployment)
        Indexer(engine, ledger).sync()  # the CLI's default ranges: the node refuses them and they are halved
        traced = trace(engine, subject=flow.alice.address)
        report = verify(engine, ledger)
    finally:
        own_front.close()
        engine.dispose()
    assert sorted((t.record, t.seq, t.tx_hash, t.block) for t in traced) == on_chain
    assert report.ok, report.summary()
