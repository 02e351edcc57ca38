"""An access on chain whose custodian was unreachable: answered later, never recorded twice.

The custodian's gateway is stopped after `requestAccess` is mined: the requester answers 502
naming the access (record, seq, block) and how to resume it. Once the custodian is back, a retry
with the same Idempotency-Key, or `POST /v1/access/resume` by (record, seq), answers that access:
one AccessRecorded entry, one use of the consent (a ONE_TIME consent still serves the retry), and
the custodian's release rules (the count, the window) apply as to any release.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger.chain.node import ChainKind, start_node
from consentledger.consent import Consent, consent_id
from consentledger.crypto.keys import load_account
from consentledger.errors import GatewayError, PeerError
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV
from consentledger.types import Role

from .world import CONTACT_TRACE, DISTRICT_STATS, EPIDEMIC_CONTROL, Consortium, expect, signed, start_consortium

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
PAYLOAD = {"name": "Ana", "phone": "555-0199", "district": "North"}
MAX_RELEASES = 2
TRANSPORT_DEV = 2
CLIENT_PASSWORD = "an analyst's own passphrase"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Two custodians (health, clinic) and a requester (transport) on their own anvil; clinic is stopped at times."""
    with start_node(ChainKind.ANVIL) as node:
        members = {"health": (1, Role.CUSTODIAN), "transport": (TRANSPORT_DEV, Role.REQUESTER),
                   "clinic": (3, Role.CUSTODIAN), "police": (4, Role.REQUESTER)}
        started = start_consortium(node.rpc_url, tmp_path_factory.mktemp("resume"), members,
                                   settings={"max_releases": MAX_RELEASES})
        try:
            yield started
        finally:
            started.stop()


@pytest.fixture(autouse=True)
def clinic_up(world: Consortium) -> Iterator[None]:
    """Start the clinic's gateway again after a test that stopped it and failed before it restarted it."""
    yield
    clinic = world.agencies["clinic"]
    if clinic.process is None or clinic.process.poll() is not None:
        clinic.start()


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


def test_an_access_without_a_key_is_resumed_by_record_and_seq_within_the_release_rules(world: Consortium) -> None:
    """No key: the 502 names seq 1; `POST /v1/access/resume` answers it, records nothing, and counts as a release."""
    clinic, subject = world.agencies["clinic"], Account.create()
    record = ingest_at(world, "clinic", PAYLOAD, CONTACT_TRACE, subject.address)
    consent = world.grant(subject, world.transport, CONTACT_TRACE, identified=True)  # ONE_TIME
    clinic.stop()
    failed = expect(world.access(world.transport, record, [consent]), 502, PeerError.code)
    assert (failed["record"], failed["seq"]) == (record, 1)
    expect(resume(world, record, 1, [consent]), 502, PeerError.code)  # still down: still resumable
    clinic.start()

    answers = [expect(resume(world, record, 1, [consent]), 200) for _ in range(MAX_RELEASES)]
    assert [(a["seq"], a["payload"]) for a in answers] == [(1, PAYLOAD)] * MAX_RELEASES
    spent = expect(resume(world, record, 1, [consent]), 403, "release_refused")
    assert spent["reason"] == "limit_reached", spent
    assert [e.seq for e in world.accesses(record)] == [1]
    assert uses(world, consent) == 1
    expect(resume(world, record, 1, []), 403, "release_refused")  # the consents it presented, or nothing
    expect(resume(world, record, 2, [consent]), 404, "not_found")


def add_client(world: Consortium, root: Path, name: str) -> LocalAccount:
    """Register a `request` client of transport with the real CLI; return its key."""
    keystore = root / f"{name}.json"
    done = cli("agency", "client", "add", "--config", str(world.transport.created.config), "--name", name,
               "--role", "request", "--new-keystore", str(keystore))
    assert done.returncode == 0, done.stdout + done.stderr
    return load_account(keystore, CLIENT_PASSWORD)


