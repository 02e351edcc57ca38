"""A requester gateway killed (-9) while recording an access: the retry with its Idempotency-Key gets that access.

The gateway dies at each step of recording a (group-committed) access: the batch signed and saved
but not broadcast, broadcast but not mined, mined but not answered. After a restart, the client's
retry with the same Idempotency-Key answers one access (record, seq 1): exactly one AccessRecorded
entry, one use of the consent, and nothing released for an access the chain does not hold.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select

from consentledger.chain.node import ChainKind, start_node
from consentledger.consent import consent_id
from consentledger.gateway.faults import CRASH_POINTS
from consentledger.store import make_engine
from consentledger.store.tables import releases
from consentledger.types import Role

from .world import CONTACT_TRACE, Consortium, expect, start_consortium

pytestmark = pytest.mark.process

FAULT_ENV = "CONSENTLEDGER_GATEWAY_FAULT_INJECTION"
PAYLOAD = {"name": "Ana", "phone": "555-0199", "district": "North"}


@pytest.fixture(scope="module")
def crashing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """A custodian and a requester on their own anvil (the requester's gateway is killed and restarted)."""
    with start_node(ChainKind.ANVIL) as node:
        members = {"health": (1, Role.CUSTODIAN), "transport": (2, Role.REQUESTER)}
        started = start_consortium(node.rpc_url, tmp_path_factory.mktemp("crash"), members)
        try:
            yield started
        finally:
            started.stop()


def released(consortium: Consortium, record: str) -> list[int]:
    """Return the seqs of `record` the custodian's release log holds, one per release."""
    engine = make_engine(f"sqlite:///{consortium.health.directory / 'agency.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.scalars(select(releases.c.seq).where(releases.c.record_id == record)))
    finally:
        engine.dispose()


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_retry_after_a_crash_answers_the_one_access_recorded(crashing: Consortium, point: str) -> None:
    """Killed at `point`, restarted: the retry answers seq 1; one entry on chain, one consent use, no stray release."""
    transport, subject = crashing.transport, Account.create()
    record = crashing.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    consent = crashing.grant(subject, transport, CONTACT_TRACE, identified=True)  # ONE_TIME: a second use fails
    key = {"Idempotency-Key": f"crash-{point}-{uuid.uuid4()}"}

    transport.stop()
    transport.start(env={FAULT_ENV: point})
    with pytest.raises(httpx.TransportError):  # the gateway dies before it answers
        crashing.access(transport, record, [consent], headers=key, timeout=30)
    assert transport.process is not None
    assert transport.process.wait(timeout=30) == -9
    transport.stop()
    on_chain_before = len(crashing.accesses(record))
    assert on_chain_before == (0 if point == "access-signed" else 1)
    assert released(crashing, record) == []  # nothing left the custodian for it

    transport.start()
    first = expect(crashing.access(transport, record, [consent], headers=key, timeout=60), 200)
    again = expect(crashing.access(transport, record, [consent], headers=key, timeout=60), 200)

    assert first["seq"] == again["seq"] == 1
    assert first["payload"] == again["payload"] == PAYLOAD
    assert [e.seq for e in crashing.accesses(record)] == [1]
    _, uses = crashing.ledger.consent_state(consent_id(consent, crashing.ledger.domain()))
    assert uses == 1
    assert released(crashing, record) == [1, 1]  # both answers released access 1, the only one there is


def test_a_key_reused_for_another_access_is_refused(crashing: Consortium) -> None:
    """The same Idempotency-Key with a different body is a conflict (409), and records nothing."""
    transport, subject = crashing.transport, Account.create()
    record = crashing.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    other = crashing.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    consent = crashing.grant(subject, transport, CONTACT_TRACE, max_uses=3)
    key = {"Idempotency-Key": f"reuse-{uuid.uuid4()}"}

    expect(crashing.access(transport, record, [consent], headers=key), 200)
    expect(crashing.access(transport, other, [consent], headers=key), 409, "idempotency_conflict")

    assert crashing.accesses(other) == []
    _, uses = crashing.ledger.consent_state(consent_id(consent, crashing.ledger.domain()))
    assert uses == 1
