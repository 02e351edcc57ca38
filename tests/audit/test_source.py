"""Raw chain reads: a node that refuses a large log range is asked for halves; a dead one is not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from consentledger.audit.source import ChainSource
from consentledger.errors import ChainUnavailableError


class FakeNode:
    """Answers eth_getLogs with one log per block, refusing ranges wider than `limit` blocks."""

    def __init__(self, limit: int, down: bool = False) -> None:
        self.limit = limit
        self.down = down
        self.calls: list[tuple[int, int]] = []

    def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        first, last = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        self.calls.append((first, last))
        if self.down:
            raise ConnectionError("connection refused")
        if last - first + 1 > self.limit:
            return {"id": 1, "jsonrpc": "2.0", "error": {"code": -32005, "message": "query returned too many results"}}
        logs = [{"blockNumber": hex(n), "logIndex": "0x0"} for n in range(last, first - 1, -1)]
        return {"id": 1, "jsonrpc": "2.0", "result": logs}


def source(node: FakeNode) -> ChainSource:
    """Return a ChainSource over a fake node (the ledger supplies only addresses and a provider)."""
    ledger = SimpleNamespace(
        consortium=SimpleNamespace(address="0x" + "01" * 20), access=SimpleNamespace(address="0x" + "02" * 20),
        w3=SimpleNamespace(provider=node),
    )
    return ChainSource(ledger)  # type: ignore[arg-type]


def test_a_refused_log_range_is_read_in_halves_and_ordered() -> None:
    """Blocks 0..9 against a node that serves at most 3 blocks come back complete and in order."""
    node = FakeNode(limit=3)
    logs = source(node).logs(0, 9)
    assert [int(log["blockNumber"], 16) for log in logs] == list(range(10))
    assert len(node.calls) > 1


def test_an_unreachable_node_is_not_asked_again_for_each_half() -> None:
    """A transport failure is ChainUnavailableError at once, after a single request."""
    node = FakeNode(limit=100, down=True)
    with pytest.raises(ChainUnavailableError, match="connection refused"):
        source(node).logs(0, 2000)
    assert node.calls == [(0, 2000)]
