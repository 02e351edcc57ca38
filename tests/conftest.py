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
