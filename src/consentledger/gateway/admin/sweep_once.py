"""One sweep from the command line: through the agency's running gateway if it answers, else in this process.

A SQLite store belongs to one process, and so do the signer's nonces: two relays signing for the
same organisation would race for nonces. So when the gateway named by the config is up, the
sweep is asked of it (signed `POST /v1/sweep`, the organisation's own key) and it shreds and relays
under its own locks; otherwise this process opens the store and relays itself, first finishing any
chain writes an earlier, interrupted run left queued.
"""

from __future__ import annotations

from typing import Any

import httpx

from consentledger.client import GatewayClient
from consentledger.crypto.keys import keystore_address, load_account, password_from_env
from consentledger.gateway.flows.sweep import drain, sweep_now
from consentledger.gateway.runtime import Gateway
from consentledger.settings import Settings

_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def run_sweep(settings: Settings, *, batch: int | None = None, drain_timeout: float = 120.0) -> dict[str, Any]:
    """Sweep once and return the report plus `via` (the gateway asked, or "local") and `queued` writes left.

    Locally, after the sweep the outbox is relayed until empty or `drain_timeout` seconds pass;
    writes still queued then are sent by the gateway (or the next sweep) later.
    """
    url = local_url(settings)
    if serving(url, keystore_address(settings.signer_keystore)):
        account = load_account(settings.signer_keystore, password_from_env(settings.password_env))
        with GatewayClient(url, account) as client:
            return {"via": url, **client.sweep(batch)}
    gw = Gateway.open(settings)
    try:
        gw.relay_now()
        report = sweep_now(gw, batch)
        queued = drain(gw, timeout=drain_timeout)
    finally:
        gw.close()
        gw.store.engine.dispose()
    swept = {"swept": False} if report is None else {"swept": True, **report.to_json()}
    return {"via": "local", **swept, "queued": queued}


def local_url(settings: Settings) -> str:
    """Return the URL at which this machine reaches the gateway the settings describe."""
    host = "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{settings.port}"


def serving(url: str, org: str) -> bool:
    """Return whether the gateway of organisation `org` answers `/v1/health` at `url`."""
    try:
        answer = httpx.get(url + "/v1/health", timeout=5, trust_env=False)
        return answer.status_code == 200 and str(answer.json().get("org", "")).lower() == org.lower()
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
