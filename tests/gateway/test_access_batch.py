"""Many accesses in one call (`POST /v1/access/batch`, `access request --batch`) and group commit of single calls.

Every item is enforced and recorded on chain on its own: accepted items join their records' hash
chains, refused ones are recorded as AccessRefused with their rule, and each gets its own answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from consentledger.chain.history import fold
from consentledger.consent import Consent, consent_id, sign_revocation
from consentledger.errors import GatewayError

from .world import CONTACT_TRACE, DISTRICT_STATS, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
UNKNOWN = "0x" + "ee" * 32


def item(record: str, consents: list[Consent] | tuple[Consent, ...] = ()) -> dict[str, Any]:
    """Return one batch item asking for `record` for epidemic control."""
    return {"record": record, "purpose": EPIDEMIC_CONTROL, "consents": [c.to_json() for c in consents]}


def revoke(consortium: Consortium, subject: Any, consent: Consent) -> None:
    """Relay the subject's signed revocation of `consent` through transport's gateway."""
    domain = consortium.ledger.domain()
    body = {"consent": consent.to_json(),
            "signature": "0x" + sign_revocation(consent_id(consent, domain), subject.key, domain).hex()}
    expect(signed(consortium.transport, subject.key, "POST", "/v1/consents/revoke", body), 200)


def refusals(consortium: Consortium, record: str) -> list[Any]:
    """Return the AccessRefused events of `record` on chain."""
    return list(consortium.ledger.access.events.AccessRefused().get_logs(
        from_block=consortium.ledger.deployment.deploy_block, argument_filters={"record": bytes.fromhex(record[2:])}))


def test_a_batch_answers_each_access_on_its_own(consortium: Consortium) -> None:
    """Accepted items come back released, refused ones with their rule; all of it sits in one transaction."""
    transport, alice, bob = consortium.transport, Account.create(), Account.create()
    stats = consortium.ingest({"district": "East", "cases": 3}, category=DISTRICT_STATS, subject=alice.address)
    trace = consortium.ingest({"name": "Al", "phone": "555-0101", "district": "East"}, category=CONTACT_TRACE,
                              subject=alice.address)
    revoked = consortium.ingest({"name": "Bo", "phone": "555-0102", "district": "West"}, category=CONTACT_TRACE,
                                subject=bob.address)
    granted = consortium.grant(alice, transport, CONTACT_TRACE, record=bytes.fromhex(trace[2:]), identified=True)
    withdrawn = consortium.grant(bob, transport, CONTACT_TRACE, record=bytes.fromhex(revoked[2:]))
    revoke(consortium, bob, withdrawn)
    for_police = consortium.grant(bob, consortium.police, CONTACT_TRACE, record=bytes.fromhex(revoked[2:]))

    body = {"items": [item(stats), item(trace, [granted]), item(revoked, [withdrawn]), item(UNKNOWN),
                      item(revoked, [for_police]), item(stats)]}
    answers = expect(signed(transport, consortium.key(transport), "POST", "/v1/access/batch", body), 200)["items"]

    assert [a["status"] for a in answers] == [200, 200, 403, 403, 403, 200], answers
    assert [a.get("rule") for a in answers[2:5]] == [
        "ConsentRegistryConsentRevoked", "RecordRegistryUnknownRecord", "ConsentRegistryWrongGrantee"]
    assert answers[0]["payload"] == answers[5]["payload"] == {"district": "East", "cases": 3}
    assert answers[1]["payload"] == {"name": "Al", "phone": "555-0101", "district": "East"}
    assert (answers[0]["seq"], answers[5]["seq"]) == (1, 2)  # two items of one record: consecutive seqs
    assert {a["tx"] for a in answers if a["status"] == 200} == {answers[0]["tx"]}  # one batch transaction
    stats_chain = consortium.accesses(stats)
    assert [e.seq for e in stats_chain] == [1, 2]
    assert fold(stats_chain) == consortium.ledger.head(bytes.fromhex(stats[2:]))
    assert [e.seq for e in consortium.accesses(trace)] == [1]
    assert consortium.accesses(revoked) == []
    refused = refusals(consortium, revoked)
    assert len(refused) == 2 and {r["args"]["requester"] for r in refused} == {transport.address}
    assert len(refusals(consortium, UNKNOWN)) >= 1


def test_an_oversized_or_empty_batch_is_refused_before_the_chain(consortium: Consortium) -> None:
    """More items than the bound is a 413, none a 422, both with the JSON error shape; nothing is recorded."""
    transport = consortium.transport
    before = len(refusals(consortium, UNKNOWN))
    too_many = {"items": [item(UNKNOWN)] * 257}
    expect(signed(transport, consortium.key(transport), "POST", "/v1/access/batch", too_many), 413,
           "payload_too_large")
    expect(signed(transport, consortium.key(transport), "POST", "/v1/access/batch", {"items": []}), 422)
    assert len(refusals(consortium, UNKNOWN)) == before


def test_concurrent_single_accesses_share_transactions_and_keep_their_own_answers(consortium: Consortium) -> None:
    """64 concurrent /v1/access calls, a quarter under a revoked consent: each gets its own answer, fewer txs."""
    police, carol = consortium.police, Account.create()
    records = [consortium.ingest({"district": f"Q{i}", "cases": i}, category=DISTRICT_STATS) for i in range(4)]
    blocked = consortium.ingest({"name": "Cy", "phone": "555-0177", "district": "South"}, category=CONTACT_TRACE,
                                subject=carol.address)
    consent = consortium.grant(carol, police, CONTACT_TRACE)
    domain = consortium.ledger.domain()
    body = {"consent": consent.to_json(),
            "signature": "0x" + sign_revocation(consent_id(consent, domain), carol.key, domain).hex()}
    expect(signed(police, carol.key, "POST", "/v1/consents/revoke", body), 200)
    w3 = consortium.ledger.w3
    nonce_before = w3.eth.get_transaction_count(police.address, "latest")
    asks = [(blocked, [consent]) if i % 4 == 0 else (records[i % 4], []) for i in range(64)]

    with ThreadPoolExecutor(64) as pool:
        responses = list(pool.map(lambda ask: consortium.access(police, ask[0], ask[1], timeout=120), asks))

    assert Counter(r.status_code for r in responses) == {200: 48, 403: 16}
    for (record, _), response in zip(asks, responses, strict=True):
        if record == blocked:
            assert response.json()["rule"] == "ConsentRegistryConsentRevoked"
        else:
            assert response.json()["record"] == record
    for record in records[1:]:
        seqs = sorted(r.json()["seq"] for (rec, _), r in zip(asks, responses, strict=True) if rec == record)
        assert seqs == [e.seq for e in consortium.accesses(record)] == list(range(1, 17))
    assert len(refusals(consortium, blocked)) == 16
    sent = w3.eth.get_transaction_count(police.address, "latest") - nonce_before
    assert sent < 64  # grouped: fewer transactions than accesses
    assert w3.eth.get_transaction_count(police.address, "pending") == nonce_before + sent  # no gap, none stuck


def test_the_cli_asks_for_a_batch_file_and_writes_one_answer_per_access(consortium: Consortium, tmp_path: Path) -> None:
    """`access request --batch FILE` writes the answers in order and exits 15 when any access was refused."""
    transport, dana = consortium.transport, Account.create()
    stats = consortium.ingest({"district": "North", "cases": 9}, category=DISTRICT_STATS, subject=dana.address)
    trace = consortium.ingest({"name": "Di", "phone": "555-0123", "district": "North"}, category=CONTACT_TRACE,
                              subject=dana.address)
    consent = consortium.grant(dana, transport, CONTACT_TRACE, identified=True)
    (tmp_path / "dana.json").write_text(json.dumps(consent.to_json()))
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([
        {"record": stats, "purpose": EPIDEMIC_CONTROL},
        {"record": trace, "purpose": EPIDEMIC_CONTROL, "consents": ["dana.json"]},
        {"record": UNKNOWN, "purpose": EPIDEMIC_CONTROL},
    ]))
    keystore = tmp_path / "transport.json"
    keystore.write_text(json.dumps(Account.encrypt(consortium.key(transport), "org pass")))
    out = tmp_path / "answers.json"

    done = subprocess.run(
        [CLI, "access", "request", "--gateway", transport.url, "--batch", str(batch), "--out", str(out),
         "--keystore", str(keystore), "--password-env", "ORG_PASSWORD"],
        env={**os.environ, "ORG_PASSWORD": "org pass"}, capture_output=True, text=True, timeout=120, check=False,
    )

    assert done.returncode == GatewayError.exit_code, done.stderr
    answers = json.loads(out.read_text())
    assert [a["status"] for a in answers] == [200, 200, 403]
    assert answers[1]["payload"] == {"name": "Di", "phone": "555-0123", "district": "North"}
    assert "2 of 3 accesses answered with their record" in done.stderr
    assert "RecordRegistryUnknownRecord" in done.stderr
