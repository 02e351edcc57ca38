"""One receipt watcher per Web3 connection: every pending transaction's receipt from one polling thread.

A poll loop per waiting caller costs one `eth_getTransactionReceipt` per caller per interval and
makes each caller pay up to a whole interval after its block. The watcher instead asks for every
pending hash at once (one JSON-RPC batch request where the node takes batches, else one request
per hash), polls every few milliseconds right after a submit and backs off while nothing arrives,
and resolves one future per watch. A failing poll (the chain down for a while) is logged and tried
again; only a watch's deadline ends it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3._utils.method_formatters import receipt_formatter
from web3.datastructures import AttributeDict
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from consentledger.errors import ChainUnavailableError, TransactionNotMinedError

log = logging.getLogger(__name__)

FASTEST = 0.002
"""Seconds between polls right after a submit or a receipt (a chain mines within milliseconds)."""
SLOWEST = 0.05
"""Seconds between polls once nothing has arrived for a while (each empty poll doubles the wait)."""
IDLE_EXIT = 10.0
"""Seconds the thread waits with nothing to watch before it ends (the next watch starts another)."""
BATCH_SIZE = 100
"""Most requests in one JSON-RPC batch."""

Release = Callable[[], None]


@dataclass(eq=False)
class _Watch:
    """One caller's wait for one transaction."""

    tx_hash: bytes
    confirmations: int
    timeout: float
    deadline: float
    future: Future[TxReceipt]
    release: Release | None
    receipt: TxReceipt | None = None
    polled: bool = False  # a poll has started since the watch was added: it may expire now
    released: bool = field(default=False, repr=False)


