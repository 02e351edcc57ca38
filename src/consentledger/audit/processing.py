"""An agency's record of processing activities (in the spirit of GDPR Art. 30), from the audit index alone.

As a custodian, per category it holds records of: the catalog's terms (fields, sensitivity,
retention), how many records and distinct subjects, the purposes and recipients of the accesses
to them, the legal bases those accesses used, and the records destroyed, by reason. As a
requester, per purpose and category it received: from which custodians, how many accesses,
identified or not, and under which legal bases.

Legal bases are names counted per row: `consent`, `open` (an OPEN category or an anonymous
aggregate needs none), `mandate` (a statutory mandate) and `override` (an emergency override).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import is_address, to_checksum_address
from sqlalchemy import Engine, RowMapping, select

from consentledger.audit import tables as t
from consentledger.audit.events import ZERO_HASH
from consentledger.errors import NotFoundError
from consentledger.types import LegalBasis, Role, Sensitivity, TombstoneReason

ZERO_ADDRESS = "0x" + "00" * 20

CSV_FIELDS = (
    "role", "org", "org_name", "purpose", "purpose_name", "category", "category_name", "fields",
    "identifying_fields", "sensitivity", "retention_seconds", "records", "live_records", "subjects",
    "destroyed_retention", "destroyed_erasure", "destroyed_sunset", "destroyed_other", "purposes", "recipients",
    "custodians", "accesses", "identified", "not_identified", "legal_bases",
)
"""The CSV columns: one row per custodian category (role=custodian) or received purpose+category (role=requester)."""


@dataclass(frozen=True)
class Member:
    """A member as the index names it."""

    address: str
    name: str
    roles: Role


@dataclass(frozen=True)
class CategoryTerms:
    """A category's terms in the catalog on chain."""

    id: int
    name: str
    fields: tuple[str, ...]
    identifying_fields: tuple[str, ...]
    sensitivity: Sensitivity
    retention: int
    """Seconds a record is kept after registration."""


@dataclass(frozen=True)
class HeldCategory:
    """One category a custodian holds records of: what it holds, who received it, for what, and what was destroyed."""

    category: CategoryTerms
    records: int
    live_records: int
    subjects: int
    """Distinct data subjects: of the records, and of the original sources of its derived records."""
    destroyed: Mapping[TombstoneReason, int]
    purposes: tuple[str, ...]
    """Names of the purposes its records were accessed for, sorted."""
    recipients: tuple[str, ...]
    """Names of the requesters that accessed its records, sorted."""
    accesses: int
    identified: int
    legal_bases: Mapping[str, int]


@dataclass(frozen=True)
class ReceivedActivity:
    """What a requester received for one purpose from one category: from whom, how often, identified or not."""

    purpose: int
    purpose_name: str
    category: CategoryTerms
    custodians: tuple[str, ...]
    """Names of the custodians whose records it accessed, sorted."""
    records: int
    subjects: int
    accesses: int
    identified: int
    legal_bases: Mapping[str, int]


@dataclass(frozen=True)
class ProcessingRecord:
    """An agency's record of processing activities: as custodian (per category) and as requester (per purpose)."""

    member: Member
    held: tuple[HeldCategory, ...]
    received: tuple[ReceivedActivity, ...]

    def csv_rows(self) -> list[dict[str, Any]]:
        """Return the record as rows keyed by `CSV_FIELDS` (lists joined with ';', bases as 'name=count;…')."""
        org = {"org": self.member.address, "org_name": self.member.name}
        rows: list[dict[str, Any]] = []
        for held in self.held:
            destroyed = held.destroyed
            other = sum(n for reason, n in destroyed.items() if reason not in _NAMED_REASONS)
            rows.append({
                "role": "custodian", **org, "purpose": "", "purpose_name": "", **_terms(held.category),
                "records": held.records, "live_records": held.live_records, "subjects": held.subjects,
                "destroyed_retention": destroyed.get(TombstoneReason.RETENTION, 0),
                "destroyed_erasure": destroyed.get(TombstoneReason.ERASURE, 0),
                "destroyed_sunset": destroyed.get(TombstoneReason.SUNSET, 0), "destroyed_other": other,
                "purposes": ";".join(held.purposes), "recipients": ";".join(held.recipients), "custodians": "",
                "accesses": held.accesses, "identified": held.identified,
                "not_identified": held.accesses - held.identified, "legal_bases": bases_text(held.legal_bases),
            })
        for got in self.received:
            rows.append({
                "role": "requester", **org, "purpose": got.purpose, "purpose_name": got.purpose_name,
                **_terms(got.category), "records": got.records, "live_records": "", "subjects": got.subjects,
                "destroyed_retention": "", "destroyed_erasure": "", "destroyed_sunset": "", "destroyed_other": "",
                "purposes": "", "recipients": "", "custodians": ";".join(got.custodians), "accesses": got.accesses,
                "identified": got.identified, "not_identified": got.accesses - got.identified,
                "legal_bases": bases_text(got.legal_bases),
            })
        return rows


