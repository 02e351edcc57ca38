"""The subject portal's API against real gateways: a wallet signs in, sees requests filed at other gateways,
narrows and grants one (which the requester then uses), reads the access in plain words, revokes, and erases;
forged delegations between gateways are refused and a peer that is down is listed, not dropped."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import update

from consentledger import governance
from consentledger.consent import Consent, consent_id, consent_typed_data
from consentledger.gateway.delegation import Delegation
from consentledger.localnet import Agency
from consentledger.portal.sign_in import SignIn, sign_in_typed_data
from consentledger.ports import held_port, hold_port
from consentledger.store.tables import portal_challenges
from consentledger.types import ConsentStatus, Role

from .lifecycle import eventually
from .world import CHAIN_ID, CONTACT_TRACE, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

HOUR = 3600
PORTAL = {"X-CL-Portal": "1"}


def wallet_sign(account: LocalAccount, typed_data: dict[str, Any]) -> str:
    """Sign typed data exactly as a wallet's eth_signTypedData_v4 does: the JSON document, as received."""
    document = json.loads(json.dumps(typed_data))
    return "0x" + bytes(Account.sign_typed_data(account.key, full_message=document).signature).hex()


def challenge(agency: Agency, subject: str) -> dict[str, Any]:
    """Ask `agency`'s portal for a sign-in challenge."""
    return expect(httpx.post(f"{agency.url}/portal/api/challenge", json={"subject": subject}, trust_env=False), 201)


@pytest.fixture
def portal(consortium: Consortium) -> Iterator[tuple[LocalAccount, httpx.Client]]:
    """A fresh data subject signed in at police's portal (a requester gateway), with their browser's cookie jar."""
    subject = Account.create()
    with httpx.Client(base_url=consortium.police.url, trust_env=False, timeout=60) as browser:
        sign_in(browser, subject)
        yield subject, browser


def sign_in(browser: httpx.Client, subject: LocalAccount) -> httpx.Response:
    """Sign `subject` in through `browser` (challenge, wallet signature, session); return the session answer."""
    asked = expect(browser.post("/portal/api/challenge", json={"subject": subject.address}), 201)
    answer = browser.post("/portal/api/session", json={"challenge": asked["challenge"],
                                                       "signature": wallet_sign(subject, asked["typed_data"])})
    expect(answer, 200)
    return answer


def overview(browser: httpx.Client) -> dict[str, Any]:
    return expect(browser.get("/portal/api/overview"), 200)


def file_request(consortium: Consortium, subject: str, **terms: Any) -> dict[str, Any]:
    """File a consent request from transport at its own gateway."""
    body = {"subject": subject, "category": CONTACT_TRACE, "purpose": EPIDEMIC_CONTROL,
            "valid_until": int(time.time()) + HOUR, "max_uses": 3, "identified": True,
            "reason": "Tracing contacts of a confirmed case on bus 12", **terms}
    transport = consortium.transport
    return expect(signed(transport, consortium.key(transport), "POST", "/v1/consent-requests", body), 201)


def test_a_consent_signed_as_a_wallet_signs_its_json_typed_data_is_relayed_and_listed_with_a_string_nonce(
    consortium: Consortium,
) -> None:
    """The typed data survives JSON; eth_signTypedData_v4 over it gives the signature the contract takes, and
    GET /v1/subjects/me/consents gives the nonce back as a string."""
    subject = Account.create()
    consent = Consent.new(subject=subject.address, grantee=consortium.transport.address, category=CONTACT_TRACE,
                          purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + HOUR)
    signature = wallet_sign(subject, consent_typed_data(consent, consortium.ledger.domain()))

    body = {"consent": consent.to_json(), "signature": signature}
    expect(signed(consortium.transport, subject.key, "POST", "/v1/consents", body), 201)
    assert consortium.ledger.consent_state(consent_id(consent, consortium.ledger.domain()))[0] is ConsentStatus.GRANTED
    listed = expect(signed(consortium.transport, subject.key, "GET", "/v1/subjects/me/consents"), 200)
    assert [c["consent"]["nonce"] for c in listed["consents"]] == [str(consent.nonce)]


