"""RecordRegistry: registering and tombstoning off-chain records."""

from __future__ import annotations

import pytest

from consentledger.errors import ContractRevertError
from consentledger.types import MemberStatus, TombstoneReason

from .world import (
    CONTACT_TRACE,
    DISTRICT_STATS,
    EPIDEMIC,
    LAB_RESULT,
    RETENTION,
    Net,
    commitment_of,
    hex32,
    record_id,
    rule_args,
)

ZERO = b"\0" * 32


def test_registration_stores_the_record_and_emits_record_registered(net: Net) -> None:
    """A custodian's record is stored with retainUntil = now + the category's retention."""
    start = net.w3.eth.block_number + 1
    rid = net.register("new-trace", net.carol, CONTACT_TRACE)

    info = net.ledger.record(rid)
    assert info.custodian == net.health.address
    assert info.subject == net.carol.address
    assert info.category == CONTACT_TRACE
    assert info.created_at == net.now()
    assert info.retain_until == info.created_at + RETENTION[CONTACT_TRACE]
    assert info.tombstone is TombstoneReason.NONE
    assert info.commitment == commitment_of("new-trace")
    assert (info.derived_from, info.accesses) == ((), 0)
    (registered,) = net.events_since(net.ledger.access.events.RecordRegistered(), start)
    assert registered == {
        "record": rid, "custodian": net.health.address, "subject": net.carol.address,
        "category": CONTACT_TRACE, "commitment": commitment_of("new-trace"),
        "retainUntil": info.retain_until, "derivedFrom": [],
    }


def test_reading_an_unknown_record_names_the_rule(net: Net) -> None:
    """`Ledger.record` of an unknown id raises the contract's RecordRegistryUnknownRecord."""
    # eth-tester reports eth_call revert data as a bytes repr; reverts.py must read it back.
    with pytest.raises(ContractRevertError) as e:
        net.ledger.record(record_id("never-registered"))
    assert e.value.rule == "RecordRegistryUnknownRecord"


def test_access_to_an_unknown_record_is_refused(net: Net) -> None:
    """An access names a registered record or reverts."""
    missing = record_id("never-registered")
    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, missing, EPIDEMIC)
    assert e.value.rule == "RecordRegistryUnknownRecord"
    assert e.value.rule_args == (hex32(missing),)


def test_duplicate_record_id_is_refused(net: Net) -> None:
    """A record id is registered once, whoever the subject."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.register_record(net.health, net.records.contact, net.bob.address, CONTACT_TRACE,
                                   commitment_of("other"))
    assert e.value.rule == "RecordRegistryRecordExists"
    assert e.value.rule_args == (hex32(net.records.contact),)


@pytest.mark.parametrize(
    ("rid", "subject", "commitment", "reason"),
    [
        (ZERO, "alice", commitment_of("x"), "zero id"),
        (record_id("x"), "alice", ZERO, "zero commitment"),
        (record_id("x"), None, commitment_of("x"), "zero subject"),
    ],
    ids=["zero-id", "zero-commitment", "zero-subject"],
)
def test_record_with_a_zero_field_is_refused(
    net: Net, rid: bytes, subject: str | None, commitment: bytes, reason: str
) -> None:
    """Id and commitment are never zero; the subject only for derived records."""
    subject_address = net.alice.address if subject else ""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.register_record(net.health, rid, subject_address, CONTACT_TRACE, commitment)
    assert e.value.rule == "RecordRegistryInvalidRecord"
    assert e.value.rule_args == (hex32(rid), reason)


def test_suspended_custodian_cannot_register(net: Net) -> None:
    """Only an ACTIVE custodian collects."""
    net.suspend(net.health)

    with pytest.raises(ContractRevertError) as e:
        net.register("late", net.alice, CONTACT_TRACE)
    assert e.value.rule == "ConsortiumMemberNotActive"
    assert rule_args(e.value) == (net.health.address, int(MemberStatus.SUSPENDED))


# ---------------------------------------------------------------------- derived records


def test_derived_record_lists_its_sources_and_may_have_no_subject(net: Net) -> None:
    """A derived record keeps its sources in order; its own subject may be zero."""
    sources = [net.records.lab, net.records.lab_bob]
    rid = net.register("cohort", None, LAB_RESULT, derived_from=sources)

    info = net.ledger.record(rid)
    assert info.derived_from == tuple(sources)
    assert int(info.subject, 16) == 0


def test_derived_source_is_replaced_by_its_original_sources(net: Net) -> None:
    """Deriving from a derived record lists that record's own sources, not the record."""
    first = net.register("first", net.carol, LAB_RESULT, derived_from=[net.records.lab])

    second = net.register("second", None, LAB_RESULT, derived_from=[first, net.records.lab_bob])
    assert net.ledger.record(second).derived_from == (net.records.lab, net.records.lab_bob)


