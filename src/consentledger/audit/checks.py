"""The rules every indexed access must have met when it was recorded, checked without I/O.

`AccessChecker` is fed the index's accesses in chain order and keeps, per record, the hash chain
it recomputes and, per consent, the uses it counts, mirroring AccessLedger.requestAccess,
Consortium.accessPolicy and ConsentRegistry._consume. Positions are (block, log index) pairs, so
"before" means earlier in the chain, whatever the timestamps say; governance (standing, roles, the
catalog) is judged as it stood just before each access.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from operator import itemgetter
from typing import TypeVar

from consentledger.audit.basis_checks import MandateFacts, OverrideRate, PolicyFacts, mandate_findings
from consentledger.audit.events import ZERO_HASH, AccessRow, hex_bytes
from consentledger.chain.history import GENESIS, link_words, requester_word
from consentledger.types import LegalBasis, MemberStatus, Role, Sensitivity

Position = tuple[int, int]
"""(block number, log index): an event's place in the chain."""

T = TypeVar("T")
History = Sequence[tuple[Position, T]]
"""A value's changes in chain order: (where it changed, what it became)."""

_REQUESTER = int(Role.REQUESTER)  # plain int: IntFlag arithmetic costs a microsecond per access
_EMERGENCY = int(Role.EMERGENCY)
_word = lru_cache(maxsize=4096)(requester_word)  # a few members make most accesses


class DiscrepancyKind(StrEnum):
    """What is wrong; each value names one rule the contracts enforce (or one index/chain mismatch)."""

    SEQ_GAP = "seq_gap"
    ENTRY_HASH_MISMATCH = "entry_hash_mismatch"
    HEAD_MISMATCH = "head_mismatch"
    UNKNOWN_RECORD = "unknown_record"
    ACCESS_AFTER_TOMBSTONE = "access_after_tombstone"
    ACCESS_AFTER_RETENTION = "access_after_retention"
    MISSING_CONSENT = "missing_consent"
    UNKNOWN_CONSENT = "unknown_consent"
    CONSENT_NOT_GRANTED = "consent_not_granted"
    CONSENT_REVOKED = "consent_revoked"
    CONSENT_EXPIRED = "consent_expired"
    CONSENT_EXHAUSTED = "consent_exhausted"
    WRONG_GRANTEE = "wrong_grantee"
    WRONG_PURPOSE = "wrong_purpose"
    WRONG_SCOPE = "wrong_scope"
    WRONG_SUBJECT = "wrong_subject"
    MISSING_SOURCE_CONSENT = "missing_source_consent"
    INACTIVE_REQUESTER = "inactive_requester"
    MISSING_REQUESTER_ROLE = "missing_requester_role"
    PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
    PURPOSE_SUNSET = "purpose_sunset"
    RETENTION_OVERDUE = "retention_overdue"
    SUNSET_OVERDUE = "sunset_overdue"
    CONSENT_ON_AGGREGATE = "consent_on_aggregate"
    IDENTIFIED_MISMATCH = "identified_mismatch"
    AGGREGATE_UNATTESTED = "aggregate_unattested"
    """An aggregate's sources attested (before it) by fewer distinct subjects than K, or than it announced."""
    MANDATE_UNKNOWN = "mandate_unknown"
    """An access under a statutory mandate names no mandate granted before it."""
    MANDATE_OUT_OF_SCOPE = "mandate_out_of_scope"
    """Another institution, purpose or category than the mandate's, or after its end, revocation or sunset."""
    MISSING_EMERGENCY_ROLE = "missing_emergency_role"
    """An emergency override by a requester that did not hold EMERGENCY at that block."""
    OVERRIDE_UNREVIEWED = "override_unreviewed"
    """An emergency override still unreviewed after its review was due (as of the index's cursor)."""
    OVERRIDE_REVIEWED_LATE = "override_reviewed_late"
    """An emergency override reviewed after its review was due."""
    OVERRIDE_RATE_EXCEEDED = "override_rate_exceeded"
    """An agency recorded more overrides within the policy's window than the policy in force allows."""
    RELEASE_WITHOUT_ACCESS = "release_without_access"
    RELEASE_OUTSIDE_WINDOW = "release_outside_window"
    RELEASE_OVER_LIMIT = "release_over_limit"