def test_signing_in_with_a_wallet_sets_a_strict_http_only_cookie_and_logout_ends_the_session(
    consortium: Consortium,
) -> None:
    """Challenge, wallet signature, session: the cookie is HttpOnly, SameSite=Strict, Path=/portal, lasts the TTL;
    the statement says what the gateway may do; after logout the overview is 401."""
    subject = Account.create()
    with httpx.Client(base_url=consortium.police.url, trust_env=False, timeout=60) as browser:
        asked = expect(browser.post("/portal/api/challenge", json={"subject": subject.address}), 201)
        message = asked["typed_data"]["message"]
        assert message["challenge"] == asked["challenge"] and message["gateway"] == consortium.police.address
        assert isinstance(message["issuedAt"], str) and int(message["expiresAt"]) - int(message["issuedAt"]) == HOUR
        assert "on your behalf" in message["statement"] and "costs nothing" in message["statement"]
        answer = browser.post("/portal/api/session", json={
            "challenge": asked["challenge"], "signature": wallet_sign(subject, asked["typed_data"])})
        expect(answer, 200)
        cookie = answer.headers["set-cookie"]
        assert answer.json()["subject"] == subject.address
        for attribute in ("cl_portal_session=", "HttpOnly", "SameSite=strict", "Path=/portal", "Max-Age="):
            assert attribute.lower() in cookie.lower(), cookie
        assert HOUR - 60 <= int(cookie.lower().split("max-age=")[1].split(";")[0]) <= HOUR
        assert overview(browser)["subject"] == subject.address

        token = browser.cookies["cl_portal_session"]
        out = browser.post("/portal/api/logout", headers=PORTAL)
        assert out.status_code == 204 and 'cl_portal_session=""' in out.headers["set-cookie"], out.headers
        expect(browser.get("/portal/api/overview"), 401, "unauthenticated")
        kept = httpx.get(f"{consortium.police.url}/portal/api/overview", cookies={"cl_portal_session": token},
                         trust_env=False)
        expect(kept, 401, "unauthenticated")  # the session is gone at the gateway, not only from the browser