_NAMED_REASONS = (TombstoneReason.RETENTION, TombstoneReason.ERASURE, TombstoneReason.SUNSET)


def bases_text(bases: Mapping[str, int]) -> str:
    """Return legal-basis counts as 'consent=3;open=1' (names sorted)."""
    return ";".join(f"{name}={n}" for name, n in sorted(bases.items()))


def legal_basis(basis: int, consent: str) -> str:
    """Return the legal basis an indexed access used: 'mandate', 'override', 'consent', or 'open' (none needed)."""
    if basis == LegalBasis.MANDATE:
        return "mandate"
    if basis == LegalBasis.OVERRIDE:
        return "override"
    return "open" if consent == ZERO_HASH else "consent"


def find_member(engine: Engine, org: str) -> Member:
    """Return the member `org` names (an address or a member's exact name); raise NotFoundError if none."""
    m = t.members.c
    if is_address(org):
        query = select(t.members).where(m.address == to_checksum_address(org))
    else:
        query = select(t.members).where(m.name == org)
    with engine.connect() as conn:
        found = conn.execute(query).mappings().all()
    if not found:
        raise NotFoundError(f"no member {org!r} in the audit index")
    if len(found) > 1:
        raise NotFoundError(f"{len(found)} members are named {org!r}: give an address")
    row = found[0]
    return Member(row["address"], row["name"], Role(int(row["roles"])))


def processing_records(engine: Engine) -> list[ProcessingRecord]:
    """Return the record of every member that holds or received any record, in the order members were admitted."""
    m = t.members.c
    with engine.connect() as conn:
        addresses = list(conn.execute(select(m.address).order_by(m.admitted_block, m.address)).scalars())
    records = [processing_record(engine, address) for address in addresses]
    return [record for record in records if record.held or record.received]


def processing_record(engine: Engine, org: str) -> ProcessingRecord:
    """Return the record of processing activities of the member `org` (address or name) from the index."""
    member = find_member(engine, org)
    r, a = t.records.c, t.accesses.c
    with engine.connect() as conn:
        categories = {row["id"]: _category(row) for row in conn.execute(select(t.categories)).mappings()}
        purposes = {row.id: row.name for row in conn.execute(select(t.purposes.c.id, t.purposes.c.name))}
        names = {row.address: row.name for row in conn.execute(select(t.members.c.address, t.members.c.name))}
        held = conn.execute(
            select(r.id, r.subject, r.category, r.tombstone).where(r.custodian == member.address)
        ).mappings().all()
        to_held = conn.execute(
            select(a.requester, a.purpose, a.basis, a.consent, a.identified, r.category)
            .join(t.records, r.id == a.record)
            .where(r.custodian == member.address)
        ).mappings().all()
        received = conn.execute(
            select(a.record, a.purpose, a.basis, a.consent, a.identified, r.category, r.custodian, r.subject)
            .join(t.records, r.id == a.record)
            .where(a.requester == member.address)
        ).mappings().all()
        source = t.records.alias("source")
        sources = conn.execute(
            select(t.record_sources.c.record, source.c.subject)
            .join(source, source.c.id == t.record_sources.c.source)
            .where(t.record_sources.c.record.in_(
                select(r.id).where(r.custodian == member.address)
                .union(select(a.record).where(a.requester == member.address))
            ))
        ).all()
    source_subjects: dict[str, set[str]] = defaultdict(set)
    for record, subject in sources:
        source_subjects[record].add(subject)
    return ProcessingRecord(
        member,
        _held(held, source_subjects, to_held, categories, purposes, names),
        _received(received, source_subjects, categories, purposes, names),
    )


