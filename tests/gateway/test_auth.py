"""Who may call: signed-request verification, replay refusal, membership, roles and own-organisation checks."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from eth_account import Account

from consentledger.signing import HEADER_SIGNATURE, HEADER_SIGNER

from .world import CONTACT_TRACE, DISTRICT_STATS, Consortium, body_bytes, expect, signed

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def record(consortium: Consortium) -> str:
    """An OPEN district-stats record held by health."""
    return consortium.ingest({"district": "North", "cases": 3}, category=DISTRICT_STATS)


def read_record(consortium: Consortium, record: str, **forgery: Any) -> httpx.Response:
    """GET /v1/records/{record} at health, signed by health and forged by `forgery`."""
    health = consortium.health
    return signed(health, consortium.key(health), "GET", f"/v1/records/{record}", **forgery)


def test_signed_request_by_the_own_org_is_accepted(consortium: Consortium, record: str) -> None:
    """The baseline the refusals below forge: health reading its own record's metadata gets 200."""
    assert expect(read_record(consortium, record), 200)["record"] == record


def test_unsigned_request_is_refused(consortium: Consortium, record: str) -> None:
    """A request without the signature headers answers 401 unauthenticated."""
    response = httpx.get(consortium.health.url + f"/v1/records/{record}", trust_env=False, timeout=30)

    assert "X-CL-Signature" in expect(response, 401, "unauthenticated")["detail"]


def test_garbage_signature_is_refused(consortium: Consortium, record: str) -> None:
    """A signature header that is no signature of the request answers 401."""
    expect(read_record(consortium, record, headers={HEADER_SIGNATURE: "0x" + "1b" * 65}), 401, "unauthenticated")


def test_signature_by_someone_else_than_the_named_signer_is_refused(consortium: Consortium, record: str) -> None:
    """Police's signature presented as health's answers 401."""
    health = consortium.health
    response = signed(health, consortium.key(consortium.police), "GET", f"/v1/records/{record}",
                      headers={HEADER_SIGNER: health.address})

    expect(response, 401, "unauthenticated")


def test_tampered_body_is_refused(consortium: Consortium) -> None:
    """A body other than the signed one answers 401 and stores nothing."""
    health = consortium.health
    body = {"subject": Account.create().address, "category": CONTACT_TRACE, "payload": {"district": "North"}}
    before = consortium.rows(health)

    tampered = {**body, "payload": {"district": "South"}}

    response = signed(health, consortium.key(health), "POST", "/v1/records", body, sent_body=body_bytes(tampered))

    expect(response, 401, "unauthenticated")
    assert consortium.rows(health) == before


def test_stale_timestamp_is_refused(consortium: Consortium, record: str) -> None:
    """A request signed two minutes ago (outside the ±60 s window) answers 401."""
    answer = expect(read_record(consortium, record, timestamp=int(time.time()) - 120), 401, "unauthenticated")

    assert "window" in answer["detail"]


def test_request_signed_for_another_gateway_is_refused(consortium: Consortium, record: str) -> None:
    """A request whose signed audience is transport answers 401 at health."""
    answer = expect(read_record(consortium, record, audience=consortium.transport.address), 401, "unauthenticated")

    assert "another gateway" in answer["detail"]


def test_replayed_request_is_refused_even_after_the_gateway_restarts(consortium: Consortium, record: str) -> None:
    """The same signed request sent twice answers 409 the second time, and still after a restart (nonces persist)."""
    first = read_record(consortium, record)
    expect(first, 200)

    expect(read_record(consortium, record, reuse=first), 409, "replayed_request")
    consortium.health.stop()
    consortium.health.start()
    expect(read_record(consortium, record, reuse=first), 409, "replayed_request")


def test_non_member_is_refused(consortium: Consortium, record: str) -> None:
    """A correctly signed request by an account that is no member answers 403 forbidden."""
    outsider = Account.create()

    answer = expect(signed(consortium.health, outsider.key, "POST", f"/v1/keys/{record}/1", {"block": 1}), 403,
                    "forbidden")

    assert "not a member" in answer["detail"]


def test_requester_cannot_collect_records(consortium: Consortium) -> None:
    """Transport (REQUESTER only) posting /v1/records to its own gateway answers 403 and stores nothing."""
    transport = consortium.transport
    body = {"subject": Account.create().address, "category": CONTACT_TRACE, "payload": {"district": "North"}}

    answer = expect(signed(transport, consortium.key(transport), "POST", "/v1/records", body), 403, "forbidden")

    assert "custodian" in answer["detail"]
    assert consortium.rows(transport) == (0, 0)


def test_another_org_cannot_collect_at_the_custodians_gateway(consortium: Consortium) -> None:
    """Transport posting /v1/records to health's gateway answers 403: only health's own org may."""
    body = {"subject": Account.create().address, "category": CONTACT_TRACE, "payload": {"district": "North"}}
    before = consortium.rows(consortium.health)

    response = signed(consortium.health, consortium.key(consortium.transport), "POST", "/v1/records", body)

    assert "not a registered client of this agency" in expect(response, 403, "forbidden")["detail"]
    assert consortium.rows(consortium.health) == before


def test_requester_cannot_use_another_orgs_access_endpoint(consortium: Consortium, record: str) -> None:
    """Police calling transport's /v1/access answers 403 and records no access on chain."""
    body = {"record": record, "purpose": 1, "consents": []}

    response = signed(consortium.transport, consortium.key(consortium.police), "POST", "/v1/access", body)

    assert "not a registered client of this agency" in expect(response, 403, "forbidden")["detail"]
    assert consortium.accesses(record) == []


def test_a_percent_escaped_path_is_verified_as_it_was_sent(consortium: Consortium) -> None:
    """A path with percent-escapes is checked against the bytes signed, not its decoded form: 404, not 401."""
    response = signed(consortium.health, consortium.key(consortium.health), "GET", "/v1/records/no%20such")

    expect(response, 404, "not_found")

