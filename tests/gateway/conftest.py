"""Gateway fixtures: one consortium of real gateway processes for the whole `tests/gateway` package.

Starting a gateway costs seconds, so health (custodian), transport and police (requesters) serve
every module; they sign with dev accounts 7, 8 and 9, which no other test uses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consentledger.chain.node import LocalNode
from consentledger.types import Role

from .world import HEALTH, POLICE, TRANSPORT, Consortium, start_consortium


@pytest.fixture(scope="package")
def consortium(ganache: LocalNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Health (custodian), transport and police (requesters) with running gateways on the session ganache."""
    members = {
        "health": (HEALTH, Role.CUSTODIAN),
        "transport": (TRANSPORT, Role.REQUESTER),
        "police": (POLICE, Role.REQUESTER),
    }
    started = start_consortium(ganache.rpc_url, tmp_path_factory.mktemp("consortium"), members)
    try:
        yield started
    finally:
        started.stop()
