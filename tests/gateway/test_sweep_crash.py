"""A sweep killed (SIGKILL) half-way finishes on restart: every expired record shredded and tombstoned once.

Runs on its own anvil, so the chain's clock can jump past the records' retention (`evm_increaseTime`),
which must never happen on the session chain other tests share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import func, select

from consentledger import governance
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV
from consentledger.store import OutboxStatus, RecordState
from consentledger.store.tables import outbox
from consentledger.types import Role, Sensitivity, TombstoneReason

from .lifecycle import tombstones_on_chain
from .world import DISTRICT_STATS, EPIDEMIC_CONTROL, HEALTH, Consortium, start_consortium

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
VISITOR_LOG = 21
HOUR = 3600
EXPIRING, KEPT = 40, 5


@dataclass
class Swept:
    """A custodian whose gateway is stopped, with records past retention (by the chain's clock) and others not."""

    consortium: Consortium
    chain: LocalNode
    expiring: list[str]
    kept: list[str]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """Health on a private anvil: 40 one-hour records and 5 one-month ones collected, the gateway stopped, then
    the chain's clock moved two hours on."""
    chain = start_node(ChainKind.ANVIL)
    try:
        consortium = start_consortium(chain.rpc_url, tmp_path_factory.mktemp("crash"),
                                      {"health": (HEALTH, Role.CUSTODIAN)})
        try:
            consortium.govern(governance.add_category(VISITOR_LOG, "visitor-log", Sensitivity.OPEN, HOUR,
                                                      ("district", "cases"), (), [EPIDEMIC_CONTROL]))
            subject = Account.create().address
            with ThreadPoolExecutor(4) as pool:
                expiring = list(pool.map(
                    lambda n: consortium.ingest({"district": f"d{n}", "cases": n}, category=VISITOR_LOG,
                                                subject=subject), range(EXPIRING)))
                kept = list(pool.map(
                    lambda n: consortium.ingest({"district": f"k{n}", "cases": n}, category=DISTRICT_STATS,
                                                subject=subject), range(KEPT)))
            consortium.health.stop()
            consortium.ledger.w3.provider.make_request("evm_increaseTime", [2 * HOUR])  # type: ignore[arg-type]
            consortium.ledger.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            yield Swept(consortium, chain, expiring, kept)
        finally:
            consortium.stop()
    finally:
        chain.stop()


def _sweep(consortium: Consortium) -> subprocess.Popen[str]:
    config = str(consortium.health.created.config)
    return subprocess.Popen([CLI, "gateway", "sweep", "--config", config, "--batch", "10"],
                            env={**os.environ, PASSWORD_ENV: DEV_PASSWORD}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _tombstones_done(consortium: Consortium) -> int:
    with consortium.store(consortium.health).engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.kind == "tombstone", outbox.c.status == OutboxStatus.DONE.value)) or 0)


def test_sweep_killed_mid_way_finishes_on_restart_with_each_tombstone_once(swept: Swept) -> None:
    """SIGKILL once some tombstones are on chain; the next `gateway sweep` shreds the rest and relays what was
    queued: every expired record shredded and tombstoned RETENTION exactly once, none tombstoned with a live
    key, nothing failed, the unexpired records untouched."""
    consortium, ledger = swept.consortium, swept.consortium.ledger
    first = _sweep(consortium)
    deadline = time.monotonic() + 120
    while _tombstones_done(consortium) < 5 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    at_kill = _tombstones_done(consortium)
    assert first.returncode == -signal.SIGKILL, first.stdout.read() if first.stdout else ""
    assert 5 <= at_kill < EXPIRING, f"the kill came too late to be mid-way: {at_kill} tombstones done"

    second = _sweep(consortium)
    output, _ = second.communicate(timeout=180)
    assert second.returncode == 0, output
    assert "via local" in output and "0 chain writes queued" in output

    store = consortium.store(consortium.health)
    assert store.count_by_status()["failed"] == 0
    for record in swept.expiring:
        stored = store.get_record(record)
        assert stored is not None and stored.state is RecordState.SHREDDED
        assert (stored.wrapped_dek, stored.ciphertext, stored.salt) == (b"", b"", b"")
        writes = [w for w in store.outbox_of_record(record) if w.kind == "tombstone"]
        assert [w.status for w in writes] == [OutboxStatus.DONE], record
        assert tombstones_on_chain(ledger, record) == [TombstoneReason.RETENTION], record
    for record in swept.kept:
        stored = store.get_record(record)
        assert stored is not None and stored.state is RecordState.REGISTERED and stored.wrapped_dek
        assert tombstones_on_chain(ledger, record) == []
    logs = ledger.access.events.RecordTombstoned().get_logs(from_block=ledger.deployment.deploy_block)
    assert len(logs) == EXPIRING
    for log in logs:  # nothing tombstoned on chain while its key still exists in the store
        stored = store.get_record("0x" + bytes(log["args"]["record"]).hex())
        assert stored is not None and stored.state is RecordState.SHREDDED and stored.wrapped_dek == b""
