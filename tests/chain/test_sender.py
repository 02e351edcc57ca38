"""The pipelined sender on a real anvil chain: many transactions of one signer in flight, one watcher.

Every transaction here is a governance `propose` by an admin of a 2-of-2 consortium: it never runs
(one approval of two), so any number of them can be sent, and each gets its own proposal id.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import RPCEndpoint, RPCResponse, TxReceipt

from consentledger import governance
from consentledger.chain.accounts import dev_accounts
from consentledger.chain.compile import ContractArtifact, compile_contracts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.manifest import Deployment
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.chain.watcher import ReceiptWatcher
from consentledger.errors import ContractRevertError, SignerBusyError, TransactionNotMinedError
from consentledger.ports import held_port, hold_port

pytestmark = pytest.mark.process

ADMIN, OTHER_ADMIN, OUTSIDER = 0, 1, 2


class RecordingProvider(HTTPProvider):
    """The real HTTP provider, counting each JSON-RPC method sent and whether the signing lock was held."""

    def __init__(self, url: str) -> None:
        super().__init__(url, request_kwargs={"timeout": 30})
        self.calls: Counter[str] = Counter()
        self.under_lock: Counter[str] = Counter()
        self.failures = 0
        self.lock: Any = None  # the signing lock to watch, once known
        self._guard = threading.Lock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self._note([method])
        try:
            return super().make_request(method, params)
        except OSError:
            self._failed()
            raise

    def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        self._note([method for method, _ in requests])
        try:
            return super().make_batch_request(requests)
        except OSError:
            self._failed()
            raise

    def _note(self, methods: list[str]) -> None:
        held = self.lock is not None and self.lock._is_owned()
        with self._guard:
            self.calls.update(methods)
            if held:
                self.under_lock.update(methods)

    def _failed(self) -> None:
        with self._guard:
            self.failures += 1


@dataclass
class Chain:
    """A deployed 2-of-2 consortium on one anvil process."""

    node: LocalNode
    w3: Web3
    deployment: Deployment
    artifacts: dict[str, ContractArtifact]
    admin: LocalAccount
    other_admin: LocalAccount

    def ledger(self, provider: HTTPProvider | None = None) -> Ledger:
        """Return a new Ledger (own nonces and watcher), over `provider` if given."""
        w3 = Web3(provider) if provider is not None else connect(self.node.rpc_url)
        return Ledger(w3, self.deployment, self.artifacts)

    def rpc(self, method: str, *params: Any) -> Any:
        """Send one JSON-RPC request straight to the node (anvil's mining controls)."""
        answer = self.w3.provider.make_request(RPCEndpoint(method), list(params))
        assert "error" not in answer, answer
        return answer.get("result")

    def nonce(self, account: LocalAccount, block: str = "latest") -> int:
        """Return the account's transaction count at `block` ("pending" counts the pool too)."""
        return int(self.w3.eth.get_transaction_count(account.address, block))  # type: ignore[arg-type]


def propose(ledger: Ledger, n: int) -> ContractFunction:
    """Return a `propose` call that can be sent any number of times (it never reaches the threshold)."""
    action = governance.add_purpose(1 + n % 100, f"purpose {n}")
    return ledger.consortium.functions.propose(int(action.action), action.payload)


def proposal_of(ledger: Ledger, receipt: TxReceipt) -> int:
    """Return the id of the proposal a `propose` receipt created."""
    (created,) = ledger.consortium.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)
    return int(created["args"]["proposal"])


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    """An anvil process (a block per transaction) with a deployed 2-of-2 consortium."""
    artifacts = compile_contracts()
    with start_node(ChainKind.ANVIL, accounts=4) as node:
        w3 = connect(node.rpc_url)
        admin, other_admin = dev_accounts(2)
        ledger = deploy(w3, admin, [admin.address, other_admin.address], 2, artifacts=artifacts)
        ledger.close()
        yield Chain(node, w3, ledger.deployment, artifacts, admin, other_admin)


