"""Anonymous aggregates: over at least K distinct attesting subjects, read without consent while sources live."""

from __future__ import annotations

import pytest
from eth_account import Account

from consentledger.errors import ContractRevertError
from consentledger.types import RecordKind, TombstoneReason

from .world import AGGREGATE_K, DISTRICT_STATS, EPIDEMIC, LAB_RESULT, RESEARCH, Net, commitment_of, hex32, record_id

ZERO = b"\0" * 32


def aggregate(net: Net, name: str, sources: list[bytes], category: int = DISTRICT_STATS) -> bytes:
    """Register `name` as an aggregate of `sources` held by health; return its id."""
    rid = record_id(name)
    net.ledger.register_aggregate(net.health, rid, category, commitment_of(name), sources)
    return rid


def test_an_aggregate_over_k_subjects_is_registered_without_a_subject(net: Net) -> None:
    """Alice's and Bob's lab results make a 2-subject aggregate: kind AGGREGATE, no subject, the event says 2."""
    net.attest(net.records.lab, net.records.lab_bob)
    block = net.w3.eth.block_number + 1
    rid = aggregate(net, "by-district", [net.records.lab, net.records.lab_bob])

    info = net.ledger.record(rid)
    assert (info.kind, info.subject, info.derived_from) == (
        RecordKind.AGGREGATE, "0x" + "00" * 20, (net.records.lab, net.records.lab_bob))
    [announced] = net.events_since(net.ledger.access.events.AggregateRegistered(), block)
    assert announced == {"record": rid, "subjects": 2}


def test_an_aggregate_is_read_without_consent_and_never_identified(net: Net) -> None:
    """Any active requester reads it for an allowed purpose with no consent; the entry is not identified."""
    net.attest(net.records.lab, net.records.lab_bob)
    rid = aggregate(net, "by-district", [net.records.lab, net.records.lab_bob])

    entry = net.access(net.transport, rid, RESEARCH)

    assert (entry.seq, entry.consent, entry.identified) == (1, ZERO, False)


def test_an_aggregate_refuses_a_consent(net: Net) -> None:
    """Presenting a consent for an aggregate is a mistake the chain names (expected 0)."""
    net.attest(net.records.lab, net.records.lab_bob)
    rid = aggregate(net, "by-district", [net.records.lab, net.records.lab_bob])
    consent = net.consent(net.alice, net.transport, DISTRICT_STATS, RESEARCH, record=rid)
    net.grant(consent)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, rid, RESEARCH, [consent])
    assert (e.value.rule, e.value.rule_args) == ("AccessLedgerConsentCountMismatch", (hex32(rid), 0, 1))


def test_fewer_distinct_subjects_than_k_is_refused(net: Net) -> None:
    """Two of Alice's records are one subject: below K = 2, so no aggregate."""
    net.attest(net.records.lab, net.records.contact)
    with pytest.raises(ContractRevertError) as e:
        aggregate(net, "alice-only", [net.records.lab, net.records.contact])
    assert (e.value.rule, e.value.rule_args) == ("RecordRegistryTooFewSubjects", (hex32(record_id("alice-only")), 1,
                                                                                 AGGREGATE_K))


def test_a_category_without_k_allows_no_aggregate(net: Net) -> None:
    """Lab results have K = 0: an aggregate in that category is refused whatever its sources."""
    net.attest(net.records.lab, net.records.lab_bob)
    with pytest.raises(ContractRevertError) as e:
        aggregate(net, "lab-cohort", [net.records.lab, net.records.lab_bob], category=LAB_RESULT)
    assert e.value.rule == "RecordRegistryTooFewSubjects" and e.value.rule_args[2] == 0


def test_an_aggregate_needs_sources(net: Net) -> None:
    """An aggregate of nothing is refused."""
    with pytest.raises(ContractRevertError) as e:
        aggregate(net, "empty", [])
    assert (e.value.rule, e.value.rule_args[1]) == ("RecordRegistryInvalidRecord", "an aggregate needs sources")


def test_an_aggregate_of_aggregates_counts_the_original_subjects(net: Net) -> None:
    """Sources that are aggregates are replaced by their originals, so K counts real people."""
    net.attest(net.records.lab, net.records.lab_bob)
    first = aggregate(net, "first", [net.records.lab, net.records.lab_bob])
    second = aggregate(net, "second", [first])

    assert net.ledger.record(second).derived_from == (net.records.lab, net.records.lab_bob)


def test_an_erased_source_makes_the_aggregate_unavailable(net: Net) -> None:
    """Erasing Bob's result takes the aggregate built on it out of use."""
    net.attest(net.records.lab, net.records.lab_bob)
    rid = aggregate(net, "by-district", [net.records.lab, net.records.lab_bob])
    net.ledger.tombstone(net.health, net.records.lab_bob, TombstoneReason.ERASURE)

    with pytest.raises(ContractRevertError) as e:
        net.access(net.transport, rid, EPIDEMIC)
    assert (e.value.rule, e.value.rule_args) == ("AccessLedgerSourceUnavailable", (hex32(rid),
                                                                                  hex32(net.records.lab_bob)))


def test_a_record_about_a_made_up_subject_does_not_count_toward_k(net: Net) -> None:
    """Alice's attested result plus a record about an address nobody holds is one subject, not two: refused."""
    net.attest(net.records.lab)
    made_up = net.register("made-up", Account.create().address, LAB_RESULT)

    with pytest.raises(ContractRevertError) as e:
        aggregate(net, "faked", [net.records.lab, made_up])
    assert (e.value.rule, e.value.rule_args) == ("RecordRegistryTooFewSubjects", (hex32(record_id("faked")), 1,
                                                                                 AGGREGATE_K))


def test_unattested_real_sources_count_for_nothing(net: Net) -> None:
    """Alice's and Bob's real results make no aggregate until both have attested them."""
    with pytest.raises(ContractRevertError) as e:
        aggregate(net, "by-district", [net.records.lab, net.records.lab_bob])
    assert (e.value.rule, e.value.rule_args) == ("RecordRegistryTooFewSubjects", (hex32(record_id("by-district")), 0,
                                                                                 AGGREGATE_K))


def test_an_unattested_source_may_join_an_aggregate_over_k_attested_subjects(net: Net) -> None:
    """An unattested record does not block an aggregate that K attested subjects already cover; it is not counted."""
    net.attest(net.records.lab, net.records.lab_bob)
    made_up = net.register("made-up", Account.create().address, LAB_RESULT)
    block = net.w3.eth.block_number + 1

    rid = aggregate(net, "by-district", [net.records.lab, net.records.lab_bob, made_up])

    [announced] = net.events_since(net.ledger.access.events.AggregateRegistered(), block)
    assert announced == {"record": rid, "subjects": 2}
