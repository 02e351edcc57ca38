"""The crash matrix: a gateway killed (-9) at each step of ingest, consent relay, access and key release recovers.

For each crash point of `consentledger.gateway.faults` the gateway that meets it (the custodian for
ingest and release, the requester for the consent relay and the access) is restarted with that point
armed, the client call is made and the gateway dies under it. It is restarted unarmed and the client
retries the same call (the same Idempotency-Key; for the consent relay the same signed consent).
Then: the retry is answered as a first call would have been, and a second retry the same; the chain
holds exactly one effect (one RecordRegistered, one ConsentGranted, one AccessRecorded and one use of
the consent); and across the whole consortium, after every case, each record on chain is stored with
its ciphertext at its custodian and each stored record is on chain, no outbox row is left unfinished,
and every release logged is of an access on chain for the requester it was sealed for.

One chain and one consortium serve the module: a custodian (health), a requester (transport) and a
second custodian (police), so one batch call can fetch its keys in two parts.
"""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from consentledger.chain.node import ChainKind, start_node
from consentledger.consent import Consent, consent_id, sign_consent
from consentledger.gateway.faults import CRASH_POINTS
from consentledger.localnet import Agency
from consentledger.store import OutboxStatus, RecordState
from consentledger.store.tables import outbox, records, releases
from consentledger.types import Role

from .world import CONTACT_TRACE, EPIDEMIC_CONTROL, LAB_RESULT, Consortium, expect, signed, start_consortium

pytestmark = pytest.mark.process

FAULT_ENV = "CONSENTLEDGER_GATEWAY_FAULT_INJECTION"
PAYLOAD = {"name": "Ana", "phone": "555-0199", "district": "North"}
LAB_PAYLOAD = {"test": "pcr", "result": "negative"}

INGEST = ("record-stored", "outbox-signed", "outbox-broadcast", "outbox-mined", "outbox-done")
RELAY = ("consent-signed", "consent-broadcast")
ACCESS = ("access-signed", "access-broadcast", "access-mined")
MID_BATCH = ("access-part-disclosed",)
RELEASE = ("release-sealed", "release-logged")
ON_CHAIN_AT_CRASH = {"record-stored": 0, "outbox-signed": 0, "consent-signed": 0, "access-signed": 0}
"""Effects on chain when the gateway dies at a point (1 for every point not named here: broadcast or later)."""


def test_every_crash_point_is_in_the_matrix() -> None:
    """Each crash point the gateway knows is killed by one case here."""
    assert sorted(INGEST + RELAY + ACCESS + MID_BATCH + RELEASE) == sorted(CRASH_POINTS)


@pytest.fixture(scope="module")
def crashing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Two custodians and a requester on their own anvil (each gateway is killed and restarted in turn)."""
    with start_node(ChainKind.ANVIL) as node:
        members = {"health": (1, Role.CUSTODIAN), "transport": (2, Role.REQUESTER), "police": (3, Role.CUSTODIAN)}
        started = start_consortium(node.rpc_url, tmp_path_factory.mktemp("crash"), members)
        try:
            yield started
        finally:
            started.stop()


@pytest.fixture
def consistent(crashing: Consortium) -> Iterator[Consortium]:
    """The consortium, checked after the case: stores and chain agree (see `assert_consistent`)."""
    yield crashing
    assert_consistent(crashing)


def killed_at(agency: Agency, point: str, call: Callable[[], httpx.Response]) -> httpx.Response | None:
    """Restart `agency`'s gateway armed at `point`, make `call`; return its answer (None if it died under it).

    The gateway must have died of SIGKILL (exit -9) by the time the call ends; it is left stopped.
    """
    agency.stop()
    agency.start(env={FAULT_ENV: point})
    try:
        answer: httpx.Response | None = call()
    except httpx.TransportError:  # the gateway died before it answered
        answer = None
    assert agency.process is not None
    try:
        assert agency.process.wait(timeout=30) == -9
    except subprocess.TimeoutExpired:
        agency.stop()
        pytest.fail(f"{agency.name} did not reach {point}; the call answered "
                    f"{'nothing' if answer is None else answer.text[:300]}")
    agency.stop()
    return answer


def key_header(point: str) -> dict[str, str]:
    """Return a fresh Idempotency-Key header for a case."""
    return {"Idempotency-Key": f"crash-{point}-{uuid.uuid4()}"}


def collect(consortium: Consortium, custodian: Agency, subject: str, headers: dict[str, str]) -> httpx.Response:
    """Send POST /v1/records of PAYLOAD about `subject` to `custodian`'s gateway."""
    body = {"subject": subject, "category": CONTACT_TRACE, "payload": PAYLOAD}
    return signed(custodian, consortium.key(custodian), "POST", "/v1/records", body, headers=headers, timeout=30)


