"""The subject portal at `/portal` in headless Chromium, signed in with an injected EIP-1193 wallet.

The wallet is this process: the page's `window.ethereum.request` calls a Python function that signs
`eth_signTypedData_v4` exactly as a wallet does (`Account.sign_typed_data(full_message=...)` over the JSON
the page hands it) and keeps every message it signed, so the test asserts what the person was shown.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from playwright.sync_api import expect as see

from consentledger import governance
from consentledger.consent import Consent, consent_id
from consentledger.ports import held_port, hold_port
from consentledger.types import ConsentStatus, Role

from .world import CHAIN_ID, CONTACT_TRACE, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")
HOUR = 3600
DAY_IN_WORDS = re.compile(r"\b\d{1,2} (January|February|March|April|May|June|July|August|September|October|"
                          r"November|December) \d{4}\b")

PROVIDER = """
(() => {
  const listeners = {};
  window.ethereum = {
    isMetaMask: false,
    async request({ method, params }) {
      const answer = JSON.parse(await window.__testWallet(method, JSON.stringify(params === undefined ? [] : params)));
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        throw error;
      }
      return answer.result;
    },
    on(event, listener) { (listeners[event] = listeners[event] || []).push(listener); return this; },
    removeListener(event, listener) {
      listeners[event] = (listeners[event] || []).filter((known) => known !== listener);
      return this;
    },
  };
})();
"""
"""An EIP-1193 provider (`request`, `on`, `removeListener`) forwarding every call to `Wallet.answer`."""


class WalletRefusal(Exception):
    """Raised when the test wallet refuses a call, with the EIP-1193 error code a real wallet gives."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Wallet:
    """A browser wallet holding one key: it shares its address, names the chain and signs typed data."""

    def __init__(self, account: LocalAccount, chain_id: int = CHAIN_ID) -> None:
        self.account = account
        self.chain_id = chain_id
        self.signed: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.declining = False
        """While set, the person declines every signature request (EIP-1193 code 4001)."""

    def answer(self, method: str, params_json: str) -> str:
        """Return the JSON `{"result"}` or `{"error": {code, message}}` a provider resolves or rejects with."""
        self.calls.append(method)
        try:
            result = self._call(method, json.loads(params_json))
        except WalletRefusal as refusal:
            return json.dumps({"error": {"code": refusal.code, "message": str(refusal)}})
        return json.dumps({"result": result})

    def _call(self, method: str, params: list[Any]) -> Any:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.account.address]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_signTypedData_v4":
            address, document = params
            if str(address).lower() != self.account.address.lower():
                raise WalletRefusal(4100, f"this wallet does not hold {address}")
            if self.declining:
                raise WalletRefusal(4001, "User rejected the request.")
            message = json.loads(document)
            signature = Account.sign_typed_data(self.account.key, full_message=message).signature
            self.signed.append(message)
            return "0x" + bytes(signature).hex()
        raise WalletRefusal(4200, f"this wallet does not support {method}")

    def last(self, primary_type: str) -> dict[str, Any]:
        """Return the last typed-data document of `primary_type` this wallet signed."""
        return [m for m in self.signed if m["primaryType"] == primary_type][-1]


@contextmanager
def chromium() -> Iterator[Any]:
    """Yield a headless Debian Chromium driven by playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run",
        ])
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """What a page did: requests to another origin, console errors, uncaught exceptions (none expected), and
    the portal API calls answered with an error status ("401 /portal/api/overview"), which Chromium logs."""

    def __init__(self, page: Any, origin: str) -> None:
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.refused: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(origin + "/") else self.outside.append(r.url))
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(str(e)))

    def _console(self, message: Any) -> None:
        url = message.location.get("url", "")
        status = re.match(r"Failed to load resource: the server responded with a status of (\d{3})", message.text)
        if status and "/portal/api/" in url:
            self.refused.append(f"{status[1]} /portal/api/{url.split('/portal/api/', 1)[1]}")
        elif message.type in ("error", "warning"):
            self.problems.append(f"{message.text} at {message.location}")


def wallet_page(browser: Any, origin: str, wallet: Wallet | None) -> tuple[Any, Watched]:
    """Return a new page (with `wallet` injected as `window.ethereum` unless None) and its watcher."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    watched = Watched(page, origin)
    if wallet is not None:
        page.expose_function("__testWallet", wallet.answer)
        page.add_init_script(PROVIDER)
    page.set_default_timeout(30_000)
    return page, watched