@pytest.fixture
def interval_mining(chain: Chain) -> Iterator[None]:
    """The chain mines every second instead of at each transaction, for the test's duration."""
    chain.rpc("evm_setAutomine", False)
    chain.rpc("evm_setIntervalMining", 1)
    try:
        yield
    finally:
        chain.rpc("evm_setIntervalMining", 0)
        chain.rpc("evm_setAutomine", True)
        chain.rpc("evm_mine")


def test_two_hundred_concurrent_transactions_of_one_signer_all_mine_with_consecutive_nonces(chain: Chain) -> None:
    """200 transact calls from 32 threads: every caller gets its own receipt; the nonces have no gap."""
    ledger = chain.ledger()
    sender = ledger.sender(chain.admin, max_pending=8)
    gas = int(propose(ledger, 0).estimate_gas({"from": chain.admin.address}) * 1.5)
    first = chain.nonce(chain.admin)
    with ThreadPoolExecutor(32) as pool:
        receipts = list(pool.map(lambda n: (n, sender.transact(propose(ledger, n), gas=gas)), range(200)))
    ledger.close()
    assert all(receipt["status"] == 1 for _, receipt in receipts)
    assert len({receipt["transactionHash"] for _, receipt in receipts}) == 200
    assert len({proposal_of(ledger, receipt) for _, receipt in receipts}) == 200
    for n, receipt in receipts:  # each caller's receipt is of its own call
        tx = chain.w3.eth.get_transaction(receipt["transactionHash"])
        assert bytes(tx["input"]) == bytes.fromhex(propose(ledger, n)._encode_transaction_data()[2:])
    nonces = sorted(chain.w3.eth.get_transaction(r["transactionHash"])["nonce"] for _, r in receipts)
    assert nonces == list(range(first, first + 200))
    assert chain.nonce(chain.admin) == first + 200
    assert sender.nonces.pending(sender.address) == 0


def test_nothing_but_the_broadcast_is_sent_under_the_signing_lock(chain: Chain) -> None:
    """Estimates, gas price, chain id and receipts all come outside the lock: eth_sendRawTransaction is in it."""
    provider = RecordingProvider(chain.node.rpc_url)
    ledger = chain.ledger(provider)
    sender = ledger.sender(chain.admin, max_pending=4)
    provider.lock = sender.nonces.signing_lock(sender.address)
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda n: sender.transact(propose(ledger, n)), range(24)))
    ledger.close()
    assert all(receipt["status"] == 1 for receipt in receipts)
    assert provider.calls["eth_estimateGas"] == 24
    # and the nonce allocator's one start from the chain's pending count (it must see no unsent transaction)
    assert provider.under_lock == Counter({"eth_sendRawTransaction": 24, "eth_getTransactionCount": 1})


def test_with_gas_given_nothing_is_estimated_and_chain_values_come_from_the_cache(chain: Chain) -> None:
    """transact(gas=...) sends no eth_estimateGas; gas price is read once per TTL, chain id and gas limit once."""
    provider = RecordingProvider(chain.node.rpc_url)
    ledger = chain.ledger(provider)
    sender = ledger.sender(chain.admin)
    started = time.monotonic()
    for n in range(30):
        assert sender.transact(propose(ledger, n), gas=400_000)["status"] == 1
    elapsed = time.monotonic() - started
    ledger.close()
    assert provider.calls["eth_estimateGas"] == 0
    assert provider.calls["eth_sendRawTransaction"] == 30
    assert provider.calls["eth_chainId"] == 1
    assert provider.calls["eth_getBlockByNumber"] == 1  # the block gas limit
    ttl = 2.0  # chain.params.GAS_PRICE_TTL
    assert 1 <= provider.calls["eth_gasPrice"] <= 1 + int(elapsed / ttl)
    assert provider.calls["eth_getTransactionCount"] == 1  # the nonce allocator's start