def test_a_used_an_expired_or_a_wrongly_signed_challenge_opens_no_session(consortium: Consortium) -> None:
    """Each challenge opens at most one session, within five minutes, and only with its subject's signature."""
    subject, other = Account.create(), Account.create()
    police = consortium.police
    url = f"{police.url}/portal/api/session"

    used = challenge(police, subject.address)
    answer = {"challenge": used["challenge"], "signature": wallet_sign(subject, used["typed_data"])}
    expect(httpx.post(url, json=answer, trust_env=False), 200)
    expect(httpx.post(url, json=answer, trust_env=False), 401, "unauthenticated")

    wrong = challenge(police, subject.address)
    refused = expect(httpx.post(url, json={"challenge": wrong["challenge"],
                                           "signature": wallet_sign(other, wrong["typed_data"])}, trust_env=False),
                     401, "unauthenticated")
    assert other.address in refused["detail"]

    late = challenge(police, subject.address)
    stored = hashlib.sha256(late["challenge"].encode()).hexdigest()
    with consortium.store(police).engine.begin() as conn:  # five minutes pass
        conn.execute(update(portal_challenges).where(portal_challenges.c.challenge_hash == stored)
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    expect(httpx.post(url, json={"challenge": late["challenge"], "signature": wallet_sign(subject, late["typed_data"])},
                      trust_env=False), 401, "unauthenticated")


def test_a_portal_post_without_the_portal_header_is_forbidden(
    consortium: Consortium, portal: tuple[LocalAccount, httpx.Client]
) -> None:
    """The session cookie alone does not act: a cross-site form cannot send X-CL-Portal."""
    _, browser = portal
    expect(browser.post("/portal/api/logout"), 403, "forbidden")
    expect(browser.post("/portal/api/erasure", json={"revocations": []}), 403, "forbidden")
    assert overview(browser)  # still signed in


def test_the_page_and_its_assets_are_served_with_a_strict_policy(consortium: Consortium) -> None:
    """/portal is HTML with the CSP of PORTAL.md, never framed or cached; only portal.js and portal.css are assets."""
    page = httpx.get(f"{consortium.police.url}/portal", trust_env=False)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    script = httpx.get(f"{consortium.police.url}/portal/static/portal.js", trust_env=False)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    expect(httpx.get(f"{consortium.police.url}/portal/static/portal.html", trust_env=False), 404, "not_found")
    expect(httpx.get(f"{consortium.police.url}/portal/static/..%2Fsign_in.py", trust_env=False), 404)


def test_a_request_filed_at_another_gateway_is_narrowed_granted_used_and_shown_in_plain_words(
    consortium: Consortium, portal: tuple[LocalAccount, httpx.Client]
) -> None:
    """Transport files at its gateway; the subject, signed in at police's, sees it, narrows it (unidentified, one
    use), signs and grants; transport's access under it appears in the overview with its sentence and hidden fields."""
    subject, browser = portal
    record = consortium.ingest({"name": "Al", "phone": "555-0100", "district": "North"}, category=CONTACT_TRACE,
                               subject=subject.address)
    filed = file_request(consortium, subject.address)

    listed = overview(browser)
    [shown] = [r for r in listed["requests"] if r["id"] == filed["id"]]
    assert shown["gateway"] == {"org": consortium.transport.address, "name": "transport"}
    assert (shown["state"], shown["max_uses"], shown["identified"]) == ("requested", "3", True)
    assert shown["category"]["name"] == "Contact trace" and shown["purpose"]["name"] == "Epidemic control"
    assert shown["reason"] == filed["reason"] and " 20" in shown["valid_until_text"]

    path = f"/portal/api/requests/{consortium.transport.address}/{filed['id']}"
    narrowing = {"identified": False, "max_uses": "1"}
    expect(browser.post(f"{path}/consent", json={"max_uses": "4"}, headers=PORTAL), 422)  # wider than asked
    expect(browser.post(f"{path}/consent", json={"max_uses": "0"}, headers=PORTAL), 422, "invalid_request")
    typed = expect(browser.post(f"{path}/consent", json=narrowing, headers=PORTAL), 200)
    assert typed["typed_data"]["message"]["nonce"] == typed["nonce"]
    granted = expect(browser.post(f"{path}/grant", headers=PORTAL, json={
        **narrowing, "nonce": typed["nonce"], "signature": wallet_sign(subject, typed["typed_data"])}), 200)
    assert granted["state"] == "granted" and granted["consent_id"]
    expect(browser.post(f"{path}/consent", json=narrowing, headers=PORTAL), 409, "request_answered")

    transport = consortium.transport
    terms = expect(signed(transport, consortium.key(transport), "GET", f"/v1/consent-requests/{filed['id']}"),
                   200)["consent"]
    released = expect(consortium.access(transport, record, [Consent.from_json(terms)]), 200)
    assert released["payload"] == {"district": "North"}

    after = overview(browser)
    [held] = [r for r in after["records"] if r["id"] == record]
    [access] = held["accesses"]
    assert access["who"]["name"] == "transport" and access["identified"] is False
    assert access["hidden_fields"] == ["name", "phone"] and access["consent"] == granted["consent_id"]
    assert access["sentence"].startswith("transport looked at your Contact trace on ")
    assert "for Epidemic control; your name and phone were hidden from them; under your consent of " in \
        access["sentence"]
    [consent] = [c for c in after["consents"] if c["id"] == granted["consent_id"]]
    assert consent["uses_left"] == "0" and consent["terms"]["nonce"] == typed["nonce"]


def test_a_request_at_another_gateway_is_denied_there(
    consortium: Consortium, portal: tuple[LocalAccount, httpx.Client]
) -> None:
    """The denial goes to transport's gateway, which the requester then reads as denied."""
    subject, browser = portal
    filed = file_request(consortium, subject.address)
    path = f"/portal/api/requests/{consortium.transport.address}/{filed['id']}"

    assert expect(browser.post(f"{path}/deny", json={}, headers=PORTAL), 200)["state"] == "denied"
    transport = consortium.transport
    polled = expect(signed(transport, consortium.key(transport), "GET", f"/v1/consent-requests/{filed['id']}"), 200)
    assert polled["state"] == "denied"
    expect(browser.post(f"{path}/deny", json={}, headers=PORTAL), 409, "request_answered")


def test_a_live_consent_is_revoked_with_the_typed_data_the_overview_gives(
    consortium: Consortium, portal: tuple[LocalAccount, httpx.Client]
) -> None:
    """The overview's revoke_typed_data, signed by the wallet, revokes the consent on chain."""
    subject, browser = portal
    consent = consortium.grant(subject, consortium.transport, CONTACT_TRACE)
    name = "0x" + consent_id(consent, consortium.ledger.domain()).hex()
    [shown] = [c for c in overview(browser)["consents"] if c["id"] == name]

    answer = expect(browser.post("/portal/api/consents/revoke", headers=PORTAL, json={
        "consent": shown["terms"], "signature": wallet_sign(subject, shown["revoke_typed_data"])}), 200)
    assert answer["consent"] == name and answer["revocation"]["status"] == "revoked"
    assert consortium.ledger.consent_state(bytes.fromhex(name[2:]))[0] is ConsentStatus.REVOKED
    assert name not in [c["id"] for c in overview(browser)["consents"]]


def test_an_erasure_from_the_portal_reaches_the_custodian_and_the_record_shows_erased(
    consortium: Consortium, portal: tuple[LocalAccount, httpx.Client]
) -> None:
    """Signed in at police's portal, the subject revokes every live consent and erases: health (the custodian)
    shreds and tombstones; the overview shows the record erased with its date, and no live consent."""
    subject, browser = portal
    record = consortium.ingest({"name": "Ed", "phone": "555-0111", "district": "East"}, category=CONTACT_TRACE,
                               subject=subject.address)
    consortium.grant(subject, consortium.transport, CONTACT_TRACE)
    before = overview(browser)
    assert before["erasure"] == {"possible": True, "live_consents": 1, "records_held": 1}
    revocations = [{"consent": c["terms"], "signature": wallet_sign(subject, c["revoke_typed_data"])}
                   for c in before["consents"]]
    refused = expect(browser.post("/portal/api/erasure", headers=PORTAL, json={"revocations": []}), 422)
    [custodian] = refused["custodians"]
    assert (custodian["status"], custodian["http_status"]) == ("refused", 422) and "missing" in custodian["error"]
    assert overview(browser)["records"][0]["state"] == "held"  # refused before anything was shredded

    answer = browser.post("/portal/api/erasure", headers=PORTAL, json={"revocations": revocations})
    assert answer.status_code in (200, 202), answer.text
    [custodian] = answer.json()["custodians"]
    assert custodian["org"] == consortium.health.address and custodian["status"] in ("erased", "queued"), custodian
    assert [r["record"] for r in custodian["answer"]["records"]] == [record]

    after = eventually(lambda: overview(browser), lambda o: o["records"][0]["state"] == "erased",
                       what="the record's erasure tombstone in the overview")
    assert after["records"][0]["ended_text"] == "erased at your request" and after["records"][0]["ended_at_text"]
    assert eventually(lambda: overview(browser), lambda o: not o["consents"])["erasure"]["possible"] is False


def _delegation(signer: LocalAccount, subject: str, gateway: str, *, issued: int, lasts: int) -> Delegation:
    sign_in = SignIn(subject, gateway, "Sign in (test)", issued, issued + lasts, secrets.token_bytes(32))
    signature = wallet_sign(signer, sign_in_typed_data(sign_in, CHAIN_ID))
    return Delegation(sign_in, bytes.fromhex(signature[2:]))


def test_a_gateway_acts_for_a_subject_only_with_their_valid_sign_in_on_subject_paths(consortium: Consortium) -> None:
    """Health takes police's request as the subject's with their sign-in; not one signed by another key, expired,
    over a day long, on another path, naming another gateway, or sent by a key that is no member."""
    subject, intruder, stranger = Account.create(), Account.create(), Account.create()
    health, police = consortium.health, consortium.police
    now = int(time.time())
    mine = "/v1/subjects/me/consents"

    def ask(key: bytes, delegation: Delegation, path: str = mine) -> httpx.Response:
        return signed(health, key, "GET", path, headers=delegation.header())

    good = _delegation(subject, subject.address, police.address, issued=now - 10, lasts=HOUR)
    assert expect(ask(consortium.key(police), good), 200)["subject"] == subject.address

    forged = _delegation(intruder, subject.address, police.address, issued=now - 10, lasts=HOUR)
    assert intruder.address in expect(ask(consortium.key(police), forged), 401, "unauthenticated")["detail"]
    expired = _delegation(subject, subject.address, police.address, issued=now - 2 * HOUR, lasts=HOUR)
    expect(ask(consortium.key(police), expired), 401, "unauthenticated")
    too_long = _delegation(subject, subject.address, police.address, issued=now - 10, lasts=2 * 86400)
    expect(ask(consortium.key(police), too_long), 401, "unauthenticated")
    expect(ask(consortium.key(police), good, "/v1/consent-requests"), 403, "forbidden")
    expect(ask(consortium.key(consortium.transport), good), 401, "unauthenticated")  # names police, not transport
    by_stranger = _delegation(subject, subject.address, stranger.address, issued=now - 10, lasts=HOUR)
    expect(ask(stranger.key, by_stranger), 403, "forbidden")


def test_a_requester_gateway_that_is_down_is_listed_as_unreachable(
    consortium: Consortium, portal: tuple[LocalAccount, httpx.Client]
) -> None:
    """A member requester whose gateway does not answer appears in `unreachable` with why; the others still list."""
    _, browser = portal
    down = Account.create()
    with hold_port() as closed:  # held, not listening: refused, and no other process can serve it meanwhile
        consortium.govern(governance.admit_member(down.address, Role.REQUESTER, "ferry office",
                                                  gateway_url=f"http://127.0.0.1:{held_port(closed)}"))
        try:
            shown = overview(browser)
            [unreachable] = [u for u in shown["unreachable"] if u["org"] == down.address]
            assert unreachable["name"] == "ferry office" and unreachable["error"]
            assert consortium.transport.address not in [u["org"] for u in shown["unreachable"]]
        finally:
            consortium.govern(governance.suspend_member(down.address))
