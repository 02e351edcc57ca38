"""An access on chain whose custodian was unreachable: answered later, never recorded twice.

The custodian's gateway is stopped after `requestAccess` is mined: the requester answers 502
naming the access (record, seq, block) and how to resume it. Once the custodian is back, a retry
with the same Idempotency-Key, or `POST /v1/access/resume` by (record, seq), answers that access:
one AccessRecorded entry, one use of the consent (a ONE_TIME consent still serves the retry), and
the custodian's release rules (the count, the window) apply as to any release.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from consentledger.chain.node import ChainKind, start_node
from consentledger.consent import Consent, consent_id
from consentledger.errors import PeerError
from consentledger.types import Role

from .world import CONTACT_TRACE, EPIDEMIC_CONTROL, LAB_RESULT, Consortium, expect, signed, start_consortium

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
PAYLOAD = {"name": "Ana", "phone": "555-0199", "district": "North"}
MAX_RELEASES = 2


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Two custodians (health, clinic) and a requester (transport) on their own anvil; clinic is stopped at times."""
    with start_node(ChainKind.ANVIL) as node:
        members = {"health": (1, Role.CUSTODIAN), "transport": (2, Role.REQUESTER), "clinic": (3, Role.CUSTODIAN)}
        started = start_consortium(node.rpc_url, tmp_path_factory.mktemp("resume"), members,
                                   settings={"max_releases": MAX_RELEASES})
        try:
            yield started
        finally:
            started.stop()


def ingest_at(world: Consortium, custodian: str, payload: dict[str, Any], category: int, subject: str) -> str:
    """Collect `payload` at `custodian`'s gateway; return the record id."""
    agency = world.agencies[custodian]
    body = {"subject": subject, "category": category, "payload": payload}
    return str(expect(signed(agency, world.key(agency), "POST", "/v1/records", body), 201)["record"])


def uses(world: Consortium, consent: Consent) -> int:
    """Return how many uses of `consent` the chain has counted."""
    return world.ledger.consent_state(consent_id(consent, world.ledger.domain()))[1]


def resume(world: Consortium, record: str, seq: int, consents: list[Consent], **options: Any) -> Any:
    """Ask transport's gateway to resume access (record, seq) under `consents`, signed by transport's org key."""
    body = {"record": record, "seq": seq, "consents": [c.to_json() for c in consents]}
    transport = world.transport
    return signed(transport, options.pop("key", world.key(transport)), "POST", "/v1/access/resume", body, **options)


def test_a_retry_with_its_key_resumes_the_access_the_custodian_missed(world: Consortium) -> None:
    """502 naming the access on chain; custodian back, the keyed retry answers seq 1: one entry, one consent use."""
    clinic, subject = world.agencies["clinic"], Account.create()
    record = ingest_at(world, "clinic", PAYLOAD, CONTACT_TRACE, subject.address)
    consent = world.grant(subject, world.transport, CONTACT_TRACE, identified=True)  # ONE_TIME
    key = {"Idempotency-Key": f"down-{uuid.uuid4()}"}
    clinic.stop()

    failed = expect(world.access(world.transport, record, [consent], headers=key), 502, PeerError.code)
    assert (failed["record"], failed["seq"], failed["on_chain"]) == (record, 1, True), failed
    assert failed["block"] == world.accesses(record)[0].block_number
    assert "Idempotency-Key" in failed["detail"] and "/v1/access/resume" in failed["detail"], failed
    assert uses(world, consent) == 1

    clinic.start()
    first = expect(world.access(world.transport, record, [consent], headers=key), 200)
    assert (first["seq"], first["payload"]) == (1, PAYLOAD)
    assert [e.seq for e in world.accesses(record)] == [1]
    assert uses(world, consent) == 1
    other = {"record": record, "purpose": EPIDEMIC_CONTROL, "consents": [consent.to_json()], "withhold": "pseudonymise"}
    expect(signed(world.transport, world.key(world.transport), "POST", "/v1/access", other, headers=key), 409,
           "idempotency_conflict")
    assert [e.seq for e in world.accesses(record)] == [1]


def test_a_batch_retry_fetches_what_the_custodian_missed_and_records_nothing(world: Consortium) -> None:
    """Items of an unreachable custodian answer 502 with their access; the keyed retry answers them, no new entry."""
    clinic, alice, bob = world.agencies["clinic"], Account.create(), Account.create()
    held = ingest_at(world, "health", PAYLOAD, CONTACT_TRACE, alice.address)
    missed = ingest_at(world, "clinic", PAYLOAD, CONTACT_TRACE, bob.address)
    for_held = world.grant(alice, world.transport, CONTACT_TRACE, identified=True)
    for_missed = world.grant(bob, world.transport, CONTACT_TRACE, identified=True)
    body = {"items": [{"record": r, "purpose": EPIDEMIC_CONTROL, "consents": [c.to_json()]}
                      for r, c in ((held, for_held), (missed, for_missed))]}
    key = {"Idempotency-Key": f"batch-down-{uuid.uuid4()}"}
    clinic.stop()

    first = expect(signed(world.transport, world.key(world.transport), "POST", "/v1/access/batch", body,
                          headers=key), 200)["items"]
    assert [a["status"] for a in first] == [200, 502], first
    assert (first[1]["error"], first[1]["record"], first[1]["seq"], first[1]["on_chain"]) == (
        PeerError.code, missed, 1, True)

    clinic.start()
    again = expect(signed(world.transport, world.key(world.transport), "POST", "/v1/access/batch", body,
                          headers=key), 200)["items"]
    assert [(a["status"], a["seq"], a["payload"]) for a in again] == [(200, 1, PAYLOAD), (200, 1, PAYLOAD)], again
    assert [e.seq for e in world.accesses(held)] == [e.seq for e in world.accesses(missed)] == [1]
    assert uses(world, for_held) == uses(world, for_missed) == 1
