"""Who accessed which record, when, for what and under which consent, and who was refused: queries over the index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Engine, Select, Table, and_, or_, select

from consentledger.audit import tables as t
from consentledger.audit.events import ZERO_HASH
from consentledger.audit.rules import explain
from consentledger.errors import ConfigurationError
from consentledger.types import AccessEntry, ActorId, Address, LegalBasis, RecordId, ReviewStatus


@dataclass(frozen=True)
class TraceLine:
    """One access from the index, with the names the catalog and the members give its ids."""

    seq: int
    time: datetime
    record: str
    subject: str | None
    category: int | None
    category_name: str | None
    custodian: str | None
    custodian_name: str | None
    requester: str
    requester_name: str | None
    actor: str | None
    """The requester's acting client as a pseudonym (its agency can disclose who it is); None: the org itself."""
    purpose: int
    purpose_name: str | None
    consent: str | None
    identified: bool
    tx_hash: str
    block: int
    log_index: int
    basis: LegalBasis = LegalBasis.CONSENT
    """The legal basis: under a mandate `consent` is the mandate id, under an override the justification hash."""
    mandate_uri: str | None = None
    """Under a mandate: where its legal text is published (None if the index holds no such mandate)."""
    review: ReviewStatus | None = None
    """Under an override: where its auditor's review stands (None for other bases)."""

    @property
    def mandate(self) -> int | None:
        """Return the mandate id of an access under a statutory mandate (None otherwise)."""
        return int(self.consent, 16) if self.basis is LegalBasis.MANDATE and self.consent else None

    def basis_label(self) -> str:
        """Return the basis as a trace column shows it: "consent", "mandate 3" or "override"."""
        if self.basis is LegalBasis.MANDATE:
            return f"mandate {self.mandate}"
        return self.basis.name.lower()

    def basis_words(self) -> str:
        """Return the basis as a sentence a data subject reads."""
        if self.basis is LegalBasis.MANDATE:
            return f"accessed under statutory mandate {self.mandate}" + (
                f" ({self.mandate_uri})" if self.mandate_uri else "")
        if self.basis is LegalBasis.OVERRIDE:
            review = self.review.name.lower() if self.review is not None else "unknown"
            return f"emergency override (review: {review})"
        return "accessed under consent" if self.consent else "accessed without consent (open category)"

    def entry(self) -> AccessEntry:
        """Return the hash-chain entry this line shows (its emitted head left empty), for `chain.history.fold`."""
        return AccessEntry(
            record=RecordId(bytes.fromhex(self.record[2:])), seq=self.seq, requester=Address(self.requester),
            purpose=self.purpose, consent=bytes.fromhex(self.consent[2:]) if self.consent else bytes(32), head=b"",
            timestamp=int(self.time.timestamp()), block_number=self.block, tx_hash=bytes.fromhex(self.tx_hash[2:]),
            identified=self.identified, actor=ActorId(bytes.fromhex(self.actor[2:]) if self.actor else bytes(32)),
            basis=self.basis,
        )

    def to_json(self) -> dict[str, Any]:
        """Return the line as JSON-ready data (time as ISO-8601 UTC and as unix seconds)."""
        return {
            "seq": self.seq, "time": self.time.isoformat(timespec="seconds"), "timestamp": int(self.time.timestamp()),
            "record": self.record, "subject": self.subject, "category": self.category,
            "category_name": self.category_name, "custodian": self.custodian, "custodian_name": self.custodian_name,
            "requester": self.requester, "requester_name": self.requester_name, "actor": self.actor,
            "purpose": self.purpose,
            "purpose_name": self.purpose_name, "basis": self.basis.name.lower(), "consent": self.consent,
            "mandate": self.mandate, "mandate_uri": self.mandate_uri,
            "review": self.review.name.lower() if self.review is not None else None,
            "basis_words": self.basis_words(),
            "identified": self.identified, "tx_hash": self.tx_hash,
            "block": self.block, "log_index": self.log_index,
        }


