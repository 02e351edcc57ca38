"""The release window: an access's key is released only shortly after its block (here health's window is 5 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from consentledger.settings import ENV_PREFIX

from .world import DISTRICT_STATS, Consortium, expect, signed

pytestmark = pytest.mark.process

SHORT_WINDOW = 5


@pytest.fixture(scope="module")
def short_window(consortium: Consortium) -> Iterator[Consortium]:
    """Health's gateway restarted with `release_window` 5 s (an environment override); restarted as before after."""
    health = consortium.health
    health.stop()
    health.start(env={ENV_PREFIX + "RELEASE_WINDOW": str(SHORT_WINDOW)})
    try:
        yield consortium
    finally:
        health.stop()
        health.start()


def test_release_after_the_window_is_refused(short_window: Consortium) -> None:
    """The access's own release goes through; once its block is more than 5 s old, asking for the key again answers
    403 release_refused window_closed, though the access is on chain and one release of three was used."""
    consortium = short_window
    record = consortium.ingest({"district": "South", "cases": 8}, category=DISTRICT_STATS)
    access = expect(consortium.access(consortium.transport, record), 200)
    mined = consortium.ledger.w3.eth.get_block(access["block"])["timestamp"]
    while time.time() <= mined + SHORT_WINDOW + 1:
        time.sleep(0.5)

    response = signed(consortium.health, consortium.key(consortium.transport), "POST",
                      f"/v1/keys/{record}/{access['seq']}", {"block": access["block"]})

    refused = expect(response, 403, "release_refused")
    assert refused["reason"] == "window_closed" and f"within {SHORT_WINDOW} s" in refused["detail"]
