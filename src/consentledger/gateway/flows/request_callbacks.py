"""Telling a requester a consent request was answered: one signed POST of the request to its callback URL.

The callback is a courtesy beside polling (`GET /v1/consent-requests/{id}` stays the truth): it is
sent once, after the answer is stored, from a background thread so a slow receiver never delays the
subject, and a failure is logged, not retried. The body is the request as polling shows it, signed
by this organisation as a `GatewayRequest` whose audience is the organisation itself, so the
receiver checks it with `signing.verify_request` and knows it comes from its own gateway. An expiry
is not called back: the requester sees it by polling.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx

from consentledger.gateway.runtime import Gateway
from consentledger.signing import sign_request

log = logging.getLogger(__name__)


def call_back(gw: Gateway, url: str | None, request: dict[str, Any]) -> threading.Thread | None:
    """Start POSTing `request` to `url` (signed by this organisation) in the background; return the thread."""
    if not url:
        return None
    thread = threading.Thread(target=_post, args=(gw, url, request), name="consent-request-callback", daemon=True)
    thread.start()
    return thread


def _post(gw: Gateway, url: str, request: dict[str, Any]) -> None:
    body = json.dumps(request, separators=(",", ":")).encode()
    target = httpx.URL(url)
    path = target.raw_path.decode("ascii")
    signature = sign_request(gw.sender.account.key, chain_id=gw.chain_id, audience=gw.org, method="POST", path=path,
                             body=body, now=int(time.time()))
    try:
        response = gw.peers.post(url, content=body, headers={**signature.headers(), "Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        log.warning("consent request %s: callback to %s failed: %s", request["id"], url, exc)
        return
    if not response.is_success:
        log.warning("consent request %s: callback to %s answered HTTP %s", request["id"], url, response.status_code)
