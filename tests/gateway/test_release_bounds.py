"""Releases bound to the trace: only while the consents hold, a few times per access (PROTECTED once), each logged,
and verify flags a release the chain does not back."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import delete

from consentledger.client import GatewayClient
from consentledger.consent import Consent, consent_id, sign_revocation
from consentledger.settings import MAX_RELEASES, RELEASE_WINDOW
from consentledger.store import ReleaseLog
from consentledger.store.tables import releases

from .conftest import Audited
from .world import CONTACT_TRACE, DISTRICT_STATS, EPIDEMIC_CONTROL, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process


def key_request(
    consortium: Consortium, access: dict[str, Any], consents: Sequence[Consent] = (), **body: Any
) -> httpx.Response:
    """Ask health (as transport) for the release of `access` again, sending `consents`' terms."""
    transport = consortium.transport
    return signed(consortium.health, consortium.key(transport), "POST", f"/v1/keys/{access['record']}/{access['seq']}",
                  {"block": access["block"], "consents": [c.to_json() for c in consents], **body})


def open_access(consortium: Consortium) -> dict[str, Any]:
    """Transport's answer to its access of a fresh OPEN record (released once by the access itself)."""
    record = consortium.ingest({"district": "East", "cases": 3}, category=DISTRICT_STATS)
    return expect(consortium.access(consortium.transport, record), 200)


def logged(consortium: Consortium, access: dict[str, Any]) -> int:
    """Return how many releases of `access` health's release log holds."""
    return ReleaseLog(consortium.store(consortium.health).engine).count(str(access["record"]), int(access["seq"]))


def test_key_requests_beyond_the_limit_are_refused(consortium: Consortium) -> None:
    """After the access's own release, two more are allowed (max_releases 3); the fourth answers 403
    release_refused limit_reached, and the log holds exactly three releases."""
    access = open_access(consortium)

    for _ in range(MAX_RELEASES - 1):
        expect(key_request(consortium, access), 200)
    refused = expect(key_request(consortium, access), 403, "release_refused")

    assert (refused["reason"], refused["record"], refused["seq"]) == ("limit_reached", access["record"], access["seq"])
    assert f"already released {MAX_RELEASES} times" in refused["detail"]
    assert logged(consortium, access) == MAX_RELEASES


def test_concurrent_key_requests_never_exceed_the_limit(consortium: Consortium) -> None:
    """Eight key requests for one access at once, after its own release: exactly two get the key, six are refused
    limit_reached, and the log holds three releases."""
    access = open_access(consortium)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: key_request(consortium, access), range(8)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * (MAX_RELEASES - 1) + [403] * (9 - MAX_RELEASES)
    assert {a.json()["reason"] for a in answers if a.status_code == 403} == {"limit_reached"}
    assert logged(consortium, access) == MAX_RELEASES


def test_a_protected_record_is_released_once(consortium: Consortium) -> None:
    """A PROTECTED lab result's access is released to the requester once ("use": "immediate"); asking again for
    the same access answers 403 release_refused protected_released."""
    alice = Account.create()
    record = consortium.ingest({"test": "pcr", "result": "negative"}, category=LAB_RESULT, subject=alice.address)
    consent = consortium.grant(alice, consortium.transport, LAB_RESULT, record=bytes.fromhex(record[2:]), max_uses=2)
    access = expect(consortium.access(consortium.transport, record, [consent]), 200)
    assert access["use"] == "immediate"

    refused = expect(key_request(consortium, access, [consent]), 403, "release_refused")

    assert refused["reason"] == "protected_released" and "already released once" in refused["detail"]
    assert logged(consortium, access) == 1


def revoke(consortium: Consortium, subject: Any, consent: Consent) -> None:
    """Have `subject` revoke `consent` through transport's gateway (its signed EIP-712 revocation)."""
    domain = consortium.ledger.domain()
    signature = sign_revocation(consent_id(consent, domain), subject.key, domain)
    body = {"consent": consent.to_json(), "signature": "0x" + signature.hex()}
    expect(signed(consortium.transport, subject.key, "POST", "/v1/consents/revoke", body), 200)


def test_release_after_the_subject_revokes_is_refused(consortium: Consortium) -> None:
    """A second release of a contact-trace access goes through while bob's consent stands; once bob revokes it
    (REVOKED on chain) the next key request answers 403 release_refused consent_revoked."""
    bob = Account.create()
    record = consortium.ingest({"name": "Bo", "phone": "555-0100", "district": "East"}, category=CONTACT_TRACE,
                               subject=bob.address)
    consent = consortium.grant(bob, consortium.transport, CONTACT_TRACE)
    access = expect(consortium.access(consortium.transport, record, [consent]), 200)
    expect(key_request(consortium, access, [consent]), 200)

    revoke(consortium, bob, consent)
    refused = expect(key_request(consortium, access, [consent]), 403, "release_refused")

    assert refused["reason"] == "consent_revoked" and "revoked by its subject" in refused["detail"]
    assert logged(consortium, access) == 2