def relay_body(consortium: Consortium, subject: LocalAccount, grantee: Agency) -> tuple[Consent, dict[str, Any]]:
    """Return a consent `subject` signed for `grantee` (identified, ONE_TIME) and the POST /v1/consents body."""
    consent = Consent.new(subject=subject.address, grantee=grantee.address, category=CONTACT_TRACE,
                          purpose=EPIDEMIC_CONTROL, identified=True, valid_until=int(_chain_time(consortium)) + 3600)
    signature = sign_consent(consent, subject.key, consortium.ledger.domain())
    return consent, {"consent": consent.to_json(), "signature": "0x" + signature.hex()}


def _chain_time(consortium: Consortium) -> int:
    return int(consortium.ledger.w3.eth.get_block("latest")["timestamp"])


def registered(consortium: Consortium, record: str) -> int:
    """Return how many RecordRegistered events the chain holds for `record`."""
    logs = consortium.ledger.access.events.RecordRegistered().get_logs(
        from_block=consortium.ledger.deployment.deploy_block, argument_filters={"record": bytes.fromhex(record[2:])})
    return len(logs)


def granted(consortium: Consortium, consent: Consent) -> int:
    """Return how many ConsentGranted events the chain holds for `consent`."""
    logs = consortium.ledger.access.events.ConsentGranted().get_logs(
        from_block=consortium.ledger.deployment.deploy_block,
        argument_filters={"consent": consent_id(consent, consortium.ledger.domain())})
    return len(logs)


def uses(consortium: Consortium, consent: Consent) -> int:
    """Return how many uses of `consent` the chain counts."""
    return consortium.ledger.consent_state(consent_id(consent, consortium.ledger.domain()))[1]


def released(consortium: Consortium, custodian: Agency, record: str) -> list[int]:
    """Return the seqs of `record` the custodian's release log holds, one per release."""
    with consortium.store(custodian).engine.connect() as conn:
        return list(conn.scalars(select(releases.c.seq).where(releases.c.record_id == record)))


def assert_consistent(consortium: Consortium) -> None:
    """Assert that stores and chain agree, for every custodian and every record.

    Each record registered on chain once, by the custodian storing it with its ciphertext and DEK, and
    each stored record registered on chain; no outbox row pending or sent; each release logged is of an
    access on chain, to that record at that seq, for the requester it was sealed for, within the limit.
    """
    logs = consortium.ledger.access.events.RecordRegistered().get_logs(
        from_block=consortium.ledger.deployment.deploy_block)
    on_chain = Counter(("0x" + bytes(log["args"]["record"]).hex(), log["args"]["custodian"]) for log in logs)
    assert all(count == 1 for count in on_chain.values()), on_chain
    entries = {(str(log["args"]["record"].hex()), log["args"]["seq"]): log["args"]["requester"]
               for log in consortium.ledger.access.events.AccessRecorded().get_logs(
                   from_block=consortium.ledger.deployment.deploy_block)}
    for name in ("health", "police"):
        custodian = consortium.agencies[name]
        with consortium.store(custodian).engine.connect() as conn:
            stored = conn.execute(select(records.c.record_id, records.c.custodian, records.c.state,
                                         records.c.ciphertext, records.c.wrapped_dek)).all()
            unfinished = conn.execute(select(outbox.c.id, outbox.c.status).where(
                outbox.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENT.value]))).all()
            logged = conn.execute(select(releases.c.record_id, releases.c.seq, releases.c.ordinal,
                                         releases.c.requester)).all()
        assert {(row.record_id, row.custodian) for row in stored} == {
            key for key in on_chain if key[1] == custodian.address}, name
        assert all(row.state == RecordState.REGISTERED.value and row.ciphertext and row.wrapped_dek
                   for row in stored), name
        assert unfinished == [], name
        for row in logged:
            assert entries.get((row.record_id.removeprefix("0x"), row.seq)) == row.requester, row
        ordinals = Counter((row.record_id, row.seq) for row in logged)
        assert all(sorted(r.ordinal for r in logged if (r.record_id, r.seq) == access) == list(range(1, n + 1))
                   for access, n in ordinals.items()), logged


# ---------------------------------------------------------------------- ingest (custodian)


