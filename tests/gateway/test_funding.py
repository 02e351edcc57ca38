"""A gateway whose signer cannot pay refuses chain writes at once with 503 `insufficient_funds`, and sends and stores
nothing; once `consentledger chain fund` has paid it, the same calls succeed.

The shelter office is a fresh key (as `agency init` makes one), admitted as custodian and requester on the package's
consortium and never funded until the last test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from consentledger.chain.node import LocalNode
from consentledger.consent import Consent, consent_id, sign_consent
from consentledger.crypto.keys import load_account
from consentledger.gateway.admin.setup import init_agency
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV, Agency, admit
from consentledger.ports import held_port, hold_port
from consentledger.types import ConsentStatus, Role

from .conftest import fund
from .world import DISTRICT_STATS, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
STATS = {"district": "Harbour", "cases": 3}


@dataclass(frozen=True)
class Shelter:
    """The unfunded agency, its key, the chain's URL, and an OPEN record held by health for it to read."""

    agency: Agency
    key: bytes
    rpc_url: str
    record: str

    @property
    def address(self) -> str:
        """The shelter office's signer."""
        return self.agency.address


@pytest.fixture(scope="module")
def shelter(consortium: Consortium, ganache: LocalNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shelter]:
    """The shelter office's gateway, running with a signer that holds 0 wei."""
    directory = tmp_path_factory.mktemp("unfunded") / "shelter"
    manifest = consortium.health.directory.parent / "deployment.json"
    hold = hold_port()  # kept until the gateway inherits it: no other process can take the port
    created = init_agency(directory, "shelter office", DEV_PASSWORD, rpc_url=ganache.rpc_url, manifest=manifest,
                          port=held_port(hold), password_env=PASSWORD_ENV)
    with created.config.open("a") as config:
        config.write("allow_org_key_requests = true\n")
    agency = Agency("shelter office", directory, created, hold=hold)
    admit(consortium.ledger, consortium.admin, [], agency, Role.CUSTODIAN | Role.REQUESTER)
    record = consortium.ingest(STATS, category=DISTRICT_STATS)
    agency.start()
    try:
        key = bytes(load_account(directory / "signer.json", DEV_PASSWORD).key)
        yield Shelter(agency, key, ganache.rpc_url, record)
    finally:
        agency.stop()
        agency.release()


def sent(consortium: Consortium, shelter: Shelter) -> int:
    """Return how many transactions the shelter's signer has sent (mined or pending)."""
    return consortium.ledger.w3.eth.get_transaction_count(shelter.address, "pending")  # type: ignore[arg-type]


def expect_unfunded(answer: dict[str, object], shelter: Shelter) -> None:
    """Assert a refusal names the signer, its 0 wei, and the command that funds it from dev account 0."""
    command = (f"consentledger chain fund {shelter.address} --amount 1ether --rpc {shelter.rpc_url} "
               "--dev-account 0")
    detail = str(answer["detail"])
    # The gas is the write's own: the sender checks each transaction's gas limit before signing it.
    pattern = rf"signer {shelter.address} has 0 wei; needs ≥ [0-9.]+ ether \(([0-9,]+) gas at gas price 2 gwei\); run "
    found = re.fullmatch(pattern + re.escape(command), detail)
    assert found is not None and int(found.group(1).replace(",", "")) >= 21_000, detail
    assert answer["fund_command"] == command, answer
    assert (answer["account"], answer["balance"]) == (shelter.address, "0")


def collect(shelter: Shelter, subject: str) -> dict[str, object]:
    """Return the body asking the shelter office to collect district statistics about `subject`."""
    return {"subject": subject, "category": DISTRICT_STATS, "payload": {"district": "Dunes", "cases": 1}}


def read_stats(shelter: Shelter) -> dict[str, object]:
    """Return the body of an access to health's OPEN record for epidemic control."""
    return {"record": shelter.record, "purpose": EPIDEMIC_CONTROL, "consents": []}


def test_health_shows_the_signer_unfunded_and_ready_refuses_naming_the_command(shelter: Shelter) -> None:
    """/v1/health stays 200 (the gateway is alive) and reports funded false; /v1/ready is 503 insufficient_funds."""
    health = expect(signed(shelter.agency, shelter.key, "GET", "/v1/health"), 200)
    funding = health["funding"]
    assert (funding["address"], funding["funded"], funding["balance"]) == (shelter.address, False, "0")
    assert funding["needed"] == str(150_000 * int(funding["gas_price"])) and int(funding["gas_price"]) > 0

    ready = expect(signed(shelter.agency, shelter.key, "GET", "/v1/ready"), 503, "insufficient_funds")
    expect_unfunded(ready, shelter)


