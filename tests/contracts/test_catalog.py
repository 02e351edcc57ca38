"""DataCatalog: the positive list of categories and purposes, and purpose sunsets on access."""

from __future__ import annotations

import pytest
from eth_abi import encode

from consentledger import governance as gov
from consentledger.errors import ContractRevertError
from consentledger.governance import PAYLOAD_TYPES, ProposedAction
from consentledger.types import Action, Sensitivity

from .world import (
    CONTACT_TRACE,
    DAY,
    DISTRICT_STATS,
    EPIDEMIC,
    LAB_RESULT,
    RESEARCH,
    RETENTION,
    Net,
    rule_args,
)

NEW_CATEGORY = 4


def add_open_category(purposes: list[int], category_id: int = NEW_CATEGORY) -> ProposedAction:
    """Return an AddCategory proposal for an OPEN category with one field."""
    return gov.add_category(
        category_id, "hospital-beds", Sensitivity.OPEN, 30 * DAY, ["beds"], [], purposes
    )


def add_category_with_mask(mask: int) -> ProposedAction:
    """Return an AddCategory proposal with a raw allowed-purpose mask (bypassing purpose_mask)."""
    types = list(PAYLOAD_TYPES[Action.ADD_CATEGORY])
    values = [NEW_CATEGORY, "raw", int(Sensitivity.OPEN), DAY, 0, mask, ["beds"], []]
    return ProposedAction(Action.ADD_CATEGORY, encode(types, values))


# ---------------------------------------------------------------------- the list as set up


def test_setup_categories_read_back_as_governed(net: Net) -> None:
    """The three categories read back with their tier, retention, fields and purposes."""
    contact, lab, stats = net.ledger.categories()
    assert (contact.id, contact.name, contact.sensitivity) == (
        CONTACT_TRACE, "contact-trace", Sensitivity.ONE_TIME,
    )
    assert contact.fields == ("name", "phone", "district")
    assert contact.identifying_fields == ("name", "phone")
    assert contact.allowed_purposes == (EPIDEMIC,)
    assert contact.retention == RETENTION[CONTACT_TRACE]
    assert (lab.sensitivity, lab.allowed_purposes) == (Sensitivity.PROTECTED, (EPIDEMIC, RESEARCH))
    assert (stats.sensitivity, stats.identifying_fields) == (Sensitivity.OPEN, ())


def test_setup_purposes_have_no_sunset(net: Net) -> None:
    """Both purposes exist, named, with no sunset."""
    assert [(p.id, p.name, p.sunset) for p in net.ledger.purposes()] == [
        (EPIDEMIC, "epidemic-control", 0), (RESEARCH, "research", 0),
    ]


# ---------------------------------------------------------------------- categories


def test_adding_a_category_emits_category_added(net: Net) -> None:
    """AddCategory stores the category and emits CategoryAdded with every field."""
    start = net.w3.eth.block_number + 1
    net.govern(gov.add_category(
        NEW_CATEGORY, "vaccination", Sensitivity.PROTECTED, 10 * DAY, ["name", "dose", "date"],
        ["name"], [EPIDEMIC, RESEARCH], min_aggregate_subjects=5,
    ))

    (added,) = net.events_since(net.ledger.consortium.events.CategoryAdded(), start)
    assert added == {
        "category": NEW_CATEGORY, "name": "vaccination", "sensitivity": int(Sensitivity.PROTECTED),
        "retention": 10 * DAY, "minAggregateSubjects": 5,
        "allowedPurposes": (1 << EPIDEMIC) | (1 << RESEARCH),
        "fields": ["name", "dose", "date"], "identifyingFields": ["name"],
    }
    assert net.ledger.category(NEW_CATEGORY).min_aggregate_subjects == 5
    assert net.ledger.consortium.functions.categoryIds().call() == [1, 2, 3, NEW_CATEGORY]


def test_registering_in_an_unknown_category_is_refused(net: Net) -> None:
    """A custodian may only collect what the positive list names."""
    with pytest.raises(ContractRevertError) as e:
        net.register("unlisted", net.alice, 99)
    assert e.value.rule == "DataCatalogUnknownCategory"
    assert e.value.rule_args == (99,)


def test_reading_an_unknown_category_names_the_rule(net: Net) -> None:
    """`Ledger.category` of an unknown id raises the contract's DataCatalogUnknownCategory."""
    # eth-tester reports eth_call revert data as a bytes repr; reverts.py must read it back.
    with pytest.raises(ContractRevertError) as e:
        net.ledger.category(99)
    assert e.value.rule == "DataCatalogUnknownCategory"


def test_duplicate_category_is_refused(net: Net) -> None:
    """A category id can be added once."""
    proposal = net.propose(add_open_category([EPIDEMIC], category_id=CONTACT_TRACE))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogCategoryExists"
    assert e.value.rule_args == (CONTACT_TRACE,)


