"""Erasure: a data subject's own signed request shreds and tombstones their records and revokes their consents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger.chain.relay import revocation_payload
from consentledger.client import GatewayClient
from consentledger.consent import SECP256K1_N, Consent, consent_id, sign_revocation
from consentledger.crypto.keys import new_keystore
from consentledger.signing import HEADER_SIGNER
from consentledger.store import OutboxStatus, RecordState
from consentledger.types import ConsentStatus, TombstoneReason

from .lifecycle import eventually, get_record, tombstone_txs, tombstones_on_chain
from .world import CONTACT_TRACE, DISTRICT_STATS, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
ERASURE_PATH = "/v1/subjects/me/erasure"


@dataclass(frozen=True)
class Subject:
    """A data subject with records at health and consents for transport and police."""

    account: LocalAccount
    records: list[str]
    consents: list[Consent]


def _subject(consortium: Consortium) -> Subject:
    account = Account.create()
    records = [
        consortium.ingest({"name": "Ana", "phone": "555-0199", "district": "North"}, category=CONTACT_TRACE,
                          subject=account.address),
        consortium.ingest({"district": "North", "cases": 1}, category=DISTRICT_STATS, subject=account.address),
    ]
    consents = [consortium.grant(account, consortium.transport, CONTACT_TRACE),
                consortium.grant(account, consortium.police, LAB_RESULT)]
    return Subject(account, records, consents)


def _revocations(consortium: Consortium, signer: LocalAccount, consents: list[Consent]) -> dict[str, Any]:
    domain = consortium.ledger.domain()
    return {"revocations": [
        {"consent": c.to_json(), "signature": "0x" + sign_revocation(consent_id(c, domain), signer.key, domain).hex()}
        for c in consents
    ]}


def _id(consortium: Consortium, consent: Consent) -> str:
    return "0x" + consent_id(consent, consortium.ledger.domain()).hex()


def _status(consortium: Consortium, consent: Consent) -> ConsentStatus:
    return consortium.ledger.consent_state(consent_id(consent, consortium.ledger.domain()))[0]


@pytest.fixture(scope="module")
def erased(consortium: Consortium) -> tuple[Subject, Subject, dict[str, Any]]:
    """Alice erased through her client (GatewayClient.request_erasure); bob, with records and a consent too, not."""
    alice, bob = _subject(consortium), _subject(consortium)
    with GatewayClient(consortium.health.url, alice.account) as client:
        answer = client.request_erasure()
    return alice, bob, answer


def test_unsigned_erasure_is_refused(consortium: Consortium) -> None:
    """No signature headers: 401, nothing erased."""
    response = httpx.post(consortium.health.url + ERASURE_PATH, json={"revocations": []}, trust_env=False)

    expect(response, 401, "unauthenticated")


def test_anothers_signature_cannot_erase_a_subject(consortium: Consortium) -> None:
    """Mallory signing a request that names carol as signer gets 401; her own erasure touches none of carol's."""
    carol, mallory = _subject(consortium), Account.create()
    forged = signed(consortium.health, mallory.key, "POST", ERASURE_PATH, {"revocations": []},
                    headers={HEADER_SIGNER: carol.account.address})
    expect(forged, 401, "unauthenticated")

    own = expect(signed(consortium.health, mallory.key, "POST", ERASURE_PATH, {"revocations": []}), 200)
    assert (own["subject"], own["records"], own["consents"]) == (mallory.address, [], [])
    stolen = expect(signed(consortium.health, mallory.key, "POST", ERASURE_PATH,
                           _revocations(consortium, mallory, carol.consents[:1])), 403, "forbidden")
    assert "an erasure revokes only the signer's" in stolen["detail"]
    for record in carol.records:
        assert expect(get_record(consortium, record), 200)["state"] == "registered"
    assert [_status(consortium, c) for c in carol.consents] == [ConsentStatus.GRANTED] * 2


def test_erasure_missing_a_revocation_is_refused_and_changes_nothing(consortium: Consortium) -> None:
    """Revoking one of two live consents: 422 naming the other; no record shredded, no write queued."""
    dan = _subject(consortium)
    before = consortium.rows(consortium.health)

    refused = expect(signed(consortium.health, dan.account.key, "POST", ERASURE_PATH,
                            _revocations(consortium, dan.account, dan.consents[:1])), 422, "consents_not_revoked")

    assert refused["missing"] == [_id(consortium, dan.consents[1])]
    assert _id(consortium, dan.consents[1]) in refused["detail"]
    assert consortium.rows(consortium.health) == before
    for record in dan.records:
        assert expect(get_record(consortium, record), 200)["state"] == "registered"
    badly_signed = _revocations(consortium, Account.create(), dan.consents)  # dan's consents, another's signatures
    refused = expect(signed(consortium.health, dan.account.key, "POST", ERASURE_PATH, badly_signed), 422,
                     "invalid_signature")
    assert refused["consent"] == _id(consortium, dan.consents[0])
    assert f"not by {dan.account.address}" in refused["detail"]
    assert consortium.rows(consortium.health) == before