@dataclass(frozen=True)
class Discrepancy:
    """One finding: its kind, where it is (record, seq, transaction, block) and a sentence."""

    kind: DiscrepancyKind
    message: str
    record: str | None = None
    seq: int | None = None
    tx_hash: str | None = None
    block: int | None = None

    def line(self) -> str:
        """Return the finding as one line: kind, location, sentence."""
        where = [f"record={self.record}"] if self.record else []
        where += [f"seq={self.seq}"] if self.seq is not None else []
        where += [f"tx={self.tx_hash}"] if self.tx_hash else []
        where += [f"block={self.block}"] if self.block is not None else []
        return f"{self.kind.value} {' '.join(where)}: {self.message}"


@dataclass(frozen=True)
class RecordFacts:
    """What the index holds of a record; `source_subjects` is None unless the record is derived."""

    subject: str
    category: int
    retain_until: int
    tombstoned: Position | None
    source_subjects: tuple[str, ...] | None
    aggregate: bool = False
    """An anonymous aggregate: read without consent (its sources' subjects are never asked)."""


@dataclass(frozen=True)
class ConsentFacts:
    """A consent's terms and when (if ever) it was granted and revoked."""

    subject: str
    grantee: str | None
    category: int | None
    record: str | None
    purpose: int | None
    valid_until: int | None
    max_uses: int | None
    granted: Position | None
    revoked: Position | None
    identified: bool | None = None