@pytest.mark.parametrize(
    ("fields", "identifying", "retention", "reason"),
    [
        (["name", "phone"], ["name", "address"], DAY, "identifying field not among fields"),
        ([], [], DAY, "no fields"),
        (["name"], [], 0, "zero retention"),
    ],
    ids=["identifying-not-a-field", "no-fields", "zero-retention"],
)
def test_unusable_category_definition_is_refused(
    net: Net, fields: list[str], identifying: list[str], retention: int, reason: str
) -> None:
    """Categories need fields, a retention, and identifying fields that are among the fields."""
    action = gov.add_category(NEW_CATEGORY, "bad", Sensitivity.ONE_TIME, retention, fields,
                              identifying, [EPIDEMIC])
    proposal = net.propose(action)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogInvalidCategory"
    assert e.value.rule_args == (NEW_CATEGORY, reason)


@pytest.mark.parametrize(
    ("mask", "reason"),
    [(1 << 5, "unknown purpose"), (1 << 127, "unknown purpose"), (1, "purpose bit 0 is unused")],
    ids=["unknown-5", "unknown-127", "bit-0"],
)
def test_category_with_an_unknown_purpose_bit_is_refused(net: Net, mask: int, reason: str) -> None:
    """Every allowed-purpose bit must name an existing purpose; bit 0 names none."""
    proposal = net.propose(add_category_with_mask(mask))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogInvalidCategory"
    assert e.value.rule_args == (NEW_CATEGORY, reason)


def test_category_purposes_change_emits_and_allows_the_new_purpose(net: Net) -> None:
    """Widening a category's purposes emits CategoryPurposesChanged and lets the purpose through."""
    start = net.w3.eth.block_number + 1
    net.govern(gov.set_category_purposes(CONTACT_TRACE, [EPIDEMIC, RESEARCH]))

    (changed,) = net.events_since(net.ledger.consortium.events.CategoryPurposesChanged(), start)
    both = (1 << EPIDEMIC) | (1 << RESEARCH)
    assert changed == {"category": CONTACT_TRACE, "allowedPurposes": both}
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, RESEARCH)
    net.grant(consent)
    assert net.access(net.transport, net.records.contact, RESEARCH, [consent]).purpose == RESEARCH


def test_narrowing_a_category_blocks_the_removed_purpose(net: Net) -> None:
    """After RESEARCH is removed from the stats category, research accesses revert."""
    net.govern(gov.set_category_purposes(DISTRICT_STATS, [EPIDEMIC]))

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.stats, RESEARCH)
    assert e.value.rule == "DataCatalogPurposeNotAllowed"
    assert e.value.rule_args == (DISTRICT_STATS, RESEARCH)


def test_category_purposes_of_unknown_category_are_refused(net: Net) -> None:
    """SetCategoryPurposes needs an existing category."""
    proposal = net.propose(gov.set_category_purposes(99, [EPIDEMIC]))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogUnknownCategory"


def test_category_purposes_with_unknown_purpose_are_refused(net: Net) -> None:
    """SetCategoryPurposes checks every bit like AddCategory does."""
    proposal = net.propose(gov.set_category_purposes(CONTACT_TRACE, [EPIDEMIC, 9]))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogInvalidCategory"
    assert e.value.rule_args == (CONTACT_TRACE, "unknown purpose")


# ---------------------------------------------------------------------- purposes


def test_adding_a_purpose_emits_purpose_added(net: Net) -> None:
    """AddPurpose stores the purpose and emits PurposeAdded."""
    start = net.w3.eth.block_number + 1
    net.govern(gov.add_purpose(127, "statistics", 5))

    (added,) = net.events_since(net.ledger.consortium.events.PurposeAdded(), start)
    assert added == {"purpose": 127, "name": "statistics", "sunset": 5}
    assert net.ledger.purpose(127).name == "statistics"


@pytest.mark.parametrize("purpose", [0, 128, 255])
def test_purpose_id_outside_1_to_127_is_refused(net: Net, purpose: int) -> None:
    """Purpose ids are bits 1..127 of a category's mask."""
    proposal = net.propose(gov.add_purpose(purpose, "out-of-range"))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogInvalidPurposeId"
    assert e.value.rule_args == (purpose,)


def test_duplicate_purpose_is_refused(net: Net) -> None:
    """A purpose id can be added once."""
    proposal = net.propose(gov.add_purpose(EPIDEMIC, "again"))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogPurposeExists"
    assert e.value.rule_args == (EPIDEMIC,)


def test_sunset_of_unknown_purpose_is_refused(net: Net) -> None:
    """SetPurposeSunset needs an existing purpose."""
    proposal = net.propose(gov.set_purpose_sunset(9, net.now() + DAY))

    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogUnknownPurpose"
    assert e.value.rule_args == (9,)


def test_purpose_not_allowed_for_category_is_refused(net: Net) -> None:
    """Contact traces are for epidemic control only: a research access reverts."""
    consent = net.consent(net.alice, net.transport, CONTACT_TRACE, RESEARCH)
    net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.contact, RESEARCH, [consent])
    assert e.value.rule == "DataCatalogPurposeNotAllowed"
    assert e.value.rule_args == (CONTACT_TRACE, RESEARCH)


def test_unknown_purpose_is_not_allowed_for_any_category(net: Net) -> None:
    """A purpose id that was never added is not in any mask."""
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.stats, 77)
    assert e.value.rule == "DataCatalogPurposeNotAllowed"


