"""Offline access receipts on a real anvil: taken from the node, verified with no node, tampering refused."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from web3.middleware import Web3Middleware

from consentledger import governance as gov
from consentledger.chain.accounts import dev_accounts
from consentledger.chain.batch import AccessRequest
from consentledger.chain.compile import compile_contracts, storage_layout
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger, entry_from_event
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.errors import NotFoundError
from consentledger.receipts.build import build_receipt
from consentledger.receipts.receipt import HEADS_SLOT, Receipt
from consentledger.receipts.verify import verify_receipt
from consentledger.types import AccessEntry, ActorId, Role, Sensitivity

pytestmark = pytest.mark.process

DAY = 86_400
EPIDEMIC, STATS = 1, 3


@dataclass(frozen=True)
class Chain:
    """A deployed ledger on anvil with one OPEN record accessed: once alone, twice in a batch, then twice in one
    block by two transactions (seqs 1; 2, 3; 4, 5)."""

    node: LocalNode
    ledger: Ledger
    manifest: Path
    record: bytes
    entries: tuple[AccessEntry, ...]

    def block_hash(self, number: int) -> bytes:
        """Return block `number`'s hash as the node reports it."""
        return bytes(self.ledger.w3.eth.get_block(number)["hash"])


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """Deploy, govern in a purpose, an OPEN category and two members; access a record three times."""
    with start_node(ChainKind.ANVIL, accounts=4) as node:
        from consentledger.chain.connect import connect

        admin, health, transport, _ = dev_accounts(4)
        ledger = deploy(connect(node.rpc_url), admin, [admin.address], 1, admin_names=["ministry"],
                        artifacts=compile_contracts())
        manifest = tmp_path_factory.mktemp("receipts") / "deployment.json"
        ledger.deployment.save(manifest)
        for action in (
            gov.add_purpose(EPIDEMIC, "epidemic-control"),
            gov.add_category(STATS, "district-stats", Sensitivity.OPEN, 365 * DAY, ["district", "cases"], [],
                             [EPIDEMIC]),
            gov.admit_member(health.address, Role.CUSTODIAN, "health", b"\x01" * 32, "http://health"),
            gov.admit_member(transport.address, Role.REQUESTER, "transport", b"\x02" * 32, "http://transport"),
        ):
            assert ledger.propose(ledger.sender(admin), action)[1]
        record = keccak(text="receipt record")
        ledger.register_record(ledger.sender(health), record, health.address, STATS, keccak(text="c"), [])
        requester = ledger.sender(transport)
        first = ledger.request_access(requester, record, EPIDEMIC, [], actor=ActorId(keccak(text="analyst")))
        pair = ledger.request_access_batch(requester, [AccessRequest(record, EPIDEMIC)] * 2)
        # Two transactions in one block: mined together once automine is back on.
        rpc = ledger.w3.provider.make_request
        rpc("evm_setAutomine", [False])  # type: ignore[arg-type]
        pending = [requester.submit(ledger.access.functions.requestAccess(record, EPIDEMIC, bytes(32), []),
                                    gas=400_000) for _ in range(2)]
        rpc("evm_mine", [])  # type: ignore[arg-type]
        rpc("evm_setAutomine", [True])  # type: ignore[arg-type]
        together = [entry_from_event(ledger.access.events.AccessRecorded().process_receipt(p.result())[0])
                    for p in pending]
        # A later block: receipts are taken at their access's block, not the latest.
        ledger.register_record(ledger.sender(health), keccak(text="later"), health.address, STATS, keccak(text="d"),
                               [])
        entries = (first, *pair, *together)
        assert all(isinstance(e, AccessEntry) for e in entries)
        yield Chain(node, ledger, manifest, record, entries)  # type: ignore[arg-type]


def test_heads_slot_is_the_heads_mapping_of_solc_storage_layout() -> None:
    layout = {s["label"]: s for s in storage_layout("AccessLedger")}
    heads = layout["_heads"]
    assert (int(heads["slot"]), heads["offset"], heads["type"]) == (HEADS_SLOT, 0, "t_mapping(t_bytes32,t_bytes32)")


def test_receipt_of_an_access_verifies_with_its_trusted_block_hash(chain: Chain) -> None:
    receipt = build_receipt(chain.ledger, chain.record, 1)
    assert (receipt.block_number, receipt.head) == (chain.entries[0].block_number, chain.entries[0].head)
    assert [link.actor for link in receipt.links] == [keccak(text="analyst")]
    verdict = verify_receipt(Receipt.loads(receipt.dumps()), block_hash=chain.block_hash(receipt.block_number))
    assert verdict.valid and verdict.anchored, verdict.reason


