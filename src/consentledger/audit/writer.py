"""Write decoded events into the index tables, and undo what a reorganised chain no longer holds.

Every write is an insert that ignores an existing key or an update to a fixed value, so applying
the same range twice leaves the same rows. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from consentledger.audit import tables as t
from consentledger.audit.events import ACCESS_RECORDED, ACCESS_REFUSED, AccessRow, DecodedEvent, access_row
from consentledger.audit.rules import RuleDecoder
from consentledger.governance import purposes_in
from consentledger.types import MemberStatus, RecordKind

Event = Mapping[str, Any]
"""An event as `idx_events` stores it: block, log_index, tx_hash, timestamp, contract, name, args."""

GOVERNANCE_EVENTS = frozenset({
    "MemberAdmitted", "MemberStatusChanged", "MemberRolesChanged", "MemberKeysChanged",
    "CategoryAdded", "CategoryPurposesChanged", "PurposeAdded", "PurposeSunsetChanged",
    "MandateGranted", "MandateRevoked", "OverridePolicyChanged",
})
"""Events whose tables are rebuilt by replaying `idx_events` after a reorg (they are few)."""


@dataclass(frozen=True)
class WriteCounts:
    """How many events of a range were written, and how many of them were accesses and refusals."""

    events: int
    accesses: int
    refusals: int = 0


def insert(conn: Connection, table: Table) -> Any:
    """Return the dialect's INSERT for `table` (with ON CONFLICT support)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def bulk_insert_accesses(conn: Connection, rows: Sequence[AccessRow]) -> None:
    """Insert AccessRecorded rows in one multi-row statement; rows already indexed are kept as they are."""
    if rows:
        conn.execute(insert(conn, t.accesses).on_conflict_do_nothing(), [r.as_row() for r in rows])


def write_events(
    conn: Connection, decoded: Sequence[DecodedEvent], timestamps: Mapping[int, int], rules: RuleDecoder
) -> WriteCounts:
    """Write one range's events (in chain order); `timestamps` maps each event's block to its time.

    `rules` names the custom error behind each AccessRefused.
    """
    accesses = [access_row(e) for e in decoded if e.name == ACCESS_RECORDED]
    refusals = [refusal_row(e, timestamps[e.block_number], rules) for e in decoded if e.name == ACCESS_REFUSED]
    others = [
        {
            "block": e.block_number, "log_index": e.log_index, "tx_hash": e.tx_hash,
            "timestamp": timestamps[e.block_number], "contract": e.contract, "name": e.name, "args": e.args,
        }
        for e in decoded
        if e.name not in (ACCESS_RECORDED, ACCESS_REFUSED)
    ]
    if others:
        conn.execute(insert(conn, t.events).on_conflict_do_nothing(), others)
    # Inserts first, then updates: a tombstone or revocation in this range may name a row inserted here.
    aggregates = {e.args["record"] for e in decoded if e.name == "AggregateRegistered"}
    _insert_records(conn, [e for e in others if e["name"] == "RecordRegistered"], aggregates)
    _insert_consents(conn, [e for e in others if e["name"] == "ConsentGranted"])
    bulk_insert_accesses(conn, accesses)
    if refusals:
        conn.execute(insert(conn, t.refusals).on_conflict_do_nothing(), refusals)
    _insert_overrides(conn, [e for e in others if e["name"] == "OverrideRecorded"])
    _tombstone(conn, [e for e in others if e["name"] == "RecordTombstoned"])
    _attest(conn, [e for e in others if e["name"] == "RecordAttested"])
    _review_overrides(conn, [e for e in others if e["name"] == "OverrideReviewed"])
    for event in others:
        if event["name"] == "ConsentRevoked":
            _revoke(conn, event)
        elif event["name"] in GOVERNANCE_EVENTS:
            _GOVERNANCE[event["name"]](conn, event)
    return WriteCounts(len(decoded), len(accesses), len(refusals))


def refusal_row(event: DecodedEvent, timestamp: int, rules: RuleDecoder) -> dict[str, Any]:
    """Return the `idx_refusals` row of a decoded AccessRefused event, its rule named from its error data."""
    args = event.args
    rule = rules.decode(args["rule"], args["reason"])
    return {
        "block": event.block_number, "log_index": event.log_index, "record": args["record"],
        "requester": args["requester"], "actor": args["actor"], "purpose": int(args["purpose"]),
        "rule": rule.name, "rule_args": rule.args, "reason": args["reason"], "timestamp": timestamp,
        "tx_hash": event.tx_hash,
    }