@dataclass
class AccessChecker:
    """Checks accesses fed in chain order; collects discrepancies and each record's recomputed head."""

    records: Mapping[str, RecordFacts]
    sensitivities: Mapping[int, Sensitivity]
    consents: Mapping[str, ConsentFacts]
    memberships: Mapping[str, History[int]]
    """Each account's MemberStatus changes."""
    roles: Mapping[str, History[int]]
    """Each account's role bits, from its admission and each change of roles."""
    allowed_purposes: Mapping[int, History[frozenset[int]]]
    """Each category's allowed purpose ids, from its addition and each change of them."""
    sunsets: Mapping[int, History[int]]
    """Each purpose's sunset (unix seconds, 0: none), from its addition and each change of it."""
    presented: Callable[[AccessRow], list[str] | None]
    """Resolves the consents behind a derived record's combined consent reference (None: unknown)."""
    successors: Mapping[str, History[str]] = field(default_factory=dict)
    """The signer each account rotated to by governance (MemberSignerRotated), if it did."""
    mandates: Mapping[int, MandateFacts] = field(default_factory=dict)
    """Every statutory mandate granted, by id."""
    override_policies: History[PolicyFacts] = ()
    """The override policy, as governance set it over time."""
    found: list[Discrepancy] = field(default_factory=list)
    folded: dict[str, bytes] = field(default_factory=dict)
    accesses: int = 0
    _last: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _uses: dict[str, int] = field(default_factory=dict)
    _override_rate: OverrideRate = field(default_factory=OverrideRate)

    def check(self, row: AccessRow) -> None:
        """Check one access (the next in chain order) against every rule."""
        self.accesses += 1
        here = (row.block, row.log_index)
        self._chain(row)
        self._membership(row, here)
        self._role(row, here)
        record = self.records.get(row.record)
        if record is None:
            self._flag(DiscrepancyKind.UNKNOWN_RECORD, row, "the accessed record was never registered")
            return
        if record.tombstoned is not None and record.tombstoned < here:
            self._flag(DiscrepancyKind.ACCESS_AFTER_TOMBSTONE, row, f"the record was tombstoned at block "
                       f"{record.tombstoned[0]}, before this access")
        if row.timestamp > record.retain_until:
            self._flag(DiscrepancyKind.ACCESS_AFTER_RETENTION, row, f"the record was retained only until "
                       f"{_time(record.retain_until)}, the access was at {_time(row.timestamp)}")
        self._purpose(row, record.category, here)
        if row.basis == LegalBasis.MANDATE:
            self._mandate(row, record, here)
        elif row.basis == LegalBasis.OVERRIDE:
            self._override(row, record, here)
        else:
            self._consents(row, record)

    # ------------------------------------------------------------------ (a) the hash chain

    def _chain(self, row: AccessRow) -> None:
        last_seq, last_head = self._last.get(row.record, (0, GENESIS))
        previous = self.folded.get(row.record, GENESIS)
        words = (row.seq, _word(row.requester), hex_bytes(row.actor), row.purpose, row.basis,
                 hex_bytes(row.consent), row.identified, row.timestamp)
        folded = self.folded[row.record] = link_words(previous, *words)
        emitted = hex_bytes(row.head)
        if row.seq != last_seq + 1:
            self._flag(DiscrepancyKind.SEQ_GAP, row, f"seq {row.seq} follows seq {last_seq}: "
                       f"{'an access is missing from the index' if row.seq > last_seq else 'seq repeats'}")
        # Until a record's chain first breaks, the emitted and the recomputed heads agree, so the
        # link just folded is the one to compare: one keccak per access instead of two.
        elif (folded if last_head == previous else link_words(last_head, *words)) != emitted:
            self._flag(DiscrepancyKind.ENTRY_HASH_MISMATCH, row, "the indexed fields of this access do not hash "
                       "to the head it emitted (the row was altered)")
        self._last[row.record] = (row.seq, emitted)

    # ------------------------------------------------------------------ (d) the requester's standing

    def _membership(self, row: AccessRow, here: Position) -> None:
        change = as_of(self.memberships.get(row.requester, ()), here)
        if change is None:
            self._flag(DiscrepancyKind.INACTIVE_REQUESTER, row, f"requester {row.requester} was not a member")
            return
        (block, _), status = change
        if status != MemberStatus.ACTIVE:
            self._flag(DiscrepancyKind.INACTIVE_REQUESTER, row, f"requester {row.requester} was "
                       f"{MemberStatus(status).name.lower()} from block {block} on")

    def _role(self, row: AccessRow, here: Position) -> None:
        change = as_of(self.roles.get(row.requester, ()), here)
        if change is None:
            self._flag(DiscrepancyKind.MISSING_REQUESTER_ROLE, row, f"requester {row.requester} had never been "
                       "admitted, so held no REQUESTER role")
        elif not change[1] & _REQUESTER:
            self._flag(DiscrepancyKind.MISSING_REQUESTER_ROLE, row, f"requester {row.requester} held roles "
                       f"{_roles(change[1])} from block {change[0][0]} on, without REQUESTER")

    # ------------------------------------------------------------------ (e) the purpose, per the catalog

    def _purpose(self, row: AccessRow, category: int, here: Position) -> None:
        allowed = as_of(self.allowed_purposes.get(category, ()), here)
        if allowed is None:
            self._flag(DiscrepancyKind.PURPOSE_NOT_ALLOWED, row, f"category {category} was not in the catalog")
        elif row.purpose not in allowed[1]:
            self._flag(DiscrepancyKind.PURPOSE_NOT_ALLOWED, row, f"purpose {row.purpose} was not allowed for "
                       f"category {category}, which allowed {sorted(allowed[1])} from block {allowed[0][0]} on")
        sunset = as_of(self.sunsets.get(row.purpose, ()), here)
        if sunset is not None and sunset[1] and row.timestamp >= sunset[1]:
            self._flag(DiscrepancyKind.PURPOSE_SUNSET, row, f"purpose {row.purpose} was sunset at "
                       f"{_time(sunset[1])} (set at block {sunset[0][0]}), the access was at {_time(row.timestamp)}")

    # ------------------------------------------------------------------ (b') mandates and overrides

    def _mandate(self, row: AccessRow, record: RecordFacts, here: Position) -> None:
        mandate_id = int(row.consent, 16)
        mandate = self.mandates.get(mandate_id)
        if mandate is None or mandate.granted >= here:
            when = "" if mandate is None else f" before this access (it was granted at block {mandate.granted[0]})"
            self._flag(DiscrepancyKind.MANDATE_UNKNOWN, row, f"the access names statutory mandate {mandate_id}, "
                       f"which was never granted{when}")
            return
        holder = mandate.institution == row.requester or self._rotated_to(mandate.institution, row.requester, here)
        sunset = as_of(self.sunsets.get(row.purpose, ()), here)
        for why in mandate_findings(row, mandate, category=record.category, holder=holder,
                                    sunset=None if sunset is None else sunset[1]):
            self._flag(DiscrepancyKind.MANDATE_OUT_OF_SCOPE, row, f"the access is outside statutory mandate "
                       f"{mandate_id}: {why}")
        expected = mandate.identified and not record.aggregate
        if row.identified != expected:
            self._flag(DiscrepancyKind.IDENTIFIED_MISMATCH, row, f"the access is recorded as "
                       f"{'identified' if row.identified else 'not identified'}, but statutory mandate {mandate_id} "
                       f"{'allows' if expected else 'does not allow'} identified access"
                       + (" (the record is an anonymous aggregate)" if record.aggregate else ""))

    def _override(self, row: AccessRow, record: RecordFacts, here: Position) -> None:
        roles = as_of(self.roles.get(row.requester, ()), here)
        if roles is None or not roles[1] & _EMERGENCY:
            held = "no roles" if roles is None else f"roles {_roles(roles[1])}"
            self._flag(DiscrepancyKind.MISSING_EMERGENCY_ROLE, row, f"requester {row.requester} recorded an "
                       f"emergency override holding {held}, without EMERGENCY")
        policy = as_of(self.override_policies, here)
        terms = None if policy is None else policy[1]
        within = self._override_rate.count(row, terms)
        if within is not None and terms is not None:
            self._flag(DiscrepancyKind.OVERRIDE_RATE_EXCEEDED, row, f"requester {row.requester} recorded {within} "
                       f"emergency overrides within {terms.rate_window} s, above the policy's "
                       f"{terms.max_overrides} (set at block {policy[0][0] if policy else '-'})")
        expected = not record.aggregate
        if row.identified != expected:
            self._flag(DiscrepancyKind.IDENTIFIED_MISMATCH, row, f"the emergency override is recorded as "
                       f"{'identified' if row.identified else 'not identified'}; an override is identified "
                       "except on an anonymous aggregate")

    # ------------------------------------------------------------------ (b) consents

    def _consents(self, row: AccessRow, record: RecordFacts) -> None:
        sensitivity = self.sensitivities.get(record.category, Sensitivity.PROTECTED)
        if record.aggregate:
            if row.consent != ZERO_HASH:
                self._flag(DiscrepancyKind.CONSENT_ON_AGGREGATE, row, "an anonymous aggregate was accessed under "
                           f"consent {row.consent}; aggregates take none")
            self._identified(row, [])
            return
        if row.consent == ZERO_HASH:
            self._identified(row, [])
            if record.source_subjects is not None:
                self._flag(DiscrepancyKind.MISSING_SOURCE_CONSENT, row, "a derived record was accessed without "
                           "its sources' subjects' consents")
            elif sensitivity != Sensitivity.OPEN:
                self._flag(DiscrepancyKind.MISSING_CONSENT, row, f"category {record.category} is "
                           f"{sensitivity.name.lower()} but the access names no consent")
            return
        ids = [row.consent] if row.consent in self.consents else None
        if ids is None and record.source_subjects is not None:
            ids = self.presented(row)
        if ids is None:
            self._flag(DiscrepancyKind.UNKNOWN_CONSENT, row, f"consent {row.consent} was never granted")
            return
        for consent_id in ids:
            self._consent(row, record, sensitivity, consent_id)
        self._identified(row, ids)
        if record.source_subjects is not None:
            given = {self.consents[c].subject for c in ids if c in self.consents}
            for subject in dict.fromkeys(record.source_subjects):
                if subject not in given:
                    self._flag(DiscrepancyKind.MISSING_SOURCE_CONSENT, row, f"source subject {subject} "
                               "gave no consent for this access to a derived record")

    def _rotated_to(self, grantee: str, requester: str, here: Position) -> bool:
        """Return whether `grantee` had rotated (through any number of rotations) to `requester` before `here`."""
        account = grantee
        for _ in range(_MAX_ROTATIONS):
            change = as_of(self.successors.get(account, ()), here)
            if change is None:
                return False
            account = change[1]
            if account == requester:
                return True
        return False

    def _identified(self, row: AccessRow, consent_ids: Sequence[str]) -> None:
        """The entry is identified iff consents were presented and every one allows identified access."""
        terms = [self.consents.get(c) for c in consent_ids]
        if any(t is None or t.identified is None for t in terms):
            return  # an unknown consent is flagged on its own
        expected = bool(terms) and all(t.identified for t in terms if t is not None)
        if row.identified != expected:
            self._flag(DiscrepancyKind.IDENTIFIED_MISMATCH, row, f"the access is recorded as "
                       f"{'identified' if row.identified else 'not identified'}, but its consents "
                       f"{'allow' if expected else 'do not allow'} identified access")

    def _consent(self, row: AccessRow, record: RecordFacts, sensitivity: Sensitivity, consent_id: str) -> None:
        terms = self.consents.get(consent_id)
        if terms is None or terms.granted is None:
            self._flag(DiscrepancyKind.CONSENT_NOT_GRANTED, row, f"consent {consent_id} was never granted")
            return
        here = (row.block, row.log_index)
        if terms.granted >= here:
            self._flag(DiscrepancyKind.CONSENT_NOT_GRANTED, row, f"consent {consent_id} was granted at block "
                       f"{terms.granted[0]}, after this access")
        if terms.revoked is not None and terms.revoked < here:
            self._flag(DiscrepancyKind.CONSENT_REVOKED, row, f"consent {consent_id} was revoked at block "
                       f"{terms.revoked[0]}, before this access")
        if terms.valid_until is not None and row.timestamp > terms.valid_until:
            self._flag(DiscrepancyKind.CONSENT_EXPIRED, row, f"consent {consent_id} was valid until "
                       f"{_time(terms.valid_until)}, the access was at {_time(row.timestamp)}")
        uses = self._uses[consent_id] = self._uses.get(consent_id, 0) + 1
        allowed = 1 if sensitivity == Sensitivity.ONE_TIME else (terms.max_uses or 0)
        if uses > allowed:
            self._flag(DiscrepancyKind.CONSENT_EXHAUSTED, row, f"this is use {uses} of consent {consent_id}, "
                       f"which allows {allowed}")
        if terms.grantee != row.requester and not (
            terms.grantee is not None and self._rotated_to(terms.grantee, row.requester, here)
        ):
            self._flag(DiscrepancyKind.WRONG_GRANTEE, row, f"consent {consent_id} names grantee {terms.grantee}, "
                       f"not the requester {row.requester}")
        if terms.purpose != row.purpose:
            self._flag(DiscrepancyKind.WRONG_PURPOSE, row, f"consent {consent_id} is for purpose {terms.purpose}, "
                       f"the access for purpose {row.purpose}")
        if terms.category != record.category or terms.record not in (ZERO_HASH, row.record):
            self._flag(DiscrepancyKind.WRONG_SCOPE, row, f"consent {consent_id} covers category {terms.category} "
                       f"record {terms.record}, not this record of category {record.category}")
        elif sensitivity == Sensitivity.PROTECTED and terms.record != row.record:
            self._flag(DiscrepancyKind.WRONG_SCOPE, row, f"category {record.category} is protected but consent "
                       f"{consent_id} does not name this record")
        subjects = (record.subject,) if record.source_subjects is None else record.source_subjects
        if terms.subject not in subjects:
            self._flag(DiscrepancyKind.WRONG_SUBJECT, row, f"consent {consent_id} was given by {terms.subject}, "
                       f"who is not the record's {'source ' if record.source_subjects else ''}subject")

    def _flag(self, kind: DiscrepancyKind, row: AccessRow, message: str) -> None:
        self.found.append(Discrepancy(kind, message, row.record, row.seq, row.tx_hash, row.block))


