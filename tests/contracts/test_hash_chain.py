"""The per-record hash chain of accesses, recomputed independently from raw AccessRecorded logs."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from consentledger.chain.history import check_record_chain
from consentledger.types import AccessEntry

from .world import EPIDEMIC, LAB_RESULT, RESEARCH, Net

ACCESS_RECORDED = keccak(
    text="AccessRecorded(uint24,bytes32,address,bytes32,uint8,uint8,bytes32,bool,bytes32,uint40)"
)
GENESIS = b"\0" * 32


@dataclass(frozen=True)
class RawAccess:
    """One AccessRecorded log, decoded by hand from its topics and data."""

    seq: int
    record: bytes
    requester: str
    actor: bytes
    purpose: int
    basis: int
    consent: bytes
    identified: bool
    head: bytes
    timestamp: int
    block_number: int


def raw_accesses(net: Net, record: bytes) -> list[RawAccess]:
    """Return `record`'s AccessRecorded logs via eth_getLogs, decoded with eth_abi, in order."""
    logs = net.w3.eth.get_logs({
        "address": net.ledger.access.address,
        "fromBlock": net.ledger.deployment.deploy_block,
        "toBlock": "latest",
        "topics": [ACCESS_RECORDED, None, record],
    })
    decoded = []
    for log in sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"])):
        _, seq_topic, record_topic, requester_topic = log["topics"]
        actor, purpose, basis, consent, identified, head, timestamp = decode(
            ["bytes32", "uint8", "uint8", "bytes32", "bool", "bytes32", "uint40"], bytes(log["data"])
        )
        decoded.append(RawAccess(
            seq=int.from_bytes(seq_topic, "big"),
            record=bytes(record_topic),
            requester=to_checksum_address(bytes(requester_topic)[12:]),
            actor=actor, purpose=purpose, basis=basis, consent=consent, identified=identified, head=head,
            timestamp=timestamp,
            block_number=log["blockNumber"],
        ))
    return decoded


def chain_link(previous: bytes, access: RawAccess) -> bytes:
    """Return keccak256(abi.encode(previous, seq, requester, actor, purpose, basis, consent, identified, timestamp))."""
    return keccak(encode(
        ["bytes32", "uint24", "address", "bytes32", "uint8", "uint8", "bytes32", "bool", "uint256"],
        [previous, access.seq, access.requester, access.actor, access.purpose, access.basis, access.consent,
         access.identified, access.timestamp],
    ))


@dataclass(frozen=True)
class Traced:
    """What `traced` did: which records were read, and every entry returned, in order."""

    records: tuple[bytes, ...]
    entries: tuple[AccessEntry, ...]


@pytest.fixture
def traced(net: Net) -> Traced:
    """Two requesters read alice's and bob's lab results in turn, and the stats without consent."""
    lab, lab_bob, stats = net.records.lab, net.records.lab_bob, net.records.stats
    consents = {
        (requester.address, record): net.consent(
            subject, requester, LAB_RESULT, purpose, record=record, max_uses=3
        )
        for requester, purpose in ((net.transport, EPIDEMIC), (net.police, RESEARCH))
        for record, subject in ((lab, net.alice), (lab_bob, net.bob))
    }
    for consent in consents.values():
        net.grant(consent)
    plan = [
        (net.transport, lab, EPIDEMIC), (net.police, lab_bob, RESEARCH),
        (net.police, lab, RESEARCH), (net.transport, lab_bob, EPIDEMIC),
        (net.transport, stats, EPIDEMIC), (net.transport, lab, EPIDEMIC),
        (net.police, lab_bob, RESEARCH), (net.police, stats, RESEARCH),
    ]
    entries = []
    for requester, record, purpose in plan:
        used = [] if record == stats else [consents[(requester.address, record)]]
        entries.append(net.access(requester, record, purpose, used))
    return Traced((lab, lab_bob, stats), tuple(entries))


def test_heads_recomputed_from_raw_logs_match_the_chain(net: Net, traced: Traced) -> None:
    """Folding each record's decoded logs from the zero head reproduces every head and head()."""
    for record in traced.records:
        accesses = raw_accesses(net, record)
        assert [a.seq for a in accesses] == list(range(1, len(accesses) + 1))
        head = GENESIS
        for access in accesses:
            assert access.record == record
            head = chain_link(head, access)
            assert head == access.head
        assert head == net.ledger.head(record)
    assert [len(raw_accesses(net, r)) for r in traced.records] == [3, 3, 2]


def test_raw_logs_name_who_read_what_when(net: Net, traced: Traced) -> None:
    """The logs carry the requester, purpose, consent and block time of each access."""
    accesses = raw_accesses(net, net.records.stats)
    assert [(a.requester, a.purpose, a.consent) for a in accesses] == [
        (net.transport.address, EPIDEMIC, GENESIS), (net.police.address, RESEARCH, GENESIS),
    ]
    for access in accesses:
        assert net.w3.eth.get_block(access.block_number)["timestamp"] == access.timestamp


def test_check_record_chain_accepts_the_real_chain(net: Net, traced: Traced) -> None:
    """`check_record_chain` finds the events, recomputes the same head and reports no problem."""
    for record in traced.records:
        check = check_record_chain(net.ledger, record)
        assert check.ok, check.problems
        assert check.recomputed == check.on_chain == net.ledger.head(record)
        assert [e.seq for e in check.entries] == [a.seq for a in raw_accesses(net, record)]


def test_check_record_chain_reports_a_dropped_or_altered_entry(net: Net, traced: Traced) -> None:
    """Dropping any entry, or changing a purpose, in the list checked yields problems."""
    lab = net.records.lab
    entries = [e for e in traced.entries if e.record == lab]
    assert len(entries) == 3
    tampered = {
        "first dropped": entries[1:],
        "middle dropped": [entries[0], entries[2]],
        "last dropped": entries[:2],
        "purpose altered": [entries[0], replace(entries[1], purpose=EPIDEMIC), entries[2]],
    }
    assert entries[1].purpose == RESEARCH
    for what, listed in tampered.items():
        check = check_record_chain(net.ledger, lab, entries=listed)
        assert not check.ok, what
        assert check.problems, what
    assert check_record_chain(net.ledger, lab, entries=entries).ok