def test_original_sources_inherited_count_towards_the_limit(net: Net) -> None:
    """A derived source brings all its originals, and those count against MAX_SOURCES."""
    wide = net.register("wide", None, LAB_RESULT, derived_from=[net.records.lab] * 32)

    with pytest.raises(ContractRevertError) as e:
        net.register("wider", None, LAB_RESULT, derived_from=[wide, net.records.lab_bob])
    assert e.value.rule == "RecordRegistryTooManySources"
    assert e.value.rule_args == (33, 32)


def test_derived_record_from_an_unknown_source_is_refused(net: Net) -> None:
    """Every source must exist."""
    missing = record_id("never-registered")
    with pytest.raises(ContractRevertError) as e:
        net.register("cohort", None, LAB_RESULT, derived_from=[net.records.lab, missing])
    assert e.value.rule == "RecordRegistryUnknownRecord"
    assert e.value.rule_args == (hex32(missing),)


def test_derived_record_from_a_tombstoned_source_is_refused(net: Net) -> None:
    """Destroyed data cannot feed a new derived record."""
    net.ledger.tombstone(net.health, net.records.lab_bob, TombstoneReason.ERASURE)

    sources = [net.records.lab, net.records.lab_bob]
    with pytest.raises(ContractRevertError) as e:
        net.register("cohort", None, LAB_RESULT, derived_from=sources)
    assert e.value.rule == "RecordRegistryRecordTombstoned"
    assert e.value.rule_args == (hex32(net.records.lab_bob), int(TombstoneReason.ERASURE))


def test_derived_record_with_more_than_32_sources_is_refused(net: Net) -> None:
    """At most MAX_SOURCES (32) sources bound the consent loop of an access."""
    assert net.ledger.access.functions.MAX_SOURCES().call() == 32
    sources = [net.records.lab, net.records.lab_bob] * 16 + [net.records.lab]

    with pytest.raises(ContractRevertError) as e:
        net.register("huge", None, LAB_RESULT, derived_from=sources)
    assert e.value.rule == "RecordRegistryTooManySources"
    assert e.value.rule_args == (33, 32)


def test_derived_record_with_exactly_32_sources_is_accepted(net: Net) -> None:
    """32 sources are within the limit."""
    sources = [net.records.lab, net.records.lab_bob] * 16

    rid = net.register("big", None, LAB_RESULT, derived_from=sources)
    assert net.ledger.record(rid).derived_from == tuple(sources)


# ---------------------------------------------------------------------- tombstones


def test_tombstone_marks_the_record_and_emits_record_tombstoned(net: Net) -> None:
    """The custodian destroys a record for a reason; the event names it."""
    receipt = net.ledger.tombstone(net.health, net.records.contact, TombstoneReason.RETENTION)

    assert net.ledger.record(net.records.contact).tombstone is TombstoneReason.RETENTION
    (event,) = net.events(net.ledger.access.events.RecordTombstoned(), receipt)
    assert event == {
        "record": net.records.contact, "custodian": net.health.address,
        "reason": int(TombstoneReason.RETENTION),
    }


