"""The per-access rules, checked without a chain: each broken rule is named once, for the right access."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from consentledger.audit.checks import (
    AccessChecker,
    AggregateFacts,
    AggregateSource,
    ConsentFacts,
    DiscrepancyKind,
    RecordFacts,
    check_aggregate,
)
from consentledger.audit.events import ZERO_HASH, AccessRow
from consentledger.chain.history import GENESIS, link, link_words, requester_word
from consentledger.types import LegalBasis, MemberStatus, Role, Sensitivity

ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20
TRANSPORT, POLICE = "0x" + "71" * 20, "0x" + "90" * 20
ONE_TIME, PROTECTED, OPEN = 1, 2, 3
RECORD, LAB, STATS, DERIVED, DISTRICT, AGGREGATE = ("0x" + f"{n:064x}" for n in (1, 2, 3, 4, 5, 6))
CONSENT, OTHER = "0x" + "c1" * 32, "0x" + "c2" * 32
TX = "0x" + "ee" * 32
EPIDEMIC, RESEARCH = 1, 2


def consent(**overrides: object) -> ConsentFacts:
    """Return consent terms alice gave transport for ONE_TIME records, purpose 1, granted at block 1."""
    terms: dict[str, object] = {
        "subject": ALICE, "grantee": TRANSPORT, "category": ONE_TIME, "record": ZERO_HASH, "purpose": 1,
        "valid_until": 1_000, "max_uses": 3, "granted": (1, 0), "revoked": None,
    }
    terms.update(overrides)
    return ConsentFacts(**terms)  # type: ignore[arg-type]


def checker(consents: dict[str, ConsentFacts], **governance: object) -> AccessChecker:
    """Return a checker over alice's ONE_TIME and PROTECTED records, bob's OPEN ones and a derived record.

    Transport and police are active requesters from block 1; every category allows both purposes,
    neither of which has a sunset. `governance` replaces any of these histories.
    """
    records = {
        RECORD: RecordFacts(ALICE, ONE_TIME, 10_000, None, None),
        LAB: RecordFacts(ALICE, PROTECTED, 10_000, None, None),
        STATS: RecordFacts(BOB, OPEN, 10_000, (3, 0), None),
        DISTRICT: RecordFacts(BOB, OPEN, 10_000, None, None),
        DERIVED: RecordFacts("0x" + "00" * 20, ONE_TIME, 10_000, None, (ALICE, BOB)),
        AGGREGATE: RecordFacts("0x" + "00" * 20, OPEN, 10_000, None, (ALICE, BOB), aggregate=True),
    }
    histories: dict[str, object] = {
        "memberships": {TRANSPORT: [((1, 0), MemberStatus.ACTIVE)], POLICE: [((1, 0), MemberStatus.ACTIVE)]},
        "roles": {TRANSPORT: [((1, 0), Role.REQUESTER)], POLICE: [((1, 0), Role.REQUESTER | Role.AUDITOR)]},
        "allowed_purposes": {c: [((1, 1), frozenset({EPIDEMIC, RESEARCH}))] for c in (ONE_TIME, PROTECTED, OPEN)},
        "sunsets": {EPIDEMIC: [((1, 2), 0)], RESEARCH: [((1, 2), 0)]},
        **governance,
    }
    return AccessChecker(
        records=records,
        sensitivities={ONE_TIME: Sensitivity.ONE_TIME, PROTECTED: Sensitivity.PROTECTED, OPEN: Sensitivity.OPEN},
        consents=consents,
        presented=lambda row: [CONSENT, OTHER] if row.record == DERIVED else None,
        **histories,  # type: ignore[arg-type]
    )


class Feed:
    """Feeds a checker accesses with the seq and emitted head the chain would give them."""

    def __init__(self, check: AccessChecker) -> None:
        self.check = check
        self.heads: dict[str, tuple[int, bytes]] = {}

    def __call__(self, record: str, *, block: int, consent: str = CONSENT, requester: str = TRANSPORT,
                 purpose: int = 1, timestamp: int = 500, identified: bool = False, actor: str = ZERO_HASH,
                 basis: LegalBasis = LegalBasis.CONSENT) -> None:
        seq, head = self.heads.get(record, (0, GENESIS))
        draft = AccessRow(record, seq + 1, requester, actor, purpose, basis, consent, identified, ZERO_HASH, timestamp,
                          block, TX, 0)
        emitted = link(head, draft.entry())
        self.heads[record] = (seq + 1, emitted)
        self.check.check(draft._replace(head="0x" + emitted.hex()))


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
    """An access by a non-member (inactive, and no REQUESTER) to an unregistered record is named for each."""
    check = checker({CONSENT: consent()})
    Feed(check)("0x" + "99" * 32, block=5, requester="0x" + "55" * 20)
    assert {k for k, _, _ in kinds(check)} == {
        DiscrepancyKind.INACTIVE_REQUESTER, DiscrepancyKind.MISSING_REQUESTER_ROLE, DiscrepancyKind.UNKNOWN_RECORD,
    }
    assert check.folded["0x" + "99" * 32] != GENESIS


def test_a_row_that_does_not_hash_to_its_head_is_named() -> None:
    """An access row changed after the fact is an entry hash mismatch; the chain is not flagged twice."""
    check = checker({CONSENT: consent(max_uses=5, category=PROTECTED, record=LAB)})
    feed = Feed(check)
    feed(LAB, block=5)
    row = AccessRow(LAB, 2, TRANSPORT, ZERO_HASH, 1, 0, CONSENT, False, "0x" + "12" * 32, 500, 6, TX, 0)
    check.check(row)
    feed.heads[LAB] = (2, bytes.fromhex("12" * 32))
    feed(LAB, block=7)
    assert kinds(check) == [(DiscrepancyKind.ENTRY_HASH_MISMATCH, LAB, 6)]


def test_a_requester_whose_requester_role_was_taken_away_is_named_until_it_is_given_back() -> None:
    """Roles are judged as they stood just before each access: only the access between the changes is named."""
    check = checker({}, roles={POLICE: [((1, 0), Role.REQUESTER), ((4, 0), Role.AUDITOR), ((6, 0), Role.REQUESTER)]})
    feed = Feed(check)
    for block in (3, 5, 7):
        feed(DISTRICT, block=block, consent=ZERO_HASH, requester=POLICE)
    assert kinds(check) == [(DiscrepancyKind.MISSING_REQUESTER_ROLE, DISTRICT, 5)]
    assert f"requester {POLICE} held roles auditor from block 4 on, without REQUESTER" in check.found[0].message


def test_a_purpose_the_category_no_longer_allowed_is_named() -> None:
    """A change of a category's purposes after an access does not reach back; the next access is caught."""
    allowed = {OPEN: [((1, 1), frozenset({EPIDEMIC, RESEARCH})), ((5, 3), frozenset({EPIDEMIC}))]}
    check = checker({}, allowed_purposes=allowed)
    feed = Feed(check)
    feed(DISTRICT, block=5, consent=ZERO_HASH, purpose=RESEARCH)
    feed(DISTRICT, block=6, consent=ZERO_HASH, purpose=RESEARCH)
    feed(DISTRICT, block=7, consent=ZERO_HASH, purpose=EPIDEMIC)
    assert kinds(check) == [(DiscrepancyKind.PURPOSE_NOT_ALLOWED, DISTRICT, 6)]
    assert f"purpose {RESEARCH} was not allowed for category {OPEN}, which allowed [1] from block 5" in (
        check.found[0].message
    )