def test_release_after_the_consent_expires_is_refused(consortium: Consortium) -> None:
    """A consent valid for a few seconds covers the access; once past its validUntil (by the chain's clock or this
    machine's), a key request for that access answers 403 release_refused consent_expired."""
    bob = Account.create()
    record = consortium.ingest({"name": "Bo", "phone": "555-0101", "district": "West"}, category=CONTACT_TRACE,
                               subject=bob.address)
    # The session ganache's clock may run ahead of this machine's (other tests move it with evm_increaseTime),
    # and the chain judges validUntil by its own clock: take the later of the two.
    now = max(int(time.time()), consortium.ledger.latest_block_time())
    consent = consortium.grant(bob, consortium.transport, CONTACT_TRACE, valid_until=now + 12)
    access = expect(consortium.access(consortium.transport, record, [consent]), 200)
    while max(time.time(), consortium.ledger.latest_block_time()) <= consent.valid_until + 1:
        time.sleep(0.5)
        consortium.ledger.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    refused = expect(key_request(consortium, access, [consent]), 403, "release_refused")

    assert refused["reason"] == "consent_expired"


@pytest.mark.parametrize("sent", ["none", "another"])
def test_a_key_request_must_send_the_consents_the_access_presented(consortium: Consortium, sent: str) -> None:
    """Without the consent's terms, or with another consent's, the custodian cannot tie the request to the entry's
    consent reference: 403 release_refused consents_mismatch."""
    bob = Account.create()
    record = consortium.ingest({"name": "Bo", "phone": "555-0102", "district": "East"}, category=CONTACT_TRACE,
                               subject=bob.address)
    consent = consortium.grant(bob, consortium.transport, CONTACT_TRACE)
    other = consortium.grant(bob, consortium.transport, CONTACT_TRACE, nonce=7)
    access = expect(consortium.access(consortium.transport, record, [consent]), 200)

    refused = expect(key_request(consortium, access, [] if sent == "none" else [other]), 403, "release_refused")

    assert refused["reason"] == "consents_mismatch"


def test_each_release_is_logged_with_what_was_withheld(consortium: Consortium) -> None:
    """An unidentified contact-trace access with pseudonyms: the log holds one release to transport for that access
    (block, tx), the consent checked, name and phone withheld by pseudonymising, use standard."""
    bob = Account.create()
    record = consortium.ingest({"name": "Bo", "phone": "555-0103", "district": "North"}, category=CONTACT_TRACE,
                               subject=bob.address)
    consent = consortium.grant(bob, consortium.transport, CONTACT_TRACE)
    body = {"record": record, "purpose": EPIDEMIC_CONTROL, "consents": [consent.to_json()],
            "withhold": "pseudonymise"}
    before = datetime.now(UTC)
    access = expect(signed(consortium.transport, consortium.key(consortium.transport), "POST", "/v1/access", body),
                    200)

    (release,) = ReleaseLog(consortium.store(consortium.health).engine).of_access(record, access["seq"])

    assert (release.requester, release.access_block, release.access_tx) == (
        consortium.transport.address, access["block"], access["tx"])
    assert release.consents == ("0x" + consent_id(consent, consortium.ledger.domain()).hex(),)
    assert (release.withheld, release.withholding, release.use, release.ordinal) == (
        ("name", "phone"), "pseudonymise", "standard", 1)
    assert release.released_at is not None and release.released_at >= before.replace(microsecond=0)


def test_an_open_release_logs_no_consent_and_nothing_withheld(consortium: Consortium) -> None:
    """An OPEN record's access names no consent: its release checks none, withholds nothing (mode none)."""
    access = open_access(consortium)

    (release,) = ReleaseLog(consortium.store(consortium.health).engine).of_access(access["record"], access["seq"])

    assert (release.consents, release.withheld, release.withholding) == ((), (), "none")


