"""With its chain unreachable a gateway refuses quickly with 503 and writes nothing half-way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from eth_account import Account

from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.types import Role

from .world import DISTRICT_STATS, HEALTH, TRANSPORT, Consortium, expect, signed, start_consortium

pytestmark = pytest.mark.process

PROMPT = 5.0
"""Seconds within which a gateway must answer although its chain is gone."""


@dataclass
class Downed:
    """A consortium whose chain (its own anvil) was stopped after one record was collected."""

    consortium: Consortium
    chain: LocalNode
    record: str


@pytest.fixture(scope="module")
def downed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Downed]:
    """Health and transport gateways on a private anvil, which is stopped once a record is registered."""
    chain = start_node(ChainKind.ANVIL)
    try:
        members = {"health": (HEALTH, Role.CUSTODIAN), "transport": (TRANSPORT, Role.REQUESTER)}
        consortium = start_consortium(chain.rpc_url, tmp_path_factory.mktemp("downed"), members)
        try:
            record = consortium.ingest({"district": "North", "cases": 2}, category=DISTRICT_STATS)
            expect(consortium.access(consortium.transport, record), 200)
            chain.stop()
            yield Downed(consortium, chain, record)
        finally:
            consortium.stop()
    finally:
        chain.stop()


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    """Return the response of `call()` and the seconds it took."""
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_health_answers_503_promptly(downed: Downed) -> None:
    """/v1/health does not hang: it answers 503 chain_unavailable at once."""
    url = downed.consortium.health.url + "/v1/health"

    response, took = timed(lambda: httpx.get(url, trust_env=False, timeout=30))

    expect(response, 503, "chain_unavailable")
    assert took < PROMPT


def test_access_answers_503(downed: Downed) -> None:
    """/v1/access answers 503 chain_unavailable (nothing can be recorded, so no key is released)."""
    response, took = timed(lambda: downed.consortium.access(downed.consortium.transport, downed.record))

    answer = expect(response, 503, "chain_unavailable")
    assert "payload" not in answer
    assert took < PROMPT


def test_collection_answers_503_and_stores_nothing(downed: Downed) -> None:
    """/v1/records answers 503 before storing anything: no record row and no outbox row."""
    consortium = downed.consortium
    health = consortium.health
    subject = Account.create().address
    body = {"subject": subject, "category": DISTRICT_STATS, "payload": {"district": "South", "cases": 1}}
    before = consortium.rows(health)

    response, took = timed(lambda: signed(health, consortium.key(health), "POST", "/v1/records", body))

    expect(response, 503, "chain_unavailable")
    assert took < PROMPT
    assert consortium.rows(health) == before == (1, 1)
    assert consortium.store(health).records_by_subject(subject) == []
    assert consortium.store(health).count_by_status() == {"pending": 0, "sent": 0, "done": 1, "failed": 0}