def _held(
    held: Iterable[RowMapping], source_subjects: Mapping[str, set[str]], accesses: Iterable[RowMapping],
    categories: Mapping[int, CategoryTerms], purposes: Mapping[int, str], names: Mapping[str, str],
) -> tuple[HeldCategory, ...]:
    records: dict[int, list[RowMapping]] = defaultdict(list)
    for row in held:
        records[row["category"]].append(row)
    by_category: dict[int, list[RowMapping]] = defaultdict(list)
    for row in accesses:
        by_category[row["category"]].append(row)
    out = []
    for category in sorted(records):
        rows, seen = records[category], by_category[category]
        out.append(HeldCategory(
            category=categories[category], records=len(rows),
            live_records=sum(1 for row in rows if row["tombstone"] is None),
            subjects=len(_subjects(rows, source_subjects, "id")),
            destroyed=dict(Counter(TombstoneReason(row["tombstone"]) for row in rows if row["tombstone"] is not None)),
            purposes=tuple(sorted({purposes.get(row["purpose"], str(row["purpose"])) for row in seen})),
            recipients=tuple(sorted({names.get(row["requester"], row["requester"]) for row in seen})),
            accesses=len(seen), identified=sum(1 for row in seen if row["identified"]),
            legal_bases=dict(Counter(legal_basis(row["basis"], row["consent"]) for row in seen)),
        ))
    return tuple(out)


def _received(
    accesses: Iterable[RowMapping], source_subjects: Mapping[str, set[str]], categories: Mapping[int, CategoryTerms],
    purposes: Mapping[int, str], names: Mapping[str, str],
) -> tuple[ReceivedActivity, ...]:
    groups: dict[tuple[int, int], list[RowMapping]] = defaultdict(list)
    for row in accesses:
        groups[(row["purpose"], row["category"])].append(row)
    return tuple(
        ReceivedActivity(
            purpose=purpose, purpose_name=purposes.get(purpose, str(purpose)), category=categories[category],
            custodians=tuple(sorted({names.get(row["custodian"], row["custodian"]) for row in rows})),
            records=len({row["record"] for row in rows}),
            subjects=len(_subjects(rows, source_subjects, "record")),
            accesses=len(rows), identified=sum(1 for row in rows if row["identified"]),
            legal_bases=dict(Counter(legal_basis(row["basis"], row["consent"]) for row in rows)),
        )
        for (purpose, category), rows in sorted(groups.items())
    )


def _subjects(rows: Iterable[RowMapping], source_subjects: Mapping[str, set[str]], key: str) -> set[str]:
    """Return the data subjects of the rows' records: their own, and their original sources' (derived, aggregate)."""
    subjects = {row["subject"] for row in rows}
    subjects.update(s for row in rows for s in source_subjects.get(row[key], ()))
    return subjects - {ZERO_ADDRESS}


def _category(row: RowMapping) -> CategoryTerms:
    return CategoryTerms(
        id=int(row["id"]), name=row["name"], fields=tuple(row["fields"]),
        identifying_fields=tuple(row["identifying_fields"]), sensitivity=Sensitivity(int(row["sensitivity"])),
        retention=int(row["retention"]),
    )


def _terms(category: CategoryTerms) -> dict[str, Any]:
    return {
        "category": category.id, "category_name": category.name, "fields": ";".join(category.fields),
        "identifying_fields": ";".join(category.identifying_fields),
        "sensitivity": category.sensitivity.name.lower(), "retention_seconds": category.retention,
    }
