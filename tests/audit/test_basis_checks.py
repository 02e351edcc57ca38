"""The rules of mandates and overrides, checked without a chain: scope, rotation, rate windows and review times."""

from __future__ import annotations

from consentledger.audit.basis_checks import MandateFacts, OverrideFacts, PolicyFacts, review_findings
from consentledger.audit.checks import DiscrepancyKind as Kind
from consentledger.types import LegalBasis, MemberStatus, Role

from .test_checks import AGGREGATE, EPIDEMIC, LAB, POLICE, PROTECTED, RECORD, TRANSPORT, Feed, checker, kinds

SUCCESSOR = "0x" + "5c" * 20
EMERGENCY_ROLES = {TRANSPORT: [((1, 0), Role.REQUESTER | Role.EMERGENCY)], POLICE: [((1, 0), Role.REQUESTER)]}


def mandate_word(mandate_id: int) -> str:
    """Return the access entry's `consent` word under mandate `mandate_id`."""
    return "0x" + mandate_id.to_bytes(32, "big").hex()


def mandate(**changes: object) -> MandateFacts:
    """Return mandate terms for transport: PROTECTED records, epidemic control, until 1,000, granted at block 2."""
    terms: dict[str, object] = {
        "institution": TRANSPORT, "purpose": EPIDEMIC, "categories": frozenset({PROTECTED}), "valid_until": 1_000,
        "identified": True, "granted": (2, 0),
    }
    terms.update(changes)
    return MandateFacts(**terms)  # type: ignore[arg-type]


def policy(max_overrides: int, rate_window: int) -> PolicyFacts:
    """Return an override policy for epidemic control with a one-hour review."""
    return PolicyFacts(frozenset({EPIDEMIC}), 3_600, max_overrides, rate_window)


def test_an_access_within_its_mandate_passes_and_its_identified_flag_must_match() -> None:
    """Identified as the mandate allows: clean; recorded otherwise: identified_mismatch."""
    check = checker({}, mandates={1: mandate(), 2: mandate(identified=False)})
    feed = Feed(check)
    feed(LAB, block=5, basis=LegalBasis.MANDATE, consent=mandate_word(1), identified=True)
    feed(LAB, block=6, basis=LegalBasis.MANDATE, consent=mandate_word(2), identified=False)
    assert kinds(check) == []
    feed(LAB, block=7, basis=LegalBasis.MANDATE, consent=mandate_word(2), identified=True)
    assert kinds(check) == [(Kind.IDENTIFIED_MISMATCH, LAB, 7)]


def test_a_mandate_granted_after_the_access_does_not_cover_it() -> None:
    """A mandate granted at block 9 does not cover an access at block 5; an id never granted is unknown too."""
    check = checker({}, mandates={1: mandate(granted=(9, 0))})
    feed = Feed(check)
    feed(LAB, block=5, basis=LegalBasis.MANDATE, consent=mandate_word(1), identified=True)
    feed(LAB, block=6, basis=LegalBasis.MANDATE, consent=mandate_word(7), identified=True)
    assert kinds(check) == [(Kind.MANDATE_UNKNOWN, LAB, 5), (Kind.MANDATE_UNKNOWN, LAB, 6)]
    assert "granted at block 9" in check.found[0].message


def test_each_way_out_of_a_mandate_is_named_once() -> None:
    """Another category (ONE_TIME), after its end, after its revocation, and after the purpose's sunset."""
    check = checker({}, mandates={1: mandate(revoked=(6, 0))}, sunsets={EPIDEMIC: [((1, 2), 900)]})
    feed = Feed(check)
    feed(RECORD, block=5, basis=LegalBasis.MANDATE, consent=mandate_word(1), identified=True)
    feed(LAB, block=7, basis=LegalBasis.MANDATE, consent=mandate_word(1), identified=True, timestamp=1_001)
    assert kinds(check) == [(Kind.MANDATE_OUT_OF_SCOPE, RECORD, 5), (Kind.PURPOSE_SUNSET, LAB, 7),
                            *[(Kind.MANDATE_OUT_OF_SCOPE, LAB, 7)] * 3]
    outside = [d.message.partition("mandate 1: ")[2] for d in check.found if d.kind is not Kind.PURPOSE_SUNSET]
    assert outside == [
        f"it covers categories [{PROTECTED}], not category 1",
        "it ended at 1970-01-01T00:16:40+00:00, the access was at 1970-01-01T00:16:41+00:00",
        "governance revoked it at block 6, before the access",
        "its purpose 1 reached its sunset at 1970-01-01T00:15:00+00:00, before the access",
    ]


