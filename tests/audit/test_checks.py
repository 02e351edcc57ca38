"""The per-access rules, checked without a chain: each broken rule is named once, for the right access."""

from __future__ import annotations

from dataclasses import replace

from consentledger.audit.checks import AccessChecker, ConsentFacts, DiscrepancyKind, RecordFacts
from consentledger.audit.events import ZERO_HASH, AccessRow
from consentledger.chain.history import GENESIS, link
from consentledger.types import MemberStatus, Sensitivity

ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20
TRANSPORT, POLICE = "0x" + "71" * 20, "0x" + "90" * 20
ONE_TIME, PROTECTED, OPEN = 1, 2, 3
RECORD, LAB, STATS, DERIVED = ("0x" + f"{n:064x}" for n in (1, 2, 3, 4))
CONSENT, OTHER = "0x" + "c1" * 32, "0x" + "c2" * 32
TX = "0x" + "ee" * 32


def consent(**overrides: object) -> ConsentFacts:
    """Return consent terms alice gave transport for ONE_TIME records, purpose 1, granted at block 1."""
    terms: dict[str, object] = {
        "subject": ALICE, "grantee": TRANSPORT, "category": ONE_TIME, "record": ZERO_HASH, "purpose": 1,
        "valid_until": 1_000, "max_uses": 3, "granted": (1, 0), "revoked": None,
    }
    terms.update(overrides)
    return ConsentFacts(**terms)  # type: ignore[arg-type]


def checker(consents: dict[str, ConsentFacts]) -> AccessChecker:
    """Return a checker over alice's ONE_TIME, PROTECTED and OPEN records and a derived record."""
    records = {
        RECORD: RecordFacts(ALICE, ONE_TIME, 10_000, None, None),
        LAB: RecordFacts(ALICE, PROTECTED, 10_000, None, None),
        STATS: RecordFacts(BOB, OPEN, 10_000, (3, 0), None),
        DERIVED: RecordFacts("0x" + "00" * 20, ONE_TIME, 10_000, None, (ALICE, BOB)),
    }
    return AccessChecker(
        records=records,
        sensitivities={ONE_TIME: Sensitivity.ONE_TIME, PROTECTED: Sensitivity.PROTECTED, OPEN: Sensitivity.OPEN},
        consents=consents,
        memberships={TRANSPORT: [((1, 0), MemberStatus.ACTIVE)], POLICE: [((1, 0), MemberStatus.ACTIVE)]},
        presented=lambda row: [CONSENT, OTHER] if row.record == DERIVED else None,
    )


class Feed:
    """Feeds a checker accesses with the seq and emitted head the chain would give them."""

    def __init__(self, check: AccessChecker) -> None:
        self.check = check
        self.heads: dict[str, tuple[int, bytes]] = {}

    def __call__(self, record: str, *, block: int, consent: str = CONSENT, requester: str = TRANSPORT,
                 purpose: int = 1, timestamp: int = 500) -> None:
        seq, head = self.heads.get(record, (0, GENESIS))
        draft = AccessRow(record, seq + 1, requester, purpose, consent, ZERO_HASH, timestamp, block, TX, 0)
        emitted = link(head, draft.entry())
        self.heads[record] = (seq + 1, emitted)
        self.check.check(replace(draft, head="0x" + emitted.hex()))


def kinds(check: AccessChecker) -> list[tuple[DiscrepancyKind, str, int]]:
    """Return (kind, record, block) of every finding, in order."""
    return [(d.kind, d.record or "", d.block or 0) for d in check.found]


def test_a_one_time_consent_allows_one_use_whatever_its_max_uses() -> None:
    """The second access under a ONE_TIME consent (max_uses 3) is exhausted."""
    check = checker({CONSENT: consent()})
    feed = Feed(check)
    feed(RECORD, block=5)
    feed(RECORD, block=6)
    assert kinds(check) == [(DiscrepancyKind.CONSENT_EXHAUSTED, RECORD, 6)]