def rollback_from(conn: Connection, fork_block: int) -> None:
    """Remove everything indexed from `fork_block` on, as if those blocks were never read."""
    for table, column in t.BLOCK_COLUMNS.items():
        conn.execute(delete(table).where(table.c[column] >= fork_block))
    r, c = t.records.c, t.consents.c
    conn.execute(delete(t.records).where(r.registered_block >= fork_block))
    conn.execute(
        update(t.records)
        .where(r.tombstoned_block >= fork_block)
        .values(tombstone=None, tombstoned_at=None, tombstoned_block=None, tombstoned_log_index=None,
                tombstoned_tx=None)
    )
    conn.execute(
        update(t.records)
        .where(r.attested_block >= fork_block)
        .values(attested_block=None, attested_log_index=None, attested_tx=None)
    )
    conn.execute(
        delete(t.consents).where(
            or_(c.granted_block >= fork_block, and_(c.granted_block.is_(None), c.revoked_block >= fork_block))
        )
    )
    conn.execute(
        update(t.consents)
        .where(c.revoked_block >= fork_block)
        .values(revoked_block=None, revoked_log_index=None, revoked_tx=None, revoked_at=None)
    )
    o = t.overrides.c
    conn.execute(delete(t.overrides).where(o.recorded_block >= fork_block))
    conn.execute(
        update(t.overrides)
        .where(o.reviewed_block >= fork_block)
        .values(reviewed_by=None, accepted=None, reason=None, reviewed_at=None, reviewed_block=None,
                reviewed_log_index=None, reviewed_tx=None)
    )
    rebuild_governance(conn)


def rebuild_governance(conn: Connection) -> None:
    """Recompute members, membership changes, the catalog, mandates and override policies from the stored events."""
    for table in (t.members, t.membership_changes, t.categories, t.purposes, t.mandates, t.override_policies):
        conn.execute(delete(table))
    stored = conn.execute(
        select(t.events).where(t.events.c.name.in_(GOVERNANCE_EVENTS)).order_by(t.events.c.block, t.events.c.log_index)
    )
    for row in stored.mappings().all():
        _GOVERNANCE[row["name"]](conn, dict(row))


# ---------------------------------------------------------------------- records and consents


def _insert_records(conn: Connection, registered: list[Event], aggregates: set[str]) -> None:
    """Insert registered records; `aggregates` are those registered as anonymous aggregates (same transaction)."""
    if not registered:
        return
    rows: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    expanded: dict[str, list[str]] = {}  # derived record → its original sources, for this range
    for event in registered:
        args = event["args"]
        derived_from = list(args["derivedFrom"])
        rows.append({
            "id": args["record"], "custodian": args["custodian"], "subject": args["subject"],
            "category": args["category"], "commitment": args["commitment"], "retain_until": args["retainUntil"],
            "derived_from": derived_from, "registered_block": event["block"], "registered_tx": event["tx_hash"],
            "registered_at": event["timestamp"],
            "kind": int(RecordKind.AGGREGATE if args["record"] in aggregates
                        else RecordKind.DERIVED if derived_from else RecordKind.PLAIN),
        })
        if derived_from:
            originals = _originals(conn, derived_from, expanded)
            expanded[args["record"]] = originals
            sources.extend(
                {"record": args["record"], "position": i, "source": s, "block": event["block"]}
                for i, s in enumerate(originals)
            )
    conn.execute(insert(conn, t.records).on_conflict_do_nothing(), rows)
    if sources:
        conn.execute(insert(conn, t.record_sources).on_conflict_do_nothing(), sources)


def _originals(conn: Connection, derived_from: Iterable[str], expanded: Mapping[str, list[str]]) -> list[str]:
    """Return the original sources, as RecordRegistry keeps them: a derived source gives its own."""
    originals: list[str] = []
    for source in derived_from:
        if source in expanded:
            originals.extend(expanded[source])
            continue
        stored = conn.execute(
            select(t.record_sources.c.source)
            .where(t.record_sources.c.record == source)
            .order_by(t.record_sources.c.position)
        ).scalars().all()
        originals.extend(stored or [source])
    return originals


def _insert_consents(conn: Connection, granted: list[Event]) -> None:
    if not granted:
        return
    rows = [
        {
            "id": a["consent"], "subject": a["subject"], "grantee": a["grantee"], "category": a["category"],
            "record": a["record"], "purpose": a["purpose"], "valid_until": a["validUntil"],
            "max_uses": a["maxUses"], "identified": bool(a["identified"]), "nonce": str(a["nonce"]),
            "granted_block": e["block"], "granted_log_index": e["log_index"], "granted_tx": e["tx_hash"],
            "granted_at": e["timestamp"],
        }
        for e in granted
        for a in (e["args"],)
    ]
    conn.execute(insert(conn, t.consents).on_conflict_do_nothing(), rows)