def serious_violations(page: Any, label: str) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is; print every violation, return those of serious or critical impact."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    for violation in results["violations"]:
        print(f"axe [{label}] {violation['impact']}: {violation['id']}: {violation['help']} "
              f"({len(violation['nodes'])} nodes)")
    return [v for v in results["violations"] if v["impact"] in BLOCKING_IMPACTS]


def file_request(consortium: Consortium, subject: str, **terms: Any) -> dict[str, Any]:
    """File a consent request as transport's client at transport's own gateway; return the 201 answer."""
    body = {"subject": subject, "category": CONTACT_TRACE, "purpose": EPIDEMIC_CONTROL,
            "valid_until": int(time.time()) + HOUR, "max_uses": 3, "identified": True,
            "reason": "Tracing the contacts of a confirmed case on bus 12", **terms}
    transport = consortium.transport
    return expect(signed(transport, consortium.key(transport), "POST", "/v1/consent-requests", body), 201)


def signed_consent(document: dict[str, Any]) -> Consent:
    """Return the Consent whose typed data the wallet signed (every 64-bit value arrives as a string)."""
    m = document["message"]
    return Consent(subject=m["subject"], grantee=m["grantee"], category=int(m["category"]), purpose=int(m["purpose"]),
                   valid_until=int(m["validUntil"]), max_uses=int(m["maxUses"]), record=bytes.fromhex(m["record"][2:]),
                   identified=bool(m["identified"]), nonce=int(m["nonce"]))


def overview(page: Any) -> dict[str, Any]:
    """Return the page's own `GET /portal/api/overview` answer, fetched inside the page with its session cookie."""
    answer: dict[str, Any] = page.evaluate(
        "() => fetch('/portal/api/overview').then(async (r) => ({status: r.status, body: await r.text()}))")
    assert answer["status"] == 200, answer
    data: dict[str, Any] = json.loads(answer["body"])
    return data


def reload_until(page: Any, locator: Any, timeout: float = 30.0) -> None:
    """Reload the page until `locator` is visible (what the gateway shows follows the chain index)."""
    deadline = time.monotonic() + timeout
    while True:
        page.get_by_role("heading", name="Requests waiting for your answer").wait_for()
        if locator.count() and locator.first.is_visible():
            return
        assert time.monotonic() < deadline, f"never shown: {locator}"
        time.sleep(0.5)
        page.reload()


def terms_of(card: Any) -> dict[str, str]:
    """Return the terms a card lists (its description list), term by term."""
    pairs: list[list[str]] = card.locator("dl").evaluate(
        "dl => Array.from(dl.querySelectorAll('dt')).map((t) => [t.textContent, t.nextElementSibling.textContent])")
    return dict((term, value) for term, value in pairs)


def consent_state(consortium: Consortium, consent: Consent) -> ConsentStatus:
    """Return the consent's status on chain."""
    status, _ = consortium.ledger.consent_state(consent_id(consent, consortium.ledger.domain()))
    return status


def test_without_a_wallet_the_page_says_so_and_passes_axe(consortium: Consortium) -> None:
    """No `window.ethereum`: the page says no wallet was found and how to get one; Connect answers in the alert
    region; the signed-out page has no serious or critical axe violation and loads nothing from elsewhere."""
    serving = consortium.health
    with chromium() as browser:
        page, watched = wallet_page(browser, serving.url, None)
        response = page.goto(serving.url + "/portal")

        assert response is not None and response.status == 200
        see(page).to_have_title("Your consents and records")
        see(page.locator("html")).to_have_attribute("lang", "en")
        see(page.get_by_role("heading", level=1)).to_have_text("Your consents and records")
        see(page.get_by_role("heading", name="No wallet was found in this browser")).to_be_visible()
        see(page.get_by_role("main")).to_contain_text("wallet extension")
        page.get_by_role("button", name="Connect your wallet").click()
        see(page.get_by_role("alert")).to_have_text("No wallet was found in this browser, so you cannot sign in "
                                                     "yet (see below).")
        assert serious_violations(page, "no wallet") == []
    assert watched.outside == [] and watched.problems == [] and watched.refused == ["401 /portal/api/overview"]