def test_expired_foreign_and_misdirected_consents_are_each_named() -> None:
    """Expiry, another grantee and another purpose are three findings on one access."""
    check = checker({CONSENT: consent(valid_until=100)})
    Feed(check)(RECORD, block=5, requester=POLICE, purpose=2)
    assert {k for k, _, _ in kinds(check)} == {
        DiscrepancyKind.CONSENT_EXPIRED, DiscrepancyKind.WRONG_GRANTEE, DiscrepancyKind.WRONG_PURPOSE,
    }


def test_protected_records_need_a_record_scoped_consent_by_their_subject() -> None:
    """A category-wide consent does not cover a PROTECTED record; bob's consent does not cover alice's."""
    check = checker({
        CONSENT: consent(category=PROTECTED), OTHER: consent(category=PROTECTED, record=LAB, subject=BOB),
    })
    feed = Feed(check)
    feed(LAB, block=5)
    feed(LAB, block=6, consent=OTHER)
    assert kinds(check) == [(DiscrepancyKind.WRONG_SCOPE, LAB, 5), (DiscrepancyKind.WRONG_SUBJECT, LAB, 6)]


def test_a_consent_granted_after_the_access_does_not_cover_it() -> None:
    """Position, not time, decides: a grant later in the chain is no grant for an earlier access."""
    check = checker({CONSENT: consent(granted=(5, 1))})
    Feed(check)(RECORD, block=5)
    assert kinds(check) == [(DiscrepancyKind.CONSENT_NOT_GRANTED, RECORD, 5)]


def test_open_records_need_no_consent_but_other_categories_do() -> None:
    """An OPEN record accessed without consent is fine until tombstoned; a ONE_TIME one is not."""
    check = checker({})
    feed = Feed(check)
    feed(STATS, block=2, consent=ZERO_HASH)
    feed(STATS, block=4, consent=ZERO_HASH)
    feed(RECORD, block=5, consent=ZERO_HASH)
    assert kinds(check) == [
        (DiscrepancyKind.ACCESS_AFTER_TOMBSTONE, STATS, 4), (DiscrepancyKind.MISSING_CONSENT, RECORD, 5),
    ]


def test_a_derived_record_needs_every_source_subjects_consent() -> None:
    """Consents resolved for a derived access must come from all the sources' subjects."""
    check = checker({CONSENT: consent(record=DERIVED), OTHER: consent(record=DERIVED, subject=ALICE)})
    Feed(check)(DERIVED, block=5, consent="0x" + "dd" * 32)
    assert kinds(check) == [(DiscrepancyKind.MISSING_SOURCE_CONSENT, DERIVED, 5)]
    assert BOB in check.found[0].message


def test_an_unknown_requester_or_record_is_named() -> None:
    """Accesses by a non-member or to an unregistered record are findings."""
    check = checker({CONSENT: consent()})
    Feed(check)("0x" + "99" * 32, block=5, requester="0x" + "55" * 20)
    assert {k for k, _, _ in kinds(check)} == {DiscrepancyKind.INACTIVE_REQUESTER, DiscrepancyKind.UNKNOWN_RECORD}
    assert check.folded["0x" + "99" * 32] != GENESIS


def test_a_row_that_does_not_hash_to_its_head_is_named() -> None:
    """An access row changed after the fact is an entry hash mismatch; the chain is not flagged twice."""
    check = checker({CONSENT: consent(max_uses=5, category=PROTECTED, record=LAB)})
    feed = Feed(check)
    feed(LAB, block=5)
    row = AccessRow(LAB, 2, TRANSPORT, 1, CONSENT, "0x" + "12" * 32, 500, 6, TX, 0)
    check.check(row)
    feed.heads[LAB] = (2, bytes.fromhex("12" * 32))
    feed(LAB, block=7)
    assert kinds(check) == [(DiscrepancyKind.ENTRY_HASH_MISMATCH, LAB, 6)]
