"""Moving every stored record's DEK from one KEK to another, in batches a crash cannot spoil.

Only the wrapped DEK and its `kek_id` change; payload ciphertexts are never touched. Each batch
is one transaction whose UPDATE is a compare-and-swap on (kek_id, wrapped DEK), so a batch that a
crash interrupted is simply redone, and a row another writer changed meanwhile (shredded, say) is
left as that writer left it. Shredded records (state `shredded` or an empty wrapped DEK) hold no
key and are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, and_, bindparam, func, select

from consentledger.crypto.vault import unwrap_dek, wrap_dek
from consentledger.errors import ConfigurationError, IntegrityError
from consentledger.store.tables import records

DEFAULT_BATCH = 500
"""How many records one re-wrap transaction moves."""

_SHREDDED = "shredded"


@dataclass(frozen=True)
class Kek:
    """A key-encryption key and its id (as `crypto.keyfiles.kek_id` computes it)."""

    id: str
    key: bytes


@dataclass(frozen=True)
class KekCensus:
    """How many records hold a wrapped DEK under each KEK id, and how many are shredded (hold none)."""

    wrapped: dict[str, int]
    shredded: int

    def under(self, kek_id: str) -> int:
        """Return how many records are wrapped under `kek_id`."""
        return self.wrapped.get(kek_id, 0)

    def others(self, *kek_ids: str) -> dict[str, int]:
        """Return the counts of every KEK id not among `kek_ids`."""
        return {kid: n for kid, n in self.wrapped.items() if kid not in kek_ids}


def _holds_key() -> ColumnElement[bool]:
    """The rows that hold a wrapped DEK: not shredded, wrapped DEK not empty."""
    return and_(records.c.state != _SHREDDED, func.length(records.c.wrapped_dek) > 0)


def census(engine: Engine) -> KekCensus:
    """Return how many records are wrapped under each KEK id, and how many are shredded."""
    query = select(records.c.kek_id, func.count()).where(_holds_key()).group_by(records.c.kek_id)
    with engine.connect() as conn:
        wrapped = {str(kid): int(n) for kid, n in conn.execute(query)}
        total = int(conn.scalar(select(func.count()).select_from(records)) or 0)
    return KekCensus(wrapped, total - sum(wrapped.values()))


def rewrap_batch(engine: Engine, old: Kek, new: Kek, *, after: str = "", limit: int = DEFAULT_BATCH) -> tuple[int, str]:
    """Re-wrap up to `limit` records still under `old` whose id sorts after `after`, in one transaction.

    Returns how many rows this batch moved and the last record id it looked at ("" when none was
    left, i.e. the pass is over). Raises `IntegrityError` naming the record if a DEK does not open
    under `old`; the whole batch is then left as it was.
    """
    if limit < 1:
        raise ValueError(f"a batch holds at least one record, got {limit}")
    query = (
        select(records.c.record_id, records.c.wrapped_dek)
        .where(records.c.kek_id == old.id, records.c.record_id > after, _holds_key())
        .order_by(records.c.record_id)
        .limit(limit)
    )
    swap = (
        records.update()
        .where(
            records.c.record_id == bindparam("rid"),
            records.c.kek_id == old.id,
            records.c.wrapped_dek == bindparam("old_dek"),
            records.c.state != _SHREDDED,
        )
        .values(wrapped_dek=bindparam("new_dek"), kek_id=new.id)
    )
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        if not rows:
            return 0, ""
        changes = [_rewrapped(str(row.record_id), bytes(row.wrapped_dek), old, new) for row in rows]
        moved = conn.execute(swap, changes).rowcount
    return int(moved), str(rows[-1].record_id)


def rewrap_all(
    engine: Engine,
    old: Kek,
    new: Kek,
    *,
    batch: int = DEFAULT_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Re-wrap every record under `old` for `new`, batch by batch; return how many rows moved.

    `on_batch` is told each batch's count as soon as it is committed. Records already under `new`
    (an earlier, interrupted run) are passed over.
    """
    moved, after = 0, ""
    while True:
        count, after = rewrap_batch(engine, old, new, after=after, limit=batch)
        if not after:
            return moved
        moved += count
        if on_batch is not None:
            on_batch(count)


def require_one_kek(engine: Engine, kek_id: str) -> None:
    """Raise `ConfigurationError` if any record's DEK is wrapped under another KEK than `kek_id`.

    A gateway holding one KEK could open none of those records, and would wrap new ones under a
    KEK that a rotation elsewhere (another replica's host) has already destroyed.
    """
    others = census(engine).others(kek_id)
    if others:
        found = ", ".join(f"{n} under {kid}" for kid, n in sorted(others.items()))
        raise ConfigurationError(
            f"the store holds records wrapped under other KEKs than the KEK file's {kek_id} ({found}): "
            "finish that rotation with `consentledger keys rotate-kek`, or use the KEK file it wrote"
        )


def _rewrapped(record_id: str, wrapped: bytes, old: Kek, new: Kek) -> dict[str, object]:
    """Return the bind values that swap one record's DEK from `old` to `new`."""
    rid = bytes.fromhex(record_id.removeprefix("0x"))
    try:
        dek = unwrap_dek(old.key, wrapped, rid)
    except IntegrityError:
        raise IntegrityError(f"record {record_id}: its wrapped DEK does not open under KEK {old.id}") from None
    return {"rid": record_id, "old_dek": wrapped, "new_dek": wrap_dek(new.key, dek, rid)}