def test_a_person_with_only_a_wallet_narrows_and_grants_sees_the_access_revokes_and_erases(
    consortium: Consortium,
) -> None:
    """Transport asks (at its own gateway) for alice's contact trace, identified, 3 uses; alice opens the portal of
    health (the custodian), signs in with her wallet, narrows to 2 uses and approves; transport reads the record
    under that consent; after a reload the page tells her so in a sentence; she revokes, then erases and sees it."""
    alice = Account.create()
    record = consortium.ingest({"name": "Al", "phone": "555-0100", "district": "North"}, category=CONTACT_TRACE,
                               subject=alice.address)
    filed = file_request(consortium, alice.address)
    serving, transport = consortium.health, consortium.transport
    wallet = Wallet(alice)
    with chromium() as browser:
        page, watched = wallet_page(browser, serving.url, wallet)
        page.goto(serving.url + "/portal")
        assert serious_violations(page, "signed out") == []

        page.get_by_role("button", name="Connect your wallet").click()

        see(page.get_by_role("status")).to_have_text("You are signed in.")
        sign_in = wallet.signed[0]
        assert sign_in["primaryType"] == "PortalSignIn" and sign_in["message"]["subject"] == alice.address
        assert sign_in["message"]["statement"].startswith("Sign in to the consent portal of health.")
        assert isinstance(sign_in["message"]["issuedAt"], str) and isinstance(sign_in["message"]["expiresAt"], str)
        see(page.get_by_role("button", name="Sign out")).to_be_visible()
        asked = page.get_by_role("article", name=re.compile(r"^transport asks to see your "))
        see(asked).to_contain_text("“Tracing the contacts of a confirmed case on bus 12”")
        see(asked).to_contain_text("3 times")
        see(asked).to_contain_text("Yes: they would see name, phone")
        assert DAY_IN_WORDS.search(asked.inner_text()), asked.inner_text()

        asked.get_by_role("button", name="Narrow").click()
        see(asked.get_by_label("Number of uses")).to_have_value("3")
        assert serious_violations(page, "a pending request, narrowing") == []
        asked.get_by_label("Number of uses").fill("2")
        asked.get_by_role("button", name="Approve with these limits").click()

        see(page.get_by_role("status")).to_have_text("You approved the request of transport.")
        signed_terms = wallet.last("Consent")
        message = signed_terms["message"]
        assert (message["subject"], message["grantee"]) == (alice.address, transport.address)
        assert (message["maxUses"], message["validUntil"], message["identified"]) == ("2", str(filed["valid_until"]),
                                                                                        True)
        assert isinstance(message["nonce"], str) and signed_terms["domain"]["chainId"] == CHAIN_ID
        consent = signed_consent(signed_terms)
        polled = expect(signed(transport, consortium.key(transport), "GET", f"/v1/consent-requests/{filed['id']}"),
                        200)
        assert polled["state"] == "granted" and polled["consent"]["nonce"] == message["nonce"]
        given = page.get_by_role("article", name=re.compile(r"^transport may see your "))
        see(given).to_be_visible()
        assert terms_of(given)["Uses left"] == "2"
        see(page.get_by_role("article", name=re.compile(r"^transport asks to see your "))).to_have_count(0)

        released = expect(consortium.access(transport, record, [consent]), 200)
        assert released["identified"] is True and released["payload"]["name"] == "Al"

        page.reload()
        held = page.get_by_role("article", name=re.compile(r" held by health$"))
        reload_until(page, held.get_by_text(re.compile(r"^transport looked at your ")))
        [shown] = [r for r in overview(page)["records"] if r["id"] == record]
        [access] = shown["accesses"]
        assert access["consent"] == "0x" + consent_id(consent, consortium.ledger.domain()).hex()
        see(held.get_by_text(access["sentence"], exact=True)).to_be_visible()
        assert DAY_IN_WORDS.search(access["sentence"]) and "epidemic" in access["sentence"].lower()
        assert terms_of(given)["Uses left"] == "1"
        assert serious_violations(page, "signed in, a consent and an access") == []

        given.get_by_role("button", name="Revoke").click()

        see(page.get_by_role("status")).to_contain_text("You revoked the consent you gave transport")
        assert wallet.last("Revocation")["message"] == {"consent": access["consent"]}
        deadline = time.monotonic() + 30
        while consent_state(consortium, consent) is not ConsentStatus.REVOKED:
            assert time.monotonic() < deadline, "the revocation never reached the chain"
            time.sleep(0.3)
        reload_until(page, page.get_by_text("You have no consent in force."))

        page.get_by_role("button", name="Erase my records…").click()
        see(page.get_by_role("heading", name="Erase all your records?")).to_be_focused()
        page.get_by_role("button", name="Yes, erase my records").click()

        see(page.get_by_role("status")).to_contain_text("Your erasure request was answered")
        outcome = page.get_by_role("region", name="Erase your records").get_by_role("listitem")
        see(outcome).to_have_count(1)
        see(outcome).to_contain_text(re.compile(r"^health: your records there are (erased|destroyed)\b.* Record 0x"))
        reload_until(page, held.get_by_text(re.compile(r"Erased at your request on \d{1,2} [A-Z][a-z]+ \d{4} at ")))

        page.get_by_role("button", name="Sign out").click()
        see(page.get_by_role("heading", name="Sign in with your wallet")).to_be_visible()
        gone = page.evaluate("() => fetch('/portal/api/overview').then((r) => r.status)")
    assert gone == 401
    assert watched.outside == [] and watched.problems == []
    assert watched.refused == ["401 /portal/api/overview"] * 2  # the first load, signed out; the check above
    assert [m["primaryType"] for m in wallet.signed] == ["PortalSignIn", "Consent", "Revocation"]


