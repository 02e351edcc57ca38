"""Stateful property: an access is recorded only if the requester is active and the consent valid.

A hypothesis state machine drives the session chain through random governance (suspend /
reinstate requesters), consent grants and revocations, clock moves, tombstones and access attempts.
A plain Python model predicts, for every attempt, either success or the exact rule that refuses it,
mirroring the order in which AccessLedger checks its rules; the chain must agree every time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from consentledger.chain.history import check_record_chain
from consentledger.chain.sender import TransactionSender
from consentledger.consent import NO_RECORD, Consent, consent_id, sign_revocation
from consentledger.errors import ContractRevertError
from consentledger.types import (
    AccessEntry,
    ConsentStatus,
    MemberStatus,
    Sensitivity,
    TombstoneReason,
)

from .world import (
    CONTACT_TRACE,
    DAY,
    DISTRICT_STATS,
    EPIDEMIC,
    LAB_RESULT,
    RESEARCH,
    Net,
    Session,
)

SENSITIVITY = {
    CONTACT_TRACE: Sensitivity.ONE_TIME,
    LAB_RESULT: Sensitivity.PROTECTED,
    DISTRICT_STATS: Sensitivity.OPEN,
}
ALLOWED = {CONTACT_TRACE: {EPIDEMIC}, LAB_RESULT: {EPIDEMIC, RESEARCH},
           DISTRICT_STATS: {EPIDEMIC, RESEARCH}}
RECORD_NAMES = ("contact", "lab", "lab_bob", "stats")
# Who may ask: two REQUESTER members, a never-admitted outsider, the custodian (not a REQUESTER).
REQUESTER_NAMES = ("transport", "police", "outsider", "health")
HAS_REQUESTER_ROLE = {"transport": True, "police": True, "outsider": False, "health": False}
# Mostly the two requesters; the outsider and the custodian now and then.
LIKELY_REQUESTERS = ("transport", "police", "transport", "police", "outsider", "health")
SUBJECT_NAMES = ("alice", "bob")
PURPOSES = (EPIDEMIC, RESEARCH)
SCOPES = ("category", "record")
VALIDITY = (-1, 0, 20, 300, 3_000, DAY)
CLOCK_STEPS = (1, 20, 300, 3_000)

# Shrinking replays whole chain histories for minutes; an unshrunk failure still lists its steps.
SETTINGS = settings(
    max_examples=15,
    stateful_step_count=15,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class RecordModel:
    """What the model knows of a record."""

    id: bytes
    subject: str
    category: int
    retain_until: int
    tombstoned: bool = False
    entries: list[AccessEntry] = field(default_factory=list)


@dataclass
class ConsentModel:
    """A signed consent and what happened to it."""

    terms: Consent
    granted: bool = False
    revoked: bool = False
    uses: int = 0


class AccessMachine(RuleBasedStateMachine):
    """Random operations on the ledger, each checked against the model's prediction."""

    def __init__(self, session: Session, tally: Counter[str]) -> None:
        super().__init__()
        self.session = session
        self.tally = tally
        session.w3.testing.revert(session.snapshot)
        self.net = Net(session)
        net = self.net
        self.records: dict[str, RecordModel] = {}
        for name in RECORD_NAMES:
            rid = getattr(net.records, name)
            info = net.ledger.record(rid)
            self.records[name] = RecordModel(rid, info.subject, info.category, info.retain_until)
        # The outsider was never admitted and stays NONE; only the requesters get suspended.
        self.standing = {
            "transport": MemberStatus.ACTIVE,
            "police": MemberStatus.ACTIVE,
            "outsider": MemberStatus.NONE,
            "health": MemberStatus.ACTIVE,
        }
        self.consents: list[ConsentModel] = []

    def teardown(self) -> None:
        """Check the recorded entries chain up to each record's head, then put the chain back."""
        try:
            for record in self.records.values():
                check = check_record_chain(self.net.ledger, record.id, entries=record.entries)
                assert check.ok, check.problems
        finally:
            self.session.w3.testing.revert(self.session.snapshot)

    # ------------------------------------------------------------------ model

    def sender(self, name: str) -> TransactionSender:
        """Return the sender of a named party."""
        sender: TransactionSender = getattr(self.net, name)
        return sender

    def predict_access(
        self, requester: str, record: RecordModel, purpose: int, consent: ConsentModel | None,
        now: int,
    ) -> str | None:
        """Return the rule that must refuse the access, or None if it must succeed."""
        sensitivity = SENSITIVITY[record.category]
        if record.tombstoned:
            return "RecordRegistryRecordTombstoned"
        if now > record.retain_until:
            return "AccessLedgerRetentionExpired"
        if self.standing[requester] is not MemberStatus.ACTIVE:
            return "ConsortiumMemberNotActive"
        if not HAS_REQUESTER_ROLE[requester]:
            return "ConsortiumMissingRole"
        if purpose not in ALLOWED[record.category]:
            return "DataCatalogPurposeNotAllowed"
        if consent is None:
            return None if sensitivity is Sensitivity.OPEN else "AccessLedgerConsentCountMismatch"
        terms = consent.terms
        if consent.revoked:
            return "ConsentRegistryConsentRevoked"
        if not consent.granted:
            return "ConsentRegistryNotGranted"
        if terms.grantee != self.sender(requester).address:
            return "ConsentRegistryWrongGrantee"
        if terms.purpose != purpose:
            return "ConsentRegistryWrongPurpose"
        if terms.category != record.category or terms.record not in (NO_RECORD, record.id):
            return "ConsentRegistryWrongScope"
        if sensitivity is Sensitivity.PROTECTED and terms.record != record.id:
            return "ConsentRegistryRecordScopeRequired"
        if now > terms.valid_until:
            return "ConsentRegistryConsentExpired"
        max_uses = 1 if sensitivity is Sensitivity.ONE_TIME else terms.max_uses
        if consent.uses >= max_uses:
            return "ConsentRegistryConsentExhausted"
        if terms.subject != record.subject:
            return "ConsentRegistryWrongSubject"
        return None

    def attempt_access(
        self, requester: str, record: RecordModel, purpose: int, consent: ConsentModel | None
    ) -> None:
        """Try an access and assert the chain did exactly what the model predicted."""
        now = self.net.next_time()
        expected = self.predict_access(requester, record, purpose, consent, now)
        presented = [] if consent is None else [consent.terms]
        try:
            entry = self.net.access(self.sender(requester), record.id, purpose, presented)
        except ContractRevertError as refused:
            assert refused.rule == expected, f"chain refused with {refused}, model said {expected}"
            self.tally[refused.rule] += 1
            return
        assert expected is None, f"chain recorded an access the model refuses ({expected})"
        record.entries.append(entry)
        self.tally["recorded"] += 1
        assert (entry.seq, entry.timestamp, entry.purpose) == (len(record.entries), now, purpose)
        assert entry.requester == self.sender(requester).address
        if consent is not None:
            consent.uses += 1
            state = self.net.ledger.consent_state(entry.consent)
            assert state == (ConsentStatus.GRANTED, consent.uses)

    # ------------------------------------------------------------------ rules

    @initialize(max_uses=st.integers(1, 3), valid_for=st.sampled_from(VALIDITY[2:]))
    def seed_consents(self, max_uses: int, valid_for: int) -> None:
        """Start with two usable consents (alice's contact trace, her lab result); use the first."""
        trace = self.relay(
            "alice", "transport", "category", "contact", EPIDEMIC, max_uses, valid_for
        )
        self.relay("alice", "police", "record", "lab", RESEARCH, max_uses, valid_for)
        self.attempt_access("transport", self.records["contact"], EPIDEMIC, trace)

    @rule(requester=st.sampled_from(("transport", "police")))
    def toggle_standing(self, requester: str) -> None:
        """Suspend an active requester, or reinstate a suspended one, through governance."""
        if self.standing[requester] is MemberStatus.ACTIVE:
            self.net.suspend(self.sender(requester))
            self.standing[requester] = MemberStatus.SUSPENDED
        else:
            self.net.reinstate(self.sender(requester))
            self.standing[requester] = MemberStatus.ACTIVE
        member = self.net.ledger.member(self.sender(requester).address)
        assert member.status is self.standing[requester]

    @rule(
        subject=st.sampled_from(SUBJECT_NAMES),
        grantee=st.sampled_from(REQUESTER_NAMES),
        scope=st.sampled_from(SCOPES),
        record=st.sampled_from(RECORD_NAMES),
        purpose=st.sampled_from(PURPOSES),
        max_uses=st.integers(1, 3),
        valid_for=st.sampled_from(VALIDITY),
    )
    def grant(
        self, subject: str, grantee: str, scope: str, record: str, purpose: int, max_uses: int,
        valid_for: int,
    ) -> None:
        """Sign and relay a consent with random terms; expired ones must be refused."""
        self.relay(subject, grantee, scope, record, purpose, max_uses, valid_for)

    @rule(
        subject=st.sampled_from(SUBJECT_NAMES),
        grantee=st.sampled_from(LIKELY_REQUESTERS),
        scope=st.sampled_from(SCOPES),
        record=st.sampled_from(RECORD_NAMES),
        purpose=st.sampled_from(PURPOSES),
        max_uses=st.integers(1, 3),
        valid_for=st.sampled_from(VALIDITY),
    )
    def grant_and_use(
        self, subject: str, grantee: str, scope: str, record: str, purpose: int, max_uses: int,
        valid_for: int,
    ) -> None:
        """Relay a consent with random terms and have its grantee try it on the record at once."""
        consent = self.relay(subject, grantee, scope, record, purpose, max_uses, valid_for)
        self.attempt_access(grantee, self.records[record], purpose, consent)

    def relay(
        self, subject: str, grantee: str, scope: str, record: str, purpose: int, max_uses: int,
        valid_for: int,
    ) -> ConsentModel:
        """Sign and relay a consent; return its model (not granted if it had already expired)."""
        target = self.records[record]
        terms = self.net.consent(
            self.sender(subject), self.sender(grantee), target.category, purpose,
            record=target.id if scope == "record" else NO_RECORD, max_uses=max_uses,
            valid_for=valid_for,
        )
        consent = ConsentModel(terms)
        self.consents.append(consent)
        if valid_for < 0:
            try:
                self.net.grant(terms)
            except ContractRevertError as refused:
                assert refused.rule == "ConsentRegistryConsentExpired"
                return consent
            raise AssertionError("an expired consent was granted")
        self.net.grant(terms)
        consent.granted = True
        return consent

    @rule(pick=st.integers(0, 63), by_signature=st.booleans())
    def revoke(self, pick: int, by_signature: bool) -> None:
        """The subject revokes a consent, directly or by a relayed signature."""
        consent = self.consents[pick % len(self.consents)]
        net = self.net
        subject = net.key_of(consent.terms.subject)
        try:
            if by_signature:
                cid = consent_id(consent.terms, net.ledger.domain())
                signature = sign_revocation(cid, subject.key, net.ledger.domain())
                net.ledger.revoke_consent_by_signature(net.admin2, consent.terms, signature)
            else:
                net.ledger.revoke_consent(net.ledger.sender(subject), consent.terms)
        except ContractRevertError as refused:
            assert consent.revoked and refused.rule == "ConsentRegistryConsentRevoked"
            return
        assert not consent.revoked, "a revoked consent was revoked again"
        consent.revoked = True

    @rule(seconds=st.sampled_from(CLOCK_STEPS))
    def advance_clock(self, seconds: int) -> None:
        """Let time pass."""
        self.net.travel_to(self.net.next_time() + seconds)

    @rule(record=st.sampled_from(RECORD_NAMES))
    def tombstone(self, record: str) -> None:
        """The custodian destroys a record; a second tombstone must be refused."""
        target = self.records[record]
        try:
            self.net.ledger.tombstone(self.net.health, target.id, TombstoneReason.ERASURE)
        except ContractRevertError as refused:
            assert target.tombstoned and refused.rule == "RecordRegistryRecordTombstoned"
            return
        assert not target.tombstoned
        target.tombstoned = True

    @rule(
        requester=st.sampled_from(LIKELY_REQUESTERS),
        record=st.sampled_from(RECORD_NAMES),
        purpose=st.sampled_from(PURPOSES),
        pick=st.integers(0, 63),
    )
    def access_with_any_consent(self, requester: str, record: str, purpose: int, pick: int) -> None:
        """Try an access under a random consent (usually the wrong one)."""
        consent = self.consents[pick % len(self.consents)]
        self.attempt_access(requester, self.records[record], purpose, consent)

    @rule(pick=st.integers(0, 63), other_record=st.sampled_from(RECORD_NAMES))
    def access_as_the_consent_intends(self, pick: int, other_record: str) -> None:
        """Try an access by a consent's grantee, for its purpose, on a record it may cover."""
        consent = self.consents[pick % len(self.consents)]
        terms = consent.terms
        covered = [r for r in self.records.values() if r.id == terms.record]
        target = covered[0] if covered else self.records[other_record]
        grantee = next(n for n in REQUESTER_NAMES if self.sender(n).address == terms.grantee)
        self.attempt_access(grantee, target, terms.purpose, consent)

    @rule(
        requester=st.sampled_from(LIKELY_REQUESTERS),
        record=st.sampled_from(RECORD_NAMES),
        purpose=st.sampled_from(PURPOSES),
    )
    def access_without_consent(self, requester: str, record: str, purpose: int) -> None:
        """Try an access presenting no consent (only OPEN records allow it)."""
        self.attempt_access(requester, self.records[record], purpose, None)


def test_access_is_recorded_only_when_member_and_consent_allow_it(session: Session) -> None:
    """Every access attempt succeeds exactly when the model of the rules says it may."""
    tally: Counter[str] = Counter()
    run_state_machine_as_test(lambda: AccessMachine(session, tally), settings=SETTINGS)
    assert tally["recorded"] > 0, tally
    assert len(tally) > 3, tally  # several different rules refused something