@pytest.fixture
def planted(consortium: Consortium) -> Iterator[dict[str, dict[str, Any]]]:
    """Rows written into health's release log behind its gateway's back (removed afterwards): a release for an
    access that is not on chain, one of a real access long after its block, and a second of a PROTECTED access."""
    alice = Account.create()
    lab = consortium.ingest({"test": "pcr", "result": "positive"}, category=LAB_RESULT, subject=alice.address)
    consent = consortium.grant(alice, consortium.transport, LAB_RESULT, record=bytes.fromhex(lab[2:]))
    protected = expect(consortium.access(consortium.transport, lab, [consent]), 200)
    late = open_access(consortium)
    block = consortium.ledger.w3.eth.get_block(late["block"])
    ghost = {"record": "0x" + "5e" * 32, "seq": 1, "block": late["block"], "tx": "0x" + "77" * 32}
    rows = {"ghost": ghost, "late": late, "protected": protected}

    def row(access: dict[str, Any], ordinal: int, released_at: float) -> dict[str, Any]:
        return {"record_id": access["record"], "seq": access["seq"], "ordinal": ordinal,
                "requester": consortium.transport.address, "access_block": access["block"], "access_tx": access["tx"],
                "access_time": int(block["timestamp"]), "consents": [], "withheld": [], "withholding": "none",
                "use": "standard", "released_at": datetime.fromtimestamp(released_at, UTC)}

    engine = consortium.store(consortium.health).engine
    with engine.begin() as conn:
        conn.execute(releases.insert(), [
            row(ghost, 1, block["timestamp"]),
            row(late, 90, block["timestamp"] + RELEASE_WINDOW + 60),
            row(protected, 2, time.time()),
        ])
    try:
        yield rows
    finally:
        with engine.begin() as conn:
            conn.execute(delete(releases).where(
                (releases.c.record_id == ghost["record"]) | (releases.c.ordinal == 90)
                | ((releases.c.record_id == protected["record"]) & (releases.c.ordinal == 2))
            ))


def test_verify_flags_releases_the_chain_does_not_back(
    consortium: Consortium, audited: Audited, planted: dict[str, dict[str, Any]]
) -> None:
    """GET /v1/audit/verify reports the planted rows: release_without_access for the access not on chain,
    release_outside_window for the late one, release_over_limit for the PROTECTED record's second release."""
    with GatewayClient(consortium.health.url, audited.auditor) as auditor:
        report = auditor.audit_verify()

    found = {(d["kind"], d["record"], d["seq"]) for d in report["discrepancies"] if d["kind"].startswith("release_")}
    assert found == {
        ("release_without_access", planted["ghost"]["record"], 1),
        ("release_outside_window", planted["late"]["record"], planted["late"]["seq"]),
        ("release_over_limit", planted["protected"]["record"], planted["protected"]["seq"]),
    }
    assert report["releases"] >= 3 and not report["ok"]


def test_the_requesters_gateway_passes_the_custodians_refusal_on(consortium: Consortium) -> None:
    """When the custodian refuses the release of a new access (here its count was spent by rows planted in its log
    before the access), transport's POST /v1/access answers 403 release_refused with the custodian's reason and
    the access's record and seq, without payload; the access itself is on chain."""
    record = consortium.ingest({"district": "West", "cases": 5}, category=DISTRICT_STATS)
    engine = consortium.store(consortium.health).engine
    spent = [{"record_id": record, "seq": 1, "ordinal": n, "requester": consortium.transport.address,
              "access_block": 0, "access_tx": "0x" + "00" * 32, "access_time": 0, "consents": [], "withheld": [],
              "withholding": "none", "use": "standard", "released_at": datetime.now(UTC)}
             for n in range(1, MAX_RELEASES + 1)]
    with engine.begin() as conn:
        conn.execute(releases.insert(), spent)
    try:
        refused = expect(consortium.access(consortium.transport, record), 403, "release_refused")
    finally:
        with engine.begin() as conn:
            conn.execute(delete(releases).where(releases.c.record_id == record))

    assert (refused["reason"], refused["record"], refused["seq"]) == ("limit_reached", record, 1)
    assert refused["detail"].startswith("the custodian refused the release: ") and "payload" not in refused
    assert [e.seq for e in consortium.accesses(record)] == [1]


def test_an_auditor_sees_each_access_with_its_releases(consortium: Consortium, audited: Audited) -> None:
    """GET /v1/audit/accesses at the custodian lists, beside each access, its releases: to whom, when, the consent
    checked, what was withheld and how, the use."""
    bob = Account.create()
    record = consortium.ingest({"name": "Bo", "phone": "555-0104", "district": "South"}, category=CONTACT_TRACE,
                               subject=bob.address)
    consent = consortium.grant(bob, consortium.transport, CONTACT_TRACE)
    access = expect(consortium.access(consortium.transport, record, [consent]), 200)
    expect(key_request(consortium, access, [consent], withhold="pseudonymise"), 200)

    with GatewayClient(consortium.health.url, audited.auditor) as auditor:
        (item,) = auditor.audit_accesses(record=record)["items"]

    cid = "0x" + consent_id(consent, consortium.ledger.domain()).hex()
    assert [(r["ordinal"], r["requester"], r["consents"], r["withheld"], r["withholding"], r["use"])
            for r in item["releases"]] == [
        (1, consortium.transport.address, [cid], ["name", "phone"], "remove", "standard"),
        (2, consortium.transport.address, [cid], ["name", "phone"], "pseudonymise", "standard"),
    ]
    assert all(r["released_at"] for r in item["releases"])