def test_only_the_client_the_entry_names_can_resume_it(world: Consortium, tmp_path: Path) -> None:
    """Another client of the agency, the agency's own key, or another agency: 403; the client that asked: 200."""
    analyst = add_client(world, tmp_path, "analyst")
    stats = {"district": "East", "cases": 4}
    record = ingest_at(world, "health", stats, DISTRICT_STATS, Account.create().address)  # OPEN: no consent
    body = {"record": record, "purpose": EPIDEMIC_CONTROL, "consents": []}
    mine = expect(signed(world.transport, analyst.key, "POST", "/v1/access", body), 200)
    police = expect(world.access(world.police, record), 200)
    assert (mine["seq"], police["seq"]) == (1, 2)

    refused = expect(resume(world, record, 1, []), 403, "forbidden")  # the agency's key is not the analyst
    assert "another client" in refused["detail"], refused
    refused = expect(resume(world, record, 2, [], key=analyst.key), 403, "forbidden")
    assert "another organisation" in refused["detail"], refused
    assert expect(resume(world, record, 1, [], key=analyst.key), 200)["payload"] == stats
    assert [e.seq for e in world.accesses(record)] == [1, 2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `consentledger` command."""
    environment = {**os.environ, PASSWORD_ENV: DEV_PASSWORD, "CONSENTLEDGER_CLIENT_PASSWORD": CLIENT_PASSWORD}
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True, timeout=180)


def test_the_cli_resumes_a_failed_access_by_its_key_or_by_record_and_seq(world: Consortium, tmp_path: Path) -> None:
    """`access request` fails naming its key (exit 15); `access resume` by key, then by --seq, answers seq 1 once."""
    clinic, subject = world.agencies["clinic"], Account.create()
    record = ingest_at(world, "clinic", PAYLOAD, CONTACT_TRACE, subject.address)
    consent = world.grant(subject, world.transport, CONTACT_TRACE, identified=True)  # ONE_TIME
    consent_file = tmp_path / "consent.json"
    consent_file.write_text(json.dumps(consent.to_json()))
    asked = ("--gateway", world.transport.url, "--record", record, "--purpose", str(EPIDEMIC_CONTROL),
             "--consent-file", str(consent_file), "--dev-account", str(TRANSPORT_DEV))
    clinic.stop()

    failed = cli("access", "request", *asked)
    assert failed.returncode == GatewayError.exit_code, failed.stdout + failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    key = re.search(r"--idempotency-key (\S+)", failed.stderr)
    assert key is not None and f"access 1 to record {record} is on chain" in failed.stderr, failed.stderr
    clinic.start()

    by_key = cli("access", "resume", *asked, "--idempotency-key", key.group(1))
    assert by_key.returncode == 0, by_key.stdout + by_key.stderr
    assert json.loads(by_key.stdout) == PAYLOAD and f"access #1 to record {record}" in by_key.stderr
    by_seq = cli("access", "resume", "--gateway", world.transport.url, "--record", record, "--seq", "1",
                 "--consent-file", str(consent_file), "--dev-account", str(TRANSPORT_DEV))
    assert by_seq.returncode == 0, by_seq.stdout + by_seq.stderr
    assert json.loads(by_seq.stdout) == PAYLOAD
    assert [e.seq for e in world.accesses(record)] == [1]
    assert uses(world, consent) == 1

    again = cli("access", "resume", "--gateway", world.transport.url, "--record", record, "--seq", "1",
                "--consent-file", str(consent_file), "--dev-account", str(TRANSPORT_DEV))
    assert again.returncode == GatewayError.exit_code, again.stdout + again.stderr  # 2 releases spent: 403
    assert "release_refused" in again.stderr and len(again.stderr.strip().splitlines()) == 1, again.stderr
    lost = cli("access", "resume", "--gateway", world.transport.url, "--record", record,
               "--dev-account", str(TRANSPORT_DEV))
    assert lost.returncode == 2 and "--idempotency-key" in lost.stderr, lost.stderr
