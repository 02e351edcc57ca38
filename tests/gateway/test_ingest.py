"""Collection at the custodian's gateway: the positive list, idempotency, size limits, malformed bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select

from consentledger.signing import sign_request
from consentledger.store.tables import outbox

from .world import CHAIN_ID, CONTACT_TRACE, Consortium, body_bytes, expect, signed

pytestmark = pytest.mark.process

MAX_BODY_BYTES = 2 * 1024 * 1024
"""The gateways' default `max_body_bytes`."""


def record_body(subject: str, **payload: str) -> dict[str, object]:
    """Return a POST /v1/records body for a contact-trace record of `subject`."""
    return {"subject": subject, "category": CONTACT_TRACE, "payload": payload}


def outbox_rows_about(consortium: Consortium, subject: str) -> int:
    """Return how many of health's outbox rows would register a record of `subject`."""
    with consortium.store(consortium.health).engine.connect() as conn:
        return sum(1 for (payload,) in conn.execute(select(outbox.c.payload)) if payload.get("subject") == subject)


def put(consortium: Consortium, body: dict[str, object] | bytes, **options: Any) -> httpx.Response:
    """POST /v1/records at health, signed by health."""
    health = consortium.health
    return signed(health, consortium.key(health), "POST", "/v1/records", body, **options)


def test_field_off_the_positive_list_is_refused_and_nothing_is_stored(consortium: Consortium) -> None:
    """A payload with an unlisted field answers 422 naming the field; no record and no outbox row exist."""
    subject = Account.create().address
    before = consortium.rows(consortium.health)

    answer = expect(put(consortium, record_body(subject, name="Lee", ssn="123-45-6789")), 422, "invalid_payload")

    assert answer["detail"].endswith("'contact-trace': ssn"), answer
    assert consortium.store(consortium.health).records_by_subject(subject) == []
    assert outbox_rows_about(consortium, subject) == 0
    assert consortium.rows(consortium.health) == before


def test_idempotency_key_retry_returns_the_first_record(consortium: Consortium) -> None:
    """A retry with the same Idempotency-Key and body answers the same record id; one row is stored."""
    subject = Account.create().address
    body = record_body(subject, name="Lee", district="North")
    key = {"Idempotency-Key": f"retry-{subject}"}

    first = expect(put(consortium, body, headers=key), 201)
    again = expect(put(consortium, body, headers=key), 201)

    assert again == first
    assert [r.record_id for r in consortium.store(consortium.health).records_by_subject(subject)] == [first["record"]]
    assert outbox_rows_about(consortium, subject) == 1


def test_idempotency_key_reused_for_another_body_conflicts(consortium: Consortium) -> None:
    """The same Idempotency-Key with a different body answers 409 idempotency_conflict and stores nothing."""
    subject = Account.create().address
    key = {"Idempotency-Key": f"conflict-{subject}"}
    first = expect(put(consortium, record_body(subject, district="North"), headers=key), 201)

    expect(put(consortium, record_body(subject, district="South"), headers=key), 409, "idempotency_conflict")

    assert [r.record_id for r in consortium.store(consortium.health).records_by_subject(subject)] == [first["record"]]


def test_declared_body_over_the_limit_is_refused_and_nothing_is_stored(consortium: Consortium) -> None:
    """A body declared larger than max_body_bytes answers 413 and leaves the store untouched."""
    subject = Account.create().address
    before = consortium.rows(consortium.health)
    body = record_body(subject, name="x" * MAX_BODY_BYTES)

    expect(put(consortium, body), 413, "payload_too_large")

    assert consortium.rows(consortium.health) == before


def test_streamed_body_over_the_limit_is_refused_and_nothing_is_stored(consortium: Consortium) -> None:
    """A chunked body (no Content-Length) that grows past max_body_bytes answers 413; nothing is stored."""
    health = consortium.health
    subject = Account.create().address
    before = consortium.rows(health)
    raw = body_bytes(record_body(subject, name="x" * MAX_BODY_BYTES))
    signature = sign_request(consortium.key(health), chain_id=CHAIN_ID, audience=health.address, method="POST",
                             path="/v1/records", body=raw, now=int(time.time()))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start:start + 64 * 1024]

    response = httpx.post(health.url + "/v1/records", content=chunks(), trust_env=False, timeout=60,
                          headers={**signature.headers(), "Content-Type": "application/json"})

    assert "content-length" not in response.request.headers
    expect(response, 413, "payload_too_large")
    assert consortium.rows(health) == before


def test_malformed_source_id_is_refused_and_nothing_is_stored(consortium: Consortium) -> None:
    """A derived_from entry that is no 32-byte hex id answers 422 before anything is stored."""
    body = {**record_body(Account.create().address, district="North"), "derived_from": ["0xzz"]}
    before = consortium.rows(consortium.health)

    assert "derived_from" in expect(put(consortium, body), 422, "invalid_payload")["detail"]

    assert consortium.rows(consortium.health) == before


def test_record_derived_from_an_unknown_source_is_refused_and_nothing_is_stored(consortium: Consortium) -> None:
    """A record derived from a source not on chain answers 403 naming RecordRegistryUnknownRecord; nothing stored."""
    subject = Account.create().address
    body = {**record_body(subject, district="North"), "derived_from": ["0x" + "11" * 32]}
    before = consortium.rows(consortium.health)

    expect(put(consortium, body), 403, "rule_violated", "RecordRegistryUnknownRecord")

    assert consortium.rows(consortium.health) == before


@pytest.mark.parametrize(
    "raw", [b'{"subject": "0x', b"not json", b"[]", b""], ids=["truncated", "text", "array", "empty"]
)
def test_malformed_body_is_refused(consortium: Consortium, raw: bytes) -> None:
    """A body that is not a record object answers 422 invalid_payload and stores nothing."""
    before = consortium.rows(consortium.health)

    expect(put(consortium, raw), 422, "invalid_payload")

    assert consortium.rows(consortium.health) == before