@pytest.mark.parametrize("point", INGEST)
def test_an_ingest_retried_after_a_crash_registers_the_one_record(consistent: Consortium, point: str) -> None:
    """Killed at `point` of POST /v1/records, restarted: the retry answers the first record, registered once,
    and its ciphertext opens for an access."""
    health, transport, subject = consistent.health, consistent.transport, Account.create()
    key = key_header(point)

    assert killed_at(health, point, lambda: collect(consistent, health, subject.address, key)) is None
    first = consistent.store(health).get_record_by_key(health.address, key["Idempotency-Key"])
    assert first is not None  # every point comes after the record and its outbox row committed together
    assert registered(consistent, first.record_id) == ON_CHAIN_AT_CRASH.get(point, 1)

    health.start()
    answer = expect(collect(consistent, health, subject.address, key), 201)
    again = expect(collect(consistent, health, subject.address, key), 201)

    assert answer == again
    assert answer["record"] == first.record_id and answer["state"] == "registered"
    assert registered(consistent, first.record_id) == 1
    consent = consistent.grant(subject, transport, CONTACT_TRACE, identified=True)
    opened = expect(consistent.access(transport, first.record_id, [consent]), 200)
    assert opened["payload"] == PAYLOAD


# ---------------------------------------------------------------------- consent relay (requester)


@pytest.mark.parametrize("point", RELAY)
def test_a_consent_relayed_again_after_a_crash_is_granted_once(consistent: Consortium, point: str) -> None:
    """Killed at `point` of POST /v1/consents, restarted: the same signed consent sent again is granted, once,
    and its one use serves an access."""
    transport, subject = consistent.transport, Account.create()
    record = consistent.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    consent, body = relay_body(consistent, subject, transport)

    def relay() -> httpx.Response:
        return signed(transport, subject.key, "POST", "/v1/consents", body, timeout=30)

    assert killed_at(transport, point, relay) is None
    assert granted(consistent, consent) == ON_CHAIN_AT_CRASH.get(point, 1)

    transport.start()
    answer = relay()
    again = expect(relay(), 200)

    assert answer.status_code == (201 if ON_CHAIN_AT_CRASH.get(point, 1) == 0 else 200)
    name = "0x" + consent_id(consent, consistent.ledger.domain()).hex()
    assert answer.json()["consent"] == again["consent"] == name
    assert answer.json()["status"] == again["status"] == "granted"
    assert granted(consistent, consent) == 1
    assert expect(consistent.access(transport, record, [consent]), 200)["payload"] == PAYLOAD
    assert uses(consistent, consent) == 1


# ---------------------------------------------------------------------- recording an access (requester)


@pytest.mark.parametrize("point", ACCESS)
def test_an_access_retried_after_a_crash_answers_the_one_access_recorded(consistent: Consortium, point: str) -> None:
    """Killed at `point` of POST /v1/access, restarted: the retry answers seq 1; one entry on chain, one consent
    use, nothing released before the retry."""
    transport, subject = consistent.transport, Account.create()
    record = consistent.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    consent = consistent.grant(subject, transport, CONTACT_TRACE, identified=True)  # ONE_TIME: a second use fails
    key = key_header(point)

    def access() -> httpx.Response:
        return consistent.access(transport, record, [consent], headers=key, timeout=60)

    assert killed_at(transport, point, access) is None
    assert len(consistent.accesses(record)) == ON_CHAIN_AT_CRASH.get(point, 1)
    assert released(consistent, consistent.health, record) == []  # nothing left the custodian for it

    transport.start()
    first, again = expect(access(), 200), expect(access(), 200)

    assert first == again  # the same access, entry and disclosure, however often asked
    assert first["seq"] == 1 and first["payload"] == PAYLOAD
    assert [e.seq for e in consistent.accesses(record)] == [1]
    assert uses(consistent, consent) == 1
    assert released(consistent, consistent.health, record) == [1, 1]  # both answers released the only access


def test_a_key_reused_for_another_access_is_refused(consistent: Consortium) -> None:
    """The same Idempotency-Key with a different body is a conflict (409), and records nothing."""
    transport, subject = consistent.transport, Account.create()
    record = consistent.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    other = consistent.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    consent = consistent.grant(subject, transport, CONTACT_TRACE, max_uses=3)
    key = {"Idempotency-Key": f"reuse-{uuid.uuid4()}"}

    expect(consistent.access(transport, record, [consent], headers=key), 200)
    expect(consistent.access(transport, other, [consent], headers=key), 409, "idempotency_conflict")

    assert consistent.accesses(other) == []
    assert uses(consistent, consent) == 1


# ---------------------------------------------------------------------- a batch, mid-way (requester)


