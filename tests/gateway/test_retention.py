"""Retention: the custodian's sweeper shreds what the chain says is past retain-until, then tombstones it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from consentledger import governance
from consentledger.client import GatewayClient
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV
from consentledger.store import OutboxStatus, RecordState
from consentledger.types import Sensitivity, TombstoneReason

from .lifecycle import eventually, get_record, tombstone_txs, tombstones_on_chain
from .world import DISTRICT_STATS, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

VISITOR_LOG = 21
RETENTION = 8
"""Seconds a visitor-log record is kept: long enough to collect and access it, short enough to wait for."""
CLI = str(Path(sys.executable).parent / "consentledger")


def test_sweep_shreds_only_expired_records_once_a_block_is_past_retain_until(consortium: Consortium) -> None:
    """Past retain-until by the local clock nothing happens; once a block is past it the upkeep sweep shreds the
    expired records (not the others), tombstones them RETENTION once, and the chain and the custodian refuse them."""
    health, police, ledger = consortium.health, consortium.police, consortium.ledger
    consortium.govern(governance.add_category(VISITOR_LOG, "visitor-log", Sensitivity.OPEN, RETENTION,
                                              ("district", "cases"), (), [EPIDEMIC_CONTROL]))
    subject = Account.create()
    kept = consortium.ingest({"district": "East", "cases": 2}, category=DISTRICT_STATS, subject=subject.address)
    expiring = [consortium.ingest({"district": d, "cases": 1}, category=VISITOR_LOG, subject=subject.address)
                for d in ("North", "South")]
    accessed = expect(signed(police, consortium.key(police), "POST", "/v1/access",
                             {"record": expiring[0], "purpose": EPIDEMIC_CONTROL, "consents": []}), 200)
    retain_until = max(ledger.record(bytes.fromhex(r[2:])).retain_until for r in expiring)

    assert ledger.w3.eth.get_block("latest")["timestamp"] <= retain_until
    time.sleep(max(0.0, retain_until + 1.5 - time.time()))  # past by the clock, but no block since: still live
    time.sleep(2.5)  # two sweeps of the health gateway
    assert ledger.w3.eth.get_block("latest")["timestamp"] <= retain_until  # nothing mined meanwhile
    for record in expiring:
        assert expect(get_record(consortium, record), 200)["state"] == "registered"

    later = consortium.ingest({"district": "West", "cases": 3}, category=DISTRICT_STATS)  # a block past retain-until
    for record in expiring:
        gone = eventually(lambda r=record: get_record(consortium, r), lambda a: a.status_code == 410,
                          what=f"{record} swept")
        refusal = expect(gone, 410, "record_destroyed")
        assert (refusal["record"], refusal["reason"]) == (record, "retention")
        eventually(lambda r=record: tombstones_on_chain(ledger, r), lambda t: t == [TombstoneReason.RETENTION],
                   what=f"{record} tombstoned")

    store = consortium.store(health)
    for record in expiring:
        shredded = store.get_record(record)
        assert shredded is not None and shredded.state is RecordState.SHREDDED
        assert (shredded.wrapped_dek, shredded.ciphertext, shredded.salt) == (b"", b"", b"")
        writes = [w for w in store.outbox_of_record(record) if w.kind == "tombstone"]
        assert [(w.status, w.payload["reason"]) for w in writes] == [(OutboxStatus.DONE, TombstoneReason.RETENTION)]
    for record in (kept, later):
        assert expect(get_record(consortium, record), 200)["state"] == "registered"
        assert tombstones_on_chain(ledger, record) == []

    expect(signed(police, consortium.key(police), "POST", "/v1/access",
                  {"record": expiring[1], "purpose": EPIDEMIC_CONTROL, "consents": []}),
           403, "rule_violated", "RecordRegistryRecordTombstoned")
    release = signed(health, consortium.key(police), "POST", f"/v1/keys/{expiring[0]}/{accessed['seq']}",
                     {"block": accessed["block"]})
    refused = expect(release, 410, "record_destroyed")
    assert (refused["reason"], refused["tombstone"]["status"]) == ("retention", "on chain")
    assert refused["tombstone"]["tx_hash"] == tombstone_txs(ledger, expiring[0])[0][0]

    with GatewayClient(health.url, subject) as client:
        history = client.my_history()
    listed = {t["record"]: t for t in history["tombstones"]}
    assert set(listed) == set(expiring)
    for record in expiring:
        assert listed[record]["reason"] == "retention"
        assert (listed[record]["tx_hash"], listed[record]["block"]) == tombstone_txs(ledger, record)[0]


def test_gateway_sweep_command_asks_the_running_gateway(consortium: Consortium) -> None:
    """`consentledger gateway sweep --config` with the gateway up is answered by that gateway (its own locks)."""
    env = {**os.environ, PASSWORD_ENV: DEV_PASSWORD}
    config = str(consortium.health.created.config)

    done = subprocess.run([CLI, "gateway", "sweep", "--config", config, "--json"], env=env, capture_output=True,
                          text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["via"] == consortium.health.url and report["swept"] is True
    assert report["block"] >= 1 and report["queued"] == 0
    summary = subprocess.run([CLI, "gateway", "sweep", "--config", config], env=env, capture_output=True,
                             text=True, timeout=120)
    assert summary.returncode == 0 and f"via {consortium.health.url}" in summary.stdout, summary.stderr


def test_only_the_custodian_itself_may_trigger_a_sweep(consortium: Consortium) -> None:
    """POST /v1/sweep signed by another member answers 403."""
    refused = signed(consortium.health, consortium.key(consortium.police), "POST", "/v1/sweep", {})

    expect(refused, 403, "forbidden")
