"""Group commit: the accesses this gateway is asked for at about the same time go on chain in one transaction.

Every access still gets its own entry in its record's hash chain (or its own refusal, recorded on
chain with the rule that fired): `requestAccessBatch` applies the rules item by item. Grouping only
shares the transaction, its signature, its base cost and its wait for a block.

One thread collects requests: the first one waits at most `window` seconds for company (not at all
when no batch is in flight, so a lone access is not delayed), up to `max_items`. A batch is signed
and broadcast with gas derived from its size, never estimated; the sender's bound on pending
transactions per signer holds the next batch back, and requests arriving meanwhile join it. Each
broadcast batch is awaited on its own thread, so several can be pending at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from consentledger.chain.batch import AccessRequest, batch_call, batch_gas_limit, batch_outcomes
from consentledger.chain.ledger import Ledger
from consentledger.chain.sender import SignedCall, TransactionSender
from consentledger.errors import ConsentLedgerError, TransactionFailedError, TransactionNotMinedError
from consentledger.store.access_keys import AccessKeys, Idempotency
from consentledger.types import AccessEntry, AccessRefusal

log = logging.getLogger(__name__)

Outcome = AccessEntry | AccessRefusal
"""What the chain decided for one access: its entry, or its recorded refusal."""


@dataclass
class _Waiting:
    request: AccessRequest
    answer: Future[Outcome]
    idempotency: Idempotency | None = None


class AccessBatcher:
    """Records accesses on chain in group-committed batches; `submit` answers each one on its own."""

    def __init__(
        self,
        ledger: Ledger,
        sender: TransactionSender,
        *,
        window: float,
        max_items: int,
        max_in_flight: int,
        sources_of: Callable[[bytes], int],
        keys: AccessKeys,
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        self._ledger = ledger
        self._sender = sender
        self._window = window
        self._max_items = max_items
        self._sources_of = sources_of
        self._keys = keys
        self._fault = fault
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._in_flight = threading.Semaphore(max_in_flight)
        self._busy = 0  # batches broadcast and not yet answered
        self._busy_lock = threading.Lock()
        self._waiters = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="access-batch")
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="access-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: AccessRequest, *, idempotency: Idempotency | None = None) -> Future[Outcome]:
        """Queue one access; the future gives its entry or refusal, or raises why it could not be recorded.

        With `idempotency` the batch transaction holding the access is saved under that key before
        it is broadcast (see `store.access_keys`), so a retry finds it instead of recording it again.
        """
        if self._closed.is_set():
            raise TransactionFailedError("the gateway is shutting down; the access was not recorded")
        answer: Future[Outcome] = Future()
        self._queue.put(_Waiting(request, answer, idempotency))
        return answer

    def record(
        self, requests: Sequence[AccessRequest], idempotencies: Sequence[Idempotency | None] | None = None,
        *, timeout: float | None = None,
    ) -> list[Outcome | ConsentLedgerError]:
        """Record many accesses (they join the batches being collected); return each outcome or its error."""
        keys = idempotencies or [None] * len(requests)
        answers = [self.submit(request, idempotency=key) for request, key in zip(requests, keys, strict=True)]
        outcomes: list[Outcome | ConsentLedgerError] = []
        for answer in answers:
            try:
                outcomes.append(answer.result(timeout))
            except ConsentLedgerError as exc:
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:
        """Stop collecting; requests still queued are answered with an error, batches in flight finish."""
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._waiters.shutdown(wait=True)

    # ------------------------------------------------------------------ the collecting thread

    def _collect(self) -> None:
        while not self._closed.is_set():
            first = self._queue.get()
            if first is None:
                break
            group = self._gather(first)
            self._in_flight.acquire()  # at most max_in_flight batches pending; requests queue up meanwhile
            group.extend(self._drain(self._max_items - len(group)))
            self._send(group)
        self._fail_queued()

    def _gather(self, first: _Waiting) -> list[_Waiting]:
        """Return `first` with the requests that arrive within the window (none waited for when idle)."""
        group = [first]
        with self._busy_lock:
            idle = self._busy == 0
        deadline = time.monotonic() + (0.0 if idle else self._window)
        while len(group) < self._max_items:
            remaining = deadline - time.monotonic()
            try:
                waiting = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if waiting is None:
                self._queue.put(None)  # let the loop see the close after this group
                break
            group.append(waiting)
        return group

    def _drain(self, room: int) -> list[_Waiting]:
        drained: list[_Waiting] = []
        while len(drained) < room:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                break
            if waiting is None:
                self._queue.put(None)
                break
            drained.append(waiting)
        return drained

    def _send(self, group: list[_Waiting]) -> None:
        """Sign and broadcast one batch, then await its receipt on a waiter thread."""
        requests = [w.request for w in group]
        try:
            gas = batch_gas_limit([len(r.consents) for r in requests], [self._sources_of(r.record) for r in requests])
            pending = self._sender.submit(batch_call(self._ledger, requests), gas=gas,
                                          before_broadcast=self._saver(group))
        except Exception as exc:  # nothing was broadcast: every request in it fails the same way
            self._in_flight.release()
            self._fail(group, exc)
            return
        self._fault("access-broadcast")
        with self._busy_lock:
            self._busy += 1
        self._waiters.submit(self._await, group, pending)

    def _await(self, group: list[_Waiting], pending: object) -> None:
        try:
            receipt = pending.result()  # type: ignore[attr-defined]
            outcomes = batch_outcomes(self._ledger, receipt, len(group))
            self._fault("access-mined")
        except TransactionNotMinedError as exc:
            self._fail(group, exc)  # it may still be mined: never send these accesses again on our own
        except Exception as exc:
            log.warning("an access batch of %d failed as a whole (%s); recording each alone", len(group), exc)
            self._one_by_one(group)
        else:
            for waiting, outcome in zip(group, outcomes, strict=True):
                waiting.answer.set_result(outcome)
        finally:
            with self._busy_lock:
                self._busy -= 1
            self._in_flight.release()

    def _saver(self, group: list[_Waiting]) -> Callable[[SignedCall], None]:
        """Return what runs between signing a batch and broadcasting it: save its keyed items."""
        keyed = [(i, w.idempotency) for i, w in enumerate(group) if w.idempotency is not None]

        def save(signed: SignedCall) -> None:
            if keyed:
                self._keys.save(signed.tx_hash, self._sender.address, signed.nonce, len(group), signed.raw, keyed)
            self._fault("access-signed")

        return save

    def _one_by_one(self, group: list[_Waiting]) -> None:
        """After a batch reverted as a whole (nothing of it is on chain), record each request in a batch of one."""
        for waiting in group:
            try:
                if waiting.idempotency is not None:
                    self._keys.forget(waiting.idempotency)  # its batch reverted: the key moves to the new one
                call = batch_call(self._ledger, [waiting.request])
                # Estimated: the exact gas of this one item.
                receipt = self._sender.submit(call, before_broadcast=self._saver([waiting])).result()
                (outcome,) = batch_outcomes(self._ledger, receipt, 1)
            except Exception as exc:
                waiting.answer.set_exception(_as_our_error(exc))
            else:
                waiting.answer.set_result(outcome)

    def _fail(self, group: list[_Waiting], exc: Exception) -> None:
        error = _as_our_error(exc)
        for waiting in group:
            waiting.answer.set_exception(error)

    def _fail_queued(self) -> None:
        error = TransactionFailedError("the gateway is shutting down; the access was not recorded")
        while True:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                return
            if waiting is not None:
                waiting.answer.set_exception(error)


def _as_our_error(exc: Exception) -> ConsentLedgerError:
    if isinstance(exc, ConsentLedgerError):
        return exc
    return TransactionFailedError(f"recording the access failed: {exc}")
