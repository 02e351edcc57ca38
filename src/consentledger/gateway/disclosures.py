"""Group fetch: disclosures asked for at about the same time go to their custodians in one signed call each.

The custodian checks, seals and logs every access of a `POST /v1/keys/batch` exactly as it would
one `POST /v1/keys/{record}/{seq}`, but commits its release log once and looks the entries up with
one log query, so single accesses arriving together are fetched together. A fetch arriving while
none is under way goes at once; the ones arriving meanwhile form the next call.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from consentledger.errors import ConsentLedgerError, PeerError

Disclose = Callable[[Sequence[Any]], list[Any]]
"""Fetch, open and check a list of recorded accesses; one answer (or error) per access, in order."""


@dataclass
class _Waiting:
    access: Any
    answer: Future[dict[str, Any]]


class DisclosureBatcher:
    """Fetches the disclosures of recorded accesses in batches; `submit` answers each one on its own."""

    def __init__(self, disclose: Disclose, *, max_items: int, max_in_flight: int) -> None:
        self._disclose = disclose
        self._max_items = max_items
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._slots = threading.Semaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="disclose")
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="disclosure-batcher", daemon=True)
        self._thread.start()

    def submit(self, access: Any) -> Future[dict[str, Any]]:
        """Queue one recorded access; the future gives its disclosure, or raises why it was not disclosed."""
        answer: Future[dict[str, Any]] = Future()
        if self._closed.is_set():
            answer.set_exception(PeerError("the gateway is shutting down; the disclosure was not fetched"))
            return answer
        self._queue.put(_Waiting(access, answer))
        return answer

    def close(self) -> None:
        """Stop collecting; fetches under way finish."""
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    def _collect(self) -> None:
        while not self._closed.is_set():
            first = self._queue.get()
            if first is None:
                break
            self._slots.acquire()  # while every slot is busy, the fetches arriving queue up for the next call
            group = [first]
            while len(group) < self._max_items:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    self._queue.put(None)
                    break
                group.append(waiting)
            self._pool.submit(self._fetch, group)

    def _fetch(self, group: list[_Waiting]) -> None:
        try:
            answers = self._disclose([w.access for w in group])
        except ConsentLedgerError as exc:
            answers = [exc] * len(group)
        except Exception as exc:  # never leave a caller waiting
            answers = [PeerError(f"fetching the disclosures failed: {exc}")] * len(group)
        finally:
            self._slots.release()
        for waiting, answer in zip(group, answers, strict=True):
            if isinstance(answer, BaseException):
                waiting.answer.set_exception(answer)
            else:
                waiting.answer.set_result(answer)