def test_pending_transactions_of_a_signer_never_exceed_the_bound_and_all_mine(
    chain: Chain, interval_mining: None
) -> None:
    """On a chain mining every second, 15 concurrent sends with max_pending=3 keep at most 3 in the pool."""
    ledger = chain.ledger()
    sender = ledger.sender(chain.admin, max_pending=3)
    first = chain.nonce(chain.admin)
    seen: list[int] = []
    done = threading.Event()

    def watch_pool() -> None:
        while not done.is_set():
            seen.append(chain.nonce(chain.admin, "pending") - chain.nonce(chain.admin, "latest"))
            time.sleep(0.005)

    monitor = threading.Thread(target=watch_pool)
    monitor.start()
    try:
        with ThreadPoolExecutor(15) as pool:
            receipts = list(pool.map(lambda n: sender.transact(propose(ledger, n), gas=400_000), range(15)))
    finally:
        done.set()
        monitor.join()
        ledger.close()
    assert all(receipt["status"] == 1 for receipt in receipts)
    assert chain.nonce(chain.admin) == first + 15
    assert max(seen) <= 3
    assert max(seen) >= 2  # they were pipelined, not sent one at a time
    assert len({receipt["blockNumber"] for receipt in receipts}) >= 5  # at most 3 per block


def test_a_send_waiting_for_a_pending_slot_too_long_fails_without_taking_a_nonce(chain: Chain) -> None:
    """With mining stopped and one slot, a second submit raises SignerBusyError and sends nothing."""
    ledger = chain.ledger()
    sender = ledger.sender(chain.admin, max_pending=1)
    sender.slot_timeout = 0.5
    first = chain.nonce(chain.admin)
    chain.rpc("evm_setAutomine", False)
    try:
        pending = sender.submit(propose(ledger, 1), gas=400_000)
        with pytest.raises(SignerBusyError):
            sender.submit(propose(ledger, 2), gas=400_000)
        assert chain.nonce(chain.admin, "pending") == first + 1
        assert sender.nonces.pending(sender.address) == 1
    finally:
        chain.rpc("evm_setAutomine", True)
        chain.rpc("evm_mine")
    assert pending.result(timeout=60)["status"] == 1  # mined: its slot is free again
    assert sender.transact(propose(ledger, 3), gas=400_000)["status"] == 1
    assert chain.nonce(chain.admin) == first + 2
    ledger.close()


def test_a_transaction_given_up_at_the_timeout_frees_its_slot(chain: Chain) -> None:
    """Not mined within the sender's timeout: TransactionNotMinedError, and the slot is free for the next send."""
    ledger = chain.ledger()
    sender = ledger.sender(chain.admin, max_pending=1)
    sender.timeout = 0.5
    chain.rpc("evm_setAutomine", False)
    try:
        pending = sender.submit(propose(ledger, 4), gas=400_000)
        with pytest.raises(TransactionNotMinedError):
            pending.result()
        assert sender.nonces.pending(sender.address) == 0
    finally:
        chain.rpc("evm_setAutomine", True)
        chain.rpc("evm_mine")
    sender.timeout = 120
    assert sender.wait_receipt(pending.tx_hash)["status"] == 1  # it was mined after all
    ledger.close()


def test_a_transaction_reverting_when_mined_raises_the_rule_it_broke(chain: Chain) -> None:
    """Sent with gas (no estimate), an approval by the proposer is mined, reverts, and is replayed to name the rule."""
    ledger = chain.ledger()
    sender = ledger.sender(chain.admin, max_pending=2)
    proposal = proposal_of(ledger, sender.transact(propose(ledger, 7)))
    pending = sender.submit(ledger.consortium.functions.approve(proposal), gas=200_000)
    with pytest.raises(ContractRevertError) as refused:
        pending.result()
    assert refused.value.rule == "ConsortiumAlreadyApproved"
    assert chain.w3.eth.get_transaction_receipt(pending.tx_hash)["status"] == 0
    with pytest.raises(ContractRevertError) as estimated:  # without gas, the estimate refuses it, nothing sent
        sender.transact(ledger.consortium.functions.approve(proposal))
    assert estimated.value.rule == "ConsortiumAlreadyApproved"
    assert sender.nonces.pending(sender.address) == 0
    ledger.close()


