"""Trace answers who accessed which record, filtered by subject, record, organisation, purpose and time."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from consentledger import audit
from consentledger.errors import ConfigurationError
from consentledger.types import AccessEntry

from .world import ANALYST, EPIDEMIC, REFUSED, RESEARCH, World, hexid

pytestmark = pytest.mark.process


@pytest.fixture
def indexed(world: World, engine: Engine) -> Engine:
    """The world indexed into the parametrized backend."""
    audit.Indexer(engine, world.ledger()).sync()
    return engine


def keys(lines: list[audit.TraceLine]) -> list[tuple[str, int]]:
    """Return (record, seq) of trace lines."""
    return [(line.record, line.seq) for line in lines]


def expected(entries: list[AccessEntry]) -> list[tuple[str, int]]:
    """Return (record, seq) of chain entries."""
    return [(hexid(e.record), e.seq) for e in entries]


def test_trace_by_subject_includes_derived_records(world: World, indexed: Engine) -> None:
    """A subject's trace lists accesses to their records and to records derived from them, oldest first."""
    alice_records = {world.records[n] for n in ("lab-alice", "contact-alice", "derived")}
    lines = audit.trace(indexed, subject=world.alice.address)
    assert keys(lines) == expected([e for e in world.entries() if e.record in alice_records])
    assert len(lines) == 5
    bob_records = {world.records[n] for n in ("stats-bob", "contact-bob", "derived")}
    assert keys(audit.trace(indexed, subject=world.bob.address.lower())) == expected(
        [e for e in world.entries() if e.record in bob_records]
    )


def test_trace_by_record_and_purpose(world: World, indexed: Engine) -> None:
    """Record and purpose filters combine; a purpose may be named by id or by name."""
    lab = world.records["lab-alice"]
    assert keys(audit.trace(indexed, record=hexid(lab))) == [(hexid(lab), 1), (hexid(lab), 2), (hexid(lab), 3)]
    research = expected([e for e in world.entries() if e.purpose == RESEARCH])
    assert keys(audit.trace(indexed, purpose=RESEARCH)) == research
    assert keys(audit.trace(indexed, purpose="research")) == research
    stats = world.records["stats-bob"]
    both = audit.trace(indexed, record=hexid(stats), purpose=EPIDEMIC)
    assert keys(both) == expected([e for e in world.entries() if e.record == stats and e.purpose == EPIDEMIC])


def test_trace_by_org_matches_requester_or_custodian(world: World, indexed: Engine) -> None:
    """An organisation's trace holds its own accesses as requester and every access to records it keeps."""
    police = audit.trace(indexed, org=world.police.address)
    assert keys(police) == expected([e for e in world.entries() if e.requester == world.police.address])
    assert {line.requester_name for line in police} == {"police"}
    assert keys(audit.trace(indexed, org=world.health.address)) == expected(world.entries())


def test_trace_since_until_bound_the_time(world: World, indexed: Engine) -> None:
    """`since` is inclusive, `until` exclusive, both unix seconds."""
    entries = world.entries()
    since, until = entries[2].timestamp, entries[-1].timestamp
    lines = audit.trace(indexed, since=since, until=until)
    assert keys(lines) == expected([e for e in entries if since <= e.timestamp < until])
    assert all(since <= line.time.timestamp() < until for line in lines)
    assert audit.trace(indexed, since=entries[-1].timestamp + 1) == []


def test_trace_lines_carry_names_and_page(world: World, indexed: Engine) -> None:
    """Lines name category, custodian, requester and purpose; limit and offset page through them."""
    first = audit.trace(indexed, limit=1)[0]
    entry = world.entries()[0]
    assert (first.record, first.seq, first.block, first.tx_hash) == (
        hexid(entry.record), entry.seq, entry.block_number, hexid(entry.tx_hash)
    )
    assert first.category_name == "lab-result" and first.custodian_name == "health bureau"
    assert first.requester_name == "transport bureau" and first.purpose_name == "epidemic-control"
    assert first.consent == world.consent_id("lab")
    every = audit.trace(indexed)
    assert keys(audit.trace(indexed, limit=2, offset=1)) == keys(every)[1:3]
    open_access = next(line for line in every if line.record == hexid(world.records["stats-bob"]))
    assert open_access.consent is None
    assert first.to_json()["time"].endswith("+00:00")