def test_a_purpose_used_at_or_after_its_sunset_is_named() -> None:
    """Sunset compares the access's timestamp with the sunset in force at its position (inclusive)."""
    check = checker({}, sunsets={EPIDEMIC: [((1, 2), 0), ((4, 0), 600)], RESEARCH: [((1, 2), 0)]})
    feed = Feed(check)
    feed(DISTRICT, block=5, consent=ZERO_HASH, timestamp=599)
    feed(DISTRICT, block=6, consent=ZERO_HASH, timestamp=600)
    feed(DISTRICT, block=7, consent=ZERO_HASH, timestamp=700, purpose=RESEARCH)
    assert kinds(check) == [(DiscrepancyKind.PURPOSE_SUNSET, DISTRICT, 6)]
    assert "purpose 1 was sunset at 1970-01-01T00:10:00+00:00 (set at block 4)" in check.found[0].message


@pytest.mark.parametrize("identified", [False, True])
@pytest.mark.parametrize("basis", list(LegalBasis))
def test_the_fast_link_hashes_what_eth_abi_encodes(identified: bool, basis: LegalBasis) -> None:
    """link_words (native keccak, hand-built words) equals keccak(abi.encode(...)) through eth_abi and eth_utils."""
    previous, actor, consent_word = bytes(range(32)), bytes(range(64, 96)), bytes(range(32, 64))
    fields = (previous, 7, TRANSPORT, actor, 2, int(basis), consent_word, identified, 1_700_000_123)
    encoded = encode(["bytes32", "uint24", "address", "bytes32", "uint8", "uint8", "bytes32", "bool", "uint256"],
                     fields)
    assert link_words(previous, 7, requester_word(TRANSPORT), actor, 2, basis, consent_word, identified,
                      1_700_000_123) == keccak(encoded)