def test_submit_returns_before_the_receipt_and_each_handle_resolves_to_its_own(chain: Chain) -> None:
    """submit hands back hash and nonce at once; results arrive through the ledger's one watcher."""
    ledger = chain.ledger()
    sender = ledger.sender(chain.admin, max_pending=4)
    other = ledger.sender(chain.other_admin, max_pending=4)
    handles = [s.submit(propose(ledger, n), gas=400_000) for n in range(4) for s in (sender, other)]
    assert sender.watcher is other.watcher
    for mine in (handles[0::2], handles[1::2]):  # each signer's own consecutive nonces
        assert [h.nonce for h in mine] == list(range(mine[0].nonce, mine[0].nonce + 4))
    for handle in handles:
        receipt = handle.result(timeout=60)
        assert receipt["transactionHash"] == handle.tx_hash and handle.done()
    ledger.close()
    assert not sender.watcher.running()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on, held (bound, not listening) so no other process serves it meanwhile."""
    with hold_port() as held:
        yield held_port(held)


def test_watcher_keeps_polling_through_rpc_errors_until_the_chain_answers(chain: Chain, closed_port: int) -> None:
    """Polls refused (nothing listens on the endpoint) are retried; the receipt arrives once the chain answers."""
    provider = RecordingProvider(f"http://127.0.0.1:{closed_port}")
    watcher = ReceiptWatcher(Web3(provider))
    ledger = chain.ledger()
    sent = ledger.sender(chain.admin).submit(propose(ledger, 9), gas=400_000)
    receipt = watcher.watch(sent.tx_hash, timeout=120)
    lost = watcher.watch(b"\x11" * 32, timeout=0.2)
    with pytest.raises(TransactionNotMinedError):
        lost.result(timeout=60)  # its deadline passed while the chain was unreachable
    deadline = time.monotonic() + 60
    while provider.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert provider.failures >= 3 and watcher.running() and not receipt.done()
    provider.endpoint_uri = chain.node.rpc_url  # the chain is back
    assert receipt.result(timeout=60)["transactionHash"] == sent.tx_hash
    assert watcher.running()
    watcher.close()
    ledger.close()
    assert not watcher.running()


def test_confirmations_resolve_once_the_block_is_deep_enough(chain: Chain) -> None:
    """With 2 confirmations the receipt arrives only after two more blocks are mined."""
    ledger = chain.ledger()
    sender = ledger.sender(chain.admin, confirmations=2)
    pending = sender.submit(propose(ledger, 11), gas=400_000)
    mined = chain.w3.eth.wait_for_transaction_receipt(pending.tx_hash, timeout=60)
    with pytest.raises(TransactionNotMinedError):
        pending.result(timeout=0.3)  # mined, not confirmed: nothing else mines a block
    chain.rpc("evm_mine")
    chain.rpc("evm_mine")
    assert pending.result(timeout=60)["blockNumber"] == mined["blockNumber"]
    assert chain.w3.eth.block_number >= mined["blockNumber"] + 2
    ledger.close()


def test_a_revert_caused_by_an_earlier_transaction_in_the_same_block_names_the_rule(chain: Chain) -> None:
    """Two approvals in flight, mined in one block: the second's revert is replayed after the block to name it."""
    ledger = chain.ledger()
    admin, other = ledger.sender(chain.admin), ledger.sender(chain.other_admin, max_pending=2)
    proposal = proposal_of(ledger, admin.transact(propose(ledger, 50), gas=400_000))
    chain.rpc("evm_setAutomine", False)
    try:
        first = other.submit(ledger.consortium.functions.approve(proposal), gas=1_000_000)
        second = other.submit(ledger.consortium.functions.approve(proposal), gas=1_000_000)
        chain.rpc("evm_mine")
    finally:
        chain.rpc("evm_setAutomine", True)
    assert first.result(timeout=60)["status"] == 1  # the second approval: the proposal ran
    with pytest.raises(ContractRevertError) as refused:
        second.result(timeout=60)
    assert refused.value.rule == "ConsortiumProposalExecuted"
    blocks = {chain.w3.eth.get_transaction_receipt(p.tx_hash)["blockNumber"] for p in (first, second)}
    assert len(blocks) == 1
    ledger.close()