@dataclass(frozen=True)
class RefusalLine:
    """One refused attempt from the index (on no hash chain), named like a TraceLine, with the rule it broke."""

    time: datetime
    record: str
    subject: str | None
    category: int | None
    category_name: str | None
    custodian: str | None
    """None when the record asked for was never registered (or the refusal is all the index knows of it)."""
    custodian_name: str | None
    requester: str
    requester_name: str | None
    actor: str | None
    """The requester's acting client as a pseudonym; None: the org itself."""
    purpose: int
    purpose_name: str | None
    rule: str
    """The custom error's name (e.g. ConsentRegistryConsentRevoked); its selector in hex when unknown."""
    rule_args: dict[str, Any]
    tx_hash: str
    block: int
    log_index: int

    @property
    def why(self) -> str:
        """Return why the attempt was refused, in plain words."""
        return explain(self.rule)

    def to_json(self) -> dict[str, Any]:
        """Return the line as JSON-ready data (time as ISO-8601 UTC and as unix seconds)."""
        return {
            "time": self.time.isoformat(timespec="seconds"), "timestamp": int(self.time.timestamp()),
            "record": self.record, "subject": self.subject, "category": self.category,
            "category_name": self.category_name, "custodian": self.custodian, "custodian_name": self.custodian_name,
            "requester": self.requester, "requester_name": self.requester_name, "actor": self.actor,
            "purpose": self.purpose, "purpose_name": self.purpose_name, "rule": self.rule,
            "rule_args": self.rule_args, "why": self.why, "tx_hash": self.tx_hash, "block": self.block,
            "log_index": self.log_index,
        }


def trace(
    engine: Engine,
    *,
    subject: str | None = None,
    record: str | None = None,
    org: str | None = None,
    purpose: int | str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int | None = None,
    offset: int = 0,
    basis: LegalBasis | str | None = None,
) -> list[TraceLine]:
    """Return the indexed accesses matching every given filter, oldest first.

    `subject` matches records of that data subject, including derived records one of whose
    original sources is theirs. `org` matches the requester or the record's custodian. `purpose`
    is an id or a purpose name. `since` (inclusive) and `until` (exclusive) are unix times.
    `basis` is a LegalBasis or its name (consent, mandate, override).
    """
    a, m, o = t.accesses.c, t.mandates.c, t.overrides.c
    query = _filtered(_query(t.accesses), t.accesses, subject=subject, record=record, org=org, purpose=purpose,
                      since=since, until=until)
    if basis is not None:
        query = query.where(a.basis == int(parse_basis(basis)))
    query = (
        query.add_columns(a.seq, a.basis, a.consent, a.identified, m.legal_text_uri.label("mandate_uri"),
                          o.recorded_block.label("override_block"), o.accepted)
        .outerjoin(t.mandates, and_(a.basis == int(LegalBasis.MANDATE), m.ref == a.consent))
        .outerjoin(t.overrides, and_(o.record == a.record, o.seq == a.seq))
        .order_by(a.block, a.log_index).offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        TraceLine(
            seq=row["seq"], time=datetime.fromtimestamp(row["timestamp"], UTC), record=row["record"],
            subject=row["subject"], category=row["category"], category_name=row["category_name"],
            custodian=row["custodian"], custodian_name=row["custodian_name"], requester=row["requester"],
            requester_name=row["requester_name"], actor=None if row["actor"] == ZERO_HASH else row["actor"],
            purpose=row["purpose"], purpose_name=row["purpose_name"],
            consent=None if row["consent"] == ZERO_HASH else row["consent"], identified=bool(row["identified"]),
            tx_hash=row["tx_hash"],
            block=row["block"], log_index=row["log_index"], basis=LegalBasis(row["basis"]),
            mandate_uri=row["mandate_uri"], review=_review(row["override_block"], row["accepted"]),
        )
        for row in rows
    ]


def parse_basis(basis: LegalBasis | str) -> LegalBasis:
    """Return the LegalBasis `basis` names (consent, mandate, override); raise ConfigurationError for another."""
    if isinstance(basis, LegalBasis):
        return basis
    try:
        return LegalBasis[basis.strip().upper()]
    except KeyError:
        raise ConfigurationError(f"unknown legal basis {basis!r}: use consent, mandate or override") from None


def _review(override_block: int | None, accepted: bool | None) -> ReviewStatus | None:
    if override_block is None:
        return None
    if accepted is None:
        return ReviewStatus.PENDING
    return ReviewStatus.ACCEPTED if accepted else ReviewStatus.REJECTED