# ---------------------------------------------------------------------- sunset


def test_sunset_change_emits_purpose_sunset_changed(net: Net) -> None:
    """SetPurposeSunset stores the time and emits PurposeSunsetChanged."""
    start = net.w3.eth.block_number + 1
    sunset = net.now() + 30 * DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, sunset))

    (changed,) = net.events_since(net.ledger.consortium.events.PurposeSunsetChanged(), start)
    assert changed == {"purpose": EPIDEMIC, "sunset": sunset}
    assert net.ledger.purpose(EPIDEMIC).sunset == sunset


def test_access_works_until_the_sunset_and_stops_at_it(net: Net) -> None:
    """The last second before the sunset still works; from the sunset on the purpose is over."""
    sunset = net.now() + 10 * DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, sunset))

    net.travel_to(sunset - 1)
    net.access(net.transport, net.records.stats, EPIDEMIC)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.stats, EPIDEMIC)
    assert e.value.rule == "DataCatalogPurposeSunset"
    assert e.value.rule_args == (EPIDEMIC, sunset)


def test_consent_granted_before_the_sunset_stops_working_after_it(net: Net) -> None:
    """No consent for a purpose works after its sunset, even with uses and validity left."""
    lab = net.records.lab
    consent = net.consent(net.alice, net.transport, LAB_RESULT, EPIDEMIC, record=lab,
                          max_uses=3, valid_for=30 * DAY)
    net.grant(consent)
    net.access(net.transport, lab, EPIDEMIC, [consent])
    sunset = net.now() + DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, sunset))

    net.travel_to(sunset)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, lab, EPIDEMIC, [consent])
    assert e.value.rule == "DataCatalogPurposeSunset"


def test_sunset_of_one_purpose_leaves_the_others_of_a_category_alone(net: Net) -> None:
    """Stats allow EPIDEMIC and RESEARCH; ending RESEARCH does not end EPIDEMIC uses."""
    sunset = net.now() + DAY
    net.govern(gov.set_purpose_sunset(RESEARCH, sunset))

    net.travel_to(sunset + DAY)
    net.access(net.transport, net.records.stats, EPIDEMIC)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.stats, RESEARCH)
    assert e.value.rule == "DataCatalogPurposeSunset"


def test_clearing_a_sunset_restores_the_purpose(net: Net) -> None:
    """Setting the sunset back to 0 (none) lets accesses for the purpose through again."""
    sunset = net.now() + DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, sunset))
    net.travel_to(sunset + 1)
    with pytest.raises(ContractRevertError):
        net.access(net.transport, net.records.stats, EPIDEMIC)

    net.govern(gov.set_purpose_sunset(EPIDEMIC, 0))
    net.access(net.transport, net.records.stats, EPIDEMIC)


def test_postponed_sunset_reopens_the_purpose_until_the_new_time(net: Net) -> None:
    """Moving a sunset later applies the new time, not the old one."""
    first = net.now() + DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, first))
    later = first + 5 * DAY
    net.govern(gov.set_purpose_sunset(EPIDEMIC, later))

    net.travel_to(first + DAY)
    net.access(net.transport, net.records.stats, EPIDEMIC)
    net.travel_to(later)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.stats, EPIDEMIC)
    assert rule_args(e.value) == (EPIDEMIC, later)


def test_widening_a_category_to_a_sunset_purpose_enforces_that_sunset(net: Net) -> None:
    """A category that gains an already-ended purpose cannot be used for it."""
    net.govern(gov.add_purpose(3, "emergency-response", net.now() + DAY))
    net.govern(add_open_category([EPIDEMIC]))
    beds = net.register("beds", net.bob, NEW_CATEGORY)
    net.travel_to(net.now() + 2 * DAY)

    net.govern(gov.set_category_purposes(NEW_CATEGORY, [EPIDEMIC, 3]))
    net.access(net.transport, beds, EPIDEMIC)
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, beds, 3)
    assert e.value.rule == "DataCatalogPurposeSunset"


def test_category_added_with_an_ended_purpose_cannot_use_it(net: Net) -> None:
    """A purpose created with a past sunset is over for categories added afterwards too."""
    net.govern(gov.add_purpose(3, "emergency-response", net.now() - 1))
    net.govern(add_open_category([3]))
    beds = net.register("beds", net.bob, NEW_CATEGORY)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, beds, 3)
    assert e.value.rule == "DataCatalogPurposeSunset"


def test_unknown_sensitivity_is_a_named_catalog_error(net: Net) -> None:
    """A category payload with sensitivity 3 is refused with DataCatalogInvalidCategory, not a panic."""
    payload = encode(
        list(PAYLOAD_TYPES[Action.ADD_CATEGORY]), [40, "bad-tier", 3, 86400, 0, 1 << 1, ["a"], []]
    )
    proposal = net.propose(ProposedAction(Action.ADD_CATEGORY, payload))
    with pytest.raises(ContractRevertError) as e:
        net.ledger.approve(net.admin1, proposal)
    assert e.value.rule == "DataCatalogInvalidCategory"
    assert e.value.rule_args[1] == "unknown sensitivity"