class ReceiptWatcher:
    """Resolves a future per watched transaction from one daemon thread polling all of them."""

    def __init__(self, w3: Web3, *, fastest: float = FASTEST, slowest: float = SLOWEST,
                 idle_exit: float = IDLE_EXIT) -> None:
        self.w3 = w3
        self.fastest = fastest
        self.slowest = slowest
        self.idle_exit = idle_exit
        self._cond = threading.Condition()
        self._watches: list[_Watch] = []
        self._thread: threading.Thread | None = None
        self._kicked = False
        self._closed = False
        self._batch: bool | None = None  # None: not tried yet; False: the node refuses batches

    def watch(self, tx_hash: bytes, *, timeout: float, confirmations: int = 0,
              release: Release | None = None) -> Future[TxReceipt]:
        """Return a future of the receipt of `tx_hash`, resolved once mined and `confirmations` blocks deep.

        A mined failure resolves at once (status 0: the caller replays it). No receipt (or not
        enough confirmations) within `timeout` seconds fails the future with TransactionNotMinedError;
        at least one poll is made first. `release` is called once, from the watcher's thread, as soon
        as the transaction is mined or given up (a pending-transactions slot, say).
        """
        future: Future[TxReceipt] = Future()
        entry = _Watch(bytes(tx_hash), confirmations, timeout, time.monotonic() + timeout, future, release)
        with self._cond:
            if self._closed:
                raise ChainUnavailableError("the receipt watcher is closed")
            self._watches.append(entry)
            self._kicked = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="receipt-watcher", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return future

    @property
    def pending(self) -> int:
        """Return how many watches are not resolved yet."""
        with self._cond:
            return len(self._watches)

    def running(self) -> bool:
        """Return whether the polling thread is alive."""
        with self._cond:
            return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; watches still pending fail with TransactionNotMinedError."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        interval = self.fastest
        while True:
            with self._cond:
                while not self._watches and not self._closed:
                    if not self._cond.wait(self.idle_exit) and not self._watches:
                        self._thread = None
                        return
                if self._closed:
                    dropped, self._watches, self._thread = self._watches, [], None
                    break
                kicked, self._kicked = self._kicked, False
                watches = list(self._watches)
                for entry in watches:
                    entry.polled = True
            if kicked:
                interval = self.fastest
                time.sleep(self.fastest)  # a transaction just sent is rarely mined yet
            try:
                progress = self._round(watches)
            except Exception:  # a bug settling one answer must not leave every other caller waiting for ever
                log.exception("receipt watcher round failed")
                progress = False
            interval = self.fastest if progress else min(interval * 2, self.slowest)
            with self._cond:
                if not self._kicked and not self._closed:
                    self._cond.wait(interval)
        for entry in dropped:
            self._fail(entry, TransactionNotMinedError(f"transaction 0x{entry.tx_hash.hex()}: watcher closed"))

    def _round(self, watches: Sequence[_Watch]) -> bool:
        """Poll once and settle what can be settled; return whether any transaction was mined or resolved."""
        unmined = list(dict.fromkeys(w.tx_hash for w in watches if w.receipt is None))
        need_head = any(w.confirmations > 0 for w in watches)
        try:
            receipts, head = self._poll(unmined, need_head)
        except Exception as exc:  # an outage, a node restarting: keep watching until the deadlines
            log.warning("receipt poll failed (%d pending): %s", len(unmined), exc)
            receipts, head = {}, None
        progress = False
        now = time.monotonic()
        for entry in watches:
            if entry.receipt is None and entry.tx_hash in receipts:
                entry.receipt = receipts[entry.tx_hash]
                progress = True
                self._release(entry)
            receipt = entry.receipt
            if receipt is not None and (
                receipt["status"] != 1 or entry.confirmations <= 0
                or (head is not None and head >= receipt["blockNumber"] + entry.confirmations)
            ):
                self._resolve(entry, partial(entry.future.set_result, receipt))
                progress = True
            elif entry.polled and now >= entry.deadline:
                if receipt is None:
                    error = TransactionNotMinedError(
                        f"transaction 0x{entry.tx_hash.hex()} not mined in {entry.timeout:.0f} s")
                else:
                    error = TransactionNotMinedError(
                        f"block {receipt['blockNumber']} not confirmed {entry.confirmations} times in time")
                self._fail(entry, error)
        return progress

    def _resolve(self, entry: _Watch, settle: Callable[[], None]) -> None:
        with self._cond:
            try:
                self._watches.remove(entry)
            except ValueError:
                return  # already settled (closed meanwhile)
        self._release(entry)
        if not entry.future.done():
            settle()

    def _fail(self, entry: _Watch, error: Exception) -> None:
        self._resolve(entry, lambda: entry.future.set_exception(error))

    def _release(self, entry: _Watch) -> None:
        if entry.released or entry.release is None:
            return
        entry.released = True
        try:
            entry.release()
        except Exception:  # a caller's callback must not end the thread
            log.exception("receipt watcher: release callback failed")

    # ------------------------------------------------------------------ polling

    def _poll(self, hashes: Sequence[bytes], need_head: bool) -> tuple[dict[bytes, TxReceipt], int | None]:
        """Return the receipts of the mined ones among `hashes`, and the latest block number if asked."""
        if self._batch is not False:
            answered = self._poll_batch(hashes, need_head)
            if answered is not None:
                return answered
        receipts: dict[bytes, TxReceipt] = {}
        for tx_hash in hashes:
            try:
                receipts[tx_hash] = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                pass
        return receipts, (int(self.w3.eth.block_number) if need_head else None)

    def _poll_batch(self, hashes: Sequence[bytes], need_head: bool) -> tuple[dict[bytes, TxReceipt], int | None] | None:
        """Poll with JSON-RPC batches; return None (and stop trying) if the node or provider refuses batches."""
        make_batch = getattr(self.w3.provider, "make_batch_request", None)
        if make_batch is None:
            self._batch = False
            return None
        requests: list[tuple[Any, Any]] = [("eth_getTransactionReceipt", ["0x" + h.hex()]) for h in hashes]
        if need_head:
            requests.append(("eth_blockNumber", []))
        receipts: dict[bytes, TxReceipt] = {}
        head: int | None = None
        for start in range(0, len(requests), BATCH_SIZE):
            chunk = requests[start:start + BATCH_SIZE]
            try:
                answers = make_batch(chunk)
            except (OSError, ChainUnavailableError):
                raise  # the chain is down, not batch-less
            except Exception as exc:
                self._no_batches(exc)
                return None
            if not isinstance(answers, list) or len(answers) != len(chunk):
                self._no_batches(answers)
                return None
            self._batch = True
            for (method, params), answer in zip(chunk, answers, strict=True):
                result = answer.get("result")
                if result is None:
                    continue  # not mined yet (or this item failed: asked again next round)
                if method == "eth_blockNumber":
                    head = int(result, 16)
                else:
                    receipts[bytes.fromhex(params[0][2:])] = AttributeDict.recursive(receipt_formatter(result))
        return receipts, head

    def _no_batches(self, why: object) -> None:
        """Stop using batches if the node never took one; raise if it did (then it is having trouble)."""
        if self._batch is not None:
            raise ChainUnavailableError(f"batch receipt poll failed: {why}")
        log.info("JSON-RPC batches refused (%s); polling receipts one by one", why)
        self._batch = False