def test_receipt_verifies_with_a_trusted_state_root(chain: Chain) -> None:
    receipt = build_receipt(chain.ledger, chain.record, 1)
    root = bytes(chain.ledger.w3.eth.get_block(receipt.block_number)["stateRoot"])
    assert verify_receipt(receipt, state_root=root).valid


def test_receipt_without_a_trusted_anchor_is_only_self_consistent(chain: Chain) -> None:
    verdict = verify_receipt(build_receipt(chain.ledger, chain.record, 1))
    assert verdict.valid and not verdict.anchored
    assert "unanchored" in verdict.reason


def test_a_wrong_trusted_block_hash_is_refused(chain: Chain) -> None:
    receipt = build_receipt(chain.ledger, chain.record, 1)
    verdict = verify_receipt(receipt, block_hash=chain.block_hash(receipt.block_number + 1))
    assert not verdict.valid and "is not the trusted" in verdict.reason


def test_a_wrong_trusted_state_root_is_refused(chain: Chain) -> None:
    receipt = build_receipt(chain.ledger, chain.record, 1)
    verdict = verify_receipt(receipt, state_root=bytes(32))
    assert not verdict.valid and "state root" in verdict.reason


@pytest.mark.parametrize("seq", [2, 3])
def test_two_accesses_in_one_block_each_verify(chain: Chain, seq: int) -> None:
    receipt = build_receipt(chain.ledger, chain.record, seq)
    assert receipt.block_number == chain.entries[1].block_number == chain.entries[2].block_number
    assert [link.seq for link in receipt.links] == list(range(seq, 4))
    assert receipt.previous == chain.entries[seq - 2].head
    assert verify_receipt(receipt, block_hash=chain.block_hash(receipt.block_number)).valid


@pytest.mark.parametrize("seq", [4, 5])
def test_two_access_transactions_in_one_block_each_verify(chain: Chain, seq: int) -> None:
    receipt = build_receipt(chain.ledger, chain.record, seq)
    assert receipt.block_number == chain.entries[3].block_number == chain.entries[4].block_number
    assert [link.seq for link in receipt.links] == list(range(seq, 6))
    assert receipt.head == chain.entries[4].head
    assert verify_receipt(receipt, block_hash=chain.block_hash(receipt.block_number)).valid


def test_an_earlier_access_of_the_block_without_the_later_one_is_refused(chain: Chain) -> None:
    data = build_receipt(chain.ledger, chain.record, 2).to_json()
    data["entries"] = data["entries"][:1]
    verdict = verify_receipt(Receipt.from_json(data), block_hash=bytes.fromhex(data["block_hash"][2:]))
    assert not verdict.valid and "the entries hash to" in verdict.reason


