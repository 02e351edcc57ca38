"""Accesses asked for with an Idempotency-Key: which signed batch transaction records each, saved before broadcast.

A retry with the same key finds the transaction instead of recording a second access (and using a
second use of a consent): mined, its entry is read from the receipt; not yet mined, the saved raw
transaction is broadcast again. Only a transaction that can never be mined (the signer's nonce moved
past it without it) lets the key be recorded anew. Rows older than the retention are pruned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from consentledger.errors import IdempotencyConflictError
from consentledger.store.key_claims import KeyClaims
from consentledger.store.tables import access_keys, access_txs


@dataclass(frozen=True)
class Idempotency:
    """Who asked with which key, and the hash of what they asked."""

    caller: str
    key: str
    request_hash: str


@dataclass(frozen=True)
class KeyedAccess:
    """Where an access asked with a key was put: a signed batch transaction and the item's place in it."""

    idempotency: Idempotency
    tx_hash: bytes
    index: int
    nonce: int
    size: int
    raw_tx: bytes


class AccessKeys:
    """The gateway's record of keyed accesses, in its database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._claims = KeyClaims(engine)

    def find(self, caller: str, key: str) -> KeyedAccess | None:
        """Return where the access asked by `caller` with `key` was put, or None if it never was."""
        k, tx = access_keys.c, access_txs.c
        query = (
            select(k.request_hash, k.tx_hash, k.item_index, tx.nonce, tx.size, tx.raw_tx)
            .join(access_txs, tx.tx_hash == k.tx_hash)
            .where(k.caller == caller, k.key == key)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return KeyedAccess(Idempotency(caller, key, row.request_hash), bytes.fromhex(row.tx_hash[2:]), row.item_index,
                           row.nonce, row.size, bytes(row.raw_tx))

    def save(self, tx_hash: bytes, signer: str, nonce: int, size: int, raw_tx: bytes,
             keyed: Sequence[tuple[int, Idempotency]]) -> None:
        """Save a signed batch and its keyed items (index, key) in one transaction, before it is broadcast.

        A key already saved (`claim` keeps concurrent requests with one key apart on every replica,
        so only a key held past its claim can be) raises IdempotencyConflictError and saves nothing;
        that batch must not be broadcast.
        """
        now = datetime.now(UTC)
        hex_hash = "0x" + tx_hash.hex()
        try:
            with self._engine.begin() as conn:
                conn.execute(access_txs.insert().values(tx_hash=hex_hash, signer=signer, nonce=nonce, size=size,
                                                        raw_tx=raw_tx, created_at=now))
                conn.execute(access_keys.insert(), [
                    {"caller": ask.caller, "key": ask.key, "request_hash": ask.request_hash, "tx_hash": hex_hash,
                     "item_index": index, "created_at": now}
                    for index, ask in keyed
                ])
        except IntegrityError:
            raise IdempotencyConflictError("this Idempotency-Key is already in use by another request") from None

    def forget(self, ask: Idempotency) -> None:
        """Forget a key whose transaction can never be mined, so it is recorded anew."""
        with self._engine.begin() as conn:
            conn.execute(delete(access_keys).where(access_keys.c.caller == ask.caller, access_keys.c.key == ask.key))

    @contextmanager
    def claim(self, asks: Sequence[Idempotency]) -> Iterator[None]:
        """Hold these keys for one request, on every replica; a concurrent request with one of them is refused."""
        with self._claims.claim([(ask.caller, ask.key) for ask in asks]):
            yield

    def close(self) -> None:
        """Let go of the keys held across replicas (at shutdown)."""
        self._claims.close()

    def prune(self, older_than: datetime) -> int:
        """Forget keys and batches saved before `older_than`; return how many keys went."""
        with self._engine.begin() as conn:
            gone = conn.execute(delete(access_keys).where(access_keys.c.created_at < older_than)).rowcount
            conn.execute(delete(access_txs).where(access_txs.c.created_at < older_than))
        return int(gone or 0)
