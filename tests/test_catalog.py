"""The positive list as a value: the one check of a consent's category and purpose, judged at the block's time."""

from __future__ import annotations

import pytest

from consentledger.catalog import Catalog
from consentledger.errors import PayloadValidationError
from consentledger.types import Category, Purpose, Sensitivity

BLOCK_TIME = 1_800_000_000
CATALOG = Catalog(
    categories=(Category(1, "contact-trace", Sensitivity.ONE_TIME, 86400, 0, (1, 2, 3), ("name", "district"),
                         ("name",)),),
    purposes=(Purpose(1, "epidemic-control", 0), Purpose(2, "flood-relief", BLOCK_TIME),
              Purpose(3, "census", BLOCK_TIME + 1), Purpose(4, "research", 0)),
    block=12, block_time=BLOCK_TIME,
)


def test_a_sunset_ends_a_purpose_at_its_own_second_as_the_contracts_judge_it() -> None:
    """Past at `block_time >= sunset`; a purpose ending a second later, or never, is still in use."""
    assert [p.id for p in CATALOG.purposes if CATALOG.active(p)] == [1, 3, 4]
    assert CATALOG.refusal(1, 2) == ("purpose 2 (flood-relief) ended at 2027-01-15T08:00:00+00:00: no consent for "
                                     "it; purposes category 1 (contact-trace) allows now: 1 epidemic-control, 3 census")
    assert CATALOG.refusal(1, 3) is None


def test_each_refusal_names_what_the_catalog_allows_and_raises_as_an_invalid_payload() -> None:
    """Unknown category, unknown purpose, a purpose the category does not allow: one sentence each, exit code 13."""
    assert CATALOG.refusal(9, 1) == ("category 9 is not in the catalog: no consent can be given for it; the "
                                     "catalog's categories: 1 contact-trace")
    assert CATALOG.refusal(1, 8) == ("purpose 8 is not in the catalog: no consent can be given for it; purposes "
                                     "category 1 (contact-trace) allows now: 1 epidemic-control, 3 census")
    assert CATALOG.refusal(1, 4) == ("category 1 (contact-trace) may not be used for purpose 4 (research); purposes "
                                     "category 1 (contact-trace) allows now: 1 epidemic-control, 3 census")
    with pytest.raises(PayloadValidationError, match="purpose 4 \\(research\\)") as refused:
        CATALOG.check_use(1, 4)
    assert refused.value.exit_code == 13 and refused.value.http_status == 422


def test_the_json_answer_reads_back_as_the_same_catalog() -> None:
    """`from_json(to_json())` is the catalog; sensitivity by name, no sunset as null, a sunset as unix and ISO."""
    answer = CATALOG.to_json()

    assert Catalog.from_json(answer) == CATALOG
    assert answer["categories"][0]["sensitivity"] == "one-time"
    assert answer["purposes"][0] == {"id": 1, "name": "epidemic-control", "sunset": None, "sunset_at": None,
                                     "active": True}
    assert answer["purposes"][1] == {"id": 2, "name": "flood-relief", "sunset": BLOCK_TIME,
                                     "sunset_at": "2027-01-15T08:00:00+00:00", "active": False}