def _flip(text: str) -> str:
    """Return 0x-hex with its last digit changed."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def _set(path: tuple[Any, ...], change: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = change(target[path[-1]])
    return apply


def _node_byte(which: str, index: int) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        node = data[which][index]
        middle = len(node) // 2
        data[which][index] = node[:middle] + ("0" if node[middle] != "0" else "1") + node[middle + 1:]
    return apply


TAMPERED = {
    "entry seq": (_set(("entries", 0, "seq"), lambda v: v + 1), "entry 0 has seq"),
    "entry requester": (_set(("entries", 0, "requester"), lambda v: "0x" + "11" * 20), "the entries hash to"),
    "entry actor": (_set(("entries", 0, "actor"), _flip), "the entries hash to"),
    "entry purpose": (_set(("entries", 0, "purpose"), lambda v: v + 1), "the entries hash to"),
    "entry consent": (_set(("entries", 0, "consent"), _flip), "the entries hash to"),
    "entry identified": (_set(("entries", 0, "identified"), lambda v: not v), "the entries hash to"),
    "entry timestamp": (_set(("entries", 0, "timestamp"), lambda v: v + 1), "has timestamp"),
    "previous head": (_set(("previous",), _flip), "the entries hash to"),
    "seq": (_set(("seq",), lambda v: v + 1), "entry 0 has seq"),
    "record": (_set(("record",), _flip), "storage proof"),
    "head": (_set(("head",), _flip), "not the receipt's head"),
    "block number": (_set(("block_number",), lambda v: v - 1), "the header is of block"),
    "block hash": (_set(("block_hash",), _flip), "the header hashes to"),
    "header": (_set(("header",), _flip), "the header hashes to"),
    "ledger address": (_set(("ledger",), lambda v: "0x" + "22" * 20), "account proof"),
    "first account proof node": (_node_byte("account_proof", 0), "account proof: node 0"),
    "last account proof node": (_node_byte("account_proof", -1), "account proof"),
    "first storage proof node": (_node_byte("storage_proof", 0), "storage proof: node 0"),
    "last storage proof node": (_node_byte("storage_proof", -1), "storage proof"),
    "dropped storage proof node": (_set(("storage_proof",), lambda v: v[:-1]), "storage proof"),
    "extra account proof node": (_set(("account_proof",), lambda v: [*v, v[-1]]), "left over"),
}


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_a_receipt_with_an_altered_field_is_refused(chain: Chain, name: str) -> None:
    original = build_receipt(chain.ledger, chain.record, 1).to_json()
    trusted = bytes.fromhex(original["block_hash"][2:])
    data = copy.deepcopy(original)
    alter, reason = TAMPERED[name]
    alter(data)
    assert data != original
    verdict = verify_receipt(Receipt.from_json(data), block_hash=None if name == "block hash" else trusted)
    assert not verdict.valid
    assert reason in verdict.reason, verdict.reason


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    command = [sys.executable, "-c", "from consentledger.cli.main import run; run()", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_cli_gets_a_receipt_and_verifies_it_with_no_node(chain: Chain, tmp_path: Path) -> None:
    out = tmp_path / "receipt.json"
    got = _cli("receipt", "get", "--record", "0x" + chain.record.hex(), "--seq", "2", "--out", str(out),
               "--rpc", chain.node.rpc_url, "--manifest", str(chain.manifest))
    assert got.returncode == 0, got.stderr
    block_hash = "0x" + chain.block_hash(chain.entries[1].block_number).hex()
    # No --rpc: verify never contacts a node (an unroutable CONSENTLEDGER_RPC would not matter either).
    ok = _cli("receipt", "verify", str(out), "--block-hash", block_hash)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("valid: access 2 to record")

    data = json.loads(out.read_text())
    data["entries"][1]["purpose"] = 2
    out.write_text(json.dumps(data))
    bad = _cli("receipt", "verify", str(out), "--block-hash", block_hash)
    assert bad.returncode == 9
    assert "invalid: the entries hash to" in bad.stderr


def test_cli_refuses_a_file_that_is_not_a_receipt(tmp_path: Path) -> None:
    out = tmp_path / "receipt.json"
    out.write_text(json.dumps({"format": "consentledger-receipt/1", "seq": "one"}))
    bad = _cli("receipt", "verify", str(out))
    assert bad.returncode == 9
    assert "is not a receipt" in bad.stderr


def test_a_receipt_of_an_access_that_does_not_exist_is_refused(chain: Chain) -> None:
    with pytest.raises(NotFoundError, match="has no access 6"):
        build_receipt(chain.ledger, chain.record, 6)


def test_a_receipt_for_another_ledger_address_is_refused(chain: Chain) -> None:
    receipt = build_receipt(chain.ledger, chain.record, 1)
    verdict = verify_receipt(receipt, ledger="0x" + "33" * 20)
    assert not verdict.valid and "not 0x3333" in verdict.reason


def test_cli_refuses_a_malformed_trusted_hash(chain: Chain, tmp_path: Path) -> None:
    out = tmp_path / "receipt.json"
    out.write_text(build_receipt(chain.ledger, chain.record, 1).dumps())
    bad = _cli("receipt", "verify", str(out), "--block-hash", "0x1234")
    assert bad.returncode == 2
    assert "--block-hash is 32 bytes" in bad.stderr


def test_the_access_is_searched_back_from_the_head_in_ranges_the_node_accepts(chain: Chain) -> None:
    """With no block given, the access's block is found by eth_getLogs of at most `log_range` blocks each (Besu
    refuses wider ones), newest first; the receipt is the one taken with its block known."""
    chain.ledger.w3.provider.make_request("anvil_mine", ["0x14"])  # type: ignore[arg-type]
    spans: list[int] = []

    class Record(Web3Middleware):
        def wrap_make_request(self, make_request: Any) -> Any:
            def middleware(method: str, params: Any) -> Any:
                if method == "eth_getLogs":
                    spans.append(int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) + 1)
                return make_request(method, params)
            return middleware

    chain.ledger.w3.middleware_onion.add(Record, "spans")
    try:
        paged = build_receipt(chain.ledger, chain.record, 1, log_range=4)
    finally:
        chain.ledger.w3.middleware_onion.remove("spans")
    assert len(spans) > 5 and max(spans) <= 4
    assert paged == build_receipt(chain.ledger, chain.record, 1, block=chain.entries[0].block_number)