def test_collection_is_refused_at_once_and_nothing_is_stored_or_sent(consortium: Consortium, shelter: Shelter) -> None:
    """POST /v1/records: 503 before anything is stored, so no record waits `pending` for ever; nothing is sent."""
    response = signed(shelter.agency, shelter.key, "POST", "/v1/records", collect(shelter, Account.create().address))

    expect_unfunded(expect(response, 503, "insufficient_funds"), shelter)
    assert consortium.rows(shelter.agency) == (0, 0)
    assert sent(consortium, shelter) == 0


def test_an_access_is_refused_at_once_and_nothing_is_recorded(consortium: Consortium, shelter: Shelter) -> None:
    """POST /v1/access: 503 instead of a 502 after a failed send; the record's chain holds no access by the shelter."""
    response = signed(shelter.agency, shelter.key, "POST", "/v1/access", read_stats(shelter))

    answer = expect(response, 503, "insufficient_funds")
    expect_unfunded(answer, shelter)
    assert "payload" not in answer
    assert [e for e in consortium.accesses(shelter.record) if e.requester == shelter.address] == []
    assert sent(consortium, shelter) == 0


def test_a_consent_relay_and_an_erasure_are_refused_at_once(consortium: Consortium, shelter: Shelter) -> None:
    """POST /v1/consents (the shelter would pay for it): 503 and the consent is not on chain; an erasure: 503 before
    anything is shredded or queued."""
    subject = Account.create()
    consent = Consent.new(subject=subject.address, grantee=shelter.address, category=DISTRICT_STATS,
                          purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 3600)
    signature = sign_consent(consent, subject.key, consortium.ledger.domain())
    body = {"consent": consent.to_json(), "signature": "0x" + signature.hex()}

    expect_unfunded(expect(signed(shelter.agency, subject.key, "POST", "/v1/consents", body), 503,
                           "insufficient_funds"), shelter)
    erasure = signed(shelter.agency, subject.key, "POST", "/v1/subjects/me/erasure", {})
    expect_unfunded(expect(erasure, 503, "insufficient_funds"), shelter)
    assert consortium.ledger.consent_state(consent_id(consent, consortium.ledger.domain()))[0] is ConsentStatus.NONE
    assert consortium.rows(shelter.agency) == (0, 0)
    assert sent(consortium, shelter) == 0


def test_after_chain_fund_the_same_calls_succeed(consortium: Consortium, shelter: Shelter, tmp_path: Path) -> None:
    """`consentledger chain fund` (paying from a keystore) prints the new balance; then the gateway is ready, and the
    collection and the access refused above go through: registered, and read with its payload. (Last in this module.)"""
    payer = Account.create()
    fund(consortium, payer.address)
    keystore = tmp_path / "payer.json"
    keystore.write_text(json.dumps(Account.encrypt(payer.key, "payer pw", kdf="scrypt", iterations=2**12)))
    env = {**os.environ, "PAYER_PASSWORD": "payer pw"}
    paid = subprocess.run(
        [CLI, "chain", "fund", shelter.address, "--amount", "1ether", "--rpc", shelter.rpc_url,
         "--keystore", str(keystore), "--password-env", "PAYER_PASSWORD"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert paid.returncode == 0, paid.stderr
    assert f"sent 1 ether from {payer.address} to {shelter.address} in tx 0x" in paid.stdout
    assert f"balance of {shelter.address}: 1 ether" in paid.stdout

    ready = expect(signed(shelter.agency, shelter.key, "GET", "/v1/ready"), 200)
    assert ready["funding"]["funded"] is True and ready["funding"]["balance"] == str(10**18)
    stored = expect(signed(shelter.agency, shelter.key, "POST", "/v1/records",
                           collect(shelter, Account.create().address)), 201)
    assert stored["state"] == "registered", stored
    read = expect(signed(shelter.agency, shelter.key, "POST", "/v1/access", read_stats(shelter)), 200)
    assert read["payload"] == STATS
    assert [e.requester for e in consortium.accesses(shelter.record)].count(shelter.address) == 1
