"""A grant of a consent request may only narrow it: each wider term is named, narrower ones pass."""

from __future__ import annotations

from consentledger.narrowing import GrantTerms, narrowing_refusal, wider_terms

RECORD = "0x" + "ab" * 32
ASKED = GrantTerms(valid_until=2_000_000_000, max_uses=3, identified=True, record=None)


def test_a_shorter_validity_fewer_uses_unidentified_one_record_only_narrow() -> None:
    """Every narrowing at once is no widening."""
    assert wider_terms(ASKED, GrantTerms(1_900_000_000, 1, False, RECORD)) == []
    assert wider_terms(ASKED, ASKED) == []


def test_each_wider_term_is_named() -> None:
    """Later, more uses, identified when not asked, the category when one record was asked: four reasons."""
    asked = GrantTerms(2_000_000_000, 3, False, RECORD)

    wider = wider_terms(asked, GrantTerms(2_000_000_001, 4, True, None))

    assert wider == ["valid_until 2000000001 is later than the 2000000000 asked", "max_uses 4 is more than the 3 asked",
                     "identified access was not asked for",
                     f"the request is for record {RECORD} only, not the whole category"]
    assert narrowing_refusal(wider[:1]).startswith("a grant may only narrow the request: valid_until")
