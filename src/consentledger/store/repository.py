"""The gateway's persistent state: encrypted records, seen request nonces and the chain-write outbox.

Every chain write is an outbox row committed in the same transaction as the business data it
belongs to (DESIGN.md "Writes that must not be lost"); `chain.relay` turns the rows into
transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Connection, Engine, Row, func, select, text
from sqlalchemy.exc import IntegrityError

from consentledger.errors import IdempotencyConflictError, NotFoundError, RecordExistsError
from consentledger.store.tables import outbox, records, seen_nonces
from consentledger.types import Address


class RecordState(StrEnum):
    """Where a stored record is in its life."""

    PENDING = "pending"
    REGISTERED = "registered"
    SHREDDED = "shredded"


class OutboxStatus(StrEnum):
    """Where a chain write is: `sent` means signed and persisted, perhaps broadcast."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class StoredRecord:
    """An encrypted record as the custodian's gateway keeps it; timestamps are set by the store."""

    record_id: str
    custodian: Address
    subject: Address
    category: int
    ciphertext: bytes
    wrapped_dek: bytes
    kek_id: str
    salt: bytes
    commitment: bytes
    request_hash: str
    derived_from: tuple[str, ...] = ()
    state: RecordState = RecordState.PENDING
    idempotency_key: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class OutboxItem:
    """One chain write waiting for (or done by) the relay; `raw_tx` is set once it is signed."""

    id: int
    kind: str
    record_id: str | None
    payload: dict[str, Any]
    signer: Address
    status: OutboxStatus
    tx_nonce: int | None
    raw_tx: bytes | None
    tx_hash: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QueuedWrite:
    """A chain write to put in the outbox: its kind, payload and the record it concerns (if any)."""

    kind: str
    payload: Mapping[str, Any]
    record_id: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Records, nonces and outbox in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self._clock = clock

    # ------------------------------------------------------------------ records

    def add_record(
        self, record: StoredRecord, *, outbox_kind: str, outbox_payload: Mapping[str, Any], signer: str
    ) -> StoredRecord:
        """Store `record` with its chain write (one transaction); return it as stored.

        A retry carrying the same idempotency key and request hash returns the first record
        instead; the same key with another hash raises IdempotencyConflictError. A record id
        already taken otherwise raises RecordExistsError.
        """
        retried = self._retried(record)
        if retried is not None:
            return retried
        now = self._clock()
        stored = replace(record, custodian=_address(record.custodian), subject=_address(record.subject),
                         created_at=now, updated_at=now)
        try:
            with self.engine.begin() as conn:
                conn.execute(records.insert().values(_record_values(stored)))
                self._insert_outbox(conn, outbox_kind, outbox_payload, signer, stored.record_id, now)
        except IntegrityError as exc:
            # A concurrent request with the same key won the race: answer as a retry would be.
            retried = self._retried(record)
            if retried is not None:
                return retried
            if self.get_record(record.record_id) is not None:
                raise RecordExistsError(f"record {record.record_id} is already stored") from exc
            raise
        return stored

    def get_record(self, record_id: str) -> StoredRecord | None:
        """Return stored record `record_id`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(records).where(records.c.record_id == record_id)).first()
        return _record_from(row) if row is not None else None

    def get_records(self, record_ids: Sequence[str]) -> dict[str, StoredRecord]:
        """Return the stored records among `record_ids` (one query per 500 ids), by id; absent ones are left out."""
        found: dict[str, StoredRecord] = {}
        wanted = list(dict.fromkeys(record_ids))
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                query = select(records).where(records.c.record_id.in_(wanted[start:start + 500]))
                for row in conn.execute(query):
                    stored = _record_from(row)
                    found[stored.record_id] = stored
        return found

    def set_record_state(self, record_id: str, state: RecordState, *, unless: RecordState | None = None) -> None:
        """Move record `record_id` to `state` unless it is in state `unless`; raise NotFoundError if not stored."""
        query = records.update().where(records.c.record_id == record_id)
        if unless is not None:
            query = query.where(records.c.state != RecordState(unless).value)
        with self.engine.begin() as conn:
            result = conn.execute(query.values(state=RecordState(state).value, updated_at=self._clock()))
        if result.rowcount == 0 and (unless is None or self.get_record(record_id) is None):
            raise NotFoundError(f"no stored record {record_id}")

    def shred(self, doomed: Sequence[QueuedWrite], *, signer: str, then: Sequence[QueuedWrite] = ()) -> list[str]:
        """Crypto-shred each record of `doomed` and queue its write, then queue `then`: one transaction.

        Shredding overwrites the wrapped DEK, the ciphertext and the salt with nothing and marks the
        record shredded; the row stays (so the gateway can say the record is gone). A record already
        shredded, or not stored, is skipped with its write: its tombstone was queued when it was
        shredded, so each record gets exactly one. Because key and write commit together, a crash
        leaves either both or neither, and the relay sends the write after the key is gone.
        Return the ids shredded by this call.
        """
        now = self._clock()
        shredded: list[str] = []
        with self.engine.begin() as conn:
            for write in doomed:
                if write.record_id is None:
                    raise ValueError(f"a {write.kind} write to shred names no record")
                result = conn.execute(
                    records.update()
                    .where(records.c.record_id == write.record_id, records.c.state != RecordState.SHREDDED.value)
                    .values(ciphertext=b"", wrapped_dek=b"", salt=b"", state=RecordState.SHREDDED.value,
                            updated_at=now)
                )
                if result.rowcount == 1:
                    self._insert_outbox(conn, write.kind, write.payload, signer, write.record_id, now)
                    shredded.append(write.record_id)
            for write in then:
                self._insert_outbox(conn, write.kind, write.payload, signer, write.record_id, now)
        return shredded

    def shred_tombstoned(self, record_ids: Sequence[str]) -> list[str]:
        """Crypto-shred records the chain already tombstoned (or never will register), queuing nothing.

        For a tombstone this gateway did not send (its signer key used elsewhere): the chain refuses
        every access already, so the key goes at once and no second tombstone is written. Return the
        ids shredded by this call.
        """
        now = self._clock()
        shredded: list[str] = []
        with self.engine.begin() as conn:
            for record_id in record_ids:
                result = conn.execute(
                    records.update()
                    .where(records.c.record_id == record_id, records.c.state != RecordState.SHREDDED.value)
                    .values(ciphertext=b"", wrapped_dek=b"", salt=b"", state=RecordState.SHREDDED.value,
                            updated_at=now)
                )
                if result.rowcount == 1:
                    shredded.append(record_id)
        return shredded

    def records_by_subject(self, subject: str) -> list[StoredRecord]:
        """Return every record stored about `subject`, oldest first."""
        query = (
            select(records)
            .where(records.c.subject == _address(subject))
            .order_by(records.c.created_at, records.c.record_id)
        )
        with self.engine.connect() as conn:
            return [_record_from(row) for row in conn.execute(query)]

    def get_record_by_key(self, custodian: str, idempotency_key: str) -> StoredRecord | None:
        """Return the record a custodian stored under an idempotency key, if any."""
        query = select(records).where(
            records.c.custodian == _address(custodian), records.c.idempotency_key == idempotency_key
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record_from(row)

    def _retried(self, record: StoredRecord) -> StoredRecord | None:
        """Return the record an earlier request with the same idempotency key stored, if any."""
        if record.idempotency_key is None:
            return None
        earlier = self.get_record_by_key(record.custodian, record.idempotency_key)
        if earlier is not None and earlier.request_hash != record.request_hash:
            raise IdempotencyConflictError(
                f"idempotency key {record.idempotency_key!r} was used for a different request"
            )
        return earlier

    # ------------------------------------------------------------------ signed-request nonces

    def remember_nonce(self, signer: str, nonce: str, expires_at: datetime) -> bool:
        """Return True the first time (signer, nonce) is seen and remember it; False on a replay."""
        try:
            with self.engine.begin() as conn:
                conn.execute(seen_nonces.insert().values(signer=_address(signer), nonce=nonce, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def purge_nonces(self, now: datetime) -> int:
        """Forget nonces that expired before `now` (their requests are refused by time anyway)."""
        with self.engine.begin() as conn:
            return conn.execute(seen_nonces.delete().where(seen_nonces.c.expires_at < now)).rowcount

    # ------------------------------------------------------------------ outbox

    def enqueue(
        self, kind: str, payload: Mapping[str, Any], signer: str, record_id: str | None = None
    ) -> OutboxItem:
        """Queue a chain write on its own (without business data) and return it."""
        with self.engine.begin() as conn:
            item_id = self._insert_outbox(conn, kind, payload, signer, record_id, self._clock())
        item = self.get_outbox(item_id)
        assert item is not None  # just committed
        return item

    def pending(self, limit: int = 100, *, signer: str | None = None) -> list[OutboxItem]:
        """Return up to `limit` unfinished writes (pending or sent), oldest first, of `signer` if given."""
        query = select(outbox).where(outbox.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENT.value]))
        if signer is not None:
            query = query.where(outbox.c.signer == _address(signer))
        with self.engine.connect() as conn:
            return [_item_from(row) for row in conn.execute(query.order_by(outbox.c.id).limit(limit))]

    def mark_sent(self, item_id: int, tx_nonce: int, raw_tx: bytes, tx_hash: str) -> bool:
        """Persist the signed transaction of a pending write; return False if it was not pending.

        The relay must broadcast only after this returned True, so a crash can never leave a
        transaction on the wire that the database does not know.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id, outbox.c.status == OutboxStatus.PENDING.value)
                .values(status=OutboxStatus.SENT.value, tx_nonce=tx_nonce, raw_tx=raw_tx, tx_hash=tx_hash,
                        attempts=outbox.c.attempts + 1, updated_at=self._clock())
            )
        return result.rowcount == 1

    def unsign(self, item_id: int, tx_hash: str, note: str) -> bool:
        """Put a sent write back to pending, dropping its signed transaction `tx_hash`; False if it moved on.

        Only for a transaction that can never be mined (its nonce was used by another transaction
        of the signer): the relay then signs the write again with a fresh nonce, still exactly once.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id, outbox.c.status == OutboxStatus.SENT.value,
                       outbox.c.tx_hash == tx_hash)
                .values(status=OutboxStatus.PENDING.value, tx_nonce=None, raw_tx=None, tx_hash=None,
                        last_error=note, updated_at=self._clock())
            )
        return result.rowcount == 1

    def note_attempt(self, item_id: int, error: str | None = None) -> None:
        """Count one more broadcast of a sent write, with what went wrong last if anything."""
        self._update_outbox(item_id, attempts=outbox.c.attempts + 1, last_error=error)

    def mark_done(self, item_id: int) -> None:
        """Mark a write done: its effect is on chain."""
        self._update_outbox(item_id, status=OutboxStatus.DONE.value)

    def mark_failed(self, item_id: int, error: str) -> None:
        """Mark a write failed for good, saying why (for a revert: the rule that fired)."""
        self._update_outbox(item_id, status=OutboxStatus.FAILED.value, last_error=error)

    def get_outbox(self, item_id: int) -> OutboxItem | None:
        """Return outbox row `item_id`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(outbox).where(outbox.c.id == item_id)).first()
        return _item_from(row) if row is not None else None

    def outbox_of_record(self, record_id: str) -> list[OutboxItem]:
        """Return the chain writes queued for record `record_id`, oldest first."""
        query = select(outbox).where(outbox.c.record_id == record_id).order_by(outbox.c.id)
        with self.engine.connect() as conn:
            return [_item_from(row) for row in conn.execute(query)]

    def count_by_status(self) -> dict[str, int]:
        """Return how many outbox rows are in each status (every status present, zero if none)."""
        counts = {status.value: 0 for status in OutboxStatus}
        with self.engine.connect() as conn:
            for status, count in conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)):
                counts[status] = int(count)
        return counts

    def _insert_outbox(
        self, conn: Connection, kind: str, payload: Mapping[str, Any], signer: str, record_id: str | None,
        now: datetime,
    ) -> int:
        result = conn.execute(
            outbox.insert().values(
                kind=kind, record_id=record_id, payload=dict(payload), signer=_address(signer),
                status=OutboxStatus.PENDING.value, attempts=0, created_at=now, updated_at=now,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def _update_outbox(self, item_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(outbox.update().where(outbox.c.id == item_id).values(updated_at=self._clock(),
                                                                                       **values))
        if result.rowcount == 0:
            raise NotFoundError(f"no outbox row {item_id}")

    # ------------------------------------------------------------------ replicas

    @contextmanager
    def leader_lock(self, name: str) -> Iterator[bool]:
        """Yield whether this process holds lock `name` (e.g. "relay") until the block ends.

        On PostgreSQL this is a session advisory lock on a dedicated connection, so exactly one
        replica's relay runs at a time and a crashed holder's lock dies with its connection. The
        lock is the store's own (its schema's): agencies sharing one database in separate schemas
        each have their leader.
        SQLite databases are used by one process only: the answer is always True.
        """
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        held = False
        try:
            held = bool(conn.scalar(text(f"SELECT pg_try_advisory_lock({_LOCK_KEY})"), {"name": name}))
            yield held
        finally:
            _release(conn, name, held)


_LOCK_KEY = "hashtext(current_schema() || ':' || :name)"
"""The advisory lock key of leader lock `:name` in the connection's schema."""


def _release(conn: Connection, name: str, held: bool) -> None:
    try:
        if held:
            conn.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEY})"), {"name": name})
    except Exception:
        # Never hand a connection that may still hold the lock back to the pool: the lock dies with it.
        conn.invalidate()
    finally:
        conn.close()


def _address(value: str) -> Address:
    return Address(to_checksum_address(value))


def _record_values(record: StoredRecord) -> dict[str, Any]:
    return {
        "record_id": record.record_id, "custodian": record.custodian, "subject": record.subject,
        "category": record.category, "ciphertext": record.ciphertext, "wrapped_dek": record.wrapped_dek,
        "kek_id": record.kek_id, "salt": record.salt, "commitment": record.commitment,
        "derived_from": list(record.derived_from), "state": RecordState(record.state).value,
        "idempotency_key": record.idempotency_key, "request_hash": record.request_hash,
        "created_at": record.created_at, "updated_at": record.updated_at,
    }


def _record_from(row: Row[Any]) -> StoredRecord:
    return StoredRecord(
        record_id=row.record_id, custodian=Address(row.custodian), subject=Address(row.subject),
        category=row.category, ciphertext=bytes(row.ciphertext), wrapped_dek=bytes(row.wrapped_dek),
        kek_id=row.kek_id, salt=bytes(row.salt), commitment=bytes(row.commitment), request_hash=row.request_hash,
        derived_from=tuple(str(v) for v in row.derived_from), state=RecordState(row.state),
        idempotency_key=row.idempotency_key, created_at=row.created_at, updated_at=row.updated_at,
    )


def _item_from(row: Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=int(row.id), kind=row.kind, record_id=row.record_id, payload=dict(row.payload),
        signer=Address(row.signer), status=OutboxStatus(row.status), tx_nonce=row.tx_nonce,
        raw_tx=bytes(row.raw_tx) if row.raw_tx is not None else None, tx_hash=row.tx_hash,
        attempts=row.attempts, last_error=row.last_error, created_at=row.created_at, updated_at=row.updated_at,
    )