@pytest.fixture
def unreachable_requester(consortium: Consortium) -> Iterator[str]:
    """A requester member ("ferry office") whose registered gateway URL answers nothing; suspended afterwards."""
    ferry = Account.create()
    with hold_port() as closed:  # held, not listening: refused, and no other process can serve it meanwhile
        url = f"http://127.0.0.1:{held_port(closed)}"
        consortium.govern(governance.admit_member(ferry.address, Role.REQUESTER, "ferry office", gateway_url=url))
        try:
            yield "ferry office"
        finally:
            consortium.govern(governance.suspend_member(ferry.address))


def test_a_declined_signature_an_unreachable_peer_and_a_refusal_are_said_in_words(
    consortium: Consortium, unreachable_requester: str
) -> None:
    """Declining in the wallet signs nothing in and says so; a requester gateway that does not answer is listed
    as such; a request denied meanwhile elsewhere (through transport's API) and then approved on the page answers
    the gateway's refusal in the alert region."""
    bob = Account.create()
    filed = file_request(consortium, bob.address, identified=False)
    serving, transport = consortium.health, consortium.transport
    wallet = Wallet(bob)
    with chromium() as browser:
        page, watched = wallet_page(browser, serving.url, wallet)
        page.goto(serving.url + "/portal")
        wallet.declining = True
        page.get_by_role("button", name="Connect your wallet").click()
        see(page.get_by_role("alert")).to_have_text("You declined in your wallet, so nothing was done.")
        see(page.get_by_role("heading", name="Sign in with your wallet")).to_be_visible()
        wallet.declining = False
        page.get_by_role("button", name="Connect your wallet").click()
        asked = page.get_by_role("article", name=re.compile(r"^transport asks to see your "))
        see(asked).to_contain_text("No: name, phone would be hidden from them")
        see(page.get_by_role("alert")).to_be_empty()
        unreachable = page.get_by_role("region", name="Organisations that could not be reached")
        reload_until(page, unreachable.get_by_text(re.compile(f"^{unreachable_requester} did not answer: .+")))
        expect(signed(transport, bob.key, "POST", f"/v1/subjects/me/consent-requests/{filed['id']}/deny", {}), 200)

        asked.get_by_role("button", name="Approve", exact=True).click()

        see(page.get_by_role("alert")).to_contain_text("The gateway refused this: ")
        see(page.get_by_role("alert")).to_contain_text("denied already")
    assert watched.outside == [] and watched.problems == []
    assert watched.refused[0] == "401 /portal/api/overview"
    assert watched.refused[-1].startswith("409 /portal/api/requests/"), watched.refused
