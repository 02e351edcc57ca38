"""Governance reaches the gateways: a suspended organisation can do nothing until it is reinstated."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from consentledger import governance
from consentledger.types import MemberStatus

from .world import DISTRICT_STATS, Consortium, expect

pytestmark = pytest.mark.process

PATIENCE = 6.0
"""Seconds a gateway may take to notice a membership change (cache TTL 5 s; the watcher is faster)."""


def first_answer(ask: Callable[[], httpx.Response], until: Callable[[httpx.Response], bool]) -> httpx.Response:
    """Return the first answer to `ask` that satisfies `until`, asking for up to PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while True:
        response = ask()
        if until(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_suspended_requester_is_refused_until_reinstated(consortium: Consortium) -> None:
    """After governance suspends transport its gateway refuses it (403 forbidden); reinstating restores access."""
    transport = consortium.transport
    record = consortium.ingest({"district": "South", "cases": 7}, category=DISTRICT_STATS)
    expect(consortium.access(transport, record), 200)

    consortium.govern(governance.suspend_member(transport.address))
    try:
        assert consortium.ledger.member(transport.address).status is MemberStatus.SUSPENDED
        refused = first_answer(lambda: consortium.access(transport, record),
                               lambda r: r.status_code == 403 and r.json()["error"] == "forbidden")
        assert "suspended" in expect(refused, 403, "forbidden")["detail"]
        assert [e.seq for e in consortium.accesses(record)] == [1]  # the chain refused every try too
    finally:
        consortium.govern(governance.reinstate_member(transport.address))

    restored = first_answer(lambda: consortium.access(transport, record), lambda r: r.status_code == 200)
    answer = expect(restored, 200)
    assert answer["payload"] == {"district": "South", "cases": 7}
    assert [e.seq for e in consortium.accesses(record)] == [1, 2]