@pytest.mark.parametrize("point", MID_BATCH)
def test_a_batch_retried_after_a_crash_mid_batch_answers_every_item_once(consistent: Consortium, point: str) -> None:
    """Killed between the two custodians' key fetches of POST /v1/access/batch, restarted: the retry answers both
    items as accesses seq 1, recorded once each; only the first custodian had released before the retry."""
    transport, police, subject = consistent.transport, consistent.agencies["police"], Account.create()
    at_health = consistent.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    at_police = expect(collect(consistent, police, subject.address, key_header("police")), 201)["record"]
    consents = [consistent.grant(subject, transport, CONTACT_TRACE, identified=True) for _ in range(2)]
    body = {"items": [{"record": record, "purpose": EPIDEMIC_CONTROL, "consents": [consent.to_json()]}
                      for record, consent in zip((at_health, at_police), consents, strict=True)]}
    key = key_header(point)

    def batch() -> httpx.Response:
        return signed(transport, consistent.key(transport), "POST", "/v1/access/batch", body, headers=key)

    assert killed_at(transport, point, batch) is None
    assert [len(consistent.accesses(r)) for r in (at_health, at_police)] == [1, 1]
    assert released(consistent, consistent.health, at_health) == [1]  # the first part was fetched
    assert released(consistent, police, at_police) == []  # the second was not

    transport.start()
    first, again = expect(batch(), 200)["items"], expect(batch(), 200)["items"]

    assert [(item["status"], item["record"], item["seq"], item["payload"]) for item in first] == [
        (200, at_health, 1, PAYLOAD), (200, at_police, 1, PAYLOAD)]
    assert again == first
    assert [[e.seq for e in consistent.accesses(r)] for r in (at_health, at_police)] == [[1], [1]]
    assert [uses(consistent, c) for c in consents] == [1, 1]


# ---------------------------------------------------------------------- key release (custodian)


@pytest.mark.parametrize("point", RELEASE)
def test_an_access_retried_after_the_custodian_crashed_releasing_is_answered(
    consistent: Consortium, point: str,
) -> None:
    """The custodian killed at `point` of a key release: the requester answers 502 and keeps the access; the
    retry after the custodian's restart answers that access (seq 1), recorded once, its consent used once."""
    health, transport, subject = consistent.health, consistent.transport, Account.create()
    record = consistent.ingest(PAYLOAD, category=CONTACT_TRACE, subject=subject.address)
    consent = consistent.grant(subject, transport, CONTACT_TRACE, identified=True)
    key = key_header(point)

    def access() -> httpx.Response:
        return consistent.access(transport, record, [consent], headers=key, timeout=60)

    refused = killed_at(health, point, access)
    assert refused is not None  # the requester lives on and says the custodian did not answer
    expect(refused, 502, "custodian_unavailable")
    assert [e.seq for e in consistent.accesses(record)] == [1]
    logged = [] if point == "release-sealed" else [1]
    assert released(consistent, health, record) == logged  # logged before any answer leaves, never after

    health.start()
    first, again = expect(access(), 200), expect(access(), 200)

    assert first == again  # the same access, entry and disclosure, however often asked
    assert first["seq"] == 1 and first["payload"] == PAYLOAD
    assert [e.seq for e in consistent.accesses(record)] == [1]
    assert uses(consistent, consent) == 1
    assert released(consistent, health, record) == [*logged, 1, 1]


def test_a_protected_release_logged_before_the_crash_is_not_released_again(consistent: Consortium) -> None:
    """A PROTECTED record's key leaves once: logged when the custodian died, its retry is refused, every time, and
    the access stays the one recorded (the requester asks anew, with a new access, to see it)."""
    health, transport, subject = consistent.health, consistent.transport, Account.create()
    record = consistent.ingest(LAB_PAYLOAD, category=LAB_RESULT, subject=subject.address)
    consent = consistent.grant(subject, transport, LAB_RESULT, record=bytes.fromhex(record[2:]))  # one record
    key = key_header("protected")

    def access() -> httpx.Response:
        return consistent.access(transport, record, [consent], headers=key, timeout=60)

    refused = killed_at(health, "release-logged", access)
    assert refused is not None
    expect(refused, 502, "custodian_unavailable")
    health.start()
    first, again = expect(access(), 403, "release_refused"), expect(access(), 403, "release_refused")

    assert first["reason"] == again["reason"] == "protected_released"
    assert [e.seq for e in consistent.accesses(record)] == [1]
    assert uses(consistent, consent) == 1
    assert released(consistent, health, record) == [1]