@dataclass(frozen=True)
class AggregateSource:
    """One original source of an aggregate: its id, its subject, and where (if ever) the subject attested it."""

    record: str
    subject: str
    attested: Position | None


@dataclass(frozen=True)
class AggregateFacts:
    """An anonymous aggregate as indexed: where it was registered, the subjects it announced, its sources."""

    record: str
    category: int
    registered: Position
    tx_hash: str
    announced: int
    sources: tuple[AggregateSource, ...]


def check_aggregate(facts: AggregateFacts, k: int | None) -> list[Discrepancy]:
    """Return what is wrong with an aggregate registered when its category's K was `k` (None: no such category).

    Mirrors RecordRegistry.registerAggregate: only sources their subjects attested before the
    registration count, each subject once, and they must reach K (> 0) and the announced count.
    """
    attested = [s for s in facts.sources if s.attested is not None and s.attested < facts.registered]
    subjects = len({s.subject for s in attested})
    missing = [s.record for s in facts.sources if s not in attested]
    unattested = f"; sources not attested by their subjects before it: {', '.join(missing)}" if missing else ""
    if not k or subjects < k:
        message = (f"registered as an anonymous aggregate over {subjects} distinct attesting subjects, below the "
                   f"category's K = {k or 0}{unattested}")
    elif subjects != facts.announced:
        message = (f"announced {facts.announced} distinct subjects, but its sources were attested by "
                   f"{subjects}{unattested}")
    else:
        return []
    return [Discrepancy(DiscrepancyKind.AGGREGATE_UNATTESTED, message, record=facts.record, tx_hash=facts.tx_hash,
                        block=facts.registered[0])]


_MAX_ROTATIONS = 16
"""Consortium.MAX_ROTATIONS: how many rotations currentSigner follows."""


def as_of(history: History[T], position: Position) -> tuple[Position, T] | None:
    """Return the last change strictly before `position` (where, and the value), or None before the first."""
    if history and history[-1][0] < position:
        return history[-1]  # the usual case: an access comes after every governance change
    index = bisect.bisect_left(history, position, key=itemgetter(0)) - 1
    return history[index] if index >= 0 else None


def _roles(bits: int) -> str:
    return "|".join(role.name.lower() for role in Role if role.name and bits & role) or "none"


def _time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")
