"""Group commit: the accesses this gateway is asked for at about the same time go on chain in one transaction.

Every access still gets its own entry in its record's hash chain (or its own refusal, recorded on
chain with the rule that fired): `requestAccessBatch` applies the rules item by item. Grouping only
shares the transaction, its signature, its base cost and its wait for a block.

One thread collects requests: the first one waits at most `window` seconds for company (not at all
when no batch is in flight, so a lone access is not delayed), up to `max_items`. A batch is signed
and broadcast with gas derived from its size, never estimated; the sender's bound on pending
transactions per signer holds the next batch back, and requests arriving meanwhile join it. Each
broadcast batch is awaited on its own thread, so several can be pending at once.

An access under a statutory mandate or by emergency override has its own contract function: it
takes the same way (queue, signer, nonce, Idempotency-Key saved before broadcast) as a batch of
one, its gas estimated (a refusal reverts the estimate, and nothing is sent).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from consentledger.chain.batch import AccessRequest, access_call, batch_gas_limit, batch_outcomes
from consentledger.chain.ledger import Ledger
from consentledger.chain.sender import PendingTransaction, SignedCall, TransactionSender
from consentledger.errors import (
    ConsentLedgerError,
    ContractRevertError,
    TransactionFailedError,
    TransactionNotMinedError,
)
from consentledger.store.access_keys import AccessKeys, Idempotency
from consentledger.types import AccessEntry, AccessRefusal, LegalBasis

log = logging.getLogger(__name__)

Outcome = AccessEntry | AccessRefusal
"""What the chain decided for one access: its entry, or its recorded refusal."""


@dataclass
class _Waiting:
    request: AccessRequest
    answer: Future[Outcome]
    idempotency: Idempotency | None = None


def _alone(group: Sequence[_Waiting]) -> bool:
    """Tell whether `group` holds an access that goes on chain alone (under a mandate or by override)."""
    return any(w.request.basis is not LegalBasis.CONSENT for w in group)


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
        self._queue: queue.SimpleQueue[list[_Waiting] | None] = queue.SimpleQueue()
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
        (answer,) = self._enqueue([request], [idempotency])
        return answer

    def record(
        self, requests: Sequence[AccessRequest], idempotencies: Sequence[Idempotency | None] | None = None,
        *, timeout: float | None = None,
    ) -> list[Outcome | ConsentLedgerError]:
        """Record many accesses, together in as few batches as fit; return each outcome or its error, in order."""
        keys = list(idempotencies) if idempotencies is not None else [None] * len(requests)
        answers: list[Future[Outcome]] = []
        for start in range(0, len(requests), self._max_items):
            end = start + self._max_items
            answers.extend(self._enqueue(requests[start:end], keys[start:end]))
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

    def _enqueue(
        self, requests: Sequence[AccessRequest], keys: Sequence[Idempotency | None]
    ) -> list[Future[Outcome]]:
        """Queue requests as one parcel (they go into the same batch); at most `max_items` of them."""
        if self._closed.is_set():
            raise TransactionFailedError("the gateway is shutting down; the access was not recorded")
        parcel = [_Waiting(request, Future(), key) for request, key in zip(requests, keys, strict=True)]
        self._queue.put(parcel)
        return [waiting.answer for waiting in parcel]

    # ------------------------------------------------------------------ the collecting thread

    def _collect(self) -> None:
        held: list[_Waiting] | None = None  # a parcel that did not fit the last batch: it starts the next
        while not self._closed.is_set():
            first = held if held is not None else self._queue.get()
            if first is None:
                break
            group, held = self._gather(first)
            self._in_flight.acquire()  # at most max_in_flight batches pending; requests queue up meanwhile
            if held is None:
                group, held = self._fill(group, deadline=0.0)
            self._send(group)
        for parcel in ([held] if held else []):
            self._fail(parcel, TransactionFailedError("the gateway is shutting down; the access was not recorded"))
        self._fail_queued()

    def _gather(self, first: list[_Waiting]) -> tuple[list[_Waiting], list[_Waiting] | None]:
        """Return `first` with the parcels arriving within the window (none awaited when idle), and any left over."""
        if _alone(first):
            return list(first), None
        with self._busy_lock:
            idle = self._busy == 0
        return self._fill(list(first), deadline=time.monotonic() + (0.0 if idle else self._window))

    def _fill(self, group: list[_Waiting], *, deadline: float) -> tuple[list[_Waiting], list[_Waiting] | None]:
        """Add queued parcels to `group` until it is full or nothing arrives before `deadline`.

        Returns the group and the parcel that did not fit (it starts the next batch), if one came.
        """
        while len(group) < self._max_items and not _alone(group):
            remaining = deadline - time.monotonic()
            try:
                parcel = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if parcel is None:
                self._queue.put(None)  # let the loop see the close after this group
                break
            if len(group) + len(parcel) > self._max_items or _alone(parcel):
                return group, parcel
            group.extend(parcel)
        return group, None

    def _send(self, group: list[_Waiting]) -> None:
        """Sign and broadcast one batch, then await its receipt on a waiter thread."""
        requests = [w.request for w in group]
        try:
            # A mandate or override access alone: estimated, so a refusal reverts before anything is sent.
            gas = None if _alone(group) else batch_gas_limit(
                [len(r.consents) for r in requests], [self._sources(r.record) for r in requests])
            pending = self._sender.submit(access_call(self._ledger, requests), gas=gas,
                                          before_broadcast=self._saver(group))
        except Exception as exc:  # nothing was broadcast: every request in it fails the same way
            self._in_flight.release()
            self._fail(group, exc)
            return
        self._fault("access-broadcast")
        with self._busy_lock:
            self._busy += 1
        self._waiters.submit(self._await, group, pending)

    def _await(self, group: list[_Waiting], pending: PendingTransaction) -> None:
        try:
            self._answer(group, pending)
        finally:
            with self._busy_lock:
                self._busy -= 1
            self._in_flight.release()

    def _answer(self, group: list[_Waiting], pending: PendingTransaction) -> None:
        try:
            receipt = pending.result()
        except TransactionNotMinedError as exc:
            self._fail(group, exc)  # it may still be mined: never send these accesses again on our own
            return
        except (ContractRevertError, TransactionFailedError) as exc:
            log.warning("an access batch of %d reverted as a whole (%s); recording each alone", len(group), exc)
            self._one_by_one(group)
            return
        except Exception as exc:
            self._fail(group, exc)
            return
        try:
            outcomes = batch_outcomes(self._ledger, receipt, len(group))
        except Exception as exc:  # mined, but its events do not read as one outcome per item: never resend
            self._fail(group, exc)
            return
        self._fault("access-mined")
        for waiting, outcome in zip(group, outcomes, strict=True):
            waiting.answer.set_result(outcome)

    def _sources(self, record: bytes) -> int:
        """Return how many sources `record` has (0 for one the chain does not know: it refuses that item cheaply)."""
        try:
            return self._sources_of(record)
        except ContractRevertError:
            return 0

    def _saver(self, group: list[_Waiting]) -> Callable[[SignedCall], None]:
        """Return what runs between signing a batch and broadcasting it: save its keyed items."""
        keyed = [(i, w.idempotency) for i, w in enumerate(group) if w.idempotency is not None]
        saved: list[bytes] = []

        def save(signed: SignedCall) -> None:
            if keyed:
                if saved:  # signed again after a nonce clash: the first transaction was never sent
                    for _, ask in keyed:
                        self._keys.forget(ask)
                self._keys.save(signed.tx_hash, self._sender.address, signed.nonce, len(group), signed.raw, keyed)
                saved.append(signed.tx_hash)
            self._fault("access-signed")

        return save

    def _one_by_one(self, group: list[_Waiting]) -> None:
        """After a batch reverted as a whole (nothing of it is on chain), record each request in a batch of one."""
        for waiting in group:
            try:
                if waiting.idempotency is not None:
                    self._keys.forget(waiting.idempotency)  # its batch reverted: the key moves to the new one
                call = access_call(self._ledger, [waiting.request])
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
                parcel = self._queue.get_nowait()
            except queue.Empty:
                return
            if parcel is not None:
                self._fail(parcel, error)


def _as_our_error(exc: Exception) -> ConsentLedgerError:
    if isinstance(exc, ConsentLedgerError):
        return exc
    return TransactionFailedError(f"recording the access failed: {exc}")