def test_trace_rejects_malformed_filters(indexed: Engine) -> None:
    """A record id that is not 32 bytes of hex, or a subject that is not an address, is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="not 32 bytes"):
        audit.trace(indexed, record="0x1234")
    with pytest.raises(ConfigurationError, match="not an address"):
        audit.trace(indexed, subject="alice")


def refused(lines: list[audit.RefusalLine]) -> list[tuple[str, str, str]]:
    """Return (requester name, record, rule) of refusal lines."""
    return [(line.requester_name or "", line.record, line.rule) for line in lines]


def test_refusals_are_listed_with_names_and_plain_reasons(world: World, indexed: Engine) -> None:
    """Refused attempts come oldest first, named like trace lines (a never-registered record has no names)."""
    lines = audit.refusals(indexed)
    assert [line.rule for line in lines] == [rule for *_, rule in REFUSED]
    first = lines[0]
    assert (first.requester_name, first.custodian_name, first.category_name, first.purpose_name) == (
        "transport bureau", "health bureau", "lab-result", "epidemic-control"
    )
    assert first.subject == world.alice.address and first.actor == hexid(ANALYST) and lines[1].actor is None
    assert first.why == "the consent was revoked" and lines[-1].why == "the organisation lacks the requester role"
    unknown = next(line for line in lines if line.rule == "RecordRegistryUnknownRecord")
    assert (unknown.subject, unknown.custodian, unknown.category_name) == (None, None, None)
    assert first.to_json()["why"] == "the consent was revoked" and first.to_json()["rule_args"] == {
        "consent": world.consent_id("lab")
    }
    assert refused(audit.refusals(indexed, limit=2, offset=1)) == refused(lines)[1:3]


def test_refusals_filter_by_subject_record_org_purpose_and_time(world: World, indexed: Engine) -> None:
    """The trace filters apply alike: subject, record, org (requester or custodian), purpose, since/until."""
    lab, erased = hexid(world.records["lab-alice"]), hexid(world.records["erased"])
    alices = audit.refusals(indexed, subject=world.alice.address)
    assert [line.rule for line in alices] == [
        "ConsentRegistryConsentRevoked", "ConsentRegistryConsentExhausted", "AccessLedgerConsentCountMismatch",
    ]
    assert refused(audit.refusals(indexed, subject=world.bob.address)) == [
        ("police", erased, "RecordRegistryRecordTombstoned"),
        ("health bureau", hexid(world.records["stats-bob"]), "ConsortiumMissingRole"),
    ]
    assert [line.requester_name for line in audit.refusals(indexed, record=lab)] == ["transport bureau", "police"]
    assert {line.requester for line in audit.refusals(indexed, org=world.transport.address)} == {
        world.transport.address
    }
    police = audit.refusals(indexed, org=world.police.address)
    assert len(police) == 3 and "RecordRegistryUnknownRecord" in {line.rule for line in police}
    # As custodian, health sees every refusal of its records, not the one of a record nobody registered.
    assert len(audit.refusals(indexed, org=world.health.address)) == len(REFUSED) - 1
    assert refused(audit.refusals(indexed, purpose="research")) == refused(audit.refusals(indexed, purpose=RESEARCH))
    assert [line.rule for line in audit.refusals(indexed, purpose=RESEARCH)] == ["AccessLedgerConsentCountMismatch"]
    every = audit.refusals(indexed)
    last = int(every[-1].time.timestamp())
    assert audit.refusals(indexed, since=last + 1) == []
    assert refused(audit.refusals(indexed, since=last)) == refused([line for line in every
                                                                    if line.time.timestamp() >= last])
    assert audit.refusals(indexed, until=int(every[0].time.timestamp())) == []
    assert audit.trace(indexed, record=erased) == []  # refused attempts are no accesses
