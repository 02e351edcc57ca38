"""Contract-test fixtures: one deployed session chain, and a fresh view of it per test.

See `world.py` for what the session sets up. The `net` fixture reverts the chain to the snapshot
taken after setup before and after each test and builds a fresh `Ledger`, so its nonce allocator
never holds counters from a reverted chain.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .world import Net, Session, build_session


@pytest.fixture(scope="session")
def session() -> Session:
    """The session chain: deployed (2-of-3 admins), catalog and members governed in."""
    return build_session()


@pytest.fixture
def net(session: Session) -> Iterator[Net]:
    """A fresh view of the session chain as it was after setup; reverted again afterwards."""
    session.w3.testing.revert(session.snapshot)
    yield Net(session)
    session.w3.testing.revert(session.snapshot)