def test_a_mandate_follows_its_institution_s_signer_rotation() -> None:
    """Transport's successor may use transport's mandate once the rotation is on chain; police never may."""
    check = checker({}, mandates={1: mandate()}, successors={TRANSPORT: [((4, 0), SUCCESSOR)]},
                    memberships={a: [((1, 0), MemberStatus.ACTIVE)] for a in (TRANSPORT, POLICE, SUCCESSOR)},
                    roles={a: [((1, 0), Role.REQUESTER)] for a in (TRANSPORT, POLICE, SUCCESSOR)})
    feed = Feed(check)
    feed(LAB, block=3, basis=LegalBasis.MANDATE, consent=mandate_word(1), identified=True, requester=SUCCESSOR)
    feed(LAB, block=5, basis=LegalBasis.MANDATE, consent=mandate_word(1), identified=True, requester=SUCCESSOR)
    feed(LAB, block=6, basis=LegalBasis.MANDATE, consent=mandate_word(1), identified=True, requester=POLICE)
    assert kinds(check) == [(Kind.MANDATE_OUT_OF_SCOPE, LAB, 3), (Kind.MANDATE_OUT_OF_SCOPE, LAB, 6)]


def test_an_override_needs_the_emergency_role_and_is_identified_except_on_an_aggregate() -> None:
    """Police holds no EMERGENCY; an override is identified, but never on an anonymous aggregate."""
    check = checker({}, roles=EMERGENCY_ROLES)
    feed = Feed(check)
    feed(LAB, block=5, basis=LegalBasis.OVERRIDE, consent="0x" + "99" * 32, identified=True)
    feed(AGGREGATE, block=6, basis=LegalBasis.OVERRIDE, consent="0x" + "99" * 32, identified=False)
    assert kinds(check) == []
    feed(LAB, block=7, basis=LegalBasis.OVERRIDE, consent="0x" + "99" * 32, identified=True, requester=POLICE)
    feed(AGGREGATE, block=8, basis=LegalBasis.OVERRIDE, consent="0x" + "99" * 32, identified=True)
    feed(LAB, block=9, basis=LegalBasis.OVERRIDE, consent="0x" + "99" * 32, identified=False)
    assert kinds(check) == [(Kind.MISSING_EMERGENCY_ROLE, LAB, 7), (Kind.IDENTIFIED_MISMATCH, AGGREGATE, 8),
                            (Kind.IDENTIFIED_MISMATCH, LAB, 9)]


def test_the_override_rate_counts_per_agency_within_a_window_of_the_policy_in_force() -> None:
    """Two per 100 s. Before the policy (block 4) there was no limit, but those overrides count once it is in force;
    overrides exactly 100 s apart are not within one window; police's overrides count apart from transport's."""
    roles = {TRANSPORT: EMERGENCY_ROLES[TRANSPORT], POLICE: EMERGENCY_ROLES[TRANSPORT]}
    check = checker({}, roles=roles, override_policies=[((4, 0), policy(2, 100))])
    feed = Feed(check)
    word = "0x" + "99" * 32
    for block, timestamp in ((2, 10), (3, 20), (5, 50)):  # the third falls under the policy, two before it count
        feed(LAB, block=block, basis=LegalBasis.OVERRIDE, consent=word, identified=True, timestamp=timestamp)
    feed(LAB, block=6, basis=LegalBasis.OVERRIDE, consent=word, identified=True, timestamp=150)  # 50 is 100 s back
    feed(LAB, block=7, basis=LegalBasis.OVERRIDE, consent=word, identified=True, timestamp=160, requester=POLICE)
    feed(LAB, block=8, basis=LegalBasis.OVERRIDE, consent=word, identified=True, timestamp=249)  # 150, 249: two
    assert kinds(check) == [(Kind.OVERRIDE_RATE_EXCEEDED, LAB, 5)]
    feed(LAB, block=9, basis=LegalBasis.OVERRIDE, consent=word, identified=True, timestamp=249)
    assert kinds(check)[1:] == [(Kind.OVERRIDE_RATE_EXCEEDED, LAB, 9)]
    assert "3 emergency overrides within 100 s, above the policy's 2 (set at block 4)" in check.found[1].message


def test_a_review_is_due_at_its_time_and_late_only_after_it() -> None:
    """Pending at the due second: fine; a second later: unreviewed. Reviewed at the due second: on time."""
    due = 1_000
    pending = OverrideFacts(LAB, 1, TRANSPORT, due, "0x" + "01" * 32, 5)
    on_time = OverrideFacts(LAB, 2, TRANSPORT, due, "0x" + "02" * 32, 6, reviewed_at=due)
    late = OverrideFacts(LAB, 3, TRANSPORT, due, "0x" + "03" * 32, 7, reviewed_at=due + 1)
    assert [(kind, o.seq) for kind, o, _ in review_findings([pending, on_time, late], due)] == [("late", 3)]
    found = review_findings([pending, on_time, late], due + 1)
    assert [(kind, o.seq) for kind, o, _ in found] == [("unreviewed", 1), ("late", 3)]
    assert "reviewed 1 s late" in found[1][2]