def _tombstone(conn: Connection, tombstoned: list[Event]) -> None:
    if not tombstoned:
        return
    statement = (
        update(t.records)
        .where(t.records.c.id == bindparam("b_record"))
        .values(
            tombstone=bindparam("b_reason"), tombstoned_at=bindparam("b_at"), tombstoned_block=bindparam("b_block"),
            tombstoned_log_index=bindparam("b_log"), tombstoned_tx=bindparam("b_tx"),
        )
    )
    conn.execute(statement, [
        {"b_record": e["args"]["record"], "b_reason": e["args"]["reason"], "b_at": e["timestamp"],
         "b_block": e["block"], "b_log": e["log_index"], "b_tx": e["tx_hash"]}
        for e in tombstoned
    ])


def _attest(conn: Connection, attested: list[Event]) -> None:
    if not attested:
        return
    statement = (
        update(t.records)
        .where(t.records.c.id == bindparam("b_record"))
        .values(attested_block=bindparam("b_block"), attested_log_index=bindparam("b_log"),
                attested_tx=bindparam("b_tx"))
    )
    conn.execute(statement, [
        {"b_record": e["args"]["record"], "b_block": e["block"], "b_log": e["log_index"], "b_tx": e["tx_hash"]}
        for e in attested
    ])


def _revoke(conn: Connection, event: Event) -> None:
    # A consent may be revoked before anyone relayed it; then only its id and subject are known.
    revoked = {
        "revoked_block": event["block"], "revoked_log_index": event["log_index"], "revoked_tx": event["tx_hash"],
        "revoked_at": event["timestamp"],
    }
    args = event["args"]
    statement = insert(conn, t.consents).values(id=args["consent"], subject=args["subject"], **revoked)
    conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=revoked))


def _insert_overrides(conn: Connection, recorded: list[Event]) -> None:
    if not recorded:
        return
    rows = [
        {"record": a["record"], "seq": a["seq"], "requester": a["requester"], "justification": a["justification"],
         "review_due": a["reviewDue"], "recorded_block": e["block"], "recorded_log_index": e["log_index"],
         "recorded_tx": e["tx_hash"], "recorded_at": e["timestamp"]}
        for e in recorded
        for a in (e["args"],)
    ]
    conn.execute(insert(conn, t.overrides).on_conflict_do_nothing(), rows)


def _review_overrides(conn: Connection, reviewed: list[Event]) -> None:
    if not reviewed:
        return
    o = t.overrides.c
    statement = (
        update(t.overrides)
        .where(o.record == bindparam("b_record"), o.seq == bindparam("b_seq"))
        .values(reviewed_by=bindparam("b_auditor"), accepted=bindparam("b_accepted"), reason=bindparam("b_reason"),
                reviewed_at=bindparam("b_at"), reviewed_block=bindparam("b_block"),
                reviewed_log_index=bindparam("b_log"), reviewed_tx=bindparam("b_tx"))
    )
    conn.execute(statement, [
        {"b_record": a["record"], "b_seq": a["seq"], "b_auditor": a["auditor"], "b_accepted": bool(a["accepted"]),
         "b_reason": a["reason"], "b_at": a["reviewedAt"], "b_block": e["block"], "b_log": e["log_index"],
         "b_tx": e["tx_hash"]}
        for e in reviewed
        for a in (e["args"],)
    ])


# ---------------------------------------------------------------------- governance (replayable)


def _member_admitted(conn: Connection, event: Event) -> None:
    a = event["args"]
    values = {
        "name": a["name"], "roles": a["roles"], "status": int(MemberStatus.ACTIVE), "x25519": a["x25519Key"],
        "gateway": a["gatewayUrl"], "admitted_block": event["block"], "updated_block": event["block"],
    }
    conn.execute(
        insert(conn, t.members).values(address=a["account"], **values)
        .on_conflict_do_update(index_elements=["address"], set_=values)
    )
    _membership_change(conn, event, a["account"], int(MemberStatus.ACTIVE))


def _member_status(conn: Connection, event: Event) -> None:
    a = event["args"]
    _update_member(conn, event, status=a["status"])
    _membership_change(conn, event, a["account"], int(a["status"]))