def refusals(
    engine: Engine,
    *,
    subject: str | None = None,
    record: str | None = None,
    org: str | None = None,
    purpose: int | str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[RefusalLine]:
    """Return the indexed refused attempts matching every given filter, oldest first.

    The filters mean what they mean for `trace`; a refusal of a record nobody registered matches
    `record` and the requester's `org`, never a subject or a custodian.
    """
    f = t.refusals.c
    query = _filtered(_query(t.refusals), t.refusals, subject=subject, record=record, org=org, purpose=purpose,
                      since=since, until=until)
    query = query.add_columns(f.rule, f.rule_args).order_by(f.block, f.log_index).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        RefusalLine(
            time=datetime.fromtimestamp(row["timestamp"], UTC), record=row["record"], subject=row["subject"],
            category=row["category"], category_name=row["category_name"], custodian=row["custodian"],
            custodian_name=row["custodian_name"], requester=row["requester"], requester_name=row["requester_name"],
            actor=None if row["actor"] == ZERO_HASH else row["actor"], purpose=row["purpose"],
            purpose_name=row["purpose_name"], rule=row["rule"], rule_args=dict(row["rule_args"] or {}),
            tx_hash=row["tx_hash"], block=row["block"], log_index=row["log_index"],
        )
        for row in rows
    ]


def _filtered(
    query: Select[Any], table: Table, *, subject: str | None, record: str | None, org: str | None,
    purpose: int | str | None, since: int | None, until: int | None,
) -> Select[Any]:
    """Return `query` over `table` (accesses or refusals) narrowed by the `trace` filters."""
    a, r = table.c, t.records.c
    if subject is not None:
        who = _address(subject, "subject")
        source = t.records.alias("source")
        derived_for_subject = (
            select(t.record_sources.c.record)
            .join(source, source.c.id == t.record_sources.c.source)
            .where(source.c.subject == who)
        )
        # One IN over both sets, not `r.subject == who OR …`: an OR across the join makes SQLite scan
        # every access; an IN on idx_accesses' leading key column finds the subject's rows by key.
        theirs = select(r.id).where(r.subject == who).union(derived_for_subject)
        query = query.where(a.record.in_(theirs))
    if record is not None:
        query = query.where(a.record == _record_id(record))
    if org is not None:
        who = _address(org, "org")
        query = query.where(or_(a.requester == who, r.custodian == who))
    if purpose is not None:
        if isinstance(purpose, str) and not purpose.isdigit():
            query = query.where(t.purposes.c.name == purpose)
        else:
            query = query.where(a.purpose == int(purpose))
    if since is not None:
        query = query.where(a.timestamp >= since)
    if until is not None:
        query = query.where(a.timestamp < until)
    return query


def _query(a: Table) -> Select[Any]:
    """Return the lines of `a` (accesses or refusals) with the names their ids have, unfiltered."""
    r = t.records
    requester, custodian = t.members.alias("requester_member"), t.members.alias("custodian_member")
    return (
        select(
            a.c.timestamp, a.c.record, a.c.requester, a.c.actor, a.c.purpose, a.c.tx_hash, a.c.block,
            a.c.log_index, r.c.subject, r.c.category, r.c.custodian,
            t.categories.c.name.label("category_name"), t.purposes.c.name.label("purpose_name"),
            requester.c.name.label("requester_name"), custodian.c.name.label("custodian_name"),
        )
        .select_from(a)
        .outerjoin(r, r.c.id == a.c.record)
        .outerjoin(t.categories, t.categories.c.id == r.c.category)
        .outerjoin(t.purposes, t.purposes.c.id == a.c.purpose)
        .outerjoin(requester, requester.c.address == a.c.requester)
        .outerjoin(custodian, custodian.c.address == r.c.custodian)
    )


def _address(text: str, what: str) -> str:
    try:
        return str(to_checksum_address(text))
    except ValueError:
        raise ConfigurationError(f"{what} {text!r} is not an address") from None


def _record_id(text: str) -> str:
    value = text.lower()
    value = value if value.startswith("0x") else "0x" + value
    try:
        if len(bytes.fromhex(value[2:])) == 32:
            return value
    except ValueError:
        pass
    raise ConfigurationError(f"record id {text!r} is not 32 bytes of hex")
