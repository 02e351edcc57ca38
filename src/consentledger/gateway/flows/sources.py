"""Derived records live only as long as their sources: the release check and the custodian's selection.

A derived record or aggregate is built on other records, possibly held by other custodians. Once an
original source is tombstoned on chain (erased, past retention, whatever the reason, wherever it is
held) the derived record must not be released any more, and its own custodian shreds and tombstones
it (reason SOURCE_DESTROYED, `gateway.flows.follow`).

Sources are the ones the chain keeps: RecordRegistry expands a derived source into its own original
sources, so a record derived from derived data answers to the original records (as `requestAccess`
does), and the audit index holds the same expansion in `idx_record_sources`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from consentledger.audit import tables as t
from consentledger.errors import RecordDestroyedError
from consentledger.gateway.flows.tombstones import destroyed
from consentledger.gateway.runtime import Gateway
from consentledger.store import RecordState, Store
from consentledger.store.tables import records
from consentledger.types import RecordInfo, TombstoneReason


def refuse_dead_sources(gw: Gateway, info: RecordInfo) -> None:
    """Raise RecordDestroyedError (reason source_destroyed) if an original source of the record is tombstoned.

    Reads each source's tombstone from the chain view, which follows every RecordTombstoned up to its
    latest refresh (the custodian's release refreshes it first), so a release is refused from the block
    the source's tombstone lands in, before any index or sweep has seen it. A plain record has no sources.
    """
    for source in info.derived_from:
        reason = gw.chain.record(source).tombstone
        if reason is not TombstoneReason.NONE:
            raise source_destroyed(gw.store, "0x" + bytes(info.id).hex(), "0x" + bytes(source).hex(), reason)


def source_destroyed(store: Store, record_id: str, source: str, reason: TombstoneReason) -> RecordDestroyedError:
    """Return the 410 refusal of a record whose source `source` was destroyed for `reason`.

    Its own tombstone is named as far as it got (queued, sent, on chain), or "none" before the
    custodian's upkeep has shredded it.
    """
    own = destroyed(store, record_id)
    known = own.tombstone if own.tombstone and own.tombstone["status"] != "none" else None
    return RecordDestroyedError(
        record_id.lower(), TombstoneReason.SOURCE_DESTROYED.name.lower(),
        f"record {record_id.lower()} is derived from record {source}, destroyed ({reason.name.lower()}): "
        "it is released no more",
        known or {"status": "none", "tx_hash": None, "block": None},
    )


CHUNK = 500
"""How many record ids one `IN (...)` query names at most (SQLite allows a few thousand parameters)."""


def orphaned(conn: Connection, custodian: str, limit: int, *, sources: Sequence[str] | None = None) -> list[str]:
    """Return up to `limit` live records held here by `custodian` with an original source tombstoned (index).

    With `sources` only those (just tombstoned) sources are looked at, through the index on
    `idx_record_sources.source`; without, every record held here is.
    """
    own, source = t.records.alias("own"), t.records.alias("source")
    s, r = t.record_sources.c, records.c
    query = (
        select(r.record_id, r.custodian).distinct()
        .select_from(
            t.record_sources.join(records, r.record_id == s.record)
            .join(own, own.c.id == r.record_id)
            .join(source, source.c.id == s.source)
        )
        .where(r.state != RecordState.SHREDDED.value, own.c.tombstone.is_(None), source.c.tombstone.is_not(None))
    )
    if sources is None:
        rows = conn.execute(query.where(r.custodian == custodian).order_by(r.record_id).limit(limit)).all()
        return [str(row.record_id) for row in rows]
    found: set[str] = set()
    for at in range(0, len(sources), CHUNK):
        rows = conn.execute(query.where(s.source.in_(sources[at:at + CHUNK]))).all()
        # The custodian is compared here, not in SQL: there SQLite would walk the custodian's index (every record).
        found.update(str(row.record_id) for row in rows if row.custodian == custodian)
    return sorted(found)[:limit]
