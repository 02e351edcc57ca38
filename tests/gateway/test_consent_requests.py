"""Consent requests: a requester asks at its gateway, the subject narrows and grants (the access then works) or
denies; requests expire; a grant wider than asked is refused; only the subject and the requester see a request."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger import governance
from consentledger.client import GatewayClient
from consentledger.client_requests import get_request, grant_request, my_requests, narrowed_consent
from consentledger.consent import Consent, consent_id, sign_consent
from consentledger.errors import GatewayError, PayloadValidationError
from consentledger.signing import RequestSignature, verify_request
from consentledger.types import ConsentStatus, Sensitivity

from .world import CHAIN_ID, CONTACT_TRACE, DISTRICT_STATS, EPIDEMIC_CONTROL, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
HOUR = 3600


def _file(consortium: Consortium, subject: str, **terms: Any) -> dict[str, Any]:
    """File a request from transport (its org key) at its own gateway; return the 201 answer."""
    body = {"subject": subject, "category": CONTACT_TRACE, "purpose": EPIDEMIC_CONTROL,
            "valid_until": int(time.time()) + HOUR, "max_uses": 3, "identified": True,
            "reason": "Tracing contacts of a confirmed case on bus 12 on 1 December", **terms}
    transport = consortium.transport
    return expect(signed(transport, consortium.key(transport), "POST", "/v1/consent-requests", body), 201)


def _poll(consortium: Consortium, request_id: str) -> dict[str, Any]:
    transport = consortium.transport
    return expect(signed(transport, consortium.key(transport), "GET", f"/v1/consent-requests/{request_id}"), 200)


def _grant_body(
    consortium: Consortium, subject: LocalAccount, request: dict[str, Any], **narrow: Any
) -> dict[str, Any]:
    """Sign the consent `request` describes with `narrow` applied as given (wider terms too: no client check)."""
    terms = {"subject": request["subject"], "grantee": request["requester"], "category": request["category"],
             "purpose": request["purpose"], "valid_until": request["valid_until"], "max_uses": request["max_uses"],
             "identified": request["identified"],
             "record": bytes.fromhex((request["record"] or "0x" + "00" * 32)[2:])}
    terms.update({k: (bytes.fromhex(v[2:]) if k == "record" else v) for k, v in narrow.items()})
    consent = Consent.new(**terms)
    signature = sign_consent(consent, subject.key, consortium.ledger.domain())
    return {**narrow, "nonce": str(consent.nonce), "signature": "0x" + signature.hex()}


def test_a_narrowed_grant_lands_on_chain_and_the_access_under_it_withholds_what_was_narrowed(
    consortium: Consortium,
) -> None:
    """Asked: the category, identified, 3 uses, an hour. Granted: one record, unidentified, 1 use, 30 minutes.
    The requester's poll shows the granted terms (nonce a string); the access works and hides name and phone."""
    alice = Account.create()
    record = consortium.ingest({"name": "Al", "phone": "555-0100", "district": "North"}, category=CONTACT_TRACE,
                               subject=alice.address)
    filed = _file(consortium, alice.address)
    assert filed["state"] == "requested" and filed["requester"] == consortium.transport.address

    with GatewayClient(consortium.transport.url, alice) as client:
        pending = my_requests(client, "requested")["requests"]
        assert [(r["id"], r["reason"]) for r in pending] == [(filed["id"], filed["reason"])]
        until = int(time.time()) + HOUR // 2
        granted = grant_request(client, filed["id"], valid_until=until, max_uses=1, identified=False, record=record)

    polled = _poll(consortium, filed["id"])
    assert granted["state"] == polled["state"] == "granted"
    terms = polled["consent"]
    assert isinstance(terms["nonce"], str)
    assert (terms["record"], terms["max_uses"], terms["identified"], terms["valid_until"]) == (record, 1, False, until)
    consent = Consent.from_json({**terms, "nonce": int(terms["nonce"])})
    assert "0x" + consent_id(consent, consortium.ledger.domain()).hex() == polled["consent_id"]
    assert consortium.ledger.consent_state(bytes.fromhex(polled["consent_id"][2:]))[0] is ConsentStatus.GRANTED

    released = expect(consortium.access(consortium.transport, record, [consent]), 200)
    assert released["identified"] is False and released["payload"] == {"district": "North"}
    assert _poll(consortium, filed["id"])["uses"] == 1


