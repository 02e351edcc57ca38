"""The subject portal at `/portal` in headless Chromium, signed in with an injected EIP-1193 wallet.

The wallet is this process: the page's `window.ethereum.request` calls a Python function that signs
`eth_signTypedData_v4` exactly as a wallet does (`Account.sign_typed_data(full_message=...)` over the JSON
the page hands it) and keeps every message it signed, so the test asserts what the person was shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from .world import CHAIN_ID

pytestmark = pytest.mark.process

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")

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
    """What a page did that it should not: requests to another origin, console errors, uncaught exceptions."""

    def __init__(self, page: Any, origin: str) -> None:
        self.outside: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(origin + "/") else self.outside.append(r.url))
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(str(e)))

    def _console(self, message: Any) -> None:
        signed_out_probe = message.location.get("url", "").endswith("/portal/api/overview") and "401" in message.text
        if message.type in ("error", "warning") and not signed_out_probe:
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