@pytest.mark.parametrize(("allowed", "recorded", "flagged"), [
    (True, True, False), (False, False, False), (True, False, True), (False, True, True),
])
def test_the_identified_flag_must_follow_the_consent(allowed: bool, recorded: bool, flagged: bool) -> None:
    """An access is identified exactly when its consent allows it; any other flag is named."""
    check = checker({CONSENT: consent(identified=allowed)})
    Feed(check)(RECORD, block=5, identified=recorded)
    assert kinds(check) == ([(DiscrepancyKind.IDENTIFIED_MISMATCH, RECORD, 5)] if flagged else [])


def test_an_open_access_without_consent_cannot_be_identified() -> None:
    """No consent, no identified access."""
    check = checker({})
    Feed(check)(DISTRICT, block=5, consent=ZERO_HASH, identified=True)
    assert kinds(check) == [(DiscrepancyKind.IDENTIFIED_MISMATCH, DISTRICT, 5)]


def test_an_aggregate_is_read_without_consent_and_never_with_one() -> None:
    """An anonymous aggregate needs no source consent; one presented is named."""
    check = checker({CONSENT: consent(category=OPEN, record=AGGREGATE)})
    feed = Feed(check)
    feed(AGGREGATE, block=5, consent=ZERO_HASH)
    feed(AGGREGATE, block=6)
    assert kinds(check) == [(DiscrepancyKind.CONSENT_ON_AGGREGATE, AGGREGATE, 6)]


def test_a_consent_follows_its_grantee_s_signer_rotation_from_then_on() -> None:
    """Transport rotated to a new key at block 4: the new key's access at block 5 is its; at block 3 it was not."""
    rotated = "0x" + "72" * 20
    check = checker(
        {CONSENT: consent(category=PROTECTED, record=LAB, max_uses=5)},
        memberships={rotated: [((1, 0), MemberStatus.ACTIVE)]}, roles={rotated: [((1, 0), Role.REQUESTER)]},
    )
    check.successors = {TRANSPORT: [((4, 0), rotated)]}
    feed = Feed(check)
    feed(LAB, block=3, requester=rotated)
    feed(LAB, block=5, requester=rotated)
    assert kinds(check) == [(DiscrepancyKind.WRONG_GRANTEE, LAB, 3)]


def _aggregate(*sources: AggregateSource, announced: int = 2) -> AggregateFacts:
    return AggregateFacts(AGGREGATE, OPEN, (10, 5), TX, announced, sources)


def test_an_aggregate_over_k_subjects_who_attested_before_it_passes() -> None:
    """Alice and Bob attested their sources at block 9, the aggregate came at block 10 with K = 2: nothing found."""
    assert check_aggregate(_aggregate(AggregateSource(RECORD, ALICE, (9, 0)), AggregateSource(STATS, BOB, (9, 1))),
                           2) == []


@pytest.mark.parametrize(("sources", "k", "found"), [
    ((AggregateSource(RECORD, ALICE, (9, 0)), AggregateSource(STATS, BOB, None)), 2, "over 1 distinct"),
    ((AggregateSource(RECORD, ALICE, (9, 0)), AggregateSource(STATS, BOB, (10, 6))), 2, "over 1 distinct"),
    ((AggregateSource(RECORD, ALICE, (9, 0)), AggregateSource(LAB, ALICE, (9, 1))), 2, "over 1 distinct"),
    ((AggregateSource(RECORD, ALICE, (9, 0)), AggregateSource(STATS, BOB, (9, 1))), 0, "K = 0"),
    ((AggregateSource(RECORD, ALICE, (9, 0)), AggregateSource(STATS, BOB, (9, 1)),
      AggregateSource(DISTRICT, "0x" + "33" * 20, (9, 2))), 2, "announced 2 distinct subjects, but"),
])
def test_an_aggregate_short_of_attesting_subjects_is_named(
    sources: tuple[AggregateSource, ...], k: int, found: str
) -> None:
    """Unattested, late or repeated subjects do not count; K = 0 allows none; the announced count must match."""
    [discrepancy] = check_aggregate(_aggregate(*sources), k)
    assert (discrepancy.kind, discrepancy.record, discrepancy.block) == (DiscrepancyKind.AGGREGATE_UNATTESTED,
                                                                         AGGREGATE, 10)
    assert found in discrepancy.message