def test_a_revoked_grant_shows_as_revoked_to_the_requester(consortium: Consortium) -> None:
    """The subject revokes the consent a request produced: the request reads `revoked`."""
    bob = Account.create()
    filed = _file(consortium, bob.address, identified=False)
    with GatewayClient(consortium.transport.url, bob) as client:
        grant_request(client, filed["id"])
        terms = get_request(client, filed["id"])["consent"]
        client.sign_and_revoke(Consent.from_json({**terms, "nonce": int(terms["nonce"])}))

    assert _poll(consortium, filed["id"])["state"] == "revoked"


class Receiver:
    """A requester's own HTTP endpoint, in this process, that keeps each callback it is sent."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server spelling)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                calls.put((self.path, dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server spelling)
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/consent?agency=transport"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_denied_request_reads_denied_calls_back_and_cannot_be_answered_again(consortium: Consortium) -> None:
    """Deny: 200 denied to both sides and one callback signed by transport; a later grant or denial is 409
    request_answered; nothing goes on chain."""
    carol = Account.create()
    receiver = Receiver()
    try:
        filed = _file(consortium, carol.address, callback_url=receiver.url)
        transport = consortium.transport
        path = f"/v1/subjects/me/consent-requests/{filed['id']}"

        denied = expect(signed(transport, carol.key, "POST", f"{path}/deny", {}), 200)

        target, headers, body = receiver.calls.get(timeout=30)
    finally:
        receiver.close()
    assert denied["state"] == _poll(consortium, filed["id"])["state"] == "denied"
    assert target == "/hooks/consent?agency=transport"
    assert json.loads(body)["id"] == filed["id"] and json.loads(body)["state"] == "denied"
    signer = verify_request(RequestSignature.from_headers(headers), chain_id=CHAIN_ID, audience=transport.address,
                            method="POST", path=target, body=body, now=int(time.time()))
    assert signer == transport.address
    again = expect(signed(transport, carol.key, "POST", f"{path}/grant", _grant_body(consortium, carol, filed)),
                   409, "request_answered")
    assert "denied already" in again["detail"]
    expect(signed(transport, carol.key, "POST", f"{path}/deny", {}), 409, "request_answered")
    assert _poll(consortium, filed["id"])["consent_id"] is None
    assert receiver.calls.empty()


def test_an_unanswered_request_expires_and_then_cannot_be_granted(consortium: Consortium) -> None:
    """Past its `expires_at` a request reads `expired` (and lists under that state); a grant is 410."""
    dan = Account.create()
    filed = _file(consortium, dan.address, expires_in=1)
    expires_at = datetime.fromisoformat(filed["expires_at"])
    while datetime.now(UTC) <= expires_at:
        time.sleep(0.2)

    assert _poll(consortium, filed["id"])["state"] == "expired"
    transport = consortium.transport
    listed = expect(signed(transport, dan.key, "GET", "/v1/subjects/me/consent-requests?state=expired"), 200)
    assert [r["id"] for r in listed["requests"]] == [filed["id"]]
    pending = expect(signed(transport, dan.key, "GET", "/v1/subjects/me/consent-requests?state=requested"), 200)
    assert pending["requests"] == []
    refused = expect(signed(transport, dan.key, "POST", f"/v1/subjects/me/consent-requests/{filed['id']}/grant",
                            _grant_body(consortium, dan, filed)), 410, "request_expired")
    assert "expired unanswered" in refused["detail"]


def test_a_grant_wider_than_the_request_is_refused_naming_each_wider_term(consortium: Consortium) -> None:
    """More uses, a later validity, identified when not asked, another record: 422 naming each; still requested."""
    erin = Account.create()
    record = consortium.ingest({"name": "Er", "phone": "555-0101", "district": "West"}, category=CONTACT_TRACE,
                               subject=erin.address)
    filed = _file(consortium, erin.address, identified=False, record=record, max_uses=2)
    transport = consortium.transport
    path = f"/v1/subjects/me/consent-requests/{filed['id']}/grant"
    wider = _grant_body(consortium, erin, filed, max_uses=5, valid_until=filed["valid_until"] + 60, identified=True,
                        record="0x" + "ab" * 32)

    refused = expect(signed(transport, erin.key, "POST", path, wider), 422, "invalid_payload")

    for named in ("max_uses 5 is more than the 2 asked", "later than the", "identified access was not asked for",
                  f"record {record} only"):
        assert named in refused["detail"], refused["detail"]
    assert _poll(consortium, filed["id"])["state"] == "requested"
    with pytest.raises(PayloadValidationError, match="max_uses 5 is more than the 2 asked"):
        narrowed_consent(filed, max_uses=5)  # the client refuses before signing


def test_a_grant_signed_over_other_terms_is_refused_before_anything_is_relayed(consortium: Consortium) -> None:
    """The signature covers max_uses 1 but the body grants 2: 422 invalid_signature; the request stays open."""
    fay = Account.create()
    filed = _file(consortium, fay.address, identified=False)
    body = _grant_body(consortium, fay, filed, max_uses=1)
    body["max_uses"] = 2

    refused = expect(signed(consortium.transport, fay.key, "POST",
                            f"/v1/subjects/me/consent-requests/{filed['id']}/grant", body), 422, "invalid_signature")

    assert "signed by" in refused["detail"]
    assert _poll(consortium, filed["id"])["state"] == "requested"


def test_only_the_subject_and_the_requester_see_or_answer_a_request(consortium: Consortium) -> None:
    """Another subject, another agency's key: 404 as for an unknown id, for reading, granting and denying alike."""
    gus, mallory = Account.create(), Account.create()
    filed = _file(consortium, gus.address)
    transport = consortium.transport
    police_key = consortium.key(consortium.police)

    for key in (mallory.key, police_key):
        expect(signed(transport, key, "GET", f"/v1/consent-requests/{filed['id']}"), 404, "not_found")
    mine = f"/v1/subjects/me/consent-requests/{filed['id']}"
    expect(signed(transport, mallory.key, "POST", f"{mine}/deny", {}), 404, "not_found")
    expect(signed(transport, mallory.key, "POST", f"{mine}/grant", _grant_body(consortium, mallory, filed)),
           404, "not_found")
    assert expect(signed(transport, mallory.key, "GET", "/v1/subjects/me/consent-requests"), 200)["requests"] == []
    expect(signed(transport, mallory.key, "GET", "/v1/consent-requests"), 403, "forbidden")
    assert _poll(consortium, filed["id"])["state"] == "requested"
    assert expect(signed(transport, gus.key, "GET", f"/v1/consent-requests/{filed['id']}"), 200)["id"] == filed["id"]