def _membership_change(conn: Connection, event: Event, account: str, status: int) -> None:
    conn.execute(
        insert(conn, t.membership_changes).on_conflict_do_nothing(),
        [{"block": event["block"], "log_index": event["log_index"], "account": account, "status": status,
          "timestamp": event["timestamp"], "tx_hash": event["tx_hash"]}],
    )


def _member_roles(conn: Connection, event: Event) -> None:
    _update_member(conn, event, roles=event["args"]["roles"])


def _member_keys(conn: Connection, event: Event) -> None:
    _update_member(conn, event, x25519=event["args"]["x25519Key"], gateway=event["args"]["gatewayUrl"])


def _update_member(conn: Connection, event: Event, **values: Any) -> None:
    conn.execute(
        update(t.members).where(t.members.c.address == event["args"]["account"])
        .values(updated_block=event["block"], **values)
    )


def _category_added(conn: Connection, event: Event) -> None:
    a = event["args"]
    values = {
        "name": a["name"], "sensitivity": a["sensitivity"], "retention": a["retention"],
        "min_aggregate_subjects": a["minAggregateSubjects"],
        "allowed_purposes": list(purposes_in(a["allowedPurposes"])),
        "fields": list(a["fields"]), "identifying_fields": list(a["identifyingFields"]),
        "added_block": event["block"], "updated_block": event["block"],
    }
    conn.execute(
        insert(conn, t.categories).values(id=a["category"], **values)
        .on_conflict_do_update(index_elements=["id"], set_=values)
    )


def _category_purposes(conn: Connection, event: Event) -> None:
    a = event["args"]
    conn.execute(
        update(t.categories).where(t.categories.c.id == a["category"])
        .values(allowed_purposes=list(purposes_in(a["allowedPurposes"])), updated_block=event["block"])
    )


def _purpose_added(conn: Connection, event: Event) -> None:
    a = event["args"]
    values = {"name": a["name"], "sunset": a["sunset"], "added_block": event["block"], "updated_block": event["block"]}
    conn.execute(
        insert(conn, t.purposes).values(id=a["purpose"], **values)
        .on_conflict_do_update(index_elements=["id"], set_=values)
    )


def _purpose_sunset(conn: Connection, event: Event) -> None:
    a = event["args"]
    conn.execute(
        update(t.purposes).where(t.purposes.c.id == a["purpose"])
        .values(sunset=a["sunset"], updated_block=event["block"])
    )


def _mandate_granted(conn: Connection, event: Event) -> None:
    a = event["args"]
    mandate_id = int(a["mandate"])
    values = {
        "ref": "0x" + mandate_id.to_bytes(32, "big").hex(), "institution": a["institution"],
        "purpose": a["purpose"], "categories": [int(c) for c in a["categories"]], "valid_until": a["validUntil"],
        "identified": bool(a["identified"]), "legal_text_hash": a["legalTextHash"],
        "legal_text_uri": a["legalTextUri"], "granted_block": event["block"], "granted_log_index": event["log_index"],
        "granted_tx": event["tx_hash"], "granted_at": event["timestamp"],
    }
    conn.execute(
        insert(conn, t.mandates).values(id=mandate_id, **values)
        .on_conflict_do_update(index_elements=["id"], set_=values)
    )


def _mandate_revoked(conn: Connection, event: Event) -> None:
    conn.execute(
        update(t.mandates).where(t.mandates.c.id == int(event["args"]["mandate"]))
        .values(revoked_block=event["block"], revoked_log_index=event["log_index"], revoked_tx=event["tx_hash"],
                revoked_at=event["timestamp"])
    )


def _override_policy(conn: Connection, event: Event) -> None:
    a = event["args"]
    conn.execute(insert(conn, t.override_policies).on_conflict_do_nothing(), [{
        "block": event["block"], "log_index": event["log_index"], "purposes": list(purposes_in(a["purposes"])),
        "review_period": a["reviewPeriod"], "max_overrides": a["maxOverrides"], "rate_window": a["rateWindow"],
        "tx_hash": event["tx_hash"], "timestamp": event["timestamp"],
    }])


_GOVERNANCE: dict[str, Callable[[Connection, Event], None]] = {
    "MemberAdmitted": _member_admitted,
    "MemberStatusChanged": _member_status,
    "MemberRolesChanged": _member_roles,
    "MemberKeysChanged": _member_keys,
    "CategoryAdded": _category_added,
    "CategoryPurposesChanged": _category_purposes,
    "PurposeAdded": _purpose_added,
    "PurposeSunsetChanged": _purpose_sunset,
    "MandateGranted": _mandate_granted,
    "MandateRevoked": _mandate_revoked,
    "OverridePolicyChanged": _override_policy,
}
