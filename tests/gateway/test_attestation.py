"""Subjects attesting their records through a gateway; aggregates at the gateway count only attested subjects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from consentledger.attestation import RecordAttestation, sign_attestation
from consentledger.client import GatewayClient
from consentledger.errors import ConfigurationError
from consentledger.types import RecordKind

from .world import AGGREGATE_K, DISTRICT_STATS, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def lab(consortium: Consortium, subject: str) -> str:
    """Collect a lab result about `subject` at health; return its id."""
    return consortium.ingest({"test": "pcr", "result": "positive"}, category=LAB_RESULT, subject=subject)


def aggregate(consortium: Consortium, sources: list[str]) -> dict[str, object]:
    """POST an aggregate of `sources` at health as health; return the JSON answer with its status."""
    body = {"category": DISTRICT_STATS, "payload": {"district": "North", "cases": len(sources)},
            "derived_from": sources, "aggregate": True}
    response = signed(consortium.health, consortium.key(consortium.health), "POST", "/v1/records", body)
    return {"status": response.status_code, **response.json()}


def relay(consortium: Consortium, record: str, signature: bytes, key: bytes) -> dict[str, object]:
    """POST the attestation `signature` of `record` to health, signed by `key`; return the answer with its status."""
    response = signed(consortium.health, key, "POST", f"/v1/records/{record}/attestation",
                      {"signature": "0x" + signature.hex()})
    return {"status": response.status_code, **response.json()}


def test_a_subject_attests_a_record_with_the_client(consortium: Consortium) -> None:
    """Alice lists her records at health, signs one's terms with her own key, and the chain marks it attested."""
    alice = Account.create()
    record = lab(consortium, alice.address)
    with GatewayClient(consortium.health.url, alice) as client:
        [listed] = client.my_records()["records"]
        assert (listed["record"], listed["attested"]) == (record, False)
        assert listed["terms"]["custodian"] == consortium.health.address

        answer = client.attest_record(record)

        assert answer["attested"] is True and answer["tx"] is not None
        assert client.attest_record(record)["tx"] is None  # attesting again sends nothing
    assert consortium.ledger.record(bytes.fromhex(record[2:])).attested


def test_an_attestation_by_another_key_is_refused_and_nothing_sent(consortium: Consortium) -> None:
    """Bob's signature over Alice's record terms is a 422 naming the signer; the record stays unattested."""
    alice, bob = Account.create(), Account.create()
    record = lab(consortium, alice.address)
    terms = RecordAttestation.of(consortium.ledger.record(bytes.fromhex(record[2:])))

    answer = relay(consortium, record, sign_attestation(terms, bob.key, consortium.ledger.domain()), alice.key)

    assert (answer["status"], answer["error"]) == (422, "invalid_attestation")
    assert f"a signature by {bob.address}" in str(answer["detail"])
    assert not consortium.ledger.record(bytes.fromhex(record[2:])).attested


def test_a_high_s_attestation_is_refused(consortium: Consortium) -> None:
    """The malleated twin of Alice's valid signature is a 422 (the contract would refuse it too)."""
    alice = Account.create()
    record = lab(consortium, alice.address)
    terms = RecordAttestation.of(consortium.ledger.record(bytes.fromhex(record[2:])))
    good = sign_attestation(terms, alice.key, consortium.ledger.domain())
    s = int.from_bytes(good[32:64], "big")
    malleated = good[:32] + (ORDER - s).to_bytes(32, "big") + bytes([55 - good[64]])

    answer = relay(consortium, record, malleated, alice.key)

    assert (answer["status"], answer["error"]) == (422, "invalid_attestation")
    assert "no valid low-s signature" in str(answer["detail"])


def test_an_outsider_cannot_make_the_gateway_pay_for_a_relay(consortium: Consortium) -> None:
    """A request signed by neither the record's subject nor a member is forbidden, whatever it carries."""
    alice, stranger = Account.create(), Account.create()
    record = lab(consortium, alice.address)
    terms = RecordAttestation.of(consortium.ledger.record(bytes.fromhex(record[2:])))

    answer = relay(consortium, record, sign_attestation(terms, alice.key, consortium.ledger.domain()), stranger.key)

    assert (answer["status"], answer["error"]) == (403, "forbidden")


def test_an_aggregate_with_a_made_up_subject_is_refused_and_nothing_stored(consortium: Consortium) -> None:
    """Alice's attested result plus a record about an address nobody holds is one subject: 422, nothing stored."""
    alice = Account.create()
    real, made_up = lab(consortium, alice.address), lab(consortium, Account.create().address)
    consortium.attest(alice, real)
    before = consortium.rows(consortium.health)

    answer = aggregate(consortium, [real, made_up])

    assert (answer["status"], answer["error"]) == (422, "invalid_payload")
    assert (f"needs at least {AGGREGATE_K} distinct subjects who attested its sources; these sources cover 1 "
            "(1 of 2 sources not attested") in str(answer["detail"])
    assert consortium.rows(consortium.health) == before


def test_an_aggregate_is_registered_and_read_once_both_subjects_attested(consortium: Consortium) -> None:
    """Refused while Bob has not attested; after he does, the aggregate registers and police read it."""
    alice, bob = Account.create(), Account.create()
    alices, bobs = lab(consortium, alice.address), lab(consortium, bob.address)
    consortium.attest(alice, alices)
    assert aggregate(consortium, [alices, bobs])["status"] == 422

    consortium.attest(bob, bobs)
    answer = aggregate(consortium, [alices, bobs])

    assert answer["status"] == 201, answer
    record = str(answer["record"])
    assert consortium.ledger.record(bytes.fromhex(record[2:])).kind is RecordKind.AGGREGATE
    shared = expect(consortium.access(consortium.police, record), 200)
    assert shared["payload"] == {"district": "North", "cases": 2} and shared["identified"] is False


def test_a_record_not_on_chain_has_no_attestation_terms(consortium: Consortium) -> None:
    """Asking for the terms of an unknown record is a 404."""
    alice = Account.create()
    response = signed(consortium.health, alice.key, "GET", "/v1/records/0x" + "ab" * 32 + "/attestation")
    expect(response, 404, "not_found")


def _attest_cli(consortium: Consortium, record: str, keystore: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONSENTLEDGER_SUBJECT_PASSWORD": "subject pass"}
    return subprocess.run(
        [CLI, "record", "attest", "--gateway", consortium.health.url, "--record", record,
         "--subject-keystore", str(keystore)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_the_cli_signs_with_the_subject_keystore_and_relays(consortium: Consortium, tmp_path: Path) -> None:
    """`record attest` with Alice's keystore attests her record; with Bob's it refuses in one line, sending nothing."""
    alice, bob = Account.create(), Account.create()
    record = lab(consortium, alice.address)
    keystores = {}
    for name, account in (("alice", alice), ("bob", bob)):
        keystores[name] = tmp_path / f"{name}.json"
        keystores[name].write_text(json.dumps(Account.encrypt(account.key, "subject pass")))

    refused = _attest_cli(consortium, record, keystores["bob"])
    assert refused.returncode == ConfigurationError.exit_code
    assert f"subject is {alice.address} but the signing key is {bob.address}" in refused.stderr
    assert not consortium.ledger.record(bytes.fromhex(record[2:])).attested

    done = _attest_cli(consortium, record, keystores["alice"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attested"] is True
    assert consortium.ledger.record(bytes.fromhex(record[2:])).attested
