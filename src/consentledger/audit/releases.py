"""Check a custodian's release log against the indexed accesses: no disclosure without a trace.

A custodian's gateway keeps its release log (`releases`, see `store.releases`) in the database
that also holds its audit index, so verify can join the two: every release must name an access
on chain made by the organisation it was released to, in the block it names, be made within the
release window after that access's block, and be no more than the allowed number of releases of
that access (one for a PROTECTED record). An index without a release log (an auditor's own copy
of the chain's events) has nothing to check here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, inspect, select

from consentledger.audit import tables as t
from consentledger.audit.checks import Discrepancy, DiscrepancyKind
from consentledger.settings import MAX_RELEASES, RELEASE_WINDOW
from consentledger.store.tables import releases
from consentledger.types import Sensitivity


@dataclass(frozen=True)
class ReleaseRules:
    """What a release may do: be made within `window` seconds of its access's block, `max_releases` times per
    access (a PROTECTED record's: once). The defaults are the gateway's."""

    window: int = RELEASE_WINDOW
    max_releases: int = MAX_RELEASES


def check_releases(
    conn: Connection, rules: ReleaseRules, *, block: int, until: int
) -> tuple[list[Discrepancy], int]:
    """Return the discrepancies of the release log against the index, and how many releases were checked.

    A release naming an access after the index's cursor `block`, made in or after the second of its
    timestamp `until`, may be for an access not indexed yet, so it is left for a later run.
    """
    if not inspect(conn).has_table(releases.name):
        return [], 0
    r, a, rec, cat = releases.c, t.accesses.c, t.records.c, t.categories.c
    query = (
        select(r.record_id, r.seq, r.ordinal, r.requester, r.access_block, r.access_tx, r.released_at,
               a.requester.label("on_chain_requester"), a.block.label("on_chain_block"),
               a.timestamp.label("on_chain_time"), cat.sensitivity)
        .select_from(releases)
        .outerjoin(t.accesses, and_(a.record == r.record_id, a.seq == r.seq))
        .outerjoin(t.records, rec.id == r.record_id)
        .outerjoin(t.categories, cat.id == rec.category)
        .order_by(r.record_id, r.seq, r.ordinal, r.id)
    )
    found: list[Discrepancy] = []
    checked = 0
    counted: dict[tuple[str, int], int] = {}
    for row in conn.execute(query):
        # `>=`: a chain mining a block per transaction puts many blocks in the cursor block's second.
        if row.access_block > block and int(row.released_at.timestamp()) >= until:
            continue
        checked += 1
        found.extend(Discrepancy(kind, message, row.record_id, row.seq, row.access_tx, row.access_block)
                     for kind, message in _judge(row, rules, counted))
    return found, checked


def _judge(
    row: Any, rules: ReleaseRules, counted: dict[tuple[str, int], int]
) -> list[tuple[DiscrepancyKind, str]]:
    """Return what is wrong with one release row (the next of its access in `counted`, which it updates)."""
    when = row.released_at.isoformat(timespec="seconds")
    if row.on_chain_block is None:
        return [(DiscrepancyKind.RELEASE_WITHOUT_ACCESS,
                 f"a disclosure was released to {row.requester} at {when} for an access that is not on chain")]
    if row.on_chain_requester != row.requester or row.on_chain_block != row.access_block:
        return [(DiscrepancyKind.RELEASE_WITHOUT_ACCESS,
                 f"a disclosure was released to {row.requester} at {when} for an access in block "
                 f"{row.access_block}, but the chain recorded it for {row.on_chain_requester} in block "
                 f"{row.on_chain_block}")]
    wrong: list[tuple[DiscrepancyKind, str]] = []
    age = int(row.released_at.timestamp()) - int(row.on_chain_time)
    if age > rules.window:
        wrong.append((DiscrepancyKind.RELEASE_OUTSIDE_WINDOW, f"released to {row.requester} at {when}, {age} s "
                      f"after the access's block; releases are allowed within {rules.window} s"))
    protected = row.sensitivity is not None and Sensitivity(row.sensitivity) is Sensitivity.PROTECTED
    limit = 1 if protected else rules.max_releases
    n = counted[(row.record_id, row.seq)] = counted.get((row.record_id, row.seq), 0) + 1
    if n > limit:
        allowed = "a PROTECTED record is released once" if protected else f"at most {limit} are allowed"
        wrong.append((DiscrepancyKind.RELEASE_OVER_LIMIT,
                      f"release {n} of this access (to {row.requester} at {when}); {allowed}"))
    return wrong
