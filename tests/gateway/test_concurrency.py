"""Many accesses at once through one requester gateway: each answered, each on chain, no nonce ever reused."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from .world import DISTRICT_STATS, Consortium

pytestmark = pytest.mark.process

ACCESSES = 200
RECORDS = 4
WORKERS = 32


def test_parallel_accesses_through_one_gateway_all_succeed_and_are_chained(consortium: Consortium) -> None:
    """200 concurrent /v1/access calls through transport all answer 200; the chain holds seqs 1..n per record."""
    transport = consortium.transport
    payloads = {consortium.ingest(p, category=DISTRICT_STATS): p
                for p in ({"district": f"D{i}", "cases": i} for i in range(RECORDS))}
    wanted = [list(payloads)[i % RECORDS] for i in range(ACCESSES)]
    w3 = consortium.ledger.w3

    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        responses = list(pool.map(lambda record: consortium.access(transport, record, timeout=120), wanted))
    wall = time.monotonic() - started
    print(f"\n{ACCESSES} parallel accesses with {WORKERS} workers: {wall:.1f} s ({ACCESSES / wall:.1f}/s)")

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: ACCESSES}, [r.text[:300] for r in responses if r.status_code != 200][:5]
    for record, response in zip(wanted, responses, strict=True):
        assert response.json()["record"] == record
        assert response.json()["payload"] == payloads[record]
    per_record = ACCESSES // RECORDS
    for record in payloads:
        entries = consortium.accesses(record)
        assert [e.seq for e in entries] == list(range(1, per_record + 1))
        assert {e.requester for e in entries} == {transport.address}
        assert sorted(r.json()["seq"] for r, rec in zip(responses, wanted, strict=True) if rec == record) == (
            list(range(1, per_record + 1))
        )
    assert w3.eth.get_transaction_count(transport.address, "pending") == w3.eth.get_transaction_count(
        transport.address, "latest"
    )
