"""What a gateway tells auditors and data subjects, read from the audit index it keeps beside its store.

Every answer first brings the index up to the chain's latest block and reads it while no sync
writes, so a page, a report or a history is one consistent view as of the index's cursor block.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from eth_utils import to_checksum_address

from consentledger.audit import VerifyReport, refusals, trace, verify
from consentledger.audit.lifecycle import tombstones
from consentledger.audit.releases import ReleaseRules
from consentledger.gateway.flows.receipts import receipt_path
from consentledger.gateway.runtime import Gateway
from consentledger.store import ReleaseLog


@dataclass(frozen=True)
class AccessFilters:
    """The filters of an access listing (see `consentledger.audit.trace`); None means any."""

    subject: str | None = None
    record: str | None = None
    org: str | None = None
    purpose: int | str | None = None
    since: int | None = None
    until: int | None = None


def accesses_page(gw: Gateway, filters: AccessFilters, *, limit: int, offset: int) -> dict[str, Any]:
    """Return one page of matching accesses, oldest first, with the offset of the next page (None: last)."""
    with gw.index_held():
        block = gw.indexer.cursor().block
        # One line more than asked tells whether another page follows, without counting them all.
        lines = trace(gw.store.engine, **asdict(filters), limit=limit + 1, offset=offset)
    more = len(lines) > limit
    shown = lines[:limit]
    released = ReleaseLog(gw.store.engine).of_records({line.record for line in shown})
    return {
        # Beside each access, the disclosures this gateway released for it (as custodian).
        "items": [{**line.to_json(), "releases": [r.to_json() for r in released.get((line.record, line.seq), [])]}
                  for line in shown],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
        "block": block,
    }


def refusals_page(gw: Gateway, filters: AccessFilters, *, limit: int, offset: int) -> dict[str, Any]:
    """Return one page of matching refused attempts, oldest first, with the offset of the next page (None: last)."""
    with gw.index_held():
        block = gw.indexer.cursor().block
        lines = refusals(gw.store.engine, **asdict(filters), limit=limit + 1, offset=offset)
    more = len(lines) > limit
    return {
        "items": [line.to_json() for line in lines[:limit]],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
        "block": block,
    }


def verify_report(gw: Gateway) -> dict[str, Any]:
    """Return the verification of the whole index against the chain and the ledger's rules, as JSON."""
    with gw.index_held():
        report = verify(gw.store.engine, gw.ledger, release_rules=release_rules(gw))
    return report_json(report)


def release_rules(gw: Gateway) -> ReleaseRules:
    """Return the release window and count this gateway enforces, to judge its release log by."""
    return ReleaseRules(window=gw.settings.release_window, max_releases=gw.settings.max_releases)


def report_json(report: VerifyReport) -> dict[str, Any]:
    """Return a VerifyReport as JSON-ready data: ok, what was checked, counts by kind, each discrepancy."""
    return report.to_json()


def subject_history(gw: Gateway, subject: str) -> dict[str, Any]:
    """Return every access to `subject`'s records (derived ones included), each record's on-chain head,
    the tombstone of each of their records destroyed so far (reason, tx, block), and every attempt to
    read them that the ledger refused (who, which rule, why), in chain order.

    Heads are read at the index's cursor block, the block the listed accesses run up to, so folding
    a record's accesses with `chain.history.link` gives exactly its head. Each access names the path
    of its offline receipt (`flows.receipts`).
    """
    with gw.index_held():
        block = gw.indexer.cursor().block
        lines = trace(gw.store.engine, subject=subject)
        refused = refusals(gw.store.engine, subject=subject)
        ended = tombstones(gw.store.engine, subject=to_checksum_address(subject))
        counts = Counter(line.record for line in lines)
        records = list(counts)
        heads = gw.indexer.source.heads(records, block) if records and block is not None else {}
    return {
        "subject": subject,
        "block": block,
        "items": [{**line.to_json(), "receipt": receipt_path(line.record, line.seq)} for line in lines],
        "records": [{"record": r, "head": heads[r], "accesses": counts[r]} for r in records],
        "tombstones": [t.to_json() for t in ended],
        "refusals": [line.to_json() for line in refused],
    }
