"""Offline receipts fetched from a gateway: the subject's history names them, the parties get them, others do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from consentledger import governance
from consentledger.client import GatewayClient
from consentledger.crypto.keys import new_keystore
from consentledger.errors import GatewayError
from consentledger.receipts.receipt import Receipt
from consentledger.receipts.verify import verify_receipt
from consentledger.types import Role

from .world import CONTACT_TRACE, Consortium, expect, signed

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")


def _accessed(consortium: Consortium) -> tuple[Account, str]:
    """A record of a new subject, accessed once by transport under the subject's consent."""
    subject, record, _ = _access_answer(consortium)
    return subject, record


def _access_answer(consortium: Consortium) -> tuple[Account, str, dict[str, Any]]:
    subject = Account.create()
    record = consortium.ingest({"name": "Ada", "phone": "555-0142", "district": "South"}, category=CONTACT_TRACE,
                               subject=subject.address)
    first, second = (consortium.grant(subject, consortium.transport, CONTACT_TRACE) for _ in range(2))
    expect(consortium.access(consortium.transport, record, [first]), 200)
    return subject, record, expect(consortium.access(consortium.transport, record, [second]), 200)


def test_the_requesters_answer_carries_a_receipt_of_its_access_that_verifies_offline(consortium: Consortium) -> None:
    """POST /v1/access answers with the receipt of the access it recorded (here the second, so `previous` is the
    first's head), which verifies against the chain's block hash."""
    _, record, answer = _access_answer(consortium)
    receipt = Receipt.from_json(answer["receipt"])
    assert (receipt.seq, receipt.block_number, "0x" + receipt.record.hex()) == (answer["seq"], answer["block"], record)
    assert receipt.previous == consortium.accesses(record)[0].head
    trusted = bytes(consortium.ledger.w3.eth.get_block(receipt.block_number)["hash"])
    assert verify_receipt(receipt, block_hash=trusted).valid


def test_the_subject_history_names_each_receipt_and_the_subject_gets_one_that_verifies_offline(
        consortium: Consortium) -> None:
    """The history's item carries the receipt's path; the subject fetches it from any member gateway; it verifies
    against the block hash the chain gives, and with one entry field altered it does not."""
    subject, record = _accessed(consortium)
    with GatewayClient(consortium.transport.url, subject) as client:
        item = client.my_history()["items"][0]
        assert item["receipt"] == f"/v1/receipts/{record}/1" and item["basis"] == "consent"
        fetched = client.receipt(record, 1)
    receipt = Receipt.from_json(fetched)
    trusted = bytes(consortium.ledger.w3.eth.get_block(receipt.block_number)["hash"])
    assert verify_receipt(receipt, block_hash=trusted).valid
    fetched["entries"][0]["purpose"] = 2
    altered = verify_receipt(Receipt.from_json(fetched), block_hash=trusted)
    assert not altered.valid and "head" in altered.reason


def test_the_requester_custodian_and_an_auditor_get_the_receipt_and_nobody_else(consortium: Consortium) -> None:
    """Transport (the requester), health (the custodian) and an ACTIVE auditor get it (200); a stranger, another
    requester and another subject get 404, as for an access that does not exist."""
    _, record = _accessed(consortium)
    path = f"/v1/receipts/{record}/1"
    for agency in (consortium.transport, consortium.health):
        answer = expect(signed(agency, consortium.key(agency), "GET", path), 200)
        assert answer["record"] == record and answer["entries"][0]["requester"] == consortium.transport.address
    auditor = Account.create()
    consortium.govern(governance.admit_member(auditor.address, Role.AUDITOR, "receipt auditor"))
    expect(signed(consortium.health, bytes(auditor.key), "GET", path), 200)
    for key in (bytes(Account.create().key), consortium.key(consortium.police)):
        expect(signed(consortium.health, key, "GET", path), 404, "not_found")
    expect(signed(consortium.health, consortium.key(consortium.transport), "GET", f"/v1/receipts/{record}/3"),
           404, "not_found")
    expect(signed(consortium.health, consortium.key(consortium.transport), "GET", f"/v1/receipts/0x{'ab' * 32}/1"),
           404, "not_found")


def test_the_subject_saves_a_receipt_with_the_cli_and_verifies_it_with_no_gateway(
        consortium: Consortium, tmp_path: Path) -> None:
    """`consentledger subject receipt` writes the file; `consentledger receipt verify` accepts it (exit 0) and
    refuses it once its block hash is another (exit 9)."""
    subject, record = _accessed(consortium)
    keystore = tmp_path / "subject.json"
    new_keystore(keystore, "pw", account=subject)
    env = {**os.environ, "CONSENTLEDGER_SUBJECT_PASSWORD": "pw"}
    out = tmp_path / "receipt.json"
    saved = subprocess.run([CLI, "subject", "receipt", "--gateway", consortium.health.url, "--record", record,
                            "--seq", "1", "--out", str(out), "--subject-keystore", str(keystore)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert saved.returncode == 0, saved.stderr
    block = json.loads(out.read_text())["block_number"]
    trusted = "0x" + bytes(consortium.ledger.w3.eth.get_block(block)["hash"]).hex()
    verified = subprocess.run([CLI, "receipt", "verify", str(out), "--block-hash", trusted],
                              capture_output=True, text=True, env=env, timeout=60)
    assert verified.returncode == 0 and "valid" in verified.stdout, verified.stdout + verified.stderr
    refused = subprocess.run([CLI, "receipt", "verify", str(out), "--block-hash", "0x" + "11" * 32],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 9, refused.stdout + refused.stderr
    with pytest.raises(GatewayError) as missing, GatewayClient(consortium.health.url, Account.create()) as stranger:
        stranger.receipt(record, 1)
    assert missing.value.status == 404