def test_a_derived_record_is_tombstoned_source_destroyed_after_its_source(net: Net) -> None:
    """A source's tombstone leaves the chain's record of what was derived from it as it is; the custodian then
    destroys the derived record for SourceDestroyed, and the event says so."""
    derived = net.register("cohort-of-one", None, LAB_RESULT, derived_from=[net.records.lab_bob])
    net.ledger.tombstone(net.health, net.records.lab_bob, TombstoneReason.ERASURE)
    assert net.ledger.record(derived).tombstone is TombstoneReason.NONE

    receipt = net.ledger.tombstone(net.health, derived, TombstoneReason.SOURCE_DESTROYED)

    assert net.ledger.record(derived).tombstone is TombstoneReason.SOURCE_DESTROYED
    (event,) = net.events(net.ledger.access.events.RecordTombstoned(), receipt)
    assert event["reason"] == int(TombstoneReason.SOURCE_DESTROYED)


def test_tombstoned_record_cannot_be_accessed(net: Net) -> None:
    """No access to a destroyed record works, not even to an OPEN one."""
    net.ledger.tombstone(net.health, net.records.stats, TombstoneReason.SUNSET)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, net.records.stats, EPIDEMIC)
    assert e.value.rule == "RecordRegistryRecordTombstoned"
    assert e.value.rule_args == (hex32(net.records.stats), int(TombstoneReason.SUNSET))


def test_only_the_custodian_may_tombstone(net: Net) -> None:
    """Another member (or anyone) cannot destroy a custodian's record."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.tombstone(net.transport, net.records.contact, TombstoneReason.ERASURE)
    assert e.value.rule == "RecordRegistryNotCustodian"
    assert rule_args(e.value) == (hex32(net.records.contact), net.transport.address)


def test_record_cannot_be_tombstoned_twice(net: Net) -> None:
    """A tombstone is final; the second one names the first reason."""
    net.ledger.tombstone(net.health, net.records.contact, TombstoneReason.ERASURE)

    with pytest.raises(ContractRevertError) as e:
        net.ledger.tombstone(net.health, net.records.contact, TombstoneReason.RETENTION)
    assert e.value.rule == "RecordRegistryRecordTombstoned"
    assert e.value.rule_args == (hex32(net.records.contact), int(TombstoneReason.ERASURE))


def test_tombstone_needs_a_reason(net: Net) -> None:
    """Reason NONE would leave the record live, so it is refused."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.tombstone(net.health, net.records.contact, TombstoneReason.NONE)
    assert e.value.rule == "RecordRegistryInvalidRecord"
    assert e.value.rule_args == (hex32(net.records.contact), "no tombstone reason")


def test_tombstone_of_unknown_record_is_refused(net: Net) -> None:
    """Only registered records can be destroyed."""
    with pytest.raises(ContractRevertError) as e:
        net.ledger.tombstone(net.health, record_id("never-registered"), TombstoneReason.ERASURE)
    assert e.value.rule == "RecordRegistryUnknownRecord"


def test_suspended_custodian_can_still_tombstone(net: Net) -> None:
    """The duty to destroy outlives a suspension."""
    net.suspend(net.health)

    net.ledger.tombstone(net.health, net.records.stats, TombstoneReason.CUSTODIAN)
    assert net.ledger.record(net.records.stats).tombstone is TombstoneReason.CUSTODIAN


def test_registration_counts_each_category_retention(net: Net) -> None:
    """Each record's retainUntil follows its own category's retention."""
    for name, category in [("a", CONTACT_TRACE), ("b", DISTRICT_STATS)]:
        rid = net.register(name, net.bob, category)
        info = net.ledger.record(rid)
        assert info.retain_until - info.created_at == RETENTION[category]


def test_source_past_retention_cannot_be_derived_from(net: Net) -> None:
    """A source whose retention ended (tombstone not yet written) refuses new derived records."""
    net.travel_to(net.ledger.record(net.records.contact).retain_until + 1)
    with pytest.raises(ContractRevertError) as e:
        net.register("late-summary", None, LAB_RESULT, derived_from=[net.records.contact])
    assert e.value.rule == "RecordRegistrySourceExpired"
