"""Idempotency-Keys in progress: a key held by one request is refused to any other, on every replica.

A client (or a load balancer) may retry a request on another replica while the first is still
being recorded. Both would otherwise sign a batch holding the same key; the second's save would
fail and take the unrelated accesses grouped with it down too. So a request holds its keys from
before it is batched until it is answered: in this process (a set), and on PostgreSQL also as
session advisory locks on one connection of this process, which die with the process, so a
replica killed mid-request never leaves a key held.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from consentledger.errors import IdempotencyConflictError

Name = tuple[str, str]
"""(caller, key) of one Idempotency-Key."""

# Two-int advisory locks, apart from the leader locks' one-bigint ones; the store's schema is in the key.
_TRY = "SELECT pg_try_advisory_lock(hashtext(current_schema() || ':key:' || :caller), hashtext(:key))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext(current_schema() || ':key:' || :caller), hashtext(:key))"

IN_PROGRESS = "a request with this Idempotency-Key is in progress; retry later"


class KeyClaims:
    """Holds the Idempotency-Keys of requests in progress, across the replicas of one store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._shared = engine.dialect.name == "postgresql"
        self._lock = threading.Lock()
        self._claimed: set[Name] = set()
        self._conn: Connection | None = None

    @contextmanager
    def claim(self, names: Sequence[Name]) -> Iterator[None]:
        """Hold these keys until the block ends; IdempotencyConflictError if another request holds one."""
        wanted = list(dict.fromkeys(names))
        with self._lock:
            if any(name in self._claimed for name in wanted):
                raise IdempotencyConflictError(IN_PROGRESS)
            if self._shared:
                self._lock_shared(wanted)
            self._claimed.update(wanted)
        try:
            yield
        finally:
            with self._lock:
                self._claimed.difference_update(wanted)
                if self._shared:
                    self._unlock_shared(wanted)

    def close(self) -> None:
        """Drop the claims connection (its keys with it)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _lock_shared(self, names: list[Name]) -> None:
        """Take every key's advisory lock, or none: a key another replica holds is a conflict."""
        conn = self._connection()
        taken: list[Name] = []
        try:
            for caller, key in names:
                if not conn.scalar(text(_TRY), {"caller": caller, "key": key}):
                    raise IdempotencyConflictError(IN_PROGRESS)
                taken.append((caller, key))
        except BaseException:
            self._unlock_shared(taken)
            raise

    def _unlock_shared(self, names: list[Name]) -> None:
        if not names or self._conn is None:
            return
        try:
            for caller, key in names:
                self._conn.execute(text(_UNLOCK), {"caller": caller, "key": key})
        except Exception:
            # A connection that may still hold locks is never reused: its locks die with it.
            self._conn.invalidate()
            self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn
