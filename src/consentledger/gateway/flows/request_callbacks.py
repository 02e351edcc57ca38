"""Telling a requester its consent request was granted, denied or expired: signed POSTs, retried until delivered.

The callback is a courtesy beside polling (`GET /v1/consent-requests/{id}` stays the truth), but a
durable one: the row owing it is written with the state change (`store.request_callbacks`), and the
gateway's upkeep loop runs `CallbackCourier.run` each round, which owes an `expired` callback for
each request found unanswered past its expiry, then hands each due callback to a daemon thread
(a slow receiver never delays the loop's chain work). A failure (a connection refused, a timeout,
any non-2xx answer) is retried after `callback_backoff` seconds, doubling up to
`callback_backoff_max`, until `callback_attempts` are spent; the request's JSON shows how it went
(`callback: {state, attempts, last_error, delivered_at}`). A success is recorded once and never
repeated (a crash between the receiver's 2xx and that record is the one case it is sent again).

The body is the request as polling shows it, its `state` the one announced (polling may show a
later one by then); it is signed by this organisation as a `GatewayRequest` whose audience is the
organisation itself, so the receiver checks it with `signing.verify_request` and knows it comes
from its own gateway. A grant is announced only once its consent is on chain: until then (the
relay is still on its way) the callback waits without counting an attempt.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import httpx

from consentledger.errors import ConsentLedgerError
from consentledger.gateway.flows.consent_requests import requests_of, view
from consentledger.gateway.runtime import Gateway
from consentledger.store.request_callbacks import Callback, RequestCallbacks
from consentledger.types import ConsentStatus

log = logging.getLogger(__name__)

IN_FLIGHT = 4
"""Most callbacks being delivered at once."""


class CallbackCourier:
    """Delivers the callbacks owed, from daemon threads; one per gateway upkeep loop."""

    def __init__(self, gw: Gateway) -> None:
        self._gw = gw
        self._store = RequestCallbacks(gw.store.engine)
        self._threads: list[threading.Thread] = []

    def run(self, now: datetime | None = None) -> list[threading.Thread]:
        """Return the threads delivering the callbacks due at `now` (default: now), after owing those of requests
        lapsed by then."""
        moment = now or datetime.now(UTC)
        self._store.queue_expired(moment)
        self._threads = [t for t in self._threads if t.is_alive()]
        free = IN_FLIGHT - len(self._threads)
        if free <= 0:
            return []
        lease = timedelta(seconds=2 * self._gw.settings.callback_timeout + 5)  # a claim outlives any one attempt
        started = []
        for callback in self._store.claim_due(moment, lease, free):
            thread = threading.Thread(target=self._deliver, args=(callback,), name="consent-request-callback",
                                      daemon=True)
            thread.start()
            started.append(thread)
        self._threads.extend(started)
        return started

    def _deliver(self, callback: Callback) -> None:
        try:
            self._attempt(callback)
        except Exception:  # the row stays claimed until its lease ends, then it is tried again
            log.exception("consent request %s: callback delivery failed", callback.request_id)

    def _attempt(self, callback: Callback) -> None:
        gw, settings = self._gw, self._gw.settings
        request = requests_of(gw).get(callback.request_id)
        if callback.state != "expired" and request.state.value != callback.state:
            return  # the answer was undone (a grant whose consent did not reach the chain), and its row with it
        if callback.state == "granted" and request.consent_id is not None and not _on_chain(gw, request.consent_id):
            self._store.postpone(callback, datetime.now(UTC) + timedelta(seconds=settings.callback_backoff))
            return
        body = json.dumps({**view(gw, request), "state": callback.state}, separators=(",", ":")).encode()
        error = _post(gw, callback.url, body)
        if error is None:
            self._store.delivered(callback, datetime.now(UTC))
            return
        attempts = callback.attempts + 1
        log.warning("consent request %s: %s callback to %s failed (attempt %d of %d): %s", callback.request_id,
                    callback.state, callback.url, attempts, settings.callback_attempts, error)
        delay = min(settings.callback_backoff * 2 ** (attempts - 1), settings.callback_backoff_max)
        retry = datetime.now(UTC) + timedelta(seconds=delay) if attempts < settings.callback_attempts else None
        self._store.failed(callback, error, retry)


def _on_chain(gw: Gateway, consent_id: str) -> bool:
    try:
        return gw.chain.consent_status(bytes.fromhex(consent_id[2:])) is not ConsentStatus.NONE
    except ConsentLedgerError:  # chain down: not known to be on chain yet
        return False


def _post(gw: Gateway, url: str, body: bytes) -> str | None:
    """POST `body` to `url` signed by this organisation; return why it failed, or None for a 2xx answer."""
    path = httpx.URL(url).raw_path.decode("ascii")
    headers = gw.signed_headers(audience=gw.org, method="POST", path=path, body=body)
    try:
        response = gw.peers.post(url, content=body, headers=headers,
                                 timeout=gw.settings.callback_timeout)
    except httpx.TimeoutException:
        return f"no answer within {gw.settings.callback_timeout:g} s"
    except httpx.HTTPError as exc:
        return str(exc) or type(exc).__name__
    if not response.is_success:
        return f"HTTP {response.status_code}"
    return None
