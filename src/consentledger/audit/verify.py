"""Verify the indexed chain of responsibility against the chain and against the ledger's rules.

What is checked, as of the index's cursor block: (a) every record's hash chain, recomputed
from the indexed accesses, ends at the head the chain holds; (b) every access's consent was valid
at its position in the chain; (c) no record is past its retention, or collected only for purposes
that have all reached their emergency sunset, without a tombstone; (d) every
access was made by an active member holding the REQUESTER role; (e) every access's purpose was
allowed for the record's category and not past its sunset; (f) every anonymous aggregate's sources
were attested, before it was registered, by at least its category's K distinct subjects; (g) where the
index shares its database with a custodian's release log, every release is for an access on chain,
within the release window and count (`audit.releases`); (h) every access under a statutory mandate
was within a mandate granted before it, every emergency override was made by a holder of EMERGENCY,
within the override policy's rate, and reviewed by its due time (`audit.basis_checks`).

Refused attempts (AccessRefused, from batches) are counted but not checked: nothing of them is
on a hash chain, and the contract that recorded them also applied the rule they name.

Roles and the catalog are replayed from the indexed governance events (`idx_events`), which keep
every change; the member, category and purpose tables hold only the latest state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector, keccak
from eth_utils.abi import collapse_if_tuple
from sqlalchemy import Connection, Engine, func, select

from consentledger.audit import tables as t
from consentledger.audit.basis_checks import MandateFacts, OverrideFacts, PolicyFacts, review_findings
from consentledger.audit.checks import (
    AccessChecker,
    AggregateFacts,
    AggregateSource,
    ConsentFacts,
    Discrepancy,
    DiscrepancyKind,
    History,
    Position,
    RecordFacts,
    as_of,
    check_aggregate,
)
from consentledger.audit.events import AccessRow
from consentledger.audit.indexer import read_cursor
from consentledger.audit.lifecycle import catalog_purposes
from consentledger.audit.releases import ReleaseRules, check_releases
from consentledger.audit.source import ChainSource
from consentledger.chain.history import GENESIS
from consentledger.consent import Consent, consent_id
from consentledger.governance import purposes_in
from consentledger.lifecycle import ended_categories
from consentledger.types import RecordKind, Sensitivity

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

_STREAM_ROWS = 20_000

V = TypeVar("V")


@dataclass(frozen=True)
class VerifyReport:
    """Every discrepancy found, and how much was checked, as of `block`."""

    discrepancies: tuple[Discrepancy, ...]
    block: int | None
    records: int
    accesses: int
    consents: int
    members: int
    heads_checked: int
    releases: int = 0
    """Releases of the custodian's release log checked (0 when the index has none beside it)."""
    refusals: int = 0
    """Refused attempts indexed (AccessRefused): counted, never checked against a hash chain (they are on none)."""

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data: ok, what was checked, counts by kind, each discrepancy."""
        return {
            "ok": self.ok, "block": self.block, "summary": self.summary(), "records": self.records,
            "accesses": self.accesses, "consents": self.consents, "members": self.members,
            "heads_checked": self.heads_checked, "releases": self.releases, "refusals": self.refusals,
            "counts": self.counts(),
            "discrepancies": [
                {"kind": d.kind.value, "record": d.record, "seq": d.seq, "tx": d.tx_hash, "block": d.block,
                 "detail": d.message}
                for d in self.discrepancies
            ],
        }

    @property
    def ok(self) -> bool:
        """Return whether nothing was found."""
        return not self.discrepancies

    def counts(self) -> dict[str, int]:
        """Return how many discrepancies of each kind were found."""
        return dict(Counter(d.kind.value for d in self.discrepancies))

    def summary(self) -> str:
        """Return a one-line summary of what was checked and found."""
        checked = (
            f"{self.records} records ({self.heads_checked} heads matched against the chain), "
            f"{self.accesses} accesses, {self.consents} consents, {self.members} members"
            + (f", {self.releases} releases" if self.releases else "")
            + (f", {self.refusals} refused attempts (on no hash chain)" if self.refusals else "")
            + f" up to block {self.block}"
        )
        if self.ok:
            return f"verified {checked}: no discrepancies"
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts().items()))
        return f"checked {checked}: {len(self.discrepancies)} discrepancies ({kinds})"


def verify(engine: Engine, ledger: Ledger, *, release_rules: ReleaseRules | None = None) -> VerifyReport:
    """Check the index (as of its cursor) against the chain and the rules; return every discrepancy.

    Releases beside the index are judged by `release_rules` (default: the gateway's default window and count).
    """
    source = ChainSource(ledger)
    with engine.connect() as conn:
        cursor = read_cursor(conn)
        if cursor.block is None:
            return VerifyReport((), None, 0, 0, 0, 0, 0)
        records = _records(conn)
        consents = _consents(conn)
        sensitivities = {
            row.id: Sensitivity(row.sensitivity)
            for row in conn.execute(select(t.categories.c.id, t.categories.c.sensitivity))
        }
        members = conn.execute(select(func.count()).select_from(t.members)).scalar_one()
        refusals = conn.execute(select(func.count()).select_from(t.refusals)).scalar_one()
        ended = ended_categories(*catalog_purposes(conn), cursor.timestamp or 0)
        checker = AccessChecker(
            records=records, sensitivities=sensitivities, consents=consents, memberships=_memberships(conn),
            roles=_roles(conn), allowed_purposes=_allowed_purposes(conn), sunsets=_sunsets(conn),
            presented=_ConsentResolver(ledger, source),
            successors=_replay(conn, ("MemberSignerRotated",), "previous", lambda args: str(args["successor"])),
            mandates=_mandates(conn), override_policies=_override_policies(conn),
        )
        a = t.accesses.c
        stream = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS).execute(
            select(*(a[name] for name in AccessRow._fields)).order_by(a.block, a.log_index)
        )
        for row in stream:
            checker.check(AccessRow(*row))
        aggregates = _aggregates(conn)
        minimums = _replay(conn, ("CategoryAdded",), "category", lambda args: int(args["minAggregateSubjects"]))
        released, releases = check_releases(
            conn, release_rules or ReleaseRules(), block=cursor.block, until=cursor.timestamp or 0
        )
        overrides = _overrides(conn)
    found = list(checker.found)
    for kind, override, message in review_findings(overrides, cursor.timestamp or 0):
        found.append(Discrepancy(
            DiscrepancyKind.OVERRIDE_UNREVIEWED if kind == "unreviewed" else DiscrepancyKind.OVERRIDE_REVIEWED_LATE,
            message, record=override.record, seq=override.seq,
            tx_hash=override.reviewed_tx or override.recorded_tx,
            block=override.reviewed_block if override.reviewed_block is not None else override.recorded_block,
        ))
    for aggregate in aggregates:
        k = as_of(minimums.get(aggregate.category, ()), aggregate.registered)
        found.extend(check_aggregate(aggregate, None if k is None else k[1]))
    heads = source.heads(sorted(records), cursor.block)
    for record_id, on_chain in heads.items():
        recomputed = "0x" + checker.folded.get(record_id, GENESIS).hex()
        if recomputed != on_chain:
            found.append(Discrepancy(
                DiscrepancyKind.HEAD_MISMATCH,
                f"the indexed accesses hash to {recomputed}, the chain holds head {on_chain} at block {cursor.block}",
                record=record_id, block=cursor.block,
            ))
    now = cursor.timestamp or 0
    for record_id, facts in records.items():
        if facts.tombstoned is None and now > facts.retain_until:
            found.append(Discrepancy(
                DiscrepancyKind.RETENTION_OVERDUE,
                f"retained until {facts.retain_until}, {now - facts.retain_until} s before block {cursor.block}, "
                "and still not tombstoned",
                record=record_id, block=cursor.block,
            ))
        elif facts.tombstoned is None and facts.category in ended:
            found.append(Discrepancy(
                DiscrepancyKind.SUNSET_OVERDUE,
                f"every purpose of category {facts.category} has ended (emergency sunset) by block {cursor.block}, "
                "and the record is still not tombstoned",
                record=record_id, block=cursor.block,
            ))
    found.extend(released)
    return VerifyReport(
        discrepancies=tuple(found), block=cursor.block, records=len(records), accesses=checker.accesses,
        consents=len(consents), members=members, heads_checked=len(heads), releases=releases, refusals=refusals,
    )


class _ConsentResolver:
    """Finds the consents a derived-record access presented, from its transaction's calldata.

    AccessRecorded carries only keccak256 of their ids when there are several; the calldata of
    requestAccess (or of the requestAccessBatch item for that record) holds their terms, whose
    EIP-712 ids must hash to that reference.
    """

    def __init__(self, ledger: Ledger, source: ChainSource) -> None:
        self.ledger = ledger
        self.source = source
        self.single = _function(ledger, "requestAccess")
        self.batch = _function(ledger, "requestAccessBatch")

    def __call__(self, row: AccessRow) -> list[str] | None:
        data = self.source.transaction_input(row.tx_hash)
        if data is None:
            return None
        if self.single is not None and data[:4] == self.single[0]:
            requests = [decode(self.single[1], data[4:])]  # (record, purpose, actor, consents)
        elif self.batch is not None and data[:4] == self.batch[0]:
            (requests,) = decode(self.batch[1], data[4:])  # AccessRequest[]: (record, purpose, actor, consents)
        else:
            return None  # sent through another contract: its calldata is neither of ours
        domain = self.ledger.domain()
        for record, _, _, terms in requests:
            if "0x" + bytes(record).hex() != row.record or not terms:
                continue
            ids = [consent_id(_consent(term), domain) for term in terms]
            reference = ids[0] if len(ids) == 1 else keccak(b"".join(ids))
            if "0x" + reference.hex() == row.consent:
                return ["0x" + i.hex() for i in ids]
        return None


def _function(ledger: Ledger, name: str) -> tuple[bytes, list[str]] | None:
    """Return the selector and input types of AccessLedger's function `name`, if it has one."""
    functions: list[Any] = [f for f in ledger.access.abi if f.get("type") == "function"]
    abi = next((f for f in functions if f["name"] == name), None)
    if abi is None:
        return None
    return bytes(function_abi_to_4byte_selector(abi)), [collapse_if_tuple(dict(i)) for i in abi["inputs"]]


def _consent(term: tuple[Any, ...]) -> Consent:
    subject, grantee, category, record, purpose, valid_until, max_uses, identified, nonce = term
    return Consent(
        subject=subject, grantee=grantee, category=category, record=bytes(record), purpose=purpose,
        valid_until=valid_until, max_uses=max_uses, identified=identified, nonce=nonce,
    )


def _records(conn: Connection) -> dict[str, RecordFacts]:
    r, s = t.records.c, t.record_sources.c
    source = t.records.alias("source")
    subjects: dict[str, list[str]] = defaultdict(list)
    for record, subject in conn.execute(
        select(s.record, source.c.subject).join(source, source.c.id == s.source).order_by(s.record, s.position)
    ):
        subjects[record].append(subject)
    return {
        row.id: RecordFacts(
            subject=row.subject, category=row.category, retain_until=row.retain_until,
            tombstoned=_pos(row.tombstoned_block, row.tombstoned_log_index),
            source_subjects=tuple(subjects[row.id]) if row.derived_from else None,
            aggregate=row.kind == RecordKind.AGGREGATE,
        )
        for row in conn.execute(
            select(r.id, r.subject, r.category, r.retain_until, r.tombstoned_block, r.tombstoned_log_index,
                   r.derived_from, r.kind)
        )
    }


def _aggregates(conn: Connection) -> list[AggregateFacts]:
    """Return every indexed anonymous aggregate with its original sources' subjects and attestations."""
    e, r, s = t.events.c, t.records.c, t.record_sources.c
    source = t.records.alias("source")
    aggregate = r.kind == int(RecordKind.AGGREGATE)
    sources: dict[str, list[AggregateSource]] = defaultdict(list)
    for row in conn.execute(
        select(s.record, s.source, source.c.subject, source.c.attested_block, source.c.attested_log_index)
        .join(source, source.c.id == s.source).join(t.records, r.id == s.record)
        .where(aggregate).order_by(s.record, s.position)
    ):
        sources[row.record].append(
            AggregateSource(row.source, row.subject, _pos(row.attested_block, row.attested_log_index))
        )
    categories = {row.id: row.category for row in conn.execute(select(r.id, r.category).where(aggregate))}
    return [
        AggregateFacts(
            record=row.args["record"], category=categories.get(row.args["record"], 0),
            registered=(row.block, row.log_index), tx_hash=row.tx_hash, announced=int(row.args["subjects"]),
            sources=tuple(sources[row.args["record"]]),
        )
        for row in conn.execute(
            select(e.block, e.log_index, e.tx_hash, e.args).where(e.name == "AggregateRegistered")
            .order_by(e.block, e.log_index)
        )
    ]


def _consents(conn: Connection) -> dict[str, ConsentFacts]:
    return {
        row.id: ConsentFacts(
            subject=row.subject, grantee=row.grantee, category=row.category, record=row.record, purpose=row.purpose,
            valid_until=row.valid_until, max_uses=row.max_uses, identified=row.identified,
            granted=_pos(row.granted_block, row.granted_log_index),
            revoked=_pos(row.revoked_block, row.revoked_log_index),
        )
        for row in conn.execute(select(t.consents))
    }


def _mandates(conn: Connection) -> dict[int, MandateFacts]:
    return {
        row.id: MandateFacts(
            institution=row.institution, purpose=row.purpose, categories=frozenset(int(c) for c in row.categories),
            valid_until=row.valid_until, identified=bool(row.identified),
            granted=(row.granted_block, row.granted_log_index),
            revoked=_pos(row.revoked_block, row.revoked_log_index), legal_text_uri=row.legal_text_uri,
        )
        for row in conn.execute(select(t.mandates))
    }


def _override_policies(conn: Connection) -> History[PolicyFacts]:
    p = t.override_policies.c
    return [
        ((row.block, row.log_index), PolicyFacts(
            purposes=frozenset(int(x) for x in row.purposes), review_period=row.review_period,
            max_overrides=row.max_overrides, rate_window=row.rate_window,
        ))
        for row in conn.execute(select(t.override_policies).order_by(p.block, p.log_index))
    ]


def _overrides(conn: Connection) -> list[OverrideFacts]:
    o = t.overrides.c
    return [
        OverrideFacts(
            record=row.record, seq=row.seq, requester=row.requester, review_due=row.review_due,
            recorded_tx=row.recorded_tx, recorded_block=row.recorded_block, reviewed_at=row.reviewed_at,
            reviewed_tx=row.reviewed_tx, reviewed_block=row.reviewed_block,
        )
        for row in conn.execute(select(t.overrides).order_by(o.recorded_block, o.recorded_log_index))
    ]


def _memberships(conn: Connection) -> dict[str, History[int]]:
    m = t.membership_changes.c
    timeline: dict[str, list[tuple[Position, int]]] = defaultdict(list)
    for row in conn.execute(select(m.account, m.block, m.log_index, m.status).order_by(m.block, m.log_index)):
        timeline[row.account].append(((row.block, row.log_index), row.status))
    return dict(timeline)


def _roles(conn: Connection) -> dict[str, History[int]]:
    """Return each account's role bits, set at its admission and at each change of roles."""
    return _replay(conn, ("MemberAdmitted", "MemberRolesChanged"), "account", lambda args: int(args["roles"]))


def _allowed_purposes(conn: Connection) -> dict[int, History[frozenset[int]]]:
    """Return each category's allowed purpose ids, set when it was added and at each change of them."""
    return _replay(
        conn, ("CategoryAdded", "CategoryPurposesChanged"), "category",
        lambda args: frozenset(purposes_in(int(args["allowedPurposes"]))),
    )


def _sunsets(conn: Connection) -> dict[int, History[int]]:
    """Return each purpose's sunset (0: none), set when it was added and at each change of it."""
    return _replay(conn, ("PurposeAdded", "PurposeSunsetChanged"), "purpose", lambda args: int(args["sunset"]))


def _replay(
    conn: Connection, names: tuple[str, ...], key: str, value: Callable[[dict[str, Any]], V]
) -> dict[Any, History[V]]:
    """Return, per `args[key]` of the indexed events `names`, the `value` each set, in chain order."""
    e = t.events.c
    history: dict[Any, list[tuple[Position, V]]] = defaultdict(list)
    for row in conn.execute(
        select(e.block, e.log_index, e.args).where(e.name.in_(names)).order_by(e.block, e.log_index)
    ):
        history[row.args[key]].append(((row.block, row.log_index), value(row.args)))
    return dict(history)


def _pos(block: int | None, log_index: int | None) -> Position | None:
    return None if block is None else (block, log_index or 0)