def malleated(signature: bytes) -> bytes:
    """Return the high-s twin of a signature (s -> n - s, v flipped): ecrecover takes it, the contract does not."""
    s, v = int.from_bytes(signature[32:64], "big"), signature[64]
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def test_erasure_with_a_malleated_revocation_is_refused_before_anything_is_shredded(consortium: Consortium) -> None:
    """A high-s revocation signature (the contract would refuse it): 422 naming that consent; nothing shredded,
    nothing queued, the consent still granted on chain."""
    erin = _subject(consortium)
    before = consortium.rows(consortium.health)
    body = _revocations(consortium, erin.account, erin.consents)
    body["revocations"][1]["signature"] = "0x" + malleated(bytes.fromhex(body["revocations"][1]["signature"][2:])).hex()

    refused = expect(signed(consortium.health, erin.account.key, "POST", ERASURE_PATH, body), 422,
                     "invalid_signature")

    assert refused["consent"] == _id(consortium, erin.consents[1])
    assert refused["rule"] == "ConsentRegistryInvalidSignature"
    assert "upper half of the curve order" in refused["problem"] and refused["consent"] in refused["detail"]
    assert consortium.rows(consortium.health) == before
    for record in erin.records:
        assert expect(get_record(consortium, record), 200)["state"] == "registered"
    assert [_status(consortium, c) for c in erin.consents] == [ConsentStatus.GRANTED] * 2