def test_filing_refuses_terms_off_the_catalog_and_callers_that_are_not_requesters(consortium: Consortium) -> None:
    """Unknown category, a purpose the category does not allow, another subject's record, a lapsed validity: 422;
    an outsider's key and a custodian gateway: 403."""
    hal = Account.create()
    others = consortium.ingest({"test": "pcr", "result": "negative"}, category=LAB_RESULT)
    transport, health = consortium.transport, consortium.health
    for terms, problem in (({"category": 99}, "category 99 is not in the catalog"),
                           ({"purpose": 77}, "purpose 77 is not in the catalog"),
                           ({"category": LAB_RESULT, "record": others}, "is not the subject's record"),
                           ({"valid_until": int(time.time()) - 1}, "valid_until is in the past")):
        body = {"subject": hal.address, "category": CONTACT_TRACE, "purpose": EPIDEMIC_CONTROL,
                "valid_until": int(time.time()) + HOUR, "reason": "a check", **terms}
        refused = expect(signed(transport, consortium.key(transport), "POST", "/v1/consent-requests", body), 422)
        assert problem in refused["detail"], refused
    body = {"subject": hal.address, "category": DISTRICT_STATS, "purpose": EPIDEMIC_CONTROL,
            "valid_until": int(time.time()) + HOUR, "reason": "a check"}
    expect(signed(transport, hal.key, "POST", "/v1/consent-requests", body), 403, "forbidden")
    expect(signed(health, consortium.key(health), "POST", "/v1/consent-requests", body), 403, "forbidden")


