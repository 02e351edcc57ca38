"""Session-wide fixtures: one real ganache process shared by every test that needs a JSON-RPC chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consentledger.chain.node import ChainKind, LocalNode, start_node


@pytest.fixture(scope="session")
def ganache() -> Iterator[LocalNode]:
    """A real ganache 7.9.2 process (shanghai) with 20 funded dev accounts, for the whole session."""
    with start_node(ChainKind.GANACHE, accounts=20) as node:
        yield node


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order real-process tests first, the end-to-end stories at the top of tests/ before them.

    `make test` hands whole modules to two workers in this order, so the longest ones start first
    and the quick in-process modules fill the end: both workers finish at about the same time.
    """
    with_processes = {item.path for item in items if item.get_closest_marker("process") is not None}
    # Whole modules move, never single tests: a module's fixtures are set up once.
    items.sort(key=lambda item: (item.path not in with_processes, len(item.path.parts)))