def test_a_revocation_that_failed_on_chain_is_shown_failed_until_an_erasure_lands_one(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A revocation row the chain refused (queued by a gateway without the check) is listed as failed with the
    chain's rule on the subject's consents; `subject erase` then relays a good one and prints its tx and block."""
    fay = _subject(consortium)
    store, domain = consortium.store(consortium.health), consortium.ledger.domain()
    consent = fay.consents[0]
    good = sign_revocation(consent_id(consent, domain), fay.account.key, domain)
    stale = store.enqueue("revoke_consent", revocation_payload(consent, malleated(good)), consortium.health.address,
                          record_id=_id(consortium, consent))
    eventually(lambda: store.get_outbox(stale.id), lambda w: w is not None and w.status is OutboxStatus.FAILED,
               what="the malleated revocation failed")

    with GatewayClient(consortium.health.url, fay.account) as client:
        listed = {c["id"]: c for c in client.my_consents()["consents"]}
    shown = listed[_id(consortium, consent)]["revocation"]
    assert shown["status"] == "failed" and "ConsentRegistryInvalidSignature" in shown["error"], shown
    assert "revocation" not in listed[_id(consortium, fay.consents[1])]

    keystore = tmp_path / "fay.json"
    new_keystore(keystore, "fay's passphrase", account=fay.account)
    env = {**os.environ, "CONSENTLEDGER_SUBJECT_PASSWORD": "fay's passphrase"}
    done = subprocess.run([CLI, "subject", "erase", "--gateway", consortium.health.url, "--subject-keystore",
                           str(keystore)], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    consents = {c["consent"]: c for c in json.loads(done.stdout)["consents"]}
    assert set(consents) == {_id(consortium, c) for c in fay.consents}
    for cid, revoked in consents.items():
        assert revoked["revocation"] == "on chain", revoked
        log = consortium.ledger.access.events.ConsentRevoked().get_logs(
            from_block=consortium.ledger.deployment.deploy_block, argument_filters={"consent": bytes.fromhex(cid[2:])})
        assert [("0x" + bytes(e["transactionHash"]).hex(), e["blockNumber"]) for e in log] == [
            (revoked["tx_hash"], revoked["block"])]
    assert [_status(consortium, c) for c in fay.consents] == [ConsentStatus.REVOKED] * 2


def test_erasure_shreds_tombstones_and_revokes_only_the_subjects(
    consortium: Consortium, erased: tuple[Subject, Subject, dict[str, Any]]
) -> None:
    """Alice's records are shredded and tombstoned ERASURE, her consents revoked on chain, the answer lists both;
    her history shows each tombstone; bob's records and consent are untouched."""
    alice, bob, answer = erased
    ledger = consortium.ledger

    assert answer["subject"] == alice.account.address
    assert [(r["record"], r["shredded_now"], r["reason"]) for r in answer["records"]] == [
        (r, True, "erasure") for r in alice.records
    ]
    assert sorted(c["consent"] for c in answer["consents"]) == sorted(_id(consortium, c) for c in alice.consents)
    for record in alice.records:
        eventually(lambda r=record: tombstones_on_chain(ledger, r), lambda t: t == [TombstoneReason.ERASURE],
                   what=f"{record} tombstoned")
        refusal = expect(get_record(consortium, record), 410, "record_destroyed")
        assert refusal["reason"] == "erasure"
        stored = consortium.store(consortium.health).get_record(record)
        assert stored is not None and stored.state is RecordState.SHREDDED and stored.wrapped_dek == b""
    for consent in alice.consents:
        eventually(lambda c=consent: _status(consortium, c), lambda s: s is ConsentStatus.REVOKED, what="revoked")
    expect(consortium.access(consortium.transport, alice.records[0], alice.consents[:1]), 403, "rule_violated",
           "RecordRegistryRecordTombstoned")

    for record in bob.records:
        assert expect(get_record(consortium, record), 200)["state"] == "registered"
        assert tombstones_on_chain(ledger, record) == []
    assert [_status(consortium, c) for c in bob.consents] == [ConsentStatus.GRANTED] * 2

    with GatewayClient(consortium.health.url, alice.account) as client:
        history = client.my_history()
        assert client.my_consents()["consents"] == []
    listed = {t["record"]: t for t in history["tombstones"]}
    assert set(listed) == set(alice.records)
    for record in alice.records:
        assert listed[record]["reason"] == "erasure"
        assert (listed[record]["tx_hash"], listed[record]["block"]) == tombstone_txs(ledger, record)[0]


def test_second_erasure_by_the_cli_is_idempotent(
    consortium: Consortium, erased: tuple[Subject, Subject, dict[str, Any]], tmp_path: Path
) -> None:
    """`consentledger subject erase` again: nothing shredded now, no second tombstone (`subject history` lists
    each once); a revocation relayed twice is done, not failed."""
    alice, _, _ = erased
    ledger, health = consortium.ledger, consortium.health
    for consent in alice.consents:
        eventually(lambda c=consent: _status(consortium, c), lambda s: s is ConsentStatus.REVOKED, what="revoked")
    keystore = tmp_path / "alice.json"
    new_keystore(keystore, "alice's passphrase", account=alice.account)
    env = {**os.environ, "CONSENTLEDGER_SUBJECT_PASSWORD": "alice's passphrase"}

    done = subprocess.run([CLI, "subject", "erase", "--gateway", health.url, "--subject-keystore", str(keystore)],
                          env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    again = json.loads(done.stdout)
    assert [(r["record"], r["shredded_now"], r["tombstone"]) for r in again["records"]] == [
        (r, False, "on chain") for r in alice.records
    ]
    assert again["consents"] == []
    shown = subprocess.run([CLI, "subject", "history", "--gateway", health.url, "--subject-keystore", str(keystore)],
                           env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert {(t["record"], t["reason"]) for t in json.loads(shown.stdout)["tombstones"]} == {
        (r, "erasure") for r in alice.records}
    store = consortium.store(health)
    for record in alice.records:
        assert [w.kind for w in store.outbox_of_record(record)] == ["register_record", "tombstone"]
        assert tombstones_on_chain(ledger, record) == [TombstoneReason.ERASURE]

    domain = ledger.domain()
    consent = alice.consents[0]
    repeat = store.enqueue("revoke_consent", revocation_payload(
        consent, sign_revocation(consent_id(consent, domain), alice.account.key, domain)), health.address)
    settled = eventually(lambda: store.get_outbox(repeat.id), lambda w: w is not None and w.status in (
        OutboxStatus.DONE, OutboxStatus.FAILED), what="the repeated revocation settled")
    assert settled is not None and settled.status is OutboxStatus.DONE, settled


def test_erasure_relays_a_withdrawal_of_an_unrelayed_consent_only_for_an_active_requester(
    consortium: Consortium
) -> None:
    """An extra revocation of a consent never granted: refused (403, nothing shredded) when it names the subject's
    own key as grantee; withdrawn on chain when it names transport, so transport can never relay it later."""
    gil = _subject(consortium)
    before = consortium.rows(consortium.health)
    made_up = Consent.new(subject=gil.account.address, grantee=gil.account.address, category=CONTACT_TRACE,
                          purpose=1, valid_until=2**39)
    unrelayed = Consent.new(subject=gil.account.address, grantee=consortium.transport.address,
                            category=CONTACT_TRACE, purpose=1, valid_until=2**39)

    refused = expect(signed(consortium.health, gil.account.key, "POST", ERASURE_PATH,
                            _revocations(consortium, gil.account, [*gil.consents, made_up])), 403, "forbidden")

    assert f"consent {_id(consortium, made_up)} was never granted" in refused["detail"]
    assert consortium.rows(consortium.health) == before
    assert [_status(consortium, c) for c in gil.consents] == [ConsentStatus.GRANTED] * 2

    answer = expect(signed(consortium.health, gil.account.key, "POST", ERASURE_PATH,
                           _revocations(consortium, gil.account, [*gil.consents, unrelayed])), 200)

    assert {c["consent"]: c["revocation"] for c in answer["consents"]} == {
        _id(consortium, c): "on chain" for c in [*gil.consents, unrelayed]}
    assert _status(consortium, unrelayed) is ConsentStatus.REVOKED