SHORT_LIVED, SHORT_LIVED_LIST = 48, 49
"""A purpose ended while a request for it is pending, and a category allowing only it (ids no other test uses)."""


def test_a_request_whose_purpose_ended_since_filing_is_not_signed_by_the_subjects_client(
    consortium: Consortium,
) -> None:
    """Filed while the purpose runs; its sunset set to the past before the answer: the client refuses before
    signing (PayloadValidationError naming the sunset) and the request stays pending."""
    consortium.govern(governance.add_purpose(SHORT_LIVED, "short-lived-drill"))
    consortium.govern(governance.add_category(SHORT_LIVED_LIST, "drill-roll", Sensitivity.ONE_TIME, HOUR,
                                              ("district",), (), [SHORT_LIVED]))
    ivy = Account.create()
    filed = _file(consortium, ivy.address, category=SHORT_LIVED_LIST, purpose=SHORT_LIVED, identified=False)
    consortium.govern(governance.set_purpose_sunset(SHORT_LIVED, 1))

    with GatewayClient(consortium.transport.url, ivy) as client:
        with pytest.raises(PayloadValidationError, match=r"purpose 48 \(short-lived-drill\) ended at 1970"):
            grant_request(client, filed["id"])

    assert _poll(consortium, filed["id"])["state"] == "requested"


def test_the_cli_files_lists_grants_and_polls_a_request(consortium: Consortium, tmp_path: Path) -> None:
    """`consent request` (transport's key), `subject requests` / `grant-request --max-uses 1` (the subject's
    keystore), `consent request-status --out` (the consent file `access request` takes): granted; granting twice
    exits 15 naming request_answered."""
    subject = Account.create()
    keystore = tmp_path / "subject.json"
    # A real v3 keystore, with a cheap scrypt (n = 2^10) so each of the subject's commands opens it at once.
    keystore.write_text(json.dumps(Account.encrypt(subject.key, "a subject's passphrase", iterations=2**10)))
    env = {**os.environ, "CONSENTLEDGER_GATEWAY": consortium.transport.url,
           "CONSENTLEDGER_SUBJECT_PASSWORD": "a subject's passphrase"}
    me = ("--subject-keystore", str(keystore))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)

    filed = cli("consent", "request", "--subject", subject.address, "--category", str(DISTRICT_STATS), "--purpose",
                str(EPIDEMIC_CONTROL), "--max-uses", "4", "--valid-for", "2h", "--reason", "Weekly district figures",
                "--dev-account", "8")
    assert filed.returncode == 0, filed.stderr
    request_id = _json(filed.stdout)["id"]
    listed = cli("subject", "requests", *me)
    assert listed.returncode == 0, listed.stderr
    assert [r["reason"] for r in _json(listed.stdout)["requests"]] == ["Weekly district figures"]

    granted = cli("subject", "grant-request", request_id, "--max-uses", "1", *me)
    assert granted.returncode == 0, granted.stderr
    written = tmp_path / "consent.json"
    status = cli("consent", "request-status", request_id, "--dev-account", "8", "--out", str(written))
    answer = _json(status.stdout)
    assert (answer["state"], answer["consent"]["max_uses"]) == ("granted", 1)
    assert Consent.from_json(_json(written.read_text())).nonce == int(answer["consent"]["nonce"])

    twice = cli("subject", "grant-request", request_id, *me)
    assert twice.returncode == GatewayError.exit_code and "request_answered" in twice.stderr
    assert len(twice.stderr.strip().splitlines()) == 1


def _json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    return data
